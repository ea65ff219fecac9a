//! A conntrack table close to full. When `nf_conntrack_count` reaches
//! `nf_conntrack_max`, new flows are dropped before any rule sees them
//! ("nf_conntrack: table full, dropping packet" in the kernel log), which
//! looks like random connection failures under load.
//!
//! The values are the same files `state::conntrack::count_and_max` reads
//! (/proc/sys/net/netfilter), taken from the namespace's sysctl snapshot
//! so the namespace is entered only once.
use super::{Finding, NsState, Severity};

pub const ID: &str = "conntrack-table-full";

/// Fill ratio (percent) from which the table is reported.
pub const WARN_PCT: u64 = 80;
pub const CRITICAL_PCT: u64 = 95;

/// Severity for `count` entries of `max`, if any.
pub fn severity(count: u64, max: u64) -> Option<Severity> {
    if max == 0 {
        return None;
    }
    let pct = count.saturating_mul(100) / max;
    match pct {
        p if p >= CRITICAL_PCT => Some(Severity::Critical),
        p if p >= WARN_PCT => Some(Severity::Warning),
        _ => None,
    }
}

pub fn check(st: &NsState) -> Vec<Finding> {
    let (Some(count), Some(max)) = (st.sysctl.nf_conntrack_count, st.sysctl.nf_conntrack_max)
    else {
        return Vec::new(); // nf_conntrack not loaded: no table to fill
    };
    let (count, max) = (count.max(0) as u64, max.max(0) as u64);
    let Some(sev) = severity(count, max) else {
        return Vec::new();
    };
    let suggested = (max * 2).max(262_144);
    vec![
        Finding::new(st, ID, sev, "net.netfilter.nf_conntrack_count".into())
            .seen(format!(
                "nf_conntrack_count = {count} of nf_conntrack_max = {max} ({}% full; \
                 warning from {WARN_PCT}%, critical from {CRITICAL_PCT}%)",
                count * 100 / max
            ))
            .seen(
                "when the table is full, packets of new flows are dropped before any rule \
                 sees them (\"nf_conntrack: table full, dropping packet\" in dmesg)",
            )
            .fix(format!(
                "sysctl -w net.netfilter.nf_conntrack_max={suggested}"
            ))
            .fix("# nf_conntrack_max is set on the host (init netns); the table is shared memory")
            .fix(st.cmd("conntrack -S"))
            .fix(
                "# or find who opens so many flows (conntrack -L | sort by source) and \
                 shorten timeouts, e.g. sysctl -w net.netfilter.nf_conntrack_udp_timeout=30",
            ),
    ]
}

#[cfg(test)]
// Fixtures are built field by field from an empty namespace state.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(severity(79, 100), None);
        assert_eq!(severity(80, 100), Some(Severity::Warning));
        assert_eq!(severity(94, 100), Some(Severity::Warning));
        assert_eq!(severity(95, 100), Some(Severity::Critical));
        assert_eq!(severity(100, 100), Some(Severity::Critical));
        assert_eq!(severity(5, 0), None);
    }

    #[test]
    fn finding_from_snapshot() {
        let mut st = NsState::default();
        assert!(check(&st).is_empty(), "no conntrack module, no finding");
        st.sysctl.nf_conntrack_count = Some(262_000);
        st.sysctl.nf_conntrack_max = Some(262_144);
        let f = check(&st);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f[0].evidence[0].contains("99% full"), "{:?}", f[0].evidence);
        assert_eq!(
            f[0].fix[0],
            "sysctl -w net.netfilter.nf_conntrack_max=524288"
        );
        st.sysctl.nf_conntrack_count = Some(1000);
        assert!(check(&st).is_empty());
    }
}
