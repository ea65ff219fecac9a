//! `netwhy doctor`: scan namespaces for known traps; exit code = worst severity.
use std::io;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::doctor::{self, report, Options, Target};
use crate::output::Format;

/// Exit status: 0 nothing found (or only info), 2 warning, 3 critical,
/// 1 error.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Exit status: 0 nothing found or only info, 2 worst finding is a \
warning, 3 worst finding is critical, 1 error (bad arguments, a --netns that cannot be entered)."
)]
pub struct DoctorArgs {
    /// Only this network namespace: inode number, `ip netns` name, `init`
    /// or a path such as /proc/PID/ns/net. Repeatable. Default: the host
    /// and every namespace with a name or a process inside.
    #[arg(long, value_name = "NS")]
    pub netns: Vec<String>,
    /// Only the network namespace of this Kubernetes pod: NAMESPACE/NAME,
    /// or NAME in any namespace (from the container runtimes' records).
    #[arg(long, value_name = "NS/NAME")]
    pub pod: Option<String>,
    /// Only the network namespace of this container (name or id).
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Sample counters over this many seconds for the "rising" checks
    /// (rx drops, listen overflows); 0 disables them.
    #[arg(long, value_name = "SECS", default_value = "1")]
    pub window: f64,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
}

pub fn run(args: DoctorArgs) -> Result<()> {
    if !(args.window.is_finite() && (0.0..=60.0).contains(&args.window)) {
        bail!(
            "bad --window '{}': give seconds from 0 to 60 (0 disables the rising checks)",
            args.window
        );
    }
    let mut specs = args.netns.clone();
    if args.pod.is_some() || args.container.is_some() {
        let found = crate::container::Resolver::new()
            .netns_of(args.pod.as_deref(), args.container.as_deref())?;
        specs.extend(found.iter().map(u32::to_string));
    }
    let targets = specs
        .iter()
        .map(|s| Target::resolve(s))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = Options {
        targets,
        window: Duration::from_secs_f64(args.window),
    };
    crate::log::debug(format_args!(
        "doctor: {} target(s) (none: every namespace), window {:?}",
        opts.targets.len(),
        opts.window
    ));
    let started = std::time::Instant::now();
    let mut rep = doctor::run(&opts).context("netwhy doctor")?;
    rep.name_containers(&mut crate::container::Resolver::new());
    crate::log::debug(format_args!(
        "doctor: {} namespace(s), {} finding(s), {} skipped, in {} ms",
        rep.namespaces,
        rep.findings.len(),
        rep.skipped.len(),
        started.elapsed().as_millis()
    ));
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.output {
        Format::Json => report::json(&mut out, &rep)?,
        Format::Text => report::text(&mut out, &rep)?,
    }
    crate::output::flush_quietly(&mut out)?;
    let code = doctor::exit_code(rep.worst());
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}
