//! `netwhy bisect --netns BROKEN -- REPRO...`: the minimal set of BROKEN's
//! settings that makes REPRO fail (src/bisect/, docs/bisect.md).
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bisect::{self, runner::Repro, Good, Options};
use crate::output::{sink, Format};
use crate::pipeline::{finish, Item};

#[derive(Debug, Clone, clap::Args)]
pub struct BisectArgs {
    /// The namespace where REPRO fails (an `ip netns` name).
    #[arg(long, value_name = "NAME")]
    pub netns: String,
    /// The good side: `defaults` (a fresh namespace's values) or the
    /// `ip netns` name of a namespace where REPRO works.
    #[arg(
        long,
        value_name = "NETNS|defaults",
        default_value = "defaults",
        conflicts_with = "good_file"
    )]
    pub good: String,
    /// The good side from a file in `sysctl -a` / sysctl.conf form.
    #[arg(long, value_name = "FILE")]
    pub good_file: Option<PathBuf>,
    /// What to compare, comma-separated: `sysctl` (per-namespace and, with
    /// --allow-host-changes, host-global net.* sysctls), `route` (routes of
    /// every table and policy rules), `nft` (the ruleset, per table).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "sysctl"
    )]
    pub what: Vec<String>,
    /// Also bisect host-global settings (a namespace only mirrors them),
    /// changing them on the host only while REPRO runs.
    #[arg(long)]
    pub allow_host_changes: bool,
    /// Runs of REPRO per configuration; the majority decides (use an odd
    /// number for a flaky repro).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub runs: u32,
    /// Seconds one run of REPRO may take; longer counts as broken.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
    /// Do not capture what `explain` sees during the failing repro.
    #[arg(long)]
    pub no_explain: bool,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    /// The reproduction: exit 0 = works, non-zero = broken.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "REPRO"
    )]
    pub repro: Vec<String>,
}

pub fn run(args: BisectArgs) -> Result<()> {
    // Handlers first: Ctrl-C / SIGTERM end the search, and the journal
    // puts everything back on the way out.
    let _ = crate::signals::stop_flag();
    let what = match bisect::What::parse(&args.what) {
        Ok(w) => w,
        Err(e) => bail!("{e}"),
    };
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let good = match (&args.good_file, args.good.as_str()) {
        (Some(f), _) => Good::File(f.clone()),
        (None, "defaults") => Good::Defaults,
        (None, ns) => Good::Netns(ns.to_string()),
    };
    let opts = Options {
        netns: args.netns.clone(),
        good,
        what,
        repro: Repro {
            argv: args.repro.clone(),
            runs: args.runs,
            timeout: Duration::from_secs_f64(args.timeout),
        },
        allow_host: args.allow_host_changes,
        explain: !args.no_explain,
    };
    let json = args.output == Format::Json;
    let mut progress = |s: &bisect::Step| {
        if json {
            let mut out = io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, s);
            let _ = writeln!(out);
            let _ = out.flush();
        } else {
            crate::log::info(format_args!("{}", bisect::report::step_line(s)));
        }
    };
    let outcome = bisect::run(&opts, &mut progress)?;
    let mut stdout = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut stdout, &outcome)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", bisect::report::text(&outcome))?;
    }
    stdout.flush()?;
    drop(stdout);
    if !outcome.explain.is_empty() || opts.explain {
        let mut out = sink::for_format(
            args.output,
            BufWriter::new(io::stdout().lock()),
            Default::default(),
        );
        finish(
            &mut out,
            &[Item::Findings {
                findings: &outcome.explain,
                heading: Some("what explain saw during the failing repro with only these broken:"),
            }],
        )?;
    }
    Ok(())
}
