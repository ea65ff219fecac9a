//! The packet source of `trace` and `run`: path steps decoded once, their
//! sockets' owners filled in, gathered into one timeline per packet, and
//! handed on when the packet's fate is known (or it timed out). Drops among
//! the steps also go to a diagnosis, as `netwhy explain` would see them.
use std::time::{Duration, Instant};

use super::{Diagnosis, Flow, Item, PipelineError, Sink, Source};
use crate::diagnose::finding::Finding;
use crate::event::Enricher;
use crate::probe::path::PathBackend;
use crate::trace::{decode, Limit, Owners, Packet, Timeline};

pub struct PacketStream<'b> {
    backend: &'b mut dyn PathBackend,
    enricher: &'b mut Enricher,
    consumed: u32,
    owners: Owners,
    timeline: Timeline,
    limit: Option<Limit>,
    /// Quiet time after a packet's last step before it is handed on.
    settle: Duration,
    /// A packet whose fate is not seen after this long is handed on anyway.
    timeout: Duration,
    diagnosis: Diagnosis,
    /// Packets handed on (`--count` counts originals only).
    printed: u64,
    /// Collect packets here instead of giving them to the sink (`run`
    /// reports per flow once the command exits).
    collect: Option<Vec<Packet>>,
}

impl<'b> PacketStream<'b> {
    pub fn new(
        backend: &'b mut dyn PathBackend,
        enricher: &'b mut Enricher,
        consumed: u32,
        diagnosis: Diagnosis,
    ) -> Self {
        PacketStream {
            backend,
            enricher,
            consumed,
            owners: Owners::default(),
            timeline: Timeline::default(),
            limit: None,
            settle: Duration::from_millis(30),
            timeout: Duration::from_secs(1),
            diagnosis,
            printed: 0,
            collect: None,
        }
    }

    /// Stop after `n` original packets (`--count`).
    pub fn limit(mut self, n: Option<u64>) -> Self {
        self.limit = n.map(Limit::new);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Keep packets for [`PacketStream::collected`] instead of emitting them.
    pub fn collecting(mut self) -> Self {
        self.collect = Some(Vec::new());
        self
    }

    /// Ends the stream (giving the backend back to the caller): the
    /// packets handed on, those a collecting stream kept (in the order they
    /// started), and the diagnosis of their drops.
    pub fn finish(self) -> Traced {
        let mut packets = self.collect.unwrap_or_default();
        packets.sort_by_key(|p| p.id);
        Traced {
            printed: self.printed,
            packets,
            findings: self.diagnosis.finish(),
        }
    }
}

/// What a finished [`PacketStream`] leaves.
pub struct Traced {
    pub printed: u64,
    pub packets: Vec<Packet>,
    pub findings: Vec<Finding>,
}

impl Source for PacketStream<'_> {
    fn poll(&mut self, finishing: bool, out: &mut dyn Sink) -> Result<Flow, PipelineError> {
        let batch = self.backend.next_batch(Duration::from_millis(10))?;
        let now = Instant::now();
        for raw in &batch {
            let mut step = decode(
                raw,
                self.backend.hook(raw.hook),
                self.enricher,
                self.consumed,
            );
            self.owners.fill(&mut step);
            if self.diagnosis.has_room() {
                if let Some(d) = step.as_drop() {
                    self.diagnosis.on_drop(d);
                }
            }
            self.timeline.push(step, raw.flags, now);
        }
        let ready = if finishing {
            self.timeline.drain()
        } else {
            self.timeline.ready(now, self.settle, self.timeout)
        };
        for p in ready {
            if let Some(l) = self.limit.as_mut() {
                if !l.admit(&p, now) {
                    continue;
                }
            }
            self.printed += 1;
            match self.collect.as_mut() {
                Some(v) => v.push(p),
                None => out.item(&Item::Packet(&p))?,
            }
        }
        out.flush()?;
        let done = self
            .limit
            .as_ref()
            .is_some_and(|l| l.done(&self.timeline, now, self.timeout));
        Ok(if done { Flow::Done } else { Flow::More })
    }
}
