//! What the bisect tests share: a dozen harmless sysctl differences, the
//! namespace's sysctls, routes, rules and nft ruleset compared before and
//! after, and the checks every JSON run gets. (Included by tests/bisect*.rs.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::{bin, journals_of, json_lines, of_type, stderr_of, Lab};
use netwhy::bisect::apply::read_netns;
use netwhy::bisect::collect::Side;

/// Per-namespace settings that change nothing for a ping (or for the
/// artificial repro of the pair test), each away from the default.
/// udp_rmem_min is here on purpose: a tiny *minimum* only lowers the floor
/// a socket keeps under memory pressure, it cannot break reception.
pub const HARMLESS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_keepalive_time", "600"),
    ("net.ipv4.tcp_fin_timeout", "20"),
    ("net.ipv4.ip_default_ttl", "100"),
    ("net.ipv4.tcp_syn_retries", "3"),
    ("net.ipv4.udp_rmem_min", "1024"),
    ("net.core.somaxconn", "1000"),
    ("net.ipv4.conf.eth0.log_martians", "1"),
    ("net.ipv4.icmp_ratelimit", "500"),
    ("net.ipv4.tcp_retries2", "8"),
    ("net.ipv6.conf.eth0.accept_ra", "0"),
    ("net.ipv4.ip_local_port_range", "20000 40000"),
    ("net.ipv4.tcp_sack", "0"),
];

pub fn harm(lab: &Lab, role: &str) {
    for (k, v) in HARMLESS {
        lab.sysctl(role, k, v).expect("harmless sysctl");
    }
}

pub fn snapshot(lab: &Lab, role: &str) -> Side {
    read_netns(&lab.ns(role).name).expect("read sysctls")
}

/// Every sysctl identical, or the keys that differ; except the read-only
/// nf_conntrack_count, a counter of tracked flows (state, not a setting)
/// that the repro's own traffic moves.
pub fn assert_same(before: &Side, after: &Side) {
    let differ: Vec<String> = before
        .iter()
        .filter(|(k, e)| {
            let state = k.ends_with("nf_conntrack_count") && !e.writable;
            !state && after.get(*k) != Some(e)
        })
        .map(|(k, e)| format!("{k}: {} -> {:?}", e.value, after.get(k).map(|a| &a.value)))
        .chain(
            after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .map(|k| format!("{k}: new")),
        )
        .collect();
    assert!(differ.is_empty(), "sysctls changed: {differ:?}");
}

pub fn bisect(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("bisect")
        .args(args)
        .output()
        .expect("run netwhy bisect")
}

/// The single `bisect_result` of a JSON run, after checking the steps.
pub fn result(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bisect failed: {}\n{stdout}",
        stderr_of(out)
    );
    let lines = json_lines(&stdout);
    let steps = of_type(&lines, "bisect_step");
    let res = of_type(&lines, "bisect_result");
    assert_eq!(res.len(), 1, "{stdout}");
    let r = res[0].clone();
    assert_eq!(r["v"], 1);
    assert_eq!(
        r["steps"].as_u64().unwrap() as usize,
        steps.len(),
        "{stdout}"
    );
    assert_eq!(
        r["runs"].as_u64().unwrap() as usize,
        steps.len(),
        "one run per step: {stdout}"
    );
    assert_eq!(steps[0]["phase"], "as is");
    assert_eq!(steps[0]["result"], "broken");
    assert_eq!(steps[1]["phase"], "all good");
    assert_eq!(steps[1]["result"], "works");
    r
}

/// Steps for one culprit among `n`: the two checks, then at most two
/// questions per halving.
pub fn one_culprit_bound(n: u64) -> u64 {
    2 + 2 * (64 - (n - 1).leading_zeros()) as u64
}

pub fn value(side: &Side, key: &str) -> String {
    side.get(key)
        .unwrap_or_else(|| panic!("no {key}"))
        .value
        .clone()
}

/// Routes (all tables, v4 and v6), rules and the nft ruleset (without
/// counter values, which the repro's traffic moves) of `role`, as `ip` and
/// `nft` print them: the check does not trust netwhy's own reader. The
/// `local` table is left out: the kernel fills it on its own (an IPv6
/// link-local address appears when its DAD ends, at any moment).
pub fn net_state(lab: &Lab, role: &str) -> String {
    let mut s = String::new();
    for args in [
        &["-4", "route", "show", "table", "all"][..],
        &["-6", "route", "show", "table", "all"],
        &["-4", "rule"],
        &["-6", "rule"],
    ] {
        let mut v = vec!["ip"];
        v.extend_from_slice(args);
        for l in lab.exec(role, &v).expect("ip").lines() {
            if !l.contains(" table local ") {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    s.push_str(
        &lab.exec(role, &["nft", "-s", "list", "ruleset"])
            .expect("nft"),
    );
    s
}

/// Start `netwhy bisect ARGS` so that it pauses after its first change of
/// the namespace; returns it once paused (stderr drained from then on).
pub fn paused(args: &[String], until: &Path) -> Child {
    let mut child = Command::new(bin())
        .arg("bisect")
        .args(args)
        .env("NETWHY_TEST_PAUSE_AT", "bisect step")
        .env("NETWHY_TEST_PAUSE_MS", "30000")
        .env("NETWHY_TEST_PAUSE_UNTIL", until)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut rd = BufReader::new(child.stderr.take().unwrap());
    let t = Instant::now();
    loop {
        let mut l = String::new();
        if rd.read_line(&mut l).unwrap() == 0 || t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("bisect never paused: {lines:?}");
        }
        let paused = l.contains("bisect step, pausing");
        lines.push(l);
        if paused {
            break;
        }
    }
    // Keep reading so netwhy never blocks on a full pipe.
    std::thread::spawn(move || for _ in rd.lines() {});
    child
}

/// SIGTERM, then SIGKILL, a paused bisect: `changed` must hold at the
/// pause (the test sees something to undo) and after the SIGKILL until the
/// next netwhy runs; `restored` checks the namespace after each.
pub fn kill_mid_run(args: &[String], changed: impl Fn() -> bool, restored: impl Fn()) {
    let until = std::env::temp_dir().join(format!(
        "netwhy-bisect-until-{}-{}",
        std::process::id(),
        netwhy::sys::random_u32()
    ));
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let _ = std::fs::remove_file(&until);
        let mut child = paused(args, &until);
        let pid = child.id();
        assert!(changed(), "signal {sig}: nothing was changed at the pause");
        assert_eq!(journals_of(pid), 1);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, sig) };
        std::fs::write(&until, "").unwrap();
        let st = child.wait().unwrap();
        assert!(!st.success(), "signal {sig}: bisect succeeded");
        if sig == libc::SIGKILL {
            // Killed: its journal waits for the next netwhy.
            assert!(changed(), "SIGKILL: restored without a next run");
            assert_eq!(journals_of(pid), 1);
            let out = Command::new(bin()).args(["lab", "list"]).output().unwrap();
            assert!(out.status.success());
        }
        restored();
        assert_eq!(journals_of(pid), 0, "signal {sig}: journal left behind");
    }
    let _ = std::fs::remove_file(&until);
}

/// A repro that fails only when tcp_sack is off AND fin_timeout is 20 in
/// namespace `ns`: the predicate itself is the pair.
pub fn pair_repro(ns: &str) -> Vec<String> {
    let script = format!(
        "test \"$(ip netns exec {ns} sysctl -n net.ipv4.tcp_sack)\" != 0 || \
         test \"$(ip netns exec {ns} sysctl -n net.ipv4.tcp_fin_timeout)\" != 20"
    );
    vec!["sh".into(), "-c".into(), script]
}
