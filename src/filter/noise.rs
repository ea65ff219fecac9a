//! Drops that are normal on every healthy box, hidden by default.
//!
//! Each rule is a (reason, function) pair with the reason it is harmless.
//! Hidden drops are still counted in the kernel and shown as "hidden: N";
//! `--all` disables every rule. A rule is only hidden where the kernel knows
//! both its reason name and its function, so nothing unknown is swallowed.
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::reasons::DropReasons;

/// How many ranges the drop probe holds: `NW_MAX_NOISE` in event.h, the
/// length of its rodata arrays; keep the two equal.
pub const MAX_NOISE: usize = 8;

/// A known-harmless drop: `reason` (None = any) freed inside [start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseRange {
    pub reason: Option<u32>,
    pub start: u64,
    pub end: u64,
}

pub struct NoiseRule {
    /// Reason name; None matches any reason.
    pub reason: Option<&'static str>,
    /// Function the drop happens in; None matches anywhere.
    pub function: Option<&'static str>,
    /// Why this drop is harmless.
    pub why: &'static str,
}

/// The catalog. Keep it short: every entry hides real packets.
pub const RULES: &[NoiseRule] = &[
    NoiseRule {
        reason: Some("NOT_SPECIFIED"),
        function: Some("ip6_mc_input"),
        why: "IPv6 multicast (MLD reports, neighbour solicitations for other \
              hosts' solicited-node groups) arriving for a group no local socket \
              joined. Every IPv6 link carries these; dropping them is the job.",
    },
    NoiseRule {
        reason: Some("NO_SOCKET"),
        function: Some("ping_rcv"),
        why: "An ICMP echo reply for a `ping` that uses a raw socket: the raw \
              socket already received its clone, and the ping-socket lookup for \
              the original finds nothing. The reply was delivered.",
    },
    NoiseRule {
        reason: Some("NOT_SPECIFIED"),
        function: Some("stp_pdu_rcv"),
        why: "A spanning-tree BPDU reaching an interface that is not a port of \
              an STP-enabled bridge (a host or a namespace next to a bridge that \
              runs STP). Switches send these to every link; nobody here needs them.",
    },
    NoiseRule {
        reason: Some("QUEUE_PURGE"),
        function: None,
        why: "A socket being closed frees what was still queued on it. The \
              application chose to close; the loss is visible to it as unread \
              data, not a network fault.",
    },
];

/// Kernel-side ranges for the rules this kernel can express.
pub fn ranges(reasons: &DropReasons, syms: &Kallsyms) -> Vec<NoiseRange> {
    let mut out = Vec::new();
    for rule in RULES {
        let reason = match rule.reason {
            Some(name) => match reasons.value(name) {
                Some(v) => Some(v),
                None => continue,
            },
            None => None,
        };
        let (start, end) = match rule.function {
            Some(f) => match syms.function_range(f) {
                Some(r) => r,
                None => continue,
            },
            None => (0, u64::MAX),
        };
        out.push(NoiseRange { reason, start, end });
    }
    out.truncate(MAX_NOISE);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_fits_the_kernel_table_and_says_why() {
        assert!(RULES.len() <= MAX_NOISE);
        for r in RULES {
            assert!(r.why.len() > 40, "every rule needs a real justification");
            assert!(r.reason.is_some() || r.function.is_some());
        }
    }
}
