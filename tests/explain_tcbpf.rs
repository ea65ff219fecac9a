//! `netwhy explain` names the TC BPF program that dropped a packet: the
//! `tc-bpf-drop` lab scenario plants a cls_bpf program on the server's
//! veth; explain (the real binary) must report its id, name, tag, hook and
//! priority as `tc` itself shows them, and its detach fix must work.
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

    let mut args = vec!["explain", "-o", "json", "--duration", "9"];
    for ns in &lab.nss {
        args.extend(["--netns", ns.name.as_str()]);
    }
    let r = start(&args);
    s.trigger(&mut lab)
        .expect("trigger: the program must drop udp/5300");
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    assert!(st.success(), "explain failed: {err:?}");
    let v = json_lines(&out);
    let findings = of_type(&v, "finding");
    let f = findings
        .first()
        .unwrap_or_else(|| panic!("no finding: {out}"));
    assert_eq!(f["cause"], "tc-bpf-drop", "{f:#}");
    assert_eq!(f["reason"], "TC_INGRESS");
    assert_eq!(f["dev"], "eth0");
    let subjects = f["subjects"].as_array().expect("subjects");
    let prog: Vec<&Value> = subjects
        .iter()
        .filter(|s| s["kind"] == "bpf_prog")
        .collect();
    assert_eq!(prog.len(), 1, "one program on the hook: {f:#}");
    let p = prog[0];
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
    let fixes: Vec<&str> = f["fix"]
        .as_array()
        .expect("fix")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        fixes
            .iter()
            .any(|x| x.ends_with(&format!("bpftool prog dump xlated id {id}"))),
        "{fixes:?}"
    );
    // The detach command explain suggests really takes the program off.
    let detach = fixes
        .iter()
        .find_map(|x| x.strip_prefix("detach it (the agent that loaded it may re-attach it): "))
        .unwrap_or_else(|| panic!("no detach fix: {fixes:?}"));
    let st = Command::new("sh").args(["-c", detach]).status().unwrap();
    assert!(st.success(), "`{detach}` failed");
    assert!(tc_filters(&srv, "eth0").is_empty());
    let sock = traffic::udp_socket(&srv, "198.18.0.2:5300".parse().unwrap()).unwrap();
    traffic::udp_send(
        &lab.ns("cli").name,
        "198.18.0.2:5300".parse().unwrap(),
        1,
        b"after",
    )
    .unwrap();
    assert_eq!(traffic::drain(&sock, Duration::from_millis(300)), 1);
}
