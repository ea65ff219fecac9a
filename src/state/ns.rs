//! Entering the network namespace of a drop.
//!
//! A drop names its netns by inode. To look at that namespace we need a file
//! that refers to it (an `ip netns` bind mount or /proc/PID/ns/net of a
//! process inside), then a thread that setns(2)s into it: setns affects only
//! the calling thread, and netlink or /proc/sys/net opened there belongs to
//! that namespace.
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::sys::netns::EnterError;

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error(
        "network namespace {0} has no ip-netns name and no process inside: it cannot be entered"
    )]
    NotFound(u32),
    #[error("entering {path}: {source} (needs root / CAP_SYS_ADMIN)")]
    Enter { path: String, source: io::Error },
    #[error("namespace worker thread panicked")]
    Panicked,
}

/// A file referring to netns `ino`: /run/netns/* first, then /proc/PID/ns/net.
pub fn path_of(ino: u32) -> Option<PathBuf> {
    let matches = |p: &Path| fs::metadata(p).is_ok_and(|m| m.ino() == u64::from(ino));
    if let Ok(dir) = fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            if matches(&e.path()) {
                return Some(e.path());
            }
        }
    }
    let own = Path::new("/proc/self/ns/net");
    if matches(own) {
        return Some(own.to_path_buf());
    }
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let p = e.path().join("ns/net");
        if matches(&p) {
            return Some(p);
        }
    }
    None
}

/// Run `f` on a thread inside netns `ino` (or in the current netns when
/// `ino` is the caller's own) and return its result.
pub fn run_in<T, F>(ino: u32, f: F) -> Result<T, NsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = path_of(ino).ok_or(NsError::NotFound(ino))?;
    run_in_path(&path, f)
}

/// Like [`run_in`], with a namespace file path.
pub fn run_in_path<T, F>(path: &Path, f: F) -> Result<T, NsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = File::open(path).map_err(|source| NsError::Enter {
        path: path.display().to_string(),
        source,
    })?;
    crate::sys::netns::run_in(file, f).map_err(|e| match e {
        EnterError::Setns(source) => NsError::Enter {
            path: path.display().to_string(),
            source,
        },
        EnterError::Panicked => NsError::Panicked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_found_and_entered() {
        let ino = fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
        assert!(path_of(ino).is_some());
        if crate::sys::is_root() {
            let seen = run_in(ino, || {
                fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
            })
            .unwrap();
            assert_eq!(seen, u64::from(ino));
        }
        assert!(matches!(run_in(1, || ()), Err(NsError::NotFound(1))));
    }
}
