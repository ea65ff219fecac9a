//! Physical memory as the dump stores it. Both formats reduce to one question,
//! "give me the bytes at this physical address", which is all the log readers
//! need; a small page cache sits in front so the many small reads of a ring
//! walk cost one positioned read (or one decompression) per page.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::fs::File;

pub mod backing;
pub mod flat;
pub mod map;

pub use backing::Backing;

/// Positioned reads on the dump file with the file length checked first, so a
/// truncated file is reported as such rather than as a short read.
pub struct DumpFile {
    // 'static: a DumpFile owns its file or bytes.
    file: Backing<'static>,
    len: u64,
    /// Set for makedumpfile's flattened stream format.
    flat: Option<flat::FlatIndex>,
}

impl DumpFile {
    pub fn open(path: &str) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Open {
            path: path.into(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| Error::Open {
                path: path.into(),
                source,
            })?
            .len();
        // /proc/vmcore reports its size in st_size; a character device or pipe
        // would report 0 and is not supported (we need random access).
        // The flattened index reads one small header per record, scattered
        // over the whole file: positioned reads (no page mapped per header).
        let flat = if len >= 4096 && Backing::Borrowed(&file).starts_with(flat::SIGNATURE) {
            Some(flat::FlatIndex::build(&Backing::Borrowed(&file), len)?)
        } else {
            None
        };
        // Then a regular file is mapped and every read (headers, compressed
        // pages, ELF pages in place) is served from the mapping: no syscall
        // per read. pread remains for what cannot be mapped.
        let backing = match file.metadata().is_ok_and(|m| m.is_file()) {
            true => match map::Mmap::new(&file, len) {
                Some(m) => Backing::Mapped(m),
                None => Backing::File(file),
            },
            false => Backing::File(file),
        };
        let len = flat.as_ref().map_or(len, |f| f.len);
        Ok(DumpFile {
            file: backing,
            len,
            flat,
        })
    }

    /// A dump held in memory (fuzzing, tests): same checks, no file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let backing = Backing::Mem(bytes);
        let len = backing.len();
        let flat = if len >= 4096 && backing.starts_with(flat::SIGNATURE) {
            Some(flat::FlatIndex::build(&backing, len)?)
        } else {
            None
        };
        let len = flat.as_ref().map_or(len, |f| f.len);
        Ok(DumpFile {
            file: backing,
            len,
            flat,
        })
    }

    /// True for makedumpfile's flattened format (read through an index).
    pub fn is_flattened(&self) -> bool {
        self.flat.is_some()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes at [offset, offset + len) in place, when the dump is mapped
    /// or held in memory (not flattened); `None` means "use `read_at`".
    pub fn slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        if self.flat.is_some() {
            return None;
        }
        let end = offset.checked_add(len as u64)?;
        if end > self.len {
            return None;
        }
        // A mapping lends pages in place (file-backed faults map
        // neighbouring pages at once; no copy, no allocation).
        match &self.file {
            Backing::Mapped(m) => m.get(offset, len),
            Backing::Mem(v) => v.get(offset as usize..end as usize),
            _ => None,
        }
    }

    pub fn read_at(&self, offset: u64, buf: &mut [u8], what: &'static str) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(Error::Truncated {
                what,
                need: u64::MAX,
                have: self.len,
            })?;
        if end > self.len {
            return Err(Error::Truncated {
                what,
                need: end,
                have: self.len,
            });
        }
        match &self.flat {
            Some(f) => f.read_at(&self.file, offset, buf),
            None => self.file.read_exact_at(buf, offset),
        }
        .map_err(|source| Error::Io {
            offset,
            len: buf.len(),
            source,
        })
    }

    /// Reads `len` bytes into a new buffer, refusing sizes above `limit` so a
    /// lying header cannot make us allocate gigabytes.
    pub fn read_vec(
        &self,
        offset: u64,
        len: u64,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        if len > limit {
            return Err(Error::TooBig {
                what,
                value: len,
                limit,
            });
        }
        let mut v = vec![0u8; len as usize];
        self.read_at(offset, &mut v, what)?;
        Ok(v)
    }
}

/// A source of physical pages. `read_page` fills exactly one page of `PAGE`
/// bytes; pages the dump does not hold are an error, never zeros, so a
/// translation that lands outside the dump is caught.
pub trait PageSource {
    fn read_page(&self, pfn: u64, buf: &mut [u8; PAGE]) -> Result<()>;
    /// The page in place, when the source can lend it without copying.
    fn page_ref(&self, _pfn: u64) -> Option<&[u8; PAGE]> {
        None
    }
    /// True when the physical page is present in the dump.
    fn has_page(&self, pfn: u64) -> bool;
    /// [paddr, paddr + len) in place, when the source stores that whole
    /// physical range as one run of bytes it can lend (a mapped ELF).
    fn span_ref(&self, _paddr: u64, _len: usize) -> Option<&[u8]> {
        None
    }
}

/// Page granularity of the cache. Dumps with other page sizes (arm64 64K) are
/// still read correctly: the sources split their pages into 4 KiB pieces.
pub const PAGE: usize = 4096;
const CACHE_SLOTS: usize = 256; // 1 MiB of cached pages

/// One cache slot: the pfn it holds and the page bytes.
type Slot = Option<(u64, Box<[u8; PAGE]>)>;

/// Physical memory with a direct-mapped page cache in front of a source.
pub struct PhysMem {
    source: Box<dyn PageSource>,
    /// When set, every pfn fetched from the source (for trimming fixtures).
    pub touched: RefCell<Option<std::collections::BTreeSet<u64>>>,
    cache: RefCell<Vec<Slot>>,
}

impl PhysMem {
    pub fn new(source: Box<dyn PageSource>) -> Self {
        PhysMem {
            source,
            touched: RefCell::new(None),
            cache: RefCell::new(vec![None; CACHE_SLOTS]),
        }
    }

    /// Forgets cached pages (so page tracing sees every page again).
    pub fn clear_cache(&self) {
        self.cache.borrow_mut().iter_mut().for_each(|s| *s = None);
    }

    pub fn has(&self, paddr: u64) -> bool {
        self.source.has_page(paddr / PAGE as u64)
    }

    pub fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let addr = paddr
                .checked_add(done as u64)
                .ok_or(Error::PhysNotInDump(paddr))?;
            let pfn = addr / PAGE as u64;
            let off = (addr % PAGE as u64) as usize;
            let n = (PAGE - off).min(buf.len() - done);
            self.with_page(pfn, |page| {
                buf[done..done + n].copy_from_slice(&page[off..off + n])
            })?;
            done += n;
        }
        Ok(())
    }

    /// A whole physical range in place, or None (source cannot lend it, or
    /// pages are being traced for trimming and must each be seen).
    pub fn span(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        if self.touched.borrow().is_some() {
            return None;
        }
        self.source.span_ref(paddr, len)
    }

    /// The `len` bytes at `paddr`, which must lie in one page: borrowed
    /// from the source when it can lend the page, else copied to `scratch`.
    pub fn view<'s>(&'s self, paddr: u64, len: usize, scratch: &'s mut [u8]) -> Result<&'s [u8]> {
        let pfn = paddr / PAGE as u64;
        let off = (paddr % PAGE as u64) as usize;
        if off + len <= PAGE && self.touched.borrow().is_none() {
            if let Some(page) = self.source.page_ref(pfn) {
                return Ok(&page[off..off + len]);
            }
        }
        let buf = &mut scratch[..len];
        self.read(paddr, buf)?;
        Ok(buf)
    }

    fn with_page<R>(&self, pfn: u64, f: impl FnOnce(&[u8; PAGE]) -> R) -> Result<R> {
        if let Some(page) = self.source.page_ref(pfn) {
            if let Some(t) = self.touched.borrow_mut().as_mut() {
                t.insert(pfn);
            }
            return Ok(f(page));
        }
        let slot = (pfn as usize) % CACHE_SLOTS;
        let mut cache = self.cache.borrow_mut();
        if let Some((p, page)) = &cache[slot] {
            if *p == pfn {
                return Ok(f(page));
            }
        }
        let mut page = match cache[slot].take() {
            Some((_, b)) => b,
            None => Box::new([0u8; PAGE]),
        };
        self.source.read_page(pfn, &mut page)?;
        if let Some(t) = self.touched.borrow_mut().as_mut() {
            t.insert(pfn);
        }
        let r = f(&page);
        cache[slot] = Some((pfn, page));
        Ok(r)
    }
}
