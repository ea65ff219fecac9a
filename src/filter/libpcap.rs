//! tcpdump expressions through libpcap's compiler, which `sys::libpcap`
//! loads with dlopen(3) on first use (the why is there).
use std::ffi::c_int;

use super::cbpf::Insn;

pub use crate::sys::libpcap::library_name;

/// Compiles `expr` for `linktype` (optimised, as tcpdump does). The error
/// is libpcap's own message ("syntax error", "unknown host 'x'").
pub fn compile(expr: &str, linktype: c_int) -> Result<Vec<Insn>, String> {
    let raw = crate::sys::libpcap::compile(expr, linktype)?;
    Ok(raw
        .into_iter()
        .map(|(code, jt, jf, k)| Insn::new(code, jt, jf, k))
        .collect())
}
