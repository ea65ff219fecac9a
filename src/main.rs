//! The netwhy command line. Errors are printed as one line with the fix,
//! and exit non-zero.
use clap::{CommandFactory, Parser, Subcommand};

use netwhy::cli;

#[derive(Parser)]
#[command(
    name = "netwhy",
    version,
    about = "A packet vanished inside the kernel: where, why, and what to change"
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options every subcommand takes, before or after its name.
#[derive(clap::Args)]
struct Globals {
    /// Also print netwhy's debug lines and libbpf's log on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print results only: no notices ("attached to ...") or summaries on
    /// stderr. Errors and warnings still print.
    #[arg(short, long, global = true)]
    quiet: bool,
}

impl Globals {
    fn apply(&self) {
        netwhy::log::init(netwhy::log::level_from_flags(self.verbose, self.quiet));
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Show packets the kernel drops: live table, or one line per drop.
    Drops(cli::drops::DropsArgs),
    /// Capture drops for a while, then say for each group why and what to change.
    Explain(cli::explain::ExplainArgs),
    /// Serve drop counts, their causes and doctor findings to Prometheus
    /// (/metrics on 127.0.0.1:9789 unless --listen says otherwise).
    Export(cli::export::ExportArgs),
    /// Scan every namespace for known traps (exit 2 warning, 3 critical).
    Doctor(cli::doctor::DoctorArgs),
    /// Broken-network scenarios built from namespaces.
    #[command(subcommand)]
    Lab(cli::lab::LabCmd),
    /// Follow the packets a tcpdump filter selects through the kernel: each
    /// hook, NAT rewrites, and the fate (delivered, transmitted, dropped).
    Trace(cli::trace::TraceArgs),
    /// Run a command and trace only its packets (and replies to it): each
    /// flow's packets and their fate when it exits.
    Run(cli::run::RunArgs),
    /// List the drop reasons of the running kernel, or explain one
    /// (`netwhy reasons NO_SOCKET --at tcp_v4_rcv`).
    Reasons(cli::reasons::ReasonsArgs),
    /// The kernel log (and facts) out of a crash dump, from VMCOREINFO alone.
    #[command(subcommand)]
    Vmcore(netwhy_vmcore::cli::VmcoreCmd),
    /// Find the settings of a namespace that break a reproduction (delta
    /// debugging against a good side; everything is restored).
    Bisect(cli::bisect::BisectArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cli::completions::CompletionsArgs),
    /// Write man pages (netwhy.1, netwhy-SUBCOMMAND.1...) into a directory.
    #[command(hide = true)]
    Man(cli::completions::ManArgs),
    /// Count hits per kernel skb function (kprobe-multi/fentry/kprobe backends).
    #[command(hide = true)]
    Skbfuncs(cli::skbfuncs::SkbFuncsArgs),
}

// `netwhy vmcore ...` alone: parsed without building the whole command
// tree. In a kdump initramfs on a dead box every millisecond of a one-shot
// `vmcore dmesg` is start-up; the vmcore benchmark counts it.
#[derive(Parser)]
#[command(
    name = "netwhy vmcore",
    version,
    about = "The kernel log (and facts) out of a crash dump, from VMCOREINFO alone"
)]
struct VmcoreOnly {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    cmd: netwhy_vmcore::cli::VmcoreCmd,
}

fn main() {
    let mut argv = std::env::args_os();
    if argv.nth(1).is_some_and(|a| a == "vmcore") {
        let v = VmcoreOnly::parse_from(std::iter::once("netwhy vmcore".into()).chain(argv));
        v.globals.apply();
        clean_after_killed_runs();
        if let Err(e) = netwhy_vmcore::cli::run(v.cmd) {
            eprintln!("netwhy: error: {}", netwhy_vmcore::cli::error_line(&e));
            std::process::exit(1);
        }
        return;
    }
    // The multi-line version (libbpf, kernel, hook, BTF, libpcap) is for
    // bug reports; clap's one-line `version` stays for `netwhy help`.
    if matches!(std::env::args().nth(1).as_deref(), Some("--version" | "-V")) {
        print!("{}", cli::version::text());
        return;
    }
    let args = Cli::parse();
    args.globals.apply();
    netwhy::output::style::init();
    // `lab clean` does the same and reports it on stdout; completions and
    // man pages are generated at build time, where nothing is left to undo.
    if !matches!(
        args.cmd,
        Cmd::Lab(cli::lab::LabCmd::Clean { .. }) | Cmd::Completions(_) | Cmd::Man(_)
    ) {
        clean_after_killed_runs();
    }
    let r = match args.cmd {
        Cmd::Drops(a) => cli::drops::run(a),
        Cmd::Explain(a) => cli::explain::run(a),
        Cmd::Export(a) => cli::export::run(a),
        Cmd::Doctor(a) => cli::doctor::run(a),
        Cmd::Lab(c) => cli::lab::run(c),
        Cmd::Reasons(a) => cli::reasons::run(a),
        Cmd::Trace(a) => cli::trace::run(a),
        Cmd::Run(a) => cli::run::run(a),
        Cmd::Vmcore(c) => netwhy_vmcore::cli::run(c),
        Cmd::Completions(a) => cli::completions::completions(a, Cli::command()),
        Cmd::Man(a) => cli::completions::man(a, Cli::command()),
        Cmd::Skbfuncs(a) => cli::skbfuncs::run(a),
        Cmd::Bisect(a) => cli::bisect::run(a),
    };
    if let Err(e) = r {
        eprintln!("netwhy: error: {}", netwhy_vmcore::cli::error_line(&e));
        std::process::exit(1);
    }
}

/// Undo what a SIGKILLed netwhy left behind (namespaces, sysctls, cgroups,
/// a tracefs mount: its journal; lab namespaces whose creator died before
/// journalling could cover them) before anything else. Every command does
/// it, readers too: after a kill, the next netwhy of any kind leaves the
/// system clean. Without leftovers it costs a stat and a directory read.
/// Only root can undo those changes (and only root could have made them).
fn clean_after_killed_runs() {
    if !netwhy::sys::is_root() {
        return;
    }
    for done in netwhy::lab::clean(false) {
        netwhy::log::info(format_args!("cleaned up after a killed run: {done}"));
    }
}
