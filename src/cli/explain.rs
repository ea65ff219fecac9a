//! `netwhy explain`: capture drops for a while, group them, and say for each
//! group what happened, why, and what to change.
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::{Capture, CaptureSpec, Facts};
use crate::cli::HookArg;
use crate::diagnose::session::Session;
use crate::event::DropEvent;
use crate::filter::FilterArgs;
use crate::kernel::netns::NetnsNames;
use crate::output::finding::finding_text;
use crate::output::{json_line, Format};
use crate::signals;

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
    let stop = signals::stop_flag();
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
        hook: args.hook.map(Into::into),
        ring_bytes: 0,
        include_own: false,
    };
    let mut cap = Capture::start(&spec, facts)?;
    eprintln!(
        "netwhy: attached to {}/kfree_skb; capturing for {:.1}s (Ctrl-C to explain now)",
        cap.probe.hook().as_str(),
        args.duration
    );
    let reader = cap.probe.events()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration.max(0.0));
    let mut events: Vec<DropEvent> = Vec::new();
    let mut session = Session::new(scoped);
    loop {
        let finishing =
            stop.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() >= deadline;
        let batch = reader
            .next_batch(Duration::from_millis(20))
            .context("reading ring buffer")?;
        for raw in batch {
            // Keep memory bounded on a flood: a few thousand samples suffice
            // to group; the kernel counters below still count everything.
            if events.len() < 100_000 {
                let e = cap.enricher.drop_event(&raw);
                session.on_drop(&e);
                events.push(e);
            }
        }
        session.tick();
        if finishing {
            break;
        }
    }
    drop(reader);
    let counters = cap.probe.counters()?;
    let findings = session.finish(&events);
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.output {
        Format::Json => {
            for f in &findings {
                json_line(&mut out, f)?;
            }
            let s = crate::output::Summary::new(
                cap.probe.hook().as_str(),
                cap.started.elapsed().as_secs_f64(),
                &counters,
                events.len() as u64,
                findings.len(),
            );
            json_line(&mut out, &s)?;
        }
        Format::Text => {
            if findings.is_empty() {
                writeln!(out, "no drops matched in {:.1}s", args.duration)?;
            }
            for (i, f) in findings.iter().enumerate() {
                out.write_all(finding_text(i + 1, f).as_bytes())?;
            }
            writeln!(
                out,
                "{} drops, {} hidden as known-harmless (--all shows them), {} lost, {} caused by netwhy itself (not reported)",
                counters.seen, counters.hidden, counters.lost, counters.own
            )?;
        }
    }
    crate::output::flush_quietly(&mut out)?;
    Ok(())
}
