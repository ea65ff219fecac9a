//! Stand-alone `netwhy-vmcore`: the same subcommands as `netwhy vmcore`, for
//! kdump initramfs images and the integration tests.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "netwhy-vmcore",
    version,
    about = "The kernel log out of a crash dump, from VMCOREINFO alone"
)]
struct Cli {
    #[command(subcommand)]
    cmd: netwhy_vmcore::cli::VmcoreCmd,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = netwhy_vmcore::cli::run(cli.cmd) {
        // One line: the chain joined, never a backtrace.
        eprintln!("netwhy-vmcore: {}", netwhy_vmcore::cli::error_line(&e));
        std::process::exit(1);
    }
}
