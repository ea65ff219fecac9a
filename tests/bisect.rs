//! `netwhy bisect` of sysctls against real namespaces: a dozen harmless
//! differences plus one real culprit (strict rp_filter with an asymmetric
//! route; a router with ip_forward=0), a pair that only breaks together,
//! the refusals (repro passes as is, difference elsewhere, bad input), and
//! SIGTERM / SIGKILL in the middle. Every sysctl of the namespace is
//! compared before and after each run. Routes, rules and nft tables are in
//! tests/bisect_net.rs; the host-global culprits (rmem_default, a
//! conntrack limit of 1), which change the host, in tests/bisect_host.rs.
//!
//! A tiny udp_rmem_min is per-namespace but cannot break reception (it is
//! a floor), so it is one of the harmless differences.
mod bisect_common;
mod common;

use bisect_common::*;
use common::{json_lines, of_type, root_or_skip, stderr_of, Lab};

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
    // Writing ip_forward sets those copies too: the fix is one line.
    assert_eq!(
        r["fix"],
        serde_json::json!([format!(
            "ip netns exec {rtr} sysctl -w net.ipv4.ip_forward={good_fwd}"
        )]),
        "{r}"
    );
    let n = r["differences"].as_u64().unwrap();
    assert!(r["runs"].as_u64().unwrap() <= one_culprit_bound(n), "{r}");
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
                "sysctl,routes",
                "--",
                "false",
            ],
            "--what routes: not a kind of setting",
        ),
        (
            vec![
                "--netns",
                srv.as_str(),
                "--good-file",
                "/dev/null",
                "--what",
                "route",
                "--",
                "false",
            ],
            "--good-file holds sysctls only",
        ),
        (
            vec!["--netns", srv.as_str(), "--what", "route", "--", "false"],
            "has no settings that differ",
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

#[test]
fn sigterm_and_sigkill_in_the_middle_leave_the_namespace_as_it_was() {
    if !root_or_skip("sigterm_and_sigkill_in_the_middle_leave_the_namespace_as_it_was") {
        return;
    }
    let lab = common::pair();
    harm(&lab, "srv");
    let before = snapshot(&lab, "srv");
    let srv = lab.ns("srv").name.clone();
    let mut args: Vec<String> = ["--netns", &srv, "--no-explain", "--"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(pair_repro(&srv));
    kill_mid_run(
        &args,
        || snapshot(&lab, "srv") != before,
        || assert_same(&before, &snapshot(&lab, "srv")),
    );
}
