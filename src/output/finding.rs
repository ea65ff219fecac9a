//! A finding as text: what happened, why (with evidence), what to check,
//! the fix. Shared by `explain` and `run`.
use crate::diagnose::finding::Finding;
use crate::output::text::netns_label;

/// Block `n` of the text report.
pub fn finding_text(n: usize, f: &Finding) -> String {
    let ns = netns_label(f.netns, f.netns_name.as_deref());
    let mut s = if f.source == crate::diagnose::finding::Source::State {
        format!("[{n}] no drop yet, but live state is a known trap  netns={ns}\n")
    } else {
        format!(
            "[{n}] {}x {} at {}  netns={ns} dev={}\n",
            f.count,
            f.reason,
            f.location,
            f.dev.as_deref().unwrap_or("-")
        )
    };
    for fl in &f.flows {
        s += &format!("    flow:  {fl}\n");
    }
    s += &format!("    what:  {}\n", f.meaning);
    for c in f.causes.iter().take(3) {
        s += &format!("    why:   {c}\n");
    }
    for e in &f.evidence {
        s += &format!("    seen:  {e}\n");
    }
    for c in f.checks.iter().take(3) {
        s += &format!("    check: {c}\n");
    }
    for x in &f.fix {
        s += &format!("    fix:   {x}\n");
    }
    s += &format!("    diagnosis: {} (confidence {})\n", f.cause, f.confidence);
    s
}
