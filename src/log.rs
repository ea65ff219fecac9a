//! What netwhy says on stderr besides its results, and how much of it.
//!
//! stdout carries results (events, tables, findings, JSON); stderr carries
//! everything else. `-q` keeps stdout and the lines a user cannot do
//! without (errors, warnings that some results are missing or wrong);
//! `-v` adds netwhy's debug lines and libbpf's own log, which is where a
//! verifier rejection or a missing BTF type is explained. One process-wide
//! level, set once from the command line, so library code deep in a probe
//! need not carry a logger around.
#![forbid(unsafe_code)]

use std::fmt::Display;
use std::sync::atomic::{AtomicU8, Ordering};

/// How much goes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `-q`: errors and warnings only.
    Quiet = 0,
    /// Default: notices too ("attached to ...", summaries on stderr).
    Normal = 1,
    /// `-v`: netwhy's debug lines and libbpf's log (its debug level too).
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Normal as u8);

/// Sets the level for the rest of the process and connects libbpf's log
/// to it: at `Verbose` libbpf prints everything (debug included) with a
/// `libbpf: ` prefix; at `Quiet` only its warnings; at `Normal` libbpf's
/// own default (info and warnings) is left as it is.
pub fn init(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    use libbpf_rs::PrintLevel;
    match level {
        Level::Verbose => {
            libbpf_rs::set_print(Some((PrintLevel::Debug, libbpf_line)));
        }
        Level::Quiet => {
            libbpf_rs::set_print(Some((PrintLevel::Warn, libbpf_line)));
        }
        Level::Normal => {}
    }
}

/// The level from `-v` (count) and `-q` flags; `-q` wins, since a script
/// that asked for quiet output must not get chatter it cannot parse.
pub fn level_from_flags(verbose: u8, quiet: bool) -> Level {
    if quiet {
        Level::Quiet
    } else if verbose > 0 {
        Level::Verbose
    } else {
        Level::Normal
    }
}

pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Level::Quiet,
        1 => Level::Normal,
        _ => Level::Verbose,
    }
}

pub fn verbose() -> bool {
    level() >= Level::Verbose
}

pub fn quiet() -> bool {
    level() == Level::Quiet
}

/// A notice: `netwhy: {msg}` on stderr, unless `-q`.
pub fn info(msg: impl Display) {
    if !quiet() {
        eprintln!("netwhy: {msg}");
    }
}

/// A notice printed as it is (a capture's summary line), unless `-q`.
pub fn info_line(msg: impl Display) {
    if !quiet() {
        eprintln!("{msg}");
    }
}

/// `netwhy: warning: {msg}`, always: a warning says results are missing
/// or partial, which `-q` users need as much as anyone.
pub fn warn(msg: impl Display) {
    eprintln!("netwhy: warning: {msg}");
}

/// `netwhy: debug: {msg}`, only with `-v`. Off, a call costs a load and a
/// branch (pass `format_args!`, which formats nothing until printed);
/// build expensive text behind `if log::verbose()`.
pub fn debug(msg: impl Display) {
    if verbose() {
        eprintln!("netwhy: debug: {msg}");
    }
}

/// libbpf's lines carry their own `libbpf: ` prefix and newline; one
/// `eprint!` keeps a line whole when threads log at once.
fn libbpf_line(_level: libbpf_rs::PrintLevel, msg: String) {
    if msg.ends_with('\n') {
        eprint!("{msg}");
    } else {
        eprintln!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_wins_over_verbose() {
        assert_eq!(level_from_flags(0, false), Level::Normal);
        assert_eq!(level_from_flags(2, false), Level::Verbose);
        assert_eq!(level_from_flags(1, true), Level::Quiet);
        assert_eq!(level_from_flags(0, true), Level::Quiet);
    }
}
