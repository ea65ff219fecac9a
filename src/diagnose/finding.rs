//! Drops grouped and explained: the `finding` every explaining output
//! renders (`netwhy explain`, the lab's diagnosis check).
use std::collections::BTreeMap;

use serde::Serialize;

use super::clues::{Clues, Subject};
use super::{kb, lookup, Explanation};
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
    /// What the diagnosis is about (port, sysctl, rule...), as fields.
    pub subjects: Vec<Subject>,
    pub checks: &'static [&'static str],
    /// Concrete commands from the evidence first, then the generic ones.
    pub fix: Vec<String>,
    /// high: reproduced in the lab and pinned by location; medium: reproduced;
    /// low: written from kernel sources only.
    pub confidence: &'static str,
    /// "drop" for a group of drops; "state" for a trap seen in live state
    /// while no packet was dropped (yet): reason and location are empty.
    pub source: &'static str,
    /// One event of the group, for collectors that look up live state.
    #[serde(skip)]
    pub sample: Option<DropEvent>,
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
        subjects: Vec::new(),
        checks: x.checks,
        fix: x.fixes.iter().map(|f| f.to_string()).collect(),
        confidence,
        source: "drop",
        sample: Some(first.clone()),
    }
}

impl Finding {
    /// Takes in what the collectors found; an evidence-driven diagnosis
    /// replaces the reason's generic texts and raises the confidence (the
    /// cause was checked against live state, not inferred from the reason).
    pub fn absorb(&mut self, c: Clues) {
        self.evidence.extend(c.lines);
        self.subjects.extend(c.subjects);
        let mut fix = c.fixes;
        if let Some(e) = c.cause.and_then(kb::specific) {
            self.cause = e.id;
            self.meaning = e.meaning;
            self.causes = e.causes;
            self.checks = e.checks;
            self.confidence = if e.verified { "high" } else { "medium" };
            // The generic "unverified" caveat was about the reason's entry.
            self.evidence.retain(|l| l != super::UNVERIFIED_NOTE);
            fix.extend(e.fixes.iter().map(|f| f.to_string()));
        } else {
            fix.append(&mut self.fix);
        }
        self.fix = fix;
    }
}

/// A finding about live state with no drop behind it (a receive buffer
/// near INT_MAX seen while capturing), diagnosed as `kb::specific(id)`.
pub fn state_finding(netns: u32, netns_name: Option<String>, c: Clues) -> Option<Finding> {
    let e = kb::specific(c.cause?)?;
    let mut f = Finding {
        kind: "finding",
        v: JSON_VERSION,
        reason: String::new(),
        location: Location {
            symbol: String::new(),
            offset: 0,
            module: None,
            address: String::new(),
        },
        netns,
        netns_name,
        dev: None,
        count: 0,
        flows: Vec::new(),
        cause: e.id,
        meaning: e.meaning,
        causes: e.causes,
        evidence: Vec::new(),
        subjects: Vec::new(),
        checks: e.checks,
        fix: Vec::new(),
        confidence: "medium",
        source: "state",
        sample: None,
    };
    f.absorb(c);
    Some(f)
}
