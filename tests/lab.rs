//! `netwhy lab` end to end: scenarios pass on this kernel, nothing is left.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

fn lab_namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("nwlab-{pid}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Host values a scenario may change (through the journal) for a moment.
const HOST_SYSCTLS: &[&str] = &["/proc/sys/net/core/rmem_default"];

fn host_sysctls() -> Vec<String> {
    HOST_SYSCTLS
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// Processes (or threads) still living in one of the namespaces `inodes`.
fn processes_in(inodes: &[u64]) -> Vec<String> {
    let mut v = Vec::new();
    for ent in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(link) = std::fs::read_link(ent.path().join("ns/net")) else {
            continue;
        };
        let l = link.to_string_lossy();
        let ino = l
            .trim_start_matches("net:[")
            .trim_end_matches(']')
            .parse::<u64>()
            .unwrap_or(0);
        if inodes.contains(&ino) {
            v.push(format!("{} {l}", ent.file_name().to_string_lossy()));
        }
    }
    v
}

#[test]
fn every_scenario_passes_its_check_and_leaves_nothing() {
    if !root_or_skip("lab --all") {
        return;
    }
    let sysctls_before = host_sysctls();
    let child = Command::new(bin())
        .args(["lab", "run", "--all", "--check", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = json_lines(&stdout);
    let list = run(&["lab", "list"]);
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    assert_eq!(reports.len(), names.len(), "one report per scenario");
    for (r, name) in reports.iter().zip(&names) {
        assert_eq!(r["scenario"], name.as_str());
        assert_eq!(r["pass"], true, "{r}");
        assert!(r["error"].is_null(), "{r}");
        assert!(r["cleanup_errors"].as_array().unwrap().is_empty());
        assert!(!r["diagnosis"].as_str().unwrap().is_empty());
        let checks = r["checks"].as_array().unwrap();
        assert!(!checks.is_empty(), "{name} checks nothing");
        for c in checks {
            assert_eq!(c["ok"], true, "{name}: {c}");
        }
        // A scenario that expects drops saw them.
        if checks.iter().any(|c| c["kind"] == "drop") {
            assert!(!r["events"].as_array().unwrap().is_empty(), "{name}");
        }
        // Every event came from the scenario's own namespaces.
        let inodes: Vec<_> = r["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n[2].clone())
            .collect();
        for e in r["events"].as_array().unwrap() {
            assert!(inodes.contains(&e["netns"]), "foreign event {e}");
        }
    }
    // The seed incidents and everyday drops of the catalog are all there.
    for must in [
        "udp-rmem-overflow",
        "rp-filter-martian",
        "rp-filter-loose",
        "rp-filter-off",
        "nft-forward-drop",
        "nft-reject",
        "iptables-legacy-reject",
        "iptables-nft-reject",
        "udp-closed-port",
        "tcp-closed-port",
        "udp-rcvbuf-full",
        "no-route",
        "forwarding-disabled",
        "ttl-expired",
        "pkt-too-big",
        "neigh-failed",
        "firewall-checksum",
        "udp-bad-checksum",
        "conntrack-nat-mismatch",
        "conntrack-lost-dns",
        "tc-bpf-drop",
        "xdp-drop",
        "xdp-generic-drop",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "{must} missing from the catalog"
        );
    }
    let by_name = |n: &str| reports.iter().find(|r| r["scenario"] == n).unwrap();
    // This kernel has the 2020 fix, and the scenario says so.
    assert!(by_name("udp-rmem-overflow")["not_affected"].is_string());
    assert!(lab_namespaces_of(pid).is_empty());
    assert_eq!(journals_of(pid), 0);
    assert_eq!(host_sysctls(), sysctls_before, "host sysctl not restored");
    let all_inodes: Vec<u64> = reports
        .iter()
        .flat_map(|r| {
            r["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n[2].as_u64())
        })
        .collect();
    assert!(
        processes_in(&all_inodes).is_empty(),
        "{:?}",
        processes_in(&all_inodes)
    );
}

#[test]
fn text_run_shows_the_drop_and_verdict() {
    if !root_or_skip("lab text") {
        return;
    }
    let out = run(&["lab", "run", "udp-closed-port", "--check"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("NO_SOCKET at __udp4_lib_rcv+0x"), "{s}");
    assert!(s.contains("198.18.0.2:5300"), "{s}");
    assert!(s.contains("result:   PASS"), "{s}");
}

#[test]
fn clean_removes_what_a_killed_run_left() {
    if !root_or_skip("lab clean") {
        return;
    }
    let mut child = Command::new(bin())
        .args(["lab", "run", "nft-forward-drop"])
        .env("NETWHY_TEST_PAUSE_MS", "30000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("lab built") {
        line.clear();
    }
    assert!(line.contains("lab built"), "run never reached the pause");
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert_eq!(
        lab_namespaces_of(pid).len(),
        3,
        "killed run left its namespaces"
    );
    assert_eq!(journals_of(pid), 1);
    let out = run(&["lab", "clean"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("nwlab-{pid}-")), "{said}");
    assert!(lab_namespaces_of(pid).is_empty());
    assert_eq!(journals_of(pid), 0);
}

#[test]
fn unknown_scenario_is_a_one_line_error() {
    let out = run(&["lab", "run", "no-such-scenario"]);
    assert!(!out.status.success());
    let err = common::stderr_of(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("lab list") || err.contains("root"), "{err}");
}
