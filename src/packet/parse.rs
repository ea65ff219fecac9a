//! Header walkers. Every read goes through `get`/`be16`, which return
//! `None` past the end, so any truncation ends the walk with
//! `truncated = true` instead of a panic.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{names, Arp, Flow};

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad (QinQ outer) and the pre-standard QinQ tag.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// Bounds loops over stacked headers; 128 captured bytes cannot hold more.
const MAX_STACK: usize = 8;

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off + N)?.try_into().ok()
}

fn mac(m: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = m;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Bytes starting at an Ethernet header, with any number of VLAN tags.
pub(super) fn ethernet(f: &mut Flow, b: &[u8]) {
    let (Some(dst), Some(src), Some(mut et)) = (bytes::<6>(b, 0), bytes::<6>(b, 6), be16(b, 12))
    else {
        f.truncated = true;
        return;
    };
    (f.eth_src, f.eth_dst) = (Some(src), Some(dst));
    let mut off = 14;
    for _ in 0..MAX_STACK {
        if !VLAN_TPIDS.contains(&et) {
            break;
        }
        let (Some(tci), Some(next)) = (be16(b, off), be16(b, off + 2)) else {
            f.l3 = "l2";
            f.src_mac = Some(mac(src));
            f.dst_mac = Some(mac(dst));
            f.truncated = true;
            return;
        };
        f.vlan.push(tci & 0x0fff);
        et = next;
        off += 4;
    }
    if et >= 0x0600 {
        network(f, et, &b[off.min(b.len())..]);
    } // else an 802.3 length field (LLC/SNAP: STP, ...), not an ethertype.
    if f.l3 == "unknown" {
        f.l3 = "l2";
    }
    // MACs only where no IP addresses identify the flow.
    if f.l3 != "ipv4" && f.l3 != "ipv6" {
        f.src_mac = Some(mac(src));
        f.dst_mac = Some(mac(dst));
    }
}

/// Bytes starting at the network header.
pub(super) fn network(f: &mut Flow, ethertype: u16, b: &[u8]) {
    let et = match (ethertype, b.first().map(|v| v >> 4)) {
        (0, Some(4)) => ETH_IPV4,
        (0, Some(6)) => ETH_IPV6,
        (e, _) => e,
    };
    if et != 0 {
        f.ethertype = Some(et);
    }
    match et {
        ETH_IPV4 => ipv4(f, b),
        ETH_IPV6 => ipv6(f, b),
        ETH_ARP => arp(f, b),
        _ => {}
    }
}

fn ipv4(f: &mut Flow, b: &[u8]) {
    f.l3 = "ipv4";
    let (Some(&vihl), Some(tot), Some(frag), Some(&proto), Some(src), Some(dst)) = (
        b.first(),
        be16(b, 2),
        be16(b, 6),
        b.get(9),
        bytes::<4>(b, 12),
        bytes::<4>(b, 16),
    ) else {
        f.truncated = true;
        return;
    };
    if vihl >> 4 != 4 {
        f.l3 = "unknown";
        return;
    }
    f.src = Some(IpAddr::V4(Ipv4Addr::from(src)));
    f.dst = Some(IpAddr::V4(Ipv4Addr::from(dst)));
    f.len = Some(tot.into());
    f.proto = Some(names::proto(proto));
    if frag & 0x1fff != 0 {
        f.frag = true;
        return;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 {
        return; // malformed: no trustworthy L4 offset
    }
    match b.get(ihl..) {
        Some(l4) => transport(f, proto, l4),
        None => f.truncated = true,
    }
    // Whole datagram captured and not fragmented: its checksum can be checked.
    if frag & 0x2000 == 0 {
        if let Some(l4) = b.get(ihl..usize::from(tot)) {
            f.l4_csum_check = super::csum::ipv4_check(proto, src, dst, l4);
            f.l4_csum = f.l4_csum_check.map(|c| c.verdict);
        }
    }
}

fn ipv6(f: &mut Flow, b: &[u8]) {
    f.l3 = "ipv6";
    let (Some(&v), Some(plen), Some(&first_nh), Some(src), Some(dst)) = (
        b.first(),
        be16(b, 4),
        b.get(6),
        bytes::<16>(b, 8),
        bytes::<16>(b, 24),
    ) else {
        f.truncated = true;
        return;
    };
    if v >> 4 != 6 {
        f.l3 = "unknown";
        return;
    }
    f.src = Some(IpAddr::V6(Ipv6Addr::from(src)));
    f.dst = Some(IpAddr::V6(Ipv6Addr::from(dst)));
    f.len = Some(u32::from(plen) + 40);
    let (mut nh, mut off) = (first_nh, 40usize);
    for _ in 0..MAX_STACK {
        let (Some(&next), Some(&hlen)) = (b.get(off), b.get(off + 1)) else {
            if matches!(nh, 0 | 43 | 60 | 44 | 51) {
                f.truncated = true;
                return;
            }
            break;
        };
        off += match nh {
            // Hop-by-hop (MLD reports arrive behind one), routing, dest opts.
            0 | 43 | 60 => (usize::from(hlen) + 1) * 8,
            44 => {
                let Some(fo) = be16(b, off + 2) else {
                    f.truncated = true;
                    return;
                };
                if fo >> 3 != 0 {
                    f.proto = Some(names::proto(next));
                    f.frag = true;
                    return;
                }
                8
            }
            51 => (usize::from(hlen) + 2) * 4, // AH, in 4-byte units
            _ => break,
        };
        nh = next;
    }
    f.proto = Some(names::proto(nh));
    match b.get(off..) {
        Some(l4) => transport(f, nh, l4),
        None => f.truncated = true,
    }
    // Whole datagram captured (no fragment header got here): check it.
    if let Some(l4) = b.get(off..40 + usize::from(plen)) {
        f.l4_csum_check = super::csum::ipv6_check(nh, src, dst, l4);
        f.l4_csum = f.l4_csum_check.map(|c| c.verdict);
    }
}

fn transport(f: &mut Flow, proto: u8, b: &[u8]) {
    match proto {
        // TCP, UDP, DCCP, SCTP, UDP-Lite: ports first.
        6 | 17 | 33 | 132 | 136 => {
            let (Some(s), Some(d)) = (be16(b, 0), be16(b, 2)) else {
                f.truncated = true;
                return;
            };
            f.sport = Some(s);
            f.dport = Some(d);
            if proto == 6 {
                match b.get(13) {
                    Some(&fl) => f.tcp_flags = Some(tcp_flags(fl)),
                    None => f.truncated = true,
                }
            }
        }
        1 | 58 => {
            let (Some(&t), Some(&c)) = (b.first(), b.get(1)) else {
                f.truncated = true;
                return;
            };
            f.icmp_type = Some(t);
            f.icmp_code = Some(c);
            icmp_error(f, proto, t, c, b);
        }
        _ => {}
    }
}

/// An ICMP error (v4: unreachable, time exceeded, parameter problem; v6:
/// types below 128) quotes the header of the packet it is about after its
/// 8-byte header: parsed as a flow of its own, with the MTU a
/// frag-needed / packet-too-big announces.
fn icmp_error(f: &mut Flow, proto: u8, t: u8, c: u8, b: &[u8]) {
    let (error, et) = match proto {
        1 => (matches!(t, 3 | 11 | 12), ETH_IPV4),
        _ => (t < 128, ETH_IPV6),
    };
    if !error {
        return;
    }
    f.icmp_mtu = match (proto, t, c) {
        (1, 3, 4) => be16(b, 6).map(u32::from),
        (58, 2, _) => bytes::<4>(b, 4).map(u32::from_be_bytes),
        _ => None,
    };
    if let Some(q) = b.get(8..).filter(|q| !q.is_empty()) {
        let mut inner = Flow::default();
        network(&mut inner, et, q);
        // A quote is cut short by design: not a capture problem.
        inner.l4_csum = None;
        f.icmp_quote = Some(Box::new(inner));
    }
}

fn tcp_flags(fl: u8) -> String {
    // tcpdump's letters and order, with A for ACK instead of '.'.
    const LETTERS: [(u8, char); 8] = [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, 'A'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
    ];
    let s: String = LETTERS
        .iter()
        .filter(|(bit, _)| fl & bit != 0)
        .map(|&(_, c)| c)
        .collect();
    if s.is_empty() {
        "none".into()
    } else {
        s
    }
}

fn arp(f: &mut Flow, b: &[u8]) {
    f.l3 = "arp";
    let (Some(ptype), Some(&hlen), Some(&plen), Some(op)) =
        (be16(b, 2), b.get(4), b.get(5), be16(b, 6))
    else {
        f.truncated = true;
        return;
    };
    if ptype != 0x0800 || plen != 4 {
        return; // not ARP for IPv4: nothing this model can show
    }
    let h = usize::from(hlen);
    let sha = bytes::<6>(b, 8).filter(|_| h == 6);
    let (Some(spa), Some(tpa)) = (bytes::<4>(b, 8 + h), bytes::<4>(b, 8 + h + 4 + h)) else {
        f.truncated = true;
        return;
    };
    f.arp = Some(Arp {
        op: match op {
            1 => "request".into(),
            2 => "reply".into(),
            n => n.to_string(),
        },
        sender: Ipv4Addr::from(spa),
        target: Ipv4Addr::from(tpa),
        sender_mac: sha.map(mac),
    });
}
