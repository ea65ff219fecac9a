//! The completeness check that cannot rot: the knowledge base is held to a
//! committed list of every drop reason name upstream has had, with the
//! release each appeared in (tests/fixtures/kernel/upstream_drop_reasons.txt),
//! not to whatever kernel the tests happen to run on. A new kernel reason
//! then shows up as one line added to that list and one entry to write,
//! while a machine with a newer kernel only has to get graceful output.
//!
//! The list is held in turn to the names of real kernels committed beside
//! it (BTF of Debian's 6.1 and 6.12, this project's 6.18), so its dates
//! cannot drift from what those kernels report.
use std::collections::{BTreeMap, BTreeSet};

use super::kb;

const LIST: &str = include_str!("../../tests/fixtures/kernel/upstream_drop_reasons.txt");

/// The first kernel with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Since {
    Release(u16, u16),
    /// Only in development trees so far.
    Next,
    /// A vendor kernel's own reason.
    Local,
}

#[derive(Debug)]
struct Upstream {
    name: &'static str,
    since: Since,
    note: &'static str,
}

fn parse_since(s: &str) -> Option<Since> {
    match s {
        "next" => Some(Since::Next),
        "local" => Some(Since::Local),
        _ => {
            let (a, b) = s.split_once('.')?;
            Some(Since::Release(a.parse().ok()?, b.parse().ok()?))
        }
    }
}

/// Lines of `NAME VERSION [# note]`; `#` lines are comments.
fn parse(text: &'static str) -> Vec<Upstream> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (body, note) = match line.split_once('#') {
            Some((b, n)) => (b, n.trim()),
            None => (line, ""),
        };
        let mut f = body.split_whitespace();
        let Some(name) = f.next() else { continue };
        let since = f.next().and_then(parse_since);
        let since = since.unwrap_or_else(|| panic!("line {}: bad version: {line:?}", i + 1));
        assert!(f.next().is_none(), "line {}: extra fields: {line:?}", i + 1);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "line {}: {name:?} is not a reason name as netwhy prints it",
            i + 1
        );
        out.push(Upstream { name, since, note });
    }
    out
}

fn list() -> Vec<Upstream> {
    parse(LIST)
}

/// Reason names (as netwhy prints them) of a committed `bpftool btf dump`
/// of `enum skb_drop_reason`, without the MAX and SUBSYS_MASK markers.
fn btf_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(kb::normalize)
        .filter(|n| n != "MAX" && n != "SUBSYS_MASK")
        .collect()
}

/// (what, kernel version, names) of every committed real kernel.
fn real_kernels() -> Vec<(&'static str, (u16, u16), BTreeSet<String>)> {
    let dir = |f| match f {
        "6.1" => include_str!("../../tests/fixtures/kernel/reasons_btf_6.1.txt"),
        "6.12" => include_str!("../../tests/fixtures/kernel/reasons_btf_6.12.txt"),
        _ => include_str!("../../tests/fixtures/kernel/reasons_btf_6.18.44.txt"),
    };
    let tracefs = crate::kernel::reasons::DropReasons::from_tracefs_format(include_str!(
        "../../tests/fixtures/kernel/kfree_skb_format_6.18.txt"
    ))
    .unwrap();
    vec![
        ("6.1 BTF", (6, 1), btf_names(dir("6.1"))),
        ("6.12 BTF", (6, 12), btf_names(dir("6.12"))),
        ("6.18.44 BTF", (6, 18), btf_names(dir("6.18.44"))),
        (
            "6.18 tracefs",
            (6, 18),
            tracefs.iter().map(|(_, n)| n.to_owned()).collect(),
        ),
    ]
}

#[test]
fn list_parses_without_duplicates() {
    let l = list();
    assert!(l.len() >= 130, "only {} names", l.len());
    let mut seen = BTreeSet::new();
    for u in &l {
        assert!(seen.insert(u.name), "{} listed twice", u.name);
        if let Since::Release(major, minor) = u.since {
            // Drop reasons exist since 5.17.
            assert!((major, minor) >= (5, 17), "{}: {major}.{minor}", u.name);
        }
    }
}

/// The check that keeps coverage visible: every name upstream has had
/// needs a knowledge-base entry, and every entry is a name on the list.
#[test]
fn every_upstream_reason_has_an_entry() {
    let l = list();
    let missing: Vec<&str> = l
        .iter()
        .filter(|u| kb::find(u.name).is_none())
        .map(|u| u.name)
        .collect();
    assert!(
        missing.is_empty(),
        "no knowledge-base entry for: {missing:?}"
    );
    let listed: BTreeSet<&str> = l.iter().map(|u| u.name).collect();
    let stray: Vec<&str> = kb::all()
        .map(|e| e.reason)
        .filter(|r| !listed.contains(r))
        .collect();
    assert!(
        stray.is_empty(),
        "entries for names not on the upstream list: {stray:?}"
    );
}

/// Every name a real kernel reported is on the list, and no name is dated
/// after a kernel that had it, unless its note says how that kernel got it
/// early (a stable backport) or it is a vendor name.
#[test]
fn list_agrees_with_real_kernels() {
    let l = list();
    let by_name: BTreeMap<&str, &Upstream> = l.iter().map(|u| (u.name, u)).collect();
    for (what, (major, minor), names) in real_kernels() {
        assert!(names.len() >= 60, "{what}: {} names", names.len());
        for n in &names {
            let u = by_name
                .get(n.as_str())
                .unwrap_or_else(|| panic!("{what} has {n}, which the upstream list lacks"));
            let early = match u.since {
                Since::Release(a, b) => (a, b) > (major, minor),
                Since::Next => true,
                Since::Local => false,
            };
            assert!(
                !early || u.note.contains("backport"),
                "{n} is dated {:?} but {what} has it (no backport noted)",
                u.since
            );
        }
        // A name dated at or before this kernel that the kernel lacks must
        // have been moved or renamed later, or reached older kernels only
        // through a backport the list notes.
        for u in &l {
            let Since::Release(a, b) = u.since else {
                continue;
            };
            let moved = u.note.starts_with("next:");
            if (a, b) <= (major, minor) && !moved && !names.contains(u.name) {
                panic!("{} is dated {a}.{b} but {what} does not have it", u.name);
            }
        }
    }
}

#[test]
fn parse_rejects_bad_lines() {
    let bad = [
        "NO_SOCKET",
        "NO_SOCKET 5",
        "no_socket 5.17",
        "NO_SOCKET 5.17 extra",
    ];
    for b in bad {
        let text: &'static str = Box::leak(b.to_owned().into_boxed_str());
        assert!(
            std::panic::catch_unwind(|| parse(text)).is_err(),
            "{b:?} accepted"
        );
    }
    let ok = parse("# comment\n\nX_Y 7.1 # next: renamed Z\nZ next\nV local\n");
    assert_eq!(ok.len(), 3);
    assert_eq!(ok[0].since, Since::Release(7, 1));
    assert_eq!(ok[0].note, "next: renamed Z");
    assert_eq!(ok[1].since, Since::Next);
    assert_eq!(ok[2].since, Since::Local);
}
