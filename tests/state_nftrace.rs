//! nftrace against the real kernel: which nftables rule dropped a packet
//! (root; skipped otherwise unless CI).
mod common;

use std::time::Duration;

use common::*;
use netwhy::state::nftrace::{self, Matcher, TraceKind, Tracer};

const RULESET: &str = "table inet nwlab_filter {
  chain forward {
    type filter hook forward priority filter; policy accept;
    tcp dport 443 drop comment \"netwhy lab: block https\"
  }
}
";

#[test]
fn nftrace_names_the_dropping_rule() {
    if !root_or_skip("nftrace_names_the_dropping_rule") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.routed().expect("routed");
    lab.nft("rtr", RULESET).expect("nft ruleset");
    let rtr = lab.ns("rtr").inode;

    let rules = nftrace::rules(rtr, 1, "nwlab_filter", "forward").expect("dump rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let handle = rules[0].handle;
    assert_eq!(rules[0].comment.as_deref(), Some("netwhy lab: block https"));

    let mut tracer = Tracer::start(rtr, Matcher::tcp_dport(443)).expect("start tracer");
    let own = tracer.table().to_string();
    assert!(nftrace::tables(rtr)
        .expect("tables")
        .iter()
        .any(|t| t.name == own && t.family == 1));

    let r = traffic::tcp_connect(
        &lab.ns("cli").name,
        "198.18.2.2:443".parse().unwrap(),
        Duration::from_millis(300),
    )
    .expect("connect");
    assert_eq!(r, traffic::Connect::TimedOut);

    let drops = tracer.collect(Duration::from_millis(500)).expect("collect");
    assert!(!drops.is_empty(), "no drop traced");
    let d = &drops[0];
    assert_eq!(d.kind, TraceKind::Rule);
    assert_eq!(d.table, "nwlab_filter");
    assert_eq!(d.chain, "forward");
    assert_eq!(d.rule_handle, Some(handle));
    assert_eq!(d.comment.as_deref(), Some("netwhy lab: block https"));
    assert_eq!(d.nfproto, Some(2));

    tracer.stop().expect("stop");
    let left = nftrace::tables(rtr).expect("tables");
    assert!(!left.iter().any(|t| t.name == own), "{left:?}");
    assert!(left.iter().any(|t| t.name == "nwlab_filter"));
}

#[test]
fn stale_trace_table_of_dead_pid_is_removed() {
    if !root_or_skip("stale_trace_table_of_dead_pid_is_removed") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.add_ns("one").expect("netns");
    // pid_max is at most 2^22: this pid cannot be alive.
    lab.nft("one", "table inet netwhy_trace_99999999 { }\n")
        .expect("nft");
    let ino = lab.ns("one").inode;
    let tracer = Tracer::start(ino, Matcher::udp_dport(53)).expect("start tracer");
    let names: Vec<String> = nftrace::tables(ino)
        .expect("tables")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names.iter().any(|n| n == "netwhy_trace_99999999"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == tracer.table()));
    drop(tracer);
    assert!(nftrace::tables(ino).expect("tables").is_empty());
}

#[test]
fn nftrace_reports_reject_as_drop() {
    if !root_or_skip("nftrace_reports_reject_as_drop") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.routed().expect("routed");
    lab.nft(
        "rtr",
        "table inet nwlab_filter {
  chain forward {
    type filter hook forward priority filter; policy accept;
    tcp dport 8443 reject with tcp reset comment \"refuse 8443\"
  }
}
",
    )
    .expect("nft ruleset");
    let rtr = lab.ns("rtr").inode;
    let m = Matcher::tcp_dport(8443).daddr("198.18.2.2".parse().unwrap());
    let mut tracer = Tracer::start(rtr, m).expect("start tracer");
    let r = traffic::tcp_connect(
        &lab.ns("cli").name,
        "198.18.2.2:8443".parse().unwrap(),
        Duration::from_millis(300),
    )
    .expect("connect");
    assert_eq!(r, traffic::Connect::Refused);
    let drops = tracer.collect(Duration::from_millis(300)).expect("collect");
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0].chain, "forward");
    assert_eq!(drops[0].comment.as_deref(), Some("refuse 8443"));
}

/// Rules planted with the real `nft` and `iptables-nft` come back with
/// the action and matches netwhy's diagnosis depends on.
#[test]
fn rule_expressions_decode_from_the_kernel() {
    if !root_or_skip("rule_expressions_decode_from_the_kernel") {
        return;
    }
    use netwhy::state::nft_rule::{self, Action};
    let mut lab = Lab::new().expect("lab");
    lab.pair().expect("pair");
    lab.nft(
        "srv",
        "table inet t {
  chain input {
    type filter hook input priority filter; policy accept;
    ct state invalid drop
    tcp dport 8443 reject with icmp type port-unreachable
    udp dport 53 accept
    counter reject
  }
}
",
    )
    .expect("nft");
    let srv = lab.ns("srv").inode;
    let rules = nftrace::rules(srv, 1, "t", "input").expect("dump");
    let actions: Vec<Action> = rules.iter().map(|r| r.action()).collect();
    assert_eq!(
        actions,
        vec![Action::Drop, Action::Reject, Action::Accept, Action::Reject],
        "{rules:#?}"
    );
    assert!(nft_rule::matches_ct_invalid(&rules[0].exprs));
    assert!(!nft_rule::matches_ct_invalid(&rules[1].exprs));
    assert!(
        rules[1].text().contains("th dport == 0x20fb"),
        "{}",
        rules[1].text()
    );
    let catch_all: Vec<bool> = rules
        .iter()
        .map(|r| nft_rule::matches_everything(&r.exprs))
        .collect();
    assert_eq!(catch_all, vec![false, false, false, true]);

    // iptables-nft: the target travels as an xt-compat expression.
    let ns = lab.ns("srv").name.clone();
    let ok = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "iptables-nft",
            "-A",
            "INPUT",
            "-j",
            "REJECT",
        ])
        .status()
        .expect("iptables-nft");
    assert!(ok.success());
    let rules = nftrace::rules(srv, 2, "filter", "INPUT").expect("dump ip filter");
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0].action(), Action::Reject);
    assert!(nft_rule::matches_everything(&rules[0].exprs));
}
