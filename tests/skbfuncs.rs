//! `netwhy skbfuncs` on this machine's kernel: the feature probes decide,
//! and where the kernel refuses kprobe-multi, fentry and kprobes (this
//! project's 6.18 host) the probe falls back to the skb tracepoints and still
//! follows a real packet. The function backends themselves are exercised in
//! the qemu guest (tests/guest_skbfuncs.rs).
mod common;

use std::net::SocketAddr;

use common::*;

/// A port no other test uses, so concurrent labs do not add hits.
const PORT: u16 = 47_113;

#[test]
fn feature_probes_pick_a_backend_and_tracepoints_follow_a_drop() {
    if !root_or_skip("skbfuncs feature probes") {
        return;
    }
    let lab = pair();
    let port = PORT.to_string();
    let r = start(&["skbfuncs", "--port", &port, "-o", "json"]);
    let dst: SocketAddr = format!("198.18.0.2:{PORT}").parse().unwrap();
    traffic::udp_send(&lab.ns("cli").name, dst, 3, b"netwhy-skbfuncs").expect("send");
    std::thread::sleep(std::time::Duration::from_millis(200));
    r.signal(libc::SIGINT);
    let (status, stdout, stderr) = r.finish();
    assert!(status.success(), "{status}: {stderr:?}");
    let v = json_lines(&stdout);
    let s = of_type(&v, "skbfuncs");
    assert_eq!(s.len(), 1, "{stdout}");
    let s = s[0];
    // The choice follows the probes: the first that passed in preference
    // order, tracepoints when none did, and a refusal is explained.
    let probes = s["probes"].as_array().expect("probes");
    let order = ["kprobe-multi", "kprobe", "fentry"];
    let passed = order.iter().find(|b| {
        probes
            .iter()
            .any(|p| p["backend"] == **b && p["ok"] == true)
    });
    assert_eq!(s["backend"], *passed.unwrap_or(&"tracepoint"), "{s}");
    for p in probes.iter().filter(|p| p["ok"] == false) {
        assert!(p["error"].as_str().is_some_and(|e| !e.is_empty()), "{p}");
    }
    if s["backend"] == "tracepoint" {
        assert_eq!(s["functions"], 0, "{s}");
        assert!(
            stderr.iter().any(|l| l.contains("tracepoints only")),
            "{stderr:?}"
        );
    }
    assert_eq!(s["tracepoints"], 5, "{s}");
    // Three datagrams to a closed port: received, then dropped, in order.
    let hits = s["hits"].as_array().expect("hits");
    let count = |n: &str| {
        hits.iter()
            .find(|h| h["name"] == n)
            .and_then(|h| h["count"].as_u64())
            .unwrap_or(0)
    };
    let pos = |n: &str| hits.iter().position(|h| h["name"] == n);
    assert!(count("tp:netif_receive_skb") >= 3, "{s}");
    assert!(count("tp:kfree_skb") >= 3, "{s}");
    assert!(pos("tp:net_dev_xmit") < pos("tp:kfree_skb"), "{s}");
    assert!(s["attach_ms"].as_f64().is_some() && s["detach_ms"].as_f64().is_some());
}

#[test]
fn a_refused_backend_is_a_one_line_error() {
    if !root_or_skip("skbfuncs --backend refused") {
        return;
    }
    // Ask the kernel first: only a backend its probe refuses must fail.
    let o = run(&["skbfuncs", "--duration", "0", "-o", "json"]);
    assert!(o.status.success(), "{o:?}");
    let v = json_lines(&String::from_utf8_lossy(&o.stdout));
    let s = of_type(&v, "skbfuncs")[0].clone();
    let refused: Vec<_> = s["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ok"] == false)
        .map(|p| p["backend"].as_str().unwrap().to_string())
        .collect();
    for b in &refused {
        let o = run(&["skbfuncs", "--duration", "0", "--backend", b]);
        assert!(!o.status.success(), "--backend {b} should fail here");
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("netwhy: error: --backend"), "{err}");
        assert!(last.contains("leave --backend out"), "{err}");
    }
    let o = run(&["skbfuncs", "--duration", "0", "--funcs", "("]);
    assert!(!o.status.success());
    let err = common::stderr_of(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--funcs"), "{err}");
}
