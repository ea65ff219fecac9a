//! `netwhy trace FILTER`: follow the packets a tcpdump expression selects
//! through the kernel, one timeline per packet, ending with its fate.
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::Facts;
use crate::diagnose::session::Session;
use crate::event::Enricher;
use crate::filter::pcap::PcapFilter;
use crate::filter::{parse_dev, parse_mark};
use crate::kernel::netns::{resolve_netns_spec, NetnsNames};
use crate::output::pcapng::PcapngWriter;
use crate::output::sink::{self, PcapngSink};
use crate::output::{Format, TraceSummary};
use crate::pipeline::packets::PacketStream;
use crate::pipeline::{drive, finish, Closing, Diagnosis, Ended, Item, Sink, Tee, Until};
use crate::probe::path::{self, PathOptions, PathProbe};

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
    /// Start tracking only in the netns of this Kubernetes pod (NS/NAME or NAME).
    #[arg(long, value_name = "NS/NAME")]
    pub pod: Option<String>,
    /// Start tracking only in the netns of this container (name or id).
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Start tracking only on this device (name, or ifindex).
    #[arg(long, short = 'i', value_name = "DEV")]
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
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u64>,
    /// Output format; json is JSON Lines: a `step` object per hook, a
    /// `fate` per packet, a `summary` at the end.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    /// Also write every step's captured bytes to this pcapng file, each
    /// with a comment naming hook, netns, device and fate. `-` streams it
    /// to stdout (`| wireshark -k -i -`); the report then goes to stderr.
    #[arg(long, short = 'w', value_name = "FILE")]
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

pub fn run(args: TraceArgs) -> Result<()> {
    // Handlers first: a Ctrl-C during start-up stops the capture cleanly.
    let until = Until::signalled();
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
    netns.extend(
        crate::container::Resolver::new()
            .netns_of(args.pod.as_deref(), args.container.as_deref())?,
    );
    let dev = args.dev.as_deref().map(parse_dev).transpose()?;
    let mark = args.mark.as_deref().map(parse_mark).transpose()?;
    let cgroup = match args.pid {
        Some(pid) => crate::sys::cgroup::id_of(pid).with_context(|| format!("bad --pid {pid}"))?,
        None => 0,
    };
    let facts = Facts::load().context("loading kernel facts")?;
    let btf = facts.btf.context(
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
        crate::log::info(format_args!("hook {tp} not used: {why}"));
    }
    // Tools and tests wait for this line before generating traffic.
    crate::log::info(format_args!(
        "attached to {} tracepoints via {} in {} ms: {}",
        names.len(),
        backend.name(),
        started.elapsed().as_millis(),
        names.join(" ")
    ));
    let mut en = Enricher::new(facts.reasons, facts.kallsyms, NetnsNames::scan());
    let stdout = BufWriter::new(io::stdout().lock());
    // `-w -` streams pcap-ng to stdout, as tcpdump does: the text or JSON
    // output then keeps out of its way on stderr, without per-packet lines.
    let (out, pcap): (Box<dyn Sink>, Option<Box<dyn Sink>>) = match &args.pcapng {
        Some(p) if sink::is_stdout(p) => {
            let w = PcapngWriter::new(stdout).context("writing pcapng to stdout")?;
            let quiet = sink::Options {
                packets: false,
                ..Default::default()
            };
            let o = sink::for_format(args.output, BufWriter::new(io::stderr()), quiet);
            (o, Some(Box::new(PcapngSink(w))))
        }
        Some(p) => {
            let w = File::create(p)
                .map(BufWriter::new)
                .and_then(PcapngWriter::new)
                .with_context(|| format!("creating {}", p.display()))?;
            (
                sink::for_format(args.output, stdout, Default::default()),
                Some(Box::new(PcapngSink(w))),
            )
        }
        None => (
            sink::for_format(args.output, stdout, Default::default()),
            None,
        ),
    };
    let mut out: Box<dyn Sink> = match pcap {
        Some(p) => Box::new(Tee(out, p)),
        None => out,
    };
    let mut until = until.after(Instant::now(), args.duration);
    // Drops of traced packets are explained at the end as `netwhy explain`
    // does, with live state read at the first drop of each group.
    let diagnosis = Diagnosis::new(Session::new(Vec::new()), 10_000);
    let mut src = PacketStream::new(backend.as_mut(), &mut en, consumed, diagnosis)
        .limit(args.count)
        .timeout(Duration::from_secs_f64(args.timeout.max(0.05)));
    if drive(&mut src, &mut out, &mut until)? == Ended::ReaderGone {
        return Ok(());
    }
    let traced = src.finish();
    if let Some(m) = backend.release_functions() {
        crate::log::info_line(format_args!("{m}"));
    }
    let s = TraceSummary {
        backend: backend.name(),
        hooks: names,
        duration_s: started.elapsed().as_secs_f64(),
        packets: traced.printed,
        kernel: backend.counters()?,
    };
    finish(
        &mut out,
        &[
            Item::Findings {
                findings: &traced.findings,
                heading: Some("why the traced packets were dropped (as netwhy explain says it):"),
            },
            Item::Closing(Closing::Trace(&s)),
        ],
    )?;
    Ok(())
}
