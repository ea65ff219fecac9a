//! System interfaces netwhy reaches below the usual tools, each in one
//! place behind a small safe wrapper, so that the rest of netwhy (and the
//! pure modules, which forbid `unsafe`) keeps to what it does with them:
//! - [`cgroup`]: the cgroup v2 hierarchy, found or privately mounted, and
//!   starting a command inside a cgroup;
//! - [`netns`]: a thread inside another network namespace;
//! - [`tracefs`]: mounting and unmounting tracefs;
//! - [`bpf`]: what the kernel says about a loaded BPF program;
//! - [`libpcap`]: libpcap's filter compiler, dlopen'ed on first use;
//! - here: the effective uid, and random bits for unique names.
pub mod bpf;
pub mod cgroup;
#[cfg(feature = "pcap-filter")]
pub mod libpcap;
pub mod netns;
pub mod tracefs;

/// Detach the mount at `path` (umount2 with MNT_DETACH: never blocks on
/// users; the kernel finishes once the last one is gone).
pub fn detach_mount(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `cmd`'s child die with this process (PR_SET_PDEATHSIG), and not
/// start at all if this process is already gone: a helper that outlived a
/// SIGKILLed netwhy (an `ip netns add` still running) would change the
/// system after the next run replayed the journal, and nothing would undo
/// it.
pub fn die_with_us(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls async-signal-safe functions (prctl,
    // getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                return Err(std::io::Error::other("netwhy exited"));
            }
            Ok(())
        })
    };
}

/// Whether this process runs as (effective) root: what changing namespaces,
/// sysctls, mounts and cgroups needs.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// 32 random bits from getrandom(2), for names that must not collide with
/// another process's; 0 when the call fails, which costs only uniqueness.
pub fn random_u32() -> u32 {
    let mut r = [0u8; 4];
    // SAFETY: getrandom writes at most r.len() bytes into r (left zero on
    // failure).
    unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
    u32::from_ne_bytes(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_carry_the_pid_and_differ() {
        let a = cgroup::unique_name("netwhy-run");
        let b = cgroup::unique_name("netwhy-run");
        let pid = std::process::id();
        let prefix = format!("netwhy-run-{pid}-");
        assert!(a.starts_with(&prefix), "{a}");
        let hex = &a[prefix.len()..];
        assert_eq!(hex.len(), 8, "{a}");
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        // 1 in 2^32 to collide when getrandom works; always when it fails.
        assert_ne!(a, b);
    }

    #[test]
    fn spawn_in_starts_the_command_inside_and_refuses_an_empty_one() {
        // Without root there is no cgroup to spawn into.
        if !is_root() {
            return;
        }
        let Ok(h) = cgroup::Hierarchy::find(true) else {
            return;
        };
        let name = cgroup::unique_name("netwhy-test");
        let cg = h.create(&name).expect("create cgroup");
        let e = cgroup::spawn_in(&[], &cg).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let cmd = ["sleep".to_string(), "5".to_string()];
        let mut child = cgroup::spawn_in(&cmd, &cg).expect("spawn");
        let seen = cgroup::path_of(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        let path = cg.path.clone();
        drop(cg);
        h.remove(&path).expect("remove cgroup");
        assert_eq!(
            seen.unwrap(),
            path,
            "the child runs in the cgroup from exec on"
        );
    }

    #[test]
    fn a_netns_thread_sees_the_namespace_it_entered() {
        use std::os::unix::fs::MetadataExt;
        if !is_root() {
            return;
        }
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let file = std::fs::File::open("/proc/self/ns/net").unwrap();
        let seen = netns::run_in(file, || {
            std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
        })
        .unwrap();
        assert_eq!(seen, own);
        let file = std::fs::File::open("/proc/self/ns/net").unwrap();
        let r = netns::run_in(file, || -> () { panic!("inside") });
        assert!(matches!(r, Err(netns::EnterError::Panicked)));
    }
}
