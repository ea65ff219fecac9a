//! `netwhy bisect --what sysctl,route,nft`: a namespace with harmless
//! sysctl, route, rule and nft differences plus one culprit of each kind
//! (a blackhole route for the peer; an nft table that drops the ping), a
//! rule and a route that only break together, and SIGTERM / SIGKILL with
//! routes and tables changed. Routes, rules and the ruleset are compared,
//! as `ip` and `nft` print them, before and after every run.
mod bisect_common;
mod common;

use bisect_common::*;
use common::{root_or_skip, Lab};

/// Routes, a rule and nft tables that change nothing for srv's ping
/// replies to cli (198.18.0.1).
fn harm_net(lab: &Lab) {
    for r in [
        &["route", "add", "10.50.0.0/16", "via", "198.18.0.1"][..],
        &[
            "route",
            "add",
            "10.51.0.0/16",
            "dev",
            "eth0",
            "table",
            "200",
        ],
        &["route", "add", "unreachable", "10.52.0.0/16", "metric", "9"],
        &["-6", "route", "add", "fd00:50::/64", "dev", "eth0"],
        &[
            "rule",
            "add",
            "from",
            "10.53.0.0/16",
            "lookup",
            "200",
            "pref",
            "2000",
        ],
    ] {
        lab.ip("srv", r).expect("harmless route");
    }
    lab.nft(
        "srv",
        "table inet harmless {\n\
           chain input { type filter hook input priority 0; policy accept; counter; }\n\
         }\n\
         table ip empty {\n}\n",
    )
    .expect("harmless nft");
}

fn ping(lab: &Lab) -> Vec<String> {
    [
        "ip",
        "netns",
        "exec",
        &lab.ns("cli").name,
        "ping",
        "-c1",
        "-W1",
        "198.18.0.2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Bisect srv with `extra` options; the result after the common checks
/// and the check that routes, rules, ruleset and sysctls are as before.
fn bisect_srv(lab: &Lab, extra: &[&str]) -> serde_json::Value {
    let before = (snapshot(lab, "srv"), net_state(lab, "srv"));
    let srv = lab.ns("srv").name.clone();
    let mut args = vec!["--netns", srv.as_str()];
    args.extend_from_slice(extra);
    args.extend(["--no-explain", "-o", "json", "--"]);
    let repro = ping(lab);
    args.extend(repro.iter().map(String::as_str));
    let out = bisect(&args);
    assert_same(&before.0, &snapshot(lab, "srv"));
    assert_eq!(
        before.1,
        net_state(lab, "srv"),
        "routes, rules or nft changed"
    );
    result(&out)
}

fn names(r: &serde_json::Value) -> Vec<(String, String, String, String)> {
    r["culprits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let kind = ["sysctl", "route", "rule", "nft_table"]
                .into_iter()
                .find(|k| c.get(*k).is_some())
                .unwrap_or_else(|| panic!("culprit of no kind: {c}"));
            (
                kind.to_string(),
                c[kind].as_str().unwrap().to_string(),
                c["bad"].as_str().unwrap().to_string(),
                c["good"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_route_or_an_nft_table_among_harmless_differences_of_every_kind() {
    if !root_or_skip("a_route_or_an_nft_table_among_harmless_differences_of_every_kind") {
        return;
    }
    let lab = common::pair();
    let repro = ping(&lab);
    assert!(
        lab.exec("cli", &["ping", "-c1", "-W1", "198.18.0.2"])
            .is_ok(),
        "topology broken before the test"
    );
    harm(&lab, "srv");
    harm_net(&lab);
    assert!(
        lab.exec("cli", &["ping", "-c1", "-W1", "198.18.0.2"])
            .is_ok(),
        "the harmless differences broke the ping: {repro:?}"
    );
    // The route: srv's replies to cli go nowhere.
    lab.ip("srv", &["route", "add", "blackhole", "198.18.0.1/32"])
        .unwrap();
    let r = bisect_srv(&lab, &["--what", "sysctl,route,nft"]);
    let got = names(&r);
    assert_eq!(got.len(), 1, "{r}");
    assert_eq!(got[0].0, "route", "{r}");
    assert_eq!(got[0].1, "198.18.0.1/32 table main metric 0", "{r}");
    assert!(got[0].2.starts_with("blackhole 198.18.0.1/32 "), "{r}");
    assert_eq!(got[0].3, "absent", "{r}");
    let n = r["differences"].as_u64().unwrap();
    // The sysctls, 5 routes and rules, 2 tables, the culprit.
    assert!(n >= (HARMLESS.len() + 5 + 2 + 1) as u64, "{r}");
    assert!(r["runs"].as_u64().unwrap() <= one_culprit_bound(n), "{r}");
    assert!(
        r["fix"][0]
            .as_str()
            .unwrap()
            .contains("route del blackhole 198.18.0.1/32"),
        "{r}"
    );
    lab.ip("srv", &["route", "del", "blackhole", "198.18.0.1/32"])
        .unwrap();

    // The table: srv drops the echo requests.
    lab.nft(
        "srv",
        "table ip culprit {\n\
           chain input { type filter hook input priority 0; policy accept; icmp type echo-request drop; }\n\
         }\n",
    )
    .unwrap();
    let r = bisect_srv(&lab, &["--what", "sysctl,route,nft"]);
    let got = names(&r);
    assert_eq!(
        got,
        [(
            "nft_table".to_string(),
            "ip culprit".to_string(),
            "present".to_string(),
            "absent".to_string()
        )],
        "{r}"
    );
    let n = r["differences"].as_u64().unwrap();
    assert!(r["runs"].as_u64().unwrap() <= one_culprit_bound(n), "{r}");
    assert_eq!(
        r["fix"][0],
        format!(
            "ip netns exec {} nft delete table ip culprit",
            lab.ns("srv").name
        )
    );
}

#[test]
fn a_rule_and_a_route_that_only_break_together_against_a_good_namespace() {
    if !root_or_skip("a_rule_and_a_route_that_only_break_together_against_a_good_namespace") {
        return;
    }
    let mut lab = common::pair();
    harm_net(&lab);
    // The good side: a namespace with one of srv's harmless routes of its
    // own and a table srv has with other content.
    lab.add_ns("ref").unwrap();
    lab.ip("ref", &["link", "set", "lo", "up"]).unwrap();
    lab.ip(
        "ref",
        &["route", "add", "unreachable", "10.52.0.0/16", "metric", "9"],
    )
    .unwrap();
    lab.nft("ref", "table ip empty {\n\tchain c {\n\t}\n}\n")
        .unwrap();
    // Table 100 sends cli's address nowhere, and a rule sends replies to
    // it there: either alone changes nothing.
    lab.ip(
        "srv",
        &[
            "route",
            "add",
            "unreachable",
            "198.18.0.1/32",
            "table",
            "100",
        ],
    )
    .unwrap();
    assert!(lab
        .exec("cli", &["ping", "-c1", "-W1", "198.18.0.2"])
        .is_ok());
    lab.ip(
        "srv",
        &[
            "rule",
            "add",
            "to",
            "198.18.0.1/32",
            "lookup",
            "100",
            "pref",
            "1000",
        ],
    )
    .unwrap();
    assert!(lab
        .exec("cli", &["ping", "-c1", "-W1", "198.18.0.2"])
        .is_err());
    let reference = lab.ns("ref").name.clone();
    let r = bisect_srv(&lab, &["--good", &reference, "--what", "route,nft"]);
    let got = names(&r);
    assert_eq!(
        got,
        [
            (
                "route".to_string(),
                "198.18.0.1/32 table 100 metric 0".to_string(),
                got[0].2.clone(),
                "absent".to_string()
            ),
            (
                "rule".to_string(),
                "pref 1000 from all to 198.18.0.1/32 lookup 100".to_string(),
                "present".to_string(),
                "absent".to_string()
            ),
        ],
        "{r}"
    );
    assert!(got[0].2.starts_with("unreachable 198.18.0.1/32 "), "{r}");
    // The shared route is no difference; the table differs in content.
    let n = r["differences"].as_u64().unwrap();
    assert_eq!(n, 4 + 2 + 2, "{r}");
    assert!(r["runs"].as_u64().unwrap() <= 2 + 4 * n, "{r}");
}

#[test]
fn sigterm_and_sigkill_with_routes_and_tables_changed_restore_them() {
    if !root_or_skip("sigterm_and_sigkill_with_routes_and_tables_changed_restore_them") {
        return;
    }
    let lab = common::pair();
    harm_net(&lab);
    lab.ip("srv", &["route", "add", "blackhole", "198.18.0.1/32"])
        .unwrap();
    let before = net_state(&lab, "srv");
    let sysctls = snapshot(&lab, "srv");
    let srv = lab.ns("srv").name.clone();
    let mut args: Vec<String> = ["--netns", &srv, "--what", "route,nft", "--no-explain", "--"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(ping(&lab));
    kill_mid_run(
        &args,
        || net_state(&lab, "srv") != before,
        || {
            assert_eq!(net_state(&lab, "srv"), before);
            assert_same(&sysctls, &snapshot(&lab, "srv"));
        },
    );
}
