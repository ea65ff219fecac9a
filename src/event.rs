//! The Event model: what every output renders, decoded once from the wire.
//!
//! Raw wire structs (generated from event.h) are turned into these by an
//! [`Enricher`], which adds names from the running kernel: reason names from
//! BTF, `symbol+offset` from kallsyms, netns names, and a parsed flow.
//!
//! Nothing here knows the knowledge base: a group's hint is
//! `diagnose::hint_for`, called by whoever builds the row.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::container::{Container, Resolver};
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::netns::NetnsNames;
use crate::kernel::reasons::DropReasons;
use crate::packet::{self, Flow, HdrKind};
use crate::probe::drop::{RawAggKey, RawDrop};

pub use crate::json::JSON_VERSION;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    pub symbol: String,
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Raw return address, hex.
    pub address: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{:#x}", self.symbol, self.offset)?;
        if let Some(m) = &self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// The task that was current when the skb was freed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub pid: u32,
    pub comm: String,
    pub context: TaskContext,
}

/// In what context the skb was freed (event.h's `NW_CTX_*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskContext {
    /// A syscall or kernel thread: pid/comm are the dropping task.
    Process,
    /// Soft or hard irq: pid/comm are whoever was interrupted.
    Irq,
    /// The hook cannot tell (tp_btf on kernels without the irq bit).
    Unknown,
}

/// event.h `NW_CTX_TASK`: dropped in process context.
const CTX_TASK: u8 = 1;
/// event.h `NW_CTX_KNOWN`: the hook reports the context, `CTX_TASK` is valid.
const CTX_KNOWN: u8 = 2;

impl TaskContext {
    pub fn from_wire(flags: u8) -> Self {
        if flags & CTX_KNOWN == 0 {
            TaskContext::Unknown
        } else if flags & CTX_TASK != 0 {
            TaskContext::Process
        } else {
            TaskContext::Irq
        }
    }
}

/// Where the headers in a wire event start (event.h's `enum nw_hdr_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WireHdr {
    /// `NW_HDR_NONE`: no headers could be located.
    None = 0,
    /// `NW_HDR_ETH`: at the Ethernet header.
    Eth = 1,
    /// `NW_HDR_L3`: at the network header; the event's `protocol` says which.
    L3 = 2,
}

impl WireHdr {
    pub fn from_wire(v: u8) -> Self {
        match v {
            1 => WireHdr::Eth,
            2 => WireHdr::L3,
            _ => WireHdr::None,
        }
    }

    /// What the packet parser needs: the kind, with the ethertype for L3.
    pub fn hdr_kind(self, protocol: u16) -> HdrKind {
        match self {
            WireHdr::Eth => HdrKind::Eth,
            WireHdr::L3 => HdrKind::L3 {
                ethertype: protocol,
            },
            WireHdr::None => HdrKind::None,
        }
    }
}

/// Where the probe read a drop's network namespace from (event.h's
/// `nw_netns_src`), most specific first. `task` is the current task's
/// namespace: right for a drop inside a syscall, a guess in a softirq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetnsSource {
    /// The socket kfree_skb says it was delivering to (6.11+).
    RxSk,
    /// The skb's own socket.
    SkbSk,
    /// The skb's device.
    Dev,
    /// The device of the skb's route.
    DstDev,
    /// The task that was current.
    Task,
    Unknown,
}

impl NetnsSource {
    /// `enum nw_netns_src`: `NW_NS_NONE` and values newer than netwhy are
    /// `Unknown`.
    pub fn from_wire(v: u8) -> Self {
        match v {
            1 => NetnsSource::RxSk,
            2 => NetnsSource::SkbSk,
            3 => NetnsSource::Dev,
            4 => NetnsSource::DstDev,
            5 => NetnsSource::Task,
            _ => NetnsSource::Unknown,
        }
    }
}

/// Where and why the kernel dropped: what a drop event, an aggregate row
/// and a finding share (flattened into their JSON objects); a trace step
/// that was a drop builds one (`trace::Step::site`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DropSite {
    /// The kernel's name for the reason, interned ([`intern`]): names come
    /// from the running kernel, so they are strings, but one per process.
    pub reason: &'static str,
    pub reason_code: u32,
    pub location: Location,
    pub netns: u32,
    pub netns_name: Option<String>,
    pub dev: Option<String>,
    pub ifindex: u32,
    /// The container running in `netns` (`crate::container::Resolver`);
    /// left out of the JSON when there is none, so hosts without
    /// containers see the same objects as before.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_container"
    )]
    pub container: Option<Arc<Container>>,
}

pub use crate::container::serialize_container;

// The site's fields read as the event's and the row's own (`e.reason`).
impl std::ops::Deref for DropEvent {
    type Target = DropSite;
    fn deref(&self) -> &DropSite {
        &self.site
    }
}

impl std::ops::Deref for DropGroup {
    type Target = DropSite;
    fn deref(&self) -> &DropSite {
        &self.site
    }
}

/// What the `drops` table groups by (the kernel's aggregate key, event.h's
/// `nw_agg_key`): one row per (location, reason, netns, device). `explain`
/// groups by function instead (`diagnose::finding::ExplainKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Return address of the dropping call.
    pub location: u64,
    pub reason: u32,
    pub netns: u32,
    pub ifindex: u32,
}

impl From<&RawAggKey> for GroupKey {
    fn from(k: &RawAggKey) -> Self {
        GroupKey {
            location: k.location,
            reason: k.reason,
            netns: k.netns,
            ifindex: k.ifindex,
        }
    }
}

/// One dropped packet.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct DropEvent {
    /// Wall-clock time of the drop, ns since the Unix epoch.
    pub time_ns: u64,
    #[serde(flatten)]
    pub site: DropSite,
    pub netns_source: NetnsSource,
    pub mark: u32,
    pub flow: Flow,
    pub len: u32,
    pub task: Task,
    /// skb address, hex: ties events of one packet together.
    pub skb: String,
}

crate::json_record!(DropEvent, "drop");

/// One aggregate row: drops sharing reason, location, netns and device.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct DropGroup {
    #[serde(flatten)]
    pub site: DropSite,
    pub netns_source: NetnsSource,
    pub count: u64,
    pub bytes: u64,
    /// Drops per second over the last interval.
    pub rate: f64,
    /// One-line hint from the knowledge base (`netwhy explain` has the rest):
    /// `diagnose::hint_for(&group)`, set by whoever builds the row; empty
    /// until then.
    pub hint: std::borrow::Cow<'static, str>,
}

crate::json_record!(DropGroup, "group");

/// Interns a kernel reason name: one allocation per distinct name for the
/// life of the process (a few hundred names, plus one `UNKNOWN(n)` per
/// unnamed value seen), so events carry a `&'static str` and copying a
/// reason never allocates.
pub fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = names.get(name) {
        return n;
    }
    let n: &'static str = Box::leak(name.into());
    names.insert(n);
    n
}

/// Names raw kernel values. Holds the kernel facts loaded once at start.
pub struct Enricher {
    pub reasons: DropReasons,
    pub kallsyms: Kallsyms,
    pub netns: NetnsNames,
    /// Containers by netns, cached (a drop never walks /proc itself).
    pub containers: Resolver,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, to turn bpf_ktime into wall time.
    mono_to_wall: i128,
    locations: HashMap<u64, Location>,
    /// Reason value to interned name: no lock nor allocation per event.
    reason_names: HashMap<u32, &'static str>,
}

impl Enricher {
    pub fn new(reasons: DropReasons, kallsyms: Kallsyms, netns: NetnsNames) -> Self {
        Enricher {
            reasons,
            kallsyms,
            netns,
            containers: Resolver::new(),
            mono_to_wall: mono_to_wall_offset(),
            locations: HashMap::new(),
            reason_names: HashMap::new(),
        }
    }

    /// The running kernel's name for reason `value`, interned.
    pub fn reason(&mut self, value: u32) -> &'static str {
        let reasons = &self.reasons;
        self.reason_names
            .entry(value)
            .or_insert_with(|| intern(&reasons.name(value)))
    }

    pub fn location(&mut self, addr: u64) -> Location {
        if let Some(l) = self.locations.get(&addr) {
            return l.clone();
        }
        let loc = match self.kallsyms.resolve(addr) {
            Some(s) => Location {
                symbol: s.name.to_string(),
                offset: s.offset,
                module: s.module.map(str::to_string),
                address: format!("{addr:#x}"),
            },
            None => Location {
                symbol: format!("{addr:#x}"),
                offset: 0,
                module: None,
                address: format!("{addr:#x}"),
            },
        };
        self.locations.insert(addr, loc.clone());
        loc
    }

    pub fn netns_name(&mut self, ino: u32) -> Option<String> {
        if ino == 0 {
            return None;
        }
        // Rescans when a namespace created after start shows up.
        self.netns.name_or_refresh(ino).map(str::to_string)
    }

    /// The container running in netns `ino`, if any.
    pub fn container(&mut self, ino: u32) -> Option<Arc<Container>> {
        self.containers.lookup(ino)
    }

    /// A bpf_ktime_get_ns() value as wall-clock ns since the Unix epoch.
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (i128::from(mono_ns) + self.mono_to_wall).max(0) as u64
    }

    pub fn drop_event(&mut self, raw: &RawDrop) -> DropEvent {
        let kind = WireHdr::from_wire(raw.hdr_kind).hdr_kind(raw.protocol);
        let hw_vlan = (raw.vlan_proto != 0).then_some(raw.vlan_tci & 0x0fff);
        let n = usize::from(raw.hdr_len).min(raw.hdr.len());
        let flow = packet::parse(kind, &raw.hdr[..n], hw_vlan);
        let time_ns = (i128::from(raw.time_ns) + self.mono_to_wall).max(0) as u64;
        DropEvent {
            time_ns,
            site: DropSite {
                reason: self.reason(raw.reason),
                reason_code: raw.reason,
                location: self.location(raw.location),
                netns: raw.netns,
                netns_name: self.netns_name(raw.netns),
                dev: cstr(&raw.ifname),
                ifindex: raw.ifindex,
                container: self.container(raw.netns),
            },
            netns_source: NetnsSource::from_wire(raw.netns_src),
            mark: raw.mark,
            flow,
            len: raw.len,
            task: Task {
                pid: raw.pid,
                comm: cstr(&raw.comm).unwrap_or_default(),
                context: TaskContext::from_wire(raw.ctx_flags),
            },
            skb: format!("{:#x}", raw.skbaddr),
        }
    }

    /// One aggregate row; its `hint` is left empty (`diagnose::hint_for`).
    pub fn group(
        &mut self,
        key: &RawAggKey,
        netns_src: u8,
        dev: Option<String>,
        count: u64,
        bytes: u64,
        rate: f64,
    ) -> DropGroup {
        DropGroup {
            site: DropSite {
                reason: self.reason(key.reason),
                reason_code: key.reason,
                location: self.location(key.location),
                netns: key.netns,
                netns_name: self.netns_name(key.netns),
                dev,
                ifindex: key.ifindex,
                container: self.container(key.netns),
            },
            netns_source: NetnsSource::from_wire(netns_src),
            count,
            bytes,
            rate,
            hint: std::borrow::Cow::Borrowed(""),
        }
    }
}

/// A NUL-terminated C char array as a String (None when empty).
pub fn cstr(raw: &[i8]) -> Option<String> {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    if bytes.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn mono_to_wall_offset() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mono = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    wall - mono
}

/// Sort by rate, then count, so the busiest drop is on top.
pub fn sort_by_rate(groups: &mut [DropGroup]) {
    groups.sort_by(|a, b| {
        b.rate
            .partial_cmp(&a.rate)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.count.cmp(&a.count))
    });
}

/// What text output puts after `netns=...`: ` pod=ns/name container=c`,
/// or nothing when no container runs there (the line is then as it was
/// before netwhy knew containers).
pub fn container_suffix(c: Option<&Container>) -> String {
    c.map(|c| format!(" {}", c.label())).unwrap_or_default()
}

/// `name(inode)` or the bare inode.
pub fn netns_label(ino: u32, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n}({ino})"),
        None if ino == 0 => "?".to_string(),
        None => ino.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cstr_stops_at_nul() {
        let mut a = [0i8; 16];
        for (d, s) in a.iter_mut().zip(b"veth0") {
            *d = *s as i8;
        }
        assert_eq!(cstr(&a).as_deref(), Some("veth0"));
        assert_eq!(cstr(&[0i8; 4]), None);
    }

    fn sample_site() -> DropSite {
        DropSite {
            reason: intern("NO_SOCKET"),
            reason_code: 3,
            location: Location {
                symbol: "__udp4_lib_rcv".into(),
                offset: 0x1a,
                module: None,
                address: "0xffffffff81000000".into(),
            },
            netns: 4026531840,
            netns_name: Some("init".into()),
            dev: Some("lo".into()),
            ifindex: 1,
            container: None,
        }
    }

    pub(crate) fn sample_event() -> DropEvent {
        DropEvent {
            time_ns: 17,
            site: sample_site(),
            netns_source: NetnsSource::Dev,
            mark: 5,
            flow: packet::parse(HdrKind::None, &[], None),
            len: 60,
            task: Task {
                pid: 42,
                comm: "dig".into(),
                context: TaskContext::Irq,
            },
            skb: "0x2".into(),
        }
    }

    const SITE_JSON: &str = r#""reason":"NO_SOCKET","reason_code":3,"location":{"symbol":"__udp4_lib_rcv","offset":26,"address":"0xffffffff81000000"},"netns":4026531840,"netns_name":"init","dev":"lo","ifindex":1"#;

    /// The `drop` object as docs/json.md and every consumer have it: the
    /// envelope, then the site flattened in place, field for field.
    #[test]
    fn drop_json_is_unchanged() {
        let e = sample_event();
        let flow = serde_json::to_string(&e.flow).unwrap();
        let want = format!(
            r#"{{"type":"drop","v":1,"time_ns":17,{SITE_JSON},"netns_source":"dev","mark":5,"flow":{flow},"len":60,"task":{{"pid":42,"comm":"dig","context":"irq"}},"skb":"0x2"}}"#
        );
        assert_eq!(serde_json::to_string(&e).unwrap(), want);
    }

    #[test]
    fn group_json_is_unchanged() {
        let g = DropGroup {
            site: sample_site(),
            netns_source: NetnsSource::RxSk,
            count: 9,
            bytes: 540,
            rate: 1.5,
            hint: "h".into(),
        };
        let want = format!(
            r#"{{"type":"group","v":1,{SITE_JSON},"netns_source":"rx_sk","count":9,"bytes":540,"rate":1.5,"hint":"h"}}"#
        );
        assert_eq!(serde_json::to_string(&g).unwrap(), want);
    }

    /// With a container, the site gains one nested object after `ifindex`
    /// and nothing else moves.
    #[test]
    fn drop_json_carries_the_container() {
        let mut e = sample_event();
        e.site.container = Some(Arc::new(Container {
            runtime: crate::container::Runtime::Containerd,
            id: "ab12".into(),
            name: Some("nginx".into()),
            pod: Some("web-7d4b9".into()),
            namespace: Some("shop".into()),
        }));
        let j = serde_json::to_string(&e).unwrap();
        let want = format!(
            r#"{SITE_JSON},"container":{{"runtime":"containerd","id":"ab12","name":"nginx","pod":"web-7d4b9","namespace":"shop"}},"netns_source":"dev""#
        );
        assert!(j.contains(&want), "{j}");
    }

    #[test]
    fn task_context_names_round_trip() {
        for (c, name) in [
            (TaskContext::Process, "process"),
            (TaskContext::Irq, "irq"),
            (TaskContext::Unknown, "unknown"),
        ] {
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<TaskContext>(&j).unwrap(), c);
        }
        assert_eq!(TaskContext::from_wire(0), TaskContext::Unknown);
        assert_eq!(TaskContext::from_wire(CTX_TASK), TaskContext::Unknown);
        assert_eq!(TaskContext::from_wire(CTX_KNOWN), TaskContext::Irq);
        assert_eq!(
            TaskContext::from_wire(CTX_KNOWN | CTX_TASK),
            TaskContext::Process
        );
    }

    #[test]
    fn netns_source_names_round_trip() {
        let all = [
            (0, NetnsSource::Unknown, "unknown"),
            (1, NetnsSource::RxSk, "rx_sk"),
            (2, NetnsSource::SkbSk, "skb_sk"),
            (3, NetnsSource::Dev, "dev"),
            (4, NetnsSource::DstDev, "dst_dev"),
            (5, NetnsSource::Task, "task"),
            (6, NetnsSource::Unknown, "unknown"),
        ];
        for (wire, src, name) in all {
            assert_eq!(NetnsSource::from_wire(wire), src);
            let j = serde_json::to_string(&src).unwrap();
            assert_eq!(j, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<NetnsSource>(&j).unwrap(), src);
        }
    }

    #[test]
    fn wire_header_kinds() {
        assert_eq!(WireHdr::from_wire(1).hdr_kind(0), HdrKind::Eth);
        assert_eq!(
            WireHdr::from_wire(2).hdr_kind(0x86dd),
            HdrKind::L3 { ethertype: 0x86dd }
        );
        assert_eq!(WireHdr::from_wire(0).hdr_kind(0x800), HdrKind::None);
        assert_eq!(WireHdr::from_wire(9), WireHdr::None);
    }

    /// A reason name is stored once, whoever asks for it.
    #[test]
    fn reason_names_are_interned() {
        let a = intern(&String::from("NW_TEST_INTERN"));
        let b = intern("NW_TEST_INTERN");
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "NW_TEST_INTERN");
    }

    #[test]
    fn group_key_of_a_kernel_row() {
        let raw = RawAggKey {
            location: 0xffff_ffff_8100_0000,
            reason: 3,
            netns: 4026531840,
            ifindex: 1,
            ..Default::default()
        };
        let k = GroupKey::from(&raw);
        assert_eq!(
            (k.location, k.reason, k.netns, k.ifindex),
            (0xffff_ffff_8100_0000, 3, 4026531840, 1)
        );
        let other = RawAggKey { ifindex: 2, ..raw };
        assert_ne!(GroupKey::from(&other), k);
    }

    /// `drops --events -o json` serialization cost: 1M events through the
    /// envelope, against the same event as it was serialized before
    /// (type and v as fields, site flattened). Run by hand:
    /// `cargo test --release --lib event::tests::bench_json -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_json() {
        #[derive(Serialize)]
        struct Before<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            v: u32,
            time_ns: u64,
            #[serde(flatten)]
            site: &'a DropSite,
            netns_source: NetnsSource,
            mark: u32,
            flow: &'a Flow,
            len: u32,
            task: &'a Task,
            skb: &'a str,
        }
        let e = sample_event();
        let before = Before {
            kind: "drop",
            v: JSON_VERSION,
            time_ns: e.time_ns,
            site: &e.site,
            netns_source: e.netns_source,
            mark: e.mark,
            flow: &e.flow,
            len: e.len,
            task: &e.task,
            skb: &e.skb,
        };
        assert_eq!(
            serde_json::to_string(&before).unwrap(),
            serde_json::to_string(&e).unwrap()
        );
        let mut buf = Vec::with_capacity(1 << 20);
        let mut time = |f: &mut dyn FnMut(&mut Vec<u8>)| {
            let t = std::time::Instant::now();
            for _ in 0..1_000_000 {
                buf.clear();
                f(&mut buf);
            }
            t.elapsed()
        };
        // Interleaved, best of 7: the machine is shared.
        let (mut old, mut new) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..7 {
            old = old.min(time(&mut |b| serde_json::to_writer(b, &before).unwrap()));
            new = new.min(time(&mut |b| serde_json::to_writer(b, &e).unwrap()));
        }
        println!("1M drop events: before {old:?}  envelope {new:?}");
    }

    #[test]
    fn location_display() {
        let l = Location {
            symbol: "nft_do_chain".into(),
            offset: 0x3e8,
            module: Some("nf_tables".into()),
            address: "0x1".into(),
        };
        assert_eq!(l.to_string(), "nft_do_chain+0x3e8 [nf_tables]");
    }
}
