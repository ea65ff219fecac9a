//! makedumpfile's "flattened" format (`makedumpfile -F`, and what qemu 7.2
//! writes for `dump-guest-memory -z/-l/-s`): a stream of
//! `{offset: i64 BE, size: i64 BE, data}` records that, applied in order,
//! rebuild a kdump-compressed file. It exists so a dump can be piped over
//! ssh; we index it once (headers only) and serve positioned reads from it.

use super::backing::Backing;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

pub const SIGNATURE: &[u8; 12] = b"makedumpfile";
const HEADER_SIZE: u64 = 4096;
/// Records are at least 16 bytes, so a real index is bounded by file size;
/// this caps the memory of the index itself.
const MAX_RECORDS: usize = 16 << 20;

/// Disjoint map: logical start → (logical end, file offset of the bytes).
#[derive(Debug, Default)]
pub struct FlatIndex {
    map: BTreeMap<u64, (u64, u64)>,
    /// Logical size of the rebuilt file.
    pub len: u64,
}

impl FlatIndex {
    pub fn build(file: &Backing, file_len: u64) -> Result<Self> {
        let bad = |m: String| Error::BadKdump(format!("flattened format: {m}"));
        let mut h = [0u8; 32];
        file.read_exact_at(&mut h, 0).map_err(|source| Error::Io {
            offset: 0,
            len: 32,
            source,
        })?;
        let ftype = i64::from_be_bytes(h[16..24].try_into().unwrap());
        if ftype != 1 {
            return Err(bad(format!("type {ftype}, expected 1")));
        }
        let mut records: Vec<(u64, u64, u64)> = Vec::new();
        let mut pos = HEADER_SIZE;
        loop {
            let mut rh = [0u8; 16];
            if pos + 16 > file_len {
                return Err(Error::Truncated {
                    what: "flattened record header",
                    need: pos + 16,
                    have: file_len,
                });
            }
            file.read_exact_at(&mut rh, pos)
                .map_err(|source| Error::Io {
                    offset: pos,
                    len: 16,
                    source,
                })?;
            let off = i64::from_be_bytes(rh[..8].try_into().unwrap());
            let size = i64::from_be_bytes(rh[8..].try_into().unwrap());
            if off == -1 && size == -1 {
                break;
            }
            if off < 0 || size < 0 {
                return Err(bad(format!(
                    "record at {pos:#x}: offset {off}, size {size}"
                )));
            }
            let data = pos + 16;
            let end = data.checked_add(size as u64).filter(|&e| e <= file_len);
            let Some(end) = end else {
                return Err(Error::Truncated {
                    what: "flattened record data",
                    need: data.saturating_add(size as u64),
                    have: file_len,
                });
            };
            if records.len() >= MAX_RECORDS {
                return Err(Error::TooBig {
                    what: "flattened record count",
                    value: records.len() as u64,
                    limit: MAX_RECORDS as u64,
                });
            }
            if size > 0 {
                records.push((off as u64, size as u64, data));
            }
            pos = end;
        }
        let mut idx = FlatIndex::default();
        // Later records overwrite earlier ones: insert newest first, keeping
        // only the parts not yet covered.
        for &(off, size, src) in records.iter().rev() {
            idx.insert_uncovered(off, off.saturating_add(size), src);
            idx.len = idx.len.max(off.saturating_add(size));
        }
        Ok(idx)
    }

    fn insert_uncovered(&mut self, start: u64, end: u64, src: u64) {
        let mut cur = start;
        let mut gaps = Vec::new();
        // Existing intervals that may overlap, in order.
        let first = self
            .map
            .range(..=start)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(start);
        for (&s, &(e, _)) in self.map.range(first..end) {
            if e <= cur {
                continue;
            }
            if s > cur {
                gaps.push((cur, s));
            }
            cur = cur.max(e);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            gaps.push((cur, end));
        }
        for (a, b) in gaps {
            self.map.insert(a, (b, src + (a - start)));
        }
    }

    /// Fills `buf` from logical `offset`; bytes never written read as zeros.
    pub fn read_at(&self, file: &Backing, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        buf.fill(0);
        let end = offset + buf.len() as u64;
        let first = self
            .map
            .range(..=offset)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(offset);
        for (&s, &(e, src)) in self.map.range(first..end) {
            let lo = s.max(offset);
            let hi = e.min(end);
            if lo >= hi {
                continue;
            }
            file.read_exact_at(
                &mut buf[(lo - offset) as usize..(hi - offset) as usize],
                src + (lo - s),
            )?;
        }
        Ok(())
    }
}
