//! deploy/ checked offline with the tools its users run: the manifests
//! against the Kubernetes API schemas and against each other, the rules
//! with promtool, the unit with systemd-analyze, the dashboard's and the
//! rules' PromQL with a real Prometheus; and the Prometheus test harness
//! (tests/common/prometheus.rs) itself. No root needed. Each validator is
//! also shown a broken copy, so a check that accepts anything fails here.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::prometheus::{Prometheus, SELF};
use serde_json::Value;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when `check` (a shell command) succeeds. In CI a missing tool is a
/// failure (scripts/setup installs them all); elsewhere the test is
/// skipped with a note.
fn have(what: &str, check: &str, test: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", check])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!in_ci(), "{test}: {what} missing (scripts/setup)");
        eprintln!("skipping {test}: no {what}");
    }
    ok
}

fn have_python(test: &str) -> bool {
    have(
        "python3 with yaml and jsonschema (kubernetes-validate)",
        "python3 -c 'import yaml, jsonschema'",
        test,
    )
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh copy of deploy/ (or of `sub` in it) to break on purpose.
fn copy_of(sub: &str, tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("netwhy-deploy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let out = run(Command::new("cp").arg("-r").arg(deploy().join(sub)).arg(&d));
    assert!(out.status.success(), "cp: {}", text(&out));
    TempDir(d)
}

/// Replace `from` (which must occur) by `to` in `path`.
fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{}: no {from:?}", path.display());
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    v.sort();
    v
}

fn kubernetes_validate(files: &[PathBuf]) -> Output {
    run(Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files))
}

#[test]
fn manifests_pass_kubernetes_schemas() {
    let t = "manifests_pass_kubernetes_schemas";
    if !have("kubernetes-validate", "command -v kubernetes-validate", t) {
        return;
    }
    let files = manifests(&deploy().join("kubernetes"));
    assert!(files.len() >= 4, "{files:?}");
    let out = kubernetes_validate(&files);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // Every built-in object is checked; only the CRD has no schema here
    // (deploy/check.py checks it against deploy/schemas/).
    for kind in ["namespace/netwhy", "daemonset/netwhy", "service/netwhy"] {
        assert!(
            said.contains(&format!("passed for resource {kind}")),
            "{kind}: {said}"
        );
    }
    for line in said.lines().filter(|l| l.contains("Couldn't find schema")) {
        assert!(line.contains("kind ServiceMonitor"), "unexpected: {line}");
    }

    // Strict: a misspelt field is an error, not a field the kubelet ignores.
    let broken = copy_of("kubernetes", "k8s-schema");
    let ds = broken.0.join("kubernetes/daemonset.yaml");
    edit(&ds, "hostNetwork: true", "hostNetwerk: true");
    let out = kubernetes_validate(&[ds]);
    assert!(
        !out.status.success(),
        "misspelt field accepted: {}",
        text(&out)
    );
    assert!(text(&out).contains("hostNetwerk"), "{}", text(&out));
}

fn check_py(dir: &Path) -> Output {
    run(Command::new("python3")
        .arg(deploy().join("check.py"))
        .arg(dir))
}

#[test]
fn manifests_agree_with_each_other_and_the_servicemonitor_schema() {
    if !have_python("manifests_agree") {
        return;
    }
    let out = check_py(&deploy().join("kubernetes"));
    assert!(out.status.success(), "{}", text(&out));

    // Each break is caught, with a message naming it.
    let breaks: &[(&str, &str, &str, &str)] = &[
        (
            "servicemonitor.yaml",
            "- port: metrics",
            "- port: metric",
            "'metric' is not a Service port",
        ),
        (
            "servicemonitor.yaml",
            "scrapeTimeout:",
            "scrapeTimout:",
            "'scrapeTimout' was unexpected",
        ),
        (
            "servicemonitor.yaml",
            "interval: 30s",
            "interval: 30 seconds",
            "interval",
        ),
        (
            "service.yaml",
            "component: exporter\n  ports",
            "component: exportr\n  ports",
            "does not select the DaemonSet",
        ),
        (
            "daemonset.yaml",
            "drop: [ALL]",
            "drop: [NET_RAW]",
            "must drop ALL",
        ),
        (
            "daemonset.yaml",
            "privileged: false",
            "allowPrivilegeEscalation: false",
            "refused by the API server",
        ),
        (
            "daemonset.yaml",
            "- name: tmp\n          emptyDir",
            "- name: temp\n          emptyDir",
            "mount 'tmp' has no volume",
        ),
        (
            "kustomization.yaml",
            "  - service.yaml\n",
            "",
            "service.yaml: not listed",
        ),
    ];
    for (i, (file, from, to, want)) in breaks.iter().enumerate() {
        let broken = copy_of("kubernetes", &format!("cross-{i}"));
        let dir = broken.0.join("kubernetes");
        edit(&dir.join(file), from, to);
        let out = check_py(&dir);
        assert!(!out.status.success(), "{file}: {to:?} accepted");
        assert!(text(&out).contains(want), "{file}: {to:?}: {}", text(&out));
    }
}

fn promtool(args: &[&str], dir: &Path) -> Output {
    run(Command::new("promtool").args(args).current_dir(dir))
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    if !have("promtool", "command -v promtool", "rules_pass_promtool") {
        return;
    }
    let dir = deploy().join("prometheus");
    let out = promtool(&["check", "rules", "netwhy-rules.yml"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("SUCCESS: 7 rules found"),
        "{}",
        text(&out)
    );
    let out = promtool(&["test", "rules", "netwhy-rules.test.yml"], &dir);
    assert!(out.status.success(), "{}", text(&out));

    // The unit tests see a changed threshold, and check sees bad PromQL.
    let broken = copy_of("prometheus", "rules");
    let dir = broken.0.join("prometheus");
    edit(
        &dir.join("netwhy-rules.yml"),
        "(rate(netwhy_drops_total[5m])) > 1",
        "(rate(netwhy_drops_total[5m])) > 2",
    );
    let out = promtool(&["test", "rules", "netwhy-rules.test.yml"], &dir);
    assert!(!out.status.success(), "threshold change unnoticed");
    assert!(text(&out).contains("NetwhyDropsRising"), "{}", text(&out));
    edit(
        &dir.join("netwhy-rules.yml"),
        "group_left (cause, summary)",
        "group_left (cause, summary",
    );
    let out = promtool(&["check", "rules", "netwhy-rules.yml"], &dir);
    assert!(!out.status.success(), "bad PromQL accepted: {}", text(&out));
}

/// systemd-analyze's exposure score is 0..100 here (shown as 0.0..10.0);
/// the unit must stay within the "OK" band.
const MAX_EXPOSURE: &str = "45";

fn unit_checks(unit: &Path) -> (Output, Output) {
    let verify = run(Command::new("systemd-analyze").arg("verify").arg(unit));
    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(format!("--threshold={MAX_EXPOSURE}"))
        .arg(unit));
    (verify, security)
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let t = "systemd_unit";
    if !have("systemd-analyze", "command -v systemd-analyze", t) {
        return;
    }
    let unit = deploy().join("systemd/netwhy-export.service");
    let s = std::fs::read_to_string(&unit).unwrap();
    let exec =
        "ExecStart=/usr/local/bin/netwhy export --state-file /var/lib/netwhy/export-state.json";
    assert!(s.contains(exec), "{s}");
    let caps = "CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_SYSLOG";
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        assert!(s.contains(&format!("{key}={caps}\n")), "{key}: {s}");
    }

    // verify wants the binary to exist: point a copy at the one just built.
    let dir = copy_of("systemd", "unit");
    let copy = dir.0.join("systemd/netwhy-export.service");
    edit(&copy, "/usr/local/bin/netwhy", env!("CARGO_BIN_EXE_netwhy"));
    let (verify, security) = unit_checks(&copy);
    assert!(
        verify.status.success() && text(&verify).is_empty(),
        "{}",
        text(&verify)
    );
    assert!(security.status.success(), "{}", text(&security));

    // A misspelt directive fails verify; an unhardened unit fails the
    // exposure threshold.
    edit(&copy, "ProtectHome=yes", "ProtectHom=yes");
    let bare = dir.0.join("bare.service");
    let exec_line = format!("ExecStart={} export\n", env!("CARGO_BIN_EXE_netwhy"));
    std::fs::write(&bare, format!("[Service]\n{exec_line}")).unwrap();
    let (verify, _) = unit_checks(&copy);
    assert!(text(&verify).contains("ProtectHom"), "{}", text(&verify));
    let (_, security) = unit_checks(&bare);
    assert!(!security.status.success(), "bare unit under threshold");
}

fn dashboard() -> Value {
    let path = deploy().join("grafana/netwhy-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON")
}

#[test]
fn dashboard_parses_and_every_panel_queries_the_chosen_datasource() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
        "no datasource variable"
    );
    let panels = d["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "reason",
        "cause",
        "locations",
        "pod",
        "Lost",
        "Doctor",
        "Exporter",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no panel on {want}: {titles:?}"
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        for t in targets.unwrap_or_else(|| panic!("{title}: no query")) {
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(!expr.trim().is_empty(), "{title}: empty query");
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            // Windows follow the scrape interval, never a fixed [5m].
            for f in ["rate(", "increase("] {
                if expr.contains(f) {
                    assert!(
                        expr.contains("[$__rate_interval]") || expr.contains("[$__range]"),
                        "{title}: fixed window in {expr}"
                    );
                }
            }
        }
    }
}

fn promql_list() -> Vec<Value> {
    let out = run(Command::new("python3").arg(deploy().join("promql.py")));
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn rules_path() -> PathBuf {
    deploy().join("prometheus/netwhy-rules.yml")
}

#[test]
fn every_promql_probe_is_listed_substituted_and_accepted_by_prometheus() {
    let t = "promql_probes";
    if !have_python(t) || !have("prometheus", "test -x /usr/bin/prometheus", t) {
        return;
    }
    let list = promql_list();
    let d = dashboard();
    let targets: usize = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["targets"].as_array().unwrap().len())
        .sum();
    // Every variable but the datasource one is a query.
    let variables = d["templating"]["list"].as_array().unwrap().len() - 1;
    assert_eq!(list.len(), targets + variables + 7, "{list:#?}");

    for e in &list {
        let (where_, expr, probe) = (
            &e["where"],
            e["expr"].as_str().unwrap(),
            e["probe"].as_str().unwrap(),
        );
        assert!(!probe.contains('$'), "{where_}: unsubstituted {probe}");
        let alert = where_.as_str().unwrap().starts_with("rules: alert");
        if alert && !expr.starts_with("absent(") {
            assert_ne!(probe, expr.trim(), "{where_}: threshold left in");
            assert!(expr.starts_with(probe), "{where_}: probe is not a prefix");
        }
    }
    let needs: Vec<(&str, &str)> = list
        .iter()
        .filter_map(|e| Some((e["where"].as_str()?, e["needs"].as_str()?)))
        .collect();
    assert!(
        needs.contains(&("rules: alert NetwhyExporterAbsent", "absent")),
        "{needs:?}"
    );

    // Prometheus parses and type-checks each probe. Errors that depend on
    // the data (a join that turns many-to-many) need data: the next test.
    let prom = Prometheus::start(&[("prometheus", SELF)], &[]);
    for e in &list {
        let probe = e["probe"].as_str().unwrap();
        if let Err(err) = prom.try_query(probe, None) {
            panic!("{}: Prometheus refuses {probe}: {err}", e["where"]);
        }
    }
    assert!(prom
        .try_query("sum by (reason (netwhy_drops_total)", None)
        .is_err());
}

#[test]
fn prometheus_harness_scrapes_itself_and_loads_the_rules() {
    if !have(
        "prometheus",
        "test -x /usr/bin/prometheus",
        "prometheus_harness",
    ) {
        return;
    }
    let rules = rules_path();
    let prom = Prometheus::start(&[("prometheus", SELF)], &[rules.as_path()]);
    let pid = prom.pid();

    let up = prom.wait_for("up", Duration::from_secs(30), |s| !s.is_empty());
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].0.get("job").map(String::as_str), Some("prometheus"));
    assert_eq!(up[0].0.get("instance"), Some(&prom.addr));
    assert_eq!(up[0].1, 1.0);
    assert!(prom.targets_up(), "{:?}", prom.targets());
    let build = prom.query("prometheus_build_info");
    assert!(build
        .iter()
        .any(|(l, _)| l.get("version").is_some_and(|v| v.starts_with("2."))));
    // A scalar, and a query in the past (before the first scrape: no data).
    assert_eq!(prom.query("1 + 1"), vec![(Default::default(), 2.0)]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(prom.query_at("up", now - 3600.0).is_empty());

    // The rules are loaded and evaluate without error.
    let groups = prom.rule_groups();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let groups = prom.rule_groups();
        let rules = groups[0]["rules"].as_array().unwrap().clone();
        assert_eq!(rules.len(), 7);
        if rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rules:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // No netwhy target: the absent() alert is pending (its `for` is 15m).
    let alerts = prom.alerts();
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a.labels["alertname"].as_str())
        .collect();
    assert_eq!(names, ["NetwhyExporterAbsent"], "{alerts:?}");
    assert_eq!(alerts[0].state, "pending");

    drop(prom);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "prometheus {pid} outlived its handle"
    );
}

/// An exposition shaped like `netwhy export --labels pod,container` (the
/// metric names and labels the exporter serves), with every counter at
/// `{n}`, the number of scrapes so far. The real exporter's test runs the
/// same probes against lab drops; this one needs no root and no kernel.
const EXPOSITION: &str = r#"# TYPE netwhy_drops_total counter
netwhy_drops_total{reason="NO_SOCKET",location="__udp4_lib_rcv",netns="init",dev="lo",pod_namespace="shop",pod="cart-0",container="cart"} {n}
netwhy_drops_total{reason="NO_SOCKET",location="other",netns="other",dev="other",pod_namespace="",pod="",container=""} {n}
# TYPE netwhy_drop_bytes_total counter
netwhy_drop_bytes_total{reason="NO_SOCKET",location="__udp4_lib_rcv",netns="init",dev="lo",pod_namespace="shop",pod="cart-0",container="cart"} {n}
netwhy_drop_bytes_total{reason="NO_SOCKET",location="other",netns="other",dev="other",pod_namespace="",pod="",container=""} {n}
# TYPE netwhy_drop_cause_info gauge
netwhy_drop_cause_info{reason="NO_SOCKET",location="__udp4_lib_rcv",netns="init",dev="lo",cause="udp-no-socket",summary="no socket on the port"} 1
# TYPE netwhy_doctor_finding gauge
netwhy_doctor_finding{check="rp-filter-asymmetric",severity="warning",netns="init",subject="lo"} 1
# TYPE netwhy_lost_events_total counter
netwhy_lost_events_total{source="ring"} 0
netwhy_lost_events_total{source="aggregate_full"} 0
# TYPE netwhy_hidden_drops_total counter
netwhy_hidden_drops_total {n}
# TYPE netwhy_folded_groups gauge
netwhy_folded_groups 1
# TYPE netwhy_series_capped_total counter
netwhy_series_capped_total 0
# TYPE netwhy_build_info gauge
netwhy_build_info{version="0.1.0",kernel="6.18.0",hook="tp_btf"} 1
# TYPE netwhy_exporter_scrape_duration_seconds gauge
netwhy_exporter_scrape_duration_seconds 0.001
# TYPE netwhy_exporter_series gauge
netwhy_exporter_series 12
"#;

/// Serve EXPOSITION on a loopback port for as long as the test runs.
fn serve_exposition() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            use std::io::{Read, Write};
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = EXPOSITION.replace("{n}", &(10 * n).to_string());
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn every_probe_returns_data_from_an_exporter_shaped_target() {
    let t = "probes_return_data";
    if !have_python(t) || !have("prometheus", "test -x /usr/bin/prometheus", t) {
        return;
    }
    let addr = serve_exposition();
    let rules = rules_path();
    let prom = Prometheus::start(&[("netwhy", &addr)], &[rules.as_path()]);
    // rate() over [1m] needs two samples of the counter.
    prom.wait_for(
        "count_over_time(netwhy_drops_total[1m])",
        Duration::from_secs(30),
        |s| !s.is_empty() && s.iter().all(|(_, v)| *v >= 3.0),
    );
    for e in promql_list() {
        let probe = e["probe"].as_str().unwrap();
        let got = prom.query(probe);
        match e["needs"].as_str() {
            // The exporter is scraped: absent() must say nothing.
            Some("absent") => assert!(got.is_empty(), "{}: {got:?}", e["where"]),
            _ => assert!(!got.is_empty(), "{}: no data from {probe}", e["where"]),
        }
    }
    // The cause alert's join carries the diagnosis and the pod.
    let cause = prom.query(
        promql_list()
            .iter()
            .find(|e| e["where"] == "rules: alert NetwhyDropCause")
            .unwrap()["probe"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(cause.len(), 1, "{cause:?}");
    let labels = &cause[0].0;
    assert_eq!(labels["cause"], "udp-no-socket");
    assert_eq!(labels["pod"], "cart-0");
    assert_eq!(labels["instance"], addr);
    assert!(cause[0].1 > 0.0);
}
