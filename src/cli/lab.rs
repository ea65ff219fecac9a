//! `netwhy lab`: list, run and clean the broken-network scenarios.
use std::io::Write;

use anyhow::{bail, Result};

use crate::cli::HookArg;
use crate::lab::runner;
use crate::lab::scenarios::{self, ALL};
use crate::lab::LabError;
use crate::output::{json_line, lab, Format};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum LabCmd {
    /// List the scenarios.
    List,
    /// Build a scenario, trigger it, show what `netwhy drops` saw, tear down.
    Run(RunArgs),
    /// Remove namespaces and restore sysctls left by killed runs.
    Clean {
        /// Also remove lab namespaces of running netwhy processes.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Scenario names (see `netwhy lab list`).
    pub names: Vec<String>,
    /// Run every scenario.
    #[arg(long)]
    pub all: bool,
    /// Exit non-zero when an observation differs from the expectation.
    #[arg(long)]
    pub check: bool,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    /// Force the kernel hook of the drop probe.
    #[arg(long, value_enum)]
    pub hook: Option<HookArg>,
}

pub fn run(cmd: LabCmd) -> Result<()> {
    match cmd {
        LabCmd::List => {
            for s in ALL {
                println!("{:<24} {}", s.name(), s.summary());
            }
            Ok(())
        }
        LabCmd::Clean { all } => {
            let done = crate::lab::clean(all);
            if done.is_empty() {
                println!("nothing to clean");
            }
            for d in done {
                println!("{d}");
            }
            Ok(())
        }
        LabCmd::Run(a) => run_scenarios(a),
    }
}

fn run_scenarios(a: RunArgs) -> Result<()> {
    crate::signals::stop_flag();
    let chosen: Vec<_> = if a.all {
        ALL.to_vec()
    } else {
        if a.names.is_empty() {
            bail!("name a scenario or use --all (`netwhy lab list` shows them)");
        }
        a.names
            .iter()
            .map(|n| scenarios::find(n).ok_or_else(|| LabError::Unknown(n.clone())))
            .collect::<Result<_, _>>()?
    };
    let mut reports = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for s in chosen {
        if crate::signals::stopping() {
            break;
        }
        crate::log::debug(format_args!("lab: building and running {}", s.name()));
        let r = runner::run(s, a.hook.map(Into::into))?;
        crate::log::debug(format_args!(
            "lab: {} {} in {} ms, {} event(s), lost {}",
            r.scenario,
            if r.pass { "passed" } else { "failed" },
            r.elapsed_ms,
            r.events.len(),
            r.lost
        ));
        match a.output {
            Format::Json => json_line(&mut stdout, &r)?,
            Format::Text => {
                stdout.write_all(lab::report(&r, s.incident()).as_bytes())?;
            }
        }
        stdout.flush()?;
        reports.push(r);
    }
    if reports.len() > 1 && a.output == Format::Text {
        stdout.write_all(lab::tally(&reports).as_bytes())?;
        stdout.flush()?;
    }
    if a.check && reports.iter().any(|r| !r.pass) {
        bail!("observation differs from expectation (see FAIL above)");
    }
    if crate::signals::stopping() {
        bail!("interrupted; lab torn down");
    }
    Ok(())
}
