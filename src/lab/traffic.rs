//! Bounded traffic generated from inside a lab namespace, in-process: a
//! thread enters the namespace with setns(2) (which affects only itself),
//! and sockets it opens stay in that namespace.
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::LabError;
use crate::packet::csum::{csum16, pseudo_v4, pseudo_v6};
use crate::sys::netns::EnterError;

/// Run `f` on a thread that has entered the named netns.
pub fn in_netns<T, F>(ns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LabError> + Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| LabError::Netns(ns.to_string(), e))?;
    match crate::sys::netns::run_in(file, f) {
        Ok(r) => r,
        Err(EnterError::Setns(e)) => Err(LabError::Netns(ns.to_string(), e)),
        Err(EnterError::Panicked) => Err(LabError::Traffic("traffic thread panicked".into())),
    }
}

fn terr(what: &str, e: std::io::Error) -> LabError {
    LabError::Traffic(format!("{what}: {e}"))
}

/// Send `count` UDP datagrams to `dst` from netns `ns`.
pub fn udp_send(
    ns: &str,
    dst: SocketAddr,
    count: u32,
    payload: &'static [u8],
) -> Result<(), LabError> {
    udp_send_marked(ns, dst, count, payload, 0)
}

/// Like [`udp_send`], with SO_MARK set on the socket when `mark` != 0.
pub fn udp_send_marked(
    ns: &str,
    dst: SocketAddr,
    count: u32,
    payload: &'static [u8],
    mark: u32,
) -> Result<(), LabError> {
    in_netns(ns, move || {
        let bind: SocketAddr = if dst.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let s = UdpSocket::bind(bind).map_err(|e| terr("udp bind", e))?;
        if mark != 0 {
            let v = mark as libc::c_int;
            // SAFETY: valid socket fd and a c_int option value.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_MARK,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(terr("SO_MARK", std::io::Error::last_os_error()));
            }
        }
        for _ in 0..count {
            // ICMP errors from earlier datagrams surface as send errors on a
            // connected socket only; an unconnected one keeps sending.
            s.send_to(payload, dst).map_err(|e| terr("udp send", e))?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })
}

/// Outcome of a TCP connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    Connected,
    Refused,
    TimedOut,
    Unreachable,
}

/// Try to connect from netns `ns` to `dst`, waiting at most `timeout`.
pub fn tcp_connect(ns: &str, dst: SocketAddr, timeout: Duration) -> Result<Connect, LabError> {
    in_netns(ns, move || {
        Ok(match TcpStream::connect_timeout(&dst, timeout) {
            Ok(mut s) => {
                let _ = s.write_all(b"netwhy\n");
                let mut buf = [0u8; 16];
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                let _ = s.read(&mut buf);
                Connect::Connected
            }
            Err(e) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Connect::Refused,
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Connect::TimedOut,
                _ if e.raw_os_error() == Some(libc::EHOSTUNREACH)
                    || e.raw_os_error() == Some(libc::ENETUNREACH) =>
                {
                    Connect::Unreachable
                }
                _ => return Err(terr("tcp connect", e)),
            },
        })
    })
}

/// Like a client that retries: `attempts` connects [`RETRY_PAUSE`] apart;
/// the last result. Retries let rule attribution (nftrace, armed by the
/// first drop) see a later packet of the flow, as it would on a real box.
pub fn tcp_connect_retrying(
    ns: &str,
    dst: SocketAddr,
    timeout: Duration,
    attempts: u32,
) -> Result<Connect, LabError> {
    let mut last = Connect::TimedOut;
    for i in 0..attempts.max(1) {
        if i > 0 {
            std::thread::sleep(RETRY_PAUSE);
        }
        last = tcp_connect(ns, dst, timeout)?;
    }
    Ok(last)
}

/// Pause between a client's retries in [`tcp_connect_retrying`].
pub const RETRY_PAUSE: Duration = Duration::from_millis(150);

/// A UDP socket bound to `bind` inside netns `ns`. A socket keeps the
/// namespace it was created in, so the caller may use it from any thread.
pub fn udp_socket(ns: &str, bind: SocketAddr) -> Result<UdpSocket, LabError> {
    in_netns(ns, move || {
        UdpSocket::bind(bind).map_err(|e| terr("udp bind", e))
    })
}

/// `count` UDP datagrams of `size` bytes from an unbound socket in netns
/// `ns` to `dst`, `pause` apart, with DF set and the learnt path MTU
/// honoured (IP_PMTUDISC_DO): a send the kernel already knows is too big
/// fails with EMSGSIZE instead of leaving. Returns the socket (the caller
/// keeps it open while it must be seen) and how many sends failed so.
pub fn df_udp_burst(
    ns: &str,
    dst: SocketAddr,
    size: usize,
    count: u32,
    pause: Duration,
) -> Result<(UdpSocket, u32), LabError> {
    let s = udp_socket(ns, "0.0.0.0:0".parse().expect("literal"))?;
    set_int(
        &s,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    )?;
    let payload = vec![0x6eu8; size];
    let mut refused = 0;
    for _ in 0..count {
        match s.send_to(&payload, dst) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => refused += 1,
            Err(e) => return Err(terr("udp send", e)),
        }
        std::thread::sleep(pause);
    }
    Ok((s, refused))
}

/// setsockopt with an int value.
pub fn set_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> Result<(), LabError> {
    // SAFETY: valid fd and a c_int option value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(terr(
            &format!("setsockopt {level}/{opt}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// getsockopt with an int value.
pub fn get_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    opt: libc::c_int,
) -> Result<libc::c_int, LabError> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, buffer and length.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(terr(
            &format!("getsockopt {level}/{opt}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(v)
}

/// Receive datagrams until `timeout` passes with nothing new; returns the count.
pub fn drain(s: &UdpSocket, timeout: Duration) -> usize {
    let _ = s.set_read_timeout(Some(timeout));
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while s.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// An IPv4/UDP packet (no L2 header) with a correct IP header checksum and
/// a UDP checksum that is correct, or deliberately wrong when `bad_csum`.
pub fn ipv4_udp(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    bad_csum: bool,
) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let tlen = 20 + ulen;
    let mut p = vec![0u8; tlen];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(tlen as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let hc = csum16(&p[..20], 0);
    p[10..12].copy_from_slice(&hc.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&(ulen as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    let mut uc = csum16(
        &p[20..],
        pseudo_v4(17, src.octets(), dst.octets(), ulen as u16),
    );
    if uc == 0 {
        uc = 0xffff;
    }
    if bad_csum {
        uc ^= 0x5a5a;
    }
    p[26..28].copy_from_slice(&uc.to_be_bytes());
    p
}

/// An IPv4 TCP segment (no L2 header, no options, no payload) with DF set
/// and both checksums right: hand-made handshakes (the accept-queue
/// scenarios' TUN client, tests that send segments no socket would).
pub fn ipv4_tcp(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let hc = csum16(&p[..20], 0);
    p[10..12].copy_from_slice(&hc.to_be_bytes());
    p.extend_from_slice(&tcp_header(
        sport,
        dport,
        seq,
        ack,
        flags,
        pseudo_v4(6, src.octets(), dst.octets(), 20),
    ));
    p
}

/// An IPv6 TCP segment (no options, no payload, hop limit 64) with its
/// checksum right: the IPv6 twin of [`ipv4_tcp`].
pub fn ipv6_tcp(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&20u16.to_be_bytes());
    p[6] = 6;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    let pre = pseudo_v6(6, src.octets(), dst.octets(), 20);
    p.extend_from_slice(&tcp_header(sport, dport, seq, ack, flags, pre));
    p
}

/// An IPv6/UDP packet (no options, hop limit 64) whose UDP checksum is
/// right, or deliberately wrong when `bad_csum`: the IPv6 twin of
/// [`ipv4_udp`].
pub fn ipv6_udp(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    bad_csum: bool,
) -> Vec<u8> {
    let ulen = (8 + payload.len()) as u16;
    let mut p = vec![0u8; 48];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&ulen.to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..42].copy_from_slice(&sport.to_be_bytes());
    p[42..44].copy_from_slice(&dport.to_be_bytes());
    p[44..46].copy_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(payload);
    let pre = pseudo_v6(17, src.octets(), dst.octets(), u32::from(ulen));
    let mut uc = csum16(&p[40..], pre);
    if uc == 0 {
        uc = 0xffff;
    }
    if bad_csum {
        uc ^= 0x5a5a;
    }
    p[46..48].copy_from_slice(&uc.to_be_bytes());
    p
}

/// A 20-byte TCP header (window 65535, no options) whose checksum starts
/// from `pseudo`, the address family's pseudo-header sum.
fn tcp_header(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, pseudo: u32) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let c = csum16(&t, pseudo);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// Send `packet` (an IPv4 or IPv6 packet) `count` times out of `ifname` in netns
/// `ns` through an AF_PACKET socket, to the link-layer address `dst_mac`.
/// The skb reaches the peer as CHECKSUM_NONE: the receiver verifies L4
/// checksums itself.
pub fn packet_send(
    ns: &str,
    ifname: &'static str,
    dst_mac: [u8; 6],
    packet: Vec<u8>,
    count: u32,
) -> Result<(), LabError> {
    in_netns(ns, move || {
        let cname = std::ffi::CString::new(ifname).expect("no NUL");
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(terr("if_nametoindex", std::io::Error::last_os_error()));
        }
        // The version nibble says which: an IPv6 packet goes as ETH_P_IPV6.
        let ethertype = if packet.first().is_some_and(|b| b >> 4 == 6) {
            libc::ETH_P_IPV6
        } else {
            libc::ETH_P_IP
        };
        let proto = (ethertype as u16).to_be();
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if fd < 0 {
            return Err(terr("AF_PACKET socket", std::io::Error::last_os_error()));
        }
        // SAFETY: fd was just opened and is owned here.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: zeroed sockaddr_ll is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&dst_mac);
        for _ in 0..count {
            // SAFETY: valid fd, buffer and sockaddr_ll.
            let rc = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(terr("AF_PACKET send", std::io::Error::last_os_error()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })
}

/// Parse "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    v.try_into().ok()
}
