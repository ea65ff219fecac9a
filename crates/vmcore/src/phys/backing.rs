//! The bytes of a dump file, wherever they are: an open file, a borrowed
//! one, a mapping, or memory. Its own file so that the flattened-format
//! index (`flat`), which reads through it, and `phys`, which reads through
//! that index, do not depend on each other.
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::map;

/// Where the bytes of a dump live.
pub enum Backing<'a> {
    File(File),
    Borrowed(&'a File),
    Mem(Vec<u8>),
    /// A read-only mapping of a regular file (the file may be closed).
    Mapped(map::Mmap),
}

impl Backing<'_> {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Backing::Mem(v) => v.len() as u64,
            Backing::File(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
            Backing::Borrowed(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
            Backing::Mapped(m) => m.len() as u64,
        }
    }

    pub(crate) fn starts_with(&self, sig: &[u8]) -> bool {
        let mut b = vec![0u8; sig.len()];
        self.read_exact_at(&mut b, 0).is_ok() && b == sig
    }

    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Backing::File(f) => f.read_exact_at(buf, offset),
            Backing::Borrowed(f) => f.read_exact_at(buf, offset),
            Backing::Mem(v) => {
                let src = usize::try_from(offset)
                    .ok()
                    .and_then(|o| v.get(o..o.checked_add(buf.len())?))
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(src);
                Ok(())
            }
            Backing::Mapped(m) => {
                let src = m
                    .get(offset, buf.len())
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }
}
