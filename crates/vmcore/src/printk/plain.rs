//! The plain character ring of kernels before 3.5: `log_buf` holds text
//! lines (`<level>[seconds.micros] message`), `log_end` counts every byte ever
//! written, so the newest byte is at `log_end % log_buf_len` and, once the
//! buffer has wrapped, the oldest is just after it.

use super::{Log, MAX_LOG_BYTES};
use crate::error::{Error, Result};
use crate::kvm::KernelMem;
use crate::record::Record;
use crate::vmcoreinfo::VmcoreInfo;

pub fn read(vi: &VmcoreInfo, mem: &KernelMem) -> Result<Log> {
    let buf_va = mem.u64(vi.require_symbol("log_buf")?)?;
    let len = u64::from(mem.u32(vi.require_symbol("log_buf_len")?)?);
    let end = u64::from(mem.u32(vi.require_symbol("log_end")?)?);
    if len == 0 || len > MAX_LOG_BYTES {
        return Err(Error::TooBig {
            what: "log_buf_len",
            value: len,
            limit: MAX_LOG_BYTES,
        });
    }
    let mut buf = vec![0u8; len as usize];
    mem.read(buf_va, &mut buf)?;
    Ok(parse(&buf, end))
}

/// Linearizes the ring (oldest first) and splits it into records.
pub fn parse(buf: &[u8], log_end: u64) -> Log {
    let len = buf.len() as u64;
    let mut text = Vec::with_capacity(buf.len());
    let mut log = Log::default();
    if log_end <= len {
        text.extend_from_slice(&buf[..log_end as usize]);
    } else {
        let cut = (log_end % len) as usize;
        text.extend_from_slice(&buf[cut..]);
        text.extend_from_slice(&buf[..cut]);
        // The first line was cut by the wrap: drop the fragment.
        if let Some(nl) = text.iter().position(|&b| b == b'\n') {
            text.drain(..=nl);
        }
        log.warnings
            .push("the log wrapped: older lines were overwritten".into());
    }
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut rec = Record {
            seq: log.records.len() as u64,
            level: 4,
            ..Record::default()
        };
        let mut rest = line;
        if let [b'<', d @ b'0'..=b'7', b'>', tail @ ..] = rest {
            rec.level = d - b'0';
            rest = tail;
        }
        if let Some((ts, tail)) = parse_stamp(rest) {
            rec.ts_nsec = ts;
            rest = tail;
        }
        rec.text = rest.to_vec();
        log.records.push(rec);
    }
    log
}

/// `[    1.234567] ` → nanoseconds and the rest of the line.
fn parse_stamp(s: &[u8]) -> Option<(u64, &[u8])> {
    let s = s.strip_prefix(b"[")?;
    let close = s.iter().position(|&b| b == b']')?;
    let inner = std::str::from_utf8(&s[..close]).ok()?.trim();
    let (sec, frac) = inner.split_once('.')?;
    let sec: u64 = sec.parse().ok()?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u64 = format!("{frac:0<9}").parse().ok()?;
    let rest = &s[close + 1..];
    Some((
        sec.checked_mul(1_000_000_000)?.checked_add(nanos)?,
        rest.strip_prefix(b" ").unwrap_or(rest),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrapped_and_wrapped() {
        let buf = b"<6>[    0.000000] Linux version 2.6\n<4>[    1.500000] warn\n\0\0\0\0";
        let log = parse(buf, buf.len() as u64 - 4);
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.records[1].level, 4);
        assert_eq!(log.records[1].ts_nsec, 1_500_000_000);
        assert_eq!(log.records[1].text, b"warn");

        // A 16-byte ring after 34 bytes were written: the oldest line is cut.
        let stream = b"<6>[0.5] zz\n<6>[1.0] a\n<6>[2.0] b\n";
        let mut ring = [0u8; 16];
        for (i, b) in stream.iter().enumerate() {
            ring[i % 16] = *b;
        }
        let log = parse(&ring, stream.len() as u64);
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.records[0].text, b"b");
        assert_eq!(log.records[0].ts_nsec, 2_000_000_000);
    }
}
