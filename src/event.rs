//! The Event model: what every output renders, decoded once from the wire.
//!
//! Raw wire structs (generated from event.h) are turned into these by an
//! [`Enricher`], which adds names from the running kernel: reason names from
//! BTF, `symbol+offset` from kallsyms, netns names, and a parsed flow.
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::netns::NetnsNames;
use crate::kernel::reasons::DropReasons;
use crate::packet::{self, Flow, HdrKind};
use crate::probe::drop::{RawAggKey, RawDrop};

/// Version of the JSON Lines schema (docs/json.md). Bumped on any
/// incompatible change; new fields may appear without a bump.
pub const JSON_VERSION: u32 = 1;

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
    /// "process", "irq" (soft/hard irq: pid/comm are whoever was interrupted)
    /// or "unknown" (the tp_btf hook cannot tell).
    pub context: &'static str,
}

/// Where the probe read a drop's network namespace from (event.h's
/// `nw_netns_src`), most specific first. `task` is the current task's
/// namespace: right for a drop inside a syscall, a guess in a softirq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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

/// Where and why the kernel dropped: what a drop event and an aggregate
/// row share (flattened into both JSON objects).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DropSite {
    pub reason: String,
    pub reason_code: u32,
    pub location: Location,
    pub netns: u32,
    pub netns_name: Option<String>,
    pub dev: Option<String>,
    pub ifindex: u32,
}

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

/// One dropped packet.
#[derive(Debug, Clone, Serialize)]
pub struct DropEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub v: u32,
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

/// One aggregate row: drops sharing reason, location, netns and device.
#[derive(Debug, Clone, Serialize)]
pub struct DropGroup {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub v: u32,
    #[serde(flatten)]
    pub site: DropSite,
    pub netns_source: NetnsSource,
    pub count: u64,
    pub bytes: u64,
    /// Drops per second over the last interval.
    pub rate: f64,
    /// One-line hint from the knowledge base (`netwhy explain` has the rest);
    /// built from the name for a reason the knowledge base lacks.
    pub hint: std::borrow::Cow<'static, str>,
}

/// Names raw kernel values. Holds the kernel facts loaded once at start.
pub struct Enricher {
    pub reasons: DropReasons,
    pub kallsyms: Kallsyms,
    pub netns: NetnsNames,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, to turn bpf_ktime into wall time.
    mono_to_wall: i128,
    locations: HashMap<u64, Location>,
}

impl Enricher {
    pub fn new(reasons: DropReasons, kallsyms: Kallsyms, netns: NetnsNames) -> Self {
        Enricher {
            reasons,
            kallsyms,
            netns,
            mono_to_wall: mono_to_wall_offset(),
            locations: HashMap::new(),
        }
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

    /// A bpf_ktime_get_ns() value as wall-clock ns since the Unix epoch.
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (i128::from(mono_ns) + self.mono_to_wall).max(0) as u64
    }

    pub fn drop_event(&mut self, raw: &RawDrop) -> DropEvent {
        let kind = match raw.hdr_kind {
            1 => HdrKind::Eth,
            2 => HdrKind::L3 {
                ethertype: raw.protocol,
            },
            _ => HdrKind::None,
        };
        let hw_vlan = (raw.vlan_proto != 0).then_some(raw.vlan_tci & 0x0fff);
        let n = usize::from(raw.hdr_len).min(raw.hdr.len());
        let flow = packet::parse(kind, &raw.hdr[..n], hw_vlan);
        let context = match raw.ctx_flags {
            f if f & 2 == 0 => "unknown",
            f if f & 1 != 0 => "process",
            _ => "irq",
        };
        let time_ns = (i128::from(raw.time_ns) + self.mono_to_wall).max(0) as u64;
        DropEvent {
            kind: "drop",
            v: JSON_VERSION,
            time_ns,
            site: DropSite {
                reason: self.reasons.name(raw.reason),
                reason_code: raw.reason,
                location: self.location(raw.location),
                netns: raw.netns,
                netns_name: self.netns_name(raw.netns),
                dev: cstr(&raw.ifname),
                ifindex: raw.ifindex,
            },
            netns_source: NetnsSource::from_wire(raw.netns_src),
            mark: raw.mark,
            flow,
            len: raw.len,
            task: Task {
                pid: raw.pid,
                comm: cstr(&raw.comm).unwrap_or_default(),
                context,
            },
            skb: format!("{:#x}", raw.skbaddr),
        }
    }

    pub fn group(
        &mut self,
        key: &RawAggKey,
        netns_src: u8,
        dev: Option<String>,
        count: u64,
        bytes: u64,
        rate: f64,
    ) -> DropGroup {
        let location = self.location(key.location);
        let hint = crate::diagnose::hint_text(&self.reasons.name(key.reason), &location.symbol);
        DropGroup {
            kind: "group",
            v: JSON_VERSION,
            site: DropSite {
                reason: self.reasons.name(key.reason),
                reason_code: key.reason,
                location,
                netns: key.netns,
                netns_name: self.netns_name(key.netns),
                dev,
                ifindex: key.ifindex,
            },
            netns_source: NetnsSource::from_wire(netns_src),
            count,
            bytes,
            rate,
            hint,
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
