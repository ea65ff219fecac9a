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
