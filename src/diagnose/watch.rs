//! Live-state traps watched while `explain` captures, for namespaces the
//! user named: some misconfigurations drop nothing on this kernel but are
//! the cause on others, or drop only under load (the seed case: a UDP
//! receive buffer near INT_MAX, fatal on kernels before the 2020 fix).
//! Sockets come and go during a capture, so the namespaces are sampled
//! every [`PERIOD`] rather than once. The same samples keep every TCP
//! listener seen with a full accept queue: a listen overflow leaves only
//! counters behind, and by the end of the capture the queue may have
//! drained or the server may have gone.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::clues::{in_ns, Clues, Subject};
use super::evidence::RCVBUF_DANGER;
use super::finding::{state_finding, Finding};
use super::kb::specific;
use crate::state::sockets::{self, Proto, SockInfo};

/// How often the watched namespaces are sampled.
pub const PERIOD: Duration = Duration::from_millis(100);

/// Traps seen so far, one set of clues per (netns, socket).
pub struct StateWatch {
    netns: Vec<(u32, Option<String>)>,
    next: Instant,
    seen: BTreeMap<(u32, String), Clues>,
    /// Listeners seen with a full accept queue, per (netns, local address):
    /// the sample with the longest queue.
    full: BTreeMap<(u32, String), SockInfo>,
}

impl StateWatch {
    pub fn new(netns: Vec<(u32, Option<String>)>) -> StateWatch {
        StateWatch {
            netns,
            next: Instant::now(),
            seen: BTreeMap::new(),
            full: BTreeMap::new(),
        }
    }

    /// Samples the namespaces when a period has passed since the last time.
    pub fn tick(&mut self) {
        if self.netns.is_empty() || Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + PERIOD;
        let inos: Vec<u32> = self.netns.iter().map(|(ino, _)| *ino).collect();
        for ino in inos {
            self.sample_listeners(ino);
        }
        for (ino, name) in &self.netns {
            let Ok(socks) = sockets::dump_in(*ino, Proto::Udp) else {
                continue;
            };
            for s in socks {
                let Some(m) = s.mem.filter(|m| m.rcvbuf >= RCVBUF_DANGER) else {
                    continue;
                };
                let key = (*ino, s.local.to_string());
                if self.seen.contains_key(&key) {
                    continue;
                }
                let mut c = Clues {
                    cause: Some(specific::UDP_RMEM_OVERFLOW),
                    ..Clues::default()
                };
                c.line(format!(
                    "udp socket {} has a receive buffer of {} bytes, {} below INT_MAX: \
                     rcvbuf + a datagram's truesize overflows a signed int on kernels before \
                     the 2020 fix, and every datagram is dropped (this kernel accepted them: \
                     no drop was seen)",
                    s.local,
                    m.rcvbuf,
                    i32::MAX as u32 - m.rcvbuf
                ));
                c.subjects.push(Subject::Socket {
                    proto: "udp".into(),
                    local: s.local.to_string(),
                    remote: s.remote.to_string(),
                    rcvbuf: Some(m.rcvbuf),
                });
                c.subjects.push(Subject::Sysctl {
                    name: "net.core.rmem_default".into(),
                    value: crate::state::sysctl::read(*ino, "net.core.rmem_default")
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default(),
                });
                c.fix(format!(
                    "{}sysctl -w net.core.rmem_default=212992 net.core.rmem_max=16777216, and drop \
                     any SO_RCVBUF(FORCE) near 2^31 from the application; restart it",
                    in_ns(name.as_deref())
                ));
                self.seen.insert(key, c);
            }
        }
    }

    fn sample_listeners(&mut self, ino: u32) {
        let Ok(socks) = sockets::dump_in(ino, Proto::Tcp) else {
            return;
        };
        for s in socks {
            let Some((q, max)) = s.accept_queue().filter(|(q, max)| q > max) else {
                continue;
            };
            let key = (ino, s.local.to_string());
            let longer = self
                .full
                .get(&key)
                .and_then(SockInfo::accept_queue)
                .is_none_or(|(old, _)| q > old);
            if longer && q > max {
                self.full.insert(key, s);
            }
        }
    }

    /// Listeners of `ino` seen with a full accept queue during the capture.
    pub fn full_listeners(&self, ino: u32) -> Vec<SockInfo> {
        self.full
            .iter()
            .filter(|((i, _), _)| *i == ino)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// One finding per trap seen.
    pub fn findings(self) -> Vec<Finding> {
        let names: BTreeMap<u32, Option<String>> = self.netns.into_iter().collect();
        self.seen
            .into_iter()
            .filter_map(|((ino, _), c)| state_finding(ino, names.get(&ino).cloned().flatten(), c))
            .collect()
    }
}
