//! `netwhy bisect` against real namespaces: a dozen harmless differences
//! plus one real culprit (strict rp_filter with an asymmetric route; a
//! router with ip_forward=0), a pair that only breaks together, the
//! refusals (repro passes as is, difference elsewhere, bad input), and
//! SIGTERM / SIGKILL in the middle. Every sysctl of the namespace is
//! compared before and after each run.
//!
//! Of the culprits, a conntrack limit of 1 is not here: on this
//! kernel net.netfilter.nf_conntrack_max is read-only in a child namespace
//! (host-global), and setting the host's to 1 would break every other
//! namespace on a shared machine; the host-global path is tested with a
//! harmless one-byte change of net.core.rmem_max instead. A tiny
//! udp_rmem_min is per-namespace but cannot break reception (it is a
//! floor), so it is one of the harmless differences.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, journals_of, json_lines, of_type, root_or_skip, stderr_of, Lab};
use netwhy::bisect::apply::read_netns;
use netwhy::bisect::collect::Side;

/// Per-namespace settings that change nothing for a ping (or for the
/// artificial repro of the pair test), each away from the default.
/// udp_rmem_min is here on purpose: a tiny *minimum* only lowers the floor
/// a socket keeps under memory pressure, it cannot break reception.
const HARMLESS: &[(&str, &str)] = &[
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

fn harm(lab: &Lab, role: &str) {
    for (k, v) in HARMLESS {
        lab.sysctl(role, k, v).expect("harmless sysctl");
    }
}

fn snapshot(lab: &Lab, role: &str) -> Side {
    read_netns(&lab.ns(role).name).expect("read sysctls")
}

/// Every sysctl identical, or the keys that differ.
fn assert_same(before: &Side, after: &Side) {
    let differ: Vec<String> = before
        .iter()
        .filter(|(k, e)| after.get(*k) != Some(e))
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

fn bisect(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("bisect")
        .args(args)
        .output()
        .expect("run netwhy bisect")
}

/// The single `bisect_result` of a JSON run, after checking the steps.
fn result(out: &Output) -> serde_json::Value {
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
fn one_culprit_bound(n: u64) -> u64 {
    2 + 2 * (64 - (n - 1).leading_zeros()) as u64
}

fn value(side: &Side, key: &str) -> String {
    side.get(key)
        .unwrap_or_else(|| panic!("no {key}"))
        .value
        .clone()
}

#[test]
fn strict_rp_filter_on_an_asymmetric_route_among_a_dozen_harmless() {
    if !root_or_skip("strict_rp_filter_on_an_asymmetric_route_among_a_dozen_harmless") {
        return;
    }
    let mut lab = common::pair();
    // A second link; srv routes replies to cli's eth0 address over it.
    lab.veth("cli", "eth1", "srv", "eth1").unwrap();
    lab.ip("cli", &["addr", "add", "198.18.3.1/24", "dev", "eth1"])
        .unwrap();
    lab.ip("srv", &["addr", "add", "198.18.3.2/24", "dev", "eth1"])
        .unwrap();
    lab.ip("srv", &["route", "add", "198.18.0.1/32", "dev", "eth1"])
        .unwrap();
    lab.add_ns("ref").unwrap();
    let defaults = snapshot(&lab, "ref");
    let ping = [
        "ip",
        "netns",
        "exec",
        &lab.ns("cli").name,
        "ping",
        "-c1",
        "-W2",
        "198.18.0.2",
    ];
    // Works before the break (and the neighbours are resolved).
    assert!(
        lab.exec("cli", &ping[4..]).is_ok(),
        "topology broken before the test"
    );
    harm(&lab, "srv");
    lab.sysctl("srv", "net.ipv4.conf.eth0.rp_filter", "1")
        .unwrap();
    assert!(
        lab.exec("cli", &ping[4..]).is_err(),
        "strict rp_filter did not break the ping"
    );
    let before = snapshot(&lab, "srv");
    let srv = lab.ns("srv").name.clone();
    let mut args = vec!["--netns", srv.as_str(), "-o", "json", "--"];
    args.extend_from_slice(&ping);
    let out = bisect(&args);
    assert_same(&before, &snapshot(&lab, "srv"));
    let r = result(&out);
    let culprits = r["culprits"].as_array().unwrap();
    assert_eq!(culprits.len(), 1, "{r}");
    assert_eq!(culprits[0]["sysctl"], "net.ipv4.conf.eth0.rp_filter");
    assert_eq!(culprits[0]["bad"], "1");
    // srv's eth0 is not in a fresh namespace: its good value is conf.default's.
    assert_eq!(
        culprits[0]["good"],
        value(&defaults, "net.ipv4.conf.default.rp_filter")
    );
    let n = r["differences"].as_u64().unwrap();
    assert!(n > HARMLESS.len() as u64, "{r}");
    assert!(r["runs"].as_u64().unwrap() <= one_culprit_bound(n), "{r}");
    // explain saw the drop the culprit causes, in srv.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let findings = json_lines(&stdout);
    let findings = of_type(&findings, "finding");
    assert!(
        findings.iter().any(|f| f["reason"] == "IP_RPFILTER"),
        "explain did not see the rp_filter drop: {stdout}"
    );
}

#[test]
fn ip_forward_off_on_a_router_against_its_healthy_sysctls() {
    if !root_or_skip("ip_forward_off_on_a_router_against_its_healthy_sysctls") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    let cli = lab.ns("cli").name.clone();
    let ping = [
        "ip",
        "netns",
        "exec",
        cli.as_str(),
        "ping",
        "-c1",
        "-W2",
        "198.18.2.2",
    ];
    assert!(
        lab.exec("cli", &ping[4..]).is_ok(),
        "router does not forward before the test"
    );
    // The good side: the healthy router's own `sysctl -a`.
    let healthy = lab.exec("rtr", &["sysctl", "-a"]).unwrap();
    let dir = std::env::temp_dir().join(format!("netwhy-bisect-{}", std::process::id()));
    std::fs::write(&dir, healthy).unwrap();
    let good_fwd = value(&snapshot(&lab, "rtr"), "net.ipv4.ip_forward");
    harm(&lab, "rtr");
    lab.sysctl("rtr", "net.ipv4.ip_forward", "0").unwrap();
    assert!(
        lab.exec("cli", &ping[4..]).is_err(),
        "ip_forward=0 did not break forwarding"
    );
    let before = snapshot(&lab, "rtr");
    let rtr = lab.ns("rtr").name.clone();
    let good = dir.to_str().unwrap();
    let mut args = vec![
        "--netns",
        rtr.as_str(),
        "--good-file",
        good,
        "--no-explain",
        "-o",
        "json",
        "--",
    ];
    args.extend_from_slice(&ping);
    let out = bisect(&args);
    let _ = std::fs::remove_file(&dir);
    assert_same(&before, &snapshot(&lab, "rtr"));
    let r = result(&out);
    let culprits = r["culprits"].as_array().unwrap();
    assert_eq!(culprits.len(), 1, "{r}");
    assert_eq!(culprits[0]["sysctl"], "net.ipv4.ip_forward");
    assert_eq!(culprits[0]["bad"], "0");
    assert_eq!(culprits[0]["good"], good_fwd.as_str());
    // The devices' forwarding flags the kernel cleared with it follow it.
    let with: Vec<&str> = culprits[0]["with"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(with.contains(&"net.ipv4.conf.eth0.forwarding"), "{r}");
    let n = r["differences"].as_u64().unwrap();
    assert!(r["runs"].as_u64().unwrap() <= one_culprit_bound(n), "{r}");
}

/// A repro that fails only when tcp_sack is off AND fin_timeout is 20 in
/// namespace `ns`: the predicate itself is the pair.
fn pair_repro(ns: &str) -> Vec<String> {
    let script = format!(
        "test \"$(ip netns exec {ns} sysctl -n net.ipv4.tcp_sack)\" != 0 || \
         test \"$(ip netns exec {ns} sysctl -n net.ipv4.tcp_fin_timeout)\" != 20"
    );
    vec!["sh".into(), "-c".into(), script]
}

#[test]
fn two_settings_that_only_break_together_are_both_named() {
    if !root_or_skip("two_settings_that_only_break_together_are_both_named") {
        return;
    }
    let mut lab = common::pair();
    lab.add_ns("ref").unwrap();
    let defaults = snapshot(&lab, "ref");
    harm(&lab, "srv");
    let before = snapshot(&lab, "srv");
    let srv = lab.ns("srv").name.clone();
    let repro = pair_repro(&srv);
    // The good side is another namespace this time.
    let reference = lab.ns("ref").name.clone();
    let mut args = vec![
        "--netns",
        srv.as_str(),
        "--good",
        reference.as_str(),
        "--no-explain",
        "-o",
        "json",
        "--",
    ];
    args.extend(repro.iter().map(String::as_str));
    let out = bisect(&args);
    assert_same(&before, &snapshot(&lab, "srv"));
    let r = result(&out);
    let got: Vec<(String, String, String)> = r["culprits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["sysctl"].as_str().unwrap().into(),
                c["bad"].as_str().unwrap().into(),
                c["good"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = ["net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_sack"]
        .iter()
        .map(|k| (k.to_string(), value(&before, k), value(&defaults, k)))
        .collect();
    assert_eq!(got, want, "{r}");
    let n = r["differences"].as_u64().unwrap();
    // Generous but finite: ddmin's worst case is quadratic.
    assert!(r["runs"].as_u64().unwrap() <= 2 + 4 * n, "{r}");
}

#[test]
fn refusals_are_one_line_and_leave_everything_as_it_was() {
    if !root_or_skip("refusals_are_one_line_and_leave_everything_as_it_was") {
        return;
    }
    let lab = common::pair();
    harm(&lab, "srv");
    let before = snapshot(&lab, "srv");
    let srv = lab.ns("srv").name.clone();
    for (args, says) in [
        (vec!["--netns", srv.as_str(), "--", "true"], "passes on"),
        (
            vec!["--netns", srv.as_str(), "--", "false"],
            "the difference is not in these settings",
        ),
        (
            vec!["--netns", "nwlab-no-such-ns", "--", "false"],
            "no network namespace named",
        ),
        (
            vec![
                "--netns",
                srv.as_str(),
                "--what",
                "sysctl,route",
                "--",
                "false",
            ],
            "only `sysctl`",
        ),
        (
            vec!["--netns", srv.as_str(), "--", "/nonexistent/repro"],
            "/nonexistent/repro",
        ),
    ] {
        let out = bisect(&args);
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("netwhy: error: ") && last.contains(says),
            "{args:?}: {err}"
        );
        assert_same(&before, &snapshot(&lab, "srv"));
    }
}

/// Start a bisect that pauses with srv changed; returns it once paused.
fn paused(lab: &Lab, until: &std::path::Path) -> (std::process::Child, Vec<String>) {
    let srv = lab.ns("srv").name.clone();
    let repro = pair_repro(&srv);
    let mut child = Command::new(bin())
        .args(["bisect", "--netns", &srv, "--no-explain", "--"])
        .args(&repro)
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
    (child, lines)
}

#[test]
fn sigterm_and_sigkill_in_the_middle_leave_the_namespace_as_it_was() {
    if !root_or_skip("sigterm_and_sigkill_in_the_middle_leave_the_namespace_as_it_was") {
        return;
    }
    let lab = common::pair();
    harm(&lab, "srv");
    let before = snapshot(&lab, "srv");
    let until = std::env::temp_dir().join(format!("netwhy-bisect-until-{}", std::process::id()));
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let _ = std::fs::remove_file(&until);
        let (mut child, _) = paused(&lab, &until);
        let pid = child.id();
        // The pause is after a change: the test can see what is undone.
        assert_ne!(
            snapshot(&lab, "srv"),
            before,
            "nothing was changed at the pause"
        );
        assert_eq!(journals_of(pid), 1);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, sig) };
        std::fs::write(&until, "").unwrap();
        let st = child.wait().unwrap();
        assert!(!st.success(), "signal {sig}: bisect succeeded");
        if sig == libc::SIGKILL {
            // Killed: its journal waits for the next netwhy.
            assert_ne!(snapshot(&lab, "srv"), before);
            assert_eq!(journals_of(pid), 1);
            let out = Command::new(bin()).args(["lab", "list"]).output().unwrap();
            assert!(out.status.success());
        }
        assert_same(&before, &snapshot(&lab, "srv"));
        assert_eq!(journals_of(pid), 0, "signal {sig}: journal left behind");
    }
    let _ = std::fs::remove_file(&until);
}

const RMEM_MAX: &str = "/proc/sys/net/core/rmem_max";

#[test]
fn host_global_settings_only_with_allow_host_changes_and_restored() {
    if !root_or_skip("host_global_settings_only_with_allow_host_changes_and_restored") {
        return;
    }
    let lab = common::pair();
    harm(&lab, "srv");
    let before = snapshot(&lab, "srv");
    let srv = lab.ns("srv").name.clone();
    // The good file: srv's own values but tcp_sack and fin_timeout at the
    // defaults, and a host-global rmem_max one byte above the host's (a
    // change no socket notices).
    let host_rmem = std::fs::read_to_string(RMEM_MAX)
        .unwrap()
        .trim()
        .to_string();
    let good_rmem = (host_rmem.parse::<u64>().unwrap() + 1).to_string();
    let mut good = String::new();
    for (k, e) in &before {
        let v = match k.as_str() {
            "net.ipv4.tcp_sack" => "1",
            "net.ipv4.tcp_fin_timeout" => "60",
            "net.core.rmem_max" => good_rmem.as_str(),
            _ => e.value.as_str(),
        };
        good.push_str(&format!("{k} = {v}\n"));
    }
    let file = std::env::temp_dir().join(format!("netwhy-bisect-host-{}", std::process::id()));
    std::fs::write(&file, good).unwrap();
    let repro = pair_repro(&srv);
    for allow in [false, true] {
        let mut args = vec![
            "--netns",
            srv.as_str(),
            "--good-file",
            file.to_str().unwrap(),
        ];
        if allow {
            args.push("--allow-host-changes");
        }
        args.extend(["--no-explain", "-o", "json", "--"]);
        args.extend(repro.iter().map(String::as_str));
        let out = bisect(&args);
        assert_same(&before, &snapshot(&lab, "srv"));
        assert_eq!(std::fs::read_to_string(RMEM_MAX).unwrap().trim(), host_rmem);
        let r = result(&out);
        let names: Vec<&str> = r["culprits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sysctl"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_sack"],
            "{r}"
        );
        let skipped_rmem = r["skipped"].as_array().unwrap().iter().any(|s| {
            s["sysctl"] == "net.core.rmem_max"
                && s["why"].as_str().unwrap().contains("--allow-host-changes")
        });
        // Without the flag it is skipped; with it, it is one of the three
        // settings bisected (and found harmless).
        assert_eq!(skipped_rmem, !allow, "{r}");
        assert_eq!(r["differences"], if allow { 3 } else { 2 }, "{r}");
    }
    let _ = std::fs::remove_file(&file);
}
