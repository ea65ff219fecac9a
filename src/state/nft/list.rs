//! The whole nftables ruleset of a network namespace, read over nfnetlink
//! as `nft list ruleset` does: every chain (NFT_MSG_GETCHAIN) and every
//! rule (NFT_MSG_GETRULE) in one dump each, rules in evaluation order.
//! iptables-nft rules are nftables rules too (with xt `match`/`target`
//! expressions), so they are listed here as well.
//!
//! `nftrace` looks at one chain to name a rule; a health check needs all of
//! them, with their hooks (which chains packets enter directly) to reason
//! about order. Rules are decoded by `nftrace::parse_rule`.
use std::collections::HashMap;

use serde::Serialize;

use super::trace::{parse_rule, RuleInfo};
use super::*;
use crate::state::netlink as nl;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("nf_tables dump: {0} (needs root / CAP_NET_ADMIN)")]
    Netlink(#[from] nl::NlError),
}

/// A chain; `hook` is set for base chains (those packets enter directly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    pub family: u8,
    pub table: String,
    pub name: String,
    /// (hook number, priority) of a base chain.
    pub hook: Option<(u32, i32)>,
    /// Base chain policy: 0 drop, 1 accept.
    pub policy: Option<u32>,
    /// "filter", "nat", "route" for base chains.
    pub kind: Option<String>,
}

/// A chain with its rules in evaluation order.
#[derive(Debug, Clone, Serialize)]
pub struct ChainRules {
    pub chain: Chain,
    pub rules: Vec<RuleInfo>,
}

/// nft(8)'s name of a family.
pub fn family_name(f: u8) -> &'static str {
    match f {
        NFPROTO_INET => "inet",
        NFPROTO_IPV4 => "ip",
        NFPROTO_ARP => "arp",
        NFPROTO_NETDEV => "netdev",
        NFPROTO_BRIDGE => "bridge",
        NFPROTO_IPV6 => "ip6",
        _ => "unknown",
    }
}

/// nft(8)'s name of hook `n` in family `f`.
pub fn hook_name(f: u8, n: u32) -> String {
    let names: &[&str] = match f {
        NFPROTO_NETDEV => &["ingress", "egress"],
        NFPROTO_ARP => &["input", "output"],
        _ => &[
            "prerouting",
            "input",
            "forward",
            "output",
            "postrouting",
            "ingress",
        ],
    };
    names
        .get(n as usize)
        .map_or_else(|| format!("hook {n}"), |s| s.to_string())
}

/// Every chain with its rules in the calling thread's netns. An empty list
/// when nf_tables has no tables (or is not loaded: the dump then fails
/// with EPROTONOSUPPORT / ENOENT, which means "no ruleset" too).
pub fn ruleset_here() -> Result<Vec<ChainRules>, ListError> {
    let s = nl::Socket::open(libc::NETLINK_NETFILTER)?;
    let chains = match s.dump(nft_type(NFT_MSG_GETCHAIN), &nfgenmsg(0)) {
        Ok(m) => m,
        Err(nl::NlError::Kernel(e))
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::EPROTONOSUPPORT)
            ) =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e.into()),
    };
    let rules = s.dump(nft_type(NFT_MSG_GETRULE), &nfgenmsg(0))?;
    let chains: Vec<Chain> = chains.iter().filter_map(|b| parse_chain(b)).collect();
    let rules: Vec<RuleInfo> = rules
        .iter()
        .filter(|b| b.len() >= 4)
        .filter_map(|b| parse_rule(b[0], &b[4..]))
        .collect();
    Ok(group(chains, rules))
}

/// Attach rules (dump order = evaluation order within a chain) to chains.
pub fn group(chains: Vec<Chain>, rules: Vec<RuleInfo>) -> Vec<ChainRules> {
    let mut at: HashMap<(u8, String, String), usize> = HashMap::new();
    let mut out: Vec<ChainRules> = Vec::new();
    for c in chains {
        at.insert((c.family, c.table.clone(), c.name.clone()), out.len());
        out.push(ChainRules {
            chain: c,
            rules: Vec::new(),
        });
    }
    for r in rules {
        if let Some(&i) = at.get(&(r.family, r.table.clone(), r.chain.clone())) {
            out[i].rules.push(r);
        }
    }
    out
}

/// struct nfgenmsg (family, NFNETLINK_V0, res_id 0).
fn nfgenmsg(family: u8) -> Vec<u8> {
    vec![family, 0, 0, 0]
}

/// A NEWCHAIN body (nfgenmsg + NFTA_CHAIN_* attributes).
pub fn parse_chain(b: &[u8]) -> Option<Chain> {
    let mut c = Chain {
        family: *b.first()?,
        table: String::new(),
        name: String::new(),
        hook: None,
        policy: None,
        kind: None,
    };
    for (t, v) in nl::attrs(b.get(4..)?) {
        match t {
            NFTA_CHAIN_TABLE => c.table = cstr(v),
            NFTA_CHAIN_NAME => c.name = cstr(v),
            NFTA_CHAIN_POLICY => c.policy = be32(v),
            NFTA_CHAIN_TYPE => c.kind = Some(cstr(v)),
            NFTA_CHAIN_HOOK => {
                let (mut num, mut prio) = (None, 0i32);
                for (ht, hv) in nl::attrs(v) {
                    match ht {
                        NFTA_HOOK_HOOKNUM => num = be32(hv),
                        NFTA_HOOK_PRIORITY => prio = be32(hv).map_or(0, |p| p as i32),
                        _ => {}
                    }
                }
                c.hook = num.map(|n| (n, prio));
            }
            _ => {}
        }
    }
    (!c.name.is_empty()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(b: &mut Vec<u8>, ty: u16, v: &[u8]) {
        b.extend(((4 + v.len()) as u16).to_ne_bytes());
        b.extend(ty.to_ne_bytes());
        b.extend_from_slice(v);
        b.resize(nl::align(b.len()), 0);
    }

    #[test]
    fn base_chain_parses() {
        let mut b = vec![NFPROTO_INET, 0, 0, 0];
        put(&mut b, NFTA_CHAIN_TABLE, b"filter\0");
        put(&mut b, NFTA_CHAIN_NAME, b"forward\0");
        let mut hook = Vec::new();
        put(&mut hook, NFTA_HOOK_HOOKNUM, &HOOK_FORWARD.to_be_bytes());
        put(
            &mut hook,
            NFTA_HOOK_PRIORITY,
            &(-100i32 as u32).to_be_bytes(),
        );
        put(&mut b, NFTA_CHAIN_HOOK | 0x8000, &hook);
        put(&mut b, NFTA_CHAIN_POLICY, &0u32.to_be_bytes());
        put(&mut b, NFTA_CHAIN_TYPE, b"filter\0");
        let c = parse_chain(&b).unwrap();
        assert_eq!((c.table.as_str(), c.name.as_str()), ("filter", "forward"));
        assert_eq!(c.hook, Some((HOOK_FORWARD, -100)));
        assert_eq!(c.policy, Some(0));
        assert_eq!(c.kind.as_deref(), Some("filter"));
        assert_eq!(family_name(c.family), "inet");
        assert_eq!(hook_name(c.family, HOOK_FORWARD), "forward");
        assert_eq!(hook_name(NFPROTO_NETDEV, 0), "ingress");
    }

    #[test]
    fn regular_chain_has_no_hook() {
        let mut b = vec![NFPROTO_IPV4, 0, 0, 0];
        put(&mut b, NFTA_CHAIN_TABLE, b"filter\0");
        put(&mut b, NFTA_CHAIN_NAME, b"LIBVIRT_FWI\0");
        let c = parse_chain(&b).unwrap();
        assert_eq!(c.hook, None);
        assert_eq!(c.policy, None);
    }
}
