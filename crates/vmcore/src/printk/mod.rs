//! The kernel log, in the three layouts Linux has used, chosen from which
//! symbols VMCOREINFO exports:
//! - `SYMBOL(prb)`: the lockless `printk_ringbuffer` (5.10+);
//! - `SYMBOL(log_first_idx)`: the structured `log_buf` of `struct printk_log`
//!   records (3.5–5.9);
//! - `SYMBOL(log_end)`: the plain character ring of older kernels.

pub mod plain;
pub mod ringbuffer;
pub mod structured;

use crate::error::{Error, Result};
use crate::kvm::KernelMem;
use crate::record::Record;
use crate::vmcoreinfo::VmcoreInfo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    RingBuffer,
    Structured,
    Plain,
}

impl LogKind {
    pub fn detect(vi: &VmcoreInfo) -> Result<LogKind> {
        if vi.symbol("prb").is_some() {
            Ok(LogKind::RingBuffer)
        } else if vi.symbol("log_first_idx").is_some() {
            Ok(LogKind::Structured)
        } else if vi.symbol("log_buf").is_some() && vi.symbol("log_end").is_some() {
            Ok(LogKind::Plain)
        } else {
            Err(Error::MissingKey(
                "SYMBOL(prb), SYMBOL(log_first_idx) or SYMBOL(log_end): no known log format".into(),
            ))
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            LogKind::RingBuffer => "printk_ringbuffer (5.10+)",
            LogKind::Structured => "structured log_buf (3.5-5.9)",
            LogKind::Plain => "plain log_buf (before 3.5)",
        }
    }
}

/// Records read out of a dump, plus the oddities met on the way (records
/// skipped because they were being overwritten, clamped counters...).
#[derive(Debug, Default)]
pub struct Log {
    pub records: Vec<Record>,
    pub warnings: Vec<String>,
}

pub fn read(kind: LogKind, vi: &VmcoreInfo, mem: &KernelMem) -> Result<Log> {
    match kind {
        LogKind::RingBuffer => ringbuffer::read(vi, mem),
        LogKind::Structured => structured::read(vi, mem),
        LogKind::Plain => plain::read(vi, mem),
    }
}

/// Calls `f` for each record, oldest first, without keeping them: the
/// ring buffer is walked in place; the older layouts are parsed from the
/// buffer copy they need anyway. Returns the warnings.
pub fn walk(
    kind: LogKind,
    vi: &VmcoreInfo,
    mem: &KernelMem,
    f: &mut dyn FnMut(&Record),
) -> Result<Vec<String>> {
    match kind {
        LogKind::RingBuffer => ringbuffer::walk(vi, mem, f),
        LogKind::Structured | LogKind::Plain => {
            let log = read(kind, vi, mem)?;
            log.records.iter().for_each(f);
            Ok(log.warnings)
        }
    }
}

/// Defined with the memory reader, which bounds its borrowed spans by it.
pub use crate::kvm::MAX_LOG_BYTES;
