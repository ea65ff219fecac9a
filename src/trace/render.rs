//! The text timeline: one block per packet, the tuple only where it
//! changes, and the fate on the last line.
use std::fmt::Write as _;

use super::{Fate, FateKind, Packet, Step};
use crate::event::{container_suffix, netns_label};
use crate::probe::path::{Role, STEP_FIRST};

/// A packet as a block of lines (ending with a newline).
pub fn packet_block(p: &Packet) -> String {
    let mut s = String::new();
    let first = p.steps.first();
    let flow = first.map(|f| f.flow.to_string()).unwrap_or_default();
    let _ = writeln!(s, "packet {}{}  {flow}", p.id, origin(p));
    for st in &p.steps {
        let _ = writeln!(s, "  {}", step_line(st));
    }
    if let Some(f) = &p.fate {
        let _ = writeln!(s, "  {}", fate_line(f));
    }
    s
}

/// ` (clone of 7 via skb_clone)` for a copy of another traced packet.
fn origin(p: &Packet) -> String {
    let Some(f) = p.fate.as_ref().filter(|f| f.clone_of.is_some()) else {
        return String::new();
    };
    let of = f.clone_of.unwrap_or_default();
    match &f.clone_via {
        Some(via) => format!(" (clone of {of} via {via})"),
        None => format!(" (clone of {of})"),
    }
}

fn ms(ns: u64) -> String {
    format!("+{:.3}ms", ns as f64 / 1e6)
}

/// `+0.012ms  net_dev_queue  netns=cli(4026..) dev=eth0  len=44  [tuple]`
pub fn step_line(st: &Step) -> String {
    let mut s = format!("{:>10}  {:<24}", ms(st.delta_ns), st.hook);
    let _ = write!(
        s,
        " netns={}{}",
        netns_label(st.netns, st.netns_name.as_deref()),
        container_suffix(st.container.as_deref())
    );
    match &st.dev {
        Some(d) => {
            let _ = write!(s, " dev={d}");
        }
        None => s.push_str(" dev=-"),
    }
    let _ = write!(s, " len={}", st.len);
    if st.mark != 0 {
        let _ = write!(s, " mark={:#x}", st.mark);
    }
    if st.tuple_changed {
        let _ = write!(s, "  now {}", st.flow);
    }
    if let Some(i) = &st.icmp {
        let _ = write!(s, "  icmp error {i} sent back");
    }
    if let (Some(r), Some(l)) = (&st.reason, &st.location) {
        let _ = write!(s, "  {r} at {l}");
    } else if let Some(l) = &st.location {
        let _ = write!(s, "  at {l}");
    }
    if let Some(so) = &st.socket {
        let verb = if st.role == Some(Role::Queued) {
            "queued on"
        } else {
            "at"
        };
        let _ = write!(s, "  {verb} {} socket port {}", so.proto, so.port);
    }
    if let Some(c) = st.clone {
        let _ = write!(s, "  cloned -> packet {c}");
    }
    if let (Some(of), true) = (st.clone_of, st.flags & STEP_FIRST != 0) {
        let _ = write!(s, "  made here from packet {of}");
    }
    if st.hook == "skb_copy_datagram_iovec" {
        let _ = write!(s, "  read by {}[{}]", st.comm, st.pid);
    }
    s
}

/// `fate: dropped NO_SOCKET at __udp4_lib_rcv+0x4bc in srv dev eth0: hint`
pub fn fate_line(f: &Fate) -> String {
    let place = format!(
        "in netns {}{}{}",
        netns_label(f.netns, f.netns_name.as_deref()),
        container_suffix(f.container.as_deref()),
        f.dev
            .as_deref()
            .map(|d| format!(" dev {d}"))
            .unwrap_or_default()
    );
    let after = format!("after {:.3}ms", f.duration_ns as f64 / 1e6);
    match f.fate {
        FateKind::Dropped => {
            let mut s = format!(
                "fate: dropped {} at {} {place} {after}",
                f.reason.unwrap_or("?"),
                f.location
                    .as_ref()
                    .map(|l| l.to_string())
                    .unwrap_or_default()
            );
            if let Some(h) = f.hint.filter(|h| !h.is_empty()) {
                let _ = write!(s, "\n        why: {h}");
            }
            s
        }
        FateKind::Delivered => {
            let sock = f
                .socket
                .as_ref()
                .map(|s| format!(" ({} socket port {}, inode {})", s.proto, s.port, s.inode))
                .unwrap_or_default();
            match (&f.comm, f.pid) {
                (Some(c), Some(p)) => format!("fate: delivered to {c}[{p}]{sock} {place} {after}"),
                _ => format!("fate: delivered to a socket{sock} {place} {after}"),
            }
        }
        FateKind::Transmitted => format!("fate: transmitted {place} (left the traced world) {after}"),
        FateKind::Consumed => format!(
            "fate: consumed at {} {place} {after}",
            f.location
                .as_ref()
                .map(|l| l.to_string())
                .unwrap_or_default()
        ),
        FateKind::Unknown => format!(
            "fate: unknown: last seen at {} {place}; no tracepoint reported its end (freed silently, as TCP does with most ACKs, or still queued)",
            f.last_hook
        ),
    }
}

/// The pcapng comment of step `i` of `p`: packet, step, hook, place, the
/// copy relation, and the fate on the last step.
pub fn pcap_comment(p: &Packet, i: usize) -> String {
    let n = p.steps.len();
    let Some(s) = p.steps.get(i) else {
        return String::new();
    };
    let mut c = format!(
        "packet {} step {}/{n}: {} netns={}{} dev={}",
        p.id,
        i + 1,
        s.hook,
        netns_label(s.netns, s.netns_name.as_deref()),
        container_suffix(s.container.as_deref()),
        s.dev.as_deref().unwrap_or("-")
    );
    if let Some(of) = s.clone_of {
        let _ = write!(c, " clone_of={of}");
    }
    if let Some(id) = s.clone {
        let _ = write!(c, " cloned->packet {id}");
    }
    if let Some(f) = p.fate.as_ref().filter(|_| i + 1 == n) {
        let _ = write!(c, " fate={}", f.fate);
        if let (Some(r), Some(l)) = (&f.reason, &f.location) {
            let _ = write!(c, " reason={r} at {l}");
        }
    }
    c
}
