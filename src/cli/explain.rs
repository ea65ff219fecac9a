//! `netwhy explain`: capture drops for a while, group them, and say for each
//! group what happened, why, and what to change.
use std::io;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::{Capture, CaptureSpec, Facts};
use crate::cli::HookArg;
use crate::diagnose::session::Session;
use crate::filter::FilterArgs;
use crate::kernel::netns::NetnsNames;
use crate::output::sink;
use crate::output::{Format, Summary};
use crate::pipeline::drops::DropStream;
use crate::pipeline::{drive, finish, Closing, Diagnosis, Item, NullSink, Until};

#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Capture this long before explaining (Ctrl-C explains at once).
    #[arg(long, value_name = "SECS", default_value = "5")]
    pub duration: f64,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    /// Also explain drops that are normal on every box.
    #[arg(long)]
    pub all: bool,
    /// Force the kernel hook.
    #[arg(long, value_enum)]
    pub hook: Option<HookArg>,
}

pub fn run(args: ExplainArgs) -> Result<()> {
    // Handlers first: a Ctrl-C during start-up stops the capture cleanly.
    let until = Until::signalled();
    let facts = Facts::load().context("loading kernel facts")?;
    let filter = args.filter.build(&facts.reasons)?;
    let names = NetnsNames::scan();
    let scoped: Vec<(u32, Option<String>)> = filter
        .netns
        .iter()
        .map(|&ino| (ino, names.name(ino).map(str::to_owned)))
        .collect();
    let spec = CaptureSpec {
        filter,
        all: args.all,
        events: true,
        aggregate: false,
        sample_new: false,
        hook: args.hook.map(Into::into),
        ring_bytes: 0,
        include_own: false,
    };
    let mut cap = Capture::start(&spec, facts)?;
    // The session snapshots the counters it watches: before the line that
    // tells tools and tests to start their traffic.
    // Unscoped, the host is watched too (counter-only losses: diagnose::counters).
    let mut session = Session::new(scoped.clone());
    if scoped.is_empty() {
        session.watch_host();
    }
    // Sends failing with EMSGSIZE leave no skb and no counter: only the
    // syscalls' tracepoints see them (diagnose::emsgsize).
    match crate::probe::sendfail::SendFailProbe::attach() {
        Ok(p) => session.watch_sends(Box::new(p)),
        Err(e) => crate::log::warn(format_args!("EMSGSIZE sends will not be seen: {e}")),
    }
    crate::log::info(format_args!(
        "attached to {}/kfree_skb; capturing for {:.1}s (Ctrl-C to explain now)",
        cap.probe.hook().as_str(),
        args.duration
    ));
    let mut until = until.after(Instant::now(), Some(args.duration));
    let mut out = sink::for_format(
        args.output,
        io::BufWriter::new(io::stdout().lock()),
        Default::default(),
    );
    // A few thousand samples suffice to group a flood; the kernel counters
    // still count everything.
    let diagnosis = Diagnosis::new(session, 100_000);
    let mut src = DropStream::new(&cap.probe, &mut cap.enricher)?
        .wait(Duration::from_millis(20))
        .diagnose(diagnosis);
    drive(&mut src, &mut NullSink, &mut until)?;
    let diagnosis = src.diagnosis.take().expect("explain diagnoses");
    drop(src);
    let events = diagnosis.drops.len() as u64;
    let findings = diagnosis.finish();
    let s = Summary::new(
        cap.probe.hook().as_str(),
        cap.started.elapsed().as_secs_f64(),
        &cap.probe.counters()?,
        events,
        findings.len(),
    );
    finish(
        &mut out,
        &[
            Item::Findings {
                findings: &findings,
                heading: None,
            },
            Item::Closing(Closing::Explain(&s)),
        ],
    )?;
    Ok(())
}
