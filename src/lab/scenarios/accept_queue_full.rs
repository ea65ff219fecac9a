//! A TCP listener that never accept()s: its accept queue fills up. Without
//! syncookies the refused SYNs are freed with consume_skb (only
//! TcpExt:ListenOverflows moves); with syncookies the final ACKs that find
//! the queue full die as NO_SOCKET in cookie_v4_check (cookie_v6_check
//! over IPv6: the same overflow, reached through the IPv6 stack).
//!
//! The client is hand-made: SYNs and ACKs from an address the server
//! routes into a TUN device whose queue the scenario reads (and drains
//! before closing it, so nothing is purged as a drop). A kernel client would RST or time-wait when the lab tears the
//! listener down, adding drops that are not the incident; and only a
//! client that sends its ACK when it chooses can have the cookie's ACK
//! meet a queue that filled after the SYN.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::{refine, Id};
use crate::lab::expect::{Expect, ExpectCounter, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct AcceptQueueFull {
    pub syncookies: bool,
    /// The handshakes over IPv6 (server fd00:18::2).
    pub v6: bool,
}

const SRV: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 8088;
/// The hand-made client: routed to tun0 on the server.
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 50);
const SRV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 2);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 0x50);

/// Handshakes attempted; the first fills the queue (backlog 0 holds one).
const CLIENTS: u16 = 4;

impl super::Scenario for AcceptQueueFull {
    fn name(&self) -> &'static str {
        match (self.syncookies, self.v6) {
            (true, false) => "tcp-syncookie-accept-queue-full",
            (true, true) => "tcp6-syncookie-accept-queue-full",
            (false, false) => "tcp-accept-queue-full",
            (false, true) => "tcp6-accept-queue-full",
        }
    }
    fn summary(&self) -> &'static str {
        if self.syncookies {
            "a listener's accept queue is full and SYN cookies are on: the final ACKs die"
        } else {
            "a listener's accept queue is full: new SYNs are refused, only counters move"
        }
    }
    fn incident(&self) -> &'static str {
        "A server stops calling accept() (all workers blocked on a slow database, \
         a GC pause) or listens with a tiny backlog: clients' connects hang and \
         retry while ss -ltn shows Recv-Q above Send-Q and TcpExtListenOverflows \
         grows; no drop reason is reported for the refused SYNs, and with SYN \
         cookies the handshakes' last ACKs are dropped as NO_SOCKET."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(if self.syncookies {
            refine::SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL.id
        } else {
            specific::ACCEPT_QUEUE_FULL.id
        })
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        // 2: a cookie for every SYN, so no request socket remembers the
        // handshake and the ACK alone must create the connection.
        let cookies = if self.syncookies { "2" } else { "0" };
        lab.sysctl("srv", "net.ipv4.tcp_syncookies", cookies)?;
        for k in ["all", "eth0"] {
            lab.sysctl("srv", &format!("net.ipv4.conf.{k}.rp_filter"), "0")?;
        }
        Ok(())
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let srv = lab.ns("srv").name.clone();
        let mac = lab.mac("srv", "eth0")?;
        let cli = lab.ns("cli").name.clone();
        let (srv_ip, cli_ip): (IpAddr, IpAddr) = if self.v6 {
            (SRV6.into(), CLIENT6.into())
        } else {
            (SRV.into(), CLIENT.into())
        };
        let at = SocketAddr::new(srv_ip, PORT);
        let listener = traffic::in_netns(&srv, move || listen(at, 0))?;
        let tap = traffic::in_netns(&srv, || tun(TUN))?;
        if !self.v6 {
            lab.sysctl("srv", &format!("net.ipv6.conf.{TUN}.disable_ipv6"), "1")?;
        }
        lab.ip("srv", &["link", "set", TUN, "up"])?;
        let host = if self.v6 { "/128" } else { "/32" };
        lab.ip(
            "srv",
            &["route", "add", &format!("{cli_ip}{host}"), "dev", TUN],
        )?;
        let send = |sport: u16, seq: u32, ack: u32, flags: u8| {
            let p = match (cli_ip, srv_ip) {
                (IpAddr::V6(c), IpAddr::V6(s)) => {
                    traffic::ipv6_tcp(c, s, sport, PORT, seq, ack, flags)
                }
                (IpAddr::V4(c), IpAddr::V4(s)) => {
                    traffic::ipv4_tcp(c, s, sport, PORT, seq, ack, flags)
                }
                _ => unreachable!("one family"),
            };
            traffic::packet_send(&cli, "eth0", mac, p, 1)
        };
        let isn = |i: u16| 1_000_000 * u32::from(i);
        let sports: Vec<u16> = (0..CLIENTS).map(|i| 41000 + i).collect();
        let (mut answered, mut refused) = (0, 0);
        if self.syncookies {
            // Every SYN while the queue is empty: each gets a cookie.
            for &p in &sports {
                send(p, isn(p), 0, SYN)?;
            }
            let synacks = read_synacks(&tap, &sports);
            for &p in &sports {
                if let Some(&s) = synacks.get(&p) {
                    answered += 1;
                    send(p, isn(p) + 1, s.wrapping_add(1), ACK)?;
                }
            }
        } else {
            for &p in &sports {
                send(p, isn(p), 0, SYN)?;
                match read_synacks(&tap, &[p]).get(&p) {
                    Some(&s) => {
                        answered += 1;
                        send(p, isn(p) + 1, s.wrapping_add(1), ACK)?;
                    }
                    None => refused += 1,
                }
            }
        }
        // Keep the full queue a while: netwhy samples it.
        std::thread::sleep(Duration::from_millis(400));
        let queued = crate::state::sockets::listeners_on(
            lab.ns("srv").inode,
            crate::state::sockets::Proto::Tcp,
            PORT,
        )
        .ok()
        .and_then(|v| v.first().and_then(|s| s.accept_queue()));
        // The listener's close resets its queued connections into tun0:
        // read them so closing the TUN device purges nothing.
        drop(listener);
        read_synacks(&tap, &[]);
        drop(tap);
        if answered == 0 {
            return Err(LabError::Traffic("no SYN-ACK from the listener".into()));
        }
        Ok(Outcome::from(format!(
            "{CLIENTS} handshakes {cli_ip} -> {at} to a listener with backlog 0 that \
             never accepts: {answered} SYN-ACKed, {refused} SYNs refused"
        ))
        .note(match queued {
            Some((q, max)) => format!("accept queue at the end: {q} queued, backlog {max}"),
            None => "the listener was not found at the end".into(),
        }))
    }
    fn expect(&self) -> Expect {
        let x = Expect::default().counter(ExpectCounter::new("srv", "TcpExt:ListenOverflows", 2));
        let (func, dst) = if self.v6 {
            ("cookie_v6_check", "fd00:18::2")
        } else {
            ("cookie_v4_check", "198.18.0.2")
        };
        let at_cookie = ExpectDrop {
            min: 2,
            // No device: TCP reuses skb->dev's room for its control block.
            ..ExpectDrop::new("NO_SOCKET", func, "srv").flow("tcp", dst, Some(PORT))
        };
        if self.syncookies {
            x.drop(at_cookie)
        } else {
            x.absent(ExpectDrop::new("NO_SOCKET", "*", "srv"))
        }
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn err(what: &str) -> LabError {
    LabError::Traffic(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A TCP listener on `at` with `backlog`, in the calling thread's netns
/// (std's TcpListener always asks for 128).
fn listen(at: SocketAddr, backlog: i32) -> Result<OwnedFd, LabError> {
    let family = if at.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("socket"));
    }
    // SAFETY: fd was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_storage is valid; it holds either family.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match at {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough.
            let sa = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough.
            let sa = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_addr.s6_addr = a.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: valid fd and a sockaddr of `len` bytes.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    } < 0
    {
        return Err(err("bind"));
    }
    // SAFETY: valid fd.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
        return Err(err("listen"));
    }
    Ok(fd)
}

const TUN: &str = "tun0";

/// A TUN device `name` (IP packets, no packet-info header) in the calling
/// thread's netns; packets routed into it wait on the returned fd.
fn tun(name: &str) -> Result<OwnedFd, LabError> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    let path = c"/dev/net/tun";
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(err("open /dev/net/tun"));
    }
    // SAFETY: fd was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: the name, then the flags.
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: valid fd and a 40-byte ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } < 0 {
        return Err(err("TUNSETIFF"));
    }
    Ok(fd)
}

/// The server's sequence number in the SYN-ACK to each of `ports`, read
/// from the TUN device until all came or it stays quiet for 300 ms (every
/// other packet read is discarded).
fn read_synacks(tap: &OwnedFd, ports: &[u16]) -> std::collections::HashMap<u16, u32> {
    let mut got = std::collections::HashMap::new();
    let mut buf = [0u8; 2048];
    while ports.is_empty() || got.len() < ports.len() {
        let mut pfd = libc::pollfd {
            fd: tap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 300) } <= 0 {
            break;
        }
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::read(tap.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let p = &buf[..n as usize];
        // The TCP header: after IPv4's IHL, or IPv6's fixed 40 bytes (the
        // SYN-ACK carries no extension header).
        let (hl, proto) = match p[0] >> 4 {
            4 => (usize::from(p[0] & 0x0f) * 4, p.get(9)),
            6 => (40, p.get(6)),
            _ => continue,
        };
        if p.len() < hl + 20 || proto != Some(&6) {
            continue;
        }
        let t = &p[hl..];
        let dport = u16::from_be_bytes([t[2], t[3]]);
        if t[13] & (SYN | ACK) == SYN | ACK && ports.contains(&dport) {
            got.insert(dport, u32::from_be_bytes([t[4], t[5], t[6], t[7]]));
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment's checksums verify: summing it with its checksum gives 0.
    #[test]
    fn segments_checksum_to_zero() {
        let p = traffic::ipv4_tcp(CLIENT, SRV, 41000, PORT, 7, 9, SYN);
        use crate::packet::csum::{csum16, pseudo_v4};
        assert_eq!(csum16(&p[..20], 0), 0);
        let pre = pseudo_v4(6, CLIENT.octets(), SRV.octets(), 20);
        assert_eq!(csum16(&p[20..], pre), 0);
        assert_eq!(p[33], SYN);
    }

    /// The IPv6 segment's checksum verifies over its pseudo-header.
    #[test]
    fn v6_segments_checksum_to_zero() {
        let p = traffic::ipv6_tcp(CLIENT6, SRV6, 41000, PORT, 7, 9, SYN);
        let c = crate::packet::csum::ipv6_check(6, CLIENT6.octets(), SRV6.octets(), &p[40..]);
        assert_eq!(c.map(|c| c.verdict), Some("ok"), "{c:?}");
        assert_eq!(p[53], SYN);
    }
}
