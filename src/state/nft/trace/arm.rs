//! The tables a [`super::Tracer`] adds, and the rule in each that marks the
//! traced flow with `meta nftrace set 1`.
//!
//! Why several families: a packet carries its trace flag (skb->nf_trace)
//! from the first chain that sets it to every later chain of any family,
//! but each family sees the packet at its own hooks. The inet table (at
//! prerouting and output) reaches every IP chain, netdev egress included
//! for packets the stack routes. A bridged frame never crosses an inet
//! hook, so a bridge table (prerouting, output) marks it; an ARP packet
//! only crosses arp hooks, so an arp table (input, output) marks it; and a
//! netdev ingress chain runs before everything else, so the drop's device
//! gets a netdev ingress chain of its own. Only the inet table is required:
//! the others are added where the kernel has the family.
use super::*;

/// One message of a batch: (type, extra flags, family, attributes).
pub(super) type BatchMsg = (u16, u16, u8, Vec<u8>);

/// The ethertype `meta protocol` compares with, per address family.
const ETH_P_IP: [u8; 2] = [0x08, 0x00];
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];
const ETH_P_ARP: [u8; 2] = [0x08, 0x06];
/// NFT_META_PROTOCOL: skb->protocol.
const NFT_META_PROTOCOL: u32 = 1;
/// NFTA_HOOK_DEV: the device of a netdev base chain.
const NFTA_HOOK_DEV: u16 = 3;
/// Offset of the target protocol address in an Ethernet/IPv4 ARP packet.
const ARP_TPA_OFFSET: u32 = 24;

/// One family's trace table: its base chains (name, hook, device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub family: u8,
    pub chains: Vec<(&'static str, u32, Option<String>)>,
}

/// The tables to add: inet first (required), then bridge and arp, then a
/// netdev ingress chain on `dev` when the drop named a device.
pub(super) fn plans(dev: Option<&str>) -> Vec<Plan> {
    let two = |family, a, b| Plan {
        family,
        chains: vec![("pre", a, None), ("out", b, None)],
    };
    let mut v = vec![
        two(NFPROTO_INET, NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT),
        // NF_BR_PRE_ROUTING, NF_BR_LOCAL_OUT.
        two(NFPROTO_BRIDGE, 0, 3),
        // NF_ARP_IN, NF_ARP_OUT.
        two(NFPROTO_ARP, 0, 1),
    ];
    if let Some(d) = dev.filter(|d| !d.is_empty() && d.len() < 16) {
        v.push(Plan {
            family: NFPROTO_NETDEV,
            // NF_NETDEV_INGRESS.
            chains: vec![("ingress", 0, Some(d.to_string()))],
        });
    }
    v
}

pub(super) fn del_table(family: u8, name: &str) -> BatchMsg {
    let mut a = Vec::new();
    nl::put_str(&mut a, NFTA_TABLE_NAME, name);
    (nft_type(NFT_MSG_DELTABLE), 0, family, a)
}

/// The batch that creates `plan`'s table, chains and marking rules.
pub(super) fn create_msgs(plan: &Plan, table: &str, m: &Matcher, owner: bool) -> Vec<BatchMsg> {
    let family = plan.family;
    let create = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut out = Vec::new();
    let mut a = Vec::new();
    nl::put_str(&mut a, NFTA_TABLE_NAME, table);
    if owner {
        nl::put(&mut a, NFTA_TABLE_FLAGS, &NFT_TABLE_F_OWNER.to_be_bytes());
    }
    out.push((nft_type(NFT_MSG_NEWTABLE), create, family, a));
    for (chain, hook, dev) in &plan.chains {
        let mut a = Vec::new();
        nl::put_str(&mut a, NFTA_CHAIN_TABLE, table);
        nl::put_str(&mut a, NFTA_CHAIN_NAME, chain);
        let h = nl::nest_start(&mut a, NFTA_CHAIN_HOOK);
        nl::put(&mut a, NFTA_HOOK_HOOKNUM, &hook.to_be_bytes());
        nl::put(&mut a, NFTA_HOOK_PRIORITY, &TRACE_PRIORITY.to_be_bytes());
        if let Some(d) = dev {
            nl::put_str(&mut a, NFTA_HOOK_DEV, d);
        }
        nl::nest_end(&mut a, h);
        nl::put(&mut a, NFTA_CHAIN_POLICY, &NF_ACCEPT.to_be_bytes());
        nl::put_str(&mut a, NFTA_CHAIN_TYPE, "filter");
        out.push((nft_type(NFT_MSG_NEWCHAIN), create, family, a));

        let mut a = Vec::new();
        nl::put_str(&mut a, NFTA_RULE_TABLE, table);
        nl::put_str(&mut a, NFTA_RULE_CHAIN, chain);
        let l = nl::nest_start(&mut a, NFTA_RULE_EXPRESSIONS);
        rule_exprs(&mut a, family, m);
        nl::nest_end(&mut a, l);
        let comment = b"netwhy trace\0";
        let mut u = vec![UDATA_RULE_COMMENT, comment.len() as u8];
        u.extend_from_slice(comment);
        nl::put(&mut a, NFTA_RULE_USERDATA, &u);
        let flags = create | libc::NLM_F_APPEND as u16;
        out.push((nft_type(NFT_MSG_NEWRULE), flags, family, a));
    }
    out
}

/// Expressions of the trace rule: match `m`, then `meta nftrace set 1`.
/// inet tells IPv4 from IPv6 by `meta nfproto`; the other families see the
/// frame's ethertype (`meta protocol`), their nfproto being their own.
fn rule_exprs(a: &mut Vec<u8>, family: u8, m: &Matcher) {
    let reg = NFT_REG_1.to_be_bytes();
    let meta_load = |a: &mut Vec<u8>, key: u32| {
        expr(a, "meta", |a| {
            nl::put(a, NFTA_META_DREG, &reg);
            nl::put(a, NFTA_META_KEY, &key.to_be_bytes());
        })
    };
    let cmp_eq = |a: &mut Vec<u8>, data: &[u8]| {
        expr(a, "cmp", |a| {
            nl::put(a, NFTA_CMP_SREG, &reg);
            nl::put(a, NFTA_CMP_OP, &NFT_CMP_EQ.to_be_bytes());
            let d = nl::nest_start(a, NFTA_CMP_DATA);
            nl::put(a, NFTA_DATA_VALUE, data);
            nl::nest_end(a, d);
        })
    };
    let payload = |a: &mut Vec<u8>, base: u32, off: u32, len: u32| {
        expr(a, "payload", |a| {
            nl::put(a, NFTA_PAYLOAD_DREG, &reg);
            nl::put(a, NFTA_PAYLOAD_BASE, &base.to_be_bytes());
            nl::put(a, NFTA_PAYLOAD_OFFSET, &off.to_be_bytes());
            nl::put(a, NFTA_PAYLOAD_LEN, &len.to_be_bytes());
        })
    };
    let ip_version = |a: &mut Vec<u8>, nfproto: u8, ethertype: &[u8; 2]| {
        if family == NFPROTO_INET {
            meta_load(a, NFT_META_NFPROTO);
            cmp_eq(a, &[nfproto]);
        } else {
            meta_load(a, NFT_META_PROTOCOL);
            cmp_eq(a, ethertype);
        }
    };
    if let Some(t) = m.arp_tpa {
        meta_load(a, NFT_META_PROTOCOL);
        cmp_eq(a, &ETH_P_ARP);
        payload(a, NFT_PAYLOAD_NETWORK_HEADER, ARP_TPA_OFFSET, 4);
        cmp_eq(a, &t.octets());
    }
    if let Some(d) = m.daddr {
        ip_version(a, NFPROTO_IPV4, &ETH_P_IP);
        payload(a, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
        cmp_eq(a, &d.octets());
    }
    if let Some(d) = m.daddr6 {
        ip_version(a, NFPROTO_IPV6, &ETH_P_IPV6);
        payload(a, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
        cmp_eq(a, &d.octets());
    }
    if let Some(p) = m.l4proto {
        meta_load(a, NFT_META_L4PROTO);
        cmp_eq(a, &[p]);
    }
    if let Some(port) = m.dport {
        payload(a, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
        cmp_eq(a, &port.to_be_bytes());
    }
    expr(a, "immediate", |a| {
        nl::put(a, NFTA_IMMEDIATE_DREG, &reg);
        let d = nl::nest_start(a, NFTA_IMMEDIATE_DATA);
        nl::put(a, NFTA_DATA_VALUE, &[1]);
        nl::nest_end(a, d);
    });
    expr(a, "meta", |a| {
        nl::put(a, NFTA_META_KEY, &NFT_META_NFTRACE.to_be_bytes());
        nl::put(a, NFTA_META_SREG, &reg);
    });
}

fn expr(a: &mut Vec<u8>, name: &str, data: impl FnOnce(&mut Vec<u8>)) {
    let e = nl::nest_start(a, NFTA_LIST_ELEM);
    nl::put_str(a, NFTA_EXPR_NAME, name);
    let d = nl::nest_start(a, NFTA_EXPR_DATA);
    data(a);
    nl::nest_end(a, d);
    nl::nest_end(a, e);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::nft_rule::{parse_exprs, Expr};

    /// The expressions of the first rule `create_msgs` makes for `family`.
    fn first_rule(family: u8, m: &Matcher) -> Vec<Expr> {
        let plan = plans(Some("eth0"))
            .into_iter()
            .find(|p| p.family == family)
            .expect("planned");
        let msgs = create_msgs(&plan, "t", m, true);
        let (_, _, fam, body) = msgs
            .iter()
            .find(|(ty, ..)| *ty == nft_type(NFT_MSG_NEWRULE))
            .expect("a rule");
        assert_eq!(*fam, family);
        let list = nl::attrs(body)
            .find(|(t, _)| *t == NFTA_RULE_EXPRESSIONS)
            .expect("expressions")
            .1;
        parse_exprs(list)
    }

    #[test]
    fn every_family_is_planned_and_netdev_only_with_a_device() {
        let fams: Vec<u8> = plans(Some("eth0")).iter().map(|p| p.family).collect();
        assert_eq!(
            fams,
            [NFPROTO_INET, NFPROTO_BRIDGE, NFPROTO_ARP, NFPROTO_NETDEV]
        );
        assert_eq!(plans(None).len(), 3);
        assert_eq!(plans(Some("a-name-longer-than-ifnamsiz")).len(), 3);
    }

    #[test]
    fn ip_version_test_follows_the_family() {
        let m = Matcher::udp_dport(53).daddr([198, 18, 0, 2].into());
        let inet = first_rule(NFPROTO_INET, &m);
        assert!(inet.contains(&Expr::Meta {
            key: NFT_META_NFPROTO
        }));
        assert!(inet.contains(&Expr::Cmp {
            op: 0,
            data: vec![NFPROTO_IPV4]
        }));
        let br = first_rule(NFPROTO_BRIDGE, &m);
        assert!(br.contains(&Expr::Meta {
            key: NFT_META_PROTOCOL
        }));
        assert!(br.contains(&Expr::Cmp {
            op: 0,
            data: ETH_P_IP.to_vec()
        }));
        assert!(!br.contains(&Expr::Meta {
            key: NFT_META_NFPROTO
        }));
    }

    #[test]
    fn arp_matcher_compares_the_target_address() {
        let m = Matcher::default().arp_tpa([198, 18, 0, 2].into());
        let r = first_rule(NFPROTO_ARP, &m);
        assert!(r.contains(&Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset: ARP_TPA_OFFSET,
            len: 4
        }));
        assert!(r.contains(&Expr::Cmp {
            op: 0,
            data: vec![198, 18, 0, 2]
        }));
        assert!(!r.contains(&Expr::Meta {
            key: NFT_META_L4PROTO
        }));
    }
}
