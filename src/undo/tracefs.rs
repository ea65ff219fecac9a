//! A tracefs mount that is journalled before it is made: the probes need
//! the skb tracepoints visible, and `kernel::reasons` reads one format
//! file. Both leave the system as they found it, also when killed: the
//! mount's journal entry makes the next netwhy unmount it.
use std::path::Path;

use crate::sys::tracefs::{self, TRACEFS};

/// tracefs that netwhy mounted: journalled before the mount, so a later
/// run unmounts it if this one is killed, and unmounted when dropped.
pub struct TracefsMount {
    journal: Option<super::Journal>,
}

impl Drop for TracefsMount {
    fn drop(&mut self) {
        // The journal's drop replays UnmountTracefs; without one (no
        // /run/netwhy) unmount directly.
        if self.journal.take().is_none() {
            tracefs::unmount();
        }
    }
}

/// Make the skb tracepoints visible, mounting tracefs at its usual place if
/// needed. Returns whether they are visible, and the mount if netwhy made
/// it: whoever mounted it unmounts it when done, so netwhy leaves the
/// system as it found it.
pub fn ensure_tracefs() -> (bool, Option<TracefsMount>) {
    let probe = Path::new(TRACEFS).join("events/skb/kfree_skb");
    if probe.exists() {
        return (true, None);
    }
    let journal = super::Journal::open().ok().and_then(|mut j| {
        j.record(super::Action::UnmountTracefs).ok()?;
        Some(j)
    });
    let mount = if tracefs::mount().is_ok() {
        Some(TracefsMount { journal })
    } else {
        // Nothing to undo: forget the record without replaying it.
        if let Some(mut j) = journal {
            j.forget();
        }
        None
    };
    (probe.exists(), mount)
}
