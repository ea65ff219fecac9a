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

fn journals_of(pid: u32) -> usize {
    std::fs::read_dir("/run/netwhy")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("undo-{pid}-"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn every_scenario_passes_its_check_and_leaves_nothing() {
    if !root_or_skip("lab --all") {
        return;
    }
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
    let names = String::from_utf8_lossy(&list.stdout).lines().count();
    assert_eq!(reports.len(), names, "one report per scenario");
    for r in &reports {
        assert_eq!(r["pass"], true, "{r}");
        assert!(!r["events"].as_array().unwrap().is_empty());
        assert!(r["cleanup_errors"].as_array().unwrap().is_empty());
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
    assert!(lab_namespaces_of(pid).is_empty());
    assert_eq!(journals_of(pid), 0);
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
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("lab list") || err.contains("root"), "{err}");
}
