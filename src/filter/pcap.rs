//! tcpdump expressions (pcap-filter(7)) to classic BPF, through libpcap's
//! own compiler so the syntax is exactly what users know from tcpdump.
//!
//! The program is compiled for linktype RAW: it starts at the IP header,
//! because netwhy's hooks see packets from their network header onwards
//! (receive hooks after the Ethernet header is pulled, the IP layer before
//! one exists). Expressions about Ethernet fields (`ether host`) are
//! therefore rejected by libpcap with its own message.
use super::cbpf::{self, CbpfError, Insn};

/// DLT_RAW as passed to pcap_open_dead (12 on Linux; LINKTYPE_RAW is 101).
#[cfg(feature = "pcap-filter")]
const DLT_RAW: i32 = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PcapFilterError {
    #[error("bad filter expression '{expr}': {detail}")]
    Syntax { expr: String, detail: String },
    #[error("filter '{expr}': {source}")]
    Program {
        expr: String,
        #[source]
        source: CbpfError,
    },
    #[error(
        "filter '{0}': this netwhy was built without libpcap (the static build); \
         use --netns/--dev/--mark, or the regular build, for tcpdump expressions"
    )]
    NoCompiler(String),
}

/// A compiled filter: the expression and its validated program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapFilter {
    pub expr: String,
    pub prog: Vec<Insn>,
}

impl PcapFilter {
    /// Compiles `expr` (optimised, as tcpdump does). An empty expression
    /// yields None: everything matches and no program is needed.
    pub fn compile(expr: &str) -> Result<Option<PcapFilter>, PcapFilterError> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Ok(None);
        }
        let prog = compile_raw(expr)?;
        cbpf::validate(&prog).map_err(|source| PcapFilterError::Program {
            expr: expr.to_string(),
            source,
        })?;
        Ok(Some(PcapFilter {
            expr: expr.to_string(),
            prog,
        }))
    }

    /// True when the packet (bytes from its IP header) matches.
    pub fn matches(&self, l3: &[u8], wirelen: u32) -> bool {
        cbpf::run(&self.prog, l3, wirelen) != 0
    }
}

#[cfg(not(feature = "pcap-filter"))]
fn compile_raw(expr: &str) -> Result<Vec<Insn>, PcapFilterError> {
    Err(PcapFilterError::NoCompiler(expr.to_string()))
}

#[cfg(feature = "pcap-filter")]
fn compile_raw(expr: &str) -> Result<Vec<Insn>, PcapFilterError> {
    super::libpcap::compile(expr, DLT_RAW).map_err(|detail| PcapFilterError::Syntax {
        expr: expr.to_string(),
        detail,
    })
}

#[cfg(all(test, feature = "pcap-filter"))]
#[path = "pcap_tests.rs"]
mod tests;
