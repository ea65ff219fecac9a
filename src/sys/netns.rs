//! A thread inside another network namespace.
//!
//! setns(2) with CLONE_NEWNET changes only the calling thread, so a fresh
//! thread enters the namespace, runs the work and ends: sockets, netlink
//! and /proc/thread-self/net opened there belong to that namespace, and
//! the rest of netwhy never leaves its own.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("setns: {0}")]
    Setns(io::Error),
    #[error("the namespace thread panicked")]
    Panicked,
}

/// Run `f` on a new thread that has entered the network namespace `ns`
/// refers to (an open /run/netns/NAME or /proc/PID/ns/net), and return its
/// result.
pub fn run_in<T, F>(ns: File, f: F) -> Result<T, EnterError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    std::thread::spawn(move || {
        // SAFETY: a valid namespace fd; setns changes only this thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(EnterError::Setns(io::Error::last_os_error()));
        }
        Ok(f())
    })
    .join()
    .map_err(|_| EnterError::Panicked)?
}
