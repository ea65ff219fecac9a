//! Routes and rules in `ip route` / `ip rule` words: how bisect names a
//! setting and prints its values and fix, so that two entries that differ
//! never read the same.
use std::net::IpAddr;

use super::*;

impl Entry {
    /// What identifies a route in its table (the kernel's key: v4 dst,
    /// tos, metric; v6 dst, src, metric), in `ip route` words.
    pub fn key(&self) -> String {
        if self.rule {
            return self.describe();
        }
        let mut s = self.prefix(RTA_DST, self.hdr[1]);
        if self.hdr[2] > 0 {
            s.push_str(&format!(" from {}", self.prefix(RTA_SRC, self.hdr[2])));
        }
        if self.hdr[3] > 0 {
            s.push_str(&format!(" tos {}", self.hdr[3]));
        }
        let metric = self.attr(RTA_PRIORITY).and_then(u32_of).unwrap_or(0);
        s.push_str(&format!(
            " table {} metric {metric}",
            table_name(self.table())
        ));
        s
    }

    /// The whole entry in `ip route` / `ip rule` words (attributes with no
    /// word of ours are appended as `attrN`, so two entries that differ
    /// never read the same).
    pub fn describe(&self) -> String {
        if self.rule {
            return self.describe_rule();
        }
        let mut w: Vec<String> = Vec::new();
        let ty = self.hdr[7];
        if ty != 1 {
            w.push(route_type(ty));
        }
        w.push(self.prefix(RTA_DST, self.hdr[1]));
        if self.hdr[2] > 0 {
            w.push(format!("from {}", self.prefix(RTA_SRC, self.hdr[2])));
        }
        if self.hdr[3] > 0 {
            w.push(format!("tos {}", self.hdr[3]));
        }
        let mut devs = self.devs.iter();
        for (t, v) in &self.attrs {
            match *t {
                RTA_DST | RTA_SRC | RTA_TABLE | RTA_PRIORITY => {}
                RTA_GATEWAY => w.push(format!("via {}", show_ip(v))),
                RTA_OIF => w.push(format!("dev {}", devs.next().map_or("?", |d| d))),
                RTA_IIF => w.push(format!("iif {}", devs.next().map_or("?", |d| d))),
                RTA_PREFSRC => w.push(format!("src {}", show_ip(v))),
                RTA_MULTIPATH => {
                    for (gw, weight) in nexthops(v) {
                        let dev = devs.next().map_or("?", |d| d);
                        let gw = gw.map(|g| format!(" via {g}")).unwrap_or_default();
                        w.push(format!("nexthop{gw} dev {dev} weight {weight}"));
                    }
                }
                t => w.push(format!("attr{t}={}", hex(v))),
            }
        }
        w.push(format!("table {}", table_name(self.table())));
        w.push(format!("proto {}", proto_name(self.hdr[5])));
        match self.hdr[6] {
            0 => {}
            253 => w.push("scope link".into()),
            254 => w.push("scope host".into()),
            sc => w.push(format!("scope {sc}")),
        }
        if u32_of(&self.hdr[8..]).unwrap_or(0) & RTNH_F_ONLINK != 0 {
            w.push("onlink".into());
        }
        let metric = self.attr(RTA_PRIORITY).and_then(u32_of).unwrap_or(0);
        w.push(format!("metric {metric}"));
        w.join(" ")
    }

    fn describe_rule(&self) -> String {
        let mut w: Vec<String> = Vec::new();
        if i32::from(self.family()) == libc::AF_INET6 {
            w.push("ipv6".into());
        }
        let pref = self.attr(FRA_PRIORITY).and_then(u32_of).unwrap_or(0);
        w.push(format!("pref {pref}"));
        if u32_of(&self.hdr[8..]).unwrap_or(0) & FIB_RULE_INVERT != 0 {
            w.push("not".into());
        }
        if self.hdr[2] > 0 {
            w.push(format!("from {}", self.prefix(FRA_SRC, self.hdr[2])));
        } else {
            w.push("from all".into());
        }
        if self.hdr[1] > 0 {
            w.push(format!("to {}", self.prefix(FRA_DST, self.hdr[1])));
        }
        if self.hdr[3] > 0 {
            w.push(format!("tos {}", self.hdr[3]));
        }
        let mask = self.attr(FRA_FWMASK).and_then(u32_of);
        for (t, v) in &self.attrs {
            match *t {
                FRA_SRC | FRA_DST | FRA_PRIORITY | FRA_TABLE | FRA_FWMASK | FRA_GOTO => {}
                FRA_FWMARK => {
                    let m = u32_of(v).unwrap_or(0);
                    match mask {
                        Some(k) if k != u32::MAX => w.push(format!("fwmark {m:#x}/{k:#x}")),
                        _ => w.push(format!("fwmark {m:#x}")),
                    }
                }
                FRA_IIFNAME => w.push(format!("iif {}", cstr(v))),
                FRA_OIFNAME => w.push(format!("oif {}", cstr(v))),
                FRA_PROTOCOL => match v.first().copied().unwrap_or(0) {
                    0 => {}
                    p => w.push(format!("proto {}", proto_name(p))),
                },
                // -1: not set (what every rule without the option dumps).
                FRA_SUPPRESS_IFGROUP | FRA_SUPPRESS_PREFIXLEN if u32_of(v) == Some(u32::MAX) => {}
                FRA_SUPPRESS_PREFIXLEN => {
                    w.push(format!("suppress_prefixlength {}", u32_of(v).unwrap_or(0)))
                }
                FRA_SUPPRESS_IFGROUP => {
                    w.push(format!("suppress_ifgroup {}", u32_of(v).unwrap_or(0)))
                }
                t => w.push(format!("attr{t}={}", hex(v))),
            }
        }
        match self.hdr[7] {
            1 => w.push(format!("lookup {}", table_name(self.table()))),
            2 => w.push(format!(
                "goto {}",
                self.attr(FRA_GOTO).and_then(u32_of).unwrap_or(0)
            )),
            3 => w.push("nop".into()),
            6 => w.push("blackhole".into()),
            7 => w.push("unreachable".into()),
            8 => w.push("prohibit".into()),
            a => w.push(format!("action {a}")),
        }
        w.join(" ")
    }
}

fn show_ip(v: &[u8]) -> String {
    ip_from(v).map_or_else(|| hex(v), |a: IpAddr| a.to_string())
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

fn cstr(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|&c| c == 0).next().unwrap_or_default()).into_owned()
}

fn table_name(t: u32) -> String {
    match t {
        253 => "default".into(),
        254 => "main".into(),
        255 => "local".into(),
        t => t.to_string(),
    }
}

/// `ip`'s names of route protocols (/etc/iproute2/rt_protos).
fn proto_name(p: u8) -> String {
    match p {
        2 => "kernel",
        3 => "boot",
        4 => "static",
        16 => "dhcp",
        _ => return p.to_string(),
    }
    .into()
}

fn route_type(t: u8) -> String {
    match t {
        2 => "local",
        3 => "broadcast",
        4 => "anycast",
        5 => "multicast",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        10 => "nat",
        _ => return format!("type{t}"),
    }
    .into()
}

/// (gateway, weight) of each `struct rtnexthop` of a RTA_MULTIPATH.
fn nexthops(mut b: &[u8]) -> Vec<(Option<IpAddr>, u32)> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        if len < 8 || len > b.len() {
            break;
        }
        let gw = nl::attrs(&b[8..len])
            .find(|(t, _)| *t == RTA_GATEWAY)
            .and_then(|(_, v)| ip_from(v));
        out.push((gw, u32::from(b[3]) + 1));
        b = &b[nl::align(len).min(b.len())..];
    }
    out
}
