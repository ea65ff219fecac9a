//! Decoding what nf_tables sends back: dumped rules (with their comment)
//! and NFT_MSG_TRACE events.
use super::*;

/// A NEWRULE message body (after nfgenmsg).
pub fn parse_rule(family: u8, attrs: &[u8]) -> Option<RuleInfo> {
    let mut r = RuleInfo {
        family,
        table: String::new(),
        chain: String::new(),
        handle: 0,
        comment: None,
        exprs: Vec::new(),
    };
    let mut have_handle = false;
    for (t, v) in nl::attrs(attrs) {
        match t {
            NFTA_RULE_TABLE => r.table = cstr(v),
            NFTA_RULE_CHAIN => r.chain = cstr(v),
            NFTA_RULE_HANDLE => {
                r.handle = be64(v)?;
                have_handle = true;
            }
            NFTA_RULE_USERDATA => r.comment = udata_comment(v),
            NFTA_RULE_EXPRESSIONS => r.exprs = super::rule::parse_exprs(v),
            _ => {}
        }
    }
    have_handle.then_some(r)
}

/// The comment in nftables rule userdata: TLVs of u8 type, u8 length.
pub fn udata_comment(mut u: &[u8]) -> Option<String> {
    while u.len() >= 2 {
        let (ty, len) = (u[0], u[1] as usize);
        let v = u.get(2..2 + len)?;
        if ty == UDATA_RULE_COMMENT {
            return Some(cstr(v));
        }
        u = &u[2 + len..];
    }
    None
}

/// An NFT_MSG_TRACE body (after nfgenmsg) of table family `family`.
pub fn parse_trace(family: u8, attrs: &[u8]) -> Option<TraceEvent> {
    let mut ev = TraceEvent {
        id: 0,
        kind: TraceKind::Other(0),
        family,
        nfproto: None,
        table: String::new(),
        chain: String::new(),
        rule_handle: None,
        verdict: None,
        iif: None,
        oif: None,
        comment: None,
        rule: None,
    };
    let mut id = None;
    let mut policy = None;
    for (t, v) in nl::attrs(attrs) {
        match t {
            NFTA_TRACE_ID => id = be32(v),
            NFTA_TRACE_TYPE => {
                ev.kind = match be32(v)? {
                    1 => TraceKind::Policy,
                    2 => TraceKind::Return,
                    3 => TraceKind::Rule,
                    k => TraceKind::Other(k),
                }
            }
            NFTA_TRACE_TABLE => ev.table = cstr(v),
            NFTA_TRACE_CHAIN => ev.chain = cstr(v),
            NFTA_TRACE_RULE_HANDLE => ev.rule_handle = be64(v),
            NFTA_TRACE_VERDICT => {
                let mut code = None;
                let mut chain = None;
                for (vt, vv) in nl::attrs(v) {
                    match vt {
                        NFTA_VERDICT_CODE => code = be32(vv),
                        NFTA_VERDICT_CHAIN => chain = Some(cstr(vv)),
                        _ => {}
                    }
                }
                ev.verdict = code.map(|c| Verdict::from_code(c as i32, chain));
            }
            NFTA_TRACE_NFPROTO => ev.nfproto = be32(v),
            NFTA_TRACE_POLICY => policy = be32(v),
            NFTA_TRACE_IIF => ev.iif = be32(v),
            NFTA_TRACE_OIF => ev.oif = be32(v),
            _ => {}
        }
    }
    if ev.kind == TraceKind::Policy && ev.verdict.is_none() {
        ev.verdict = policy.map(|p| Verdict::from_code(p as i32, None));
    }
    ev.id = id?;
    Some(ev)
}

/// nft's name of a table family.
pub fn family_label(f: u8) -> &'static str {
    match f {
        NFPROTO_IPV4 => "ip",
        NFPROTO_ARP => "arp",
        NFPROTO_NETDEV => "netdev",
        NFPROTO_BRIDGE => "bridge",
        NFPROTO_IPV6 => "ip6",
        _ => "inet",
    }
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u32, kind: TraceKind, chain: &str, v: Option<Verdict>) -> TraceEvent {
        TraceEvent {
            id,
            kind,
            family: 1,
            nfproto: Some(2),
            table: "t".into(),
            chain: chain.into(),
            rule_handle: Some(2),
            verdict: v,
            iif: None,
            oif: None,
            comment: None,
            rule: None,
        }
    }

    #[test]
    fn verdict_codes() {
        assert_eq!(Verdict::from_code(0, None), Verdict::Drop);
        assert_eq!(Verdict::from_code(1 << 16, None), Verdict::Drop);
        assert_eq!(Verdict::from_code(1, None), Verdict::Accept);
        assert_eq!(
            Verdict::from_code(-3, Some("c".into())),
            Verdict::Jump("c".into())
        );
        assert_eq!(Verdict::from_code(-5, None), Verdict::Return);
    }

    #[test]
    fn trace_roundtrip_and_grouping() {
        let mut a = Vec::new();
        nl::put(&mut a, NFTA_TRACE_ID, &7u32.to_be_bytes());
        nl::put(&mut a, NFTA_TRACE_TYPE, &3u32.to_be_bytes());
        nl::put_str(&mut a, NFTA_TRACE_TABLE, "nwlab_filter");
        nl::put_str(&mut a, NFTA_TRACE_CHAIN, "forward");
        nl::put(&mut a, NFTA_TRACE_RULE_HANDLE, &2u64.to_be_bytes());
        let v = nl::nest_start(&mut a, NFTA_TRACE_VERDICT);
        nl::put(&mut a, NFTA_VERDICT_CODE, &0u32.to_be_bytes());
        nl::nest_end(&mut a, v);
        let e = parse_trace(1, &a).unwrap();
        assert_eq!((e.id, e.kind, e.rule_handle), (7, TraceKind::Rule, Some(2)));
        assert_eq!(
            (e.table.as_str(), e.chain.as_str()),
            ("nwlab_filter", "forward")
        );
        assert!(e.is_drop());

        let evs = [
            ev(1, TraceKind::Rule, "a", Some(Verdict::Jump("b".into()))),
            ev(2, TraceKind::Policy, "a", Some(Verdict::Accept)),
            ev(1, TraceKind::Rule, "b", Some(Verdict::Drop)),
            ev(3, TraceKind::Policy, "a", Some(Verdict::Drop)),
        ];
        let d = drops_by_packet(&evs);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].id, d[0].chain.as_str()), (1, "b"));
        assert_eq!((d[1].id, d[1].kind), (3, TraceKind::Policy));
    }

    #[test]
    fn comment_userdata() {
        let mut u = vec![1, 2, 9, 9, UDATA_RULE_COMMENT, 4];
        u.extend_from_slice(b"abc\0");
        assert_eq!(udata_comment(&u).as_deref(), Some("abc"));
        assert_eq!(udata_comment(&[1, 1, 0]), None);
        assert_eq!(table_pid("netwhy_trace_42"), Some(42));
        assert_eq!(table_pid("nwlab_filter"), None);
    }

    #[test]
    fn matcher_validity() {
        assert!(Matcher::tcp_dport(443).valid());
        assert!(!Matcher::default().valid());
        let port_only = Matcher {
            dport: Some(1),
            ..Matcher::default()
        };
        assert!(!port_only.valid());
        let icmp_to = Matcher {
            l4proto: Some(1),
            ..Matcher::default()
        }
        .daddr([198, 18, 1, 2].into());
        assert!(icmp_to.valid());
        assert!(Matcher::default().daddr6(Ipv6Addr::LOCALHOST).valid());
        let both = icmp_to.daddr6(Ipv6Addr::LOCALHOST);
        assert!(!both.valid(), "one packet has one address family");
    }
}
