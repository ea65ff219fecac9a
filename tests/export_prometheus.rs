//! The acceptance test of the fleet exporter: Debian's real Prometheus
//! scrapes `netwhy export` every second while lab scenarios drop packets;
//! through Prometheus's API, the drops by reason and namespace equal the
//! kernel's own counters, the cause info names each scenario's diagnosis,
//! a restart keeps `increase()` right, and every PromQL expression of the
//! dashboard and the alert rules (deploy/) returns data.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::*;
use netwhy::lab::scenarios::{find, Scenario};

/// Scenario, the role whose namespace drops, its reason, and the kernel
/// counter that counts exactly those drops.
const CASES: &[(&str, &str, &str, &str)] = &[
    ("udp-closed-port", "srv", "NO_SOCKET", "Udp:NoPorts"),
    (
        "rp-filter-martian",
        "srv",
        "IP_RPFILTER",
        "TcpExt:IPReversePathFilter",
    ),
    (
        "forwarding-disabled",
        "rtr",
        "IP_INADDRERRORS",
        "Ip:InAddrErrors",
    ),
    (
        "udp-rcvbuf-full",
        "srv",
        "SOCKET_RCVBUFF",
        "Udp:RcvbufErrors",
    ),
];

fn exporter(addr: &str, state: &str) -> Running {
    start(&[
        "export",
        "--listen",
        addr,
        "--doctor-interval",
        "2",
        "--state-file",
        state,
        "--labels",
        "pod,container",
    ])
}

/// Waits until `expr` gives a single value equal to `want`.
fn wait_value(p: &Prometheus, expr: &str, want: f64) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let got = p.query(expr);
        if got.len() == 1 && (got[0].1 - want).abs() < 1e-9 {
            return;
        }
        assert!(
            Instant::now() < end,
            "{expr}: want {want}, Prometheus says {got:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_data(p: &Prometheus, expr: &str) -> Vec<common::prometheus::Sample> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let got = p.query(expr);
        if !got.is_empty() {
            return got;
        }
        assert!(Instant::now() < end, "{expr}: no data");
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Built {
    lab: Lab,
    ns: String,
    counter: &'static str,
    role: &'static str,
}

fn trigger(s: &dyn Scenario, b: &mut Built) -> u64 {
    let before = b.lab.counters(b.role).expect("counters")[b.counter];
    s.trigger(&mut b.lab).expect("trigger");
    std::thread::sleep(Duration::from_millis(300));
    b.lab.counters(b.role).expect("counters")[b.counter] - before
}

/// The dashboard's and the rules' expressions, made runnable (deploy/promql.py).
fn probes() -> Vec<(String, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("deploy/promql.py"))
        .output()
        .expect("python3 deploy/promql.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p["where"].as_str().unwrap().to_string(),
                p["probe"].as_str().unwrap().to_string(),
                p["needs"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn prometheus_sees_the_kernels_drops_their_causes_and_the_dashboards_data() {
    if !root_or_skip("prometheus_sees_the_kernels_drops_their_causes_and_the_dashboards_data") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nw-export-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let state = state.to_str().unwrap();
    let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("deploy/prometheus/netwhy-rules.yml");
    let mut r = exporter(&addr, state);
    let prom = Prometheus::start(&[("netwhy", &addr)], &[&rules]);
    wait_value(&prom, "up{job=\"netwhy\"}", 1.0);

    // Every scenario, kept built so its namespaces (and their names, and
    // doctor's findings about them) live until the end.
    let mut built: Vec<(&dyn Scenario, Built, u64)> = Vec::new();
    for (name, role, reason, counter) in CASES {
        let s = find(name).unwrap_or_else(|| panic!("no scenario {name}"));
        let mut lab = Lab::new().expect("lab");
        s.build(&mut lab).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ns = lab.ns(role).name.clone();
        let mut b = Built {
            lab,
            ns,
            counter,
            role,
        };
        let kernel = trigger(s, &mut b);
        assert!(
            kernel > 0,
            "{name}: the kernel counted nothing in {counter}"
        );
        let sel = format!("netns=\"{}\",reason=\"{reason}\"", b.ns);
        wait_value(
            &prom,
            &format!("sum by (reason, netns) (netwhy_drops_total{{{sel}}})"),
            kernel as f64,
        );
        let want = s.diagnosis().expect("a scenario with a cause").as_str();
        wait_data(
            &prom,
            &format!("netwhy_drop_cause_info{{{sel},cause=\"{want}\"}}"),
        );
        eprintln!("{name}: {kernel} drops = {counter}, cause {want}");
        built.push((s, b, kernel));
    }

    // The exposition Prometheus scrapes is clean for promtool too.
    let (_, body) = common::prometheus::get(&addr, "/metrics").unwrap();
    promtool_check_metrics(&body);

    // Every dashboard panel and alert expression returns data now.
    let mut empty = Vec::new();
    for (place, probe, needs) in probes() {
        if needs == "absent" {
            // absent(up{job="netwhy"}) has data only with no exporter.
            assert!(prom.query(&probe).is_empty(), "{place}: {probe}");
            continue;
        }
        let end = Instant::now() + Duration::from_secs(if needs.is_empty() { 5 } else { 30 });
        let ok = loop {
            match prom.try_query(&probe, None) {
                Ok(v) if !v.is_empty() => break true,
                Ok(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(500)),
                Ok(_) => break false,
                Err(e) => panic!("{place}: {probe}: {e}"),
            }
        };
        if !ok {
            empty.push(format!("{place}: {probe}"));
        }
    }
    assert!(empty.is_empty(), "no data for:\n{}", empty.join("\n"));

    // Restart: SIGTERM, start again on the same state file, drop more.
    let (scn, b, first) = &mut built[0];
    let sel = format!("netns=\"{}\",reason=\"NO_SOCKET\"", b.ns);
    let sum = format!("sum(netwhy_drops_total{{{sel}}})");
    let t_before = unix_now();
    r.signal(libc::SIGTERM);
    let (st, _, err) = r.finish();
    assert!(st.success(), "exporter exit {st:?}: {err:?}");
    r = exporter(&addr, state);
    let second = trigger(*scn, b);
    wait_value(&prom, &sum, (*first + second) as f64);
    std::thread::sleep(Duration::from_secs(2));
    let window = (unix_now() - t_before + 5.0).ceil() as u64;
    let resets = prom.query(&format!(
        "sum(resets(netwhy_drops_total{{{sel}}}[{window}s]))"
    ));
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].1, 0.0, "a restart looked like a counter reset");
    // increase() over the restart counts the second run's drops (it
    // extrapolates to the window's edges: allow for that, not for a reset
    // that would count the whole counter again or nothing).
    let inc = prom.query(&format!(
        "sum(increase(netwhy_drops_total{{{sel}}}[{window}s]))"
    ));
    let got = inc.first().map(|s| s.1).unwrap_or(0.0);
    assert!(
        got >= second as f64 * 0.9 && got <= second as f64 * 1.5,
        "increase over the restart: {got}, the kernel counted {second}"
    );
    drop(r);
    drop(built);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
