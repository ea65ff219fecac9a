//! Reasons no kernel has, fed through the pure functions: every path must
//! produce honest, non-empty text.
use super::*;

#[test]
fn name_words_and_area_prefix() {
    let u = Unknown::new("SKB_RX_HEADROOM", "");
    assert_eq!(u.words, "RX HEADROOM");
    assert_eq!(u.name_area, Some(Area::Skb));
    assert_eq!(u.subsystem, None);
    let u = Unknown::new("NW_FUTURE_THING", "");
    assert_eq!(u.words, "NW FUTURE THING");
    assert_eq!(u.name_area, None);
    // A lone prefix word is kept as the words.
    assert_eq!(Unknown::new("XDP", "").words, "XDP");
    assert_eq!(
        Unknown::new("IPV6_NW_JUMBO_SNAFU", "").name_area,
        Some(Area::Ipv6)
    );
}

#[test]
fn subsystem_codes_and_enums() {
    let u = Unknown::new("OPENVSWITCH:0x3", "ovs_execute_actions");
    assert_eq!(u.subsystem.as_deref(), Some("OPENVSWITCH"));
    assert_eq!(u.words, "code 0x3");
    let l = u.lines(None).join("\n");
    assert!(l.contains("OPENVSWITCH drop-reason subsystem"), "{l}");
    let u = Unknown::new("QDISC_DROP_NW_NEW_LIMIT", "sch_direct_xmit");
    assert_eq!(u.subsystem.as_deref(), Some("QDISC"));
    assert_eq!(u.words, "NW NEW LIMIT");
    assert_eq!(u.name_area, Some(Area::Qdisc));
    assert!(u
        .source_hint(Some("7.2"))
        .contains("dropreason-qdisc.h of Linux 7.2"));
    let u = Unknown::new("UNKNOWN(4242)", "");
    assert_eq!(u.words, "");
    assert!(u.lines(None)[1].contains("neither its BTF nor its tracepoint format"));
}

#[test]
fn function_area_wins_over_the_name() {
    let u = Unknown::new("TCP_NW_ODD", "__udp4_lib_rcv+0x4bc/0x900");
    assert_eq!(u.function, "__udp4_lib_rcv");
    assert_eq!(u.function_area, Some(Area::Udp));
    assert_eq!(u.area(), Some(Area::Udp));
    // Both areas' commands are offered when they differ.
    let c = u.checks();
    assert_eq!(c[0], Area::Udp.check());
    assert!(c.contains(&Area::Tcp.check().to_owned()));
    for (f, a) in [
        ("nft_do_chain", Area::Netfilter),
        ("ip6_forward", Area::Ipv6),
        ("ip_forward", Area::Ipv4),
        ("ip_tunnel_xmit", Area::Tunnel),
        ("br_handle_frame", Area::Bridge),
        ("neigh_resolve_output", Area::Neighbour),
        ("__dev_queue_xmit", Area::Device),
        ("tcf_classify", Area::Tc),
        ("sk_filter_trim_cap", Area::Socket),
        ("skb_release_data", Area::Skb),
    ] {
        assert_eq!(area_of_function(f), Some(a), "{f}");
    }
    assert_eq!(area_of_function("nw_made_up_fn"), None);
    assert_eq!(area_of_function("___"), None);
}

#[test]
fn lines_are_honest_and_name_the_source() {
    let u = Unknown::new("SKB_RX_HEADROOM", "skb_nw_pull_head+0x10/0x80");
    let l = u.lines(Some("6.18.44-fc"));
    assert_eq!(l.len(), 4, "{l:?}");
    assert!(l[0].starts_with("SKB_RX_HEADROOM is not in netwhy's knowledge base yet"));
    assert_eq!(
        l[1],
        "the name says \"rx headroom\" in sk_buff handling in the core"
    );
    assert_eq!(
        l[2],
        "it was dropped in skb_nw_pull_head, a function of sk_buff handling in the core"
    );
    assert!(l[3].contains("include/net/dropreason-core.h of Linux 6.18.44-fc"));
    assert!(l[3].ends_with("SKB_DROP_REASON_SKB_RX_HEADROOM"));
    // Without a location or a release, still four sentences minus one.
    let l = Unknown::new("NW_X", "").lines(None);
    assert_eq!(l.len(), 3);
    assert!(l[2].contains("your kernel's version"));
    // An unknown function is named, with what to do.
    let l = Unknown::new("NW_X", "nw_made_up_fn").lines(None);
    assert!(l[2].contains("read that function"), "{l:?}");
}

#[test]
fn hints_fit_and_say_not_in_notes() {
    let h = Unknown::new("SKB_RX_HEADROOM", "skb_release_data").hint();
    assert_eq!(h, "rx headroom (skb): not in netwhy's notes yet");
    let long = "NW_THIS_IS_A_VERY_LONG_FUTURE_REASON_NAME_THAT_GOES_ON_AND_ON";
    for (r, f) in [
        (long, "tcp_v4_rcv"),
        (long, ""),
        ("", ""),
        ("UNKNOWN(7)", "x"),
    ] {
        let h = Unknown::new(r, f).hint();
        assert!(h.chars().count() <= HINT_MAX, "{h:?}");
        assert!(h.ends_with("not in netwhy's notes yet"), "{h:?}");
        assert!(!h.contains('\n'));
    }
}

#[test]
fn hostile_names_never_panic() {
    for r in [
        "_",
        "__",
        ":",
        "a:b:c",
        "_DROP_",
        "X_DROP_",
        "ÄÖÜ_ß",
        "\u{0}",
        "  ",
    ] {
        let u = Unknown::new(r, r);
        assert!(!u.hint().is_empty());
        assert!(u.lines(Some("x")).iter().all(|l| !l.is_empty()));
        let _ = u.checks();
    }
}
