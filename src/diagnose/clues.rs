//! What live state said about one drop group: evidence lines, the exact
//! things involved (a port, a sysctl, a rule handle) for machines, concrete
//! fix commands, and the evidence-driven diagnosis id they point to.
//!
//! Collectors (`evidence` right at the first drop of a group, `rules` at the
//! end of the capture window) fill [`Clues`]; [`super::finding::Finding`]
//! absorbs them, switching its texts to the specific knowledge-base entry
//! when a collector chose one.
use serde::Serialize;

use super::kb::Entry;

/// A thing the diagnosis is about, as stable fields tests and tools key on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// A local port nothing (or the wrong thing) accepts packets on.
    Port { proto: String, port: u16 },
    /// A socket involved (the receiver, or the one on the port).
    Socket {
        proto: String,
        local: String,
        remote: String,
        rcvbuf: Option<u32>,
    },
    /// A sysctl and its value in the drop's namespace.
    Sysctl { name: String, value: String },
    /// The nftables rule (or chain policy, `handle` None) that dropped.
    NftRule {
        family: String,
        table: String,
        chain: String,
        handle: Option<u64>,
        text: String,
    },
    /// The legacy iptables rule whose counter moved.
    IptablesRule {
        table: String,
        chain: String,
        index: u32,
        target: String,
    },
    /// A conntrack entry bearing on the flow (netns inode where it lives).
    Conntrack {
        netns: u32,
        orig: String,
        reply: String,
    },
    /// A neighbour entry and its NUD state.
    Neighbour {
        addr: String,
        dev: String,
        state: String,
    },
    /// A BPF program on the device hook where the packet died: `hook` is
    /// ingress, egress or xdp; `attach` cls_bpf, tcx or xdp; `priority`
    /// the cls_bpf filter's.
    BpfProg {
        id: u32,
        name: String,
        tag: String,
        dev: String,
        hook: String,
        attach: String,
        priority: Option<u16>,
    },
    /// A kernel loss counter that moved while no drop event showed the
    /// loss (`TcpExt:ListenOverflows`), and by how much.
    Counter { name: String, change: u64 },
    /// A TCP segment whose flags the receiving state refused: the flags as
    /// captured ("FS"), its endpoints, and the socket state it hit
    /// ("LISTEN", "ESTAB"..., or "none").
    TcpSegment {
        flags: String,
        src: String,
        dst: String,
        socket: String,
    },
    /// The interface that put the dropped frame on the wire, found by the
    /// frame's source MAC (netns name, device).
    Sender {
        netns: String,
        dev: String,
        mac: String,
    },
    /// A neighbour entry (in the sender's namespace) whose link-layer
    /// address is not the one the address lives at now: `want` is the
    /// MAC of the interface that owns `addr`.
    WrongNeighbour {
        netns: String,
        dev: String,
        addr: String,
        lladdr: String,
        state: String,
        want: String,
    },
    /// A bridge port that does not forward yet (or at all): its STP state
    /// and what it waits for, in milliseconds.
    BridgePort {
        bridge: String,
        port: String,
        state: String,
        forward_delay_ms: u64,
        timer_ms: Option<u64>,
    },
    /// A destination address that can never be routed on the wire.
    Martian { addr: String, class: String },
}

impl Subject {
    /// One short line naming the subject: a metric label value
    /// (`netwhy export`'s cause info), not the full evidence.
    pub fn short(&self) -> String {
        match self {
            Subject::Port { proto, port } => format!("{proto}/{port}"),
            Subject::Socket { proto, local, .. } => format!("{proto} socket {local}"),
            Subject::Sysctl { name, value } => format!("{name}={value}"),
            Subject::NftRule {
                family,
                table,
                chain,
                handle,
                ..
            } => match handle {
                Some(h) => format!("nft {family} {table} {chain} handle {h}"),
                None => format!("nft {family} {table} {chain} policy"),
            },
            Subject::IptablesRule {
                table,
                chain,
                index,
                target,
            } => format!("iptables -t {table} {chain} #{index} {target}"),
            Subject::Conntrack { orig, .. } => format!("conntrack {orig}"),
            Subject::Neighbour { addr, dev, state } => {
                format!("neighbour {addr} dev {dev} {state}")
            }
            Subject::BpfProg {
                name, dev, hook, ..
            } => format!("bpf {name} on {dev} {hook}"),
            Subject::Counter { name, change } => format!("{name} +{change}"),
            Subject::TcpSegment {
                flags, dst, socket, ..
            } => format!("tcp [{flags}] to {dst} ({socket})"),
            Subject::Sender { netns, dev, .. } => format!("sender {netns} {dev}"),
            Subject::WrongNeighbour {
                netns,
                addr,
                lladdr,
                ..
            } => format!("neighbour {addr} lladdr {lladdr} in {netns}"),
            Subject::BridgePort {
                bridge,
                port,
                state,
                ..
            } => format!("bridge {bridge} port {port} {state}"),
            Subject::Martian { addr, class } => format!("martian {addr} ({class})"),
        }
    }
}

/// Evidence for one drop group.
#[derive(Debug, Clone, Default)]
pub struct Clues {
    pub lines: Vec<String>,
    pub subjects: Vec<Subject>,
    /// Concrete commands, shown before the knowledge base's generic fixes.
    pub fixes: Vec<String>,
    /// An evidence-driven diagnosis (`kb::specific`, or a refinement's
    /// whole entry), if one fits.
    pub cause: Option<Entry>,
}

impl Clues {
    pub fn line(&mut self, l: impl Into<String>) {
        self.lines.push(l.into());
    }

    pub fn fix(&mut self, f: impl Into<String>) {
        self.fixes.push(f.into());
    }

    /// Adds `other`; its cause wins only when this has none.
    pub fn merge(&mut self, other: Clues) {
        self.lines.extend(other.lines);
        self.subjects.extend(other.subjects);
        self.fixes.extend(other.fixes);
        self.cause = self.cause.or(other.cause);
    }
}

/// The prefix that runs a command in the drop's namespace: `ip netns exec
/// NAME ` for a named netns, nothing for the initial one.
pub fn in_ns(netns_name: Option<&str>) -> String {
    match netns_name {
        None | Some("init") => String::new(),
        Some(n) if n.contains('/') => format!("nsenter --net=/proc/{}/ns/net ", pid_of(n)),
        Some(n) => format!("ip netns exec {n} "),
    }
}

/// `1234/comm` (how netwhy names an unnamed netns) → `1234`.
fn pid_of(label: &str) -> &str {
    label.split('/').next().unwrap_or(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefixes() {
        assert_eq!(in_ns(None), "");
        assert_eq!(in_ns(Some("init")), "");
        assert_eq!(in_ns(Some("blue")), "ip netns exec blue ");
        assert_eq!(
            in_ns(Some("4242/dockerd")),
            "nsenter --net=/proc/4242/ns/net "
        );
    }

    #[test]
    fn merge_keeps_the_first_cause() {
        use crate::diagnose::kb::specific::{NFT_REJECT as A, NFT_RULE_DROP as B};
        let mut a = Clues {
            cause: Some(A),
            ..Clues::default()
        };
        a.merge(Clues {
            cause: Some(B),
            lines: vec!["x".into()],
            ..Clues::default()
        });
        assert_eq!(a.cause.map(|e| e.id), Some(A.id));
        assert_eq!(a.lines, ["x"]);
        let mut c = Clues::default();
        c.merge(Clues {
            cause: Some(B),
            ..Clues::default()
        });
        assert_eq!(c.cause.map(|e| e.id), Some(B.id));
    }
}
