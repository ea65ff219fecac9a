//! The cause of each drop group: the kernel streams a group's first drop
//! (the probe's `sample_new`), and a worker diagnoses it as `explain`
//! would, at most `causes_per_sec` a second, caching the answer per group.
//! A flood of new groups fills the bounded queue; what does not fit is
//! counted (`netwhy_lost_events_total{source="cause_queue"}`), and the
//! group's next sample (after it is forgotten) tries again.
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lock, GroupLabels, Shared};
use crate::event::DropEvent;
use crate::pipeline::{Flow, PipelineError, Sink, Source};
use crate::probe::drop::EventReader;

/// A group's diagnosis, as exposed.
#[derive(Debug, Clone)]
pub struct Cause {
    pub cause: &'static str,
    pub summary: String,
    /// What the evidence points at (port, sysctl, rule...), or empty.
    pub subject: String,
}

const QUEUE: usize = 256;

/// The pipeline source of `netwhy export`: new-group samples from the ring
/// buffer, enriched and queued for the worker; also rewrites the state
/// file now and then.
pub struct Sampler<'p> {
    reader: EventReader<'p>,
    shared: Arc<Shared>,
    queue: Option<SyncSender<DropEvent>>,
    last_save: Instant,
}

/// How often the state file is rewritten while running (and at exit).
const SAVE_EVERY: Duration = Duration::from_secs(30);

impl<'p> Sampler<'p> {
    /// Starts the diagnosis worker when causes are on.
    pub fn new(reader: EventReader<'p>, shared: Arc<Shared>) -> Sampler<'p> {
        let queue = shared.opts.causes.then(|| {
            let (tx, rx) = sync_channel(QUEUE);
            let sh = shared.clone();
            std::thread::Builder::new()
                .name("nw-causes".into())
                .spawn(move || worker(&sh, &rx))
                .expect("spawning a thread");
            tx
        });
        Sampler {
            reader,
            shared,
            queue,
            last_save: Instant::now(),
        }
    }
}

impl Source for Sampler<'_> {
    fn poll(&mut self, _finishing: bool, _out: &mut dyn Sink) -> Result<Flow, PipelineError> {
        let batch = self.reader.next_batch(Duration::from_millis(200))?;
        if self.last_save.elapsed() >= SAVE_EVERY {
            self.last_save = Instant::now();
            if let Err(e) = super::save(&self.shared) {
                crate::log::warn(format_args!("{e}"));
            }
        }
        let Some(q) = &self.queue else {
            return Ok(Flow::More);
        };
        for raw in &batch {
            let e = lock(&self.shared.enricher).drop_event(raw);
            match q.try_send(e) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.shared.cause_queue_lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(Flow::More)
    }
}

fn worker(sh: &Shared, rx: &Receiver<DropEvent>) {
    let gap = Duration::from_secs_f64(1.0 / sh.opts.causes_per_sec.max(0.01));
    let mut last: Option<Instant> = None;
    while let Ok(e) = rx.recv() {
        if sh.stopping() {
            return;
        }
        let key = GroupLabels::of_event(&e);
        if lock(&sh.causes).contains_key(&key) {
            continue;
        }
        if let Some(t) = last {
            if let Some(wait) = gap.checked_sub(t.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        last = Some(Instant::now());
        let Some(f) = crate::diagnose::session::diagnose_one(&e, sh.opts.rules_window) else {
            continue;
        };
        let cause = Cause {
            cause: f.cause.as_str(),
            summary: first_sentence(f.meaning),
            subject: f.subjects.first().map(|s| s.short()).unwrap_or_default(),
        };
        crate::log::debug(format_args!(
            "cause of {} at {} in netns {}: {}",
            e.reason, e.location.symbol, e.netns, cause.cause
        ));
        lock(&sh.causes).insert(key, cause);
    }
}

/// The meaning's first sentence: a label value, not a paragraph.
fn first_sentence(s: &str) -> String {
    let end = s.find(". ").map(|i| i + 1).unwrap_or(s.len());
    s[..end].trim().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_sentence_stops_at_the_first_full_stop() {
        assert_eq!(super::first_sentence("A. B. C."), "A.");
        assert_eq!(super::first_sentence("no stop"), "no stop");
        assert_eq!(super::first_sentence("v1.2 is out. Yes"), "v1.2 is out.");
    }
}
