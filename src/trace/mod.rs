//! Per-packet timelines: steps from a [`PathBackend`] grouped by packet id,
//! named (hook, netns, device, flow), and closed by a fate: delivered to a
//! process, transmitted on a device, or dropped with reason and location.
//!
//! Pure logic over decoded steps, so the grouping, the fate rules and the
//! tuple-change detection are unit-tested without a kernel.
pub mod flows;
pub mod render;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::container::Container;
use crate::event::{cstr, DropEvent, DropSite, Enricher, Location, NetnsSource, Task, TaskContext};
use crate::packet::{self, Flow, HdrKind};
use crate::probe::path::{RawStep, Role, STEP_FATE, STEP_FIRST};
use crate::state::sockets::{owners, Owner};

/// One hook a packet passed.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct Step {
    pub packet: u64,
    /// Wall-clock ns since the Unix epoch.
    pub time_ns: u64,
    /// ns since the packet's first step.
    pub delta_ns: u64,
    pub hook: String,
    #[serde(skip)]
    pub role: Option<Role>,
    pub netns: u32,
    pub netns_name: Option<String>,
    /// The container in `netns`; only in the JSON when there is one.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::event::serialize_container"
    )]
    pub container: Option<Arc<Container>>,
    pub dev: Option<String>,
    pub ifindex: u32,
    pub len: u32,
    pub mark: u32,
    pub flow: Flow,
    /// The 5-tuple differs from the previous step's (NAT, encapsulation).
    pub tuple_changed: bool,
    pub skb: String,
    /// The kernel's reason name, at a free that was a drop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The reason's raw value on this kernel (0 when not a drop): not in
    /// the step's JSON, carried to the drop event `explain` sees.
    #[serde(skip)]
    pub reason_code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// icmp_send: the ICMP error the kernel answered with, "type/code".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<String>,
    /// Socket-layer hooks: the socket involved (sk_data_ready: the one the
    /// packet was queued on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<SockRef>,
    /// Current task (meaningful at socket hooks; may be any task in irq).
    pub pid: u32,
    pub comm: String,
    /// This packet is a copy (skb_clone, skb_copy...) of that packet: on
    /// every step of a copy (function backends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<u64>,
    /// At a cloning function: the id of the copy made here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone: Option<u64>,
    /// Wire flags (NW_STEP_*): the copy's first step is where it was made.
    #[serde(skip)]
    pub flags: u8,
    /// Captured bytes from the network header (for --pcapng).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

crate::json_record!(Step, "step");

impl Step {
    /// Where and why a drop step dropped: None unless the step is a free
    /// that was a drop.
    pub fn site(&self) -> Option<DropSite> {
        if self.role != Some(Role::Free) {
            return None;
        }
        Some(DropSite {
            reason: self.reason?,
            reason_code: self.reason_code,
            location: self.location.clone()?,
            netns: self.netns,
            netns_name: self.netns_name.clone(),
            dev: self.dev.clone(),
            ifindex: self.ifindex,
            container: self.container.clone(),
        })
    }

    /// A drop step as the drop event `explain` diagnoses.
    pub fn as_drop(&self) -> Option<DropEvent> {
        Some(DropEvent {
            time_ns: self.time_ns,
            site: self.site()?,
            // The path probe reads the device's namespace, else the socket's.
            netns_source: if self.dev.is_some() {
                NetnsSource::Dev
            } else {
                NetnsSource::SkbSk
            },
            mark: self.mark,
            flow: self.flow.clone(),
            len: self.len,
            task: Task {
                pid: self.pid,
                comm: self.comm.clone(),
                context: TaskContext::Unknown,
            },
            skb: self.skb.clone(),
        })
    }
}

/// The socket a packet was queued on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SockRef {
    /// IP protocol name ("udp", "tcp") or number.
    pub proto: String,
    pub port: u16,
    pub inode: u64,
    /// The process holding it (from /proc/*/fd), when still open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// Socket inode to owner, looked up once per socket.
#[derive(Default)]
pub struct Owners(HashMap<u64, Option<Owner>>);

impl Owners {
    /// Names the process behind `step.socket`, if any.
    pub fn fill(&mut self, step: &mut Step) {
        let Some(s) = step.socket.as_mut() else {
            return;
        };
        let Ok(ino) = u32::try_from(s.inode) else {
            return;
        };
        s.owner = self
            .0
            .entry(s.inode)
            .or_insert_with(|| owners(&[ino]).remove(&ino))
            .clone();
    }
}

/// How a packet's path ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FateKind {
    /// Queued on a socket, or read by a process.
    Delivered,
    /// Handed to a device's driver (or consumed after TX completion).
    Transmitted,
    /// Freed with a drop reason.
    Dropped,
    /// Freed without a drop reason, and not delivered or sent.
    Consumed,
    /// Nothing ended the packet before the timeout.
    Unknown,
}

impl FateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FateKind::Delivered => "delivered",
            FateKind::Transmitted => "transmitted",
            FateKind::Dropped => "dropped",
            FateKind::Consumed => "consumed",
            FateKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for FateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a packet's path ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(remote = "Self")]
pub struct Fate {
    pub packet: u64,
    pub fate: FateKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// One line from the knowledge base (drops only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'static str>,
    pub netns: u32,
    pub netns_name: Option<String>,
    /// The container in `netns`; only in the JSON when there is one.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::event::serialize_container"
    )]
    pub container: Option<Arc<Container>>,
    pub dev: Option<String>,
    /// The socket it was queued on (delivered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<SockRef>,
    /// The process that read it, or holds the socket (delivered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    pub steps: usize,
    /// From the first step to the last, ns.
    pub duration_ns: u64,
    /// The hook of the last step.
    pub last_hook: String,
    /// This packet is a copy of that packet (function backends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<u64>,
    /// The function that made the copy (skb_clone...), when its step came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_via: Option<String>,
}

crate::json_record!(Fate, "fate");

/// One traced packet.
#[derive(Debug, Clone)]
pub struct Packet {
    pub id: u64,
    pub steps: Vec<Step>,
    pub fate: Option<Fate>,
    last_event: Instant,
}

/// The 5-tuple part of a flow: what NAT rewrites.
pub type Tuple = (
    Option<IpAddr>,
    Option<IpAddr>,
    Option<u16>,
    Option<u16>,
    Option<String>,
);

pub fn tuple(f: &Flow) -> Tuple {
    (f.src, f.dst, f.sport, f.dport, f.proto.clone())
}

/// Whether a free with this reason is a drop. `consumed` is SKB_CONSUMED,
/// u32::MAX on kernels without it (6.1), where every kfree_skb is a drop
/// (reasons from NOT_SPECIFIED, 1) and consume_skb (reason 0) is not.
pub fn is_drop(reason: u32, consumed: u32) -> bool {
    if consumed == u32::MAX {
        reason != 0
    } else {
        reason > consumed
    }
}

/// Turns one wire step into a [`Step`].
pub fn decode(raw: &RawStep, hook: (&str, Role), en: &mut Enricher, consumed: u32) -> Step {
    let n = usize::from(raw.hdr_len).min(raw.hdr.len());
    let bytes = raw.hdr[..n].to_vec();
    let flow = packet::parse(
        HdrKind::L3 {
            ethertype: raw.protocol,
        },
        &bytes,
        None,
    );
    let free = hook.1 == Role::Free;
    let dropped = free && is_drop(raw.reason, consumed);
    Step {
        packet: raw.packet,
        time_ns: en.wall_ns(raw.time_ns),
        delta_ns: 0,
        hook: hook.0.to_string(),
        role: Some(hook.1),
        netns: raw.netns,
        netns_name: en.netns_name(raw.netns),
        container: en.container(raw.netns),
        dev: cstr(&raw.ifname),
        ifindex: raw.ifindex,
        len: raw.len,
        mark: raw.mark,
        flow,
        tuple_changed: false,
        skb: format!("{:#x}", raw.skbaddr),
        reason: dropped.then(|| en.reason(raw.reason)),
        reason_code: if dropped { raw.reason } else { 0 },
        location: free.then(|| en.location(raw.location)),
        icmp: (hook.1 == Role::IcmpError).then(|| format!("{}/{}", raw.aux >> 8, raw.aux & 0xff)),
        socket: (matches!(hook.1, Role::Queued | Role::Socket | Role::SocketRx) && raw.aux != 0)
            .then(|| SockRef {
                proto: match raw.aux >> 16 {
                    6 => "tcp".to_string(),
                    17 => "udp".to_string(),
                    n => n.to_string(),
                },
                port: raw.aux as u16,
                inode: raw.sock_ino,
                owner: None,
            }),
        pid: raw.pid,
        comm: cstr(&raw.comm).unwrap_or_default(),
        clone_of: (raw.clone_of != 0).then_some(raw.clone_of),
        clone: (raw.clone != 0).then_some(raw.clone),
        flags: raw.flags,
        bytes,
    }
}

/// Steps in time order with deltas and tuple changes filled in. A step
/// whose headers could not be read (hdr empty) never counts as a change.
pub fn finish_steps(steps: &mut [Step]) {
    steps.sort_by_key(|s| s.time_ns);
    let t0 = steps.first().map_or(0, |s| s.time_ns);
    let mut last = None;
    for s in steps.iter_mut() {
        s.delta_ns = s.time_ns.saturating_sub(t0);
        if s.flow.src.is_none() {
            continue;
        }
        let t = tuple(&s.flow);
        s.tuple_changed = last.as_ref().is_some_and(|l| *l != t);
        last = Some(t);
    }
}

/// The fate of a packet from its steps (in time order).
pub fn classify(id: u64, all: &[Step]) -> Fate {
    // Function steps show the way; the fate comes from the tracepoints.
    let core: Vec<Step> = all
        .iter()
        .filter(|s| s.role != Some(Role::Function))
        .cloned()
        .collect();
    let steps = &core[..];
    let last = steps.last();
    let delivered = steps.iter().rev().find(|s| s.role == Some(Role::Delivered));
    // Where it ended: the last step that knew its namespace (socket-layer
    // hooks may run after skb->dev was cleared).
    let place = steps.iter().rev().find(|s| s.netns != 0).or(last);
    let mut f = Fate {
        packet: id,
        fate: FateKind::Unknown,
        reason: None,
        location: None,
        hint: None,
        netns: place.map_or(0, |s| s.netns),
        netns_name: place.and_then(|s| s.netns_name.clone()),
        container: place.and_then(|s| s.container.clone()),
        dev: place.and_then(|s| s.dev.clone()),
        socket: None,
        pid: None,
        comm: None,
        steps: all.len(),
        duration_ns: all.last().map_or(0, |s| s.delta_ns),
        // Where it was last seen, a function if one came last.
        last_hook: all.last().map(|s| s.hook.clone()).unwrap_or_default(),
        clone_of: all.iter().find_map(|s| s.clone_of),
        // The copy's first step is at the function that made it.
        clone_via: all
            .iter()
            .find(|s| s.clone_of.is_some() && s.flags & STEP_FIRST != 0)
            .map(|s| s.hook.clone()),
    };
    let Some(last) = last else { return f };
    if let Some(d) = delivered {
        f.pid = Some(d.pid);
        f.comm = Some(d.comm.clone());
    }
    match last.role {
        Some(Role::Free) if last.reason.is_some() => {
            f.fate = FateKind::Dropped;
            f.reason = last.reason;
            f.location = last.location.clone();
            let sym = f.location.as_ref().map_or("", |l| l.symbol.as_str());
            f.hint = Some(crate::diagnose::hint(f.reason.unwrap_or(""), sym));
        }
        Some(Role::Free) => {
            f.location = last.location.clone();
            let before = steps.iter().rev().nth(1).and_then(|s| s.role);
            f.fate = if delivered.is_some() {
                FateKind::Delivered
            } else if before == Some(Role::Transmitted) {
                // Consumed after the driver sent it: TX completion.
                f.dev = steps.iter().rev().nth(1).and_then(|s| s.dev.clone());
                FateKind::Transmitted
            } else {
                FateKind::Consumed
            };
        }
        Some(Role::Queued | Role::SocketRx) => {
            f.fate = FateKind::Delivered;
            f.socket = last.socket.clone();
            if let Some(o) = last.socket.as_ref().and_then(|s| s.owner.as_ref()) {
                f.pid = Some(o.pid);
                f.comm = Some(o.comm.clone());
            }
        }
        Some(Role::Transmitted) => f.fate = FateKind::Transmitted,
        Some(Role::Delivered) => f.fate = FateKind::Delivered,
        _ => {}
    }
    f
}

/// Packets being followed, keyed by packet id.
#[derive(Default)]
pub struct Timeline {
    open: HashMap<u64, Packet>,
}

impl Timeline {
    pub fn push(&mut self, step: Step, flags: u8, now: Instant) {
        let fate = flags & STEP_FATE != 0;
        let p = self.open.entry(step.packet).or_insert_with(|| Packet {
            id: step.packet,
            steps: Vec::new(),
            fate: None,
            last_event: now,
        });
        p.steps.push(step);
        p.last_event = now;
        if fate {
            p.fate = Some(classify(p.id, &p.steps));
        }
    }

    /// Packets ready to print: fate known (after `settle`, so steps from
    /// other CPUs still in flight join first) or idle for `timeout`.
    /// Returned in packet-id order, each with its steps finished.
    pub fn ready(&mut self, now: Instant, settle: Duration, timeout: Duration) -> Vec<Packet> {
        let ids: Vec<u64> = self
            .open
            .values()
            .filter(|p| {
                let idle = now.saturating_duration_since(p.last_event);
                (p.fate.is_some() && idle >= settle) || idle >= timeout
            })
            .map(|p| p.id)
            .collect();
        self.take(ids)
    }

    /// Everything still open (at exit).
    pub fn drain(&mut self) -> Vec<Packet> {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        self.take(ids)
    }

    fn take(&mut self, mut ids: Vec<u64>) -> Vec<Packet> {
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.open.remove(&id))
            .map(|mut p| {
                finish_steps(&mut p.steps);
                p.fate = Some(classify(p.id, &p.steps));
                p
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Open packets that are copies of another (clone_of on a step).
    pub fn open_copies(&self) -> usize {
        let copy = |p: &&Packet| p.steps.iter().any(|s| s.clone_of.is_some());
        self.open.values().filter(copy).count()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// `--count N`: N original packets; copies of packets (followed with a
/// function backend) are printed along and do not count, so one flooded
/// datagram with `--count 1` still shows its clones.
#[derive(Debug)]
pub struct Limit {
    limit: u64,
    originals: u64,
    /// When the N-th original was printed.
    reached: Option<Instant>,
}

impl Limit {
    pub fn new(limit: u64) -> Self {
        Limit {
            limit,
            originals: 0,
            reached: None,
        }
    }

    /// Whether to print `p`: every copy, originals up to the limit.
    pub fn admit(&mut self, p: &Packet, now: Instant) -> bool {
        if p.fate.as_ref().is_some_and(|f| f.clone_of.is_some()) {
            return true;
        }
        if self.originals >= self.limit {
            return false;
        }
        self.originals += 1;
        if self.originals == self.limit {
            self.reached = Some(now);
        }
        true
    }

    /// Done: the limit was reached and no copy is still open, or `grace`
    /// passed since (copies still coming in must not keep trace running).
    pub fn done(&self, tl: &Timeline, now: Instant, grace: Duration) -> bool {
        self.reached
            .is_some_and(|t| tl.open_copies() == 0 || now.saturating_duration_since(t) >= grace)
    }
}

#[cfg(test)]
mod tests;
