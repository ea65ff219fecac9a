//! Issue #12 part 3: netwhy never reports drops its own work causes.
//!
//! While `explain` reads live state it asks the kernel for routes
//! (RTM_GETROUTE); the kernel frees the skb such a lookup builds as a drop
//! (NOT_SPECIFIED at inet_rtm_getroute), in the namespace under study. An
//! unfiltered `drops` running beside it must see those drops, made by the
//! explain process; explain itself must report none of them, and count them.
mod common;

use common::*;
use netwhy::lab::scenarios::ALL;

#[test]
fn explain_does_not_report_the_drops_its_own_lookups_cause() {
    if !root_or_skip("explain_does_not_report_the_drops_its_own_lookups_cause") {
        return;
    }
    let name = std::env::var("NETWHY_OWN_SCENARIO").unwrap_or_else(|_| "no-route".into());
    let s = ALL.iter().find(|s| s.name() == name).expect("scenario");
    let mut lab = Lab::new().expect("lab");
    s.build(&mut lab).expect("build");
    let all = start(&[
        "drops",
        "--events",
        "--all",
        "-o",
        "json",
        "--duration",
        "30",
    ]);
    let mut args: Vec<String> = ["explain", "-o", "json", "--duration", "9"]
        .map(String::from)
        .to_vec();
    for ns in &lab.nss {
        args.extend(["--netns".into(), ns.name.clone()]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let ex = start(&argv);
    let explain_pid = ex.child.id();
    s.trigger(&mut lab).expect("trigger");
    ex.signal(libc::SIGINT);
    let (st, out, err) = ex.finish();
    all.signal(libc::SIGINT);
    let (st_all, out_all, err_all) = all.finish();
    assert!(st.success(), "explain failed: {err:?}");
    assert!(st_all.success(), "drops failed: {err_all:?}");

    // The premise: explain's lookups did cause drops, in its own process.
    let v_all = json_lines(&out_all);
    let own: Vec<_> = of_type(&v_all, "drop")
        .into_iter()
        .filter(|d| d["task"]["pid"].as_u64() == Some(u64::from(explain_pid)))
        .collect();
    assert!(
        own.iter()
            .any(|d| d["location"]["symbol"] == "inet_rtm_getroute"),
        "explain's route lookups caused no drop this time: {own:#?}"
    );

    let v = json_lines(&out);
    let findings = of_type(&v, "finding");
    assert_eq!(
        findings.first().map(|f| f["cause"].clone()),
        s.diagnosis().map(|d| serde_json::Value::from(d.as_str())),
        "first finding: {out}"
    );
    for f in &findings {
        assert_ne!(
            f["location"]["symbol"], "inet_rtm_getroute",
            "explain reported its own lookup as a drop: {f:#}"
        );
    }
    let summary = of_type(&v, "summary");
    let counted = summary.last().and_then(|s| s["own"].as_u64()).unwrap_or(0);
    assert!(counted > 0, "own drops not counted: {summary:?}");
}
