//! Findings of one capture that are one incident. A drop can cause
//! another: a router drops a packet too big for its next hop and sends
//! ICMP frag-needed back, and a firewall rule drops that ICMP (on the
//! router's own output, a router on the way back, the sender's input).
//! Each drop alone makes a finding that is true but misleading: "lower the
//! MTU" and "delete this rule" miss that the rule breaks path MTU
//! discovery. Here the two become one finding with the chain of evidence.
//!
//! The link is the packets, never the two findings merely co-occurring: an
//! ICMP error quotes the header of the packet it is about, and only an
//! ICMP whose quote is the too-big packet's flow joins its finding.
use std::net::IpAddr;

use super::clues::{in_ns, Clues, Subject};
use super::finding::{explain_key, Finding};
use super::kb::specific;
use crate::event::DropEvent;
use crate::packet::Flow;

/// Is this an ICMP frag-needed / ICMPv6 packet-too-big (the message that
/// carries the path MTU back)? Gives its IP protocol number.
fn too_big_icmp(f: &Flow) -> Option<u8> {
    match f.proto.as_deref() {
        Some("icmp") if f.icmp_type == Some(3) && f.icmp_code == Some(4) => Some(1),
        Some("icmpv6") if f.icmp_type == Some(2) => Some(58),
        _ => None,
    }
}

/// Addresses, protocol and ports of a flow.
type FlowKey<'a> = (
    Option<IpAddr>,
    Option<IpAddr>,
    Option<&'a str>,
    Option<u16>,
    Option<u16>,
);

/// The flow key an ICMP quote must repeat: addresses, protocol, ports.
fn key(f: &Flow) -> FlowKey<'_> {
    (f.src, f.dst, f.proto.as_deref(), f.sport, f.dport)
}

/// An ICMP frag-needed (v4 type 3 code 4) or packet-too-big (v6 type 2)
/// about `big`: its quote is `big`'s flow.
fn is_about(icmp: &Flow, big: &Flow) -> bool {
    too_big_icmp(icmp).is_some()
        && big.src.is_some()
        && icmp
            .icmp_quote
            .as_deref()
            .is_some_and(|q| key(q) == key(big))
}

/// A (too-big drop, ICMP drop) pair of `events` whose ICMP quotes the
/// too-big packet, for each distinct ICMP-drop group.
fn pairs(events: &[DropEvent]) -> Vec<(&DropEvent, &DropEvent)> {
    let big: Vec<&DropEvent> = events
        .iter()
        .filter(|e| e.reason == "PKT_TOO_BIG")
        .collect();
    let mut out: Vec<(&DropEvent, &DropEvent)> = Vec::new();
    for icmp in events.iter().filter(|e| e.flow.icmp_quote.is_some()) {
        if out.iter().any(|(_, i)| explain_key(i) == explain_key(icmp)) {
            continue;
        }
        if let Some(b) = big.iter().find(|b| is_about(&icmp.flow, &b.flow)) {
            out.push((b, icmp));
        }
    }
    out
}

fn at(e: &DropEvent) -> String {
    let ns = e.netns_name.clone().unwrap_or_else(|| e.netns.to_string());
    let dev = e
        .dev
        .as_deref()
        .map(|d| format!(" on {d}"))
        .unwrap_or_default();
    format!("{} at {} in {ns}{dev}", e.reason, e.location.symbol)
}

/// Joins each too-big drop and the drop of the ICMP error sent for it into
/// one `pmtu-blackhole` finding, put first; the two findings they were go.
/// The ICMP's finding already has the rule that dropped it (the rule
/// attribution of `diagnose::rules` traces portless drops too).
pub fn pmtu_blackholes(findings: &mut Vec<Finding>, events: &[DropEvent]) {
    let mut joined = Vec::new();
    for (big, icmp) in pairs(events) {
        let of = |e: &DropEvent| {
            findings
                .iter()
                .position(|f| f.sample.as_ref().map(explain_key) == Some(explain_key(e)))
        };
        let (Some(bi), Some(ii)) = (of(big), of(icmp)) else {
            continue;
        };
        if bi == ii {
            continue;
        }
        let b = findings[bi].clone();
        let i = findings[ii].clone();
        joined.push(join(&b, &i, big, icmp));
        // The higher index first, so the lower one stays valid.
        for k in [bi.max(ii), bi.min(ii)] {
            findings.remove(k);
        }
    }
    for (n, f) in joined.into_iter().enumerate() {
        findings.insert(n, f);
    }
}

fn join(b: &Finding, i: &Finding, big: &DropEvent, icmp: &DropEvent) -> Finding {
    let v6 = icmp.flow.proto.as_deref() == Some("icmpv6");
    let what = if v6 {
        "ICMPv6 packet-too-big"
    } else {
        "ICMP frag-needed"
    };
    let size = big.flow.len.unwrap_or(big.len);
    let mtu = icmp
        .flow
        .icmp_mtu
        .map_or_else(|| "?".to_string(), |m| m.to_string());
    let mut c = Clues {
        cause: Some(specific::PMTU_BLACKHOLE),
        ..Clues::default()
    };
    c.line(format!(
        "1. the packet {} of {size} bytes was too big for the next hop (MTU {mtu}): dropped \
         as {} ({} time(s))",
        big.flow,
        at(big),
        b.count
    ));
    c.line(format!(
        "2. the {what} sent back for it ({}, MTU {mtu}) quotes that very packet ({}): dropped \
         as {} ({} time(s))",
        icmp.flow,
        icmp.flow
            .icmp_quote
            .as_deref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        at(icmp),
        i.count
    ));
    c.line(format!(
        "3. the sender {} never learns the path MTU: its large packets keep being dropped, \
         small ones pass",
        big.flow.src.map(|a| a.to_string()).unwrap_or_default()
    ));
    let (allow, what_rule) = if v6 {
        ("icmpv6 type packet-too-big accept", "ICMPv6 packet-too-big")
    } else {
        (
            "icmp type destination-unreachable icmp code frag-needed accept",
            "ICMP frag-needed",
        )
    };
    let ns = in_ns(icmp.netns_name.as_deref());
    let mut ruled = false;
    for s in &i.subjects {
        if let Subject::NftRule {
            family,
            table,
            chain,
            handle,
            ..
        } = s
        {
            ruled = true;
            let pos = handle.map(|h| format!(" position {h}")).unwrap_or_default();
            c.fix(format!(
                "let {what_rule} through before the drop: {ns}nft insert rule {family} {table} \
                 {chain}{pos} {allow}"
            ));
        }
    }
    if !ruled {
        c.fix(format!(
            "let {what_rule} through in the firewall of {} before the rule that drops it \
             ({allow})",
            icmp.netns_name.as_deref().unwrap_or("the drop's netns")
        ));
    }
    let mut f = i.clone();
    let ev = std::mem::take(&mut f.evidence);
    let subjects = std::mem::take(&mut f.subjects);
    f.absorb(c);
    f.evidence.extend(ev);
    f.evidence
        .extend(b.evidence.iter().map(|l| format!("too-big drop: {l}")));
    f.subjects.extend(subjects);
    for s in &b.subjects {
        if !f.subjects.contains(s) {
            f.subjects.push(s.clone());
        }
    }
    f.count = f.count.max(b.count);
    let mut flows = b.flows.clone();
    flows.extend(i.flows.iter().cloned());
    flows.dedup();
    f.flows = flows;
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::finding::{explain, tests::event};

    fn v4(src: &str, dst: &str, proto: &str, sport: u16, dport: u16) -> Flow {
        Flow {
            l3: "ipv4",
            proto: Some(proto.into()),
            src: src.parse().ok(),
            dst: dst.parse().ok(),
            sport: Some(sport),
            dport: Some(dport),
            len: Some(1428),
            ..Flow::default()
        }
    }

    fn frag_needed(quote: Flow) -> Flow {
        Flow {
            l3: "ipv4",
            proto: Some("icmp".into()),
            src: "198.18.1.1".parse().ok(),
            dst: "198.18.1.2".parse().ok(),
            icmp_type: Some(3),
            icmp_code: Some(4),
            icmp_mtu: Some(1280),
            icmp_quote: Some(Box::new(quote)),
            ..Flow::default()
        }
    }

    fn drops(big_flow: Flow, icmp_flow: Flow) -> Vec<DropEvent> {
        let mut big = event("PKT_TOO_BIG", "ip_forward");
        big.flow = big_flow;
        big.site.netns = 1;
        let mut icmp = event("NETFILTER_DROP", "nft_do_chain");
        icmp.flow = icmp_flow;
        icmp.site.netns = 2;
        vec![big.clone(), big, icmp]
    }

    fn rule() -> Subject {
        Subject::NftRule {
            family: "inet".into(),
            table: "fw".into(),
            chain: "input".into(),
            handle: Some(4),
            text: "ip protocol icmp drop".into(),
        }
    }

    #[test]
    fn icmp_quoting_the_too_big_packet_joins_it() {
        let big = v4("198.18.1.2", "198.18.2.2", "udp", 40000, 5304);
        let ev = drops(big.clone(), frag_needed(big));
        let mut f = explain(&ev, None);
        assert_eq!(f.len(), 2);
        for x in &mut f {
            if x.reason == "NETFILTER_DROP" {
                x.subjects.push(rule());
            }
        }
        pmtu_blackholes(&mut f, &ev);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].cause, specific::PMTU_BLACKHOLE.id);
        assert_eq!(f[0].subjects[0], rule());
        assert!(f[0].fix[0].contains(
            "nft insert rule inet fw input position 4 icmp type destination-unreachable"
        ));
        assert!(f[0].evidence[0].contains("MTU 1280"), "{:?}", f[0].evidence);
        assert!(f[0].evidence[1].contains("quotes that very packet"));
    }

    /// Co-occurring is not enough: an ICMP about another flow stays apart.
    #[test]
    fn icmp_about_another_flow_stays_apart() {
        let big = v4("198.18.1.2", "198.18.2.2", "udp", 40000, 5304);
        let other = v4("198.18.1.2", "198.18.2.2", "udp", 40001, 5304);
        let ev = drops(big, frag_needed(other));
        let mut f = explain(&ev, None);
        pmtu_blackholes(&mut f, &ev);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|x| x.cause != specific::PMTU_BLACKHOLE.id));
        // Nor does an ICMP that is not frag-needed.
        let big = v4("198.18.1.2", "198.18.2.2", "udp", 40000, 5304);
        let mut unreach = frag_needed(big.clone());
        unreach.icmp_code = Some(3);
        let ev = drops(big, unreach);
        let mut f = explain(&ev, None);
        pmtu_blackholes(&mut f, &ev);
        assert_eq!(f.len(), 2);
    }
}
