//! `netwhy run -- CMD ARGS...`: strace for packets. CMD runs in a cgroup of
//! its own; the path probe traces the packets of sockets created in that
//! cgroup and the packets addressed to their local endpoints (replies,
//! including ones NAT got wrong), and when CMD exits each flow's packets are
//! listed with their fate.
use std::ffi::CString;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::capture::Facts;
use crate::diagnose::session::Session;
use crate::event::{DropEvent, Enricher};
use crate::kernel::btf::Btf;
use crate::kernel::netns::NetnsNames;
use crate::output::finding::finding_text;
use crate::output::{json_line, Format};
use crate::probe::path::{self, PathOptions, PathProbe};
use crate::signals;
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

/// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
/// /sys/fs/cgroup/unified on hybrid systems).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The cgroup v2 id (its directory's inode) of process `pid`.
pub fn cgroup_of(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("no process {pid}"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .with_context(|| format!("process {pid} has no cgroup v2 membership"))?;
    let Some(mount) = cgroup2_mount() else {
        bail!("the cgroup v2 hierarchy is not mounted: mount -t cgroup2 none /sys/fs/cgroup");
    };
    let dir = mount.join(rel.trim_start_matches('/'));
    Ok(fs::metadata(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .ino())
}

pub fn run(args: RunArgs) -> Result<()> {
    let stop = signals::stop_flag();
    let facts = Facts::load().context("loading kernel facts")?;
    let btf = Btf::load_vmlinux().context(
        "netwhy run needs BTF (/sys/kernel/btf/vmlinux): boot a kernel with CONFIG_DEBUG_INFO_BTF=y",
    )?;
    let Some(mount) = cgroup2_mount() else {
        bail!("netwhy run needs the cgroup v2 hierarchy: mount -t cgroup2 none /sys/fs/cgroup");
    };
    let dir = mount.join(format!("netwhy-run-{}", std::process::id()));
    let mut journal = Journal::open().context("opening the undo journal in /run/netwhy")?;
    // Recorded before the change, undone on every exit path (and replayed
    // by the next run if this one is killed).
    journal.record(Action::RemoveCgroup {
        path: dir.display().to_string(),
    })?;
    fs::create_dir(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
    let cgroup = fs::metadata(&dir)?.ino();
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
        dir.display()
    );
    let mut child = spawn_in(&args.cmd, &dir)?;
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

/// Starts `cmd` already inside the cgroup: the child joins it between fork
/// and exec, so not one of its packets predates the tracing.
fn spawn_in(cmd: &[String], dir: &Path) -> Result<std::process::Child> {
    let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())?;
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]);
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (open, write, close) on a path prepared before the fork.
    unsafe {
        c.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = io::Error::last_os_error();
            libc::close(fd);
            if n != 1 {
                return Err(err);
            }
            Ok(())
        });
    }
    c.spawn()
        .with_context(|| format!("starting {}", cmd.join(" ")))
}
