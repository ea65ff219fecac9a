//! `netwhy lab run` as text: one block per scenario, and a tally when
//! several ran.
use std::fmt::Write as _;

use super::text::event_line;
use crate::lab::runner::Report;

/// The closing table of a multi-scenario run.
pub fn tally(reports: &[Report]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<24} {:<6} {:>8}  OBSERVED",
        "SCENARIO", "RESULT", "TIME"
    );
    for r in reports {
        let _ = writeln!(
            s,
            "{:<24} {:<6} {:>6}ms  {}",
            r.scenario,
            if r.pass { "pass" } else { "FAIL" },
            r.elapsed_ms,
            observed(r)
        );
    }
    let passed = reports.iter().filter(|r| r.pass).count();
    let _ = writeln!(s, "{} passed, {} failed", passed, reports.len() - passed);
    s
}

/// One table cell: the first expectation, or "not affected".
fn observed(r: &Report) -> String {
    if r.not_affected.is_some() {
        return "not affected on this kernel".into();
    }
    r.checks
        .first()
        .map(|c| c.expected.clone())
        .unwrap_or_default()
}

/// One scenario's run as text: what was built and triggered, the drops
/// seen, each expectation's verdict, what explain concluded.
pub fn report(r: &Report, incident: &str) -> String {
    let mut s = format!(
        "== {}: {}\n   incident: {}\n",
        r.scenario, r.summary, incident
    );
    let ns: Vec<_> = r
        .namespaces
        .iter()
        .map(|(role, _, ino)| format!("{role}={ino}"))
        .collect();
    s += &format!(
        "   netns:    {}\n   trigger:  {}\n",
        ns.join(" "),
        r.trigger
    );
    s += &format!("   netwhy drops saw {} drop(s):\n", r.events.len());
    for e in r.events.iter().take(12) {
        s += &format!("     {}\n", event_line(e));
    }
    if r.events.len() > 12 {
        s += &format!("     ... {} more\n", r.events.len() - 12);
    }
    for n in &r.notes {
        s += &format!("   note:     {n}\n");
    }
    if let Some(why) = &r.not_affected {
        s += &format!("   verdict:  this kernel is not affected: {why}\n");
    }
    if let Some(e) = &r.error {
        s += &format!("   error:    {e}\n");
    }
    for c in &r.checks {
        let (want, verdict) = match c.kind {
            "absent" => ("none".to_string(), if c.ok { "ok" } else { "UNEXPECTED" }),
            "counter" => (
                format!("+{}", c.min),
                if c.ok { "ok" } else { "DID NOT MOVE" },
            ),
            _ => (format!(">= {}", c.min), if c.ok { "ok" } else { "MISSING" }),
        };
        s += &format!(
            "   expect:   {} ({want}): {} {verdict}\n",
            c.expected,
            if c.kind == "counter" {
                format!("moved +{}", c.matched)
            } else {
                format!("{} matched", c.matched)
            }
        );
    }
    let verdict = if r.explained.unwrap_or("none") == r.diagnosis {
        "as the scenario expects"
    } else {
        "WRONG"
    };
    s += &format!(
        "   explain:  {} ({verdict}: {})\n",
        r.explained.unwrap_or("no finding"),
        r.diagnosis
    );
    if let Some(f) = &r.finding {
        // The live evidence and the first fixes; `netwhy explain` has all.
        for e in f.evidence.iter().skip(1).take(3) {
            s += &format!("     seen:   {e}\n");
        }
        for x in f.fix.iter().take(2) {
            s += &format!("     fix:    {x}\n");
        }
    }
    s += &format!(
        "   result:   {} in {} ms, lost {}\n",
        if r.pass { "PASS" } else { "FAIL" },
        r.elapsed_ms,
        r.lost
    );
    for e in &r.cleanup_errors {
        s += &format!("   cleanup:  {e}\n");
    }
    s
}
