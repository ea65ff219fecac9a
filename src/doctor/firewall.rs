//! Catch-all DROP/REJECT rules that hide the rules after them.
//!
//! A rule with no match at all (only counter/log and a drop or reject)
//! ends evaluation for every packet that reaches it, so every later rule
//! in the same chain is dead: an ACCEPT appended after it (the libvirt
//! case: `-A LIBVIRT_FWI ... -j REJECT --reject-with icmp-port-unreachable`
//! before the user's accept) never matches, and the packets are rejected.
//! A catch-all as the *last* rule is an ordinary default-deny and is fine.
//! iptables-nft rules are covered: their `-j REJECT` / `-j DROP` are xt
//! targets or native verdicts in the same ruleset dump.
use super::{Finding, NsState, Severity};
use crate::state::nft::list::{family_name, hook_name, ChainRules};
use crate::state::nft::rule::{matches_everything, Action, Expr};
use crate::state::nft::trace::RuleInfo;
use crate::state::nft::NFPROTO_IPV6;

pub const ID: &str = "firewall-catch-all";

/// Index of the first rule in `rules` that drops or rejects everything
/// and is followed by at least one rule. Later catch-alls are themselves
/// shadowed by the first, so only the first is reported.
pub fn first_catch_all(rules: &[RuleInfo]) -> Option<usize> {
    rules.iter().enumerate().find_map(|(i, r)| {
        let ends = matches!(r.action(), Action::Drop | Action::Reject);
        (ends && matches_everything(&r.exprs) && i + 1 < rules.len()).then_some(i)
    })
}

fn is_xt(r: &RuleInfo) -> bool {
    r.exprs
        .iter()
        .any(|e| matches!(e, Expr::XtTarget(_) | Expr::XtMatch(_)))
}

/// The rule in nft syntax, for a rule made only of counter/log/verdict.
fn nft_text(r: &RuleInfo) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for e in &r.exprs {
        parts.push(match e {
            Expr::Counter => "counter",
            Expr::Log => "log",
            Expr::Reject { kind: 1, .. } => "reject with tcp reset",
            Expr::Reject { .. } => "reject",
            _ if r.action() == Action::Drop => "drop",
            _ => continue,
        });
    }
    parts.dedup();
    parts.join(" ")
}

fn chain_label(c: &ChainRules) -> String {
    format!(
        "{} {} {}",
        family_name(c.chain.family),
        c.chain.table,
        c.chain.name
    )
}

fn rule_label(r: &RuleInfo) -> String {
    let mut s = format!("handle {} ({})", r.handle, r.text());
    if let Some(c) = &r.comment {
        s += &format!(" comment \"{c}\"");
    }
    s
}

/// A finding for the catch-all at `i` in chain `c`.
fn finding(st: &NsState, c: &ChainRules, i: usize) -> Finding {
    let rule = &c.rules[i];
    let later = &c.rules[i + 1..];
    let hidden_outcomes = later
        .iter()
        .any(|r| !matches!(r.action(), Action::Drop | Action::Reject));
    let sev = if hidden_outcomes {
        Severity::Warning
    } else {
        Severity::Info
    };
    let label = chain_label(c);
    let kind = match c.chain.hook {
        Some((h, p)) => format!(
            "base chain, hook {}, priority {p}",
            hook_name(c.chain.family, h)
        ),
        None => "regular chain, entered by jump/goto".to_string(),
    };
    let mut f = Finding::new(st, ID, sev, format!("{label} handle {}", rule.handle))
        .seen(format!(
            "rule {} in chain {label} ({kind}) has no match: every packet that reaches it is {}",
            rule_label(rule),
            if rule.action() == Action::Reject {
                "rejected"
            } else {
                "dropped"
            }
        ))
        .seen(format!(
            "{} later rule(s) in the chain can never match:",
            later.len()
        ));
    for r in later.iter().take(8) {
        f = f.seen(format!("  {}", rule_label(r)));
    }
    if later.len() > 8 {
        f = f.seen(format!("  ... and {} more", later.len() - 8));
    }
    let accepts: Vec<String> = later
        .iter()
        .filter(|r| r.action() == Action::Accept)
        .map(|r| r.handle.to_string())
        .collect();
    if !accepts.is_empty() {
        f = f.seen(format!(
            "hidden ACCEPT rule(s): handle {} (their packets are refused instead)",
            accepts.join(", ")
        ));
    }
    let fam = family_name(c.chain.family);
    let (table, chain) = (&c.chain.table, &c.chain.name);
    if is_xt(rule) {
        let tool = if c.chain.family == NFPROTO_IPV6 {
            "ip6tables"
        } else {
            "iptables"
        };
        let t = if table == "filter" {
            String::new()
        } else {
            format!("-t {table} ")
        };
        let target = if rule.action() == Action::Reject {
            "REJECT"
        } else {
            "DROP"
        };
        f = f
            .fix("# an iptables-nft rule: move it to the end of its chain")
            .fix(st.cmd(&format!("{tool} {t}-D {chain} {}", i + 1)))
            .fix(st.cmd(&format!("{tool} {t}-A {chain} -j {target}")));
    } else {
        f = f
            .fix("# move the catch-all to the end of its chain (delete, then append)")
            .fix(st.cmd(&format!(
                "nft delete rule {fam} {table} {chain} handle {}",
                rule.handle
            )))
            .fix(st.cmd(&format!(
                "nft add rule {fam} {table} {chain} {}",
                nft_text(rule)
            )));
    }
    f.fix("# or, if the later rules are obsolete, delete them instead")
}

pub fn check(st: &NsState) -> Vec<Finding> {
    let Some(rs) = &st.ruleset else {
        return Vec::new();
    };
    rs.iter()
        .filter_map(|c| first_catch_all(&c.rules).map(|i| finding(st, c, i)))
        .collect()
}

#[cfg(test)]
// Fixtures are built field by field from an empty namespace state.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::state::nft::list::Chain;
    use crate::state::nft::Verdict;
    use crate::state::nft::{NFPROTO_INET, NFPROTO_IPV4};

    fn rule(handle: u64, exprs: Vec<Expr>) -> RuleInfo {
        RuleInfo {
            family: NFPROTO_INET,
            table: "t".into(),
            chain: "input".into(),
            handle,
            comment: None,
            exprs,
        }
    }

    fn tcp_dport_accept(h: u64) -> RuleInfo {
        rule(
            h,
            vec![
                Expr::Payload {
                    base: 2,
                    offset: 2,
                    len: 2,
                },
                Expr::Cmp {
                    op: 0,
                    data: vec![0, 22],
                },
                Expr::Verdict(Verdict::Accept),
            ],
        )
    }

    fn chain(family: u8, rules: Vec<RuleInfo>) -> ChainRules {
        ChainRules {
            chain: Chain {
                family,
                table: "t".into(),
                name: "input".into(),
                hook: Some((1, 0)),
                policy: Some(1),
                kind: Some("filter".into()),
            },
            rules,
        }
    }

    #[test]
    fn catch_all_reject_before_accept() {
        let rules = vec![
            tcp_dport_accept(2),
            rule(
                3,
                vec![
                    Expr::Counter,
                    Expr::Reject {
                        kind: 0,
                        code: Some(3),
                    },
                ],
            ),
            tcp_dport_accept(4),
        ];
        assert_eq!(first_catch_all(&rules), Some(1));
        let mut st = NsState::default();
        st.target.exec_prefix = Some("ip netns exec x".into());
        st.ruleset = Some(vec![chain(NFPROTO_INET, rules)]);
        let f = check(&st);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "inet t input handle 3");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0]
            .evidence
            .iter()
            .any(|e| e.contains("hidden ACCEPT rule(s): handle 4")));
        assert!(f[0]
            .fix
            .contains(&"ip netns exec x nft delete rule inet t input handle 3".to_string()));
        assert!(f[0]
            .fix
            .contains(&"ip netns exec x nft add rule inet t input counter reject".to_string()));
    }

    #[test]
    fn last_rule_default_deny_and_matching_rules_are_fine() {
        let deny_last = vec![
            tcp_dport_accept(2),
            rule(3, vec![Expr::Verdict(Verdict::Drop)]),
        ];
        assert_eq!(first_catch_all(&deny_last), None);
        let matching_reject = vec![
            rule(
                2,
                vec![
                    Expr::Meta { key: 7 },
                    Expr::Cmp {
                        op: 0,
                        data: b"virbr0\0".to_vec(),
                    },
                    Expr::Reject {
                        kind: 0,
                        code: Some(3),
                    },
                ],
            ),
            tcp_dport_accept(3),
        ];
        assert_eq!(first_catch_all(&matching_reject), None);
        let catch_all_accept = vec![
            rule(2, vec![Expr::Verdict(Verdict::Accept)]),
            tcp_dport_accept(3),
        ];
        assert_eq!(first_catch_all(&catch_all_accept), None);
    }

    #[test]
    fn iptables_nft_reject_target() {
        let mut r = rule(
            7,
            vec![
                Expr::XtMatch("comment".into()),
                Expr::Counter,
                Expr::XtTarget("REJECT".into()),
            ],
        );
        r.family = NFPROTO_IPV4;
        let mut later = tcp_dport_accept(8);
        later.family = NFPROTO_IPV4;
        let rules = vec![tcp_dport_accept(6), r, later];
        assert_eq!(first_catch_all(&rules), Some(1));
        let mut st = NsState::default();
        let mut c = chain(NFPROTO_IPV4, rules);
        c.chain.table = "filter".into();
        c.chain.name = "LIBVIRT_FWI".into();
        c.chain.hook = None;
        st.ruleset = Some(vec![c]);
        let f = check(&st);
        assert_eq!(f[0].subject, "ip filter LIBVIRT_FWI handle 7");
        assert!(f[0].fix.contains(&"iptables -D LIBVIRT_FWI 2".to_string()));
        assert!(f[0]
            .fix
            .contains(&"iptables -A LIBVIRT_FWI -j REJECT".to_string()));
    }

    #[test]
    fn only_drops_after_is_info() {
        let rules = vec![
            rule(2, vec![Expr::Verdict(Verdict::Drop)]),
            rule(
                3,
                vec![
                    Expr::Payload {
                        base: 1,
                        offset: 9,
                        len: 1,
                    },
                    Expr::Cmp {
                        op: 0,
                        data: vec![17],
                    },
                    Expr::Verdict(Verdict::Drop),
                ],
            ),
        ];
        let mut st = NsState::default();
        st.ruleset = Some(vec![chain(NFPROTO_INET, rules)]);
        let f = check(&st);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0]
            .fix
            .contains(&"nft add rule inet t input drop".to_string()));
    }
}
