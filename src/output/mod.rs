//! Renderers for the Event model: plain text, the live table, JSON Lines.
#![forbid(unsafe_code)]
pub mod finding;
pub mod lab;
pub mod pcapng;
pub mod sink;
pub mod style;
pub mod table;
pub mod term;
pub mod text;

use std::io::{self, Write};

use serde::Serialize;

// The capture's closing records and the broken-pipe test belong to the
// pipeline; renderers and callers still find them here.
pub use crate::pipeline::is_broken_pipe;
pub use crate::pipeline::summary::{Summary, TraceSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Write one JSON object as a line.
pub fn json_line<W: Write, T: Serialize>(w: &mut W, v: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *w, v)?;
    w.write_all(b"\n")
}

/// Flushes `w`; a reader that went away (`| head`) is not an error.
pub fn flush_quietly(w: &mut impl io::Write) -> io::Result<()> {
    match w.flush() {
        Err(e) if !is_broken_pipe(&e) => Err(e),
        _ => Ok(()),
    }
}
