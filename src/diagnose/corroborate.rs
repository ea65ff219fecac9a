//! Kernel counters that corroborate a drop: snapshots of a namespace's
//! SNMP/netstat/device/softnet counters at the start of the capture (or at
//! the first drop seen in a namespace nobody named) and at the end; each
//! finding then cites the counters its reason moves (`Udp:RcvbufErrors`
//! for SOCKET_RCVBUFF...). A counter that moved when netwhy saw the drop
//! confirms it; one that moved more than the drops seen says some losses
//! happened where no tracepoint looks.
use std::collections::BTreeMap;

use crate::state::counters::{self, Counters};

/// Counters the kernel bumps for a drop of `reason` (IPv4 and IPv6 names;
/// `dev` adds the device's rx_dropped).
pub fn relevant(reason: &str, proto: Option<&str>, dev: Option<&str>) -> Vec<String> {
    let names: &[&str] = match (reason, proto) {
        ("NO_SOCKET", Some("udp")) => &["Udp:NoPorts", "Udp6:NoPorts"],
        ("NO_SOCKET", Some("tcp")) => &["Tcp:OutRsts"],
        ("SOCKET_RCVBUFF", _) => &["Udp:RcvbufErrors", "Udp6:RcvbufErrors", "Udp:InErrors"],
        ("UDP_CSUM", _) => &["Udp:InCsumErrors", "Udp6:InCsumErrors"],
        ("TCP_CSUM", _) => &["Tcp:InCsumErrors"],
        ("IP_CSUM", _) => &["IpExt:InCsumErrors"],
        ("IP_RPFILTER", _) => &["TcpExt:IPReversePathFilter"],
        ("IP_INNOROUTES", _) => &["IpExt:InNoRoutes", "Ip6:InNoRoutes"],
        ("IP_INADDRERRORS", _) => &["Ip:InAddrErrors", "Ip6:InAddrErrors"],
        ("IP_INHDR", _) => &["Ip:InHdrErrors", "Icmp:OutTimeExcds", "Ip6:InHdrErrors"],
        ("PKT_TOO_BIG", _) => &["Icmp:OutDestUnreachs", "Ip:FragFails", "Ip6:InTooBigErrors"],
        ("TCP_LISTEN_OVERFLOW", _) | ("TCP_REQQFULLDROP", _) => {
            &["TcpExt:ListenOverflows", "TcpExt:ListenDrops"]
        }
        ("CPU_BACKLOG", _) => &["softnet:dropped"],
        ("NEIGH_QUEUEFULL", _) | ("NEIGH_FAILED", _) => &["Ip:OutDiscards"],
        _ => &[],
    };
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    if let Some(d) = dev {
        v.push(format!("dev:{d}:rx_dropped"));
    }
    v
}

/// Counter snapshots per netns inode, taken once each.
#[derive(Default)]
pub struct CounterWatch {
    before: BTreeMap<u32, Counters>,
}

impl CounterWatch {
    /// Snapshots `ino` unless it already has one.
    pub fn start(&mut self, ino: u32) {
        if let std::collections::btree_map::Entry::Vacant(v) = self.before.entry(ino) {
            if let Ok(c) = counters::read_all(ino) {
                v.insert(c);
            }
        }
    }

    /// Reads every snapshotted netns again: (netns, before, after).
    pub fn finish(self) -> BTreeMap<u32, (Counters, Counters)> {
        self.before
            .into_iter()
            .filter_map(|(ino, b)| counters::read_all(ino).ok().map(|a| (ino, (b, a))))
            .collect()
    }
}

/// The evidence line for `names` that moved between `before` and `after`.
pub fn line(names: &[String], before: &Counters, after: &Counters) -> Option<String> {
    let deltas = Counters::delta(before, after);
    let moved: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let d = Counters::moved(&deltas, n);
            (d != 0).then(|| format!("{n} {d:+}"))
        })
        .collect();
    (!moved.is_empty()).then(|| format!("kernel counters during the capture: {}", moved.join(", ")))
}

/// At most this many counters are cited for a reason netwhy has no notes on.
pub const UNKNOWN_CAP: usize = 8;

/// Words in counter names that count losses or errors (`Udp:NoPorts`,
/// `TcpExt:ListenDrops`, `dev:eth0:rx_dropped`, `Ip:InAddrErrors`...).
const LOSS_WORDS: [&str; 11] = [
    "drop", "err", "fail", "discard", "overflow", "prune", "noport", "noroute", "timeout",
    "toobig", "reject",
];

fn is_loss_counter(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    LOSS_WORDS.iter().any(|w| n.contains(w))
}

/// For a reason without notes netwhy cannot tell which counter it moves,
/// so it cites every loss counter that moved in the namespace during the
/// capture, biggest change first, at most `cap`, and says how many other
/// counters moved (traffic counters like `Ip:InReceives` are not cited:
/// they move on every healthy box).
pub fn unknown_line(before: &Counters, after: &Counters, cap: usize) -> Option<String> {
    let mut deltas = Counters::delta(before, after);
    let others = deltas.iter().filter(|d| !is_loss_counter(&d.name)).count();
    deltas.retain(|d| is_loss_counter(&d.name));
    if deltas.is_empty() {
        return None;
    }
    deltas.sort_by(|a, b| {
        b.change
            .abs()
            .cmp(&a.change.abs())
            .then(a.name.cmp(&b.name))
    });
    let total = deltas.len();
    let cited: Vec<String> = deltas
        .iter()
        .take(cap)
        .map(|d| format!("{} {:+}", d.name, d.change))
        .collect();
    let mut line = format!(
        "loss counters that moved in this namespace during the capture (netwhy cannot tell \
         which belong to this reason): {}",
        cited.join(", ")
    );
    if total > cap {
        line += &format!(" and {} more", total - cap);
    }
    match others {
        0 => {}
        1 => line += "; 1 other counter moved",
        n => line += &format!("; {n} other counters moved"),
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kv: &[(&str, u64)]) -> Counters {
        Counters {
            values: kv.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn reasons_map_to_their_counters() {
        assert_eq!(relevant("NO_SOCKET", Some("udp"), None)[0], "Udp:NoPorts");
        assert!(relevant("SOCKET_RCVBUFF", Some("udp"), Some("eth0"))
            .contains(&"dev:eth0:rx_dropped".to_string()));
        assert!(relevant("NETFILTER_DROP", Some("tcp"), None).is_empty());
    }

    #[test]
    fn only_moved_counters_are_cited() {
        let names = relevant("UDP_CSUM", Some("udp"), Some("eth0"));
        let b = c(&[("Udp:InCsumErrors", 4), ("dev:eth0:rx_dropped", 1)]);
        let a = c(&[("Udp:InCsumErrors", 7), ("dev:eth0:rx_dropped", 1)]);
        assert_eq!(
            line(&names, &b, &a).as_deref(),
            Some("kernel counters during the capture: Udp:InCsumErrors +3")
        );
        assert_eq!(line(&names, &b, &b), None);
    }

    #[test]
    fn unknown_reasons_cite_moved_loss_counters_capped() {
        let b = c(&[
            ("Ip:InReceives", 10),
            ("Udp:NoPorts", 1),
            ("TcpExt:ListenDrops", 0),
            ("dev:eth0:rx_dropped", 5),
            ("Ip6:InDiscards", 2),
        ]);
        let a = c(&[
            ("Ip:InReceives", 90),
            ("Udp:NoPorts", 2),
            ("TcpExt:ListenDrops", 7),
            ("dev:eth0:rx_dropped", 5),
            ("Ip6:InDiscards", 2),
        ]);
        let l = unknown_line(&b, &a, 8).unwrap();
        assert!(
            l.ends_with("TcpExt:ListenDrops +7, Udp:NoPorts +1; 1 other counter moved"),
            "{l}"
        );
        assert!(!l.contains("InReceives"), "{l}");
        let l = unknown_line(&b, &a, 1).unwrap();
        assert!(l.contains("TcpExt:ListenDrops +7 and 1 more"), "{l}");
        assert_eq!(unknown_line(&b, &b, 8), None);
        // Only traffic moved: nothing to cite.
        let t = c(&[("Ip:InReceives", 11)]);
        assert_eq!(unknown_line(&c(&[("Ip:InReceives", 10)]), &t, 8), None);
    }
}
