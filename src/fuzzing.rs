//! Fuzz target bodies: one function per parser of hostile input, taking raw
//! bytes. The cargo-fuzz targets (fuzz/fuzz_targets/) and the bounded smoke
//! test (tests/fuzz_smoke.rs) both call these, so what CI replays on every
//! run is exactly what the long fuzzing runs exercised.
//!
//! Hostile input here means bytes netwhy does not control: packet headers
//! captured from the wire, netlink answers (rtnetlink, ctnetlink, nftables,
//! sock_diag) and x_tables blobs from a namespace that another tenant may
//! own, and classic BPF programs. Each body parses, then renders the result
//! the way netwhy's output does, because rendering reads the parsed fields
//! again (lengths, offsets, names). Errors are expected; panics are bugs.
//!
//! Where a parser needs a parameter besides the bytes (a header kind, an
//! address family), the first input byte picks it, so one corpus file is one
//! complete call.
use std::net::SocketAddr;

use crate::filter::cbpf::{self, Insn};
use crate::packet::{self, HdrKind};
use crate::state::iptables::{parse as ipt, Family};
use crate::state::netlink::messages;
use crate::state::{addr, conntrack, neigh, nft_rule, nftlist, nftrace, route, sockets, tcbpf};

/// A target body: any bytes in, no result; only a panic counts.
pub type Target = fn(&[u8]);

/// Every target by name, as the fuzz crate and `scripts/fuzz` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("packet", packet),
    ("nft_expr", nft_expr),
    ("nftables", nftables),
    ("conntrack", conntrack),
    ("rtnetlink", rtnetlink),
    ("sock_diag", sock_diag),
    ("iptables", iptables),
    ("cbpf", cbpf),
];

/// Captured header bytes. First byte: bits 0-1 the header kind (Ethernet,
/// network header with the version nibble deciding, network header of the
/// ethertype in the next two bytes, nothing); bit 2 a hardware VLAN tag
/// whose id is the remaining bits.
pub fn packet(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (kind, bytes) = match sel & 3 {
        0 => (HdrKind::Eth, rest),
        1 => (HdrKind::L3 { ethertype: 0 }, rest),
        2 if rest.len() >= 2 => {
            let ethertype = u16::from_be_bytes([rest[0], rest[1]]);
            (HdrKind::L3 { ethertype }, &rest[2..])
        }
        _ => (HdrKind::None, rest),
    };
    let hw_vlan = (sel & 4 != 0).then_some(u16::from(sel >> 3));
    let flow = packet::parse(kind, bytes, hw_vlan);
    let _ = flow.to_string();
    let _ = serde_json::to_string(&flow);
}

/// An NFTA_RULE_EXPRESSIONS payload, decoded and judged as `explain` and
/// `doctor` do.
pub fn nft_expr(data: &[u8]) {
    let exprs = nft_rule::parse_exprs(data);
    let _ = nft_rule::action(&exprs);
    let _ = nft_rule::matches_everything(&exprs);
    let _ = nft_rule::matches_ct_invalid(&exprs);
    let _ = nft_rule::describe(&exprs);
}

/// An nfnetlink receive buffer from the nftables subsystem: rule and chain
/// dumps and nftrace events, dispatched by message type as netwhy does.
pub fn nftables(data: &[u8]) {
    const NFT_MSG_NEWCHAIN: u16 = 10 << 8 | 3;
    const NFT_MSG_NEWRULE: u16 = 10 << 8 | 6;
    const NFT_MSG_TRACE: u16 = 10 << 8 | 17;
    for (ty, _, _, body) in messages(data) {
        match ty {
            NFT_MSG_NEWCHAIN => {
                let _ = nftlist::parse_chain(body);
            }
            NFT_MSG_NEWRULE if body.len() >= 4 => {
                if let Some(r) = nftrace::parse_rule(body[0], &body[4..]) {
                    let _ = (r.action(), r.text());
                }
            }
            NFT_MSG_TRACE if body.len() >= 4 => {
                if let Some(ev) = nftrace::parse_trace(body[0], &body[4..]) {
                    let _ = ev.is_drop();
                    let _ = nftrace::drops_by_packet(&[ev]);
                }
            }
            _ => {}
        }
    }
}

/// A ctnetlink dump buffer; each entry is also explained against its own
/// reversed original tuple, as a reply that missed NAT would be.
pub fn conntrack(data: &[u8]) {
    for (_, _, _, body) in messages(data) {
        if let Some(e) = conntrack::parse_ct_msg(body) {
            let _ = e.to_string();
            let _ = conntrack::explain_nat_mismatch(&e, &e.orig.reversed());
        }
    }
}

/// An rtnetlink receive buffer: links, addresses, routes (dump entries and
/// the answer to a route lookup), neighbours and tc filters.
pub fn rtnetlink(data: &[u8]) {
    const RTM_NEWLINK: u16 = 16;
    const RTM_NEWADDR: u16 = 20;
    const RTM_NEWROUTE: u16 = 24;
    const RTM_NEWNEIGH: u16 = 28;
    const RTM_NEWTFILTER: u16 = 44;
    for (ty, _, _, body) in messages(data) {
        match ty {
            RTM_NEWLINK => {
                let _ = addr::parse_link(body);
            }
            RTM_NEWADDR => {
                let _ = addr::parse_addr(body);
            }
            RTM_NEWROUTE => {
                if let Some(r) = addr::parse_route_entry(body) {
                    let _ = addr::prefix_contains(r.dst, r.dst_len, r.dst);
                }
                let _ = route::parse_route(body);
            }
            RTM_NEWNEIGH => {
                let _ = neigh::parse(body).map(|(_, n)| n.state.to_string());
            }
            RTM_NEWTFILTER => {
                let _ = tcbpf::parse_filter(body);
            }
            _ => {}
        }
    }
}

/// A sock_diag dump buffer. First byte: the IP protocol asked for (any
/// other value means UDP). The sockets are then searched and explained as
/// for a NO_SOCKET drop to the first socket's local address.
pub fn sock_diag(data: &[u8]) {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let proto = sockets::Proto::from_number(p).unwrap_or(sockets::Proto::Udp);
    let socks: Vec<_> = messages(rest)
        .filter_map(|(_, _, _, body)| sockets::parse_diag_msg(body, proto))
        .collect();
    for s in &socks {
        let _ = s.to_string();
        let _ = s.accept_queue();
    }
    if let Some(s) = socks.first() {
        let dst = SocketAddr::new(s.local.ip(), s.local.port());
        let _ = sockets::pick(&socks, proto, dst, s.remote);
        let _ = sockets::explain_no_socket_in(&socks, proto, dst);
    }
}

/// An x_tables table as IPT_SO_GET_INFO and IPT_SO_GET_ENTRIES return it.
/// First byte: bit 0 picks IPv6; then the 84-byte ipt_getinfo, then the
/// entries.
pub fn iptables(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let fam = if sel & 1 == 0 {
        Family::Ipv4
    } else {
        Family::Ipv6
    };
    let Some(info) = ipt::TableInfo::parse(rest) else {
        return;
    };
    if let Ok(rules) = ipt::rules(fam, "filter", &info, &rest[ipt::GETINFO_LEN..]) {
        let _ = serde_json::to_string(&rules);
    }
}

/// A classic BPF program and a packet. First byte: the instruction count
/// (up to 255, past the interpreter's limit); then that many 8-byte
/// `struct sock_filter`s, then the packet. Only a program the validator
/// accepts is run, as netwhy only runs those.
pub fn cbpf(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len() / 8);
    let (code, pkt) = rest.split_at(n * 8);
    let prog: Vec<Insn> = code
        .chunks_exact(8)
        .map(|c| {
            let k = u32::from_ne_bytes([c[4], c[5], c[6], c[7]]);
            Insn::new(u16::from_ne_bytes([c[0], c[1]]), c[2], c[3], k)
        })
        .collect();
    if cbpf::validate(&prog).is_ok() {
        let _ = cbpf::run(&prog, pkt, pkt.len() as u32);
    }
}
