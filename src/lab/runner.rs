//! Run one scenario end to end: build, capture with the drop probe filtered
//! to the lab's namespaces, trigger, collect, compare, tear down.
use std::time::{Duration, Instant};

use serde::Serialize;

use std::collections::HashMap;

use super::expect::Expect;
use super::scenarios::{Outcome, Scenario};
use super::{Lab, LabError};
use crate::capture::{Capture, CaptureError, CaptureSpec, Facts};
use crate::diagnose::session::Session;
use crate::event::DropEvent;
use crate::filter::KernelFilter;
use crate::pipeline::drops::DropStream;
use crate::pipeline::{Diagnosis, NullSink, PipelineError, Source};
use crate::probe::backend::Hook;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("interrupted")]
    Interrupted,
}

/// One expectation and how many captured events (or how much of a
/// counter) met it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// "drop" (at least `min` matching drops), "absent" (no matching drop)
    /// or "counter" (the counter moved by at least `min`).
    pub kind: &'static str,
    pub expected: String,
    pub min: u64,
    pub matched: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub summary: &'static str,
    pub diagnosis: &'static str,
    /// What `netwhy explain` concludes from the same drops and live state
    /// (its first finding's cause id); `diagnosis` is what it should be.
    pub explained: Option<&'static str>,
    /// That first finding in full (evidence, fix).
    pub finding: Option<crate::diagnose::finding::Finding>,
    pub trigger: String,
    pub notes: Vec<String>,
    /// Why this kernel is not affected by the modelled incident, if so.
    pub not_affected: Option<String>,
    /// The trigger failed (the application saw something unexpected).
    pub error: Option<String>,
    /// role -> (netns name, inode)
    pub namespaces: Vec<(String, String, u32)>,
    pub events: Vec<DropEvent>,
    pub checks: Vec<Check>,
    pub pass: bool,
    pub lost: u64,
    pub elapsed_ms: u64,
    pub cleanup_errors: Vec<String>,
}

/// How long to keep collecting after the trigger returned.
const SETTLE_MAX: Duration = Duration::from_millis(1500);
const SETTLE_AFTER_MATCH: Duration = Duration::from_millis(150);

pub fn run(s: &dyn Scenario, hook: Option<Hook>) -> Result<Report, RunError> {
    let t0 = Instant::now();
    let facts = Facts::load()?;
    let mut lab = Lab::new()?;
    s.build(&mut lab)?;
    super::test_pause("lab built");
    let spec = CaptureSpec {
        filter: KernelFilter {
            netns: lab.inodes(),
            ..KernelFilter::default()
        },
        all: false,
        events: true,
        aggregate: false,
        sample_new: false,
        hook,
        ring_bytes: 0,
        include_own: true,
    };
    let mut cap = Capture::start(&spec, facts)?;
    if crate::signals::stopping() {
        return Err(RunError::Interrupted);
    }
    let expects = s.expect();
    let mut before = HashMap::new();
    for c in &expects.counters {
        if !before.contains_key(c.netns) {
            before.insert(c.netns, lab.counters(c.netns)?);
        }
    }
    // The diagnosis reads live state while the trigger runs (a client's
    // socket lives only as long as its query), so drops are consumed
    // concurrently with the trigger, as `netwhy explain` would.
    let mut session = Session::new(
        lab.nss
            .iter()
            .map(|n| (n.inode, Some(n.name.clone())))
            .collect(),
    );
    match crate::probe::sendfail::SendFailProbe::attach() {
        Ok(p) => session.watch_sends(Box::new(p)),
        Err(e) => crate::log::warn(format_args!("EMSGSIZE sends will not be seen: {e}")),
    }
    let mut src = DropStream::new(&cap.probe, &mut cap.enricher)
        .map_err(pipeline_error)?
        .wait(Duration::from_millis(20))
        .diagnose(Diagnosis::new(session, usize::MAX));
    let triggered = std::thread::scope(|sc| -> Result<_, RunError> {
        let t = sc.spawn(|| s.trigger(&mut lab));
        while !t.is_finished() {
            src.poll(false, &mut NullSink).map_err(pipeline_error)?;
        }
        Ok(t.join().expect("trigger panicked"))
    })?;
    let (outcome, error) = match triggered {
        Ok(o) => (o, None),
        Err(e) => (Outcome::from("trigger failed"), Some(e.to_string())),
    };
    let settle_start = Instant::now();
    let mut matched_at: Option<Instant> = None;
    loop {
        src.poll(false, &mut NullSink).map_err(pipeline_error)?;
        let events = &src.diagnosis.as_ref().expect("lab diagnoses").drops;
        let all_met = drop_checks(&expects, events, &lab).iter().all(|c| c.ok);
        if all_met && matched_at.is_none() {
            matched_at = Some(Instant::now());
        }
        if matched_at.is_some_and(|m| m.elapsed() >= SETTLE_AFTER_MATCH)
            || settle_start.elapsed() >= SETTLE_MAX
            || crate::signals::stopping()
        {
            break;
        }
    }
    let diagnosis = src.diagnosis.take().expect("lab diagnoses");
    drop(src);
    let (findings, events) = diagnosis.conclude();
    let lost = cap.probe.counters().map(|c| c.lost).unwrap_or(0);
    let mut checks = drop_checks(&expects, &events, &lab);
    checks.extend(absent_checks(&expects, &events, &lab));
    checks.extend(counter_checks(&expects, &before, &lab));
    let pass = error.is_none() && checks.iter().all(|c| c.ok);
    let namespaces = lab
        .nss
        .iter()
        .map(|n| (n.role.clone(), n.name.clone(), n.inode))
        .collect();
    drop(cap);
    let cleanup_errors = lab.teardown();
    Ok(Report {
        scenario: s.name(),
        summary: s.summary(),
        diagnosis: s.diagnosis().map_or("none", crate::diagnose::Id::as_str),
        explained: findings.first().map(|f| f.cause.as_str()),
        finding: findings.into_iter().next(),
        trigger: outcome.text,
        notes: outcome.notes,
        not_affected: outcome.not_affected,
        error,
        namespaces,
        events,
        checks,
        pass,
        lost,
        elapsed_ms: t0.elapsed().as_millis() as u64,
        cleanup_errors,
    })
}

/// The lab's capture errors are the probe's; output goes nowhere.
fn pipeline_error(e: PipelineError) -> RunError {
    match e {
        PipelineError::Probe(p) => RunError::Capture(p.into()),
        PipelineError::Output(io) => RunError::Lab(LabError::Traffic(io.to_string())),
    }
}

fn drop_checks(x: &Expect, events: &[DropEvent], lab: &Lab) -> Vec<Check> {
    x.drops
        .iter()
        .map(|x| {
            let ino = lab.ns(x.netns).inode;
            let matched = events.iter().filter(|e| x.matches(e, ino)).count() as u64;
            Check {
                kind: "drop",
                expected: x.to_string(),
                min: x.min,
                matched,
                ok: matched >= x.min,
            }
        })
        .collect()
}

fn absent_checks(x: &Expect, events: &[DropEvent], lab: &Lab) -> Vec<Check> {
    x.absent
        .iter()
        .map(|x| {
            let ino = lab.ns(x.netns).inode;
            let matched = events.iter().filter(|e| x.matches(e, ino)).count() as u64;
            Check {
                kind: "absent",
                expected: format!("no {x}"),
                min: 0,
                matched,
                ok: matched == 0,
            }
        })
        .collect()
}

fn counter_checks(
    x: &Expect,
    before: &HashMap<&str, HashMap<String, u64>>,
    lab: &Lab,
) -> Vec<Check> {
    let mut after: HashMap<&str, HashMap<String, u64>> = HashMap::new();
    x.counters
        .iter()
        .map(|c| {
            if !after.contains_key(c.netns) {
                after.insert(c.netns, lab.counters(c.netns).unwrap_or_default());
            }
            let a = after[c.netns].get(c.key).copied();
            let b = before.get(c.netns).and_then(|m| m.get(c.key)).copied();
            let moved = match (a, b) {
                (Some(a), Some(b)) => a.saturating_sub(b),
                _ => 0,
            };
            Check {
                kind: "counter",
                expected: if a.is_none() {
                    format!("{c} (counter not found)")
                } else {
                    c.to_string()
                },
                min: c.min,
                matched: moved,
                ok: a.is_some() && moved >= c.min,
            }
        })
        .collect()
}
