//! Sockets in the namespace of a drop, through sock_diag (NETLINK_SOCK_DIAG,
//! inet_diag).
//!
//! A drop with NO_SOCKET, SOCKET_RCVBUFF or a TCP listen overflow is only
//! explained by the sockets that exist *now* in that namespace: who listens
//! on the port (and on which address), how full their receive buffer or
//! accept queue is, and which process owns them. `ss` gets this from the
//! same kernel interface; we speak it directly so nothing is shelled out and
//! the query runs on a thread that has entered the drop's netns.
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use super::netlink as nl;
use super::ns::{self, NsError};

#[derive(Debug, thiserror::Error)]
pub enum SockError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("sock_diag netlink: {0}")]
    Netlink(#[from] nl::NlError),
}

/// Transport protocol of a socket query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// IP protocol number (IPPROTO_TCP / IPPROTO_UDP).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// From an IP protocol number; None for anything but TCP and UDP.
    pub fn from_number(n: u8) -> Option<Proto> {
        match i32::from(n) {
            libc::IPPROTO_TCP => Some(Proto::Tcp),
            libc::IPPROTO_UDP => Some(Proto::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Socket memory as the kernel accounts it (INET_DIAG_SKMEMINFO). A UDP
/// drop for SOCKET_RCVBUFF happens when `rmem_alloc` would exceed `rcvbuf`;
/// `drops` is the socket's own drop counter (sk_drops).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SkMemInfo {
    pub rmem_alloc: u32,
    pub rcvbuf: u32,
    pub wmem_alloc: u32,
    pub sndbuf: u32,
    pub backlog: u32,
    pub drops: u32,
}

/// The process holding a socket open (first one found in /proc/*/fd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
}

/// One socket as sock_diag reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SockInfo {
    pub proto: Proto,
    /// TCP state number (include/net/tcp_states.h); unconnected UDP
    /// sockets are TCP_CLOSE (7), connected ones TCP_ESTABLISHED (1).
    pub state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Device the socket is bound to (SO_BINDTODEVICE), 0 if none.
    pub bound_ifindex: u32,
    /// An AF_INET6 socket with IPV6_V6ONLY: it never sees IPv4.
    pub v6only: bool,
    pub inode: u32,
    pub uid: u32,
    /// idiag_rqueue: for a TCP listener the current accept queue length,
    /// for UDP the bytes waiting in the receive queue, for a connected TCP
    /// socket the unread bytes.
    pub rqueue: u32,
    /// idiag_wqueue: for a TCP listener the maximum backlog given to
    /// listen(2) (capped by net.core.somaxconn), otherwise the send queue.
    pub wqueue: u32,
    pub mem: Option<SkMemInfo>,
    pub owner: Option<Owner>,
}

const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

impl SockInfo {
    /// Name of the state as `ss` prints it ("LISTEN", "UNCONN", "ESTAB"...).
    pub fn state_name(&self) -> &'static str {
        match (self.proto, self.state) {
            (Proto::Udp, TCP_CLOSE) => "UNCONN",
            (_, s) => match s {
                1 => "ESTAB",
                2 => "SYN-SENT",
                3 => "SYN-RECV",
                4 => "FIN-WAIT-1",
                5 => "FIN-WAIT-2",
                6 => "TIME-WAIT",
                7 => "CLOSE",
                8 => "CLOSE-WAIT",
                9 => "LAST-ACK",
                10 => "LISTEN",
                11 => "CLOSING",
                12 => "NEW-SYN-RECV",
                _ => "UNKNOWN",
            },
        }
    }

    pub fn is_listener(&self) -> bool {
        match self.proto {
            Proto::Tcp => self.state == TCP_LISTEN,
            Proto::Udp => self.state == TCP_CLOSE,
        }
    }

    /// For a TCP listener: (current accept queue, max backlog). A SYN is
    /// refused (TcpExtListenOverflows) when the first reaches the second.
    pub fn accept_queue(&self) -> Option<(u32, u32)> {
        (self.proto == Proto::Tcp && self.state == TCP_LISTEN).then_some((self.rqueue, self.wqueue))
    }

    /// Would this socket receive a packet addressed to `dst` (address and
    /// port) from `src`? Mirrors the kernel's lookup closely enough to
    /// explain NO_SOCKET: wildcard addresses, v6only, v4-mapped, and a
    /// connected socket's peer. The bound device is not checked.
    pub fn accepts(&self, dst: SocketAddr, src: Option<SocketAddr>) -> bool {
        if self.local.port() != dst.port() || !addr_accepts(self.local.ip(), self.v6only, dst.ip())
        {
            return false;
        }
        if self.remote.port() != 0 {
            // Connected: only its peer gets in.
            return src.is_some_and(|s| {
                s.port() == self.remote.port() && same_ip(self.remote.ip(), s.ip())
            });
        }
        true
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    unmapped(a) == unmapped(b)
}

fn addr_accepts(local: IpAddr, v6only: bool, dst: IpAddr) -> bool {
    let dst = unmapped(dst);
    match local {
        IpAddr::V4(l) => dst.is_ipv4() && (l.is_unspecified() || IpAddr::V4(l) == dst),
        IpAddr::V6(l) if l.is_unspecified() => dst.is_ipv6() || !v6only,
        IpAddr::V6(_) => same_ip(local, dst),
    }
}

impl fmt::Display for SockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} -> {} inode {} uid {}",
            self.proto,
            self.state_name(),
            self.local,
            self.remote,
            self.inode,
            self.uid
        )?;
        if let Some((q, max)) = self.accept_queue() {
            write!(f, " accept queue {q}/{max}")?;
        } else {
            write!(f, " recv-q {}", self.rqueue)?;
        }
        if let Some(m) = self.mem {
            write!(f, " rmem {}/{} drops {}", m.rmem_alloc, m.rcvbuf, m.drops)?;
        }
        if let Some(o) = &self.owner {
            write!(f, " pid {} ({})", o.pid, o.comm)?;
        }
        Ok(())
    }
}

/// Sockets in netns `ino` that accept new traffic on `port`, on any
/// address: TCP listeners, or UDP sockets (bound or connected) on that port.
/// Empty means the port is closed in that namespace.
pub fn listeners_on(ino: u32, proto: Proto, port: u16) -> Result<Vec<SockInfo>, SockError> {
    let mut v = dump_in(ino, proto)?;
    v.retain(|s| s.local.port() == port && (proto == Proto::Udp || s.state == TCP_LISTEN));
    fill_owners(&mut v);
    Ok(v)
}

/// The socket the kernel would pick in netns `ino` for a packet to `local`
/// from `remote`: an exact connected match first, then a listener bound to
/// the address, then a wildcard listener. None explains NO_SOCKET.
pub fn socket_for(
    ino: u32,
    proto: Proto,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<Option<SockInfo>, SockError> {
    let all = dump_in(ino, proto)?;
    let mut best = pick(&all, proto, local, remote).cloned();
    if let Some(b) = best.as_mut() {
        b.owner = owners(&[b.inode]).remove(&b.inode);
    }
    Ok(best)
}

/// Pure part of [`socket_for`].
pub fn pick(
    all: &[SockInfo],
    proto: Proto,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<&SockInfo> {
    let score = |s: &SockInfo| -> Option<u8> {
        if s.proto != proto || !s.accepts(local, Some(remote)) {
            return None;
        }
        if proto == Proto::Tcp && s.remote.port() == 0 && s.state != TCP_LISTEN {
            return None; // bound but neither listening nor connected
        }
        let exact_remote = s.remote.port() != 0;
        let exact_local = !s.local.ip().is_unspecified();
        Some(u8::from(exact_remote) * 2 + u8::from(exact_local))
    };
    all.iter()
        .filter_map(|s| score(s).map(|k| (k, s)))
        .max_by_key(|(k, _)| *k)
        .map(|(_, s)| s)
}

/// Why a packet to `dst` finds no socket although the port is in use, e.g.
/// "udp port 5300 is bound only on 127.0.0.1". None when nothing uses the
/// port at all (plainly closed) or when some socket would accept it.
pub fn explain_no_socket(
    ino: u32,
    proto: Proto,
    dst: SocketAddr,
) -> Result<Option<String>, SockError> {
    let bound = listeners_on(ino, proto, dst.port())?;
    Ok(explain_no_socket_in(&bound, proto, dst))
}

/// Pure part of [`explain_no_socket`]: `bound` are the sockets on the port.
pub fn explain_no_socket_in(bound: &[SockInfo], proto: Proto, dst: SocketAddr) -> Option<String> {
    if bound.is_empty()
        || bound
            .iter()
            .any(|s| s.remote.port() == 0 && s.accepts(dst, None))
    {
        return None;
    }
    let mut what: Vec<String> = Vec::new();
    for s in bound {
        let mut d = if s.remote.port() != 0 {
            format!("{} (connected to {})", s.local, s.remote)
        } else if s.v6only && s.local.ip().is_unspecified() {
            format!("{} (IPv6 only)", s.local)
        } else {
            s.local.to_string()
        };
        if s.bound_ifindex != 0 {
            d.push_str(&format!(" on ifindex {}", s.bound_ifindex));
        }
        if let Some(o) = &s.owner {
            d.push_str(&format!(" by {} [{}]", o.comm, o.pid));
        }
        if !what.contains(&d) {
            what.push(d);
        }
    }
    Some(format!(
        "{proto} port {} is in use, but only on {}: nothing accepts {} there",
        dst.port(),
        what.join(", "),
        dst.ip()
    ))
}

/// Every socket of `proto` (IPv4 and IPv6) in netns `ino`.
pub fn dump_in(ino: u32, proto: Proto) -> Result<Vec<SockInfo>, SockError> {
    ns::run_in(ino, move || dump(proto))?
}

/// Every socket of `proto` in the current thread's netns.
pub fn dump(proto: Proto) -> Result<Vec<SockInfo>, SockError> {
    let sock = nl::Socket::open(libc::NETLINK_SOCK_DIAG)?;
    let mut out = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let req = diag_request(family, proto);
        for msg in sock.dump(SOCK_DIAG_BY_FAMILY, &req)? {
            if let Some(s) = parse_diag_msg(&msg, proto) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_SKMEMINFO: u16 = 7;
const INET_DIAG_SKV6ONLY: u16 = 11;
/// sizeof(struct inet_diag_msg)
const DIAG_MSG_LEN: usize = 72;

/// struct inet_diag_req_v2 asking for all states and INET_DIAG_SKMEMINFO.
pub fn diag_request(family: u8, proto: Proto) -> Vec<u8> {
    let mut r = vec![0u8; 56];
    r[0] = family;
    r[1] = proto.number();
    r[2] = 1 << (INET_DIAG_SKMEMINFO - 1);
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    r
}

/// Parse one struct inet_diag_msg plus its attributes (the payload of a
/// SOCK_DIAG_BY_FAMILY answer). None if it is too short.
pub fn parse_diag_msg(b: &[u8], proto: Proto) -> Option<SockInfo> {
    if b.len() < DIAG_MSG_LEN {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let family = b[0];
    let state = b[1];
    let sport = u16::from_be_bytes([b[4], b[5]]);
    let dport = u16::from_be_bytes([b[6], b[7]]);
    let ip = |o: usize| -> IpAddr {
        if i32::from(family) == libc::AF_INET6 {
            let a: [u8; 16] = b[o..o + 16].try_into().expect("16 bytes");
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            let a: [u8; 4] = b[o..o + 4].try_into().expect("4 bytes");
            IpAddr::V4(Ipv4Addr::from(a))
        }
    };
    let mut s = SockInfo {
        proto,
        state,
        local: SocketAddr::new(ip(8), sport),
        remote: SocketAddr::new(ip(24), dport),
        bound_ifindex: u32_at(40),
        v6only: false,
        inode: u32_at(68),
        uid: u32_at(64),
        rqueue: u32_at(56),
        wqueue: u32_at(60),
        mem: None,
        owner: None,
    };
    for (ty, val) in nl::attrs(&b[DIAG_MSG_LEN..]) {
        match ty {
            INET_DIAG_SKMEMINFO => {
                let m = |i: usize| {
                    val.get(i * 4..i * 4 + 4)
                        .map_or(0, |x| u32::from_ne_bytes(x.try_into().expect("4 bytes")))
                };
                s.mem = Some(SkMemInfo {
                    rmem_alloc: m(0),
                    rcvbuf: m(1),
                    wmem_alloc: m(2),
                    sndbuf: m(3),
                    backlog: m(7),
                    drops: m(8),
                });
            }
            INET_DIAG_SKV6ONLY => s.v6only = val.first().is_some_and(|&v| v != 0),
            _ => {}
        }
    }
    Some(s)
}

/// Fill `owner` by one scan of /proc/*/fd.
fn fill_owners(v: &mut [SockInfo]) {
    if v.is_empty() {
        return;
    }
    let inodes: Vec<u32> = v.iter().map(|s| s.inode).collect();
    let found = owners(&inodes);
    for s in v {
        s.owner = found.get(&s.inode).cloned();
    }
}

/// Processes holding the given socket inodes, by scanning /proc/*/fd links
/// ("socket:[INODE]"). Sockets are per-inode unique across namespaces, so
/// the scan needs no setns. Best effort: unreadable processes are skipped.
pub fn owners(inodes: &[u32]) -> HashMap<u32, Owner> {
    let mut out = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = fs::read_link(fd.path()) else {
                continue;
            };
            let l = link.to_string_lossy();
            let Some(ino) = l
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if inodes.contains(&ino) && !out.contains_key(&ino) {
                let comm = fs::read_to_string(p.path().join("comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_default();
                out.insert(ino, Owner { pid, comm });
                if out.len() == inodes.len() {
                    return out;
                }
            }
        }
    }
    out
}

/// A minimal netlink client over libc: one request, a dump answer, and the
/// attribute walker. Shared with `conntrack`.
// The fixtures hold native-endian netlink headers captured on x86_64.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Captured from 6.18 (x86_64, so native-endian fields are little endian):
    // a UDP socket on 198.18.1.1:5300 holding one queued datagram, a UDP
    // socket on [::]:5303 (dual stack), a TCP listener on 0.0.0.0:5304
    // with std's default backlog of 128.
    const UDP4: &str = "0207000014b40000c612010100000000000000000000000000000000000000000000000000000000000000000600000000000000000000004003000000000000000000005bf80200050008000000000008000f00000000000c001500010000000000000006001600500000002800070040030000004003000000000000400300c00c000000000000000000000000000000000000";
    const UDP6: &str = "0a07000014b700000000000000000000000000000000000000000000000000000000000000000000000000000700000000000000000000000000000000000000000000005cf80200050008000000000005000b000000000008000f00000000000c0015000100000000000000060016001000000028000700000000000040030000000000004003000000000000000000000000000000000000000000";
    const TCP4: &str = "020a000014b800000000000000000000000000000000000000000000000000000000000000000000000000000800000000000000000000000000000080000000000000005df80200050008000000000008000f00000000000c0015000100000000000000060016005200000028000700000000000000020000000000004000000000000000000000000000000000000000000000";

    #[test]
    fn parses_udp4_with_meminfo() {
        let s = parse_diag_msg(&unhex(UDP4), Proto::Udp).unwrap();
        assert_eq!(s.local, "198.18.1.1:5300".parse().unwrap());
        assert_eq!(s.remote, "0.0.0.0:0".parse().unwrap());
        assert_eq!(s.state_name(), "UNCONN");
        assert!(s.is_listener());
        assert_eq!((s.rqueue, s.wqueue, s.uid, s.inode), (832, 0, 0, 0x2f85b));
        let m = s.mem.unwrap();
        assert_eq!((m.rmem_alloc, m.rcvbuf, m.drops), (832, 212992, 0));
        assert_eq!(s.accept_queue(), None);
        assert!(!s.v6only);
    }

    #[test]
    fn parses_udp6_dual_stack() {
        let s = parse_diag_msg(&unhex(UDP6), Proto::Udp).unwrap();
        assert_eq!(s.local, "[::]:5303".parse().unwrap());
        assert!(!s.v6only);
        assert!(s.accepts("198.18.1.1:5303".parse().unwrap(), None));
        assert!(s.accepts("[fd00::1]:5303".parse().unwrap(), None));
        let mut only6 = s.clone();
        only6.v6only = true;
        assert!(!only6.accepts("198.18.1.1:5303".parse().unwrap(), None));
    }

    #[test]
    fn parses_tcp_listener_backlog() {
        let s = parse_diag_msg(&unhex(TCP4), Proto::Tcp).unwrap();
        assert_eq!(s.state_name(), "LISTEN");
        assert_eq!(s.accept_queue(), Some((0, 128)));
        assert_eq!(s.local.port(), 5304);
        assert!(parse_diag_msg(&unhex(TCP4)[..40], Proto::Tcp).is_none());
    }

    #[test]
    fn request_layout() {
        let r = diag_request(libc::AF_INET6 as u8, Proto::Tcp);
        assert_eq!(r.len(), 56);
        assert_eq!(&r[..8], &[10, 6, 1 << 6, 0, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn pick_prefers_specific_and_explains_loopback_only() {
        let udp = parse_diag_msg(&unhex(UDP4), Proto::Udp).unwrap();
        let mut wild = udp.clone();
        wild.local = "0.0.0.0:5300".parse().unwrap();
        wild.inode = 7;
        let all = [wild.clone(), udp.clone()];
        let peer: SocketAddr = "198.18.1.2:4000".parse().unwrap();
        let to = |a: &str| pick(&all, Proto::Udp, a.parse().unwrap(), peer).map(|s| s.inode);
        assert_eq!(to("198.18.1.1:5300"), Some(udp.inode));
        assert_eq!(to("10.0.0.1:5300"), Some(7));
        assert_eq!(to("10.0.0.1:5301"), None);

        let mut lo = udp.clone();
        lo.local = "127.0.0.1:5300".parse().unwrap();
        let why = explain_no_socket_in(
            &[lo.clone()],
            Proto::Udp,
            "198.18.1.1:5300".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            why,
            "udp port 5300 is in use, but only on 127.0.0.1:5300: nothing accepts 198.18.1.1 there"
        );
        assert_eq!(
            explain_no_socket_in(&[lo], Proto::Udp, "127.0.0.1:5300".parse().unwrap()),
            None
        );
        assert_eq!(
            explain_no_socket_in(&[], Proto::Udp, "127.0.0.1:5300".parse().unwrap()),
            None
        );

        let mut conn = udp;
        conn.remote = "198.18.1.9:53".parse().unwrap();
        assert!(!conn.accepts("198.18.1.1:5300".parse().unwrap(), Some(peer)));
        assert!(conn.accepts(
            "198.18.1.1:5300".parse().unwrap(),
            Some("198.18.1.9:53".parse().unwrap())
        ));
    }

    #[test]
    fn attrs_stop_on_truncation() {
        let b = [8u8, 0, 1, 0, 1, 2, 3, 4, 9, 0, 2, 0, 1];
        let v: Vec<_> = nl::attrs(&b).collect();
        assert_eq!(v, vec![(1u16, &[1u8, 2, 3, 4][..])]);
    }
}
