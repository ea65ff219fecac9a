//! Which kernel hook a probe attaches to, chosen by probing this kernel.
//!
//! `tp_btf` (BTF-typed raw tracepoint) is preferred: it needs no tracefs and
//! hands the program typed pointers. The classic tracepoint is the fallback
//! for kernels or setups without usable vmlinux BTF. Kprobe-family backends
//! (for `trace`) will join this list; this machine's kernel has none.
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    TpBtf,
    Tracepoint,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::TpBtf => "tp_btf",
            Hook::Tracepoint => "tracepoint",
        }
    }
}

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
pub use crate::sys::tracefs::TRACEFS;

/// tracefs that netwhy mounted: journalled before the mount, so a later
/// run unmounts it if this one is killed, and unmounted when dropped.
pub struct TracefsMount {
    journal: Option<crate::undo::Journal>,
}

impl Drop for TracefsMount {
    fn drop(&mut self) {
        // The journal's drop replays UnmountTracefs; without one (no
        // /run/netwhy) unmount directly.
        if self.journal.take().is_none() {
            crate::sys::tracefs::unmount();
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
    let journal = crate::undo::Journal::open().ok().and_then(|mut j| {
        j.record(crate::undo::Action::UnmountTracefs).ok()?;
        Some(j)
    });
    let mount = if crate::sys::tracefs::mount().is_ok() {
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

/// Hooks usable for the skb:kfree_skb tracepoint, best first. The classic
/// tracepoint is listed whenever tracefs exists or can be mounted at attach.
pub fn drop_hooks() -> Vec<Hook> {
    let mut v = Vec::new();
    if Path::new(VMLINUX_BTF).exists() {
        v.push(Hook::TpBtf);
    }
    if Path::new(TRACEFS).exists() {
        v.push(Hook::Tracepoint);
    }
    v
}
