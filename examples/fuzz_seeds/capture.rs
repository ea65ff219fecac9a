//! Raw reads, kept as the kernel sent them: netlink answers re-framed into
//! one receive buffer, x_tables blobs, and frames from a packet socket.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use netwhy::state::iptables::{self, Family};
use netwhy::state::netlink::{self as nl, Msg, Socket};

/// The answers to one request as a receive buffer: each message with its
/// netlink header again (the sequence number is the request's).
pub fn stream(msgs: &[Msg]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        nl::message(&mut out, m.ty, m.flags, 1, &m.body);
    }
    out
}

/// A dump request on a fresh socket of `protocol`, as one buffer.
pub fn dump(protocol: i32, ty: u16, body: &[u8]) -> io::Result<Vec<u8>> {
    let s = Socket::open(protocol)?;
    Ok(stream(&s.request(ty, nl::NLM_F_DUMP, body)?))
}

/// A non-dump request that the kernel answers with one message (route get).
pub fn ask(protocol: i32, ty: u16, body: &[u8]) -> io::Result<Vec<u8>> {
    let s = Socket::open(protocol)?;
    Ok(stream(&s.request(ty, nl::NLM_F_ACK, body)?))
}

/// `fam_byte` + ipt_getinfo + the entries of `table`, the fuzz target's
/// input layout. `v6` picks ip6_tables.
pub fn x_table(v6: bool, table: &str) -> io::Result<Vec<u8>> {
    let fam = if v6 { Family::Ipv6 } else { Family::Ipv4 };
    let (info, entries) = iptables::raw_table_here(fam, table)
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other(format!("no iptables table {table}")))?;
    let mut out = vec![u8::from(v6)];
    out.extend_from_slice(&info);
    out.extend_from_slice(&entries);
    Ok(out)
}

/// A packet socket for every frame of the calling thread's netns.
pub fn packet_socket() -> io::Result<OwnedFd> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Frames queued on `sock` (the first 128 bytes of each, what netwhy's
/// probes capture), until none arrives for `idle`.
pub fn frames(sock: &OwnedFd, idle: Duration) -> Vec<Vec<u8>> {
    let tv = libc::timeval {
        tv_sec: idle.as_secs() as libc::time_t,
        tv_usec: idle.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid fd and a timeval of the size given.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 128];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return out;
        }
        out.push(buf[..n as usize].to_vec());
    }
}
