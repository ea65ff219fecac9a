//! Kernel-side capture. One folder per probe, its BPF C beside the Rust that
//! owns it; the wire structs live once in `include/event.h`.
/// Sets the device and mark filters in a probe's rodata. The drop and path
/// probes declare the same `cfg_ifindex*`, `cfg_ifname*` and `cfg_mark*`
/// globals, but their skeletons generate distinct rodata types, so this is
/// a macro rather than a function.
macro_rules! set_dev_mark_filters {
    ($ro:expr, $dev:expr, $mark:expr) => {{
        let ro = $ro;
        match $dev {
            Some($crate::filter::DevMatch::Index(i)) => {
                ro.cfg_ifindex_filter = true;
                ro.cfg_ifindex = *i;
            }
            Some($crate::filter::DevMatch::Name(n)) => {
                ro.cfg_ifname_filter = true;
                for (dst, src) in ro.cfg_ifname.iter_mut().zip(n.bytes().take(15)) {
                    *dst = src as i8;
                }
            }
            None => {}
        }
        if let Some((v, m)) = $mark {
            ro.cfg_mark_filter = true;
            ro.cfg_mark = v & m;
            ro.cfg_mark_mask = m;
        }
    }};
}

pub mod backend;
pub mod drop;
pub mod path;
pub mod sendfail;
pub mod skbfunc;
pub mod tcverdict;

use std::io;

/// Errors from loading and attaching probes, each phrased with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("netwhy needs root (or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN): run it with sudo")]
    Privilege,
    #[error("BPF is unavailable ({0}): check kernel.unprivileged_bpf_disabled, lockdown and that the kernel has CONFIG_BPF_SYSCALL")]
    BpfUnavailable(String),
    #[error("no BTF at /sys/kernel/btf/vmlinux and no tracefs: boot a kernel with CONFIG_DEBUG_INFO_BTF=y, or mount tracefs (mount -t tracefs nodev /sys/kernel/tracing)")]
    NoHook,
    #[error("loading the {probe} probe failed: {detail}")]
    Load { probe: &'static str, detail: String },
    #[error("attaching {probe} to {hook} failed: {detail}")]
    Attach {
        probe: &'static str,
        hook: String,
        detail: String,
    },
    #[error("reading BPF map {map}: {detail}")]
    Map { map: &'static str, detail: String },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    BackendRefused(String),
}

impl ProbeError {
    /// A failure reading or setting up BPF map `map`.
    pub fn map(map: &'static str, e: impl std::fmt::Display) -> Self {
        ProbeError::Map {
            map,
            detail: e.to_string(),
        }
    }
}

/// True when this process may load tracing BPF programs at all. Checked up
/// front so the user gets one line with the fix instead of a verifier dump.
pub fn have_privilege() -> bool {
    // Effective root, or CAP_BPF (39) + CAP_PERFMON (38) in the effective set.
    if crate::sys::is_root() {
        return true;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << 39) != 0 && eff & (1 << 38) != 0
}
