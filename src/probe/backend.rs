//! Which kernel hook a probe attaches to, chosen by probing this kernel.
//!
//! `tp_btf` (BTF-typed raw tracepoint) is preferred: it needs no tracefs and
//! hands the program typed pointers. The classic tracepoint is the fallback
//! for kernels or setups without usable vmlinux BTF. The function probes of
//! `trace` choose among their own backends (fentry, kprobe...) in
//! `skbfunc::select`.
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
use crate::sys::tracefs::TRACEFS;

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
