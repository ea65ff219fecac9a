//! One scrape: the kernel aggregate, named, bounded, with causes and
//! doctor findings, as a [`Snapshot`].
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::metrics::{Labels, Snapshot};
use super::series::{Observed, SeriesKey};
use super::{lock, Shared};
use crate::event::{cstr, Enricher};
use crate::probe::drop::RawAggKey;
use crate::probe::ProbeError;

/// A series' identity: what its labels say. Kernel groups that differ
/// only by the offset inside one function share a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupLabels {
    pub reason: u32,
    /// Function symbol, without offset.
    pub location: String,
    pub netns: u32,
    /// Device name, empty when none.
    pub dev: String,
}

impl SeriesKey for GroupLabels {
    fn reason(&self) -> u32 {
        self.reason
    }
    fn netns(&self) -> u32 {
        self.netns
    }
}

impl GroupLabels {
    pub fn of_event(e: &crate::event::DropEvent) -> GroupLabels {
        GroupLabels {
            reason: e.reason_code,
            location: e.location.symbol.clone(),
            netns: e.netns,
            dev: e.dev.clone().unwrap_or_default(),
        }
    }
}

/// Network namespaces that exist, re-read at most every few seconds: the
/// tracker asks only about idle groups, and a /proc walk per scrape would
/// cost more than the scrape.
#[derive(Debug, Default)]
pub struct LiveNetns {
    set: HashSet<u32>,
    read: Option<Instant>,
}

const LIVE_NETNS_MAX_AGE: Duration = Duration::from_secs(5);

impl LiveNetns {
    pub fn contains(&mut self, ino: u32) -> bool {
        if self.read.is_none_or(|t| t.elapsed() >= LIVE_NETNS_MAX_AGE) {
            self.set = crate::kernel::netns::Holders::scan().inodes().collect();
            self.read = Some(Instant::now());
        }
        ino == 0 || self.set.contains(&ino)
    }
}

/// The `netns` label: the `ip netns` name or `init`, else the inode (a
/// process-derived name like `1234/nginx` would change with the process).
fn netns_label(en: &mut Enricher, ino: u32) -> String {
    match en.netns_name(ino) {
        Some(n) if !n.contains('/') => n,
        _ => ino.to_string(),
    }
}

fn group_labels(en: &mut Enricher, g: &GroupLabels, pods: bool) -> Labels {
    let mut l: Labels = vec![
        ("reason".into(), en.reason(g.reason).to_string()),
        ("location".into(), g.location.clone()),
        ("netns".into(), netns_label(en, g.netns)),
        ("dev".into(), g.dev.clone()),
    ];
    if pods {
        let c = en.container(g.netns);
        let c = c.as_deref();
        let get = |f: Option<&String>| f.cloned().unwrap_or_default();
        l.push((
            "pod_namespace".into(),
            get(c.and_then(|c| c.namespace.as_ref())),
        ));
        l.push(("pod".into(), get(c.and_then(|c| c.pod.as_ref()))));
        l.push(("container".into(), get(c.and_then(|c| c.name.as_ref()))));
    }
    l
}

fn other_labels(en: &mut Enricher, reason: u32, pods: bool) -> Labels {
    let mut l: Labels = vec![
        ("reason".into(), en.reason(reason).to_string()),
        ("location".into(), "other".into()),
        ("netns".into(), "other".into()),
        ("dev".into(), "other".into()),
    ];
    if pods {
        for k in ["pod_namespace", "pod", "container"] {
            l.push((k.into(), String::new()));
        }
    }
    l
}

/// Reads the kernel and builds this scrape's exposition.
pub fn snapshot(sh: &Shared) -> Result<Snapshot, ProbeError> {
    let raw = sh.reader.groups()?;
    let counters = sh.reader.counters()?;
    let pods = sh.opts.pod_labels;
    let mut en = lock(&sh.enricher);
    // Kernel groups → series keys (summed), remembering the raw keys so
    // forgotten series can be deleted from the kernel map.
    let mut sums: HashMap<GroupLabels, (u64, u64)> = HashMap::new();
    let mut raw_keys: HashMap<GroupLabels, Vec<RawAggKey>> = HashMap::new();
    for (k, v) in &raw {
        let g = GroupLabels {
            reason: k.reason,
            // The symbol alone: `Enricher::location` clones three strings.
            location: en
                .kallsyms
                .resolve(k.location)
                .map_or_else(|| format!("{:#x}", k.location), |s| s.name.to_string()),
            netns: k.netns,
            dev: cstr(&v.ifname).unwrap_or_default(),
        };
        let s = sums.entry(g.clone()).or_default();
        s.0 += v.count;
        s.1 += v.bytes;
        raw_keys.entry(g).or_default().push(*k);
    }
    let observed = sums
        .into_iter()
        .map(|(key, (count, bytes))| Observed { key, count, bytes })
        .collect();
    let plan = {
        let mut live = lock(&sh.live_netns);
        let mut alive = |ns: u32| live.contains(ns);
        lock(&sh.tracker).update(sh.now(), observed, &mut alive)
    };
    for g in &plan.removed {
        for k in raw_keys.get(g).into_iter().flatten() {
            sh.reader.remove(k)?;
        }
        lock(&sh.causes).remove(g);
    }
    let causes = lock(&sh.causes);
    let mut snap = Snapshot {
        hidden: counters.hidden,
        folded_groups: plan.folded_groups as u64,
        capped_total: plan.capped_total,
        build: sh.build.clone(),
        lost: vec![
            ("ring", counters.lost),
            ("aggregate_full", counters.agg_full),
            ("cause_queue", sh.cause_queue_lost.load(Ordering::Relaxed)),
        ],
        ..Snapshot::default()
    };
    for (g, count, bytes) in &plan.shown {
        let labels = group_labels(&mut en, g, pods);
        if let Some(c) = causes.get(g) {
            let mut l = labels[..4].to_vec();
            l.push(("cause".into(), c.cause.to_string()));
            l.push(("summary".into(), c.summary.clone()));
            l.push(("subject".into(), c.subject.clone()));
            snap.causes.push(l);
        }
        snap.drops.push((labels, *count, *bytes));
    }
    drop(causes);
    for (reason, count, bytes) in &plan.folded {
        snap.drops
            .push((other_labels(&mut en, *reason, pods), *count, *bytes));
    }
    drop(en);
    snap.drops.sort_by(|a, b| a.0.cmp(&b.0));
    snap.causes.sort();
    snap.doctor = lock(&sh.doctor).clone();
    snap.last_scrape_secs = sh.last_scrape_ns.load(Ordering::Relaxed) as f64 / 1e9;
    Ok(snap)
}
