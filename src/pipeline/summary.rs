//! The closing records of a capture: what the kernel counted (lost events
//! are always part of it), as every sink renders it.
use serde::Serialize;

use crate::probe::drop::Counters;
use crate::probe::path::PathCounters;

/// The closing record of a capture. Lost events are always part of it.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct Summary {
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

crate::json_record!(Summary, "summary");

impl Summary {
    pub fn new(
        hook: &'static str,
        duration_s: f64,
        c: &Counters,
        events: u64,
        groups: usize,
    ) -> Self {
        Summary {
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
#[serde(remote = "Self")]
pub struct TraceSummary {
    pub backend: &'static str,
    pub hooks: Vec<String>,
    pub duration_s: f64,
    /// Packets printed.
    pub packets: u64,
    #[serde(flatten)]
    pub kernel: PathCounters,
}

crate::json_record!(TraceSummary, "summary");
