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

/// Make the skb tracepoints visible, mounting tracefs at its usual place if
/// needed. Returns (visible, mounted_by_us): whoever mounted it unmounts it
/// when done, so netwhy leaves the system as it found it. tp_btf does not
/// need tracefs; only the classic tracepoint hook calls this.
pub fn ensure_tracefs() -> (bool, bool) {
    let probe = Path::new(TRACEFS).join("events/skb/kfree_skb");
    if probe.exists() {
        return (true, false);
    }
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
    (probe.exists(), rc == 0)
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
