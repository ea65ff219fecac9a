//! Drops the drop tracepoint never sees: losses the kernel only counts.
//! A listener with a full accept queue frees refused SYNs with
//! `consume_skb`; a send with no route fails before an skb exists; a NIC
//! ring overflows below the stack. When a counter that means "packets
//! lost" rises in a watched namespace during the capture and no drop
//! finding of that namespace already cites it, that loss becomes a finding
//! of its own, joined with the live evidence of its cause.
//!
//! Watched namespaces are those the session snapshots (`CounterWatch`):
//! the ones named with `--netns`, every one where a drop was seen, and the
//! host when the capture is not limited to named namespaces (a capture
//! scoped to containers says nothing about the host, and reporting the
//! host's losses there would be noise the user asked to leave out).
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::clues::{in_ns, Clues, Subject};
use super::evidence::listener_evidence;
use super::finding::{state_finding, Finding};
use super::kb::{specific, Entry};
use crate::state::counters::{Counters, Delta};
use crate::state::route::{self, Flow};
use crate::state::sockets::{self, Proto, SockInfo};

/// The counters of a listen overflow (SYN refused, or a SYN-cookie ACK
/// that could not become a connection).
pub const LISTEN: [&str; 2] = ["TcpExt:ListenOverflows", "TcpExt:ListenDrops"];

/// What a loss counter means, and the diagnosis it leads to.
struct Loss {
    /// Counters of one loss; the finding's count is the largest change.
    names: &'static [&'static str],
    cause: Entry,
}

/// The loss counters netwhy turns into findings. Per-device `rx_dropped`
/// and the host-wide softnet backlog are handled apart (see [`findings`]).
const LOSSES: &[Loss] = &[
    Loss {
        names: &LISTEN,
        cause: specific::ACCEPT_QUEUE_FULL,
    },
    Loss {
        names: &["Ip:OutNoRoutes", "Ip6:OutNoRoutes"],
        cause: specific::SEND_NO_ROUTE,
    },
    Loss {
        names: &["Udp:SndbufErrors", "Udp6:SndbufErrors"],
        cause: specific::UDP_SNDBUF_FULL,
    },
];

/// The counter-only losses of one namespace: (cause, counters that moved
/// with their change), skipping counters in `cited` (a drop finding of the
/// namespace already explains them). `host`: this is the host namespace,
/// the only one the host-wide softnet counters are charged to.
fn losses(deltas: &[Delta], cited: &[String], host: bool) -> Vec<(Entry, Vec<(String, u64)>)> {
    let up = |name: &str| -> Option<(String, u64)> {
        let d = Counters::moved(deltas, name);
        (d > 0 && !cited.iter().any(|c| c == name)).then(|| (name.to_string(), d as u64))
    };
    let mut out = Vec::new();
    for l in LOSSES {
        let moved: Vec<(String, u64)> = l.names.iter().filter_map(|n| up(n)).collect();
        if !moved.is_empty() {
            out.push((l.cause, moved));
        }
    }
    if host {
        if let Some(m) = up("softnet:dropped") {
            out.push((specific::SOFTNET_BACKLOG_FULL, vec![m]));
        }
    }
    for d in deltas {
        let is_rx = d.name.starts_with("dev:") && d.name.ends_with(":rx_dropped");
        if is_rx && d.name != "dev:lo:rx_dropped" {
            if let Some(m) = up(&d.name) {
                out.push((specific::DEV_RX_DROPPED, vec![m]));
            }
        }
    }
    out
}

/// Live state behind one counter-only loss, as the namespace is now (and,
/// for listeners, as sampled while capturing).
pub struct Context<'a> {
    pub netns: u32,
    pub netns_name: Option<&'a str>,
    /// Listeners seen with a full accept queue during the capture.
    pub full_listeners: Vec<SockInfo>,
}

/// One finding per counter-only loss of one namespace, biggest first.
pub fn findings(
    before: &Counters,
    after: &Counters,
    cited: &[String],
    host: bool,
    cx: &Context<'_>,
) -> Vec<Finding> {
    let deltas = Counters::delta(before, after);
    let mut out: Vec<Finding> = losses(&deltas, cited, host)
        .into_iter()
        .filter_map(|(cause, moved)| {
            let mut c = Clues {
                cause: Some(cause),
                ..Clues::default()
            };
            let list: Vec<String> = moved.iter().map(|(n, d)| format!("{n} +{d}")).collect();
            c.line(format!(
                "kernel counters during the capture: {} (no drop event: the kernel freed \
                 these packets without reporting a drop reason, or never built them)",
                list.join(", ")
            ));
            for (name, change) in &moved {
                c.subjects.push(Subject::Counter {
                    name: name.clone(),
                    change: *change,
                });
            }
            gather(cause, &moved, cx, &mut c);
            let count = moved.iter().map(|(_, d)| *d).max().unwrap_or(0);
            let mut f = state_finding(cx.netns, cx.netns_name.map(str::to_owned), c)?;
            f.count = count;
            f.source = super::finding::Source::Counter;
            Some(f)
        })
        .collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.count));
    out
}

fn gather(cause: Entry, moved: &[(String, u64)], cx: &Context<'_>, c: &mut Clues) {
    if cause.id == specific::ACCEPT_QUEUE_FULL.id {
        let mut ls = cx.full_listeners.clone();
        if ls.is_empty() {
            // Not sampled (a namespace nobody named): the listeners now,
            // the fullest first, those with anything queued.
            ls = sockets::dump_in(cx.netns, Proto::Tcp)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s.accept_queue().is_some_and(|(q, _)| q > 0))
                .collect();
            ls.sort_by_key(|s| std::cmp::Reverse(s.accept_queue().map(|(q, _)| q)));
        }
        listener_evidence(cx.netns, cx.netns_name, &ls, c);
    } else if cause.id == specific::SEND_NO_ROUTE.id {
        no_route(moved, cx, c);
    } else if cause.id == specific::UDP_SNDBUF_FULL.id {
        sndbuf(cx, c);
    }
}

/// The send-buffer sysctls, and the UDP sockets whose send buffer is
/// (nearly) full now: the sender may still be there.
fn sndbuf(cx: &Context<'_>, c: &mut Clues) {
    let ns = in_ns(cx.netns_name);
    let read = |k: &str| {
        crate::state::sysctl::read(cx.netns, k)
            .ok()
            .map(|v| v.trim().to_string())
    };
    let (def, max) = (read("net.core.wmem_default"), read("net.core.wmem_max"));
    if let (Some(d), Some(m)) = (&def, &max) {
        c.line(format!(
            "sysctls in this netns: net.core.wmem_default={d}, net.core.wmem_max={m} (SO_SNDBUF \
             may not exceed wmem_max)"
        ));
        c.subjects.push(Subject::Sysctl {
            name: "net.core.wmem_default".into(),
            value: d.clone(),
        });
    }
    for s in sockets::dump_in(cx.netns, Proto::Udp).unwrap_or_default() {
        if let Some(m) = s
            .mem
            .filter(|m| m.sndbuf > 0 && m.wmem_alloc * 2 >= m.sndbuf)
        {
            c.line(format!(
                "udp socket {s}: {} of {} send-buffer bytes in use now",
                m.wmem_alloc, m.sndbuf
            ));
        }
    }
    const WANT: u64 = 16 << 20;
    let raise = match max.and_then(|m| m.parse::<u64>().ok()) {
        Some(m) if m >= WANT => String::new(),
        _ => format!("{ns}sysctl -w net.core.wmem_max={WANT}, then "),
    };
    c.fix(format!(
        "{raise}a larger SO_SNDBUF in the sender (or pace it: the link drains slower than it \
         sends)"
    ));
}

/// Addresses from the documentation ranges: no specific route covers them,
/// so a lookup that fails for them means there is no default route.
const OFF_LINK: [&str; 2] = ["198.51.100.1", "2001:db8::1"];

fn no_route(moved: &[(String, u64)], cx: &Context<'_>, c: &mut Clues) {
    let ns = in_ns(cx.netns_name);
    for (name, _) in moved {
        let (fam, probe) = if name.starts_with("Ip6") {
            ("-6 ", OFF_LINK[1])
        } else {
            ("", OFF_LINK[0])
        };
        let dst: IpAddr = probe.parse().expect("literal");
        match route::get(cx.netns, &Flow::to(dst)) {
            Ok(r) if !r.kind.discards() => c.line(format!(
                "a default route exists now ({probe} goes via {}): the failed sends were to \
                 a destination no route covered, or the default route was added since",
                r.gateway
                    .map_or_else(|| "a direct route".into(), |g| g.to_string())
            )),
            res => {
                let why = match res {
                    Ok(r) => format!("a {:?} route", r.kind).to_lowercase(),
                    Err(e) => e.to_string(),
                };
                c.line(format!(
                    "{ns}ip {fam}route get {probe}: {why}: this namespace has no default route"
                ));
                c.fix(format!(
                    "{ns}ip {fam}route add default via <gateway>  (or a route for the \
                     destination's prefix)"
                ));
            }
        }
    }
}

/// The counters drop findings of each namespace already cite.
pub fn cited(findings: &[Finding]) -> BTreeMap<u32, Vec<String>> {
    let mut m: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for f in findings {
        let proto = f.sample.as_ref().and_then(|e| e.flow.proto.as_deref());
        let mut names = super::corroborate::relevant(f.reason, proto, f.dev.as_deref());
        if f.cause == super::refine::SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL.id {
            names.extend(LISTEN.iter().map(|n| n.to_string()));
        }
        m.entry(f.netns).or_default().extend(names);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kv: &[(&str, u64)]) -> Counters {
        Counters {
            values: kv.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn ids(l: &[(Entry, Vec<(String, u64)>)]) -> Vec<&'static str> {
        l.iter().map(|(e, _)| e.id.as_str()).collect()
    }

    #[test]
    fn loss_counters_become_causes() {
        let b = c(&[
            ("TcpExt:ListenOverflows", 5),
            ("TcpExt:ListenDrops", 5),
            ("Ip:OutNoRoutes", 0),
            ("Ip:InReceives", 10),
            ("softnet:dropped", 1),
            ("dev:eth0:rx_dropped", 0),
            ("dev:lo:rx_dropped", 0),
        ]);
        let a = c(&[
            ("TcpExt:ListenOverflows", 8),
            ("TcpExt:ListenDrops", 9),
            ("Ip:OutNoRoutes", 2),
            ("Ip:InReceives", 90),
            ("softnet:dropped", 4),
            ("dev:eth0:rx_dropped", 7),
            ("dev:lo:rx_dropped", 1),
        ]);
        let d = Counters::delta(&b, &a);
        let l = losses(&d, &[], false);
        assert_eq!(
            ids(&l),
            ["accept-queue-full", "send-no-route", "dev-rx-dropped"]
        );
        assert_eq!(
            l[0].1,
            [
                ("TcpExt:ListenOverflows".to_string(), 3),
                ("TcpExt:ListenDrops".to_string(), 4)
            ]
        );
        // softnet_stat is host-wide: charged to the host only.
        assert!(ids(&losses(&d, &[], true)).contains(&"softnet-backlog-full"));
        // A drop finding that cites a counter explains it already.
        let cited = vec!["Ip:OutNoRoutes".to_string(), "dev:eth0:rx_dropped".into()];
        assert_eq!(ids(&losses(&d, &cited, false)), ["accept-queue-full"]);
        // Traffic alone is no loss.
        let t = Counters::delta(&c(&[("Ip:InReceives", 1)]), &c(&[("Ip:InReceives", 9)]));
        assert!(losses(&t, &[], true).is_empty());
    }

    /// The SYN-cookie ACK drop is the listen overflow: its finding claims
    /// the listen counters, so the same incident is not reported twice.
    #[test]
    fn syncookie_drop_claims_the_listen_counters() {
        let e = crate::diagnose::finding::tests::event("NO_SOCKET", "cookie_v4_check");
        let ns = e.netns;
        let f = crate::diagnose::finding::explain(&[e], None);
        let claimed = cited(&f);
        let d = Counters::delta(
            &c(&[("TcpExt:ListenOverflows", 0)]),
            &c(&[("TcpExt:ListenOverflows", 2)]),
        );
        assert!(losses(&d, &claimed[&ns], false).is_empty());
        // Another drop in the namespace leaves the overflow its own finding.
        let f = crate::diagnose::finding::explain(
            &[crate::diagnose::finding::tests::event(
                "NO_SOCKET",
                "__udp4_lib_rcv",
            )],
            None,
        );
        assert_eq!(
            ids(&losses(&d, &cited(&f)[&ns], false)),
            ["accept-queue-full"]
        );
    }

    #[test]
    fn counter_finding_has_its_counters_and_count() {
        let b = c(&[("Udp:SndbufErrors", 1)]);
        let a = c(&[("Udp:SndbufErrors", 6)]);
        let cx = Context {
            netns: 0,
            netns_name: Some("blue"),
            full_listeners: Vec::new(),
        };
        let f = findings(&b, &a, &[], false, &cx);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].cause, specific::UDP_SNDBUF_FULL.id);
        assert_eq!(f[0].count, 5);
        assert_eq!(f[0].source, crate::diagnose::finding::Source::Counter);
        assert!(
            f[0].evidence[0].contains("Udp:SndbufErrors +5"),
            "{:?}",
            f[0].evidence
        );
        assert_eq!(
            f[0].subjects,
            [Subject::Counter {
                name: "Udp:SndbufErrors".into(),
                change: 5
            }]
        );
        assert!(!f[0].fix.is_empty());
        assert!(findings(&b, &b, &[], false, &cx).is_empty());
    }
}
