//! Sources over the drop probe: single drops from its ring buffer, and
//! the in-kernel aggregate read as a table.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Summary;
use super::{Diagnosis, Flow, Item, PipelineError, Sink, Source};
use crate::event::{cstr, DropGroup, Enricher, GroupKey};
use crate::probe::drop::{DropProbe, EventReader};

/// Drops from the ring buffer, enriched once, printed and/or diagnosed.
pub struct DropStream<'c> {
    reader: EventReader<'c>,
    enricher: &'c mut Enricher,
    /// Drops handed on so far.
    pub delivered: u64,
    limit: u64,
    print: bool,
    pub diagnosis: Option<Diagnosis>,
    wait: Duration,
}

impl<'c> DropStream<'c> {
    pub fn new(probe: &'c DropProbe, enricher: &'c mut Enricher) -> Result<Self, PipelineError> {
        Ok(DropStream {
            reader: probe.events()?,
            enricher,
            delivered: 0,
            limit: u64::MAX,
            print: true,
            diagnosis: None,
            wait: Duration::from_millis(10),
        })
    }

    /// Stop after `n` drops (`--count`).
    pub fn limit(mut self, n: Option<u64>) -> Self {
        self.limit = n.unwrap_or(u64::MAX);
        self
    }

    /// Diagnose the drops instead of printing each one.
    pub fn diagnose(mut self, d: Diagnosis) -> Self {
        self.print = false;
        self.diagnosis = Some(d);
        self
    }

    /// How long one poll waits for the first record.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

impl Source for DropStream<'_> {
    fn poll(&mut self, _finishing: bool, out: &mut dyn Sink) -> Result<Flow, PipelineError> {
        let batch = self.reader.next_batch(self.wait)?;
        for raw in &batch {
            if self.delivered >= self.limit {
                break;
            }
            let keep = self.diagnosis.as_ref().is_some_and(Diagnosis::has_room);
            if !(self.print || keep) {
                continue;
            }
            self.delivered += 1;
            let ev = self.enricher.drop_event(raw);
            if self.print {
                out.item(&Item::Drop(&ev))?;
            }
            if let Some(d) = self.diagnosis.as_mut() {
                d.on_drop(ev);
            }
        }
        if !batch.is_empty() {
            out.flush()?;
        }
        if let Some(d) = self.diagnosis.as_mut() {
            d.session.tick();
        }
        Ok(if self.delivered >= self.limit {
            Flow::Done
        } else {
            Flow::More
        })
    }
}

/// The in-kernel aggregate, read every `interval` into rows with a rate.
/// A sink that wants live items gets a redraw each interval; the final
/// table is the caller's to emit after the loop ([`GroupTable::groups`]).
pub struct GroupTable<'c> {
    probe: &'c DropProbe,
    enricher: &'c mut Enricher,
    started: Instant,
    interval: Duration,
    count: Option<u64>,
    prev: HashMap<GroupKey, u64>,
    last_draw: Instant,
    pub groups: Vec<DropGroup>,
}

impl<'c> GroupTable<'c> {
    pub fn new(
        probe: &'c DropProbe,
        enricher: &'c mut Enricher,
        started: Instant,
        interval: Duration,
        count: Option<u64>,
    ) -> Self {
        GroupTable {
            probe,
            enricher,
            started,
            interval,
            count,
            prev: HashMap::new(),
            last_draw: Instant::now(),
            groups: Vec::new(),
        }
    }

    /// The closing summary of the table as it stands.
    pub fn summary(&self) -> Result<Summary, PipelineError> {
        let c = self.probe.counters()?;
        Ok(Summary::new(
            self.probe.hook().as_str(),
            self.started.elapsed().as_secs_f64(),
            &c,
            0,
            self.groups.len(),
        ))
    }
}

impl Source for GroupTable<'_> {
    fn poll(&mut self, finishing: bool, out: &mut dyn Sink) -> Result<Flow, PipelineError> {
        std::thread::sleep(Duration::from_millis(50));
        let redraw = self.last_draw.elapsed() >= self.interval;
        if !(redraw || self.count.is_some() || finishing) {
            return Ok(Flow::More);
        }
        let raw = self.probe.groups()?;
        let total: u64 = raw.iter().map(|(_, v)| v.count).sum();
        let hit_count = self.count.is_some_and(|n| total >= n);
        if redraw || hit_count || finishing {
            let secs = self.last_draw.elapsed().as_secs_f64().max(1e-3);
            self.groups = raw
                .iter()
                .map(|(k, v)| {
                    let key = GroupKey::from(k);
                    let before = self.prev.get(&key).copied().unwrap_or(0);
                    let rate = v.count.saturating_sub(before) as f64 / secs;
                    self.prev.insert(key, v.count);
                    let mut g = self.enricher.group(
                        k,
                        v.netns_src,
                        cstr(&v.ifname),
                        v.count,
                        v.bytes,
                        rate,
                    );
                    g.hint = crate::diagnose::hint_for(&g);
                    g
                })
                .collect();
            crate::event::sort_by_rate(&mut self.groups);
            self.last_draw = Instant::now();
            if out.wants_live() && !(hit_count || finishing) {
                let s = self.summary()?;
                out.item(&Item::Table {
                    groups: &self.groups,
                    summary: &s,
                    live: true,
                })?;
                out.flush()?;
            }
        }
        Ok(if hit_count { Flow::Done } else { Flow::More })
    }
}
