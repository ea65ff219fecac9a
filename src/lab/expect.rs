//! What a scenario expects the kernel to report, and the check against
//! what was captured. Assertions are on stable fields (reason name,
//! location symbol, namespace, device, flow), never on free text.
use std::fmt;

use crate::event::DropEvent;

/// One expected drop.
#[derive(Debug, Clone)]
pub struct ExpectDrop {
    pub reason: &'static str,
    /// Function the kernel reports as the drop location ("*": any, for
    /// absence checks).
    pub function: &'static str,
    /// Role of the namespace the drop happens in.
    pub netns: &'static str,
    /// Device on the skb, when the scenario knows it.
    pub dev: Option<&'static str>,
    pub proto: Option<&'static str>,
    pub dst: Option<&'static str>,
    pub dport: Option<u16>,
    /// At least this many matching events.
    pub min: u64,
}

impl ExpectDrop {
    pub const fn new(reason: &'static str, function: &'static str, netns: &'static str) -> Self {
        ExpectDrop {
            reason,
            function,
            netns,
            dev: None,
            proto: None,
            dst: None,
            dport: None,
            min: 1,
        }
    }
    pub const fn dev(mut self, d: &'static str) -> Self {
        self.dev = Some(d);
        self
    }
    pub const fn flow(
        mut self,
        proto: &'static str,
        dst: &'static str,
        dport: Option<u16>,
    ) -> Self {
        self.proto = Some(proto);
        self.dst = Some(dst);
        self.dport = dport;
        self
    }

    /// Does `e`, seen in the namespace with inode `ns_inode`, match?
    pub fn matches(&self, e: &DropEvent, ns_inode: u32) -> bool {
        e.reason == self.reason
            && (self.function == "*" || base_symbol(&e.location.symbol) == self.function)
            && e.netns == ns_inode
            && self.dev.is_none_or(|d| e.dev.as_deref() == Some(d))
            && self
                .proto
                .is_none_or(|p| e.flow.proto.as_deref() == Some(p))
            && self
                .dst
                .is_none_or(|d| e.flow.dst.map(|a| a.to_string()).as_deref() == Some(d))
            && self.dport.is_none_or(|p| e.flow.dport == Some(p))
    }
}

impl fmt::Display for ExpectDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {} in {}", self.reason, self.function, self.netns)?;
        if let Some(d) = self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(p) = self.proto {
            write!(f, " {p}")?;
        }
        if let Some(d) = self.dst {
            write!(f, " to {d}")?;
        }
        if let Some(p) = self.dport {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// A kernel counter (from /proc/net/snmp or /proc/net/netstat inside a lab
/// namespace) that must move by at least `min` while the scenario runs.
/// This backs the tracer up where the kernel reports no drop, and proves
/// delivery in the variants that must pass.
#[derive(Debug, Clone)]
pub struct ExpectCounter {
    /// Role of the namespace whose counter is read.
    pub netns: &'static str,
    /// `Group:Name` as in /proc/net/snmp, e.g. `Udp:RcvbufErrors`.
    pub key: &'static str,
    pub min: u64,
}

impl ExpectCounter {
    pub const fn new(netns: &'static str, key: &'static str, min: u64) -> Self {
        ExpectCounter { netns, key, min }
    }
}

impl fmt::Display for ExpectCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "counter {} in {} moves", self.key, self.netns)
    }
}

/// Everything a scenario expects: drops that must be seen, drops that must
/// NOT be seen (passing variants, kernels with a fix), counters that move.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub drops: Vec<ExpectDrop>,
    pub absent: Vec<ExpectDrop>,
    pub counters: Vec<ExpectCounter>,
}

impl Expect {
    pub fn drops(drops: Vec<ExpectDrop>) -> Self {
        Expect {
            drops,
            ..Expect::default()
        }
    }
    pub fn drop(self, d: ExpectDrop) -> Self {
        let mut s = self;
        s.drops.push(d);
        s
    }
    pub fn absent(self, d: ExpectDrop) -> Self {
        let mut s = self;
        s.absent.push(d);
        s
    }
    pub fn counter(self, c: ExpectCounter) -> Self {
        let mut s = self;
        s.counters.push(c);
        s
    }
    pub fn is_empty(&self) -> bool {
        self.drops.is_empty() && self.absent.is_empty() && self.counters.is_empty()
    }
}

/// Parse the two-line-per-group format of /proc/net/snmp and
/// /proc/net/netstat into `Group:Name` -> value.
pub fn parse_snmp(text: &str, out: &mut std::collections::HashMap<String, u64>) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let mut n = names.split_whitespace();
        let mut v = values.split_whitespace();
        let (Some(group), Some(_)) = (n.next(), v.next()) else {
            continue;
        };
        let group = group.trim_end_matches(':');
        for (name, val) in n.zip(v) {
            if let Ok(x) = val.parse::<i64>() {
                out.insert(format!("{group}:{name}"), x.max(0) as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_pairs() {
        let mut m = std::collections::HashMap::new();
        parse_snmp(
            "Ip: Forwarding DefaultTTL InNoRoutes\nIp: 1 64 7\nUdp: InDatagrams RcvbufErrors\nUdp: 3 -1\n",
            &mut m,
        );
        assert_eq!(m["Ip:InNoRoutes"], 7);
        assert_eq!(m["Udp:InDatagrams"], 3);
        assert_eq!(m["Udp:RcvbufErrors"], 0);
    }
}

/// A symbol without the suffix of a compiler clone: Debian's 6.12 build
/// drops rp_filter packets in `ip_rcv_finish_core.constprop.0` where other
/// builds name `ip_rcv_finish_core`; both are the same source function.
fn base_symbol(s: &str) -> &str {
    s.split_once('.').map_or(s, |(base, _)| base)
}

#[cfg(test)]
#[test]
fn compiler_clones_match_their_function() {
    assert_eq!(
        base_symbol("ip_rcv_finish_core.constprop.0"),
        "ip_rcv_finish_core"
    );
    assert_eq!(base_symbol("tcp_v4_rcv"), "tcp_v4_rcv");
}
