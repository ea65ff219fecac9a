//! Which drop groups get a Prometheus series of their own, and keeping
//! every exported counter monotonic while groups come, go and get folded.
//!
//! The kernel aggregate can hold thousands of groups (a namespace per pod,
//! a device per veth); a scrape target must not. A group is *shown* (its
//! own series) while its reason has fewer than `top_per_reason` shown groups
//! and the exporter fewer than `max_series`; every other group's new drops
//! are added to its reason's `other` series. Membership is sticky, so no
//! counter ever goes down: a shown series is an accumulator of the drops
//! counted while it was shown, and a folded group's drops go to `other`
//! only while it is folded — summed over all series, nothing is counted
//! twice or lost. Slots free up when a shown group has been idle for
//! `stale_after` and a busier group waits, and groups of namespaces that
//! are gone are forgotten after `stale_after` (their kernel entries too).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::Hash;

/// What the tracker needs to know of a group's key.
pub trait SeriesKey: Clone + Eq + Hash {
    /// The kernel reason value: the unit of top-N and of folding.
    fn reason(&self) -> u32;
    /// The network namespace inode: gone namespaces are forgotten.
    fn netns(&self) -> u32;
}

/// Cardinality bounds (`netwhy export --top-per-reason/--max-series/--stale-after`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub top_per_reason: usize,
    pub max_series: usize,
    pub stale_after_secs: f64,
}

/// One group as read from the kernel this scrape: cumulative since its
/// kernel entry was created.
#[derive(Debug, Clone)]
pub struct Observed<K> {
    pub key: K,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
struct Track {
    /// Kernel values at the last scrape (what the next delta starts from).
    raw_count: u64,
    raw_bytes: u64,
    /// What this group's series shows: drops counted while it was shown.
    count: u64,
    bytes: u64,
    shown: bool,
    /// Refused a series by `max_series` (counted once per group).
    capped: bool,
    last_change: f64,
    /// Still present in the kernel map at the last scrape.
    present: bool,
}

/// A group's persisted series (`--state-file`): restored shown, so a
/// restart is not a counter reset for Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved<K> {
    pub key: K,
    pub count: u64,
    pub bytes: u64,
}

/// Per reason: drops and bytes counted in its `other` series.
pub type Folded = Vec<(u32, u64, u64)>;

/// The result of one scrape: what to expose and what to delete.
#[derive(Debug, Clone)]
pub struct Plan<K> {
    /// Groups with their own series: (key, drops, bytes).
    pub shown: Vec<(K, u64, u64)>,
    /// Per reason: the `other` series (drops, bytes).
    pub folded: Folded,
    /// Groups currently folded into `other`.
    pub folded_groups: usize,
    /// Groups ever refused a series by the hard cap.
    pub capped_total: u64,
    /// Groups forgotten this scrape (their namespace is gone): delete
    /// their kernel entries.
    pub removed: Vec<K>,
}

#[derive(Debug)]
pub struct Tracker<K: SeriesKey> {
    limits: Limits,
    groups: HashMap<K, Track>,
    folded: HashMap<u32, (u64, u64)>,
    capped_total: u64,
    /// Shown groups per reason and in all: kept as counts, not recounted,
    /// so a scrape costs O(groups) with 10k series.
    shown_per_reason: HashMap<u32, usize>,
    shown_total: usize,
}

impl<K: SeriesKey> Tracker<K> {
    pub fn new(limits: Limits) -> Self {
        Tracker {
            limits,
            groups: HashMap::new(),
            folded: HashMap::new(),
            capped_total: 0,
            shown_per_reason: HashMap::new(),
            shown_total: 0,
        }
    }

    /// Series of an earlier run, shown again at once (as far as the limits
    /// allow; the rest go to `other` with their counts).
    pub fn restore(&mut self, now: f64, saved: Vec<Saved<K>>, folded: Folded) {
        for (reason, c, b) in folded {
            let o = self.folded.entry(reason).or_default();
            o.0 += c;
            o.1 += b;
        }
        for s in saved {
            let room = self.has_room(s.key.reason());
            let t = Track {
                raw_count: 0,
                raw_bytes: 0,
                count: if room { s.count } else { 0 },
                bytes: if room { s.bytes } else { 0 },
                shown: false,
                capped: false,
                last_change: now,
                present: false,
            };
            if !room {
                let o = self.folded.entry(s.key.reason()).or_default();
                o.0 += s.count;
                o.1 += s.bytes;
            }
            let key = s.key.clone();
            self.groups.insert(s.key, t);
            if room {
                self.set_shown(&key, true);
            }
        }
    }

    /// What to persist: every shown series and the `other` sums.
    pub fn saved(&self) -> (Vec<Saved<K>>, Folded) {
        let shown = self
            .groups
            .iter()
            .filter(|(_, t)| t.shown)
            .map(|(k, t)| Saved {
                key: k.clone(),
                count: t.count,
                bytes: t.bytes,
            })
            .collect();
        let folded = self.folded.iter().map(|(r, (c, b))| (*r, *c, *b)).collect();
        (shown, folded)
    }

    fn shown_in(&self, reason: u32) -> usize {
        self.shown_per_reason.get(&reason).copied().unwrap_or(0)
    }

    fn shown_total(&self) -> usize {
        self.shown_total
    }

    /// Marks the group shown or not, keeping the counts right.
    fn set_shown(&mut self, key: &K, shown: bool) {
        let Some(t) = self.groups.get_mut(key) else {
            return;
        };
        if t.shown == shown {
            return;
        }
        t.shown = shown;
        let n = self.shown_per_reason.entry(key.reason()).or_default();
        if shown {
            *n += 1;
            self.shown_total += 1;
        } else {
            *n -= 1;
            self.shown_total -= 1;
        }
    }

    fn has_room(&self, reason: u32) -> bool {
        self.shown_in(reason) < self.limits.top_per_reason
            && self.shown_total() < self.limits.max_series
    }

    /// Takes this scrape's kernel groups. `alive(netns)` says whether a
    /// namespace still exists; it is asked only about idle groups.
    pub fn update(
        &mut self,
        now: f64,
        observed: Vec<Observed<K>>,
        alive: &mut dyn FnMut(u32) -> bool,
    ) -> Plan<K> {
        for t in self.groups.values_mut() {
            t.present = false;
        }
        // Deltas since the last scrape; a kernel count below the last one
        // means its entry was recreated: all of it is new.
        let mut fresh: Vec<(K, u64, u64)> = Vec::new();
        for o in observed {
            let t = self.groups.entry(o.key.clone()).or_insert(Track {
                raw_count: 0,
                raw_bytes: 0,
                count: 0,
                bytes: 0,
                shown: false,
                capped: false,
                last_change: now,
                present: true,
            });
            t.present = true;
            let (dc, db) = if o.count < t.raw_count {
                (o.count, o.bytes)
            } else {
                (o.count - t.raw_count, o.bytes.saturating_sub(t.raw_bytes))
            };
            t.raw_count = o.count;
            t.raw_bytes = o.bytes;
            if dc == 0 {
                continue;
            }
            t.last_change = now;
            if t.shown {
                t.count += dc;
                t.bytes += db;
            } else {
                fresh.push((o.key, dc, db));
            }
        }
        // Busiest waiting group first.
        fresh.sort_by_key(|f| std::cmp::Reverse(f.1));
        // Reasons with no idle shown group left this scrape: not searched
        // again (a search walks every group).
        let mut no_idle: Vec<u32> = Vec::new();
        for (key, dc, db) in fresh {
            let reason = key.reason();
            if self.shown_in(reason) >= self.limits.top_per_reason
                && !no_idle.contains(&reason)
                && !self.evict_idle(now, reason)
            {
                no_idle.push(reason);
            }
            let per_reason = self.shown_in(reason) < self.limits.top_per_reason;
            let under_cap = self.shown_total() < self.limits.max_series;
            if per_reason && under_cap {
                self.set_shown(&key, true);
                let t = self.groups.get_mut(&key).expect("inserted above");
                t.count += dc;
                t.bytes += db;
            } else {
                let t = self.groups.get_mut(&key).expect("inserted above");
                if per_reason && !under_cap && !t.capped {
                    t.capped = true;
                    self.capped_total += 1;
                }
                let o = self.folded.entry(reason).or_default();
                o.0 += dc;
                o.1 += db;
            }
        }
        let removed = self.forget(now, alive);
        let mut plan = Plan {
            shown: Vec::new(),
            folded: Vec::new(),
            folded_groups: 0,
            capped_total: self.capped_total,
            removed,
        };
        for (k, t) in &self.groups {
            if t.shown {
                plan.shown.push((k.clone(), t.count, t.bytes));
            } else if t.present {
                plan.folded_groups += 1;
            }
        }
        plan.folded = self.folded.iter().map(|(r, (c, b))| (*r, *c, *b)).collect();
        plan.folded.sort_unstable();
        plan
    }

    /// Unshows the longest-idle shown group of `reason`, if idle long
    /// enough: its series ends, its count is kept should it come back.
    fn evict_idle(&mut self, now: f64, reason: u32) -> bool {
        let stale = self.limits.stale_after_secs;
        let victim = self
            .groups
            .iter()
            .filter(|(k, t)| t.shown && k.reason() == reason && now - t.last_change >= stale)
            .min_by(|a, b| a.1.last_change.total_cmp(&b.1.last_change))
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                self.set_shown(&k, false);
                true
            }
            None => false,
        }
    }

    /// Drops groups idle for `stale_after` whose namespace is gone, and
    /// groups the kernel no longer has that are not shown.
    fn forget(&mut self, now: f64, alive: &mut dyn FnMut(u32) -> bool) -> Vec<K> {
        let stale = self.limits.stale_after_secs;
        let mut gone: Vec<K> = Vec::new();
        for (k, t) in &self.groups {
            let idle = now - t.last_change >= stale;
            if (idle && !alive(k.netns())) || (!t.present && !t.shown && idle) {
                gone.push(k.clone());
            }
        }
        for k in &gone {
            self.set_shown(k, false);
            self.groups.remove(k);
        }
        gone
    }

    /// Groups tracked (shown, folded or idle): bounded by the kernel map.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
#[path = "series_tests.rs"]
mod tests;
