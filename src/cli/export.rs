//! `netwhy export`: a Prometheus scrape target of the kernel's drops, with
//! their causes and doctor's findings (src/export/ has the design).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::capture::{Capture, CaptureSpec, Facts};
use crate::cli::HookArg;
use crate::export::{self, series::Limits, Options, Sampler, Server, Shared};
use crate::filter::FilterArgs;
use crate::pipeline::{drive, NullSink, Until};

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Address to serve /metrics on. Loopback unless you say otherwise.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9789")]
    pub listen: SocketAddr,
    /// Extra labels on drop series: `pod,container` adds pod_namespace, pod
    /// and container (more series on nodes that run many pods).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub labels: Vec<LabelArg>,
    /// Series per drop reason; busier groups beyond it are counted in the
    /// reason's location="other" series.
    #[arg(long, value_name = "N", default_value = "20")]
    pub top_per_reason: usize,
    /// Hard cap on drop series; groups refused one are counted in
    /// netwhy_series_capped_total and in their reason's "other" series.
    #[arg(long, value_name = "N", default_value = "2000")]
    pub max_series: usize,
    /// Forget groups of namespaces that are gone after this many idle
    /// seconds; a shown group idle this long yields its slot to a busier one.
    #[arg(long, value_name = "SECS", default_value = "300")]
    pub stale_after: f64,
    /// Seconds between doctor scans (0 disables netwhy_doctor_finding).
    #[arg(long, value_name = "SECS", default_value = "60")]
    pub doctor_interval: f64,
    /// Do not diagnose new drop groups (no netwhy_drop_cause_info).
    #[arg(long)]
    pub no_causes: bool,
    /// Most diagnoses per second (each reads live state).
    #[arg(long, value_name = "N", default_value = "5")]
    pub causes_per_sec: f64,
    /// Name the firewall rule behind NETFILTER_DROP causes: watches rule
    /// counters and arms an nftrace table in the namespace for a few seconds.
    #[arg(long)]
    pub attribute_rules: bool,
    /// Keep the counters across restarts in this file (same boot only).
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// Also count drops that are normal on every box.
    #[arg(long)]
    pub all: bool,
    /// Force the kernel hook.
    #[arg(long, value_enum)]
    pub hook: Option<HookArg>,
    /// Benchmarks: start with this many synthetic groups in the kernel map.
    #[arg(long, hide = true, value_name = "N")]
    pub bench_groups: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelArg {
    Pod,
    Container,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let mut until = Until::signalled();
    if args.top_per_reason == 0 || args.max_series == 0 {
        anyhow::bail!("--top-per-reason and --max-series must be at least 1");
    }
    if !(args.stale_after.is_finite() && args.stale_after > 0.0) {
        anyhow::bail!("bad --stale-after {}: give seconds > 0", args.stale_after);
    }
    let facts = Facts::load().context("loading kernel facts")?;
    let filter = args.filter.build(&facts.reasons)?;
    let spec = CaptureSpec {
        filter,
        all: args.all,
        events: false,
        aggregate: true,
        sample_new: !args.no_causes,
        hook: args.hook.map(Into::into),
        ring_bytes: 1 << 20,
        include_own: false,
    };
    let opts = Options {
        listen: args.listen,
        limits: Limits {
            top_per_reason: args.top_per_reason,
            max_series: args.max_series,
            stale_after_secs: args.stale_after,
        },
        pod_labels: !args.labels.is_empty(),
        doctor_interval: (args.doctor_interval > 0.0)
            .then(|| Duration::from_secs_f64(args.doctor_interval)),
        causes: !args.no_causes,
        causes_per_sec: args.causes_per_sec,
        rules_window: args.attribute_rules.then_some(Duration::from_secs(3)),
        state_file: args.state_file.clone(),
    };
    let listener = Server::bind(args.listen)?;
    let cap = Capture::start(&spec, facts)?;
    let hook = cap.probe.hook();
    let reader = cap.probe.agg_reader()?;
    let shared = Arc::new(Shared::new(opts, reader, cap.enricher, hook.as_str()));
    let restored = export::restore(&shared)?;
    if let Some(n) = args.bench_groups {
        export::bench_fill(&shared, n)?;
    }
    let server = Server::start(listener, shared.clone());
    export::start_doctor(&shared);
    // Tools and tests wait for this line.
    crate::log::info(format_args!(
        "serving metrics on http://{}/metrics (attached to {}/kfree_skb in {} ms{})",
        server.addr,
        hook.as_str(),
        cap.started.elapsed().as_millis(),
        if restored > 0 {
            format!("; {restored} series restored from the state file")
        } else {
            String::new()
        }
    ));
    let mut sampler = Sampler::new(cap.probe.events()?, shared.clone());
    drive(&mut sampler, &mut NullSink, &mut until)?;
    // SIGTERM/SIGINT: answer the scrape in flight, persist, detach.
    shared
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    server.join();
    export::save(&shared)?;
    drop(sampler);
    drop(cap.probe);
    crate::log::info(format_args!(
        "stopped; detached from {}/kfree_skb",
        hook.as_str()
    ));
    Ok(())
}
