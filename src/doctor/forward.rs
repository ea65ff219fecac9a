//! Forwarding switched off on a box that is set up to forward. Packets to
//! other hosts are then dropped in ip_forward / ip_error (IP_INADDRERRORS,
//! "forwarding disabled") before any forward-hook rule sees them; the
//! common cause is a reboot or a container runtime restart that lost the
//! sysctl.
//!
//! Heuristic (said so in the evidence):
//! - warning: an nftables (or iptables-nft) base chain at the forward hook
//!   has rules in a family that forwarding feeds (ip/inet for IPv4, ip6
//!   for IPv6): someone wrote forwarding policy that never runs;
//! - info: IPv4 forwarding is off and gateway routes leave by two or more
//!   interfaces: this looks like a router, but a multi-homed host looks
//!   the same, so it does not change the exit code.
use std::collections::BTreeSet;

use super::{Finding, NsState, Severity};
use crate::state::addr::{RTN_UNICAST, RT_TABLE_LOCAL};
use crate::state::nft::list::family_name;
use crate::state::nft::{HOOK_FORWARD, NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6};

pub const ID: &str = "forwarding-off";

/// `family table chain (N rules)` of forward-hook chains with rules in
/// the given families.
fn forward_chains(st: &NsState, families: &[u8]) -> Vec<String> {
    let Some(rs) = &st.ruleset else {
        return Vec::new();
    };
    rs.iter()
        .filter(|c| {
            families.contains(&c.chain.family)
                && c.chain.hook.is_some_and(|(h, _)| h == HOOK_FORWARD)
                && !c.rules.is_empty()
        })
        .map(|c| {
            format!(
                "chain {} {} {} (hook forward) has {} rule(s)",
                family_name(c.chain.family),
                c.chain.table,
                c.chain.name,
                c.rules.len()
            )
        })
        .collect()
}

pub fn check(st: &NsState) -> Vec<Finding> {
    let mut out = Vec::new();
    if st.sysctl.ip_forward == Some(0) {
        let chains = forward_chains(st, &[NFPROTO_IPV4, NFPROTO_INET]);
        let gw_devs: BTreeSet<String> = st
            .routes4
            .iter()
            .filter(|r| r.table != RT_TABLE_LOCAL && r.rtype == RTN_UNICAST && r.gateway.is_some())
            .flat_map(|r| r.oifs.iter().map(|&i| st.dev(i)))
            .collect();
        let sev = if !chains.is_empty() {
            Some(Severity::Warning)
        } else if gw_devs.len() >= 2 {
            Some(Severity::Info)
        } else {
            None
        };
        if let Some(sev) = sev {
            let mut f = Finding::new(st, ID, sev, "net.ipv4.ip_forward".into())
                .seen("net.ipv4.ip_forward = 0: packets for other hosts are dropped (IP_INADDRERRORS in ip_error) before the forward hook");
            f.evidence.extend(chains);
            if gw_devs.len() >= 2 {
                f = f.seen(format!(
                    "gateway routes leave by {} interfaces ({}): this looks like a router \
                     (or a multi-homed host, which is why alone this is only info)",
                    gw_devs.len(),
                    gw_devs.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            out.push(
                f.fix(st.cmd("sysctl -w net.ipv4.ip_forward=1"))
                    .fix("# persist it: echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-forward.conf")
                    .fix("# or, if this box must not route, remove the forward rules that can never match"),
            );
        }
    }
    if st.sysctl.ipv6_forwarding_all == Some(0) {
        let chains = forward_chains(st, &[NFPROTO_IPV6]);
        if !chains.is_empty() {
            let mut f = Finding::new(
                st,
                ID,
                Severity::Warning,
                "net.ipv6.conf.all.forwarding".into(),
            )
            .seen("net.ipv6.conf.all.forwarding = 0: IPv6 packets for other hosts are dropped before the forward hook");
            f.evidence.extend(chains);
            out.push(
                f.fix(st.cmd("sysctl -w net.ipv6.conf.all.forwarding=1"))
                    .fix("# caveat: with forwarding on, interfaces stop accepting router advertisements unless accept_ra = 2"),
            );
        }
    }
    out
}

#[cfg(test)]
// Fixtures are built field by field from an empty namespace state.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::state::addr::{Link, RouteEntry};
    use crate::state::nft::list::{Chain, ChainRules};
    use crate::state::nft::trace::RuleInfo;

    fn chain(family: u8, hook: Option<u32>, rules: usize) -> ChainRules {
        ChainRules {
            chain: Chain {
                family,
                table: "filter".into(),
                name: "forward".into(),
                hook: hook.map(|h| (h, 0)),
                policy: Some(1),
                kind: Some("filter".into()),
            },
            rules: (0..rules)
                .map(|i| RuleInfo {
                    family,
                    table: "filter".into(),
                    chain: "forward".into(),
                    handle: i as u64 + 2,
                    comment: None,
                    exprs: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn forward_rules_with_forwarding_off_warn() {
        let mut st = NsState::default();
        st.sysctl.ip_forward = Some(0);
        st.ruleset = Some(vec![chain(NFPROTO_INET, Some(HOOK_FORWARD), 0)]);
        assert!(
            check(&st).is_empty(),
            "an empty forward chain is the distro default"
        );
        st.ruleset = Some(vec![chain(NFPROTO_INET, Some(HOOK_FORWARD), 2)]);
        let f = check(&st);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].severity, f[0].subject.as_str()),
            (Severity::Warning, "net.ipv4.ip_forward")
        );
        assert!(f[0].evidence[1].contains("chain inet filter forward (hook forward) has 2 rule(s)"));
        st.sysctl.ip_forward = Some(1);
        assert!(check(&st).is_empty());
    }

    #[test]
    fn gateways_on_two_interfaces_are_info() {
        let mut st = NsState::default();
        st.sysctl.ip_forward = Some(0);
        st.links = ["eth0", "eth1"]
            .iter()
            .enumerate()
            .map(|(i, n)| Link {
                index: i as u32 + 2,
                name: n.to_string(),
                up: true,
                lower_up: true,
                loopback: false,
            })
            .collect();
        let gw = |oif: u32, g: &str| RouteEntry {
            table: 254,
            rtype: RTN_UNICAST,
            dst: "0.0.0.0".parse().unwrap(),
            dst_len: 0,
            oifs: vec![oif],
            gateway: Some(g.parse().unwrap()),
            metric: 0,
        };
        st.routes4 = vec![gw(2, "10.0.0.1")];
        assert!(check(&st).is_empty());
        st.routes4.push(gw(3, "10.1.0.1"));
        let f = check(&st);
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].evidence[1].contains("eth0, eth1"));
    }

    #[test]
    fn ipv6_forward_chain() {
        let mut st = NsState::default();
        st.sysctl.ipv6_forwarding_all = Some(0);
        st.ruleset = Some(vec![chain(NFPROTO_IPV6, Some(HOOK_FORWARD), 1)]);
        let f = check(&st);
        assert_eq!(f[0].subject, "net.ipv6.conf.all.forwarding");
    }
}
