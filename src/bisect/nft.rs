//! The nft ruleset as bisectable settings (`--what nft`): one setting per
//! table, `FAMILY NAME`, present on one side only or with different
//! content. A table's content is its stateless listing (`nft -s list
//! ruleset`: counter and quota values are state, not configuration).
//! Applying a side replaces the table with that side's text (or deletes
//! it), every changed table of a configuration in one `nft -f`
//! transaction. BROKEN's whole ruleset is journalled first and reloaded
//! at the end (`undo::netset`).
#![forbid(unsafe_code)]

use super::collect::{Change, Name, Setting};
use super::BisectError;
use crate::undo::netset::nft_in;

/// (`FAMILY NAME`, table text) of each table, in listing order.
pub type Tables = Vec<(String, String)>;

/// Cut a `nft list ruleset` listing into its tables: each starts with
/// `table FAMILY NAME {` at the start of a line and ends at the first `}`
/// there.
pub fn split(listing: &str) -> Tables {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in listing.lines() {
        if let Some(head) = line.strip_prefix("table ") {
            let id = head.trim_end_matches('{').trim().to_string();
            cur = Some((id, String::new()));
        }
        if let Some((_, text)) = cur.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
        if line == "}" {
            out.extend(cur.take());
        }
    }
    out
}

fn nft(netns: &str, args: &[&str], stdin: &str) -> Result<String, BisectError> {
    nft_in(netns, args, stdin)
        .map_err(|e| BisectError::Io(format!("in netns {netns}: {e}")))?
        .ok_or_else(|| BisectError::NoNetns(netns.to_string()))
}

/// The stateless listing of named netns `netns`.
pub fn stateless(netns: &str) -> Result<String, BisectError> {
    nft(netns, &["-s", "list", "ruleset"], "")
}

/// The full listing (counter values included), what a restore loads.
pub fn stateful(netns: &str) -> Result<String, BisectError> {
    nft(netns, &["list", "ruleset"], "")
}

/// Check (`nft -c`) that `script` would load in `netns`, changing nothing.
pub fn check(netns: &str, script: &str) -> Result<(), BisectError> {
    nft(netns, &["-c", "-f", "-"], script).map(|_| ())
}

/// Load `script` in `netns` as one transaction.
pub fn load(netns: &str, script: &str) -> Result<(), BisectError> {
    nft(netns, &["-f", "-"], script).map(|_| ())
}

/// The script that makes table `id` be `text` (None: absent). Declaring
/// the table first lets `delete` work whether or not it exists (nft 1.0.6
/// has no `destroy`).
pub fn replace(id: &str, text: Option<&str>) -> String {
    format!("table {id}\ndelete table {id}\n{}", text.unwrap_or(""))
}

/// FNV-1a 64 of a table's text: enough to tell two contents apart in a
/// report (the text itself is in `nft list table` on each side).
pub fn digest(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("fnv64:{h:016x}")
}

/// The table settings that differ.
pub fn diff(broken: &Tables, good: &Tables) -> Vec<Setting> {
    let find = |t: &Tables, id: &str| t.iter().find(|(i, _)| i == id).map(|(_, x)| x.clone());
    let mut ids: Vec<&String> = broken.iter().chain(good).map(|(i, _)| i).collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let (b, g) = (find(broken, id), find(good, id));
        if b == g {
            continue;
        }
        let (bad, good) = match (&b, &g) {
            (Some(b), Some(g)) => (digest(b), digest(g)),
            (Some(_), None) => ("present".into(), "absent".into()),
            _ => ("absent".into(), "present".into()),
        };
        out.push(Setting {
            name: Name::NftTable(id.clone()),
            bad,
            good,
            host: false,
            with: Vec::new(),
            change: Change::Nft { bad: b, good: g },
        });
    }
    out
}

/// Commands that give BROKEN the good side's table.
pub fn fix(netns: &str, good_ns: Option<&str>, s: &Setting) -> Vec<String> {
    let (Name::NftTable(id), Change::Nft { bad, good }) = (&s.name, &s.change) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    if bad.is_some() {
        v.push(format!("ip netns exec {netns} nft delete table {id}"));
    }
    if good.is_some() {
        let from = good_ns.unwrap_or("GOOD");
        v.push(format!(
            "ip netns exec {from} nft list table {id} | ip netns exec {netns} nft -f -"
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str =
        "table inet filter {\n\tchain input {\n\t\tdrop\n\t}\n}\ntable ip nat {\n}\n";

    #[test]
    fn listings_split_into_tables_and_differences_are_per_table() {
        let t = split(LISTING);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].0, "inet filter");
        assert!(t[0].1.ends_with("\t}\n}\n"), "{:?}", t[0].1);
        assert_eq!(t[1], ("ip nat".into(), "table ip nat {\n}\n".into()));
        let good = split("table ip nat {\n\tflags dormant\n}\ntable ip6 x {\n}\n");
        let d = diff(&t, &good);
        let names: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|s| (s.name.as_str(), s.bad.as_str(), s.good.as_str()))
            .collect();
        assert_eq!(names[0], ("inet filter", "present", "absent"));
        assert_eq!(names[1].0, "ip nat");
        assert!(names[1].1.starts_with("fnv64:") && names[1].1 != names[1].2);
        assert_eq!(names[2], ("ip6 x", "absent", "present"));
        assert!(diff(&t, &t).is_empty());
    }

    #[test]
    fn replacing_declares_then_deletes() {
        assert_eq!(
            replace("inet f", None),
            "table inet f\ndelete table inet f\n"
        );
        assert!(replace("inet f", Some("table inet f {\n}\n")).ends_with("table inet f {\n}\n"));
    }
}
