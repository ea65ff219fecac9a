//! `netwhy run -- CMD ARGS...`: strace for packets. CMD runs in a cgroup of
//! its own; the path probe traces the packets of sockets created in that
//! cgroup and the packets addressed to their local endpoints (replies,
//! including ones NAT got wrong), and when CMD exits each flow's packets are
//! listed with their fate.
use std::io::{self, BufWriter};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture::Facts;
use crate::diagnose::session::Session;
use crate::event::Enricher;
use crate::kernel::netns::NetnsNames;
use crate::output::{sink, Format};
use crate::pipeline::packets::PacketStream;
use crate::pipeline::{drive, finish, Diagnosis, Item, NullSink, Until};
use crate::probe::path::{self, PathOptions, PathProbe};
use crate::sys::cgroup::{self, Hierarchy};
use crate::trace::flows;
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
    // Handlers first: a Ctrl-C during start-up stops cleanly.
    let until = Until::signalled();
    let facts = Facts::load().context("loading kernel facts")?;
    let btf = facts.btf.context(
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
    crate::log::info(format_args!(
        "attached to {} tracepoints via {} in {} ms; tracing {} in cgroup {}",
        backend.hooks().len(),
        backend.name(),
        started.elapsed().as_millis(),
        args.cmd[0],
        hier.show(&cg.path)
    ));
    let mut child = cgroup::spawn_in(&args.cmd, &cg)
        .with_context(|| format!("starting {}", args.cmd.join(" ")))?;
    let mut journal = Some(journal);
    let mut en = Enricher::new(facts.reasons, facts.kallsyms, NetnsNames::scan());
    // Every drop is explained as `netwhy explain` would, with live state
    // read at the first drop (the command's sockets are still open then).
    let diagnosis = Diagnosis::new(Session::new(Vec::new()), usize::MAX);
    let mut src = PacketStream::new(backend.as_mut(), &mut en, consumed, diagnosis)
        .timeout(Duration::from_secs(2))
        .collecting();
    let linger = Duration::from_secs_f64(args.linger.max(0.0));
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    let mut wait_error = None;
    // Stops once the command exited and `linger` passed (or on a signal).
    let mut until = until.or(|| {
        if exited.is_none() {
            match child.try_wait() {
                Ok(Some(st)) => exited = Some((st, Instant::now())),
                Ok(None) => {}
                Err(e) => {
                    wait_error = Some(e);
                    return true;
                }
            }
        }
        exited.is_some_and(|(_, t)| t.elapsed() >= linger)
    });
    // Nothing is printed while the command runs: the report is per flow.
    drive(&mut src, &mut NullSink, &mut until)?;
    drop(until);
    if let Some(e) = wait_error {
        return Err(e).context("waiting for the command");
    }
    let traced = src.finish();
    let status = match exited {
        Some((st, _)) => st,
        None => {
            // Interrupted: the journal's cgroup removal ends the command.
            drop(journal.take());
            child.wait()?
        }
    };
    let mut report = flows::group(&traced.packets);
    // Each drop's first fix is the one its live evidence points to.
    flows::follow_findings(&mut report, &traced.findings);
    // JSON keeps every packet (steps and fate) before the flows; the text
    // report is per flow.
    let opts = sink::Options {
        packets: args.output == Format::Json,
        ..Default::default()
    };
    let mut out = sink::for_format(args.output, BufWriter::new(io::stdout().lock()), opts);
    let mut items: Vec<Item> = traced.packets.iter().map(Item::Packet).collect();
    items.push(Item::Flows(&report));
    items.push(Item::Findings {
        findings: &traced.findings,
        heading: Some("why (as netwhy explain says it):"),
    });
    finish(&mut out, &items)?;
    let c = backend.counters()?;
    if let Some(m) = backend.release_functions() {
        crate::log::info_line(format_args!("{m}"));
    }
    crate::log::info(format_args!(
        "{} exited with {}; {} packets, {} flows  lost: {}  untracked (map full): {}",
        args.cmd[0],
        describe(status),
        traced.packets.len(),
        report.len(),
        c.lost,
        c.track_full
    ));
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
