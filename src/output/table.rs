//! The live table of `netwhy drops`: one row per (reason, location, netns,
//! device), sorted by rate, redrawn in place on a terminal.
use std::fmt::Write as _;

use crate::event::DropGroup;
use crate::output::text::netns_label;

/// Render the rows (already sorted) and the footer line.
pub fn render(groups: &[DropGroup], top: usize, footer: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>9} {:>10}  {:<24} {:<34} {:<26} {:<12} HINT (full text: netwhy reasons REASON --at FUNCTION)",
        "RATE/s", "COUNT", "REASON", "LOCATION", "NETNS", "DEV"
    );
    for g in groups.iter().take(top) {
        let dev = match &g.dev {
            Some(d) => format!("{d}({})", g.ifindex),
            None if g.ifindex == 0 => "-".to_string(),
            None => format!("#{}", g.ifindex),
        };
        let _ = writeln!(
            s,
            "{:>9.1} {:>10}  {:<24} {:<34} {:<26} {:<12} {}",
            g.rate,
            g.count,
            truncate(g.reason, 24),
            truncate(&g.location.to_string(), 34),
            truncate(&netns_label(g.netns, g.netns_name.as_deref()), 26),
            dev,
            g.hint
        );
    }
    if groups.len() > top {
        let _ = writeln!(s, "  ... {} more groups", groups.len() - top);
    }
    let _ = writeln!(s, "{footer}");
    s
}

/// Sort by rate, then count, so the busiest drop is on top.
pub fn sort(groups: &mut [DropGroup]) {
    groups.sort_by(|a, b| {
        b.rate
            .partial_cmp(&a.rate)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.count.cmp(&a.count))
    });
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DropSite, Location};

    fn group(reason: &str, rate: f64, count: u64) -> DropGroup {
        DropGroup {
            site: DropSite {
                reason: crate::event::intern(reason),
                reason_code: 3,
                location: Location {
                    symbol: "__udp4_lib_rcv".into(),
                    offset: 0x1a,
                    module: None,
                    address: "0x0".into(),
                },
                netns: 4026531840,
                netns_name: Some("init".into()),
                dev: Some("lo".into()),
                ifindex: 1,
            },
            netns_source: crate::event::NetnsSource::Dev,
            count,
            bytes: 0,
            rate,
            hint: "no listener on the destination port".into(),
        }
    }

    #[test]
    fn sorted_by_rate_and_footer_present() {
        let mut g = vec![
            group("A", 1.0, 100),
            group("B", 5.0, 5),
            group("C", 1.0, 200),
        ];
        sort(&mut g);
        let names: Vec<_> = g.iter().map(|g| g.reason).collect();
        assert_eq!(names, ["B", "C", "A"]);
        let out = render(&g, 2, "lost: 0");
        assert!(out.contains("__udp4_lib_rcv+0x1a"));
        assert!(out.contains("no listener on the destination port"));
        assert!(out.contains("1 more groups"));
        assert!(out.trim_end().ends_with("lost: 0"));
    }

    /// A reason the knowledge base lacks gets a hint built from its name,
    /// not a blank or an error.
    #[test]
    fn unknown_reason_row_has_a_hint() {
        let mut g = group("NW_FUTURE_UDP_THING", 1.0, 3);
        g.hint = crate::diagnose::hint_for(&g);
        let out = render(&[g], 5, "");
        assert!(
            out.contains("future udp thing (udp): not in netwhy's notes yet"),
            "{out}"
        );
    }
}
