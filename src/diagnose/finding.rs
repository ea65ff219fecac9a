//! Drops grouped and explained: the `finding` every explaining output
//! renders (`netwhy explain`, the lab's diagnosis check).
use std::collections::BTreeMap;

use serde::Serialize;

use super::{lookup, Explanation};
use crate::event::{DropEvent, Location, JSON_VERSION};

/// One explained group of drops.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub v: u32,
    pub reason: String,
    pub location: Location,
    pub netns: u32,
    pub netns_name: Option<String>,
    pub dev: Option<String>,
    pub count: u64,
    /// Up to three distinct flows, as text.
    pub flows: Vec<String>,
    /// Diagnosis id (stable; the lab's scenarios name the one they expect).
    pub cause: &'static str,
    pub meaning: &'static str,
    pub causes: &'static [&'static str],
    /// Facts gathered for this group (kernel counts, live state).
    pub evidence: Vec<String>,
    pub checks: &'static [&'static str],
    pub fix: &'static [&'static str],
    /// high: reproduced in the lab and pinned by location; medium: reproduced;
    /// low: written from kernel sources only.
    pub confidence: &'static str,
    /// One event of the group, for collectors that look up live state.
    #[serde(skip)]
    pub sample: DropEvent,
}

type Key = (String, String, u32, Option<String>);

/// Group events by (reason, function, netns, dev) and explain each group,
/// biggest first.
pub fn explain(events: &[DropEvent]) -> Vec<Finding> {
    let mut groups: BTreeMap<Key, Vec<&DropEvent>> = BTreeMap::new();
    for e in events {
        groups
            .entry((
                e.reason.clone(),
                e.location.symbol.clone(),
                e.netns,
                e.dev.clone(),
            ))
            .or_default()
            .push(e);
    }
    let mut findings: Vec<Finding> = groups.into_values().map(|evs| finding(&evs)).collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.count));
    findings
}

fn finding(evs: &[&DropEvent]) -> Finding {
    let first = evs[0];
    let x: Explanation = lookup(&first.reason, &first.location.symbol);
    let mut flows: Vec<String> = Vec::new();
    for e in evs {
        let f = e.flow.to_string();
        if !flows.contains(&f) {
            flows.push(f);
            if flows.len() == 3 {
                break;
            }
        }
    }
    let mut evidence = vec![format!(
        "the kernel reported {} drop(s) with reason {} at {}",
        evs.len(),
        first.reason,
        first.location
    )];
    if let Some(c) = x.caveat() {
        evidence.push(c.to_string());
    }
    let confidence = match (x.verified, x.refined_by.is_some()) {
        (true, true) => "high",
        (true, false) => "medium",
        _ => "low",
    };
    Finding {
        kind: "finding",
        v: JSON_VERSION,
        reason: first.reason.clone(),
        location: first.location.clone(),
        netns: first.netns,
        netns_name: first.netns_name.clone(),
        dev: first.dev.clone(),
        count: evs.len() as u64,
        flows,
        cause: x.id,
        meaning: x.meaning,
        causes: x.causes,
        evidence,
        checks: x.checks,
        fix: x.fixes,
        confidence,
        sample: first.clone(),
    }
}
