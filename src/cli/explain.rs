//! `netwhy explain`: capture drops for a while, group them, and say for each
//! group what happened, why, and what to change.
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::{Capture, CaptureSpec, Facts};
use crate::cli::HookArg;
use crate::diagnose::finding::{explain, Finding};
use crate::event::DropEvent;
use crate::filter::FilterArgs;
use crate::output::text::netns_label;
use crate::output::{json_line, Format};
use crate::signals;
use crate::state::nftrace::{Matcher, TraceEvent, Tracer};

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
    let spec = CaptureSpec {
        filter,
        all: args.all,
        events: true,
        aggregate: false,
        hook: args.hook.map(Into::into),
        ring_bytes: 0,
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
    let mut tracers = RuleTracers::default();
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
                tracers.on_drop(&e);
                events.push(e);
            }
        }
        if finishing {
            break;
        }
    }
    drop(reader);
    let counters = cap.probe.counters()?;
    let mut findings = explain(&events);
    let rule_drops = tracers.collect();
    for f in &mut findings {
        // Live state, looked up in the namespace of the drop, right now.
        f.evidence
            .extend(crate::diagnose::evidence::gather(&f.sample));
        if f.reason == "NETFILTER_DROP" {
            f.evidence.extend(
                rule_drops
                    .iter()
                    .filter(|(ns, _)| *ns == f.netns)
                    .map(|(_, line)| line.clone()),
            );
        }
    }
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
                out.write_all(render(i + 1, f).as_bytes())?;
            }
            writeln!(
                out,
                "{} drops, {} hidden as known-harmless (--all shows them), {} lost",
                counters.seen, counters.hidden, counters.lost
            )?;
        }
    }
    out.flush().or_else(|e| {
        if crate::output::is_broken_pipe(&e) {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

fn render(n: usize, f: &Finding) -> String {
    let mut s = format!(
        "[{n}] {}x {} at {}  netns={} dev={}\n",
        f.count,
        f.reason,
        f.location,
        netns_label(f.netns, f.netns_name.as_deref()),
        f.dev.as_deref().unwrap_or("-")
    );
    for fl in &f.flows {
        s += &format!("    flow:  {fl}\n");
    }
    s += &format!("    what:  {}\n", f.meaning);
    for c in f.causes.iter().take(3) {
        s += &format!("    why:   {c}\n");
    }
    for e in &f.evidence {
        s += &format!("    seen:  {e}\n");
    }
    for c in f.checks.iter().take(3) {
        s += &format!("    check: {c}\n");
    }
    for x in f.fix {
        s += &format!("    fix:   {x}\n");
    }
    s += &format!("    diagnosis: {} (confidence {})\n", f.cause, f.confidence);
    s
}

/// nftables rule attribution: the first NETFILTER_DROP at nft_do_chain in a
/// netns starts an nftrace tracer there for that flow (one per netns: the
/// tracer table is named after our pid), so the flow's next packets (TCP
/// retransmits, repeated queries) name the table, chain, rule handle and
/// comment. The tracer tables are removed when explain ends (and by the
/// kernel if netwhy dies: they are owner-bound).
#[derive(Default)]
struct RuleTracers {
    active: Vec<(u32, Tracer)>,
    failed: Vec<(u32, String)>,
}

impl RuleTracers {
    fn on_drop(&mut self, e: &DropEvent) {
        if e.reason != "NETFILTER_DROP" || e.location.symbol != "nft_do_chain" {
            return;
        }
        if self.active.iter().any(|(ns, _)| *ns == e.netns)
            || self.failed.iter().any(|(ns, _)| *ns == e.netns)
        {
            return;
        }
        let proto = match e.flow.proto.as_deref() {
            Some("tcp") => 6,
            Some("udp") => 17,
            _ => return,
        };
        let Some(dport) = e.flow.dport else { return };
        let mut m = Matcher {
            l4proto: Some(proto),
            dport: Some(dport),
            daddr: None,
        };
        if let Some(std::net::IpAddr::V4(a)) = e.flow.dst {
            m = m.daddr(a);
        }
        match Tracer::start(e.netns, m) {
            Ok(t) => self.active.push((e.netns, t)),
            Err(err) => self
                .failed
                .push((e.netns, format!("nftrace could not start: {err}"))),
        }
    }

    /// (netns, evidence line) for every traced drop, plus start failures.
    fn collect(mut self) -> Vec<(u32, String)> {
        let mut out = std::mem::take(&mut self.failed);
        for (ns, mut t) in self.active.drain(..) {
            match t.collect(Duration::from_millis(300)) {
                Ok(drops) if drops.is_empty() => out.push((
                    ns,
                    "nftrace was armed after the first drop but saw no later packet of the \
                     flow (repeat the traffic while explain runs)"
                        .to_string(),
                )),
                Ok(drops) => {
                    for d in drops.iter().take(3) {
                        out.push((ns, rule_line(d)));
                    }
                }
                Err(err) => out.push((ns, format!("nftrace failed: {err}"))),
            }
            let _ = t.stop();
        }
        out
    }
}

fn rule_line(d: &TraceEvent) -> String {
    let handle = d
        .rule_handle
        .map(|h| h.to_string())
        .unwrap_or_else(|| "(chain policy)".into());
    let mut s = format!(
        "nftrace: dropped by table {} chain {} rule handle {handle}",
        d.table, d.chain
    );
    if let Some(c) = &d.comment {
        s += &format!(" (comment \"{c}\")");
    }
    s += &format!(
        "; see it with: nft -a list chain {} {} {}",
        family_name(d.family),
        d.table,
        d.chain
    );
    s
}

fn family_name(f: u8) -> &'static str {
    match f {
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "inet",
    }
}
