//! Benchmark traffic source: UDP datagrams to DST as fast as sendmmsg(2)
//! allows, for SECS seconds. Used by bench/drops inside a namespace the
//! script created; never point it anywhere else.
//!
//! usage: udpflood DST_IP:PORT SECS
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let dst: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: udpflood DST_IP:PORT SECS");
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.connect(dst).expect("connect");
    let payload = [0u8; 32];
    const BATCH: usize = 64;
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut _,
            iov_len: payload.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: an all-zero mmsghdr is a valid "no name, no control" header.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent: u64 = 0;
    while Instant::now() < end {
        // SAFETY: msgs points at BATCH initialised headers whose iovecs
        // reference `payload`, alive for the whole loop.
        let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent += n as u64;
        }
        // ECONNREFUSED from ICMP port-unreachable is expected: keep going.
    }
    println!("{sent}");
}
