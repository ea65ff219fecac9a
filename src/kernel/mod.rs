//! Facts about the running kernel: symbol addresses, BTF types and enums,
//! drop-reason names and network-namespace names.
//!
//! Everything here is read from the live system (`/proc/kallsyms`,
//! `/sys/kernel/btf/*`, tracefs, `/proc/*/ns/net`) because numbers such as
//! drop-reason values change between kernels: a table compiled into netwhy
//! would silently mislabel drops on the next kernel. Reading changes
//! nothing, with one exception: without BTF, `reasons` mounts tracefs for
//! the one file it reads when it is not mounted (journalled, and unmounted
//! again right after).
pub mod btf;
pub mod kallsyms;
pub mod netns;
pub mod reasons;

use std::io;
use std::path::PathBuf;

pub use btf::{Btf, BtfError, FuncParam};
pub use kallsyms::{Kallsyms, Symbol};
pub use netns::{current_netns, resolve_netns_spec, NetnsNames};
pub use reasons::{DropReasons, ReasonSource};

/// Errors from reading kernel facts. Each message names the fix when there
/// is one, because these surface directly to the user at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Reading a kernel interface file failed. The path is kept because
    /// "permission denied" alone does not say which file needs root.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `/proc/kallsyms` listed only zero addresses: kptr_restrict hides them
    /// from this process, so every location would resolve to nothing.
    #[error("kernel addresses hidden: run as root or set kernel.kptr_restrict=0")]
    KallsymsHidden,
    /// `/proc/kallsyms` had no text symbols at all (CONFIG_KALLSYMS off, or
    /// not a kallsyms file).
    #[error("no kernel text symbols in {0}: the kernel may be built without CONFIG_KALLSYMS")]
    NoSymbols(String),
    /// BTF bytes were malformed.
    #[error("BTF: {0}")]
    Btf(#[from] BtfError),
    /// A BTF file was malformed; the path says which module to suspect.
    #[error("parsing BTF {path}: {source}")]
    BtfParse {
        path: PathBuf,
        #[source]
        source: BtfError,
    },
    /// BTF lacks an enum netwhy needs (kernel too old for the feature).
    #[error("BTF has no enum {0}: kernel older than 5.17?")]
    MissingEnum(String),
    /// The tracefs format file did not contain a usable drop-reason table.
    #[error("no drop-reason table in the kfree_skb tracepoint format: {0}")]
    TracefsFormat(String),
    /// A user-given network namespace could not be found.
    #[error("unknown network namespace '{spec}': {hint}")]
    UnknownNetns { spec: String, hint: String },
}

impl KernelError {
    /// Wraps an I/O error with the path it came from.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        KernelError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The running kernel's release (`uname -r`), read once: it cannot change
/// while netwhy runs, and the exporter's cause worker asks for every sample.
pub fn release() -> Option<&'static str> {
    static RELEASE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    RELEASE
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .as_deref()
}
