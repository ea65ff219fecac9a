//! `netwhy skbfuncs` (hidden): attach the skb function probe, count hits
//! per kernel function for a while, print them in path order with the
//! backend chosen and the attach/detach times. A development and benchmark
//! tool for the kprobe-multi / fentry / kprobe backends until `netwhy trace`
//! uses them.
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::output::{json_line, Format};
use crate::probe::skbfunc::{AttachReport, Backend, Hit, SkbFuncOptions, SkbFuncProbe};
use crate::signals;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    KprobeMulti,
    Kprobe,
    Fentry,
    Tracepoint,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::KprobeMulti => Backend::KprobeMulti,
            BackendArg::Fentry => Backend::Fentry,
            BackendArg::Kprobe => Backend::Kprobe,
            BackendArg::Tracepoint => Backend::Tracepoint,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SkbFuncsArgs {
    /// Force the backend (default: the best the feature probes allow).
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Only kernel functions whose name matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub funcs: Option<String>,
    /// Count only TCP/UDP packets with this source or destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Also trace the skb functions of these loaded modules (nf_tables,...).
    #[arg(long, value_delimiter = ',', value_name = "MOD,...")]
    pub kmods: Vec<String>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
}

/// The closing JSON object (`{"type":"skbfuncs",...}`).
#[derive(Serialize)]
#[serde(remote = "Self")]
struct Summary<'a> {
    #[serde(flatten)]
    attach: &'a AttachReport,
    detach_ms: f64,
    duration_s: f64,
    hits: &'a [Hit],
}

crate::json_record!(Summary<'_>, "skbfuncs");

/// `--funcs REGEX`, with a one-line error naming the problem.
pub fn parse_funcs(f: Option<&str>) -> Result<Option<regex::Regex>> {
    f.map(|f| {
        regex::Regex::new(f).map_err(|e| {
            let why = e.to_string();
            let why = why.lines().last().unwrap_or_default().trim().to_string();
            anyhow::anyhow!("--funcs {f:?} is not a valid regular expression: {why}")
        })
    })
    .transpose()
}

pub fn run(a: SkbFuncsArgs) -> Result<()> {
    let stop = signals::stop_flag();
    let opts = SkbFuncOptions {
        backend: a.backend.map(Into::into),
        funcs: parse_funcs(a.funcs.as_deref())?,
        port: a.port,
        kmods: a.kmods,
        share: None,
        allow: None,
    };
    let probe = SkbFuncProbe::attach(&opts)?;
    let r = &probe.report;
    let refused: Vec<String> = r
        .probes
        .iter()
        .filter_map(|p| {
            p.error
                .as_ref()
                .map(|e| format!("{}: {e}", p.backend.as_str()))
        })
        .collect();
    if r.backend == Backend::Tracepoint && !refused.is_empty() {
        crate::log::info(format_args!(
            "no function backend on this kernel ({}); tracepoints only",
            refused.join("; ")
        ));
    }
    crate::log::info(format_args!(
        "attached to {} skb functions via {} in {:.0} ms (+{} tracepoints; discovery {:.0} ms; {} refused)",
        r.functions,
        r.backend.as_str(),
        r.attach_ms,
        r.tracepoints,
        r.discovery_ms,
        r.skipped_count
    ));
    let start = Instant::now();
    let limit = a.duration.map(Duration::from_secs_f64);
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| start.elapsed() < l) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let duration_s = start.elapsed().as_secs_f64();
    let hits = probe.hits()?;
    let report = probe.report.clone();
    let detach = probe.detach();
    let detach_ms = (detach.as_secs_f64() * 1e5).round() / 100.0;
    match a.output {
        Format::Json => {
            let s = Summary {
                attach: &report,
                detach_ms,
                duration_s,
                hits: &hits,
            };
            json_line(&mut std::io::stdout().lock(), &s)?;
        }
        Format::Text => {
            let t0 = hits.first().map(|h| h.first_ns).unwrap_or(0);
            println!(
                "{:>10}  {:>10}  FUNCTION (in order of first hit)",
                "HITS", "+ms"
            );
            for h in &hits {
                let dt = h.first_ns.saturating_sub(t0) as f64 / 1e6;
                println!("{:>10}  {:>10.3}  {}", h.count, dt, h.name);
            }
            println!(
                "{} functions hit; backend {}; attach {:.0} ms, detach {:.0} ms",
                hits.len(),
                report.backend.as_str(),
                report.attach_ms,
                detach_ms
            );
        }
    }
    Ok(())
}
