//! Run one scenario end to end: build, capture with the drop probe filtered
//! to the lab's namespaces, trigger, collect, compare, tear down.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::scenarios::Scenario;
use super::{Lab, LabError};
use crate::capture::{Capture, CaptureError, CaptureSpec, Facts};
use crate::event::DropEvent;
use crate::probe::backend::Hook;
use crate::probe::drop::{KernelFilter, RawDrop};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("interrupted")]
    Interrupted,
}

/// One expectation and how many captured events met it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub expected: String,
    pub min: u64,
    pub matched: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub summary: &'static str,
    pub diagnosis: &'static str,
    pub trigger: String,
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
    pause_for_tests();
    let spec = CaptureSpec {
        filter: KernelFilter {
            netns: lab.inodes(),
            ..KernelFilter::default()
        },
        all: false,
        events: true,
        aggregate: false,
        hook,
        ring_bytes: 0,
    };
    let mut cap = Capture::start(&spec, facts)?;
    let queue: Rc<RefCell<Vec<RawDrop>>> = Rc::default();
    let q = queue.clone();
    let ring = cap
        .probe
        .ring(move |raw| q.borrow_mut().push(*raw))
        .map_err(CaptureError::from)?;
    if crate::signals::stopping() {
        return Err(RunError::Interrupted);
    }
    let trigger = s.trigger(&lab)?;
    let expects = s.expect();
    let mut events: Vec<DropEvent> = Vec::new();
    let settle_start = Instant::now();
    let mut matched_at: Option<Instant> = None;
    loop {
        let _ = ring.poll(Duration::from_millis(20));
        let _ = ring.consume();
        for raw in queue.borrow_mut().drain(..) {
            events.push(cap.enricher.drop_event(&raw));
        }
        let all_met = checks(&expects, &events, &lab).iter().all(|c| c.matched >= c.min);
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
    drop(ring);
    let lost = cap.probe.counters().map(|c| c.lost).unwrap_or(0);
    let checks = checks(&expects, &events, &lab);
    let pass = checks.iter().all(|c| c.matched >= c.min);
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
        diagnosis: s.diagnosis(),
        trigger,
        namespaces,
        events,
        checks,
        pass,
        lost,
        elapsed_ms: t0.elapsed().as_millis() as u64,
        cleanup_errors,
    })
}

fn checks(expects: &[super::expect::ExpectDrop], events: &[DropEvent], lab: &Lab) -> Vec<Check> {
    expects
        .iter()
        .map(|x| {
            let ino = lab.ns(x.netns).inode;
            Check {
                expected: x.to_string(),
                min: x.min,
                matched: events.iter().filter(|e| x.matches(e, ino)).count() as u64,
            }
        })
        .collect()
}

/// Test hook: with NETWHY_TEST_PAUSE_MS set, announce that the lab is built
/// and wait, so a test can kill the run at a known point and check that
/// `netwhy lab clean` removes what it left.
fn pause_for_tests() {
    if let Some(ms) = std::env::var("NETWHY_TEST_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        eprintln!("netwhy: lab built, pausing {ms} ms");
        std::thread::sleep(Duration::from_millis(ms));
    }
}
