//! Sends that fail with EMSGSIZE before an skb exists: a UDP datagram
//! larger than the route MTU on a socket that forbids fragmentation
//! (IP_PMTUDISC_DO), or larger than 65507 bytes. The kernel builds no
//! packet and moves no counter, so neither the drop tracepoint nor the
//! counter snapshots see them; only the syscall's return value does. A
//! source of such failures ([`SendFailures`], the send-failure probe while
//! `explain` runs) is read while capturing, and each failing socket is
//! joined at first sight with its live evidence (the socket, the route and
//! its device's MTU): by the end the sender may be gone.
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::clues::{in_ns, Clues, Subject};
use super::finding::{state_finding, Finding, Source};
use super::kb::specific;
use crate::state::route::{self, Flow};
use crate::state::sockets::{self, Proto, SockInfo};

/// One socket whose sends failed with EMSGSIZE, as the send-failure probe
/// reports it (the type is the probe's: one definition for both sides).
pub use crate::probe::sendfail::SendFailure;

/// Where failures come from: every failing socket so far, each with its
/// running count.
pub trait SendFailures {
    fn read(&mut self) -> Vec<SendFailure>;
}

/// The largest UDP payload over IPv4 (65535 - 20 - 8).
const UDP4_MAX: u64 = 65507;

/// Failing sockets seen so far, keyed by (process, fd), with the
/// evidence read at first sight.
pub struct SendWatch {
    src: Box<dyn SendFailures>,
    /// Namespaces to report; None: all.
    netns: Option<Vec<u32>>,
    next: Instant,
    /// Per (process, fd): the failure, its netns made the socket's.
    seen: BTreeMap<(u32, u32), (SendFailure, Clues)>,
    /// Sockets of namespaces nobody watches.
    ignored: Vec<(u32, u32)>,
}

impl SendWatch {
    pub fn new(src: Box<dyn SendFailures>, netns: Option<Vec<u32>>) -> SendWatch {
        SendWatch {
            src,
            netns,
            next: Instant::now(),
            seen: BTreeMap::new(),
            ignored: Vec::new(),
        }
    }

    /// Reads the source when a period has passed since the last time.
    pub fn tick(&mut self) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + super::watch::PERIOD;
        self.read();
    }

    fn read(&mut self) {
        for mut f in self.src.read() {
            let key = (f.tgid, f.fd);
            if let Some((old, _)) = self.seen.get_mut(&key) {
                // The socket's netns was found at first sight.
                f.netns = old.netns;
                *old = f;
                continue;
            }
            if self.ignored.contains(&key) {
                continue;
            }
            // A socket belongs to the netns it was created in, which need
            // not be its sender's (a thread that created it elsewhere, a
            // passed fd): look for it in the sender's first, then in the
            // watched ones.
            let sock = socket_inode(&f).and_then(|ino| {
                let mut places = vec![f.netns];
                if let Some(w) = &self.netns {
                    places.extend(w.iter().copied().filter(|n| *n != f.netns));
                }
                places.into_iter().find_map(|ns| {
                    sockets::dump_in(ns, Proto::Udp)
                        .ok()?
                        .into_iter()
                        .find(|s| s.inode == ino)
                        .map(|s| (ns, s))
                })
            });
            if let Some((ns, _)) = &sock {
                f.netns = *ns;
            }
            if self.netns.as_ref().is_some_and(|n| !n.contains(&f.netns)) {
                self.ignored.push(key);
                continue;
            }
            let c = gather(&f, sock.map(|(_, s)| s));
            self.seen.insert(key, (f, c));
        }
    }

    /// One finding per failing socket, the most failures first.
    pub fn findings(mut self, names: &HashMap<u32, Option<String>>) -> Vec<Finding> {
        self.read();
        let mut out: Vec<Finding> = self
            .seen
            .into_values()
            .filter_map(|(f, mut c)| {
                let name = names.get(&f.netns).cloned().flatten();
                c.lines.insert(
                    0,
                    format!(
                        "{} [{}] failed {} send(s) with EMSGSIZE on fd {} (last: {} bytes{}): \
                         no packet was built, no counter moved",
                        f.comm,
                        f.tgid,
                        f.count,
                        f.fd,
                        f.len,
                        f.dst.map(|d| format!(" to {d}")).unwrap_or_default()
                    ),
                );
                let mut x = state_finding(f.netns, name, c)?;
                x.count = f.count;
                x.source = Source::Syscall;
                Some(x)
            })
            .collect();
        out.sort_by_key(|f| std::cmp::Reverse(f.count));
        out
    }
}

/// The failing socket's inode, from the sender's fd table.
fn socket_inode(f: &SendFailure) -> Option<u32> {
    let l = std::fs::read_link(format!("/proc/{}/fd/{}", f.tgid, f.fd)).ok()?;
    let l = l.to_string_lossy();
    l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Live evidence for one failing socket: the socket, the route to the
/// destination and its device's MTU, and which limit the size broke.
fn gather(f: &SendFailure, sock: Option<SockInfo>) -> Clues {
    let mut c = Clues {
        cause: Some(specific::UDP_EMSGSIZE),
        ..Clues::default()
    };
    if let Some(s) = &sock {
        c.line(format!("the sender's socket: {s}"));
        c.subjects.push(Subject::Socket {
            proto: "udp".into(),
            local: s.local.to_string(),
            remote: s.remote.to_string(),
            rcvbuf: None,
        });
    }
    // A connected socket names no destination in the call: its peer.
    let dst = f.dst.or_else(|| {
        sock.as_ref()
            .map(|s| s.remote)
            .filter(|r| !r.ip().is_unspecified())
    });
    let ns = in_ns(crate::kernel::netns::NetnsNames::scan().name(f.netns));
    let v6 = dst.is_some_and(|d| d.is_ipv6());
    let hdr: u64 = if v6 { 48 } else { 28 };
    if !v6 && f.len > UDP4_MAX {
        c.line(format!(
            "{} bytes is more than a UDP datagram can carry over IPv4 ({UDP4_MAX} bytes)",
            f.len
        ));
        c.fix(format!(
            "split the message: at most {UDP4_MAX} bytes per UDP datagram (or use TCP)"
        ));
        return c;
    }
    let Some(dst) = dst else {
        c.line("the destination is unknown (the send named none and the socket is gone)");
        return c;
    };
    let route = route::get(f.netns, &Flow::to(dst.ip()));
    let Some(dev) = route.as_ref().ok().and_then(|r| r.dev.clone()) else {
        return c;
    };
    let d = dev.clone();
    let mtu = crate::state::ns::run_in(f.netns, move || crate::state::addr::mtu_here(&d))
        .ok()
        .and_then(Result::ok)
        .flatten();
    let Some(mtu) = mtu else {
        c.line(format!("{ns}ip route get {}: via {dev}", dst.ip()));
        return c;
    };
    let wire = f.len + hdr;
    c.line(format!(
        "{ns}ip route get {}: dev {dev}, MTU {mtu}; the datagram of {} bytes is {wire} bytes \
         with its IP and UDP headers{}",
        dst.ip(),
        f.len,
        if wire > u64::from(mtu) {
            ", more than the MTU, and the socket forbids fragmentation (IP_PMTUDISC_DO / \
             IPV6_DONTFRAG)"
        } else {
            " (within the device's MTU: a smaller path MTU learnt from ICMP applies, see ip \
             route get's 'mtu')"
        }
    ));
    c.fix(format!(
        "send datagrams of at most {} bytes to {dst} (MTU {mtu} of {dev} minus {hdr} bytes of \
         headers), or let the kernel fragment them (IP_MTU_DISCOVER=IP_PMTUDISC_WANT)",
        u64::from(mtu).saturating_sub(hdr)
    ));
    c.fix(format!(
        "or, if the whole path carries it, raise the MTU: {ns}ip link set {dev} mtu {wire}"
    ));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<SendFailure>);
    impl SendFailures for Fixed {
        fn read(&mut self) -> Vec<SendFailure> {
            self.0.clone()
        }
    }

    fn fail(netns: u32, len: u64, count: u64) -> SendFailure {
        SendFailure {
            netns,
            tgid: u32::MAX,
            pid: u32::MAX,
            comm: "client".into(),
            fd: 3,
            len,
            count,
            dst: Some("203.0.113.9:53".parse().unwrap()),
        }
    }

    /// Every failing socket of a watched netns is a finding with its count;
    /// other namespaces are not reported.
    #[test]
    fn failures_become_findings_of_watched_namespaces() {
        let mut other = fail(8, 2000, 1);
        other.tgid -= 1;
        let src = Fixed(vec![fail(7, 70000, 4), other]);
        let mut w = SendWatch::new(Box::new(src), Some(vec![7]));
        w.tick();
        let f = w.findings(&HashMap::new());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].cause, specific::UDP_EMSGSIZE.id);
        assert_eq!(f[0].count, 4);
        assert_eq!(f[0].source, Source::Syscall);
        assert!(f[0].evidence[0].contains("70000 bytes to 203.0.113.9:53"));
        // Over 65507 bytes: the UDP limit, whatever the route.
        assert!(
            f[0].evidence.iter().any(|l| l.contains("(65507 bytes)")),
            "{:?}",
            f[0].evidence
        );
        assert!(f[0].fix[0].contains("at most 65507"));
    }
}
