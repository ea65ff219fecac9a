//! Doctor findings as gauges: the checks run every `--doctor-interval` in
//! every namespace, in a thread of their own (a scan enters namespaces and
//! samples counters for a second; a scrape must not wait for it).
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::Labels;
use super::{lock, Shared};

/// Counter sampling window of each scan (the "rising" checks).
const WINDOW: Duration = Duration::from_secs(1);

pub fn spawn(shared: Arc<Shared>, every: Duration) {
    std::thread::Builder::new()
        .name("nw-doctor".into())
        .spawn(move || run(&shared, every))
        .expect("spawning a thread");
}

fn run(sh: &Shared, every: Duration) {
    loop {
        let began = Instant::now();
        let opts = crate::doctor::Options {
            targets: Vec::new(),
            window: WINDOW,
        };
        match crate::doctor::run(&opts) {
            Ok(r) => *lock(&sh.doctor) = labels(&r.findings),
            Err(e) => crate::log::warn(format_args!("doctor scan failed: {e}")),
        }
        while began.elapsed() < every {
            if sh.stopping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn labels(findings: &[crate::doctor::Finding]) -> Vec<Labels> {
    let mut out: Vec<Labels> = findings
        .iter()
        .map(|f| {
            let netns = if f.netns_name.is_empty() || f.netns_name.contains('/') {
                f.netns.to_string()
            } else {
                f.netns_name.clone()
            };
            vec![
                ("check".into(), f.check.to_string()),
                ("severity".into(), f.severity.as_str().to_string()),
                ("netns".into(), netns),
                ("subject".into(), f.subject.clone()),
            ]
        })
        .collect();
    // Two findings may share labels (same check, same subject): one series.
    out.sort();
    out.dedup();
    out
}
