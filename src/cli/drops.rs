//! `netwhy drops`: a dropwatch that names reasons, locations, flows, netns.
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::{Capture, CaptureSpec, Facts};
use crate::cli::HookArg;
use crate::event::{cstr, DropGroup, GroupKey};
use crate::filter::FilterArgs;
use crate::output::{is_broken_pipe, json_line, table, text, Format, Summary};
use crate::signals;

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
    #[arg(long, value_name = "N")]
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
    let stop = signals::stop_flag();
    let facts = Facts::load().context("loading kernel facts")?;
    if !facts.reasons.has_reasons() {
        eprintln!("netwhy: warning: this kernel reports no drop reasons (needs 5.17+): showing locations only");
    }
    let filter = args.filter.build(&facts.reasons)?;
    let spec = CaptureSpec {
        filter,
        all: args.all,
        events: args.events,
        aggregate: !args.events,
        hook: args.hook.map(Into::into),
        ring_bytes: ring_bytes(args.ring_kib)?,
        include_own: false,
    };
    let cap = Capture::start(&spec, facts)?;
    // Tools and tests wait for this line before generating traffic.
    eprintln!(
        "netwhy: attached to {}/kfree_skb in {} ms",
        cap.probe.hook().as_str(),
        cap.started.elapsed().as_millis()
    );
    let deadline = args
        .duration
        .map(|d| cap.started + Duration::from_secs_f64(d.max(0.0)));
    let done = || {
        stop.load(std::sync::atomic::Ordering::Relaxed)
            || deadline.is_some_and(|d| Instant::now() >= d)
    };
    if args.events {
        run_events(cap, &args, done)
    } else {
        run_table(cap, &args, done)
    }
}

fn ring_bytes(kib: u32) -> Result<u32> {
    if kib < 4 || !kib.is_power_of_two() || kib > (1 << 20) {
        anyhow::bail!("bad --ring-kib {kib}: use a power of two from 4 to 1048576");
    }
    Ok(kib * 1024)
}

fn run_events(mut cap: Capture, args: &DropsArgs, done: impl Fn() -> bool) -> Result<()> {
    let reader = cap.probe.events()?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut delivered = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut pipe_closed = false;
    'outer: loop {
        let finishing = done();
        let batch = reader
            .next_batch(Duration::from_millis(10))
            .context("reading ring buffer")?;
        for raw in &batch {
            if delivered >= limit {
                break 'outer;
            }
            delivered += 1;
            let ev = cap.enricher.drop_event(raw);
            let r = match args.output {
                Format::Json => json_line(&mut out, &ev),
                Format::Text => writeln!(out, "{}", text::event_line(&ev)),
            };
            if let Err(e) = r {
                if is_broken_pipe(&e) {
                    pipe_closed = true;
                    break 'outer;
                }
                return Err(e).context("writing output");
            }
        }
        if !batch.is_empty() {
            out.flush().ok();
        }
        if finishing || delivered >= limit {
            break;
        }
    }
    drop(reader);
    if pipe_closed {
        return Ok(());
    }
    let counters = cap.probe.counters()?;
    let s = Summary::new(
        cap.probe.hook().as_str(),
        cap.started.elapsed().as_secs_f64(),
        &counters,
        delivered,
        0,
    );
    if args.output == Format::Text {
        // Like tcpdump's capture counts: the trailer goes to stderr so the
        // event lines on stdout stay clean for pipes.
        out.flush().ok();
        eprintln!("{}", s.line());
        return Ok(());
    }
    finish(&mut out, args.output, &[], &s, args.top)
}

fn run_table(mut cap: Capture, args: &DropsArgs, done: impl Fn() -> bool) -> Result<()> {
    let tty = io::stdout().is_terminal() && args.output == Format::Text;
    let interval = Duration::from_secs_f64(args.interval.max(0.1));
    let mut prev: HashMap<GroupKey, u64> = HashMap::new();
    let mut last_draw = Instant::now();
    let mut groups: Vec<DropGroup> = Vec::new();
    let mut out = io::BufWriter::new(io::stdout().lock());
    loop {
        let finishing = done();
        std::thread::sleep(Duration::from_millis(50));
        let redraw = last_draw.elapsed() >= interval;
        let need_total = args.count.is_some();
        if !(redraw || need_total || finishing) {
            continue;
        }
        let raw = cap.probe.groups()?;
        let total: u64 = raw.iter().map(|(_, v)| v.count).sum();
        let hit_count = args.count.is_some_and(|n| total >= n);
        if redraw || hit_count || finishing {
            let secs = last_draw.elapsed().as_secs_f64().max(1e-3);
            groups = raw
                .iter()
                .map(|(k, v)| {
                    let key = GroupKey::from(k);
                    let before = prev.get(&key).copied().unwrap_or(0);
                    let rate = v.count.saturating_sub(before) as f64 / secs;
                    prev.insert(key, v.count);
                    let mut g =
                        cap.enricher
                            .group(k, v.netns_src, cstr(&v.ifname), v.count, v.bytes, rate);
                    g.hint = crate::diagnose::hint_for(&g);
                    g
                })
                .collect();
            table::sort(&mut groups);
            last_draw = Instant::now();
            if tty && !(hit_count || finishing) {
                let c = cap.probe.counters()?;
                let footer = Summary::new(
                    cap.probe.hook().as_str(),
                    cap.started.elapsed().as_secs_f64(),
                    &c,
                    0,
                    groups.len(),
                )
                .line();
                let screen = format!("\x1b[H\x1b[2J{}", table::render(&groups, args.top, &footer));
                if let Err(e) = out.write_all(screen.as_bytes()).and_then(|_| out.flush()) {
                    if is_broken_pipe(&e) {
                        return Ok(());
                    }
                    return Err(e).context("writing output");
                }
            }
        }
        if finishing || hit_count {
            break;
        }
    }
    let counters = cap.probe.counters()?;
    let s = Summary::new(
        cap.probe.hook().as_str(),
        cap.started.elapsed().as_secs_f64(),
        &counters,
        0,
        groups.len(),
    );
    if tty {
        out.write_all(b"\x1b[H\x1b[2J").ok();
    }
    finish(&mut out, args.output, &groups, &s, args.top)
}

/// Final table (text) or group lines (json), then the summary.
fn finish<W: Write>(
    out: &mut W,
    fmt: Format,
    groups: &[DropGroup],
    s: &Summary,
    top: usize,
) -> Result<()> {
    let r = match fmt {
        Format::Json => groups
            .iter()
            .try_for_each(|g| json_line(out, g))
            .and_then(|_| json_line(out, s)),
        Format::Text => {
            let body = if groups.is_empty() {
                format!("{}\n", s.line())
            } else {
                table::render(groups, top, &s.line())
            };
            out.write_all(body.as_bytes())
        }
    };
    match r.and_then(|_| out.flush()) {
        Err(e) if !is_broken_pipe(&e) => Err(e).context("writing output"),
        _ => Ok(()),
    }
}
