//! `netwhy explain` names the TC / XDP BPF program that dropped a packet:
//! the `tc-bpf-drop` / `xdp-drop` / `xdp-generic-drop` lab scenarios plant
//! a program on the server's veth; explain (the real binary) must report
//! its id, name, tag, hook (and priority) as `tc` / `ip` themselves show
//! them, and its detach fix must really let the traffic through.
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// (id, name, tag) of the cls_bpf filters `tc` shows on `dev` ingress.
fn tc_filters(ns: &str, dev: &str) -> Vec<(u64, String, String)> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "tc", "filter", "show", "dev", dev, "ingress",
        ])
        .output()
        .expect("run tc");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains(" bpf ") && l.contains(" id "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let after = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1))
                    .unwrap_or_else(|| panic!("no {k} in tc's line {l}"))
                    .to_string()
            };
            (
                after("id").parse().expect("id"),
                after("name"),
                after("tag"),
            )
        })
        .collect()
}

/// (id, name, tag) of the XDP program `ip` shows on `dev`.
fn ip_xdp(ns: &str, dev: &str) -> Option<(u64, String, String)> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "dev", dev])
        .output()
        .expect("run ip");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    let p = &v[0]["xdp"]["prog"];
    Some((
        p["id"].as_u64()?,
        p["name"].as_str()?.to_string(),
        p["tag"].as_str()?.to_string(),
    ))
}

/// Runs `netwhy explain` on the lab's namespaces while the scenario's
/// trigger runs; returns the first finding.
fn explain_first(s: &dyn netwhy::lab::scenarios::Scenario, lab: &mut Lab) -> Value {
    let mut args = vec!["explain", "-o", "json", "--duration", "9"];
    for ns in &lab.nss {
        args.extend(["--netns", ns.name.as_str()]);
    }
    let r = start(&args);
    s.trigger(lab)
        .expect("trigger: the program must drop udp/5300");
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    assert!(st.success(), "explain failed: {err:?}");
    let v = json_lines(&out);
    let first = of_type(&v, "finding").first().cloned().cloned();
    first.unwrap_or_else(|| panic!("no finding: {out}"))
}

fn bpf_progs(f: &Value) -> Vec<Value> {
    f["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .filter(|s| s["kind"] == "bpf_prog")
        .cloned()
        .collect()
}

fn fixes(f: &Value) -> Vec<String> {
    f["fix"]
        .as_array()
        .expect("fix")
        .iter()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

/// Runs the detach command explain suggested, then checks udp/5300 is
/// delivered again.
fn detach_fix_lets_traffic_through(f: &Value, lab: &Lab) {
    let fixes = fixes(f);
    let detach = fixes
        .iter()
        .find_map(|x| x.strip_prefix("detach it (the agent that loaded it may re-attach it): "))
        .unwrap_or_else(|| panic!("no detach fix: {fixes:?}"));
    let st = Command::new("sh").args(["-c", detach]).status().unwrap();
    assert!(st.success(), "`{detach}` failed");
    let srv = &lab.ns("srv").name;
    let sock = traffic::udp_socket(srv, "198.18.0.2:5300".parse().unwrap()).unwrap();
    traffic::udp_send(
        &lab.ns("cli").name,
        "198.18.0.2:5300".parse().unwrap(),
        1,
        b"after",
    )
    .unwrap();
    assert_eq!(
        traffic::drain(&sock, Duration::from_millis(300)),
        1,
        "still dropped after `{detach}`"
    );
}

#[test]
fn explain_names_the_tc_bpf_program_that_dropped() {
    if !root_or_skip("explain_names_the_tc_bpf_program_that_dropped") {
        return;
    }
    let s = netwhy::lab::scenarios::find("tc-bpf-drop").expect("scenario in the catalog");
    let mut lab = Lab::new().expect("lab");
    s.build(&mut lab).expect("build");
    let srv = lab.ns("srv").name.clone();
    let planted = tc_filters(&srv, "eth0");
    assert_eq!(planted.len(), 1, "tc shows {planted:?}");
    let (id, name, tag) = planted[0].clone();
    assert_eq!(name, "nwlab_udp_deny");

    let f = explain_first(s, &mut lab);
    assert_eq!(f["cause"], "tc-bpf-drop", "{f:#}");
    assert_eq!(f["reason"], "TC_INGRESS");
    assert_eq!(f["dev"], "eth0");
    let prog = bpf_progs(&f);
    assert_eq!(prog.len(), 1, "one program on the hook: {f:#}");
    let p = &prog[0];
    assert_eq!(p["id"].as_u64(), Some(id), "{f:#}");
    assert_eq!(p["name"], name.as_str());
    assert_eq!(p["tag"], tag.as_str());
    assert_eq!(p["hook"], "ingress");
    assert_eq!(p["attach"], "cls_bpf");
    assert_eq!(p["priority"], 1);
    assert_eq!(p["dev"], "eth0");
    assert!(
        f["evidence"]
            .to_string()
            .contains(&format!("BPF program id {id} 'nwlab_udp_deny'")),
        "{f:#}"
    );
    let fx = fixes(&f);
    assert!(
        fx.iter()
            .any(|x| x.ends_with(&format!("bpftool prog dump xlated id {id}"))),
        "{fx:?}"
    );
    detach_fix_lets_traffic_through(&f, &lab);
    assert!(tc_filters(&srv, "eth0").is_empty());
}

#[test]
fn explain_names_the_xdp_program_that_dropped() {
    if !root_or_skip("explain_names_the_xdp_program_that_dropped") {
        return;
    }
    for (scenario, location, mode) in [
        ("xdp-drop", "veth_xdp_rcv_skb", "xdpdrv"),
        ("xdp-generic-drop", "do_xdp_generic", "xdpgeneric"),
    ] {
        let s = netwhy::lab::scenarios::find(scenario).expect("scenario in the catalog");
        let mut lab = Lab::new().expect("lab");
        s.build(&mut lab).expect("build");
        let srv = lab.ns("srv").name.clone();
        let (id, name, tag) = ip_xdp(&srv, "eth0").expect("ip shows the XDP program");
        let f = explain_first(s, &mut lab);
        assert_eq!(f["cause"], "xdp-bpf-drop", "{scenario}: {f:#}");
        assert_eq!(f["reason"], "NOT_SPECIFIED");
        assert!(f["location"]["symbol"]
            .as_str()
            .is_some_and(|l| l.starts_with(location)));
        let prog = bpf_progs(&f);
        assert_eq!(prog.len(), 1, "{scenario}: {f:#}");
        let p = &prog[0];
        assert_eq!(p["id"].as_u64(), Some(id), "{scenario}: {f:#}");
        assert_eq!(p["name"], name.as_str());
        assert_eq!(p["tag"], tag.as_str());
        assert_eq!(p["hook"], "xdp");
        assert_eq!(p["attach"], "xdp");
        assert!(p["priority"].is_null());
        assert!(
            fixes(&f)
                .iter()
                .any(|x| x.ends_with(&format!("ip link set dev eth0 {mode} off"))),
            "{scenario}: {f:#}"
        );
        detach_fix_lets_traffic_through(&f, &lab);
        assert_eq!(ip_xdp(&srv, "eth0"), None, "{scenario}: still attached");
    }
}

/// A tcx program (which runs before cls_bpf filters) is listed first, and
/// both are named: the kernel does not say which of the two dropped.
#[test]
fn tcx_and_cls_bpf_programs_are_listed_in_run_order() {
    if !root_or_skip("tcx_and_cls_bpf_programs_are_listed_in_run_order") {
        return;
    }
    let s = netwhy::lab::scenarios::find("tc-bpf-drop").expect("scenario in the catalog");
    let mut lab = Lab::new().expect("lab");
    s.build(&mut lab).expect("build");
    let srv = lab.ns("srv").name.clone();
    let (cls_id, _, _) = tc_filters(&srv, "eth0")[0].clone();
    // Denies another port: present on the hook, innocent of these drops.
    let tcx = netwhy::lab::bpf::plant_udp_deny(&srv, "eth0", 5399, netwhy::lab::bpf::How::Tcx)
        .expect("attach tcx");
    assert!(tcx.link.is_some());
    let f = explain_first(s, &mut lab);
    assert_eq!(f["cause"], "tc-bpf-drop", "{f:#}");
    let prog = bpf_progs(&f);
    let ids: Vec<u64> = prog.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids, [u64::from(tcx.id), cls_id], "tcx first: {f:#}");
    assert_eq!(prog[0]["attach"], "tcx");
    assert_eq!(prog[1]["attach"], "cls_bpf");
    assert!(
        f["evidence"]
            .to_string()
            .contains("2 BPF programs on this hook, run in the order listed"),
        "{f:#}"
    );
    assert!(
        fixes(&f)
            .iter()
            .any(|x| x.ends_with("bpftool net detach tcx_ingress dev eth0")),
        "{f:#}"
    );
}

/// `netwhy trace` on the same drop, on this host (no fexit): one line says
/// the program's verdict steps are refused (no libbpf noise), each datagram
/// still ends TC_INGRESS, and trace's closing finding names the program.
#[test]
fn trace_on_a_tc_drop_names_the_program_without_fexit() {
    if !root_or_skip("trace_on_a_tc_drop_names_the_program_without_fexit") {
        return;
    }
    let s = netwhy::lab::scenarios::find("tc-bpf-drop").expect("scenario in the catalog");
    let mut lab = Lab::new().expect("lab");
    s.build(&mut lab).expect("build");
    let srv = lab.ns("srv").name.clone();
    let (id, _, _) = tc_filters(&srv, "eth0")[0].clone();
    let r = start(&["trace", "udp port 5300", "-o", "json", "--duration", "9"]);
    s.trigger(&mut lab).expect("trigger");
    std::thread::sleep(Duration::from_millis(300));
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    assert!(st.success(), "trace failed: {err:?}");
    let refused: Vec<&String> = err.iter().filter(|l| l.contains("TC program")).collect();
    assert_eq!(refused.len(), 1, "{err:?}");
    assert!(
        refused[0].starts_with("netwhy: no TC program verdict steps: fexit refused for all 1 ("),
        "{err:?}"
    );
    assert!(!err.iter().any(|l| l.starts_with("libbpf:")), "{err:?}");
    let v = json_lines(&out);
    let fates = of_type(&v, "fate");
    assert_eq!(fates.len(), 3, "{out}");
    assert!(fates.iter().all(|f| f["reason"] == "TC_INGRESS"), "{out}");
    let f = of_type(&v, "finding")
        .into_iter()
        .find(|f| f["reason"] == "TC_INGRESS")
        .unwrap_or_else(|| panic!("no TC_INGRESS finding: {out}"));
    assert_eq!(f["cause"], "tc-bpf-drop", "{f:#}");
    assert_eq!(bpf_progs(f)[0]["id"].as_u64(), Some(id), "{f:#}");
}
