//! netwhy leaves tracefs as it found it. The classic tracepoint hook
//! mounts tracefs when it is not mounted; a normal exit (SIGTERM here)
//! unmounts it, and when netwhy is SIGKILLed the mount is journalled, so
//! the next netwhy run unmounts it. Its own test binary: it unmounts
//! tracefs, which tests running beside it may use (it puts the mount back
//! as it found it).
mod common;

use std::process::Command;

use common::{root_or_skip, run, start};

const TRACEFS: &str = "/sys/kernel/tracing";

fn mounted() -> bool {
    Command::new("mountpoint")
        .args(["-q", TRACEFS])
        .status()
        .expect("mountpoint (util-linux)")
        .success()
}

fn unmount_all() {
    while mounted() {
        assert!(Command::new("umount")
            .arg(TRACEFS)
            .status()
            .unwrap()
            .success());
    }
}

/// Puts tracefs back as it was at the start, even when an assert failed.
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        if self.0 && !mounted() {
            let _ = Command::new("mount")
                .args(["-t", "tracefs", "nodev", TRACEFS])
                .status();
        } else if !self.0 {
            unmount_all();
        }
    }
}

#[test]
fn classic_hook_unmounts_tracefs_on_exit_and_after_a_kill() {
    if !root_or_skip("classic_hook_unmounts_tracefs_on_exit_and_after_a_kill") {
        return;
    }
    let _restore = Restore(mounted());
    unmount_all();

    // Normal exit: mounted while attached, unmounted after.
    let r = start(&["drops", "--hook", "tracepoint", "--events"]);
    assert!(
        mounted(),
        "the classic hook needs tracefs: {:?}",
        r.stderr_lines
    );
    r.signal(libc::SIGTERM);
    let (st, _, err) = r.finish();
    assert!(st.success(), "{err:?}");
    assert!(!mounted(), "tracefs left mounted after SIGTERM: {err:?}");

    // SIGKILL: the mount stays, journalled; the next run removes it.
    let mut r = start(&["drops", "--hook", "tracepoint", "--events"]);
    assert!(mounted());
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    assert!(mounted(), "a killed netwhy cannot unmount");
    let out = run(&["drops", "--duration", "0.2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("cleaned up after a killed run: unmount /sys/kernel/tracing"),
        "{err}"
    );
    assert!(
        !mounted(),
        "the next run left the killed run's tracefs: {err}"
    );
}
