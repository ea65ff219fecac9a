//! iptables-legacy rule counters read through getsockopt against the real
//! kernel, rules planted with the iptables-legacy CLI (root; skipped
//! otherwise unless CI).
mod common;

use std::time::Duration;

use common::*;
use netwhy::state::iptables::{self, Family, LegacyRule};

fn legacy(lab: &Lab, role: &str, tool: &str, args: &[&str]) {
    let mut cmd = vec![tool];
    cmd.extend_from_slice(args);
    lab.exec(role, &cmd)
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
}

fn tables(lab: &Lab, role: &str, file: &str) -> String {
    lab.exec(role, &["cat", &format!("/proc/net/{file}")])
        .unwrap_or_default()
}

#[test]
fn moved_counters_name_the_rejecting_rule() {
    if !root_or_skip("moved_counters_name_the_rejecting_rule") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.routed().expect("routed");
    let ipt = |args: &[&str]| legacy(&lab, "rtr", "iptables-legacy", args);
    ipt(&["-N", "LIBVIRT_FWI"]);
    ipt(&["-A", "FORWARD", "-j", "LIBVIRT_FWI"]);
    ipt(&[
        "-A", "FORWARD", "-p", "udp", "--dport", "53", "-j", "ACCEPT",
    ]);
    ipt(&[
        "-A",
        "LIBVIRT_FWI",
        "-p",
        "tcp",
        "--dport",
        "22",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-port-unreachable",
    ]);
    let rtr = lab.ns("rtr").inode;

    let before = iptables::snapshot(rtr).expect("snapshot before");
    let reject = before
        .iter()
        .find(|r| r.chain == "LIBVIRT_FWI")
        .unwrap_or_else(|| panic!("no LIBVIRT_FWI rule in {before:#?}"));
    assert_eq!(
        (reject.table.as_str(), reject.index, reject.target.as_str()),
        ("filter", 1, "REJECT")
    );
    assert!(reject.summary.contains("dpt:22"), "{reject:?}");
    assert!(
        reject.summary.contains("icmp-port-unreachable"),
        "{reject:?}"
    );
    let forward: Vec<_> = before
        .iter()
        .filter(|r| r.chain == "FORWARD" && !r.policy)
        .map(|r| (r.index, r.target.as_str(), r.summary.as_str()))
        .collect();
    assert_eq!(
        forward,
        [(1, "LIBVIRT_FWI", "any"), (2, "ACCEPT", "udp dpt:53")]
    );

    const SENT: u64 = 3;
    for _ in 0..SENT {
        let r = traffic::tcp_connect(
            &lab.ns("cli").name,
            "198.18.2.2:22".parse().unwrap(),
            Duration::from_secs(2),
        )
        .expect("connect");
        assert_eq!(r, traffic::Connect::Refused);
    }
    let after = iptables::snapshot(rtr).expect("snapshot after");
    let moved = iptables::moved(&before, &after);
    let delta = |chain: &str, index: u32| {
        moved
            .iter()
            .find(|(r, _)| r.chain == chain && r.index == index && !r.policy)
            .map(|(_, d)| *d)
    };
    // The jump into the chain and the REJECT inside it saw every SYN; the
    // unrelated ACCEPT nothing. (OUTPUT may count the ICMP errors sent.)
    assert_eq!(delta("LIBVIRT_FWI", 1), Some(SENT), "{moved:#?}");
    assert_eq!(delta("FORWARD", 1), Some(SENT), "{moved:#?}");
    assert_eq!(delta("FORWARD", 2), None, "{moved:#?}");
    let verdicts: Vec<&LegacyRule> = moved
        .iter()
        .map(|(r, _)| r)
        .filter(|r| matches!(r.target.as_str(), "REJECT" | "DROP"))
        .collect();
    assert_eq!(verdicts.len(), 1, "{moved:#?}");
    assert_eq!(
        (verdicts[0].chain.as_str(), verdicts[0].index),
        ("LIBVIRT_FWI", 1)
    );

    // Same counters as the CLI's own view.
    let cli = lab
        .exec(
            "rtr",
            &[
                "iptables-legacy",
                "-L",
                "LIBVIRT_FWI",
                "-v",
                "-n",
                "-x",
                "--line-numbers",
            ],
        )
        .expect("iptables-legacy -L");
    let row: Vec<&str> = cli
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("no rule 1 in {cli}"))
        .split_whitespace()
        .collect();
    let ours = after.iter().find(|r| r.chain == "LIBVIRT_FWI").unwrap();
    assert_eq!(row[1].parse::<u64>().unwrap(), ours.pkts, "{cli}");
    assert_eq!(row[2].parse::<u64>().unwrap(), ours.bytes, "{cli}");
}

#[test]
fn netns_without_legacy_tables_is_empty_and_left_untouched() {
    if !root_or_skip("netns_without_legacy_tables_is_empty_and_left_untouched") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.add_ns("one").expect("netns");
    let ino = lab.ns("one").inode;
    assert_eq!(
        iptables::snapshot(ino).expect("snapshot"),
        Vec::<LegacyRule>::new()
    );
    // Reading must not instantiate tables (asking the kernel for one by
    // name would create it in this netns).
    assert_eq!(tables(&lab, "one", "ip_tables_names").trim(), "");
    assert_eq!(tables(&lab, "one", "ip6_tables_names").trim(), "");
}

#[test]
fn ip6tables_legacy_rule_counts_ipv6_drops() {
    if !root_or_skip("ip6tables_legacy_rule_counts_ipv6_drops") {
        return;
    }
    let lab = pair();
    legacy(
        &lab,
        "srv",
        "ip6tables-legacy",
        &[
            "-A",
            "INPUT",
            "-s",
            "fd00:18::/64",
            "-p",
            "udp",
            "--dport",
            "5300",
            "-j",
            "DROP",
        ],
    );
    let srv = lab.ns("srv").inode;
    let before = iptables::snapshot(srv).expect("snapshot before");
    traffic::udp_send(
        &lab.ns("cli").name,
        "[fd00:18::2]:5300".parse().unwrap(),
        4,
        b"x",
    )
    .expect("udp send");
    let after = iptables::snapshot(srv).expect("snapshot after");
    let moved = iptables::moved(&before, &after);
    let drop: Vec<_> = moved.iter().filter(|(r, _)| r.target == "DROP").collect();
    assert_eq!(drop.len(), 1, "{moved:#?}");
    let (rule, d) = drop[0];
    assert_eq!(
        (rule.family, rule.chain.as_str(), rule.index, *d),
        (Family::Ipv6, "INPUT", 1, 4)
    );
    assert_eq!(rule.summary, "udp src fd00:18::/64 dpt:5300");
}
