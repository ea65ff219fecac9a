//! Subcommands: thin adapters from parsed arguments to the library.
pub mod bisect;
pub mod completions;
pub mod doctor;
pub mod drops;
pub mod explain;
pub mod export;
pub mod lab;
pub mod reasons;
pub mod run;
pub mod skbfuncs;
pub mod steps;
pub mod tcverdicts;
pub mod trace;
pub mod version;

/// `--hook` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookArg {
    TpBtf,
    Tracepoint,
}

impl From<HookArg> for crate::probe::backend::Hook {
    fn from(h: HookArg) -> Self {
        match h {
            HookArg::TpBtf => crate::probe::backend::Hook::TpBtf,
            HookArg::Tracepoint => crate::probe::backend::Hook::Tracepoint,
        }
    }
}
