//! The one netlink client behind every collector: rtnetlink (routes,
//! neighbours, addresses), sock_diag (sockets), ctnetlink (conntrack) and
//! nftables (rules, nftrace). Raw sockets and hand-built messages keep the
//! binary free of a netlink stack per protocol, and every request works
//! the same way: one message with a sequence number, answers collected
//! until NLMSG_DONE or the kernel's ACK/error for that sequence number.
//!
//! A receive timeout on every socket means a kernel (or a namespace) that
//! never answers cannot hang a diagnosis.
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_ACK: u16 = 4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLA_F_NESTED: u16 = 0x8000;

#[derive(Debug, thiserror::Error)]
pub enum NlError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("kernel answered: {0}")]
    Kernel(io::Error),
    #[error("malformed netlink answer")]
    Malformed,
}

impl From<NlError> for io::Error {
    fn from(e: NlError) -> io::Error {
        match e {
            NlError::Io { source, .. } | NlError::Kernel(source) => source,
            NlError::Malformed => io::Error::other("malformed netlink answer"),
        }
    }
}

fn io_err(what: &'static str) -> NlError {
    NlError::Io {
        what,
        source: io::Error::last_os_error(),
    }
}

/// One answer message: type, flags and the body after the netlink header.
pub struct Msg {
    pub ty: u16,
    pub flags: u16,
    pub body: Vec<u8>,
}

pub struct Socket {
    fd: OwnedFd,
    seq: Cell<u32>,
}

impl Socket {
    /// A netlink socket of `protocol` (NETLINK_ROUTE, NETLINK_SOCK_DIAG,
    /// NETLINK_NETFILTER...) in the calling thread's netns.
    pub fn open(protocol: i32) -> Result<Socket, NlError> {
        // SAFETY: plain socket(2); the fd is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io_err("netlink socket"));
        }
        // SAFETY: fd was just returned by socket(2) and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let s = Socket {
            fd,
            seq: Cell::new(0),
        };
        s.set_timeout(Duration::from_secs(3));
        Ok(s)
    }

    pub fn set_timeout(&self, t: Duration) {
        let t = t.max(Duration::from_millis(1));
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: valid fd and a timeval option value.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
    }

    /// Subscribe to multicast `group` by binding with its bit in nl_groups
    /// (NETLINK_ADD_MEMBERSHIP did not deliver nftrace events on 6.18 in
    /// our tests; bind(2) does, as `nft monitor`).
    pub fn join(&self, group: u32, what: &'static str) -> Result<(), NlError> {
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = 1 << (group - 1);
        // SAFETY: valid fd and a sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err(what));
        }
        Ok(())
    }

    /// The next sequence number of this socket.
    pub fn next_seq(&self) -> u32 {
        let s = self.seq.get().wrapping_add(1);
        self.seq.set(s);
        s
    }

    pub fn send(&self, msg: &[u8]) -> Result<(), NlError> {
        // SAFETY: valid fd and buffer; unconnected netlink sends to the kernel.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io_err("netlink send"));
        }
        Ok(())
    }

    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, NlError> {
        // SAFETY: valid fd and a buffer of buf.len() bytes.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io_err("netlink recv"));
        }
        Ok(n as usize)
    }

    /// One datagram within `t`: None on timeout, Some(0) when multicast
    /// events overran the socket buffer (some were lost).
    pub fn recv_within(&self, buf: &mut [u8], t: Duration) -> Result<Option<usize>, NlError> {
        self.set_timeout(t);
        match self.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(NlError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(NlError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOBUFS) => {
                Ok(Some(0))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one request (`flags` adds NLM_F_DUMP, NLM_F_ACK...) and
    /// collects the answers until NLMSG_DONE or the ACK; a non-zero error
    /// (in NLMSG_ERROR, or in NLMSG_DONE for a failed dump) is returned.
    pub fn request(&self, ty: u16, flags: u16, body: &[u8]) -> Result<Vec<Msg>, NlError> {
        let seq = self.next_seq();
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        message(&mut msg, ty, NLM_F_REQUEST | flags, seq, body);
        self.send(&msg)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut out = Vec::new();
        loop {
            let n = self.recv(&mut buf)?;
            for (mty, mflags, mseq, body) in messages(&buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match mty {
                    NLMSG_DONE | NLMSG_ERROR => {
                        let err = body
                            .get(..4)
                            .map(|e| i32::from_ne_bytes(e.try_into().expect("4")));
                        return match err {
                            None if mty == NLMSG_ERROR => Err(NlError::Malformed),
                            Some(e) if e < 0 => {
                                Err(NlError::Kernel(io::Error::from_raw_os_error(-e)))
                            }
                            _ => Ok(out),
                        };
                    }
                    _ => out.push(Msg {
                        ty: mty,
                        flags: mflags,
                        body: body.to_vec(),
                    }),
                }
            }
        }
    }

    /// A NLM_F_DUMP request; the bodies of every answer.
    pub fn dump(&self, ty: u16, body: &[u8]) -> Result<Vec<Vec<u8>>, NlError> {
        Ok(self
            .request(ty, NLM_F_DUMP, body)?
            .into_iter()
            .map(|m| m.body)
            .collect())
    }
}

/// Appends one netlink message (header + `body`, padded) to `out`.
pub fn message(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, body: &[u8]) {
    out.extend(((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    out.extend(ty.to_ne_bytes());
    out.extend(flags.to_ne_bytes());
    out.extend(seq.to_ne_bytes());
    out.extend(0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out.resize(align(out.len()), 0);
}

pub fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends an attribute.
pub fn put(b: &mut Vec<u8>, ty: u16, v: &[u8]) {
    b.extend(((4 + v.len()) as u16).to_ne_bytes());
    b.extend(ty.to_ne_bytes());
    b.extend_from_slice(v);
    b.resize(align(b.len()), 0);
}

/// Appends a NUL-terminated string attribute.
pub fn put_str(b: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    put(b, ty, &v);
}

/// Opens a nested attribute; close it with [`nest_end`].
pub fn nest_start(b: &mut Vec<u8>, ty: u16) -> usize {
    let at = b.len();
    b.extend(0u16.to_ne_bytes());
    b.extend((ty | NLA_F_NESTED).to_ne_bytes());
    at
}

pub fn nest_end(b: &mut [u8], at: usize) {
    let len = (b.len() - at) as u16;
    b[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

/// Walks attributes: (type without the NESTED and NET_BYTEORDER flags,
/// value). Stops at the first malformed one.
pub fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let val = &b[4..len];
        b = &b[align(len).min(b.len())..];
        Some((ty, val))
    })
}

/// Walks netlink messages: (type, flags, seq, body). Stops at the first
/// malformed one.
pub fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(b[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let flags = u16::from_ne_bytes([b[6], b[7]]);
        let seq = u32::from_ne_bytes(b[8..12].try_into().ok()?);
        let body = &b[NLMSG_HDRLEN..len];
        b = &b[align(len).min(b.len())..];
        Some((ty, flags, seq, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_nesting() {
        let mut b = Vec::new();
        put_str(&mut b, 1, "filter");
        let n = nest_start(&mut b, 2);
        put(&mut b, 3, &7u32.to_be_bytes());
        nest_end(&mut b, n);
        let a: Vec<(u16, &[u8])> = attrs(&b).collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], (1, &b"filter\0"[..]));
        assert_eq!(a[1].0, 2, "the NESTED flag is masked off");
        let inner: Vec<_> = attrs(a[1].1).collect();
        assert_eq!(inner, vec![(3, &7u32.to_be_bytes()[..])]);
        for cut in 0..b.len() {
            let _ = attrs(&b[..cut]).count();
        }
    }

    #[test]
    fn messages_walk_and_stop_at_garbage() {
        let mut out = Vec::new();
        message(&mut out, 20, NLM_F_REQUEST, 7, &[1, 2, 3]);
        message(&mut out, NLMSG_DONE, 0, 7, &0i32.to_ne_bytes());
        let m: Vec<_> = messages(&out).collect();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].0, m[0].2, m[0].3), (20, 7, &[1u8, 2, 3][..]));
        assert_eq!(m[1].0, NLMSG_DONE);
        out.extend([0xff; 8]);
        assert_eq!(messages(&out).count(), 2);
    }
}
