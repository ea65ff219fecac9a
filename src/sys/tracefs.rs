//! tracefs at its usual place, mounted and unmounted. Bare system calls
//! only: who journals a mount so that a killed run's is undone (the probes,
//! `kernel::reasons`) decides that above, through `undo`, which calls
//! [`unmount`] here when it replays.
use std::io;

/// Where tracefs is mounted when netwhy mounts it (and where distributions
/// do).
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// `mount -t tracefs nodev /sys/kernel/tracing`.
pub fn mount() -> io::Result<()> {
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lazily unmount it ([`super::detach_mount`]). Errors are ignored: there is nothing to do about a mount that is already gone.
pub fn unmount() {
    let _ = super::detach_mount(std::path::Path::new(TRACEFS));
}
