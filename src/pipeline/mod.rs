//! The one path from a probe to every output.
//!
//! A *source* (this module's `drops` and `packets`) reads the kernel's
//! records, enriches them into the Event model, hands drops to a diagnosis
//! session when one is attached, and yields typed [`Item`]s. A [`Sink`]
//! renders items: text, JSON Lines, the live table and pcap-ng are sinks
//! (src/output/sink.rs), so a new view or an exporter is one new sink and
//! nothing else. [`drive`] is the only capture loop: it polls a source until
//! a stop condition holds and ends quietly when the reader of our output
//! went away (`| head`). Signals (Ctrl-C, SIGTERM, SIGHUP) only set the stop
//! flag, so every command stops the same way: last poll, trailing items
//! (findings, summary), undo.
#![forbid(unsafe_code)]

pub mod drops;
pub mod packets;
mod sendfail;
pub mod summary;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::diagnose::finding::Finding;
use crate::diagnose::session::Session;
use crate::event::{DropEvent, DropGroup};
use crate::probe::ProbeError;
use crate::trace::flows::FlowReport;
use crate::trace::Packet;
pub use summary::{Summary, TraceSummary};

/// What a capture yields, borrowed for the time a sink renders it.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// One drop, as the ring buffer delivered it.
    Drop(&'a DropEvent),
    /// The aggregate table: a live redraw (only to sinks that want them) or
    /// the final one, with the summary that closes it.
    Table {
        groups: &'a [DropGroup],
        summary: &'a Summary,
        live: bool,
    },
    /// One traced packet: every step and its fate.
    Packet(&'a Packet),
    /// What each local endpoint's packets came to (`run`).
    Flows(&'a [FlowReport]),
    /// Diagnoses, and the line text output puts above them when there are any.
    Findings {
        findings: &'a [Finding],
        heading: Option<&'static str>,
    },
    /// The record that closes a capture.
    Closing(Closing<'a>),
}

/// The closing record of each kind of capture.
#[derive(Debug, Clone, Copy)]
pub enum Closing<'a> {
    /// `drops --events`.
    Drops(&'a Summary),
    /// `explain`.
    Explain(&'a Summary),
    /// `trace`.
    Trace(&'a TraceSummary),
}

/// A renderer of items. Errors are the writer's; a reader that went away
/// is recognised by [`drive`] and [`finish`], not by each sink.
pub trait Sink {
    fn item(&mut self, item: &Item<'_>) -> io::Result<()>;
    /// Called after each batch, so a slow trickle of events is seen at once.
    fn flush(&mut self) -> io::Result<()>;
    /// True when the sink redraws as it goes (the table on a terminal):
    /// sources then produce live items between batches.
    fn wants_live(&self) -> bool {
        false
    }
}

/// Renders nothing: for callers that only want a source's side effects
/// (the lab collects drops and diagnoses them itself).
pub struct NullSink;

impl Sink for NullSink {
    fn item(&mut self, _: &Item<'_>) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every item to both sinks, in order: stdout's renderer and a pcap-ng file.
pub struct Tee<A, B>(pub A, pub B);

impl<A: Sink, B: Sink> Sink for Tee<A, B> {
    fn item(&mut self, item: &Item<'_>) -> io::Result<()> {
        self.0.item(item)?;
        self.1.item(item)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
    fn wants_live(&self) -> bool {
        self.0.wants_live() || self.1.wants_live()
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn item(&mut self, item: &Item<'_>) -> io::Result<()> {
        (**self).item(item)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn wants_live(&self) -> bool {
        (**self).wants_live()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("reading ring buffer: {0}")]
    Probe(#[from] ProbeError),
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
}

/// True when the error means the reader went away (`| head`): we stop quietly.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// A source asked for more: keep polling, or it has all it wants (a
/// `--count` reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    More,
    Done,
}

/// Something that turns probe records into items.
pub trait Source {
    /// Reads what the kernel queued (waiting a little when nothing is), and
    /// gives the sink what is ready. `finishing`: this is the last poll,
    /// hand over everything still held back.
    fn poll(&mut self, finishing: bool, out: &mut dyn Sink) -> Result<Flow, PipelineError>;
}

/// How a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A stop condition held, or the source had enough: trailing items follow.
    Finished,
    /// The reader of our output went away: stop quietly, print nothing more.
    ReaderGone,
}

/// When to stop: a signal, a deadline, or a condition of the command's own
/// (`run` stops when its child has exited and lingered).
pub struct Until<'a> {
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    also: Option<Box<dyn FnMut() -> bool + 'a>>,
}

impl<'a> Until<'a> {
    /// Stop on Ctrl-C, SIGTERM or SIGHUP (handlers installed on first use).
    pub fn signalled() -> Self {
        Until {
            stop: crate::signals::stop_flag(),
            deadline: None,
            also: None,
        }
    }

    /// Also stop `secs` after `from` (negative counts as zero).
    pub fn after(mut self, from: Instant, secs: Option<f64>) -> Self {
        self.deadline = secs.map(|d| from + Duration::from_secs_f64(d.max(0.0)));
        self
    }

    /// Also stop when `f` says so; it is asked once per poll.
    pub fn or(mut self, f: impl FnMut() -> bool + 'a) -> Self {
        self.also = Some(Box::new(f));
        self
    }

    /// True once any condition holds.
    pub fn due(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.also.as_mut().is_some_and(|f| f())
    }
}

/// The capture loop: poll `src` into `out` until `until` holds (one last
/// poll then drains the source) or the source is done.
pub fn drive(
    src: &mut dyn Source,
    out: &mut dyn Sink,
    until: &mut Until<'_>,
) -> Result<Ended, PipelineError> {
    loop {
        let finishing = until.due();
        match src.poll(finishing, out) {
            Ok(Flow::Done) => return Ok(Ended::Finished),
            Ok(Flow::More) if finishing => return Ok(Ended::Finished),
            Ok(Flow::More) => {}
            Err(PipelineError::Output(e)) if is_broken_pipe(&e) => return Ok(Ended::ReaderGone),
            Err(e) => return Err(e),
        }
    }
}

/// The trailing items of a capture, then a flush. A reader that went away
/// is not an error, and nothing more is written to it.
pub fn finish(out: &mut dyn Sink, items: &[Item<'_>]) -> Result<Ended, PipelineError> {
    let r = items
        .iter()
        .try_for_each(|i| out.item(i))
        .and_then(|_| out.flush());
    match r {
        Ok(()) => Ok(Ended::Finished),
        Err(e) if is_broken_pipe(&e) => Ok(Ended::ReaderGone),
        Err(e) => Err(e.into()),
    }
}

/// A diagnosis riding along a capture: every drop kept (up to `max`, so a
/// flood keeps memory bounded; the kernel counters still count all) goes to
/// the session, which reads live state at the first drop of each group.
pub struct Diagnosis {
    pub session: Session,
    pub drops: Vec<DropEvent>,
    max: usize,
}

impl Diagnosis {
    pub fn new(session: Session, max: usize) -> Self {
        Diagnosis {
            session,
            drops: Vec::new(),
            max,
        }
    }

    /// Room for one more drop? Callers skip enriching what would not be kept.
    pub fn has_room(&self) -> bool {
        self.drops.len() < self.max
    }

    pub fn on_drop(&mut self, e: DropEvent) {
        if self.has_room() {
            self.session.on_drop(&e);
            self.drops.push(e);
        }
    }

    /// The findings, as `netwhy explain` gives them.
    pub fn finish(self) -> Vec<Finding> {
        self.conclude().0
    }

    /// The findings and the drops they were drawn from.
    pub fn conclude(self) -> (Vec<Finding>, Vec<DropEvent>) {
        let findings = self.session.finish(&self.drops);
        (findings, self.drops)
    }
}
