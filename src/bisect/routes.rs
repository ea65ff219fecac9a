//! Routes and policy rules as bisectable settings (`--what route`).
//!
//! A route is one setting per identity in its table (`Entry::key`: the
//! destination, source, tos, metric and table the kernel keys it by): on
//! one side only, or on both with different attributes (then "good" means
//! BROKEN's route removed and the good side's added). A rule is a setting
//! when it is on one side only (a rule is all selectors and action; there
//! is no part of it that could "differ"). Kernel-owned routes are not
//! compared (`state::route_set`).
#![forbid(unsafe_code)]

use super::collect::{Change, Name, Setting};
use crate::state::route_set::Entry;

/// The route and rule settings that differ between BROKEN and the good side.
pub fn diff(broken: &[Entry], good: &[Entry]) -> Vec<Setting> {
    let only_bad: Vec<&Entry> = broken.iter().filter(|e| !good.contains(e)).collect();
    let mut only_good: Vec<Option<&Entry>> = good
        .iter()
        .filter(|e| !broken.contains(e))
        .map(Some)
        .collect();
    let mut out = Vec::new();
    for b in only_bad {
        // The good side's route of the same identity, if any.
        let pair = only_good
            .iter_mut()
            .find(|g| g.is_some_and(|g| !b.rule && !g.rule && g.key() == b.key()))
            .and_then(Option::take);
        out.push(setting(Some(b), pair));
    }
    for g in only_good.into_iter().flatten() {
        out.push(setting(None, Some(g)));
    }
    out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    out
}

fn setting(bad: Option<&Entry>, good: Option<&Entry>) -> Setting {
    let e = bad.or(good).expect("one side");
    let (name, show): (Name, fn(&Entry) -> String) = if e.rule {
        (Name::Rule(e.describe()), |_| "present".into())
    } else {
        (Name::Route(e.key()), Entry::describe)
    };
    let text = |x: Option<&Entry>| x.map_or_else(|| "absent".to_string(), show);
    Setting {
        name,
        bad: text(bad),
        good: text(good),
        host: false,
        with: Vec::new(),
        change: Change::Route {
            bad: bad.cloned(),
            good: good.cloned(),
        },
    }
}

/// BROKEN's routes with each route setting at its broken value when
/// `broken(i)` and at its good value otherwise.
pub fn mix(base: &[Entry], settings: &[Setting], broken: impl Fn(usize) -> bool) -> Vec<Entry> {
    let mut want: Vec<Entry> = base.to_vec();
    for (i, s) in settings.iter().enumerate() {
        let Change::Route { bad, good } = &s.change else {
            continue;
        };
        let (drop, keep) = if broken(i) { (good, bad) } else { (bad, good) };
        if let Some(d) = drop {
            want.retain(|e| e != d);
        }
        if let Some(k) = keep {
            if !want.contains(k) {
                want.push(k.clone());
            }
        }
    }
    want.sort();
    want
}

/// `ip` commands that give BROKEN the good side's route or rule.
pub fn fix(netns: &str, s: &Setting) -> Vec<String> {
    let Change::Route { bad, good } = &s.change else {
        return Vec::new();
    };
    let cmd = |verb: &str, e: &Entry| {
        if e.rule {
            let d = e.describe();
            match d.strip_prefix("ipv6 ") {
                Some(d) => format!("ip -n {netns} -6 rule {verb} {d}"),
                None => format!("ip -n {netns} rule {verb} {d}"),
            }
        } else {
            format!("ip -n {netns} route {verb} {}", e.describe())
        }
    };
    let mut v = Vec::new();
    if let Some(b) = bad {
        v.push(cmd("del", b));
    }
    if let Some(g) = good {
        v.push(cmd("add", g));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rule: bool, dst: u8, ty: u8) -> Entry {
        let mut hdr = vec![libc::AF_INET as u8, 32, 0, 0, 254, 3, 0, ty];
        hdr.extend(0u32.to_ne_bytes());
        Entry {
            rule,
            hdr,
            attrs: vec![(1, vec![198, 18, 0, dst])],
            devs: Vec::new(),
        }
    }

    #[test]
    fn same_identity_pairs_and_mixes_swap_one_for_the_other() {
        let shared = entry(false, 9, 1);
        let black = entry(false, 1, 6);
        let uni = entry(false, 1, 1);
        let extra = entry(false, 5, 1);
        let rule = entry(true, 1, 1);
        let broken = vec![shared.clone(), black.clone(), extra.clone(), rule.clone()];
        let good = vec![shared.clone(), uni.clone()];
        let set = diff(&broken, &good);
        assert_eq!(set.len(), 3, "{set:?}");
        let changed = set
            .iter()
            .find(|s| s.name == Name::Route("198.18.0.1/32 table main metric 0".into()))
            .expect("the changed route is one setting");
        assert!(changed.bad.starts_with("blackhole "), "{changed:?}");
        assert!(changed.good.starts_with("198.18.0.1/32 "), "{changed:?}");
        assert!(set
            .iter()
            .any(|s| matches!(s.name, Name::Rule(_)) && s.bad == "present" && s.good == "absent"));
        // All good is the good side's list; all broken is BROKEN's.
        let mut want = good.clone();
        want.sort();
        assert_eq!(mix(&broken, &set, |_| false), want);
        let mut all = broken.clone();
        all.sort();
        assert_eq!(mix(&broken, &set, |_| true), all);
        let i = set.iter().position(|s| s == changed).unwrap();
        let only = mix(&broken, &set, |j| j == i);
        assert!(only.contains(&black) && !only.contains(&uni) && !only.contains(&extra));
    }
}
