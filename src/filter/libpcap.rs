//! tcpdump expressions through libpcap's compiler, which `sys::libpcap`
//! loads with dlopen(3) on first use (the why is there). Without the
//! `pcap-filter` feature (the static build) no libpcap is ever used.
#[cfg(feature = "pcap-filter")]
pub use crate::sys::libpcap::library_name;

/// Compiles `expr` for `linktype` (optimised, as tcpdump does). The error
/// is libpcap's own message ("syntax error", "unknown host 'x'").
#[cfg(feature = "pcap-filter")]
pub fn compile(expr: &str, linktype: std::ffi::c_int) -> Result<Vec<super::cbpf::Insn>, String> {
    let raw = crate::sys::libpcap::compile(expr, linktype)?;
    Ok(raw
        .into_iter()
        .map(|(code, jt, jf, k)| super::cbpf::Insn::new(code, jt, jf, k))
        .collect())
}

/// Which libpcap netwhy would load: none in a build without the
/// `pcap-filter` feature, whatever is installed.
#[cfg(not(feature = "pcap-filter"))]
pub fn library_name() -> Option<&'static str> {
    None
}
