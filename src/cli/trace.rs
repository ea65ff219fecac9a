//! `netwhy trace FILTER`: follow the packets a tcpdump expression selects
//! through the kernel, one timeline per packet, ending with its fate.
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::capture::Facts;
use crate::diagnose::session::Session;
use crate::event::{DropEvent, Enricher, JSON_VERSION};
use crate::filter::pcap::PcapFilter;
use crate::filter::{parse_dev, parse_mark};
use crate::kernel::btf::Btf;
use crate::kernel::netns::{resolve_netns_spec, NetnsNames};
use crate::output::finding::finding_text;
use crate::output::pcapng::PcapngWriter;
use crate::output::{is_broken_pipe, json_line, Format};
use crate::probe::path::{self, PathCounters, PathOptions, PathProbe};
use crate::signals;
use crate::trace::{decode, render, Limit, Owners, Packet, Timeline};

#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// tcpdump filter expression (pcap-filter(7)) evaluated from the IP
    /// header, e.g. `udp port 53 and host 198.18.0.2`. None: every packet.
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Start tracking only in this network namespace (inode, `ip netns`
    /// name or /proc/PID/ns/net); tracked packets are followed everywhere.
    #[arg(long, value_name = "NS")]
    pub netns: Vec<String>,
    /// Start tracking only on this device (name, or ifindex).
    #[arg(long, value_name = "DEV")]
    pub dev: Option<String>,
    /// Start tracking only packets whose skb mark matches VALUE[/MASK].
    #[arg(long, value_name = "MARK")]
    pub mark: Option<String>,
    /// Only packets of sockets created in this process's cgroup (v2: the
    /// process, its children, its container or service), and packets
    /// addressed back to their local endpoints.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop after this many packets were printed (copies of them, followed
    /// with a function backend, come along and do not count).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Output format; json is JSON Lines: a `step` object per hook, a
    /// `fate` per packet, a `summary` at the end.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    /// Also write every step's captured bytes to this pcapng file, each
    /// with a comment naming hook, netns, device and fate.
    #[arg(long, value_name = "FILE")]
    pub pcapng: Option<PathBuf>,
    /// Print a packet whose fate is not seen after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "1")]
    pub timeout: f64,
    /// Ring buffer size in KiB (power of two, >= 4).
    #[arg(long, value_name = "KIB", default_value = "8192")]
    pub ring_kib: u32,
    #[command(flatten)]
    pub steps: super::steps::StepArgs,
}

#[derive(Serialize)]
struct TraceSummary {
    #[serde(rename = "type")]
    kind: &'static str,
    v: u32,
    backend: &'static str,
    hooks: Vec<String>,
    duration_s: f64,
    /// Packets printed.
    packets: u64,
    #[serde(flatten)]
    kernel: PathCounters,
}

pub fn run(args: TraceArgs) -> Result<()> {
    let stop = signals::stop_flag();
    let expr = args.filter.join(" ");
    let filter = PcapFilter::compile(&expr)?;
    if args.ring_kib < 4 || !args.ring_kib.is_power_of_two() || args.ring_kib > (1 << 20) {
        anyhow::bail!(
            "bad --ring-kib {}: use a power of two from 4 to 1048576",
            args.ring_kib
        );
    }
    let mut netns = Vec::new();
    for spec in &args.netns {
        netns.push(resolve_netns_spec(spec).with_context(|| format!("bad --netns '{spec}'"))?);
    }
    let dev = args.dev.as_deref().map(parse_dev).transpose()?;
    let mark = args.mark.as_deref().map(parse_mark).transpose()?;
    let cgroup = match args.pid {
        Some(pid) => crate::sys::cgroup::id_of(pid).with_context(|| format!("bad --pid {pid}"))?,
        None => 0,
    };
    let facts = Facts::load().context("loading kernel facts")?;
    let btf = Btf::load_vmlinux().context(
        "netwhy trace needs BTF (/sys/kernel/btf/vmlinux): boot a kernel with CONFIG_DEBUG_INFO_BTF=y",
    )?;
    let (hooks, skipped) = path::select_hooks(&btf);
    let consumed = facts.reasons.consumed();
    let started = Instant::now();
    let opts = PathOptions {
        cbpf: filter.as_ref().map(|f| f.prog.clone()).unwrap_or_default(),
        netns,
        dev,
        mark,
        consumed,
        consume_location: path::consume_has_location(&btf),
        hooks,
        ringbuf_bytes: args.ring_kib * 1024,
        track_ns: 2_000_000_000,
        cgroup,
    };
    let probe = PathProbe::start(&opts)?;
    let mut backend = super::steps::attach(probe, &args.steps, &opts.netns)?;
    let names: Vec<String> = backend.hooks().iter().map(|s| s.to_string()).collect();
    for (tp, why) in &skipped {
        eprintln!("netwhy: hook {tp} not used: {why}");
    }
    // Tools and tests wait for this line before generating traffic.
    eprintln!(
        "netwhy: attached to {} tracepoints via {} in {} ms: {}",
        names.len(),
        backend.name(),
        started.elapsed().as_millis(),
        names.join(" ")
    );
    let mut en = Enricher::new(facts.reasons, facts.kallsyms, NetnsNames::scan());
    let mut pcap = match &args.pcapng {
        Some(p) => Some(
            File::create(p)
                .map(BufWriter::new)
                .and_then(PcapngWriter::new)
                .with_context(|| format!("creating {}", p.display()))?,
        ),
        None => None,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let attached = Instant::now();
    let deadline = args
        .duration
        .map(|d| attached + Duration::from_secs_f64(d.max(0.0)));
    let settle = Duration::from_millis(30);
    let timeout = Duration::from_secs_f64(args.timeout.max(0.05));
    let mut limit = Limit::new(args.count.unwrap_or(u64::MAX));
    let mut tl = Timeline::default();
    let mut owners = Owners::default();
    let mut printed = 0u64;
    let mut finishing = false;
    // Drops of traced packets are explained at the end as `netwhy explain`
    // does, with live state read at the first drop of each group.
    let mut session = Session::new(Vec::new());
    let mut drops: Vec<DropEvent> = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            finishing = true;
        }
        let batch = backend
            .next_batch(Duration::from_millis(10))
            .context("reading ring buffer")?;
        let now = Instant::now();
        for raw in &batch {
            let hook = backend.hook(raw.hook);
            let mut step = decode(raw, hook, &mut en, consumed);
            owners.fill(&mut step);
            if let Some(d) = step.as_drop().filter(|_| drops.len() < 10_000) {
                session.on_drop(&d);
                drops.push(d);
            }
            tl.push(step, raw.flags, now);
        }
        let ready = if finishing {
            tl.drain()
        } else {
            tl.ready(now, settle, timeout)
        };
        for p in ready {
            if !limit.admit(&p, now) {
                continue;
            }
            printed += 1;
            match emit(&mut out, pcap.as_mut(), &p, args.output) {
                Ok(()) => {}
                Err(e) if is_broken_pipe(&e) => return Ok(()),
                Err(e) => return Err(e).context("writing output"),
            }
        }
        out.flush().ok();
        if finishing || limit.done(&tl, now, timeout) {
            break;
        }
    }
    if let Some(w) = pcap.as_mut() {
        w.flush().context("writing pcapng")?;
    }
    if let Some(m) = backend.release_functions() {
        eprintln!("{m}");
    }
    let findings = session.finish(&drops);
    let r = (|| -> io::Result<()> {
        match args.output {
            Format::Json => findings.iter().try_for_each(|f| json_line(&mut out, f)),
            Format::Text => {
                if !findings.is_empty() {
                    writeln!(
                        out,
                        "why the traced packets were dropped (as netwhy explain says it):"
                    )?;
                }
                for (i, f) in findings.iter().enumerate() {
                    out.write_all(finding_text(i + 1, f).as_bytes())?;
                }
                Ok(())
            }
        }
    })();
    if let Err(e) = r {
        if !is_broken_pipe(&e) {
            return Err(e).context("writing output");
        }
        return Ok(());
    }
    let s = TraceSummary {
        kind: "summary",
        v: JSON_VERSION,
        backend: backend.name(),
        hooks: names,
        duration_s: started.elapsed().as_secs_f64(),
        packets: printed,
        kernel: backend.counters()?,
    };
    let r = match args.output {
        Format::Json => json_line(&mut out, &s),
        Format::Text => {
            out.flush().ok();
            eprintln!(
                "{} packets in {:.1}s via {} ({} hooks)  matched: {}  steps: {}  lost: {}  untracked (map full): {}  stale: {}",
                s.packets,
                s.duration_s,
                s.backend,
                s.hooks.len(),
                s.kernel.matched,
                s.kernel.steps,
                s.kernel.lost,
                s.kernel.track_full,
                s.kernel.stale
            );
            if s.kernel.clones > 0 {
                eprintln!("copies of traced packets followed: {}", s.kernel.clones);
            }
            Ok(())
        }
    };
    match r.and_then(|_| out.flush()) {
        Err(e) if !is_broken_pipe(&e) => Err(e).context("writing output"),
        _ => Ok(()),
    }
}

/// One packet to stdout (and pcapng).
fn emit<W: Write, P: Write>(
    out: &mut W,
    pcap: Option<&mut PcapngWriter<P>>,
    p: &Packet,
    fmt: Format,
) -> io::Result<()> {
    match fmt {
        Format::Text => out.write_all(render::packet_block(p).as_bytes())?,
        Format::Json => {
            for s in &p.steps {
                json_line(out, s)?;
            }
            if let Some(f) = &p.fate {
                json_line(out, f)?;
            }
        }
    }
    if let Some(w) = pcap {
        for (i, s) in p.steps.iter().enumerate() {
            if s.bytes.is_empty() {
                continue;
            }
            let c = render::pcap_comment(p, i);
            w.packet(s.time_ns, &s.bytes, s.flow.len.unwrap_or(s.len), &c)?;
        }
    }
    Ok(())
}
