//! The structured `log_buf` of Linux 3.5–5.9: variable-length
//! `struct printk_log` records (`ts_nsec`, `len`, `text_len`, `dict_len`,
//! facility, flags:5 + level:3, optional `caller_id`), text then dictionary
//! after the header. A record with `len == 0` means "wrapped: continue at
//! the start of the buffer". The readable range is
//! [`log_first_idx`, `log_next_idx`). Kernels 3.5–3.10 call the struct `log`.

use super::{Log, MAX_LOG_BYTES};
use crate::error::{Error, Result};
use crate::kvm::KernelMem;
use crate::record::{parse_dict, Record};
use crate::vmcoreinfo::VmcoreInfo;

pub fn read(vi: &VmcoreInfo, mem: &KernelMem) -> Result<Log> {
    let st = if vi.size("printk_log")?.is_some() {
        "printk_log"
    } else {
        "log"
    };
    let hdr_size = vi.require_size(st)?;
    let off_ts = vi.require_offset(&format!("{st}.ts_nsec"))?;
    let off_len = vi.require_offset(&format!("{st}.len"))?;
    let off_text_len = vi.require_offset(&format!("{st}.text_len"))?;
    // dict_len follows text_len in every version; facility and the
    // flags/level byte follow dict_len (their offsets were never exported).
    let off_dict_len = vi
        .offset(&format!("{st}.dict_len"))?
        .unwrap_or(off_text_len + 2);
    let off_caller = vi.offset(&format!("{st}.caller_id"))?;
    if !(8..=256).contains(&hdr_size) {
        return Err(Error::BadLog(format!("SIZE({st}) = {hdr_size}")));
    }
    let buf_va = mem.u64(vi.require_symbol("log_buf")?)?;
    let buf_len = u64::from(mem.u32(vi.require_symbol("log_buf_len")?)?);
    let first = u64::from(mem.u32(vi.require_symbol("log_first_idx")?)?);
    let next = u64::from(mem.u32(vi.require_symbol("log_next_idx")?)?);
    if buf_len == 0 || buf_len > MAX_LOG_BYTES {
        return Err(Error::TooBig {
            what: "log_buf_len",
            value: buf_len,
            limit: MAX_LOG_BYTES,
        });
    }
    if first >= buf_len || next >= buf_len {
        return Err(Error::BadLog(format!(
            "log_first_idx {first} / log_next_idx {next} outside log_buf_len {buf_len}"
        )));
    }
    let mut buf = vec![0u8; buf_len as usize];
    mem.read(buf_va, &mut buf)?;
    parse(
        &buf,
        first,
        next,
        &Offsets {
            hdr_size,
            off_ts,
            off_len,
            off_text_len,
            off_dict_len,
            off_caller,
        },
    )
}

/// Where the fields sit in one record header.
pub struct Offsets {
    pub hdr_size: u64,
    pub off_ts: u64,
    pub off_len: u64,
    pub off_text_len: u64,
    pub off_dict_len: u64,
    pub off_caller: Option<u64>,
}

/// Walks the records of an in-memory copy of `log_buf`. Pure, so it is
/// unit-tested and fuzzed without a dump.
pub fn parse(buf: &[u8], first: u64, next: u64, o: &Offsets) -> Result<Log> {
    let get = |at: u64, n: usize| -> Result<u64> {
        let s = buf
            .get(at as usize..at as usize + n)
            .ok_or_else(|| Error::BadLog(format!("record header at {at} runs past the buffer")))?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(s);
        Ok(u64::from_le_bytes(v))
    };
    let mut log = Log::default();
    let mut idx = first;
    let mut wrapped = false;
    // Every record is at least a header long, so this many steps visit the
    // whole buffer; more means the chain loops.
    let max_steps = buf.len() as u64 / o.hdr_size.max(1) + 2;
    let mut steps = 0u64;
    while idx != next {
        steps += 1;
        if steps > max_steps {
            return Err(Error::BadLog(
                "record chain loops (never reaches log_next_idx)".into(),
            ));
        }
        if idx + o.hdr_size > buf.len() as u64 || get(idx + o.off_len, 2)? == 0 {
            // Wrap marker (or no room for a header at the end).
            if wrapped {
                return Err(Error::BadLog("record chain wraps twice".into()));
            }
            wrapped = true;
            idx = 0;
            continue;
        }
        let len = get(idx + o.off_len, 2)?;
        let text_len = get(idx + o.off_text_len, 2)?;
        let dict_len = get(idx + o.off_dict_len, 2)?;
        if len < o.hdr_size
            || o.hdr_size + text_len + dict_len > len
            || idx + len > buf.len() as u64
        {
            return Err(Error::BadLog(format!(
                "record at {idx}: len {len}, text {text_len}, dict {dict_len}"
            )));
        }
        let packed = get(idx + o.off_dict_len + 3, 1)? as u8;
        let t0 = (idx + o.hdr_size) as usize;
        let t1 = t0 + text_len as usize;
        log.records.push(Record {
            seq: log.records.len() as u64,
            ts_nsec: get(idx + o.off_ts, 8)?,
            facility: get(idx + o.off_dict_len + 2, 1)? as u8,
            flags: packed & 0x1f,
            level: packed >> 5,
            caller_id: match o.off_caller {
                Some(c) if c + 4 <= o.hdr_size => Some(get(idx + c, 4)? as u32),
                _ => None,
            },
            text: buf[t0..t1].to_vec(),
            dict: parse_dict(&buf[t1..t1 + dict_len as usize]),
        });
        idx += len;
        if idx == buf.len() as u64 && next != idx {
            idx = 0;
            wrapped = true;
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: u64, text: &str, dict: &str, level: u8) -> Vec<u8> {
        let len = (16 + text.len() + dict.len()).div_ceil(8) * 8;
        let mut r = vec![0u8; len];
        r[0..8].copy_from_slice(&ts.to_le_bytes());
        r[8..10].copy_from_slice(&(len as u16).to_le_bytes());
        r[10..12].copy_from_slice(&(text.len() as u16).to_le_bytes());
        r[12..14].copy_from_slice(&(dict.len() as u16).to_le_bytes());
        r[14] = 0;
        r[15] = (level << 5) | 2;
        r[16..16 + text.len()].copy_from_slice(text.as_bytes());
        r[16 + text.len()..16 + text.len() + dict.len()].copy_from_slice(dict.as_bytes());
        r
    }

    const O: Offsets = Offsets {
        hdr_size: 16,
        off_ts: 0,
        off_len: 8,
        off_text_len: 10,
        off_dict_len: 12,
        off_caller: None,
    };

    #[test]
    fn reads_wrapped_records() {
        // Layout: [c][wrap marker ...] with first record a at 64, b after it.
        let a = rec(1_000, "alpha", "", 6);
        let b = rec(2_000, "beta", "SUBSYSTEM=net\0DEVICE=+net:eth0", 4);
        let c = rec(3_000, "gamma", "", 3);
        let mut buf = vec![0u8; 256];
        buf[..c.len()].copy_from_slice(&c);
        let first = 256 - a.len() - b.len() - 24;
        buf[first..first + a.len()].copy_from_slice(&a);
        buf[first + a.len()..first + a.len() + b.len()].copy_from_slice(&b);
        // The 24 bytes left at the end hold a zero-length wrap marker.
        let log = parse(&buf, first as u64, c.len() as u64, &O).unwrap();
        let texts: Vec<_> = log
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.text).into_owned())
            .collect();
        assert_eq!(texts, ["alpha", "beta", "gamma"]);
        assert_eq!(
            log.records[1].dict,
            vec![
                ("SUBSYSTEM".into(), "net".into()),
                ("DEVICE".into(), "+net:eth0".into())
            ]
        );
        assert_eq!(log.records[1].level, 4);
        assert_eq!(log.records[2].ts_nsec, 3_000);
    }

    #[test]
    fn rejects_loops_and_lies() {
        let mut buf = vec![0u8; 64];
        let a = rec(1, "x", "", 6);
        buf[..a.len()].copy_from_slice(&a);
        // next index never reached: the walk wraps once, then must stop.
        assert!(parse(&buf, 0, 8, &O).is_err());
        // len smaller than the header.
        buf[8] = 4;
        assert!(parse(&buf, 0, 24, &O).is_err());
    }
}
