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

impl Layout {
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
    let mut log = Log::default();

    let span = head.wrapping_sub(tail) & ID_MASK;
    if span >= count {
        // The kernel never lets the ring hold more ids than descriptors: a
        // larger span is a corrupted counter. Read the newest `count` ids.
        log.warnings.push(format!(
            "tail id {tail} is {span} ids behind head {head}; reading the newest {count}"
        ));
        tail = head.wrapping_sub(count - 1) & ID_MASK;
    }
    let mut desc = vec![0u8; l.desc_size as usize];
    let mut info = vec![0u8; l.info_size as usize];
    let field = |b: &[u8], off: u64, n: usize| -> Result<u64> {
        let o = off as usize;
        let s = b.get(o..o + n).ok_or_else(|| {
            Error::BadLog(format!("field offset {off} beyond struct size {}", b.len()))
        })?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(s);
        Ok(u64::from_le_bytes(v))
    };
    // Reusable descriptors are normal (their data was overwritten by newer
    // records); reserved ones or ids that do not match are worth a warning.
    let mut odd = 0u64;
    let mut id = tail;
    loop {
        let idx = id & (count - 1);
        mem.read(descs.wrapping_add(idx * l.desc_size), &mut desc)?;
        let sv = field(&desc, l.state_var + l.counter, 8)?;
        let state = sv >> 62;
        if sv & ID_MASK == id && (state == STATE_COMMITTED || state == STATE_FINALIZED) {
            mem.read(infos.wrapping_add(idx * l.info_size), &mut info)?;
            let begin = field(&desc, l.text_lpos + l.lpos_begin, 8)?;
            let next = field(&desc, l.text_lpos + l.lpos_next, 8)?;
            let text_len = field(&info, l.text_len, 2)?;
            let packed = field(&info, l.text_len + 3, 1)? as u8;
            let mut rec = Record {
                seq: field(&info, l.seq, 8)?,
                ts_nsec: field(&info, l.ts_nsec, 8)?,
                facility: field(&info, l.text_len + 2, 1)? as u8,
                flags: packed & 0x1f,
                level: packed >> 5,
                caller_id: match l.caller_id {
                    Some(o) => Some(field(&info, o, 4)? as u32),
                    None => None,
                },
                ..Record::default()
            };
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
            rec.text = block_text(mem, data, size_bits, begin, next, text_len)?;
            log.records.push(rec);
        } else if !(sv & ID_MASK == id.wrapping_sub(count) & ID_MASK || state == 3) {
            odd += 1;
        }
        if id == head {
            break;
        }
        id = (id + 1) & ID_MASK;
    }
    if odd > 0 {
        log.warnings.push(format!(
            "{odd} records skipped: still being written when the kernel stopped, or overwritten"
        ));
    }
    Ok(log)
}

/// Text of one record: locate the data block for [begin, next), skip its id.
fn block_text(
    mem: &KernelMem,
    data: u64,
    size_bits: u32,
    begin: u64,
    next: u64,
    text_len: u64,
) -> Result<Vec<u8>> {
    if begin & 1 == 1 || next & 1 == 1 {
        // Data-less record (an empty line, or text that failed to fit).
        return Ok(Vec::new());
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
    let n = (len - 8).min(text_len) as usize;
    let mut out = vec![0u8; n];
    mem.read(data.wrapping_add(at + 8), &mut out)?;
    Ok(out)
}
