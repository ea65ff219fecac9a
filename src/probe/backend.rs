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
pub const TRACEFS: &str = "/sys/kernel/tracing";

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
            unmount_tracefs();
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
    let src = c"nodev";
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let mount = if rc == 0 {
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

/// Undo [`ensure_tracefs`]'s mount.
pub fn unmount_tracefs() {
    // SAFETY: a valid NUL-terminated path. MNT_DETACH: never block on users.
    unsafe { libc::umount2(c"/sys/kernel/tracing".as_ptr(), libc::MNT_DETACH) };
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
