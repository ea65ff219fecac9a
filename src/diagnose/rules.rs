//! Which firewall rule dropped a flow, found while the capture runs.
//!
//! iptables-legacy: x_tables has no tracing, so every legacy rule's packet
//! counter is snapshotted when the capture starts (for the namespaces the
//! user named) or at the first NETFILTER_DROP at nf_hook_slow in another
//! namespace, and again at the end; the DROP/REJECT rules whose counters
//! moved are the ones that dropped (what admins do by hand with
//! `iptables -L -v` before and after).
//!
//! nftables (and iptables-nft): the first NETFILTER_DROP at nft_do_chain in
//! a netns starts an nftrace tracer there for that flow (one per netns; the
//! tracer table is named after our pid), so the flow's next packets (TCP
//! retries, repeated queries) name the table, chain and rule; the rule's
//! expressions tell a reject from a drop, an iptables-nft REJECT target, or
//! a `ct state invalid` drop. Tracer tables are removed when the capture
//! ends (and by the kernel if netwhy dies: they are owner-bound).
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::checksum;
use super::clues::{in_ns, Clues, Subject};
use super::kb::specific;
use crate::event::DropEvent;
use crate::packet::Flow;
use crate::state::iptables::{self, LegacyRule};
use crate::state::nft_rule::{self, Action, Expr};
use crate::state::nftrace::{Matcher, TraceEvent, Tracer};

/// A tracer armed by the first nft drop of a netns.
struct Armed {
    ns: u32,
    name: Option<String>,
    tracer: Tracer,
    /// The drop that armed it: its bytes' checksum verdict is evidence.
    flow: Flow,
    /// Conntrack's invalid count when armed (see [`checksum`]).
    invalid: Option<u64>,
}

/// Rule attribution for the drops of one capture.
#[derive(Default)]
pub struct RuleWatch {
    active: Vec<Armed>,
    failed: Vec<(u32, String)>,
    /// Legacy rule counters at the start, per netns (and its name).
    legacy: BTreeMap<u32, (Option<String>, Vec<LegacyRule>)>,
}

impl RuleWatch {
    /// Snapshots legacy iptables counters in `ino` (once).
    pub fn watch_legacy(&mut self, ino: u32, name: Option<String>) {
        if self.legacy.contains_key(&ino) {
            return;
        }
        match iptables::snapshot(ino) {
            Ok(rules) => {
                self.legacy.insert(ino, (name, rules));
            }
            Err(err) => self
                .failed
                .push((ino, format!("iptables-legacy counters unreadable: {err}"))),
        }
    }

    /// Sees every drop event; arms a tracer on the first nft drop of a netns.
    pub fn on_drop(&mut self, e: &DropEvent) {
        if e.reason != "NETFILTER_DROP" {
            return;
        }
        if matches!(
            e.location.symbol.as_str(),
            "nf_hook_slow" | "ipt_do_table" | "ip6t_do_table"
        ) {
            self.watch_legacy(e.netns, e.netns_name.clone());
            return;
        }
        if e.location.symbol != "nft_do_chain" {
            return;
        }
        if self.active.iter().any(|a| a.ns == e.netns)
            || self.failed.iter().any(|(ns, _)| *ns == e.netns)
        {
            return;
        }
        let Some(m) = matcher_for(&e.flow) else {
            return;
        };
        match Tracer::start_on(e.netns, m, e.dev.as_deref()) {
            Ok(t) => self.active.push(Armed {
                ns: e.netns,
                name: e.netns_name.clone(),
                tracer: t,
                flow: e.flow.clone(),
                invalid: checksum::invalid_count(e.netns),
            }),
            Err(err) => self
                .failed
                .push((e.netns, format!("nftrace could not start: {err}"))),
        }
    }

    /// Ends the tracers; clues per netns for NETFILTER_DROP findings.
    pub fn finish(mut self) -> Vec<(u32, Clues)> {
        let mut out: Vec<(u32, Clues)> = std::mem::take(&mut self.failed)
            .into_iter()
            .map(|(ns, l)| {
                (
                    ns,
                    Clues {
                        lines: vec![l],
                        ..Clues::default()
                    },
                )
            })
            .collect();
        for a in self.active.drain(..) {
            let Armed {
                ns,
                name,
                tracer: mut t,
                flow,
                invalid,
            } = a;
            let invalid = (invalid, invalid.and(checksum::invalid_count(ns)));
            let mut c = Clues::default();
            match t.collect(Duration::from_millis(300)) {
                Ok(drops) if drops.is_empty() => {
                    c.line(
                        "nftrace was armed after the first drop but saw no later packet of the \
                         flow (repeat the traffic while explain runs)",
                    );
                    for u in t.unarmed() {
                        c.line(format!("nftrace could not trace this family: {u}"));
                    }
                }
                Ok(drops) => {
                    // One line per rule, however many packets it dropped.
                    let mut seen = Vec::new();
                    for d in &drops {
                        let k = (d.family, d.table.clone(), d.chain.clone(), d.rule_handle);
                        if !seen.contains(&k) && seen.len() < 3 {
                            seen.push(k);
                            attribute(d, name.as_deref(), (&flow, invalid), &mut c);
                        }
                    }
                }
                Err(err) => c.line(format!("nftrace failed: {err}")),
            }
            let _ = t.stop();
            out.push((ns, c));
        }
        for (ns, (name, before)) in std::mem::take(&mut self.legacy) {
            let Ok(after) = iptables::snapshot(ns) else {
                continue;
            };
            let c = legacy_clues(&iptables::moved(&before, &after), name.as_deref());
            if !c.lines.is_empty() {
                out.push((ns, c));
            }
        }
        out
    }
}

/// Clues from legacy rules whose counters moved: the DROP/REJECT rules (and
/// DROP policies) decide; jumps that led there are shown as the path.
fn legacy_clues(moved: &[(LegacyRule, u64)], ns_name: Option<&str>) -> Clues {
    let mut c = Clues::default();
    let ns = in_ns(ns_name);
    for (r, n) in moved {
        let verdict = match (r.target.as_str(), r.policy) {
            ("REJECT", _) => Some(specific::IPTABLES_LEGACY_REJECT),
            ("DROP", _) => Some(specific::IPTABLES_LEGACY_DROP),
            _ => None,
        };
        let what = if r.policy {
            format!("policy {} of chain {}", r.target, r.chain)
        } else {
            format!(
                "rule {} of chain {} (-j {}: {})",
                r.index, r.chain, r.target, r.summary
            )
        };
        let line = format!(
            "iptables-legacy: table {} {what}: counter +{n} packets during the capture",
            r.table
        );
        if verdict.is_none() {
            // A jump or accept on the way; only worth a line if it jumps.
            if !matches!(r.target.as_str(), "ACCEPT" | "RETURN" | "") {
                c.line(line);
            }
            continue;
        }
        c.line(line);
        c.cause = c.cause.or(verdict);
        c.subjects.push(Subject::IptablesRule {
            table: r.table.clone(),
            chain: r.chain.clone(),
            index: r.index,
            target: r.target.clone(),
        });
        let cmd = if r.family == iptables::Family::Ipv6 {
            "ip6tables-legacy"
        } else {
            "iptables-legacy"
        };
        if r.policy {
            c.fix(format!(
                "{ns}{cmd} -t {} -I {} <match the flow> -j ACCEPT  (the chain's policy drops it)",
                r.table, r.chain
            ));
        } else {
            c.fix(format!(
                "{ns}{cmd} -t {} -D {} {}  (or insert an ACCEPT for the flow before it: -I {} {})",
                r.table, r.chain, r.index, r.chain, r.index
            ));
        }
    }
    c
}

/// Evidence and diagnosis for one traced drop.
/// `armed`: the drop that armed the tracer, and conntrack's invalid count
/// then and at the end.
fn attribute(
    d: &TraceEvent,
    ns_name: Option<&str>,
    armed: (&Flow, (Option<u64>, Option<u64>)),
    c: &mut Clues,
) {
    let fam = family_name(d.family);
    let handle = d
        .rule_handle
        .map(|h| h.to_string())
        .unwrap_or_else(|| "(chain policy)".into());
    let text = d.rule.as_ref().map(|r| r.text()).unwrap_or_default();
    let mut line = format!(
        "nftrace: dropped by table {fam} {} chain {} rule handle {handle}",
        d.table, d.chain
    );
    if let Some(cm) = &d.comment {
        line += &format!(" (comment \"{cm}\")");
    }
    if !text.is_empty() {
        line += &format!(": {text}");
    }
    line += &format!(
        "; see it with: nft -a list chain {fam} {} {}",
        d.table, d.chain
    );
    c.line(line);
    c.subjects.push(Subject::NftRule {
        family: fam.into(),
        table: d.table.clone(),
        chain: d.chain.clone(),
        handle: d.rule_handle,
        text,
    });
    let ns = in_ns(ns_name);
    let Some(rule) = &d.rule else {
        if d.rule_handle.is_none() {
            c.cause = c.cause.or(Some(specific::NFT_POLICY_DROP));
        }
        return;
    };
    let xt = rule
        .exprs
        .iter()
        .any(|e| matches!(e, Expr::XtTarget(_) | Expr::XtMatch(_)));
    let cause = match rule.action() {
        Action::Reject if xt => specific::IPTABLES_REJECT,
        Action::Reject => specific::NFT_REJECT,
        Action::Drop if nft_rule::matches_ct_invalid(&rule.exprs) => match checksum::bad(armed.0) {
            Some(bad) => {
                checksum::explain(bad, armed.0, armed.1, ns_name, c);
                specific::CT_INVALID_CHECKSUM
            }
            None => specific::CT_INVALID_DROP,
        },
        Action::Drop if xt => specific::IPTABLES_DROP,
        _ => specific::NFT_RULE_DROP,
    };
    c.cause = c.cause.or(Some(cause));
    if cause.id != specific::CT_INVALID_CHECKSUM.id {
        c.fix(format!(
            "{ns}nft delete rule {fam} {} {} handle {}  (or narrow it so the flow is allowed)",
            d.table, d.chain, rule.handle
        ));
    }
}

/// What to trace for a dropped packet: its protocol, its destination port
/// when it has one, and its destination address. Packets without ports
/// count too: an ICMP "fragmentation needed" a router generates and its own
/// output chain drops is the PMTU black hole's missing piece, and the
/// tracer's output-hook chain traces such locally generated packets.
///
/// An ARP packet (an arp family rule dropped it) is traced by the address
/// it asks for or answers to.
fn matcher_for(flow: &Flow) -> Option<Matcher> {
    if let Some(a) = &flow.arp {
        return Some(Matcher::default().arp_tpa(a.target));
    }
    let proto = match flow.proto.as_deref()? {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        "sctp" => 132,
        other => other.parse().ok()?,
    };
    let mut m = Matcher {
        l4proto: Some(proto),
        ..Matcher::default()
    };
    if matches!(proto, 6 | 17 | 132) {
        // A portless TCP/UDP packet (a non-first fragment) is not the flow.
        m.dport = Some(flow.dport?);
    }
    match flow.dst {
        Some(IpAddr::V4(a)) => m = m.daddr(a),
        Some(IpAddr::V6(a)) => m = m.daddr6(a),
        None => {}
    }
    Some(m)
}

fn family_name(f: u8) -> &'static str {
    crate::state::nftrace::family_label(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(proto: &str, dst: &str, dport: Option<u16>) -> Flow {
        Flow {
            proto: Some(proto.into()),
            dst: dst.parse().ok(),
            dport,
            ..Flow::default()
        }
    }

    #[test]
    fn portless_packets_are_traced_by_protocol_and_address() {
        let m = matcher_for(&flow("icmp", "198.18.1.2", None)).expect("icmp");
        assert_eq!(
            (m.l4proto, m.dport, m.daddr),
            (Some(1), None, Some([198, 18, 1, 2].into()))
        );
        let m = matcher_for(&flow("icmpv6", "fd00:18::1", None)).expect("icmpv6");
        assert_eq!(
            (m.l4proto, m.daddr, m.daddr6),
            (Some(58), None, "fd00:18::1".parse().ok())
        );
        let m = matcher_for(&flow("tcp", "fd00:18::2", Some(443))).expect("tcp6");
        assert_eq!((m.l4proto, m.dport), (Some(6), Some(443)));
        assert!(m.daddr6.is_some());
        // A non-first fragment: no port, so no flow to trace.
        assert_eq!(matcher_for(&flow("udp", "198.18.0.2", None)), None);
        assert_eq!(matcher_for(&Flow::default()), None);
        let arp = Flow {
            arp: Some(crate::packet::Arp {
                op: "request".into(),
                sender: [198, 18, 0, 1].into(),
                target: [198, 18, 0, 2].into(),
                sender_mac: None,
            }),
            ..Flow::default()
        };
        let m = matcher_for(&arp).expect("arp");
        assert_eq!((m.arp_tpa, m.l4proto), (Some([198, 18, 0, 2].into()), None));
        assert_eq!(
            matcher_for(&flow("47", "198.18.0.2", None)).and_then(|m| m.l4proto),
            Some(47)
        );
    }
}
