//! One line per drop, for `--events` and the lab.
use std::fmt::Write as _;

use crate::event::DropEvent;
use crate::output::style::{self, Role};

/// `HH:MM:SS.micros REASON at symbol+off netns dev flow len [task]`, the
/// reason coloured when stdout takes colour ([`style::stdout`]).
pub fn event_line(e: &DropEvent) -> String {
    let mut s = String::with_capacity(160);
    let secs = e.time_ns / 1_000_000_000;
    let micros = (e.time_ns % 1_000_000_000) / 1000;
    let (h, m, sec) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let _ = write!(
        s,
        "{h:02}:{m:02}:{sec:02}.{micros:06} {} at {}",
        style::stdout().paint(Role::Reason, &e.reason),
        e.location
    );
    let _ = write!(
        s,
        " netns={}{}",
        netns_label(e.netns, e.netns_name.as_deref()),
        container_suffix(e.container.as_deref())
    );
    if let Some(d) = &e.dev {
        let _ = write!(s, " dev={d}({})", e.ifindex);
    }
    let _ = write!(s, " {} len={}", e.flow, e.len);
    if e.mark != 0 {
        let _ = write!(s, " mark={:#x}", e.mark);
    }
    if e.task.context == crate::event::TaskContext::Process {
        let _ = write!(s, " by {}[{}]", e.task.comm, e.task.pid);
    }
    s
}

pub use crate::event::{container_suffix, netns_label};
