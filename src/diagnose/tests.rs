use std::collections::HashSet;

use super::*;
use crate::kernel::reasons::DropReasons;

const FIXTURE: &str = include_str!("../../tests/fixtures/kernel/kfree_skb_format_6.18.txt");

/// The running kernel's reason table; the committed 6.18 fixture when BTF
/// and tracefs are unreadable (not root) or the kernel has no reasons.
pub(crate) fn kernel_reason_table() -> DropReasons {
    let live = DropReasons::load().ok().filter(|r| r.has_reasons());
    let r = live.unwrap_or_else(|| DropReasons::from_tracefs_format(FIXTURE).unwrap());
    eprintln!("reason names from {:?}: {}", r.source(), r.iter().count());
    r
}

fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Coverage is checked against the committed upstream list (upstream.rs);
/// the running kernel, which may be newer than netwhy, is checked for
/// graceful output: every reason it has gets a non-empty hint, table hint
/// and finding text, whether or not the knowledge base knows it.
#[test]
fn every_reason_of_the_running_kernel_gets_an_answer() {
    let r = kernel_reason_table();
    assert!(r.iter().count() >= 60, "too few reasons to mean anything");
    for (_, name) in r.iter() {
        for func in ["", "__netif_receive_skb_core+0x1d/0x40", "nw_made_up_fn"] {
            let x = lookup(name, func);
            assert_eq!(x.reason, kb::normalize(name));
            assert!(!x.meaning.is_empty() && !x.id.as_str().is_empty(), "{name}");
            assert_eq!(x.known, x.unknown.is_none(), "{name}");
            let h = hint_text(name, func);
            assert!(
                !h.is_empty() && h.chars().count() <= HINT_MAX,
                "{name}: {h:?}"
            );
            if let Some(u) = &x.unknown {
                assert!(
                    u.lines(Some("live")).iter().all(|l| !l.is_empty()),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn no_duplicate_reasons() {
    let mut seen = HashSet::new();
    for e in kb::all() {
        assert!(seen.insert(e.reason), "duplicate entry for {}", e.reason);
    }
}

#[test]
fn ids_are_unique_kebab_case() {
    let mut seen = HashSet::new();
    let ids = kb::all()
        .map(|e| e.id)
        .chain(kb::specifics().iter().map(|e| e.id))
        .chain(refine::all().iter().map(|r| r.id))
        .chain([FALLBACK.id]);
    for id in ids {
        assert!(is_kebab(id.as_str()), "id {id:?} is not kebab-case");
        assert!(seen.insert(id), "id {id:?} used twice");
    }
}

#[test]
fn hints_fit_the_table() {
    let hints = kb::all()
        .map(|e| (e.reason, e.hint))
        .chain(
            refine::all()
                .iter()
                .filter_map(|r| r.hint.map(|h| (r.id.as_str(), h))),
        )
        .chain([("fallback", FALLBACK.hint)]);
    for (who, h) in hints {
        assert!(!h.is_empty(), "{who}: empty hint");
        assert!(
            h.chars().count() <= HINT_MAX,
            "{who}: hint {h:?} is over {HINT_MAX} chars"
        );
        assert!(!h.contains('\n'), "{who}: hint has a newline");
    }
}

#[test]
fn entries_are_filled_in() {
    for e in kb::all().filter(|e| !matches!(e.reason, "CONSUMED" | "NOT_DROPPED_YET")) {
        assert!(!e.meaning.is_empty(), "{}: no meaning", e.reason);
        assert!(!e.causes.is_empty(), "{}: no causes", e.reason);
        assert!(!e.checks.is_empty(), "{}: no checks", e.reason);
        assert!(!e.fixes.is_empty(), "{}: no fixes", e.reason);
        assert!(
            !e.meaning.contains("  "),
            "{}: double space in meaning",
            e.reason
        );
    }
}

#[test]
fn unverified_entries_say_so() {
    let x = lookup("TCP_LISTEN_OVERFLOW", "tcp_v4_syn_recv_sock");
    assert!(!x.verified);
    assert_eq!(x.caveat(), Some(UNVERIFIED_NOTE));
    assert_eq!(lookup("NO_SOCKET", "udp_rcv").caveat(), None);
    assert_eq!(kb::entry("TCP_ZEROWINDOW").caveat(), Some(UNVERIFIED_NOTE));
    assert_eq!(kb::entry("IP_RPFILTER").caveat(), None);
    // A refinement carries its own flag: the SYN-cookie ACK drop is
    // reproduced in the lab (tcp-syncookie-accept-queue-full), others not.
    let x = lookup("NO_SOCKET", "cookie_v4_check");
    assert!(x.verified);
    assert!(x.caveat().is_none());
    let r = refine::all()
        .iter()
        .find(|r| !r.verified)
        .expect("one unverified");
    assert!(lookup(r.reason, r.functions[0]).caveat().is_some());
    assert!(lookup("NETFILTER_DROP", "nft_do_chain").verified);
}

#[test]
fn refinements_refer_to_known_reasons() {
    for r in refine::all() {
        assert!(
            kb::find(r.reason).is_some(),
            "{}: unknown reason {}",
            r.id,
            r.reason
        );
        assert!(!r.functions.is_empty(), "{}: no functions", r.id);
    }
}

#[test]
fn refinements_take_precedence() {
    let cases = [
        (
            "NOT_SPECIFIED",
            "ip_error",
            "route-blackhole-unreachable-prohibit",
        ),
        ("NOT_SPECIFIED", "__dev_forward_skb2", "veth-mtu-mismatch"),
        ("NOT_SPECIFIED", "ip6_mc_input", "ipv6-multicast-not-joined"),
        (
            "NO_SOCKET",
            "cookie_v4_check",
            "syncookie-ack-accept-queue-full",
        ),
        ("NO_SOCKET", "ping_rcv", "ping-reply-no-ping-socket"),
        ("NETFILTER_DROP", "nft_do_chain", "nftables-rule-drop"),
        (
            "NETFILTER_DROP",
            "nf_hook_slow",
            "iptables-legacy-rule-drop",
        ),
        (
            "NETFILTER_DROP",
            "ipt_do_table",
            "iptables-legacy-rule-drop",
        ),
        ("SOCKET_RCVBUFF", "udp_queue_rcv_one_skb", "udp-rcvbuf-full"),
        (
            "SOCKET_RCVBUFF",
            "__udp_enqueue_schedule_skb",
            "udp-rcvbuf-full",
        ),
        ("IP_INHDR", "ip_forward", "ttl-expired"),
        ("PKT_TOO_BIG", "ip_forward", "pkt-too-big"),
        ("PKT_TOO_BIG", "ip6_forward", "pkt-too-big"),
    ];
    for (reason, func, id) in cases {
        let x = lookup(reason, func);
        assert_eq!(x.id.as_str(), id, "{reason} at {func}");
        assert_eq!(x.refined_by, Some(x.id));
        assert!(x.known);
        let rf = refine::refine(reason, func).unwrap();
        assert_eq!(
            hint(reason, func),
            rf.hint.unwrap_or(kb::entry(reason).hint)
        );
        assert_ne!(
            x.meaning,
            kb::entry(reason).meaning,
            "{id}: meaning not refined"
        );
    }
}

#[test]
fn location_is_normalized() {
    assert_eq!(
        lookup("NOT_SPECIFIED", "ip_error+0x5c/0x2d0").id,
        refine::ROUTE_BLACKHOLE_UNREACHABLE_PROHIBIT.id
    );
    assert_eq!(
        lookup("no_socket", "cookie_v4_check.isra.0").id,
        refine::SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL.id
    );
    assert_eq!(
        lookup("SKB_DROP_REASON_NETFILTER_DROP", "nft_do_chain [nf_tables]").id,
        refine::NFTABLES_RULE_DROP.id
    );
    assert_eq!(
        refine::normalize_function("  ip_forward+0x1/0x2 "),
        "ip_forward"
    );
    assert_eq!(refine::normalize_function(""), "");
}

#[test]
fn other_locations_keep_the_reason_entry() {
    let x = lookup("NO_SOCKET", "tcp_v4_rcv");
    assert_eq!(x.id.as_str(), "no-socket");
    assert_eq!(x.refined_by, None);
    assert!(x.verified);
    assert_eq!(hint("NO_SOCKET", "tcp_v4_rcv"), kb::entry("NO_SOCKET").hint);
    assert_eq!(lookup("NOT_SPECIFIED", "").id.as_str(), "not-specified");
    // A function refined for one reason does not refine another.
    assert_eq!(
        lookup("NO_SOCKET", "ip_error").id,
        kb::entry("NO_SOCKET").id
    );
}

#[test]
fn unknown_reasons_get_the_fallback() {
    for r in ["SOME_FUTURE_REASON", "OPENVSWITCH:0x3", "UNKNOWN(4242)", ""] {
        let x = lookup(r, "some_func");
        assert!(!x.known, "{r}");
        assert_eq!(x.id, FALLBACK.id);
        assert_eq!(x.id, unknown::ID);
        assert_eq!(x.hint, FALLBACK.hint);
        assert!(!x.verified);
        assert_eq!(hint(r, "some_func"), FALLBACK.hint);
        let u = x.unknown.as_ref().expect("unknown details");
        assert_eq!(u.function, "some_func");
        let h = hint_text(r, "some_func");
        assert!(h.ends_with("not in netwhy's notes yet"), "{r}: {h}");
        assert!(h.chars().count() <= HINT_MAX, "{r}: {h}");
    }
    assert_eq!(
        lookup("SOME_FUTURE_REASON", "f").reason,
        "SOME_FUTURE_REASON"
    );
    // Known reasons keep their static hint, refinements included.
    assert_eq!(
        hint_text("NO_SOCKET", "ping_rcv"),
        hint("NO_SOCKET", "ping_rcv")
    );
    assert!(lookup("NO_SOCKET", "").unknown.is_none());
}

#[test]
fn explanation_serializes() {
    let j = serde_json::to_value(lookup("IP_RPFILTER", "ip_rcv_finish")).unwrap();
    assert_eq!(j["id"], "reverse-path-filter");
    assert_eq!(j["verified"], true);
    assert!(j["fixes"].as_array().is_some_and(|f| !f.is_empty()));
}

/// Every diagnosis id of the catalogue (entries, evidence-driven ones,
/// refinements, the fallback) resolves by its string to itself, and every
/// entry is found by its reason.
#[test]
fn every_diagnosis_id_resolves() {
    let ids = kb::all()
        .chain(kb::specifics())
        .map(|e| e.id)
        .chain(refine::all().iter().map(|r| r.id))
        .chain([FALLBACK.id]);
    let mut n = 0;
    for id in ids {
        let e = by_id(id.as_str()).unwrap_or_else(|| panic!("{id} does not resolve"));
        assert_eq!(e.id, id);
        n += 1;
    }
    assert!(n > 100, "only {n} ids");
    for e in kb::all() {
        assert_eq!(kb::find(e.reason).map(|f| f.id), Some(e.id));
    }
    for r in refine::all() {
        let e = by_id(r.id.as_str()).unwrap();
        assert_eq!(e.meaning, r.meaning.unwrap_or(kb::entry(r.reason).meaning));
        assert_eq!(e.verified, r.verified);
    }
    assert!(by_id("no-such-diagnosis").is_none());
}
