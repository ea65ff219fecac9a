//! A real Prometheus (Debian's /usr/bin/prometheus) for integration tests:
//! it scrapes the targets a test names every second, evaluates the given
//! rule files, and answers instant queries through its HTTP API. The
//! process is killed and its storage removed when the value is dropped,
//! panics included.
//!
//! The API is spoken over a plain `TcpStream` with HTTP/1.0 (the server
//! then closes the connection after the body, so reading to the end is the
//! whole response): test code needs no HTTP client crate for a handful of
//! GETs on loopback.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BINARY: &str = "/usr/bin/prometheus";

/// A target address that stands for the Prometheus being started: its own
/// port is only known once `start` has picked it.
pub const SELF: &str = "self";

/// One instant-vector sample: its labels (with `__name__` when the
/// expression keeps it) and its value.
pub type Sample = (BTreeMap<String, String>, f64);

/// One active alert from /api/v1/alerts.
#[derive(Debug, Clone)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// "pending" or "firing".
    pub state: String,
}

/// One scrape target from /api/v1/targets.
#[derive(Debug, Clone)]
pub struct Target {
    pub job: String,
    pub instance: String,
    /// "up", "down" or "unknown" (not scraped yet).
    pub health: String,
    pub last_error: String,
}

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: String,
}

impl Prometheus {
    /// Start Prometheus on 127.0.0.1 with temporary storage, scraping each
    /// `(job, "host:port")` every second (`SELF` for its own /metrics) and
    /// evaluating `rule_files` every second; returns once it is ready.
    pub fn start(targets: &[(&str, &str)], rule_files: &[&Path]) -> Prometheus {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} missing (scripts/apt-packages: prometheus)"
        );
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let dir =
            std::env::temp_dir().join(format!("netwhy-prometheus-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_text(&addr, targets, rule_files)).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus { child, dir, addr };
        p.wait_ready(Duration::from_secs(30));
        p
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}): {}", self.log());
            }
            if matches!(get(&self.addr, "/-/ready"), Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in {timeout:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Prometheus process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What Prometheus logged (warnings and errors), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; panics on a transport error or a non-success
    /// status, with Prometheus's error text.
    pub fn api(&self, path_and_query: &str) -> Value {
        self.try_api(path_and_query)
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
    }

    /// `api` that returns the error (a bad expression: status 400) instead.
    pub fn try_api(&self, path_and_query: &str) -> Result<Value, String> {
        let (status, body) = get(&self.addr, path_and_query).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("{status}: {} {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// Instant query at the current time.
    pub fn query(&self, expr: &str) -> Vec<Sample> {
        self.try_query(expr, None)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    /// Instant query at `unix_time` (seconds, fractions allowed).
    pub fn query_at(&self, expr: &str, unix_time: f64) -> Vec<Sample> {
        self.try_query(expr, Some(unix_time))
            .unwrap_or_else(|e| panic!("{expr} @ {unix_time}: {e}"))
    }

    /// Instant query that returns Prometheus's refusal (a parse error, a
    /// many-to-many join) instead of panicking.
    pub fn try_query(&self, expr: &str, unix_time: Option<f64>) -> Result<Vec<Sample>, String> {
        let mut path = format!("/api/v1/query?query={}", encode(expr));
        if let Some(t) = unix_time {
            write!(path, "&time={t:.3}").unwrap();
        }
        samples(&self.try_api(&path)?)
    }

    /// Query `expr` until `ok` accepts its result; returns that result, or
    /// panics after `timeout` with the last one.
    pub fn wait_for(
        &self,
        expr: &str,
        timeout: Duration,
        ok: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.query(expr);
            if ok(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{expr}: condition not met in {timeout:?}; last result {got:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every configured scrape target with its health.
    pub fn targets(&self) -> Vec<Target> {
        let data = self.api("/api/v1/targets?state=active");
        let list = data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        list.iter()
            .map(|t| Target {
                job: t["labels"]["job"].as_str().unwrap_or("").into(),
                instance: t["labels"]["instance"].as_str().unwrap_or("").into(),
                health: t["health"].as_str().unwrap_or("").into(),
                last_error: t["lastError"].as_str().unwrap_or("").into(),
            })
            .collect()
    }

    /// True when every target's last scrape succeeded.
    pub fn targets_up(&self) -> bool {
        let t = self.targets();
        !t.is_empty() && t.iter().all(|t| t.health == "up")
    }

    /// Pending and firing alerts.
    pub fn alerts(&self) -> Vec<Alert> {
        let data = self.api("/api/v1/alerts");
        let list = data["alerts"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|a| Alert {
                labels: string_map(&a["labels"]),
                annotations: string_map(&a["annotations"]),
                state: a["state"].as_str().unwrap_or("").into(),
            })
            .collect()
    }

    /// The loaded rule groups, as /api/v1/rules returns them.
    pub fn rule_groups(&self) -> Vec<Value> {
        let data = self.api("/api/v1/rules");
        data["groups"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port the kernel just handed out on loopback. Another process could
/// take it before Prometheus binds it; on a test machine that is rare
/// enough, and `start` then fails loudly with Prometheus's log.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().unwrap().port()
}

fn config_text(addr: &str, targets: &[(&str, &str)], rule_files: &[&Path]) -> String {
    let mut s = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    if !rule_files.is_empty() {
        s.push_str("rule_files:\n");
        for f in rule_files {
            let abs = std::fs::canonicalize(f)
                .unwrap_or_else(|e| panic!("rule file {}: {e}", f.display()));
            writeln!(s, "  - {}", yaml_string(&abs.to_string_lossy())).unwrap();
        }
    }
    s.push_str("scrape_configs:\n");
    // One scrape config per job, in the order given.
    let mut jobs: Vec<(&str, Vec<&str>)> = Vec::new();
    for (job, target) in targets {
        let target = if *target == SELF { addr } else { target };
        match jobs.iter_mut().find(|(j, _)| j == job) {
            Some((_, list)) => list.push(target),
            None => jobs.push((job, vec![target])),
        }
    }
    for (job, list) in jobs {
        writeln!(
            s,
            "  - job_name: {}\n    static_configs:\n      - targets:",
            yaml_string(job)
        )
        .unwrap();
        for t in list {
            writeln!(s, "          - {}", yaml_string(t)).unwrap();
        }
    }
    s
}

/// A double-quoted YAML scalar: JSON's string syntax is valid YAML.
fn yaml_string(s: &str) -> String {
    Value::String(s.into()).to_string()
}

/// Percent-encoding for a query-string value: everything but the
/// unreserved characters of RFC 3986.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// HTTP/1.0 GET on `addr`: status and body.
pub fn get(addr: &str, path_and_query: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        conn,
        "GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, text.to_string());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_string()))
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Prometheus writes sample values as strings, "NaN" and "+Inf" included.
fn number(v: &Value) -> Result<f64, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("value {v} is not a string"))?;
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("value {s:?}: {e}")),
    }
}

/// The samples of an instant query's `data`: a vector's, or a scalar as one
/// sample without labels.
fn samples(data: &Value) -> Result<Vec<Sample>, String> {
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("vector without result")?
            .iter()
            .map(|r| Ok((string_map(&r["metric"]), number(&r["value"][1])?)))
            .collect(),
        Some("scalar") => Ok(vec![(BTreeMap::new(), number(&data["result"][1])?)]),
        other => Err(format!("unexpected result type {other:?}")),
    }
}
