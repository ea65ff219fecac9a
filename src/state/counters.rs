//! Kernel drop counters of a network namespace: SNMP MIBs, TcpExt/IpExt,
//! IPv6 MIBs, per-device drops, and the per-CPU backlog (softnet_stat).
//!
//! Some losses never reach kfree_skb (accept-queue overflow, sends that fail
//! in the syscall), so counters back the tracer up. Everything is read
//! through /proc/thread-self/net on a thread that has setns(2)'d: /proc/net
//! is /proc/self/net, which follows the *thread group leader's* netns, and
//! /sys/class/net follows the netns of whoever mounted sysfs; only
//! thread-self follows the reading thread.
//!
//! Keys are `Group:Name` like `lab::expect::parse_snmp` (`Udp:NoPorts`,
//! `TcpExt:ListenDrops`, `Ip6:InNoRoutes`, `dev:eth0:rx_dropped`,
//! `softnet:dropped`).
use std::collections::BTreeMap;
use std::fs;
use std::io;

use super::ns::{self, NsError};

#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
}

/// A set of named counter values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub values: BTreeMap<String, u64>,
}

/// One counter that moved between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delta {
    pub name: String,
    pub before: u64,
    pub after: u64,
    /// after - before; negative for gauges that went down or a wrap.
    pub change: i128,
}

impl Counters {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).copied()
    }

    /// The counters that differ between `before` and `after`, by name. A
    /// counter present on one side only counts from 0.
    pub fn delta(before: &Counters, after: &Counters) -> Vec<Delta> {
        let mut names: Vec<&String> = before.values.keys().chain(after.values.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| {
                let b = before.get(n).unwrap_or(0);
                let a = after.get(n).unwrap_or(0);
                (a != b).then(|| Delta {
                    name: n.clone(),
                    before: b,
                    after: a,
                    change: i128::from(a) - i128::from(b),
                })
            })
            .collect()
    }

    /// The change of one counter in a delta list (0 if it did not move).
    pub fn moved(deltas: &[Delta], name: &str) -> i128 {
        deltas
            .iter()
            .find(|d| d.name == name)
            .map_or(0, |d| d.change)
    }
}

/// Parse /proc/net/snmp or /proc/net/netstat: pairs of lines, a header
/// `Group: Name1 Name2...` then `Group: v1 v2...`. Negative values (the
/// RFC's "-1 = unknown" for e.g. Tcp:MaxConn) are skipped.
pub fn parse_snmp(text: &str, out: &mut BTreeMap<String, u64>) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let mut n = names.split_whitespace();
        let mut v = values.split_whitespace();
        let (Some(group), Some(vgroup)) = (n.next(), v.next()) else {
            continue;
        };
        if group != vgroup {
            continue;
        }
        let group = group.trim_end_matches(':');
        for (name, val) in n.zip(v) {
            if let Ok(x) = val.parse::<u64>() {
                out.insert(format!("{group}:{name}"), x);
            }
        }
    }
}

/// Parse /proc/net/snmp6: `Ip6InReceives   12` per line, into `Ip6:InReceives`
/// (the group is the name up to and including the first '6').
pub fn parse_snmp6(text: &str, out: &mut BTreeMap<String, u64>) {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(val)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(x) = val.parse::<u64>() else { continue };
        let key = match name.find('6') {
            Some(i) if i + 1 < name.len() => format!("{}:{}", &name[..=i], &name[i + 1..]),
            _ => format!("snmp6:{name}"),
        };
        out.insert(key, x);
    }
}

/// Parse /proc/net/dev into `dev:NAME:rx_bytes` ... `dev:NAME:tx_compressed`.
pub fn parse_dev(text: &str, out: &mut BTreeMap<String, u64>) {
    const FIELDS: [&str; 16] = [
        "rx_bytes",
        "rx_packets",
        "rx_errors",
        "rx_dropped",
        "rx_fifo_errors",
        "rx_frame_errors",
        "rx_compressed",
        "rx_multicast",
        "tx_bytes",
        "tx_packets",
        "tx_errors",
        "tx_dropped",
        "tx_fifo_errors",
        "tx_collisions",
        "tx_carrier_errors",
        "tx_compressed",
    ];
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.contains('|') || name.is_empty() {
            continue;
        }
        for (f, v) in FIELDS.iter().zip(rest.split_whitespace()) {
            if let Ok(x) = v.parse::<u64>() {
                out.insert(format!("dev:{name}:{f}"), x);
            }
        }
    }
}

/// Parse /proc/net/softnet_stat (one hex row per CPU: processed, dropped,
/// time_squeeze, 5 unused, cpu_collision, received_rps, flow_limit_count,
/// ...). `dropped` is the netdev_max_backlog overflow; `time_squeeze` means
/// NAPI ran out of budget (netdev_budget). Totals are `softnet:NAME`,
/// per-CPU `softnet:cpuN:NAME`. This file is host-global: the same in
/// every netns.
pub fn parse_softnet(text: &str, out: &mut BTreeMap<String, u64>) {
    const COLS: [(usize, &str); 5] = [
        (0, "processed"),
        (1, "dropped"),
        (2, "time_squeeze"),
        (9, "received_rps"),
        (10, "flow_limit_count"),
    ];
    for (row, line) in text.lines().enumerate() {
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|h| u64::from_str_radix(h, 16).ok())
            .collect();
        // Since 5.10 column 12 is the CPU id (rows skip offline CPUs).
        let cpu = v.get(12).copied().unwrap_or(row as u64);
        for (i, name) in COLS {
            if let Some(&x) = v.get(i) {
                out.insert(format!("softnet:cpu{cpu}:{name}"), x);
                *out.entry(format!("softnet:{name}")).or_insert(0) += x;
            }
        }
    }
}

fn read(path: &str) -> Result<String, CountersError> {
    fs::read_to_string(path).map_err(|source| CountersError::Read {
        path: path.to_string(),
        source,
    })
}

/// All counters of netns `ino`.
pub fn read_all(ino: u32) -> Result<Counters, CountersError> {
    ns::run_in(ino, read_all_here)?
}

/// [`read_all`] in the calling thread's netns. snmp6 is optional (IPv6
/// may be disabled); the others must exist.
pub fn read_all_here() -> Result<Counters, CountersError> {
    let base = "/proc/thread-self/net";
    let mut values = BTreeMap::new();
    parse_snmp(&read(&format!("{base}/snmp"))?, &mut values);
    parse_snmp(&read(&format!("{base}/netstat"))?, &mut values);
    if let Ok(t) = fs::read_to_string(format!("{base}/snmp6")) {
        parse_snmp6(&t, &mut values);
    }
    parse_dev(&read(&format!("{base}/dev"))?, &mut values);
    parse_softnet(&read(&format!("{base}/softnet_stat"))?, &mut values);
    Ok(Counters { values })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = include_str!("../../tests/fixtures/state/snmp");
    const NETSTAT: &str = include_str!("../../tests/fixtures/state/netstat");
    const SNMP6: &str = include_str!("../../tests/fixtures/state/snmp6");
    const SOFTNET: &str = include_str!("../../tests/fixtures/state/softnet_stat");
    const DEV: &str = include_str!("../../tests/fixtures/state/dev");

    #[test]
    fn snmp_fixture() {
        let mut m = BTreeMap::new();
        parse_snmp(SNMP, &mut m);
        assert_eq!(m["Udp:NoPorts"], 6);
        assert_eq!(m["Ip:Forwarding"], 2);
        assert_eq!(m["Ip:DefaultTTL"], 64);
        assert!(!m.contains_key("Tcp:MaxConn"), "-1 means unknown");
        assert!(m.contains_key("IcmpMsg:OutType3"));
        parse_snmp(NETSTAT, &mut m);
        assert_eq!(m["TcpExt:ListenDrops"], 0);
        assert_eq!(m["IpExt:InOctets"], 335_515_918);
    }

    #[test]
    fn snmp6_fixture() {
        let mut m = BTreeMap::new();
        parse_snmp6(SNMP6, &mut m);
        assert_eq!(m["Ip6:InReceives"], 1);
        assert!(m.contains_key("Icmp6:InMsgs"));
        assert!(m.contains_key("UdpLite6:InDatagrams"));
        assert!(m.contains_key("Icmp6:OutType135"));
    }

    #[test]
    fn dev_and_softnet_fixtures() {
        let mut m = BTreeMap::new();
        parse_dev(DEV, &mut m);
        assert_eq!(m["dev:lo:rx_packets"], 41);
        assert_eq!(m["dev:eth0:rx_dropped"], 7);
        assert_eq!(m["dev:eth0:tx_carrier_errors"], 0);
        parse_softnet(SOFTNET, &mut m);
        assert_eq!(m["softnet:cpu0:processed"], 0x00c7_3a7d);
        assert_eq!(m["softnet:cpu1:dropped"], 3);
        assert_eq!(m["softnet:dropped"], 3);
        assert_eq!(m["softnet:time_squeeze"], 0x10);
    }

    #[test]
    fn delta_lists_what_moved() {
        let mk = |v: &[(&str, u64)]| Counters {
            values: v.iter().map(|(k, x)| (k.to_string(), *x)).collect(),
        };
        let b = mk(&[("Udp:NoPorts", 5), ("Udp:InErrors", 1), ("gone", 2)]);
        let a = mk(&[("Udp:NoPorts", 8), ("Udp:InErrors", 1), ("new", 4)]);
        let d = Counters::delta(&b, &a);
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Udp:NoPorts", "gone", "new"]);
        assert_eq!(Counters::moved(&d, "Udp:NoPorts"), 3);
        assert_eq!(Counters::moved(&d, "gone"), -2);
        assert_eq!(Counters::moved(&d, "Udp:InErrors"), 0);
    }
}
