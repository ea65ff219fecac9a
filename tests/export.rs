//! `netwhy export` against the real kernel: real drops in namespaces the
//! test makes, scraped over HTTP, compared with the kernel's own counters,
//! checked by promtool; folding, restarts, SIGTERM, bad input.
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::prometheus::get;
use common::*;

type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of a text exposition (what the tests look at; promtool
/// checks the format itself).
fn samples(body: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((k, v)) = rest.split_once("=\"") {
            // Values may hold escaped quotes: find the closing one.
            let mut end = 0;
            let b = v.as_bytes();
            while end < b.len() && !(b[end] == b'"' && (end == 0 || b[end - 1] != b'\\')) {
                end += 1;
            }
            map.insert(k.trim_start_matches(',').to_string(), v[..end].to_string());
            rest = v.get(end + 1..).unwrap_or("");
        }
        out.push((name.to_string(), map, value.parse().expect("value")));
    }
    out
}

fn metric(s: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|x| x.2)
        .sum()
}

fn scrape(addr: &str) -> String {
    let (status, body) = get(addr, "/metrics").expect("scrape");
    assert_eq!(status, 200, "{body}");
    body
}

/// Scrapes until `ok` holds (the exporter reads the kernel at scrape time,
/// but causes are diagnosed a moment after a group's first drop).
fn scrape_until(addr: &str, what: &str, ok: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let s = samples(&scrape(addr));
        if ok(&s) {
            return s;
        }
        if Instant::now() > end {
            panic!("{what}: never seen in {s:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn exporter(addr: &str, extra: &[&str]) -> Running {
    let mut args = vec!["export", "--listen", addr, "--doctor-interval", "0"];
    args.extend_from_slice(extra);
    start(&args)
}

/// UDP datagrams from cli to a closed port on srv: NO_SOCKET drops in srv,
/// and Udp:NoPorts moves by as many.
fn udp_to_closed_port(lab: &Lab, n: u32) -> u64 {
    let before = lab.counters("srv").expect("counters");
    traffic::udp_send(
        &lab.ns("cli").name,
        "198.18.0.2:5300".parse().unwrap(),
        n,
        b"netwhy-export",
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let after = lab.counters("srv").expect("counters");
    after["Udp:NoPorts"] - before["Udp:NoPorts"]
}

#[test]
fn counts_equal_the_kernels_and_the_exposition_is_clean() {
    if !root_or_skip("counts_equal_the_kernels_and_the_exposition_is_clean") {
        return;
    }
    let lab = pair();
    let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
    let r = exporter(&addr, &[]);
    let kernel = udp_to_closed_port(&lab, 4);
    assert!(kernel >= 4, "kernel counted {kernel}");
    let srv = lab.ns("srv").name.clone();
    let s = scrape_until(&addr, "the cause", |s| {
        metric(s, "netwhy_drop_cause_info", &[("netns", &srv)]) > 0.0
    });
    let got = metric(
        s.as_slice(),
        "netwhy_drops_total",
        &[("netns", &srv), ("reason", "NO_SOCKET")],
    );
    assert_eq!(got as u64, kernel, "exported vs Udp:NoPorts");
    let sel = [
        ("netns", srv.as_str()),
        ("location", "__udp4_lib_rcv"),
        ("dev", "eth0"),
    ];
    assert_eq!(metric(&s, "netwhy_drops_total", &sel) as u64, kernel);
    assert!(metric(&s, "netwhy_drop_bytes_total", &sel) > 0.0);
    let cause: Vec<_> = s
        .iter()
        .filter(|(n, l, _)| n == "netwhy_drop_cause_info" && l["netns"] == srv)
        .collect();
    assert_eq!(cause.len(), 1, "{cause:?}");
    assert_eq!(cause[0].1["cause"], "no-socket-udp");
    assert!(!cause[0].1["summary"].is_empty());
    assert_eq!(metric(&s, "netwhy_build_info", &[("hook", "tp_btf")]), 1.0);
    let body = scrape(&addr);
    promtool_check_metrics(&body);
    assert!(body.contains("# TYPE netwhy_drops_total counter"));
    // OpenMetrics when asked for, as Prometheus does.
    let mut c = TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n"
    )
    .unwrap();
    let mut om = String::new();
    c.read_to_string(&mut om).unwrap();
    assert!(
        om.contains("Content-Type: application/openmetrics-text"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    // The other endpoints.
    assert_eq!(get(&addr, "/healthz").unwrap(), (200, "ok\n".to_string()));
    let (st, index) = get(&addr, "/").unwrap();
    assert_eq!(st, 200);
    assert!(
        index.contains("href=\"/metrics\"") && index.contains("/healthz"),
        "{index}"
    );
    assert_eq!(get(&addr, "/nope").unwrap().0, 404);
    r.signal(libc::SIGTERM);
    let (st, _, err) = r.finish();
    assert!(st.success(), "{err:?}");
}

#[test]
fn groups_beyond_top_n_fold_into_other_and_nothing_is_lost() {
    if !root_or_skip("groups_beyond_top_n_fold_into_other_and_nothing_is_lost") {
        return;
    }
    let lab = pair();
    let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
    let cli = lab.ns("cli").name.clone();
    let srv = lab.ns("srv").name.clone();
    let r = exporter(
        &addr,
        &["--top-per-reason", "1", "--netns", &cli, "--netns", &srv],
    );
    // NO_SOCKET in srv (from cli) and in cli (on its own loopback).
    let in_srv = udp_to_closed_port(&lab, 5);
    let before = lab.counters("cli").unwrap()["Udp:NoPorts"];
    traffic::udp_send(&cli, "127.0.0.1:5301".parse().unwrap(), 2, b"x").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let in_cli = lab.counters("cli").unwrap()["Udp:NoPorts"] - before;
    let s = scrape_until(&addr, "every drop", |s| {
        metric(s, "netwhy_drops_total", &[("reason", "NO_SOCKET")]) as u64 == in_srv + in_cli
    });
    // The busier group (srv, 5) keeps its series; cli's is folded.
    assert_eq!(
        metric(&s, "netwhy_drops_total", &[("netns", &srv)]) as u64,
        in_srv
    );
    assert_eq!(
        metric(
            &s,
            "netwhy_drops_total",
            &[
                ("reason", "NO_SOCKET"),
                ("location", "other"),
                ("netns", "other")
            ]
        ) as u64,
        in_cli
    );
    assert_eq!(metric(&s, "netwhy_folded_groups", &[]), 1.0);
    drop(r);
}

#[test]
fn the_state_file_carries_counters_across_a_restart() {
    if !root_or_skip("the_state_file_carries_counters_across_a_restart") {
        return;
    }
    let lab = pair();
    let dir = std::env::temp_dir().join(format!("nw-export-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let state_s = state.to_str().unwrap();
    let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
    let srv = lab.ns("srv").name.clone();
    let sel = [("netns", srv.as_str()), ("reason", "NO_SOCKET")];
    let r = exporter(&addr, &["--state-file", state_s]);
    let first = udp_to_closed_port(&lab, 3);
    scrape_until(&addr, "first drops", |s| {
        metric(s, "netwhy_drops_total", &sel) as u64 == first
    });
    r.signal(libc::SIGTERM);
    let (st, _, err) = r.finish();
    assert!(st.success(), "{err:?}");
    assert!(state.exists(), "no state file written at exit");
    let r = exporter(&addr, &["--state-file", state_s]);
    assert!(
        r.stderr_lines
            .iter()
            .any(|l| l.contains("1 series restored")),
        "{:?}",
        r.stderr_lines
    );
    // Before any new drop, the series is back at its count: no reset.
    let s = samples(&scrape(&addr));
    assert_eq!(metric(&s, "netwhy_drops_total", &sel) as u64, first);
    let second = udp_to_closed_port(&lab, 2);
    scrape_until(&addr, "both runs' drops", |s| {
        metric(s, "netwhy_drops_total", &sel) as u64 == first + second
    });
    drop(r);
    // A broken state file is a one-line error naming it, and no probe stays.
    std::fs::write(&state, "{oops").unwrap();
    let out = run(&["export", "--listen", &addr, "--state-file", state_s]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("state.json") && err.lines().count() == 1,
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_answers_the_scrape_in_flight_then_detaches() {
    if !root_or_skip("sigterm_answers_the_scrape_in_flight_then_detaches") {
        return;
    }
    let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
    let r = exporter(&addr, &[]);
    let progs = prog_ids_of(r.child.id());
    assert!(!progs.is_empty(), "exporter holds no BPF program");
    // A scrape is on the wire when the signal arrives.
    let mut c = TcpStream::connect(&addr).unwrap();
    write!(c, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    r.signal(libc::SIGTERM);
    let mut resp = String::new();
    c.read_to_string(&mut resp)
        .expect("the scrape in flight is answered");
    assert!(
        resp.starts_with("HTTP/1.") && resp.contains(" 200 "),
        "{resp}"
    );
    assert!(resp.contains("netwhy_build_info"), "{resp}");
    let (st, _, err) = r.finish();
    assert!(st.success(), "exit {st:?}: {err:?}");
    assert!(err.iter().any(|l| l.contains("detached")), "{err:?}");
    let gone = progs_unloaded(&progs);
    assert!(gone, "BPF programs {progs:?} still loaded");
}

#[test]
fn bad_input_is_one_line_naming_the_fix_and_leaves_nothing() {
    if !root_or_skip("bad_input_is_one_line_naming_the_fix_and_leaves_nothing") {
        return;
    }
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    for (args, needle) in [
        (vec!["export", "--listen", addr.as_str()], "--listen"),
        (vec!["export", "--stale-after", "0"], "--stale-after"),
        (vec!["export", "--max-series", "0"], "--max-series"),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr_of(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        // Refused before anything was attached.
        assert!(!err.contains("attached"), "{args:?}: {err}");
    }
}

#[test]
fn groups_of_a_deleted_namespace_are_forgotten_after_stale_after() {
    if !root_or_skip("groups_of_a_deleted_namespace_are_forgotten_after_stale_after") {
        return;
    }
    let lab = pair();
    let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
    let srv = lab.ns("srv").name.clone();
    let srv_ino = lab.ns("srv").inode.to_string();
    let r = exporter(&addr, &["--stale-after", "2"]);
    let n = udp_to_closed_port(&lab, 2);
    scrape_until(&addr, "the drops", |s| {
        metric(s, "netwhy_drops_total", &[("netns", &srv)]) as u64 == n
    });
    drop(lab);
    // The name goes with the namespace; the series must go too, whatever
    // the label says by now.
    scrape_until(&addr, "the series removed", |s| {
        metric(s, "netwhy_drops_total", &[("netns", &srv)]) == 0.0
            && metric(s, "netwhy_drops_total", &[("netns", &srv_ino)]) == 0.0
    });
    drop(r);
}

#[test]
fn firewall_rules_are_traced_only_with_attribute_rules() {
    if !root_or_skip("firewall_rules_are_traced_only_with_attribute_rules") {
        return;
    }
    let s = netwhy::lab::scenarios::find("nft-reject").expect("scenario");
    for attribute in [false, true] {
        let mut lab = Lab::new().expect("lab");
        s.build(&mut lab).expect("build");
        let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
        let mut args = Vec::new();
        for ns in &lab.nss {
            args.extend(["--netns".to_string(), ns.name.clone()]);
        }
        if attribute {
            args.push("--attribute-rules".into());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = exporter(&addr, &argv);
        s.trigger(&mut lab).expect("trigger");
        let rtr = lab.ns("rtr").clone();
        let traced = |lab: &Lab| {
            lab.nss.iter().any(|ns| {
                netwhy::state::nftrace::tables(ns.inode)
                    .expect("list tables")
                    .iter()
                    .any(|t| t.name.starts_with("netwhy_trace_"))
            })
        };
        if attribute {
            // The rule is named by the flow's next packets, while traced.
            std::thread::sleep(Duration::from_millis(700));
            assert!(traced(&lab), "--attribute-rules armed no nft trace");
            s.trigger(&mut lab).expect("trigger again");
        }
        let sel = [("netns", rtr.name.as_str()), ("reason", "NETFILTER_DROP")];
        let s2 = scrape_until(&addr, "the cause", |x| {
            metric(x, "netwhy_drop_cause_info", &sel) > 0.0
        });
        let cause = s2
            .iter()
            .find(|(n, l, _)| n == "netwhy_drop_cause_info" && l["netns"] == rtr.name)
            .unwrap();
        if attribute {
            assert_eq!(
                cause.1["cause"],
                s.diagnosis().unwrap().as_str(),
                "{cause:?}"
            );
            assert!(
                cause.1["subject"].starts_with("nft inet nwlab_filter forward handle"),
                "{cause:?}"
            );
            // The tracer goes when its window ends.
            std::thread::sleep(Duration::from_secs(4));
        } else {
            assert_eq!(cause.1["subject"], "", "{cause:?}");
        }
        assert!(!traced(&lab), "trace table left (attribute={attribute})");
        drop(r);
    }
}
