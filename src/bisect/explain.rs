//! What `netwhy explain` sees while the repro fails with only the culprits
//! broken: the same capture, scoped to BROKEN, for the length of one run
//! (plus a moment for packets in flight), diagnosed the same way.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::{Capture, CaptureSpec, Facts};
use crate::diagnose::finding::Finding;
use crate::diagnose::session::Session;
use crate::filter::KernelFilter;
use crate::pipeline::drops::DropStream;
use crate::pipeline::{drive, Diagnosis, NullSink, Until};

use super::runner::Repro;
use super::BisectError;

/// Packets still in flight when the repro exits.
const LINGER: Duration = Duration::from_millis(300);

/// Capture drops in netns `ino` (named `name`) during one run of `repro`.
pub fn during(repro: &Repro, ino: u32, name: &str) -> Result<Vec<Finding>, BisectError> {
    let facts = Facts::load().map_err(|e| BisectError::Explain(e.to_string()))?;
    let spec = CaptureSpec {
        filter: KernelFilter {
            netns: vec![ino],
            ..KernelFilter::default()
        },
        all: false,
        events: true,
        aggregate: false,
        sample_new: false,
        hook: None,
        ring_bytes: 0,
        include_own: false,
    };
    let mut cap = Capture::start(&spec, facts).map_err(|e| BisectError::Explain(e.to_string()))?;
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let (repro, done) = (repro.clone(), done.clone());
        std::thread::spawn(move || {
            let r = repro.once();
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let mut ended: Option<Instant> = None;
    let mut until = Until::signalled().or(|| {
        if ended.is_none() && done.load(Ordering::SeqCst) {
            ended = Some(Instant::now());
        }
        ended.is_some_and(|t| t.elapsed() >= LINGER)
    });
    let diagnosis = Diagnosis::new(Session::new(vec![(ino, Some(name.to_string()))]), 10_000);
    let mut src = DropStream::new(&cap.probe, &mut cap.enricher)
        .map_err(|e| BisectError::Explain(e.to_string()))?
        .wait(Duration::from_millis(20))
        .diagnose(diagnosis);
    drive(&mut src, &mut NullSink, &mut until).map_err(|e| BisectError::Explain(e.to_string()))?;
    drop(until);
    let diagnosis = src.diagnosis.take().expect("diagnosing");
    drop(src);
    worker
        .join()
        .map_err(|_| BisectError::Explain("repro thread panicked".into()))??;
    Ok(diagnosis.finish())
}
