//! `netwhy lab`: list, run and clean the broken-network scenarios.
use std::io::Write;

use anyhow::{bail, Result};

use crate::cli::HookArg;
use crate::lab::runner::{self, Report};
use crate::lab::scenarios::{self, ALL};
use crate::lab::LabError;
use crate::output::text::event_line;
use crate::output::{json_line, Format};

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
                stdout.write_all(render(&r, s.incident()).as_bytes())?;
            }
        }
        stdout.flush()?;
        reports.push(r);
    }
    if reports.len() > 1 && a.output == Format::Text {
        println!("{:<24} {:<6} {:>8}  OBSERVED", "SCENARIO", "RESULT", "TIME");
        for r in &reports {
            println!(
                "{:<24} {:<6} {:>6}ms  {}",
                r.scenario,
                if r.pass { "pass" } else { "FAIL" },
                r.elapsed_ms,
                observed(r)
            );
        }
        let passed = reports.iter().filter(|r| r.pass).count();
        println!("{} passed, {} failed", passed, reports.len() - passed);
    }
    if a.check && reports.iter().any(|r| !r.pass) {
        bail!("observation differs from expectation (see FAIL above)");
    }
    if crate::signals::stopping() {
        bail!("interrupted; lab torn down");
    }
    Ok(())
}

/// One table cell: the first expectation, or "not affected".
fn observed(r: &Report) -> String {
    if r.not_affected.is_some() {
        return "not affected on this kernel".into();
    }
    r.checks
        .first()
        .map(|c| c.expected.clone())
        .unwrap_or_default()
}

fn render(r: &Report, incident: &str) -> String {
    let mut s = format!(
        "== {}: {}\n   incident: {}\n",
        r.scenario, r.summary, incident
    );
    let ns: Vec<_> = r
        .namespaces
        .iter()
        .map(|(role, _, ino)| format!("{role}={ino}"))
        .collect();
    s += &format!(
        "   netns:    {}\n   trigger:  {}\n",
        ns.join(" "),
        r.trigger
    );
    s += &format!("   netwhy drops saw {} drop(s):\n", r.events.len());
    for e in r.events.iter().take(12) {
        s += &format!("     {}\n", event_line(e));
    }
    if r.events.len() > 12 {
        s += &format!("     ... {} more\n", r.events.len() - 12);
    }
    for n in &r.notes {
        s += &format!("   note:     {n}\n");
    }
    if let Some(why) = &r.not_affected {
        s += &format!("   verdict:  this kernel is not affected: {why}\n");
    }
    if let Some(e) = &r.error {
        s += &format!("   error:    {e}\n");
    }
    for c in &r.checks {
        let (want, verdict) = match c.kind {
            "absent" => ("none".to_string(), if c.ok { "ok" } else { "UNEXPECTED" }),
            "counter" => (
                format!("+{}", c.min),
                if c.ok { "ok" } else { "DID NOT MOVE" },
            ),
            _ => (format!(">= {}", c.min), if c.ok { "ok" } else { "MISSING" }),
        };
        s += &format!(
            "   expect:   {} ({want}): {} {verdict}\n",
            c.expected,
            if c.kind == "counter" {
                format!("moved +{}", c.matched)
            } else {
                format!("{} matched", c.matched)
            }
        );
    }
    let verdict = if r.explained.unwrap_or("none") == r.diagnosis {
        "as the scenario expects"
    } else {
        "WRONG"
    };
    s += &format!(
        "   explain:  {} ({verdict}: {})\n",
        r.explained.unwrap_or("no finding"),
        r.diagnosis
    );
    if let Some(f) = &r.finding {
        // The live evidence and the first fixes; `netwhy explain` has all.
        for e in f.evidence.iter().skip(1).take(3) {
            s += &format!("     seen:   {e}\n");
        }
        for x in f.fix.iter().take(2) {
            s += &format!("     fix:    {x}\n");
        }
    }
    s += &format!(
        "   result:   {} in {} ms, lost {}\n",
        if r.pass { "PASS" } else { "FAIL" },
        r.elapsed_ms,
        r.lost
    );
    for e in &r.cleanup_errors {
        s += &format!("   cleanup:  {e}\n");
    }
    s
}
