//! `netwhy run`'s report: the traced packets of one command grouped by its
//! local endpoint (one socket), each packet with its direction, the remote
//! end it went to or came from, and its fate.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Fate, FateKind, Packet};
use crate::diagnose::finding::Finding;
use crate::diagnose::kb::{self, specific};
use crate::diagnose::{lookup, Explanation};
use crate::probe::path::Role;

/// One packet in a flow report.
#[derive(Debug, Clone, Serialize)]
pub struct FlowPacket {
    pub packet: u64,
    pub direction: Direction,
    /// The other end as first seen (before any NAT).
    pub remote: String,
    pub fate: Fate,
    /// What the flow adds to the fate: an incoming packet from a remote end
    /// the command never sent to is a reply NAT did not reverse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Drops: the knowledge base's diagnosis (what `netwhy explain` says
    /// about this reason at this function: meaning, causes, checks, fixes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// Drops: the fixes of the `explain` finding for this drop, as its
    /// live evidence ordered them (the specific diagnosis' first). Empty
    /// when no finding matched; the explanation's generic fixes apply then.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fix: Vec<String>,
}

/// Which way a packet of the command's flow went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent by the command.
    Out,
    /// Addressed to it.
    In,
}

/// Every packet of one local endpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct FlowReport {
    pub proto: String,
    pub local: String,
    pub packets: Vec<FlowPacket>,
}

crate::json_record!(FlowReport, "flow");

fn endpoint(addr: Option<std::net::IpAddr>, port: Option<u16>) -> String {
    match (addr, port) {
        (Some(std::net::IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        _ => "?".into(),
    }
}

/// Groups finished packets by the command's local endpoint. A packet first
/// seen on a transmit path is outgoing; anything else came in.
pub fn group(packets: &[Packet]) -> Vec<FlowReport> {
    type Sender = Option<(u32, String)>;
    let mut m: BTreeMap<(String, String), (Sender, Vec<FlowPacket>)> = BTreeMap::new();
    for p in packets {
        let Some(first) = p.steps.first() else {
            continue;
        };
        let f = &first.flow;
        let out = first.role == Some(Role::Transmit);
        let (local, remote) = if out {
            (endpoint(f.src, f.sport), endpoint(f.dst, f.dport))
        } else {
            (endpoint(f.dst, f.dport), endpoint(f.src, f.sport))
        };
        let proto = f.proto.clone().unwrap_or_else(|| f.l3.to_string());
        let fate = p
            .fate
            .clone()
            .unwrap_or_else(|| super::classify(p.id, &p.steps));
        let e = m.entry((proto, local)).or_default();
        // The task current when an outgoing packet was first queued is the
        // one sending on this socket: it names the receiver of replies whose
        // socket was closed before /proc could be read.
        if out && e.0.is_none() && first.pid != 0 {
            e.0 = Some((first.pid, first.comm.clone()));
        }
        e.1.push(FlowPacket {
            packet: p.id,
            direction: if out { Direction::Out } else { Direction::In },
            explanation: (fate.fate == FateKind::Dropped).then(|| {
                let func = fate.location.as_ref().map_or("", |l| l.symbol.as_str());
                lookup(fate.reason.unwrap_or(""), func)
            }),
            remote,
            fate,
            note: None,
            fix: Vec::new(),
        });
    }
    m.into_iter()
        .map(|((proto, local), (sender, mut packets))| {
            let sent_to: Vec<String> = packets
                .iter()
                .filter(|p| p.direction == Direction::Out)
                .map(|p| p.remote.clone())
                .collect();
            for p in &mut packets {
                if p.direction == Direction::In
                    && !sent_to.is_empty()
                    && !sent_to.contains(&p.remote)
                {
                    p.note = Some(format!(
                        "came from {}, but this socket sent to {}: an address translation \
                         on the way was not reversed for the reply (conntrack/NAT)",
                        p.remote,
                        sent_to.join(", ")
                    ));
                    if let Some(x) = p.explanation.as_mut() {
                        use_entry(x, &specific::NAT_TUPLE_MISMATCH);
                    }
                }
                let f = &mut p.fate;
                if p.direction == Direction::In && f.fate == FateKind::Delivered && f.pid.is_none()
                {
                    if let Some((pid, comm)) = &sender {
                        f.pid = Some(*pid);
                        f.comm = Some(comm.clone());
                    }
                }
            }
            FlowReport {
                proto,
                local,
                packets,
            }
        })
        .collect()
}

/// Text: one block per flow, one line per packet, the hint under drops.
pub fn render(flows: &[FlowReport]) -> String {
    let mut s = String::new();
    if flows.is_empty() {
        s.push_str("no packets of the command were seen\n");
    }
    for fl in flows {
        let dropped = fl
            .packets
            .iter()
            .filter(|p| p.fate.fate == FateKind::Dropped)
            .count();
        let _ = writeln!(
            s,
            "flow {} {}: {} packets, {} dropped",
            fl.proto,
            fl.local,
            fl.packets.len(),
            dropped
        );
        for p in &fl.packets {
            let arrow = if p.direction == Direction::Out {
                "->"
            } else {
                "<-"
            };
            // The flow's diagnosis (maybe refined by the flow) gives the why.
            let mut fate = p.fate.clone();
            if let Some(x) = &p.explanation {
                fate.hint = Some(x.hint);
            }
            let line = super::render::fate_line(&fate);
            let line = line.strip_prefix("fate: ").unwrap_or(&line);
            let _ = writeln!(s, "  {arrow} {:<22} packet {}: {line}", p.remote, p.packet);
            if let Some(n) = &p.note {
                let _ = writeln!(s, "        note: {n}");
            }
            if let Some(fix) = p.first_fix() {
                let _ = writeln!(s, "        fix: {fix}");
            }
        }
    }
    s
}

impl FlowPacket {
    /// The fix to show first: the evidence's (the finding's) before the
    /// knowledge base's generic one for the reason.
    pub fn first_fix(&self) -> Option<&str> {
        self.fix.first().map(String::as_str).or_else(|| {
            self.explanation
                .as_ref()
                .and_then(|x| x.fixes.first().copied())
        })
    }
}

/// Gives each dropped packet the fixes of the `explain` finding for its
/// drop (same namespace, reason and dropping function): the finding's
/// fixes follow the live evidence (a conntrack entry that is gone puts the
/// conntrack fix first), where the flow's explanation only knows the
/// reason. When the finding refined the diagnosis, the packet's
/// explanation follows it too.
pub fn follow_findings(flows: &mut [FlowReport], findings: &[Finding]) {
    for p in flows.iter_mut().flat_map(|f| f.packets.iter_mut()) {
        if p.fate.fate != FateKind::Dropped {
            continue;
        }
        let sym = p.fate.location.as_ref().map(|l| l.symbol.as_str());
        let Some(f) = findings.iter().find(|f| {
            f.netns == p.fate.netns
                && Some(f.reason) == p.fate.reason
                && Some(f.location.symbol.as_str()) == sym
        }) else {
            continue;
        };
        p.fix = f.fix.clone();
        if let (Some(x), Some(e)) = (p.explanation.as_mut(), kb::specific(f.cause.as_str())) {
            if x.id != f.cause {
                use_entry(x, e);
            }
        }
    }
}

/// Replaces the reason's generic diagnosis with an evidence-driven one from
/// the knowledge base (here the evidence is the flow itself).
fn use_entry(x: &mut Explanation, e: &kb::Entry) {
    x.id = e.id;
    x.meaning = e.meaning;
    x.causes = e.causes;
    x.checks = e.checks;
    x.fixes = e.fixes;
    x.verified = e.verified;
    x.hint = e.hint;
    x.refined_by = Some(e.id);
}
