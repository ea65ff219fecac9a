//! The live table of `netwhy drops`: one row per (reason, location, netns,
//! device), sorted by rate, redrawn in place on a terminal.
//!
//! On a terminal the table fits its width: the NETNS, LOCATION and REASON
//! columns narrow first (their ends are elided with `…`), then each line is
//! cut, never wrapped, since a wrapped row breaks every row below it. The
//! footer is the exception: its parts (lost, hidden...) must never be cut
//! away, so it is broken between parts instead.
use std::fmt::Write as _;

use crate::event::DropGroup;
use crate::output::style::{self, Palette, Role};
use crate::output::text::{container_suffix, netns_label};

const HINT_TITLE: &str = "HINT (full text: netwhy reasons REASON --at FUNCTION)";

/// Render the rows (already sorted) and the footer line. `width`: the
/// terminal's columns (see [`crate::output::term::width`]); `None` for
/// full lines (a pipe, a file).
pub fn render(groups: &[DropGroup], top: usize, footer: &str, width: Option<usize>) -> String {
    let pal = style::stdout();
    let mut c = Columns::fit(width);
    let netns_cell = |g: &DropGroup| {
        netns_label(g.netns, g.netns_name.as_deref()) + &container_suffix(g.container.as_deref())
    };
    // Off a terminal pod and container names are not cut: NETNS widens
    // for them (tables without containers keep their layout).
    if width.is_none() && groups.iter().take(top).any(|g| g.container.is_some()) {
        let longest = groups
            .iter()
            .take(top)
            .map(|g| netns_cell(g).chars().count());
        c.netns = longest.fold(c.netns, usize::max);
    }
    let mut s = String::new();
    let header = format!(
        "{:>9} {:>10}  {:<rw$} {:<lw$} {:<nw$} {:<12}{}",
        "RATE/s",
        "COUNT",
        "REASON",
        "LOCATION",
        "NETNS",
        "DEV",
        c.hint_cell(HINT_TITLE),
        rw = c.reason,
        lw = c.location,
        nw = c.netns,
    );
    line(&mut s, &[(header.trim_end(), None)], width, pal);
    for g in groups.iter().take(top) {
        let dev = match &g.dev {
            Some(d) => format!("{d}({})", g.ifindex),
            None if g.ifindex == 0 => "-".to_string(),
            None => format!("#{}", g.ifindex),
        };
        let counts = format!("{:>9.1} {:>10}  ", g.rate, g.count);
        let reason = format!("{:<1$}", truncate(g.reason, c.reason), c.reason);
        let rest = format!(
            " {:<lw$} {:<nw$} {:<12}{}",
            truncate(&g.location.to_string(), c.location),
            truncate(&netns_cell(g), c.netns),
            dev,
            c.hint_cell(&g.hint),
            lw = c.location,
            nw = c.netns,
        );
        line(
            &mut s,
            &[
                (&counts, None),
                (&reason, Some(Role::Reason)),
                (if c.hint { &rest } else { rest.trim_end() }, None),
            ],
            width,
            pal,
        );
    }
    if groups.len() > top {
        let more = format!("  ... {} more groups", groups.len() - top);
        line(&mut s, &[(&more, None)], width, pal);
    }
    match width {
        None => {
            let _ = writeln!(s, "{footer}");
        }
        Some(w) => {
            for l in wrap_parts(footer, w) {
                line(&mut s, &[(&l, None)], width, pal);
            }
        }
    }
    s
}

/// Widths of the columns that narrow; DEV and the counts keep theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    reason: usize,
    location: usize,
    netns: usize,
    /// Room for a useful part of HINT; without it the column is left out
    /// (its first letters would be noise; `netwhy reasons` has the text).
    hint: bool,
}

impl Columns {
    const FULL: Columns = Columns {
        reason: 24,
        location: 34,
        netns: 26,
        hint: true,
    };
    /// Everything left of HINT at full widths.
    const FIXED: usize = 9 + 1 + 10 + 2 + 24 + 1 + 34 + 1 + 26 + 1 + 12 + 1;
    /// The hint width the other columns narrow for.
    const HINT_MIN: usize = 30;
    /// A hint narrower than this is left out.
    const HINT_SHOWN: usize = 16;

    /// Narrows NETNS, then LOCATION, then REASON (least read first) until
    /// the hint has room, each down to a width that still identifies it.
    fn fit(width: Option<usize>) -> Columns {
        let mut c = Columns::FULL;
        let Some(w) = width else { return c };
        let mut short = (Self::FIXED + Self::HINT_MIN).saturating_sub(w);
        for (col, min) in [
            (&mut c.netns, 12),
            (&mut c.location, 20),
            (&mut c.reason, 16),
        ] {
            let cut = short.min(*col - min);
            *col -= cut;
            short -= cut;
        }
        let before_hint = Self::FIXED - 84 + c.reason + c.location + c.netns;
        c.hint = w >= before_hint + Self::HINT_SHOWN;
        c
    }

    /// The HINT cell with the space before it, or nothing.
    fn hint_cell(&self, hint: &str) -> String {
        if self.hint {
            format!(" {hint}")
        } else {
            String::new()
        }
    }
}

/// Appends the segments as one line of at most `width` characters: a line
/// too long ends in `…`. Styles apply to what is left of their segment.
fn line(s: &mut String, segs: &[(&str, Option<Role>)], width: Option<usize>, pal: Palette) {
    let total: usize = segs.iter().map(|(t, _)| t.chars().count()).sum();
    let mut budget = match width {
        Some(w) if total > w => w.saturating_sub(1),
        _ => usize::MAX,
    };
    for &(text, role) in segs {
        let n = text.chars().count();
        let shown: &str = if n <= budget {
            text
        } else {
            let end = text
                .char_indices()
                .nth(budget)
                .map_or(text.len(), |(i, _)| i);
            &text[..end]
        };
        budget -= shown.chars().count();
        match role {
            Some(r) if !shown.is_empty() => {
                let _ = write!(s, "{}", pal.paint(r, shown));
            }
            _ => s.push_str(shown),
        }
    }
    if width.is_some_and(|w| total > w && w > 0) {
        s.push('…');
    }
    s.push('\n');
}

/// The footer's parts (separated by two spaces) packed into lines of at
/// most `width`; a part longer than a line is left to [`line`] to cut.
fn wrap_parts(footer: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in footer.split("  ").filter(|p| !p.is_empty()) {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 2 + part.chars().count() <= width => {
                l.push_str("  ");
                l.push_str(part);
            }
            _ => lines.push(part.to_string()),
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

pub use crate::event::sort_by_rate as sort;

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
                container: None,
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
        let out = render(&g, 2, "lost: 0", None);
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
        let out = render(&[g], 5, "", None);
        assert!(
            out.contains("future udp thing (udp): not in netwhy's notes yet"),
            "{out}"
        );
    }

    /// On a narrow terminal no line is longer than the screen, the
    /// narrowed columns still show their starts, and the footer keeps
    /// every part (lost, hidden...) on lines of its own.
    #[test]
    fn fits_the_terminal_width() {
        let mut g = group("SOCKET_RCVBUFF_TOO_SMALL_FOR_THIS", 12345.6, 9_999_999);
        g.site.netns_name = Some("a-very-long-namespace-name".into());
        g.site.dev = Some("veth-abcdefghij".into());
        let footer = "99 drops in 1.0s via tp_btf  hidden: 3 (known-harmless, --all shows them)  lost: 7  netwhy's own: 2";
        let out = render(&[g.clone(), g.clone()], 1, footer, Some(60));
        for l in out.lines() {
            assert!(l.chars().count() <= 60, "{} chars: {l}", l.chars().count());
        }
        let row = out.lines().nth(1).unwrap();
        assert!(
            row.starts_with("  12345.6    9999999  SOCKET_RCVBUFF_… __udp4"),
            "{out}"
        );
        assert!(row.ends_with('…'), "{row}");
        assert!(out.contains("1 more groups"), "{out}");
        for part in [
            "99 drops in 1.0s",
            "lost: 7",
            "netwhy's own: 2",
            "hidden: 3",
        ] {
            assert!(out.contains(part), "{part} missing: {out}");
        }
        // 100 columns: every column but HINT, whole, and nothing cut.
        let out = render(&[g.clone()], 5, "lost: 0", Some(100));
        assert!(
            !out.contains("HINT") && !out.contains("no listener"),
            "{out}"
        );
        assert!(
            !out.contains('…') || out.contains("SOCKET_RCVBUFF_…"),
            "{out}"
        );
        assert!(
            out.lines().nth(1).unwrap().ends_with("veth-abcdefghij(1)"),
            "{out}"
        );
        assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
        // Wide enough: the same table as without a width.
        let wide = render(&[g.clone()], 5, "lost: 0", Some(400));
        assert_eq!(wide, render(&[g], 5, "lost: 0", None));
    }

    /// A row in a container names its pod beside the netns, whole on a
    /// pipe (the column widens) and cut to the column on a terminal; rows
    /// without one keep the old layout.
    #[test]
    fn container_rows_name_the_pod() {
        let plain = group("NO_SOCKET", 1.0, 1);
        let before = render(std::slice::from_ref(&plain), 5, "", None);
        let mut g = plain.clone();
        g.site.container = Some(std::sync::Arc::new(crate::container::Container {
            runtime: crate::container::Runtime::Crio,
            id: "c0ffee".into(),
            name: Some("api".into()),
            pod: Some("backend-5f6c".into()),
            namespace: Some("payments".into()),
        }));
        let out = render(&[g.clone(), plain.clone()], 5, "", None);
        let rows: Vec<&str> = out.lines().collect();
        assert!(
            rows[1].contains(" init(4026531840) pod=payments/backend-5f6c container=api lo(1) "),
            "{out}"
        );
        // Columns stay aligned: DEV starts at the same place in both rows.
        assert_eq!(rows[1].find(" lo(1)"), rows[2].find(" lo(1)"), "{out}");
        assert!(!before.contains("pod="));
        assert_eq!(
            before.lines().nth(1),
            Some(render(&[plain], 5, "", None).lines().nth(1).unwrap())
        );
        let narrow = render(&[g], 5, "", Some(152));
        assert!(
            narrow.contains("init(4026531840) pod=paym… lo(1)"),
            "{narrow}"
        );
    }

    /// NETNS narrows first, REASON last, none below its minimum.
    #[test]
    fn narrowed_columns_keep_the_hint_readable() {
        assert_eq!(Columns::fit(None), Columns::FULL);
        assert_eq!(Columns::fit(Some(152)), Columns::FULL);
        let c = Columns::fit(Some(140));
        assert_eq!((c.reason, c.location, c.netns), (24, 34, 14));
        let c = Columns::fit(Some(120));
        assert_eq!((c.reason, c.location, c.netns), (20, 20, 12));
        assert_eq!(
            Columns::fit(Some(10)),
            Columns {
                reason: 16,
                location: 20,
                netns: 12,
                hint: false,
            }
        );
        // 90 columns: the hint would get 4 characters, so it is left out.
        assert!(!Columns::fit(Some(90)).hint);
        assert!(Columns::fit(Some(102)).hint);
    }

    /// Escapes do not count towards the width.
    #[test]
    fn coloured_segment_is_cut_by_visible_width() {
        let mut s = String::new();
        line(
            &mut s,
            &[("ab", None), ("CDEFG", Some(Role::Reason)), ("hij", None)],
            Some(5),
            Palette::ANSI,
        );
        let plain: String = strip(&s);
        assert_eq!(plain, "abCD…\n");
        assert!(s.contains('\x1b'));
    }

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for ch in s.chars() {
            match (esc, ch) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }
}
