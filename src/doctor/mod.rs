//! `netwhy doctor`: known traps found in live state, before packets die.
//!
//! Two stages. [`collect`] enters each network namespace once and reads
//! everything the checks need into an [`NsState`] (sysctls, links,
//! addresses, routes, the nftables ruleset, sockets, counters sampled
//! twice over a short window). Each check is then a pure function from an
//! `NsState` to findings, so it is unit-tested on fixtures and adding one
//! is one function plus one line in [`CHECKS`].
#![forbid(unsafe_code)]
pub mod collect;
pub mod conntrack;
pub mod dad;
pub mod firewall;
pub mod forward;
pub mod pressure;
pub mod report;
pub mod rpfilter;
pub mod sysctl;

use std::time::Duration;

use serde::Serialize;

pub use collect::{NsState, Target};

/// How bad a finding is. The process exit code follows the worst one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Exit code for the worst severity found: 0 nothing or info, 2 warning,
/// 3 critical (1 is every other error).
pub fn exit_code(worst: Option<Severity>) -> i32 {
    match worst {
        None | Some(Severity::Info) => 0,
        Some(Severity::Warning) => 2,
        Some(Severity::Critical) => 3,
    }
}

/// One trap found in one namespace. `fix` lines are shell: commands to
/// run as they stand (already wrapped to run in that namespace), and `#`
/// comments for what cannot be a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(remote = "Self")]
pub struct Finding {
    /// Stable id of the check (see [`CHECKS`]).
    pub check: &'static str,
    pub severity: Severity,
    pub netns: u32,
    pub netns_name: String,
    /// The container in `netns` ([`Report::name_containers`]); only in the
    /// JSON when there is one.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::container::serialize_container"
    )]
    pub container: Option<std::sync::Arc<crate::container::Container>>,
    /// What is wrong: a sysctl name, `addr/len dev X`, a rule, a device...
    pub subject: String,
    pub evidence: Vec<String>,
    pub fix: Vec<String>,
}

crate::json_record!(Finding, "doctor_finding");

impl Finding {
    /// A finding of `check` about `subject` in the namespace of `st`.
    pub fn new(st: &NsState, check: &'static str, severity: Severity, subject: String) -> Self {
        Finding {
            check,
            severity,
            netns: st.target.ino,
            netns_name: st.target.name.clone(),
            container: None,
            subject,
            evidence: Vec::new(),
            fix: Vec::new(),
        }
    }

    pub fn seen(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    pub fn fix(mut self, line: impl Into<String>) -> Self {
        self.fix.push(line.into());
        self
    }
}

/// A check: stable id, one line saying what it looks for, and the function.
pub struct Check {
    pub id: &'static str,
    pub about: &'static str,
    pub run: fn(&NsState) -> Vec<Finding>,
}

/// Every check, in report order. Adding a check: write its function in the
/// file of its area and add one line here.
#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    Check { id: sysctl::RMEM_ID, about: "net.core.rmem/wmem values whose int arithmetic overflows", run: sysctl::rmem_sysctls },
    Check { id: sysctl::SOCKET_ID, about: "sockets whose SO_RCVBUF is within 16 MiB of INT_MAX", run: sysctl::socket_rcvbuf },
    Check { id: rpfilter::ID, about: "strict rp_filter on an interface with asymmetric routes", run: rpfilter::check },
    Check { id: forward::ID, about: "forwarding off where forwarding rules exist", run: forward::check },
    Check { id: conntrack::ID, about: "conntrack table near full", run: conntrack::check },
    Check { id: firewall::ID, about: "catch-all DROP/REJECT rules that hide the rules after them", run: firewall::check },
    Check { id: dad::FAILED_ID, about: "IPv6 addresses that failed duplicate address detection", run: dad::dad_failed },
    Check { id: dad::TENTATIVE_ID, about: "IPv6 addresses stuck tentative", run: dad::stuck_tentative },
    Check { id: pressure::RX_ID, about: "interfaces whose rx_dropped rises", run: pressure::rx_drops },
    Check { id: pressure::LISTEN_ID, about: "TCP listeners overflowing their accept queue", run: pressure::listen_overflow },
];

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Explicit namespaces; empty means the host and every namespace found.
    pub targets: Vec<Target>,
    /// Counter sampling window for the "rising" checks (zero disables them).
    pub window: Duration,
}

/// The outcome of a scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub namespaces: usize,
    /// Namespaces or state that could not be read, one line each.
    pub skipped: Vec<String>,
}

impl Report {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Collect(#[from] collect::CollectError),
}

/// Scan: collect state in every target namespace, run every check.
pub fn run(opts: &Options) -> Result<Report, DoctorError> {
    let explicit = !opts.targets.is_empty();
    let mut targets = if explicit {
        opts.targets.clone()
    } else {
        collect::all_targets()
    };
    // The same namespace named twice (by name and by inode) is scanned once.
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.ino));
    let states = collect::collect(&targets, opts.window, explicit)?;
    let mut report = Report {
        findings: Vec::new(),
        namespaces: states.ok.len(),
        skipped: states.skipped,
    };
    for st in &states.ok {
        report.skipped.extend(st.gaps.iter().cloned());
        for c in CHECKS {
            report.findings.extend((c.run)(st));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_worst_severity() {
        assert_eq!(exit_code(None), 0);
        assert_eq!(exit_code(Some(Severity::Info)), 0);
        assert_eq!(exit_code(Some(Severity::Warning)), 2);
        assert_eq!(exit_code(Some(Severity::Critical)), 3);
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
    }

    #[test]
    fn check_ids_are_unique_and_stable_looking() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        assert!(ids.iter().all(|i| i
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit())));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len());
    }
}
