//! `netwhy drops`: a dropwatch that names reasons, locations, flows, netns.
use std::io::{self, IsTerminal};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::capture::{Capture, CaptureSpec, Facts};
use crate::cli::HookArg;
use crate::filter::FilterArgs;
use crate::output::{sink, term};
use crate::output::{Format, Summary};
use crate::pipeline::drops::{DropStream, GroupTable};
use crate::pipeline::{drive, finish, Closing, Ended, Item, Until};

#[derive(Debug, Clone, clap::Args)]
pub struct DropsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// One line per drop (ring buffer) instead of the aggregated live table.
    #[arg(long)]
    pub events: bool,
    /// Output format; json is JSON Lines (docs/json.md).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    /// Also show drops that are normal on every box (hidden by default).
    #[arg(long)]
    pub all: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop after this many drops.
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u64>,
    /// Table refresh interval in seconds.
    #[arg(long, value_name = "SECS", default_value = "1")]
    pub interval: f64,
    /// Rows shown in the table.
    #[arg(long, default_value = "20")]
    pub top: usize,
    /// Force the kernel hook (default: best available).
    #[arg(long, value_enum)]
    pub hook: Option<HookArg>,
    /// Ring buffer size in KiB for --events (power of two, >= 4).
    #[arg(long, value_name = "KIB", default_value = "8192")]
    pub ring_kib: u32,
}

pub fn run(args: DropsArgs) -> Result<()> {
    // Handlers first: a Ctrl-C during start-up stops the capture cleanly.
    let until = Until::signalled();
    let facts = Facts::load().context("loading kernel facts")?;
    if !facts.reasons.has_reasons() {
        crate::log::warn(format_args!(
            "this kernel reports no drop reasons (needs 5.17+): showing locations only"
        ));
    }
    let filter = args.filter.build(&facts.reasons)?;
    let spec = CaptureSpec {
        filter,
        all: args.all,
        events: args.events,
        aggregate: !args.events,
        sample_new: false,
        hook: args.hook.map(Into::into),
        ring_bytes: ring_bytes(args.ring_kib)?,
        include_own: false,
    };
    let mut cap = Capture::start(&spec, facts)?;
    // Tools and tests wait for this line before generating traffic.
    crate::log::info(format_args!(
        "attached to {}/kfree_skb in {} ms",
        cap.probe.hook().as_str(),
        cap.started.elapsed().as_millis()
    ));
    let mut until = until.after(cap.started, args.duration);
    let stdout = io::BufWriter::new(io::stdout().lock());
    if args.events {
        let mut out = sink::for_format(args.output, stdout, Default::default());
        let mut src = DropStream::new(&cap.probe, &mut cap.enricher)?.limit(args.count);
        if drive(&mut src, &mut out, &mut until)? == Ended::ReaderGone {
            return Ok(());
        }
        let delivered = src.delivered;
        drop(src);
        let s = Summary::new(
            cap.probe.hook().as_str(),
            cap.started.elapsed().as_secs_f64(),
            &cap.probe.counters()?,
            delivered,
            0,
        );
        finish(&mut out, &[Item::Closing(Closing::Drops(&s))])?;
        return Ok(());
    }
    let live = args.output == Format::Text && io::stdout().is_terminal();
    let opts = sink::Options {
        live,
        top: args.top,
        width: term::width(),
        ..Default::default()
    };
    let mut out = sink::for_format(args.output, stdout, opts);
    let interval = Duration::from_secs_f64(args.interval.max(0.1));
    let mut src = GroupTable::new(
        &cap.probe,
        &mut cap.enricher,
        cap.started,
        interval,
        args.count,
    );
    if drive(&mut src, &mut out, &mut until)? == Ended::ReaderGone {
        return Ok(());
    }
    let s = src.summary()?;
    finish(
        &mut out,
        &[Item::Table {
            groups: &src.groups,
            summary: &s,
            live: false,
        }],
    )?;
    Ok(())
}

fn ring_bytes(kib: u32) -> Result<u32> {
    if kib < 4 || !kib.is_power_of_two() || kib > (1 << 20) {
        anyhow::bail!("bad --ring-kib {kib}: use a power of two from 4 to 1048576");
    }
    Ok(kib * 1024)
}
