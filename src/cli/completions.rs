//! `netwhy completions SHELL` and `netwhy man --dir DIR`: shell completion
//! scripts and man pages, generated from the same clap definitions that
//! parse the command line, so they cannot drift from it. scripts/setup
//! installs both; packagers call them the same way.
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap_complete::Shell;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Install (as root), e.g.:\n  \
netwhy completions bash > /usr/share/bash-completion/completions/netwhy\n  \
netwhy completions zsh > /usr/local/share/zsh/site-functions/_netwhy\n  \
netwhy completions fish > /usr/share/fish/vendor_completions.d/netwhy.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Directory for the pages: netwhy.1, then netwhy-SUBCOMMAND.1 for each
    /// subcommand (netwhy-lab-run.1...). Created if missing.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes the completion script for `a.shell` to stdout.
pub fn completions(a: CompletionsArgs, cmd: clap::Command) -> Result<()> {
    let mut cmd = visible(&cmd);
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "netwhy", &mut out);
    crate::output::flush_quietly(&mut out).context("writing completions")?;
    Ok(())
}

/// `cmd` without its hidden subcommands (development tools, `man`), which
/// clap_complete would otherwise offer on every Tab. clap cannot remove a
/// subcommand, so the tree is rebuilt from what completion reads: names,
/// help, arguments (with their values) and groups. Names are leaked: clap
/// takes `&'static str` (without its `string` feature), and the process
/// ends once the script is printed.
fn visible(cmd: &clap::Command) -> clap::Command {
    let leak = |s: &str| -> &'static str { Box::leak(s.into()) };
    let mut c = clap::Command::new(leak(cmd.get_name()))
        .args(cmd.get_arguments().cloned())
        .groups(cmd.get_groups().cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(visible),
        )
        .visible_aliases(cmd.get_visible_aliases().map(leak));
    if let Some(about) = cmd.get_about() {
        c = c.about(about.clone());
    }
    if let Some(v) = cmd.get_version() {
        c = c.version(leak(v));
    }
    c
}

/// Writes one man page per (visible) command into `a.dir`, then lists
/// them on stdout (one path a line), so a script can install what it got.
pub fn man(a: ManArgs, cmd: clap::Command) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("writing man pages to {}", a.dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&a.dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("netwhy") && n.ends_with(".1"))
        })
        .collect();
    pages.sort();
    let mut out = std::io::stdout().lock();
    for p in pages {
        writeln!(out, "{}", p.display())?;
    }
    crate::output::flush_quietly(&mut out)?;
    Ok(())
}
