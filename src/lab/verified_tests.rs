//! The knowledge base marks verified exactly what a lab scenario
//! reproduces: derived from the catalogue, so adding a scenario (or
//! dropping one) moves the flags with it. Here, not in diagnose, because
//! the lab depends on diagnose and not the other way round.
use std::collections::HashSet;

use crate::diagnose::kb::{self, HINT_MAX};
use crate::diagnose::{refine, Id};

/// (reason, function) pairs some lab scenario expects the kernel to report.
fn lab_reproduced() -> Vec<(&'static str, &'static str)> {
    super::scenarios::ALL
        .iter()
        .flat_map(|s| s.expect().drops)
        .map(|d| (d.reason, d.function))
        .collect()
}

#[test]
fn verified_exactly_the_lab_reproduced_reasons() {
    let lab = lab_reproduced();
    for e in kb::all() {
        assert_eq!(
            e.verified,
            lab.iter().any(|(r, _)| *r == e.reason),
            "{}: verified flag does not match the lab catalog",
            e.reason
        );
        if e.verified {
            assert!(!e.fixes.is_empty(), "{}: verified without a fix", e.reason);
        }
    }
    for r in refine::all() {
        let reproduced = lab
            .iter()
            .any(|(reason, f)| *reason == r.reason && r.functions.contains(f));
        assert_eq!(
            r.verified, reproduced,
            "{}: verified flag does not match the lab catalog",
            r.id
        );
        if r.verified {
            assert!(
                r.fixes.is_some_and(|f| !f.is_empty()),
                "{}: verified without a fix",
                r.id
            );
        }
    }
}

/// Every diagnosis a lab scenario names exists in the knowledge base (an
/// entry, a refinement or an evidence-driven one), and the evidence-driven
/// ones are marked verified exactly when a scenario reproduces them.
#[test]
fn lab_diagnoses_exist_and_specifics_verified_by_the_lab() {
    let lab_ids: HashSet<Id> = super::scenarios::ALL
        .iter()
        .filter_map(|s| s.diagnosis())
        .collect();
    let mut known: HashSet<Id> = kb::all().map(|e| e.id).collect();
    known.extend(refine::all().iter().map(|r| r.id));
    known.extend(kb::specifics().iter().map(|e| e.id));
    for id in &lab_ids {
        assert!(
            known.contains(id),
            "lab diagnosis {id} has no knowledge-base entry"
        );
    }
    for e in kb::specifics() {
        assert_eq!(
            e.verified,
            lab_ids.contains(&e.id),
            "{}: verified flag",
            e.id
        );
        assert!(!e.fixes.is_empty() && !e.meaning.is_empty(), "{}", e.id);
        assert!(
            e.hint.chars().count() <= HINT_MAX,
            "{}: hint too long",
            e.id
        );
        assert_eq!(kb::specific(e.id.as_str()).map(|f| f.id), Some(e.id));
    }
    // Ids are unique across all three tables.
    let mut all: Vec<Id> = kb::all().map(|e| e.id).collect();
    all.extend(refine::all().iter().map(|r| r.id));
    all.extend(kb::specifics().iter().map(|e| e.id));
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "duplicate diagnosis ids");
}
