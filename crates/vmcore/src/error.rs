//! One error type for the library. Every variant renders as a single line that
//! names the problem, because the caller (often a person inside a kdump kernel)
//! needs to know *what* in the dump is wrong, not a backtrace.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("read of {len} bytes at file offset {offset:#x} failed: {source}")]
    Io {
        offset: u64,
        len: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("file is truncated: needs {need:#x} bytes, has {have:#x} ({what})")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error("not a crash dump: {0}")]
    NotADump(String),
    #[error("malformed ELF dump: {0}")]
    BadElf(String),
    #[error("malformed kdump-compressed dump: {0}")]
    BadKdump(String),
    #[error("page {pfn:#x} is compressed with {method}, which this build cannot decompress")]
    Unsupported { pfn: u64, method: &'static str },
    #[error("page {pfn:#x} does not decompress ({method}): {detail}")]
    Decompress {
        pfn: u64,
        method: &'static str,
        detail: String,
    },
    #[error("the dump has no VMCOREINFO note (qemu needs `-device vmcoreinfo` and the guest's qemu_fw_cfg module)")]
    NoVmcoreinfo,
    #[error("VMCOREINFO lacks {0}")]
    MissingKey(String),
    #[error("VMCOREINFO value for {key} is not a number: {value:?}")]
    BadValue { key: String, value: String },
    #[error("physical address {0:#x} is not in the dump")]
    PhysNotInDump(u64),
    #[error("virtual address {0:#x} cannot be translated: {1}")]
    Translate(u64, String),
    #[error("kernel log: {0}")]
    BadLog(String),
    #[error("{what} of {value} exceeds the limit of {limit}")]
    TooBig {
        what: &'static str,
        value: u64,
        limit: u64,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
