//! The kdump-compressed ("diskdump") format written by makedumpfile `-c/-l/-p/-z`
//! and qemu `dump-guest-memory -z/-l/-s`.
//!
//! Layout (all little-endian for the 64-bit machines we read):
//! block 0: `disk_dump_header`; block 1..: `kdump_sub_header` (+ ELF notes,
//! VMCOREINFO); then `bitmap_blocks` of bitmaps: the first half says which
//! pfns exist, the second half which were dumped; then one 24-byte page
//! descriptor per dumped page, in pfn order. A page's descriptor index is the
//! number of dumped pages before it, so random access needs prefix counts of
//! the second bitmap; those are built once, one small read per bitmap block.

use crate::error::{Error, Result};
use crate::phys::{DumpFile, PageSource, PAGE};
use std::cell::RefCell;
use std::sync::Arc;

pub const SIGNATURE: &[u8; 8] = b"KDUMP   ";
const DESC_SIZE: u64 = 24;
const FLAG_ZLIB: u32 = 0x1;
const FLAG_LZO: u32 = 0x2;
const FLAG_SNAPPY: u32 = 0x4;
const FLAG_ZSTD: u32 = 0x20;
/// 2^32 bitmap bytes covers 128 TiB of 4 KiB pages: beyond that the header lies.
const MAX_BITMAP: u64 = 1 << 32;

#[derive(Clone, Debug)]
pub struct KdumpHeader {
    pub version: i32,
    pub release: String,
    pub machine: String,
    pub status: u32,
    pub block_size: u64,
    pub sub_hdr_size: u64,
    pub bitmap_blocks: u64,
    pub max_mapnr: u64,
    pub phys_base: u64,
    pub vmcoreinfo: Option<(u64, u64)>,
    pub notes: Option<(u64, u64)>,
}

fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64le(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl KdumpHeader {
    pub fn parse(file: &DumpFile) -> Result<Self> {
        let mut h = [0u8; 464];
        file.read_at(0, &mut h, "kdump header")?;
        if &h[..8] != SIGNATURE {
            return Err(Error::NotADump("no KDUMP signature".into()));
        }
        let version = u32le(&h, 8) as i32;
        // utsname: six 65-byte fields from offset 12.
        let release = cstr(&h[12 + 2 * 65..12 + 3 * 65]);
        let machine = cstr(&h[12 + 4 * 65..12 + 5 * 65]);
        let status = u32le(&h, 424);
        let block_size = u64::from(u32le(&h, 428));
        let sub_hdr_size = u64::from(u32le(&h, 432));
        let bitmap_blocks = u64::from(u32le(&h, 436));
        let mut max_mapnr = u64::from(u32le(&h, 440));
        if !(block_size.is_power_of_two() && (PAGE as u64..=1 << 16).contains(&block_size)) {
            return Err(Error::BadKdump(format!(
                "block size {block_size} (expected 4 KiB..64 KiB)"
            )));
        }
        if version < 1 {
            return Err(Error::BadKdump(format!("header version {version}")));
        }
        let mut sub = [0u8; 104];
        file.read_at(block_size, &mut sub, "kdump sub header")?;
        let phys_base = u64le(&sub, 0);
        let pair = |o: usize| {
            let (off, size) = (u64le(&sub, o), u64le(&sub, o + 8));
            (off != 0 && size != 0).then_some((off, size))
        };
        let vmcoreinfo = if version >= 3 { pair(32) } else { None };
        let notes = if version >= 4 { pair(48) } else { None };
        if version >= 6 {
            max_mapnr = u64le(&sub, 96);
        }
        Ok(KdumpHeader {
            version,
            release,
            machine,
            status,
            block_size,
            sub_hdr_size,
            bitmap_blocks,
            max_mapnr,
            phys_base,
            vmcoreinfo,
            notes,
        })
    }

    pub fn compression(&self) -> &'static str {
        method_name(self.status)
    }
}

fn method_name(flags: u32) -> &'static str {
    if flags & FLAG_ZLIB != 0 {
        "zlib"
    } else if flags & FLAG_LZO != 0 {
        "lzo"
    } else if flags & FLAG_SNAPPY != 0 {
        "snappy"
    } else if flags & FLAG_ZSTD != 0 {
        "zstd"
    } else {
        "none"
    }
}

/// Physical pages of a kdump-compressed dump.
/// Bitmap bytes per rank sample (see `KdumpPages::ensure_prefix`): a lookup
/// counts at most 255 bytes, and the samples take 1/32 of the bitmap's size
/// (1 MiB for a 1 TiB machine). Block sizes (page sizes) are multiples of
/// it, so samples never straddle blocks.
const RANK_BYTES: u64 = 256;

/// Set bits in a byte run, eight bytes at a time.
fn ones(b: &[u8]) -> u64 {
    let mut words = b.chunks_exact(8);
    let mut n: u64 = (&mut words)
        .map(|w| u64::from(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])).count_ones()))
        .sum();
    n += words
        .remainder()
        .iter()
        .map(|x| u64::from(x.count_ones()))
        .sum::<u64>();
    n
}

pub struct KdumpPages {
    file: Arc<DumpFile>,
    hdr: KdumpHeader,
    /// File offset of the dumpable (second) bitmap.
    bitmap2: u64,
    /// Length in bytes of one bitmap.
    bitmap_len: u64,
    /// File offset of the first page descriptor.
    descs: u64,
    /// Dumped-page counts before every RANK_BYTES of the bitmap (built lazily).
    prefix: RefCell<Option<Vec<u64>>>,
    /// The last bitmap block read: (block index, bytes).
    block: RefCell<Option<(u64, Vec<u8>)>>,
    /// zlib inflater, reset for each page.
    inflate: RefCell<flate2::Decompress>,
}

impl KdumpPages {
    pub fn new(file: Arc<DumpFile>, hdr: KdumpHeader) -> Result<Self> {
        let bs = hdr.block_size;
        if hdr.bitmap_blocks == 0 || hdr.bitmap_blocks % 2 != 0 {
            return Err(Error::BadKdump(format!(
                "bitmap_blocks {} is not even",
                hdr.bitmap_blocks
            )));
        }
        let bitmap_len = hdr.bitmap_blocks / 2 * bs;
        if bitmap_len > MAX_BITMAP {
            return Err(Error::TooBig {
                what: "kdump bitmap",
                value: bitmap_len,
                limit: MAX_BITMAP,
            });
        }
        let bitmap1 = (1 + hdr.sub_hdr_size)
            .checked_mul(bs)
            .ok_or_else(|| Error::BadKdump("sub header size overflows".into()))?;
        let bitmap2 = bitmap1 + bitmap_len;
        let descs = bitmap2 + bitmap_len;
        if descs > file.len() {
            return Err(Error::Truncated {
                what: "kdump bitmaps",
                need: descs,
                have: file.len(),
            });
        }
        Ok(KdumpPages {
            file,
            hdr,
            bitmap2,
            bitmap_len,
            descs,
            prefix: RefCell::new(None),
            block: RefCell::new(None),
            inflate: RefCell::new(flate2::Decompress::new(true)),
        })
    }

    fn block_bytes(&self) -> u64 {
        self.hdr.block_size
    }

    fn with_bitmap_block<R>(&self, idx: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let mut cur = self.block.borrow_mut();
        if cur.as_ref().map(|(i, _)| *i) != Some(idx) {
            let bs = self.block_bytes();
            let off = idx * bs;
            let len = bs.min(self.bitmap_len - off);
            let v = self
                .file
                .read_vec(self.bitmap2 + off, len, bs, "kdump bitmap")?;
            *cur = Some((idx, v));
        }
        Ok(f(&cur.as_ref().unwrap().1))
    }

    /// Dumped-page counts before every [`RANK_BYTES`] of the bitmap, built
    /// once by one pass over it: a lookup then counts less than RANK_BYTES
    /// instead of up to a whole bitmap block per page read.
    fn ensure_prefix(&self) -> Result<()> {
        if self.prefix.borrow().is_some() {
            return Ok(());
        }
        let bs = self.block_bytes();
        let blocks = self.bitmap_len.div_ceil(bs);
        let mut counts = Vec::with_capacity(self.bitmap_len.div_ceil(RANK_BYTES) as usize);
        let mut total = 0u64;
        for b in 0..blocks {
            self.with_bitmap_block(b, |bits| {
                for chunk in bits.chunks(RANK_BYTES as usize) {
                    counts.push(total);
                    total += ones(chunk);
                }
            })?;
        }
        *self.prefix.borrow_mut() = Some(counts);
        Ok(())
    }

    /// Descriptor index of a dumped block (in block-size pfns), or None.
    fn desc_index(&self, bpfn: u64) -> Result<Option<u64>> {
        let byte = bpfn / 8;
        if byte >= self.bitmap_len || (self.hdr.max_mapnr != 0 && bpfn >= self.hdr.max_mapnr) {
            return Ok(None);
        }
        self.ensure_prefix()?;
        let bs = self.block_bytes();
        let blk = byte / bs;
        let within = (byte % bs) as usize;
        let bit = (bpfn % 8) as u32;
        let chunk_at = within - within % RANK_BYTES as usize;
        let (present, before) = self.with_bitmap_block(blk, |bits| {
            let present = bits[within] >> bit & 1 == 1;
            let n = ones(&bits[chunk_at..within])
                + u64::from((bits[within] & ((1u16 << bit) - 1) as u8).count_ones());
            (present, n)
        })?;
        if !present {
            return Ok(None);
        }
        let base = self
            .prefix
            .borrow()
            .as_ref()
            .and_then(|p| p.get((byte / RANK_BYTES) as usize).copied())
            .ok_or_else(|| Error::BadKdump("bitmap rank index out of range".into()))?;
        Ok(Some(base + before))
    }

    fn read_block(&self, bpfn: u64, out: &mut [u8]) -> Result<()> {
        let idx = self
            .desc_index(bpfn)?
            .ok_or(Error::PhysNotInDump(bpfn * self.block_bytes()))?;
        let mut d = [0u8; DESC_SIZE as usize];
        let at = idx
            .checked_mul(DESC_SIZE)
            .and_then(|o| o.checked_add(self.descs))
            .ok_or_else(|| Error::BadKdump("descriptor offset overflows".into()))?;
        self.file.read_at(at, &mut d, "kdump page descriptor")?;
        let offset = u64le(&d, 0);
        let size = u64::from(u32le(&d, 8));
        let flags = u32le(&d, 12);
        let bs = self.block_bytes();
        if size == 0 || size > bs {
            return Err(Error::BadKdump(format!(
                "page {bpfn:#x}: stored size {size} (block size {bs})"
            )));
        }
        let data = self.file.read_vec(offset, size, bs, "kdump page data")?;
        let method = method_name(flags);
        let bad = |detail: String| Error::Decompress {
            pfn: bpfn,
            method,
            detail,
        };
        let n = if flags & (FLAG_ZLIB | FLAG_LZO | FLAG_SNAPPY | FLAG_ZSTD) == 0 {
            if size != bs {
                return Err(Error::BadKdump(format!(
                    "page {bpfn:#x}: raw page of {size} bytes"
                )));
            }
            out.copy_from_slice(&data);
            out.len()
        } else if flags & FLAG_ZLIB != 0 {
            // One inflater for every page (its state is tens of KiB).
            let mut z = self.inflate.borrow_mut();
            z.reset(true);
            z.decompress(&data, out, flate2::FlushDecompress::Finish)
                .map_err(|e| bad(e.to_string()))?;
            z.total_out() as usize
        } else if flags & FLAG_LZO != 0 {
            crate::lzo::decompress(&data, out).map_err(|e| bad(e.to_string()))?
        } else if flags & FLAG_SNAPPY != 0 {
            let want = snap::raw::decompress_len(&data).map_err(|e| bad(e.to_string()))?;
            if want != out.len() {
                return Err(bad(format!("{want} bytes out")));
            }
            snap::raw::Decoder::new()
                .decompress(&data, out)
                .map_err(|e| bad(e.to_string()))?
        } else {
            let mut dec = ruzstd::decoding::FrameDecoder::new();
            dec.decode_all(&data, out).map_err(|e| bad(e.to_string()))?
        };
        if n != out.len() {
            return Err(bad(format!("{n} bytes out of {}", out.len())));
        }
        Ok(())
    }
}

impl PageSource for KdumpPages {
    fn has_page(&self, pfn: u64) -> bool {
        let per = self.block_bytes() / PAGE as u64;
        matches!(self.desc_index(pfn / per), Ok(Some(_)))
    }

    fn read_page(&self, pfn: u64, buf: &mut [u8; PAGE]) -> Result<()> {
        let per = self.block_bytes() / PAGE as u64;
        if per == 1 {
            return self.read_block(pfn, buf);
        }
        // Larger blocks (arm64 64 KiB pages): decompress and keep our slice.
        let mut block = vec![0u8; self.block_bytes() as usize];
        self.read_block(pfn / per, &mut block)?;
        let at = (pfn % per) as usize * PAGE;
        buf.copy_from_slice(&block[at..at + PAGE]);
        Ok(())
    }
}
