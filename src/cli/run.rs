//! `netwhy run -- CMD ARGS...`: strace for packets. CMD runs in a cgroup of
//! its own; the path probe traces the packets of sockets created in that
//! cgroup and the packets addressed to their local endpoints (replies,
//! including ones NAT got wrong), and when CMD exits each flow's packets are
//! listed with their fate.
use std::io::{self, BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::Facts;
use crate::diagnose::session::Session;
use crate::event::{DropEvent, Enricher};
use crate::kernel::btf::Btf;
use crate::kernel::netns::NetnsNames;
use crate::output::finding::finding_text;
use crate::output::{json_line, Format};
use crate::probe::path::{self, PathOptions, PathProbe};
use crate::signals;
use crate::sys::cgroup::{self, Hierarchy};
use crate::trace::{decode, flows, Owners, Packet, Timeline};
use crate::undo::{Action, Journal};

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// After CMD exits, keep listening this long for packets in flight.
    #[arg(long, value_name = "SECS", default_value = "0.5")]
    pub linger: f64,
    /// Output format; json is JSON Lines: `step` and `fate` objects per
    /// packet, one `flow` object per local endpoint, then one `finding`
    /// (as `netwhy explain` gives it) per group of drops.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    #[command(flatten)]
    pub steps: super::steps::StepArgs,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<()> {
    let stop = signals::stop_flag();
    let facts = Facts::load().context("loading kernel facts")?;
    let btf = Btf::load_vmlinux().context(
        "netwhy run needs BTF (/sys/kernel/btf/vmlinux): boot a kernel with CONFIG_DEBUG_INFO_BTF=y",
    )?;
    // Found (or privately mounted) before anything is changed, so a
    // failure leaves nothing behind.
    let hier = Hierarchy::find(true).context("netwhy run needs the cgroup v2 hierarchy")?;
    let name = cgroup::unique_name("netwhy-run");
    let mut journal = Journal::open().context("opening the undo journal in /run/netwhy")?;
    // Recorded before the change, undone on every exit path (and replayed
    // by the next run if this one is killed).
    journal.record(Action::RemoveCgroup2 {
        cgroup: hier.child(&name),
        cgroupns: cgroup::namespace(),
    })?;
    let cg = hier
        .create(&name)
        .with_context(|| format!("creating cgroup {}", hier.show(&hier.child(&name))))?;
    let cgroup = cg.id;
    let (hooks, _) = path::select_hooks(&btf);
    let consumed = facts.reasons.consumed();
    let started = Instant::now();
    let opts = PathOptions {
        cbpf: Vec::new(),
        netns: Vec::new(),
        dev: None,
        mark: None,
        consumed,
        consume_location: path::consume_has_location(&btf),
        hooks,
        ringbuf_bytes: 8 << 20,
        track_ns: 2_000_000_000,
        cgroup,
    };
    let mut backend = super::steps::attach(PathProbe::start(&opts)?, &args.steps, &[])?;
    eprintln!(
        "netwhy: attached to {} tracepoints via {} in {} ms; tracing {} in cgroup {}",
        backend.hooks().len(),
        backend.name(),
        started.elapsed().as_millis(),
        args.cmd[0],
        hier.show(&cg.path)
    );
    let mut child = cgroup::spawn_in(&args.cmd, &cg)
        .with_context(|| format!("starting {}", args.cmd.join(" ")))?;
    let mut journal = Some(journal);
    let mut en = Enricher::new(facts.reasons, facts.kallsyms, NetnsNames::scan());
    let mut owners = Owners::default();
    let mut tl = Timeline::default();
    let mut done: Vec<Packet> = Vec::new();
    // Every drop is explained as `netwhy explain` would, with live state
    // read at the first drop (the command's sockets are still open then).
    let mut session = Session::new(Vec::new());
    let mut drops: Vec<DropEvent> = Vec::new();
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    let linger = Duration::from_secs_f64(args.linger.max(0.0));
    loop {
        let batch = backend
            .next_batch(Duration::from_millis(10))
            .context("reading ring buffer")?;
        let now = Instant::now();
        for raw in &batch {
            let mut step = decode(raw, backend.hook(raw.hook), &mut en, consumed);
            owners.fill(&mut step);
            if let Some(d) = step.as_drop() {
                session.on_drop(&d);
                drops.push(d);
            }
            tl.push(step, raw.flags, now);
        }
        done.extend(tl.ready(now, Duration::from_millis(30), Duration::from_secs(2)));
        if exited.is_none() {
            if let Some(st) = child.try_wait()? {
                exited = Some((st, now));
            }
        }
        let stopping = stop.load(Ordering::Relaxed);
        if stopping || exited.is_some_and(|(_, t)| now.duration_since(t) >= linger) {
            break;
        }
    }
    done.extend(tl.drain());
    done.sort_by_key(|p| p.id);
    let status = match exited {
        Some((st, _)) => st,
        None => {
            // Interrupted: the journal's cgroup removal ends the command.
            drop(journal.take());
            child.wait()?
        }
    };
    let report = flows::group(&done);
    let findings = session.finish(&drops);
    let mut out = BufWriter::new(io::stdout().lock());
    let r = (|| -> io::Result<()> {
        match args.output {
            Format::Text => {
                out.write_all(flows::render(&report).as_bytes())?;
                if !findings.is_empty() {
                    writeln!(out, "why (as netwhy explain says it):")?;
                }
                for (i, f) in findings.iter().enumerate() {
                    out.write_all(finding_text(i + 1, f).as_bytes())?;
                }
            }
            Format::Json => {
                for p in &done {
                    for s in &p.steps {
                        json_line(&mut out, s)?;
                    }
                    if let Some(f) = &p.fate {
                        json_line(&mut out, f)?;
                    }
                }
                for f in &report {
                    json_line(&mut out, f)?;
                }
                for f in &findings {
                    json_line(&mut out, f)?;
                }
            }
        }
        out.flush()
    })();
    if let Err(e) = r {
        if !crate::output::is_broken_pipe(&e) {
            return Err(e).context("writing output");
        }
    }
    let c = backend.counters()?;
    if let Some(m) = backend.release_functions() {
        eprintln!("{m}");
    }
    eprintln!(
        "netwhy: {} exited with {}; {} packets, {} flows  lost: {}  untracked (map full): {}",
        args.cmd[0],
        describe(status),
        done.len(),
        report.len(),
        c.lost,
        c.track_full
    );
    drop(journal.take());
    if status.success() {
        Ok(())
    } else {
        std::process::exit(status.code().unwrap_or(128 + status.signal().unwrap_or(0)));
    }
}

fn describe(st: std::process::ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}
