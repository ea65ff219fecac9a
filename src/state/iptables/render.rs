//! The `summary` of a rule: a short rendering in the spirit of
//! `iptables -L -v` from the entry's ipt_ip / ip6t_ip6 part, its matches
//! (tcp/udp ports and flags decoded, comments quoted, others by name) and
//! REJECT's ICMP type.
use std::net::{Ipv4Addr, Ipv6Addr};

use super::layout::{cstr, layout, u16_at, u32_at, Raw, XT_HDR};
use super::{Family, IptError};

fn proto_name(p: u16) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        p => p.to_string(),
    }
}

/// The interface name as the tool stored it: iptables keeps a `+`
/// wildcard in the name (and shortens the mask), so `eth+` reads back as is.
fn iface(name: &[u8]) -> Option<String> {
    Some(cstr(name)).filter(|n| !n.is_empty())
}

fn prefix_len(mask: &[u8]) -> Option<u32> {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let full = ones as usize / 8;
    let contiguous = mask.iter().enumerate().all(|(i, &b)| match i.cmp(&full) {
        std::cmp::Ordering::Less => b == 0xff,
        std::cmp::Ordering::Equal => b == (0xffu16 << (8 - ones % 8)) as u8,
        std::cmp::Ordering::Greater => b == 0,
    });
    contiguous.then_some(ones)
}

fn addr(fam: Family, a: &[u8], m: &[u8]) -> String {
    let shown = match fam {
        Family::Ipv4 => Ipv4Addr::from(<[u8; 4]>::try_from(a).unwrap_or_default()).to_string(),
        Family::Ipv6 => Ipv6Addr::from(<[u8; 16]>::try_from(a).unwrap_or_default()).to_string(),
    };
    match prefix_len(m) {
        Some(p) if p as usize == m.len() * 8 => shown,
        Some(p) => format!("{shown}/{p}"),
        None => format!("{shown}/{}", addr(fam, m, &vec![0xff; m.len()])),
    }
}

/// A short rendering in the spirit of `iptables -L -v`: protocol,
/// addresses, interfaces, then each match (tcp/udp ports and flags
/// decoded, a comment quoted, others by name) and REJECT's ICMP type.
pub(super) fn describe(
    fam: Family,
    r: &Raw,
    bad: &dyn Fn(String) -> IptError,
) -> Result<String, IptError> {
    let e = r.bytes;
    // ipt_ip / ip6t_ip6 offsets: src, dst, masks, ifaces, proto, flags, invflags.
    let (alen, ifs, proto_at, inv_at) = match fam {
        Family::Ipv4 => (4, 16, 80, 83),
        Family::Ipv6 => (16, 64, 128, 132),
    };
    let inv = e[inv_at];
    let not = |bit: u8| if inv & bit != 0 { "! " } else { "" };
    let mut parts = Vec::new();
    let proto = u16_at(e, proto_at).unwrap_or(0);
    let has_proto = match fam {
        Family::Ipv4 => proto != 0,
        Family::Ipv6 => e[131] & 0x01 != 0,
    };
    if has_proto {
        parts.push(format!("{}{}", not(0x40), proto_name(proto)));
    }
    for (label, a, m, bit) in [("src", 0, 2 * alen, 0x08), ("dst", alen, 3 * alen, 0x10)] {
        let mask = &e[m..m + alen];
        if mask.iter().any(|&b| b != 0) || inv & bit != 0 {
            parts.push(format!(
                "{}{label} {}",
                not(bit),
                addr(fam, &e[a..a + alen], mask)
            ));
        }
    }
    for (label, n, bit) in [("in", ifs, 0x01), ("out", ifs + 16, 0x02)] {
        if let Some(i) = iface(&e[n..n + 16]) {
            parts.push(format!("{}{label} {i}", not(bit)));
        }
    }
    if fam == Family::Ipv4 && e[82] & 0x01 != 0 {
        parts.push(format!("{}fragments", not(0x20)));
    }
    let mut at = layout(fam).entry;
    while at < r.target_at {
        let size = usize::from(u16_at(e, at).unwrap_or(0));
        if size < XT_HDR || at + size > r.target_at {
            return Err(bad(format!(
                "entry at {}: match at {at} size {size} out of bounds",
                r.off
            )));
        }
        let name = cstr(&e[at + 2..at + 31]);
        parts.push(describe_match(&name, &e[at + XT_HDR..at + size]));
        at += size;
    }
    let tdata = &e[r.target_at + XT_HDR..];
    if r.target == "REJECT" {
        if let Some(w) = u32_at(tdata, 0) {
            parts.push(format!("reject-with {}", reject_with(fam, w)));
        }
    }
    parts.retain(|p| !p.is_empty());
    Ok(if parts.is_empty() {
        "any".into()
    } else {
        parts.join(" ")
    })
}

fn ports(label: &str, lo: u16, hi: u16, inv: bool) -> Option<String> {
    let not = if inv { "!" } else { "" };
    match (lo, hi) {
        (0, 0xffff) if !inv => None,
        (l, h) if l == h => Some(format!("{label}:{not}{l}")),
        (l, h) => Some(format!("{label}s:{not}{l}:{h}")),
    }
}

/// tcp/udp: xt_tcp {spts[2], dpts[2], option, flg_mask, flg_cmp, invflags}
/// and xt_udp {spts[2], dpts[2], invflags}; comment: char[256].
fn describe_match(name: &str, d: &[u8]) -> String {
    let p = |i: usize| u16_at(d, 2 * i).unwrap_or(0);
    match name {
        "tcp" | "udp" if d.len() >= 9 => {
            let inv = if name == "tcp" {
                d.get(11).copied().unwrap_or(0)
            } else {
                d[8]
            };
            let mut v: Vec<String> = [
                ports("spt", p(0), p(1), inv & 0x01 != 0),
                ports("dpt", p(2), p(3), inv & 0x02 != 0),
            ]
            .into_iter()
            .flatten()
            .collect();
            if name == "tcp" && d.len() >= 12 {
                if d[9] != 0 {
                    let not = if inv & 0x08 != 0 { "!" } else { "" };
                    v.push(format!("flags:{not}0x{:02X}/0x{:02X}", d[9], d[10]));
                }
                if d[8] != 0 {
                    v.push(format!("option={}", d[8]));
                }
            }
            v.join(" ")
        }
        "comment" => format!("/* {} */", cstr(d)),
        other => other.to_string(),
    }
}

fn reject_with(fam: Family, w: u32) -> String {
    let v4 = [
        "icmp-net-unreachable",
        "icmp-host-unreachable",
        "icmp-proto-unreachable",
        "icmp-port-unreachable",
        "icmp-echo-reply",
        "icmp-net-prohibited",
        "icmp-host-prohibited",
        "tcp-reset",
        "icmp-admin-prohibited",
    ];
    let v6 = [
        "icmp6-no-route",
        "icmp6-adm-prohibited",
        "icmp6-not-neighbour",
        "icmp6-addr-unreachable",
        "icmp6-port-unreachable",
        "icmp6-echo-reply",
        "tcp-reset",
        "icmp6-policy-fail",
        "icmp6-reject-route",
    ];
    let names: &[&str] = if fam == Family::Ipv4 { &v4 } else { &v6 };
    names
        .get(w as usize)
        .map_or_else(|| format!("type {w}"), |s| s.to_string())
}
