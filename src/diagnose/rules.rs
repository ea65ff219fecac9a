//! Which firewall rule dropped a flow, found while the capture runs.
//!
//! nftables (and iptables-nft): the first NETFILTER_DROP at nft_do_chain in
//! a netns starts an nftrace tracer there for that flow (one per netns; the
//! tracer table is named after our pid), so the flow's next packets (TCP
//! retries, repeated queries) name the table, chain and rule; the rule's
//! expressions tell a reject from a drop, an iptables-nft REJECT target, or
//! a `ct state invalid` drop. Tracer tables are removed when the capture
//! ends (and by the kernel if netwhy dies: they are owner-bound).
use std::time::Duration;

use super::clues::{in_ns, Clues, Subject};
use crate::event::DropEvent;
use crate::state::nft_rule::{self, Action, Expr};
use crate::state::nftrace::{Matcher, TraceEvent, Tracer};

/// Rule attribution for the drops of one capture.
#[derive(Default)]
pub struct RuleWatch {
    active: Vec<(u32, Option<String>, Tracer, Option<&'static str>)>,
    failed: Vec<(u32, String)>,
}

impl RuleWatch {
    /// Sees every drop event; arms a tracer on the first nft drop of a netns.
    pub fn on_drop(&mut self, e: &DropEvent) {
        if e.reason != "NETFILTER_DROP" || e.location.symbol != "nft_do_chain" {
            return;
        }
        if self.active.iter().any(|(ns, ..)| *ns == e.netns)
            || self.failed.iter().any(|(ns, _)| *ns == e.netns)
        {
            return;
        }
        let proto = match e.flow.proto.as_deref() {
            Some("tcp") => 6,
            Some("udp") => 17,
            _ => return,
        };
        let Some(dport) = e.flow.dport else { return };
        let mut m = Matcher {
            l4proto: Some(proto),
            dport: Some(dport),
            daddr: None,
        };
        if let Some(std::net::IpAddr::V4(a)) = e.flow.dst {
            m = m.daddr(a);
        }
        match Tracer::start(e.netns, m) {
            Ok(t) => self
                .active
                .push((e.netns, e.netns_name.clone(), t, e.flow.l4_csum)),
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
        for (ns, name, mut t, csum) in self.active.drain(..) {
            let mut c = Clues::default();
            match t.collect(Duration::from_millis(300)) {
                Ok(drops) if drops.is_empty() => c.line(
                    "nftrace was armed after the first drop but saw no later packet of the \
                     flow (repeat the traffic while explain runs)",
                ),
                Ok(drops) => {
                    for d in drops.iter().take(3) {
                        attribute(d, name.as_deref(), csum, &mut c);
                    }
                }
                Err(err) => c.line(format!("nftrace failed: {err}")),
            }
            let _ = t.stop();
            out.push((ns, c));
        }
        out
    }
}

/// Evidence and diagnosis for one traced drop.
fn attribute(d: &TraceEvent, ns_name: Option<&str>, csum: Option<&str>, c: &mut Clues) {
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
            c.cause = c.cause.or(Some("nft-policy-drop"));
        }
        return;
    };
    let xt = rule
        .exprs
        .iter()
        .any(|e| matches!(e, Expr::XtTarget(_) | Expr::XtMatch(_)));
    let cause = match rule.action() {
        Action::Reject if xt => "iptables-reject",
        Action::Reject => "nft-reject",
        Action::Drop if nft_rule::matches_ct_invalid(&rule.exprs) => {
            if csum == Some("bad") {
                c.line(
                    "the dropped packet's layer-4 checksum is wrong (checked on the captured \
                     bytes): conntrack marked it invalid, and this rule drops invalid packets",
                );
                "ct-invalid-checksum"
            } else {
                "ct-invalid-drop"
            }
        }
        Action::Drop if xt => "iptables-drop",
        _ => "nft-rule-drop",
    };
    c.cause = c.cause.or(Some(cause));
    if cause != "ct-invalid-checksum" {
        c.fix(format!(
            "{ns}nft delete rule {fam} {} {} handle {}  (or narrow it so the flow is allowed)",
            d.table, d.chain, rule.handle
        ));
    }
}

fn family_name(f: u8) -> &'static str {
    match f {
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "inet",
    }
}
