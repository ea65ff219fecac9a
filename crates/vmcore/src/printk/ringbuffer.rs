//! The lockless `printk_ringbuffer` (Linux 5.10+).
//!
//! Three arrays: descriptors (state + data block position), infos (seq,
//! timestamp, level, caller, device info) and a byte ring of data blocks.
//! A descriptor's `state_var` holds its id in the low 62 bits and its state in
//! the top two; only committed (1) and finalized (2) records are complete.
//! Data blocks start with the 8-byte descriptor id; a block that would wrap
//! the ring is stored whole at its start; odd positions mean "no data".

use super::Log;
use crate::error::{Error, Result};
use crate::kvm::KernelMem;
use crate::record::Record;
use crate::vmcoreinfo::VmcoreInfo;

const ID_MASK: u64 = (1 << 62) - 1;
const STATE_COMMITTED: u64 = 1;
const STATE_FINALIZED: u64 = 2;
/// 2^24 descriptors is a 1.5 GiB log buffer: more means a lying dump.
const MAX_COUNT_BITS: u32 = 24;
const MAX_SIZE_BITS: u32 = 31;

/// Field offsets, every one from VMCOREINFO.
struct Layout {
    desc_ring: u64,
    text_ring: u64,
    count_bits: u64,
    descs: u64,
    infos: u64,
    head_id: u64,
    tail_id: u64,
    counter: u64,
    desc_size: u64,
    state_var: u64,
    text_lpos: u64,
    lpos_begin: u64,
    lpos_next: u64,
    info_size: u64,
    seq: u64,
    ts_nsec: u64,
    text_len: u64,
    caller_id: Option<u64>,
    dev_info: Option<(u64, u64, u64, u64, u64)>,
    size_bits: u64,
    data: u64,
}

/// A little-endian field of `n` bytes at `off`; 0 past the end, which
/// [`Layout::check_fields`] rules out for every field we read.
fn le(b: &[u8], off: u64, n: usize) -> u64 {
    let o = off as usize;
    let mut v = [0u8; 8];
    if let Some(s) = o.checked_add(n).and_then(|e| b.get(o..e)) {
        v[..n].copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

impl Layout {
    /// Every field the walk reads must lie inside its struct: checked once
    /// here so the per-record reads need no error path.
    fn check_fields(&self) -> Result<()> {
        let end = |a: u64, b: u64, n: u64| a.saturating_add(b).saturating_add(n);
        let desc = [
            end(self.state_var, self.counter, 8),
            end(self.text_lpos, self.lpos_begin, 8),
            end(self.text_lpos, self.lpos_next, 8),
        ];
        let mut info = vec![
            end(self.seq, 0, 8),
            end(self.ts_nsec, 0, 8),
            end(self.text_len, 0, 4),
        ];
        info.extend(self.caller_id.map(|o| end(o, 0, 4)));
        for (end, size) in desc
            .iter()
            .map(|e| (*e, self.desc_size))
            .chain(info.iter().map(|e| (*e, self.info_size)))
        {
            if end > size {
                return Err(Error::BadLog(format!(
                    "field ending at {end} beyond struct size {size}"
                )));
            }
        }
        Ok(())
    }

    fn from(vi: &VmcoreInfo) -> Result<Layout> {
        let o = |f: &str| vi.require_offset(f);
        let dev_info = match (
            vi.offset("printk_info.dev_info")?,
            vi.offset("dev_printk_info.subsystem")?,
            vi.length("printk_info_subsystem")?,
            vi.offset("dev_printk_info.device")?,
            vi.length("printk_info_device")?,
        ) {
            (Some(a), Some(b), Some(c), Some(d), Some(e)) if c <= 256 && e <= 256 => {
                Some((a, b, c, d, e))
            }
            _ => None,
        };
        Ok(Layout {
            desc_ring: o("printk_ringbuffer.desc_ring")?,
            text_ring: o("printk_ringbuffer.text_data_ring")?,
            count_bits: o("prb_desc_ring.count_bits")?,
            descs: o("prb_desc_ring.descs")?,
            infos: o("prb_desc_ring.infos")?,
            head_id: o("prb_desc_ring.head_id")?,
            tail_id: o("prb_desc_ring.tail_id")?,
            counter: vi.offset("atomic_long_t.counter")?.unwrap_or(0),
            desc_size: vi.require_size("prb_desc")?,
            state_var: o("prb_desc.state_var")?,
            text_lpos: o("prb_desc.text_blk_lpos")?,
            lpos_begin: o("prb_data_blk_lpos.begin")?,
            lpos_next: o("prb_data_blk_lpos.next")?,
            info_size: vi.require_size("printk_info")?,
            seq: o("printk_info.seq")?,
            ts_nsec: o("printk_info.ts_nsec")?,
            text_len: o("printk_info.text_len")?,
            caller_id: vi.offset("printk_info.caller_id")?,
            dev_info,
            size_bits: o("prb_data_ring.size_bits")?,
            data: o("prb_data_ring.data")?,
        })
    }
}

pub fn read(vi: &VmcoreInfo, mem: &KernelMem) -> Result<Log> {
    let mut records = Vec::new();
    let warnings = walk(vi, mem, &mut |r| records.push(r.clone()))?;
    Ok(Log { records, warnings })
}

/// Calls `f` for every complete record, oldest first, with one [`Record`]
/// reused throughout (no allocation per record); returns the warnings.
pub fn walk<'m>(
    vi: &VmcoreInfo,
    mem: &'m KernelMem,
    f: &mut dyn FnMut(&Record),
) -> Result<Vec<String>> {
    let l = Layout::from(vi)?;
    if l.desc_size > 4096 || l.info_size > 4096 || l.desc_size == 0 || l.info_size == 0 {
        return Err(Error::BadLog(format!(
            "absurd struct sizes: prb_desc {}, printk_info {}",
            l.desc_size, l.info_size
        )));
    }
    // SYMBOL(prb) is a pointer variable (it points at the static or the
    // dynamically sized ring): dereference it first.
    let prb = mem.u64(vi.require_symbol("prb")?)?;
    let ring = prb.wrapping_add(l.desc_ring);
    let count_bits = mem.u32(ring.wrapping_add(l.count_bits))?;
    if count_bits > MAX_COUNT_BITS {
        return Err(Error::TooBig {
            what: "descriptor ring count_bits",
            value: count_bits.into(),
            limit: MAX_COUNT_BITS.into(),
        });
    }
    let count = 1u64 << count_bits;
    let descs = mem.u64(ring.wrapping_add(l.descs))?;
    let infos = mem.u64(ring.wrapping_add(l.infos))?;
    let head = mem.u64(ring.wrapping_add(l.head_id + l.counter))? & ID_MASK;
    let mut tail = mem.u64(ring.wrapping_add(l.tail_id + l.counter))? & ID_MASK;
    let text = prb.wrapping_add(l.text_ring);
    let size_bits = mem.u32(text.wrapping_add(l.size_bits))?;
    if !(3..=MAX_SIZE_BITS).contains(&size_bits) {
        return Err(Error::BadLog(format!(
            "text data ring size_bits {size_bits}"
        )));
    }
    let data = mem.u64(text.wrapping_add(l.data))?;
    let mut warnings = Vec::new();

    let span = head.wrapping_sub(tail) & ID_MASK;
    if span >= count {
        // The kernel never lets the ring hold more ids than descriptors: a
        // larger span is a corrupted counter. Read the newest `count` ids.
        warnings.push(format!(
            "tail id {tail} is {span} ids behind head {head}; reading the newest {count}"
        ));
        tail = head.wrapping_sub(count - 1) & ID_MASK;
    }
    l.check_fields()?;
    // Fast path: each array as one borrowed slice (static buffers in the
    // kernel image and boot-time log_buf_len= buffers are physically
    // contiguous, and a mapped ELF lends them in place).
    let descs_all = mem.contiguous(descs, count * l.desc_size);
    let infos_all = mem.contiguous(infos, count * l.info_size);
    let data_all = mem.contiguous(data, 1 << size_bits);
    let elem = |all: Option<&'m [u8]>, idx: u64, size: u64| {
        all.and_then(|a| a.get((idx * size) as usize..((idx + 1) * size) as usize))
    };
    let mut desc_scratch = vec![0u8; l.desc_size as usize];
    let mut info_scratch = vec![0u8; l.info_size as usize];
    // Reusable descriptors are normal (their data was overwritten by newer
    // records); reserved ones or ids that do not match are worth a warning.
    let mut odd = 0u64;
    let mut id = tail;
    let mut rec = Record::default();
    loop {
        let idx = id & (count - 1);
        // Descriptors and infos are read in place where the dump can lend
        // the page (field offsets were checked against the struct sizes).
        let desc = match elem(descs_all, idx, l.desc_size) {
            Some(d) => d,
            None => mem.view(
                descs.wrapping_add(idx * l.desc_size),
                l.desc_size as usize,
                &mut desc_scratch,
            )?,
        };
        let sv = le(desc, l.state_var + l.counter, 8);
        let state = sv >> 62;
        if sv & ID_MASK == id && (state == STATE_COMMITTED || state == STATE_FINALIZED) {
            let begin = le(desc, l.text_lpos + l.lpos_begin, 8);
            let next = le(desc, l.text_lpos + l.lpos_next, 8);
            let info = match elem(infos_all, idx, l.info_size) {
                Some(i) => i,
                None => mem.view(
                    infos.wrapping_add(idx * l.info_size),
                    l.info_size as usize,
                    &mut info_scratch,
                )?,
            };
            let text_len = le(info, l.text_len, 2);
            let packed = le(info, l.text_len + 3, 1) as u8;
            rec.seq = le(info, l.seq, 8);
            rec.ts_nsec = le(info, l.ts_nsec, 8);
            rec.facility = le(info, l.text_len + 2, 1) as u8;
            rec.flags = packed & 0x1f;
            rec.level = packed >> 5;
            rec.caller_id = l.caller_id.map(|o| le(info, o, 4) as u32);
            rec.dict.clear();
            if let Some((di, so, sl, dof, dl)) = l.dev_info {
                for (key, off, len) in [("SUBSYSTEM", di + so, sl), ("DEVICE", di + dof, dl)] {
                    let o = off as usize;
                    if let Some(raw) = info.get(o..o + len as usize) {
                        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
                        if end > 0 {
                            rec.dict.push((
                                key.into(),
                                String::from_utf8_lossy(&raw[..end]).into_owned(),
                            ));
                        }
                    }
                }
            }
            rec.text.clear();
            if let Some((at, n)) = block_pos(size_bits, begin, next, text_len)? {
                let at = at + 8;
                match data_all.and_then(|d| d.get(at as usize..at as usize + n)) {
                    Some(t) => rec.text.extend_from_slice(t),
                    None => {
                        rec.text.resize(n, 0);
                        mem.read(data.wrapping_add(at), &mut rec.text)?;
                    }
                }
            }
            f(&rec);
        } else if !(sv & ID_MASK == id.wrapping_sub(count) & ID_MASK || state == 3) {
            odd += 1;
        }
        if id == head {
            break;
        }
        id = (id + 1) & ID_MASK;
    }
    if odd > 0 {
        warnings.push(format!(
            "{odd} records skipped: still being written when the kernel stopped, or overwritten"
        ));
    }
    Ok(warnings)
}

/// Where the text of one record lies in the data ring: the block for
/// [begin, next) (whole at the ring's start when it would have wrapped),
/// as (offset of the block, text bytes after its 8-byte id). None for a
/// data-less record.
fn block_pos(size_bits: u32, begin: u64, next: u64, text_len: u64) -> Result<Option<(u64, usize)>> {
    if begin & 1 == 1 || next & 1 == 1 {
        // Data-less record (an empty line, or text that failed to fit).
        return Ok(None);
    }
    let size = 1u64 << size_bits;
    let wraps = |lpos: u64| lpos >> size_bits;
    let index = |lpos: u64| lpos & (size - 1);
    let (at, len) = if wraps(begin) == wraps(next) && begin < next {
        (index(begin), next - begin)
    } else if wraps(begin.wrapping_add(size)) == wraps(next) {
        (0, index(next))
    } else {
        return Err(Error::BadLog(format!(
            "data block [{begin:#x}, {next:#x}) is not a valid position"
        )));
    };
    if len < 8 || len > size {
        return Err(Error::BadLog(format!(
            "data block of {len} bytes at [{begin:#x}, {next:#x})"
        )));
    }
    Ok(Some((at, (len - 8).min(text_len) as usize)))
}
