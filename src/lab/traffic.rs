//! Bounded traffic generated from inside a lab namespace, in-process: a
//! thread enters the namespace with setns(2) (which affects only itself),
//! and sockets it opens stay in that namespace.
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::LabError;

/// Run `f` on a thread that has entered the named netns.
pub fn in_netns<T, F>(ns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LabError> + Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| LabError::Netns(ns.to_string(), e))?;
    let ns_name = ns.to_string();
    std::thread::spawn(move || {
        // SAFETY: a valid namespace fd; setns changes only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(LabError::Netns(ns_name, std::io::Error::last_os_error()));
        }
        f()
    })
    .join()
    .map_err(|_| LabError::Traffic("traffic thread panicked".into()))?
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
