//! Text for people: one line per step on stderr, then the culprits, their
//! values and the fix on stdout. (JSON uses the records as they are.)
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use super::{Outcome, Step};

/// `step 3 (mix): 6 of 13 settings broken -> works  (1 run, 412 ms)`
pub fn step_line(s: &Step) -> String {
    format!(
        "step {} ({}): {} of {} settings broken -> {}  ({} run{}, {} ms)",
        s.step,
        s.phase,
        s.broken,
        s.of,
        s.result,
        s.runs,
        if s.runs == 1 { "" } else { "s" },
        s.ms
    )
}

/// The result, without the explain findings (the findings sink writes them).
pub fn text(o: &Outcome) -> String {
    let mut t = String::new();
    let what = if o.culprits.len() == 1 {
        "the setting that breaks it".to_string()
    } else {
        format!("{} settings that break it only together", o.culprits.len())
    };
    let _ = writeln!(
        t,
        "{what} (in {}; {} differing settings, {} configurations, {} repro runs):",
        o.netns, o.differences, o.steps, o.runs
    );
    for c in &o.culprits {
        let host = if c.host { "  [host-global]" } else { "" };
        let _ = writeln!(t, "  {} = {}  (good: {}){host}", c.name, c.bad, c.good);
        if !c.with.is_empty() {
            let _ = writeln!(t, "    with its copies {}", c.with.join(", "));
        }
    }
    let _ = writeln!(t, "fix:");
    for f in &o.fix {
        let _ = writeln!(t, "  {f}");
    }
    if !o.skipped.is_empty() {
        let _ = writeln!(
            t,
            "skipped (differ, but not bisected; kept at {}'s values):",
            o.netns
        );
        for s in &o.skipped {
            let _ = writeln!(t, "  {}: {}", s.name, s.why);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bisect::collect::{Name, Setting, Skipped};

    #[test]
    fn text_names_culprit_values_fix_and_skips() {
        let o = Outcome {
            netns: "blue".into(),
            culprits: vec![Setting::sysctl(
                "net.ipv4.conf.eth0.rp_filter",
                "1",
                "0",
                false,
            )],
            runs: 9,
            steps: 9,
            differences: 13,
            skipped: vec![Skipped {
                name: Name::Sysctl("net.core.rmem_default".into()),
                why: "host-global".into(),
            }],
            fix: vec!["ip netns exec blue sysctl -w net.ipv4.conf.eth0.rp_filter=0".into()],
            explain: vec![],
        };
        let t = text(&o);
        assert!(
            t.contains("net.ipv4.conf.eth0.rp_filter = 1  (good: 0)"),
            "{t}"
        );
        assert!(
            t.contains("13 differing settings, 9 configurations, 9 repro runs"),
            "{t}"
        );
        assert!(
            t.contains("sysctl -w net.ipv4.conf.eth0.rp_filter=0"),
            "{t}"
        );
        assert!(t.contains("net.core.rmem_default: host-global"), "{t}");
        let j = serde_json::to_value(&o).unwrap();
        assert_eq!(j["type"], "bisect_result");
        assert_eq!(j["v"], 1);
        assert_eq!(j["culprits"][0]["sysctl"], "net.ipv4.conf.eth0.rp_filter");
        assert_eq!(j["culprits"][0]["bad"], "1");
        assert_eq!(j["culprits"][0]["good"], "0");
        assert_eq!(j["runs"], 9);
    }
}
