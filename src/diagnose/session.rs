//! One diagnosis session: everything `explain` (and the lab runner) does
//! while drops stream in, and the findings at the end. Live state is read
//! as early as possible — at a group's first drop (sockets, neighbours,
//! sysctls), by tracers armed on the first firewall drop, and by sampling
//! the watched namespaces — because much of it is gone by the end of the
//! capture window.
use std::collections::HashMap;

use super::clues::Clues;
use super::corroborate::{self, CounterWatch};
use super::counters;
use super::evidence;
use super::finding::{explain, explain_key as group_key, ExplainKey as GroupKey, Finding};
use super::rules::RuleWatch;
use super::watch::StateWatch;
use crate::event::DropEvent;
use crate::state::counters::Counters;

pub struct Session {
    rules: RuleWatch,
    state: StateWatch,
    first_sight: HashMap<GroupKey, Clues>,
    counters: CounterWatch,
    /// Names of the watched namespaces, for counter-only findings.
    names: HashMap<u32, Option<String>>,
    /// The host's netns inode when its counters are watched.
    host: Option<u32>,
    /// Sends that failed with EMSGSIZE (no skb, no counter).
    sends: Option<super::emsgsize::SendWatch>,
}

impl Session {
    /// `watched`: namespaces (inode, name) to sample for live-state traps.
    pub fn new(watched: Vec<(u32, Option<String>)>) -> Session {
        let mut counters = CounterWatch::default();
        let mut rules = RuleWatch::default();
        for (ino, name) in &watched {
            counters.start(*ino);
            rules.watch_legacy(*ino, name.clone());
        }
        Session {
            counters,
            rules,
            names: watched.iter().cloned().collect(),
            state: StateWatch::new(watched),
            first_sight: HashMap::new(),
            host: None,
            sends: None,
        }
    }

    /// Also watch the host's counters (a capture not limited to named
    /// namespaces): its counter-only losses become findings too.
    pub fn watch_host(&mut self) {
        let ino = crate::kernel::netns::current_netns();
        if ino != 0 {
            self.counters.start(ino);
            self.host = Some(ino);
        }
    }

    /// Also report sends that fail with EMSGSIZE, read from `src` (the
    /// send-failure probe): in the watched namespaces, or anywhere when the
    /// host is watched (call after [`Session::watch_host`]).
    pub fn watch_sends(&mut self, src: Box<dyn super::emsgsize::SendFailures>) {
        let only = self
            .host
            .is_none()
            .then(|| self.names.keys().copied().collect());
        self.sends = Some(super::emsgsize::SendWatch::new(src, only));
    }

    /// Call for every drop, as soon as it is read.
    pub fn on_drop(&mut self, e: &DropEvent) {
        self.rules.on_drop(e);
        self.counters.start(e.netns);
        self.names
            .entry(e.netns)
            .or_insert_with(|| e.netns_name.clone());
        self.first_sight
            .entry(group_key(e))
            .or_insert_with(|| evidence::gather(e));
    }

    /// Call often (every ring-buffer poll): samples watched namespaces.
    pub fn tick(&mut self) {
        self.state.tick();
        if let Some(s) = &mut self.sends {
            s.tick();
        }
    }

    /// Findings for `events` (biggest group first), then live-state traps.
    /// Ends the rule tracers.
    pub fn finish(mut self, events: &[DropEvent]) -> Vec<Finding> {
        let mut findings = explain(events, crate::kernel::release());
        let mut rule_clues = self.rules.finish();
        let counters = self.counters.finish();
        for f in &mut findings {
            let Some(key) = f.sample.as_ref().map(group_key) else {
                continue;
            };
            if let Some(c) = self.first_sight.remove(&key) {
                f.absorb(c);
            }
            if let Some((before, after)) = counters.get(&f.netns) {
                let l = if f.cause == super::unknown::ID {
                    corroborate::unknown_line(before, after, corroborate::UNKNOWN_CAP)
                } else {
                    let mut names = corroborate::relevant(f.reason, key_proto(f), f.dev.as_deref());
                    // The SYN-cookie ACK drop is a listen overflow: it counts as one.
                    if f.cause == super::refine::SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL.id {
                        names.extend(counters::LISTEN.iter().map(|n| n.to_string()));
                    }
                    corroborate::line(&names, before, after)
                };
                f.evidence.extend(l);
                device_counter(f, before, after);
            }
            let netns = f.netns;
            if f.reason == "NETFILTER_DROP" {
                for (_, c) in rule_clues.iter_mut().filter(|(ns, _)| *ns == netns) {
                    f.absorb(std::mem::take(c));
                }
            }
        }
        // Drops that are one incident (a too-big packet and the ICMP about
        // it that a firewall ate) become one finding, first.
        super::correlate::pmtu_blackholes(&mut findings, events);
        // Losses only counters saw come after what drops and traps show,
        // the named namespaces' before the host's.
        let cited = counters::cited(&findings);
        let mut counted = Vec::new();
        for (ino, (before, after)) in &counters {
            let host = self.host == Some(*ino);
            let cx = counters::Context {
                netns: *ino,
                netns_name: self.names.get(ino).and_then(|n| n.as_deref()),
                full_listeners: self.state.full_listeners(*ino),
            };
            let none = Vec::new();
            let cited = cited.get(ino).unwrap_or(&none);
            counted.push((host, counters::findings(before, after, cited, host, &cx)));
        }
        counted.sort_by_key(|(host, _)| *host);
        findings.extend(self.state.findings());
        if let Some(s) = self.sends.take() {
            findings.extend(s.findings(&self.names));
        }
        findings.extend(counted.into_iter().flat_map(|(_, f)| f));
        findings
    }
}

/// Drops the device's rx_dropped counts itself (a frame of a protocol
/// nothing handles, a full per-CPU backlog): the counter that moved, with
/// the device in its name, is what the finding is about.
fn device_counter(f: &mut Finding, before: &Counters, after: &Counters) {
    if !matches!(f.reason, "UNHANDLED_PROTO" | "CPU_BACKLOG") {
        return;
    }
    let Some(dev) = f.dev.as_deref() else { return };
    let name = format!("dev:{dev}:rx_dropped");
    let d = Counters::moved(&Counters::delta(before, after), &name);
    if d > 0 {
        f.subjects.push(super::clues::Subject::Counter {
            name,
            change: d as u64,
        });
    }
}

fn key_proto(f: &Finding) -> Option<&str> {
    f.sample.as_ref().and_then(|e| e.flow.proto.as_deref())
}

/// One drop diagnosed on its own, as `explain` would at its first sight:
/// the cause the exporter attaches to a new drop group. Live evidence is
/// read now (sockets, sysctls, routes...). `rules_window`: watch firewall
/// rules for that long to name the one that drops (legacy counters, or an
/// nftrace table for nft drops); None arms nothing on the system.
pub fn diagnose_one(e: &DropEvent, rules_window: Option<std::time::Duration>) -> Option<Finding> {
    let mut f = explain(std::slice::from_ref(e), crate::kernel::release())
        .into_iter()
        .next()?;
    f.absorb(evidence::gather(e));
    if let (Some(w), "NETFILTER_DROP") = (rules_window, e.reason) {
        let mut rules = RuleWatch::default();
        rules.on_drop(e);
        std::thread::sleep(w);
        for (ns, c) in rules.finish() {
            if ns == e.netns {
                f.absorb(c);
            }
        }
    }
    Some(f)
}
