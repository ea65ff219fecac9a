//! Renderers for the Event model: plain text, the live table, JSON Lines.
pub mod finding;
pub mod json;
pub mod pcapng;
pub mod sink;
pub mod style;
pub mod table;
pub mod term;
pub mod text;

use std::io::{self, Write};

use serde::Serialize;

use crate::event::JSON_VERSION;
use crate::probe::drop::Counters;
use crate::probe::path::PathCounters;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The closing record of a capture. Lost events are always part of it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub v: u32,
    /// Hook the probe ran on (tp_btf, tracepoint).
    pub hook: &'static str,
    pub duration_s: f64,
    /// Drops that passed the filters (kernel count).
    pub drops: u64,
    /// Events received by user space (--events).
    pub events: u64,
    /// Known-harmless drops not reported (see `--all`).
    pub hidden: u64,
    /// Events the ring buffer had no room for.
    pub lost: u64,
    /// Drops not grouped because the aggregate map was full.
    pub agg_full: u64,
    /// Drops netwhy's own syscalls caused (its netlink lookups...): never
    /// reported as findings, counted so nothing disappears silently.
    pub own: u64,
    pub groups: usize,
}

impl Summary {
    pub fn new(
        hook: &'static str,
        duration_s: f64,
        c: &Counters,
        events: u64,
        groups: usize,
    ) -> Self {
        Summary {
            kind: "summary",
            v: JSON_VERSION,
            hook,
            duration_s,
            drops: c.seen,
            events,
            hidden: c.hidden,
            lost: c.lost,
            agg_full: c.agg_full,
            own: c.own,
            groups,
        }
    }

    /// One line for humans; lost and hidden are never left out.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} drops in {:.1}s via {}  hidden: {} (known-harmless, --all shows them)  lost: {}",
            self.drops, self.duration_s, self.hook, self.hidden, self.lost
        );
        if self.agg_full > 0 {
            s.push_str(&format!("  ungrouped (map full): {}", self.agg_full));
        }
        if self.own > 0 {
            s.push_str(&format!("  netwhy's own: {}", self.own));
        }
        s
    }
}

/// The closing record of `trace`.
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub v: u32,
    pub backend: &'static str,
    pub hooks: Vec<String>,
    pub duration_s: f64,
    /// Packets printed.
    pub packets: u64,
    #[serde(flatten)]
    pub kernel: PathCounters,
}

/// Write one JSON object as a line.
pub fn json_line<W: Write, T: Serialize>(w: &mut W, v: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *w, v)?;
    w.write_all(b"\n")
}

/// True when the error means the reader went away (`| head`): we stop quietly.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Flushes `w`; a reader that went away (`| head`) is not an error.
pub fn flush_quietly(w: &mut impl io::Write) -> io::Result<()> {
    match w.flush() {
        Err(e) if !is_broken_pipe(&e) => Err(e),
        _ => Ok(()),
    }
}
