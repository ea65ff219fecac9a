//! Printing records the way `dmesg` does, plus raw and JSON forms.
//!
//! Our conventions, where tools differ:
//! - Text is shown as UTF-8 where it is valid; control bytes other than tab,
//!   and bytes that are not valid UTF-8, become `\xNN` (vmcore-dmesg escapes
//!   every non-ASCII byte; makedumpfile prints sign-extended `\xffffffc3`).
//! - A record holding several lines (a `\n` inside one record) is printed
//!   with the record's prefix repeated on every line, as the kernel's own
//!   console and syslog output do, so each output line stays greppable.
//! - Fragments of a continued line (`LOG_CONT` records of 3.5–5.9 kernels)
//!   are joined onto the line they continue.

use crate::record::{Record, LOG_CONT, LOG_NEWLINE};
use std::io::{self, Write};

pub const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "res0", "res1", "res2", "res3", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Escapes a record's bytes for display (see the module doc).
pub fn escape(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    escape_into(text, &mut out);
    // escape_into only ever appends valid UTF-8 and ASCII escapes.
    String::from_utf8(out).unwrap_or_default()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex_escape(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
}

/// True when `text` is printable ASCII, tab and newline only: printed as is.
/// Checked 16 bytes at a time without early exit, which the compiler turns
/// into vector compares; a byte-wise `all()` was the single biggest cost of
/// rendering a log.
fn is_plain(text: &[u8]) -> bool {
    let ok = |b: u8| (b.wrapping_sub(0x20) < 0x5f) | (b == b'\t') | (b == b'\n');
    let mut chunks = text.chunks_exact(16);
    for c in &mut chunks {
        if !c.iter().fold(true, |acc, &b| acc & ok(b)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| ok(b))
}

/// [`escape`] appending to a byte buffer, without allocating per record.
pub fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    // Fast path: almost every kernel line is plain printable ASCII.
    if is_plain(text) {
        out.extend_from_slice(text);
        return;
    }
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            let mut b = [0u8; 4];
            let enc = c.encode_utf8(&mut b).as_bytes();
            if (c.is_control() && c != '\t' && c != '\n') || c == '\u{7f}' {
                for &byte in enc {
                    push_hex_escape(out, byte);
                }
            } else {
                out.extend_from_slice(enc);
            }
        }
        for &b in chunk.invalid() {
            push_hex_escape(out, b);
        }
    }
}

/// Appends `v` in decimal, right-aligned to at least `width` with `pad`.
fn push_num(out: &mut Vec<u8>, mut v: u64, width: usize, pad: u8) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = buf.len() - i;
    out.extend(std::iter::repeat_n(pad, width.saturating_sub(digits)));
    out.extend_from_slice(&buf[i..]);
}

/// `[sssss.uuuuuu]` as `timestamp` formats it, appended to `out`.
fn push_stamp(out: &mut Vec<u8>, ts_nsec: u64) {
    out.push(b'[');
    push_num(out, ts_nsec / 1_000_000_000, 5, b' ');
    out.push(b'.');
    push_num(out, ts_nsec % 1_000_000_000 / 1000, 6, b'0');
    out.push(b']');
}

pub fn timestamp(ts_nsec: u64) -> String {
    format!(
        "[{:5}.{:06}]",
        ts_nsec / 1_000_000_000,
        ts_nsec % 1_000_000_000 / 1000
    )
}

#[derive(Clone, Debug, Default)]
pub struct TextOpts {
    /// `<pri>` syslog prefix (dmesg -r).
    pub raw: bool,
    /// No timestamps (dmesg -t).
    pub notime: bool,
    /// `facility:level:` prefix (dmesg -x).
    pub decode: bool,
    /// Wall-clock stamps from this boot time (seconds since the epoch).
    pub boot_epoch: Option<f64>,
    /// Join LOG_CONT fragments onto their line.
    pub join_cont: bool,
    /// ANSI-highlight panic lines.
    pub color: bool,
}

pub fn is_panic_line(text: &[u8]) -> bool {
    let needle: &[u8] = b"Kernel panic - not syncing";
    text.windows(needle.len()).any(|w| w == needle)
}

fn prefix(r: &Record, o: &TextOpts, p: &mut Vec<u8>) {
    p.clear();
    if o.raw {
        p.push(b'<');
        push_num(
            p,
            u64::from(u32::from(r.facility) << 3 | u32::from(r.level)),
            0,
            b' ',
        );
        p.push(b'>');
    } else if o.decode {
        let fac = FACILITIES.get(r.facility as usize).copied().unwrap_or("?");
        let lvl = LEVELS.get(r.level as usize).copied().unwrap_or("?");
        p.extend_from_slice(format!("{fac:<6}:{lvl:<6}: ").as_bytes());
    }
    if !o.notime {
        match o.boot_epoch {
            Some(b) => {
                p.extend_from_slice(format!("[{}] ", civil(b + r.ts_nsec as f64 / 1e9)).as_bytes())
            }
            None => {
                push_stamp(p, r.ts_nsec);
                p.push(b' ');
            }
        }
    }
}

/// Writes records as text, one at a time (the reader streams them: no
/// record list is built). Output is assembled in one buffer and handed to
/// `out` in large chunks: no per-record formatting machinery or allocation.
pub struct TextWriter<'w> {
    out: &'w mut dyn Write,
    o: TextOpts,
    buf: Vec<u8>,
    /// Scratch for records holding several lines.
    text: Vec<u8>,
    /// The current record's prefix.
    p: Vec<u8>,
    open_line: bool,
    prev_newline: bool,
}

/// Output is handed on in chunks of about this size (16 KiB: large enough
/// to make few write calls, small enough to stay in a few fresh pages).
const CHUNK: usize = 1 << 14;

impl<'w> TextWriter<'w> {
    pub fn new(out: &'w mut dyn Write, o: &TextOpts) -> Self {
        TextWriter {
            out,
            o: o.clone(),
            buf: Vec::with_capacity(CHUNK + 4096),
            text: Vec::new(),
            p: Vec::new(),
            open_line: false,
            prev_newline: true,
        }
    }

    pub fn push(&mut self, r: &Record) -> io::Result<()> {
        let o = &self.o;
        let buf = &mut self.buf;
        let joins = o.join_cont && self.open_line && r.flags & LOG_CONT != 0 && !self.prev_newline;
        if !joins {
            if self.open_line {
                buf.push(b'\n');
            }
            prefix(r, o, &mut self.p);
            let (on, off): (&[u8], &[u8]) = if o.color && is_panic_line(&r.text) {
                (b"\x1b[1;31m", b"\x1b[0m")
            } else {
                (b"", b"")
            };
            if !r.text.contains(&b'\n') {
                // The common case: one line, escaped straight into the output.
                buf.extend_from_slice(&self.p);
                buf.extend_from_slice(on);
                escape_into(&r.text, buf);
                buf.extend_from_slice(off);
            } else {
                self.text.clear();
                escape_into(&r.text, &mut self.text);
                let mut first = true;
                for line in self.text.split(|&c| c == b'\n') {
                    if !first {
                        buf.push(b'\n');
                    }
                    buf.extend_from_slice(&self.p);
                    buf.extend_from_slice(on);
                    buf.extend_from_slice(line);
                    buf.extend_from_slice(off);
                    first = false;
                }
            }
        } else {
            self.text.clear();
            escape_into(&r.text, &mut self.text);
            buf.extend(self.text.iter().map(|&c| if c == b'\n' { b' ' } else { c }));
        }
        self.open_line = true;
        self.prev_newline = r.flags & LOG_NEWLINE != 0;
        if buf.len() >= CHUNK {
            self.out.write_all(buf)?;
            buf.clear();
        }
        Ok(())
    }

    /// Ends the last line and writes what is buffered.
    pub fn finish(mut self) -> io::Result<()> {
        if self.open_line {
            self.buf.push(b'\n');
        }
        self.out.write_all(&self.buf)
    }
}

/// Writes a list of records as text (see [`TextWriter`]).
pub fn write_text<'a>(
    out: &mut dyn Write,
    records: impl IntoIterator<Item = &'a Record>,
    o: &TextOpts,
) -> io::Result<()> {
    let mut w = TextWriter::new(out, o);
    for r in records {
        w.push(r)?;
    }
    w.finish()
}

/// One JSON object per record (JSON Lines): a stable interface for scripts.
pub fn json(r: &Record) -> String {
    let mut v = serde_json::json!({
        "seq": r.seq,
        "ts_nsec": r.ts_nsec,
        "level": r.level,
        "facility": r.facility,
        "text": escape_json_text(&r.text),
    });
    if let Some(c) = r.caller() {
        v["caller"] = c.into();
    }
    if !r.dict.is_empty() {
        let d: serde_json::Map<String, serde_json::Value> = r
            .dict
            .iter()
            .map(|(k, val)| (k.clone(), val.clone().into()))
            .collect();
        v["dict"] = d.into();
    }
    v.to_string()
}

/// JSON strings are Unicode: valid UTF-8 (controls included, JSON escapes
/// them) passes through; only invalid bytes become `\xNN`.
fn escape_json_text(text: &[u8]) -> String {
    let mut out = String::new();
    for chunk in text.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for seconds since the epoch.
pub fn civil(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: u64, text: &[u8], flags: u8) -> Record {
        Record {
            ts_nsec: ts,
            text: text.to_vec(),
            level: 6,
            flags,
            ..Record::default()
        }
    }

    #[test]
    fn escapes_controls_and_bad_utf8() {
        assert_eq!(
            escape(b"h\xc3\xa9 [\x01] tab[\t] \xff"),
            "h\u{e9} [\\x01] tab[\t] \\xff"
        );
    }

    #[test]
    fn text_lines_and_continuations() {
        let recs = [
            rec(2_636_147_000, b"two\nlines", 0),
            rec(3_000_000_000, b"a", 0),
        ];
        let mut out = Vec::new();
        write_text(&mut out, &recs, &TextOpts::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[    2.636147] two\n[    2.636147] lines\n[    3.000000] a\n"
        );
        let recs = [
            rec(1, b"start ", 0),
            rec(2, b"more", LOG_CONT | LOG_NEWLINE),
            rec(3, b"next", LOG_NEWLINE),
        ];
        let mut out = Vec::new();
        let o = TextOpts {
            join_cont: true,
            notime: true,
            raw: true,
            ..TextOpts::default()
        };
        write_text(&mut out, &recs, &o).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "<6>start more\n<6>next\n");
    }

    #[test]
    fn stamps_match_format() {
        for ts in [0, 1, 999, 2_636_147_000, 123_456_789_012_345, u64::MAX] {
            let mut b = Vec::new();
            push_stamp(&mut b, ts);
            assert_eq!(String::from_utf8(b).unwrap(), timestamp(ts));
        }
        let mut b = Vec::new();
        push_num(&mut b, 191, 0, b' ');
        assert_eq!(b, b"191");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0.0), "1970-01-01 00:00:00");
        assert_eq!(civil(1_700_000_000.0), "2023-11-14 22:13:20");
    }

    #[test]
    fn json_has_caller_and_dict() {
        let mut r = rec(5, b"x\xff", 0);
        r.caller_id = Some(0x8000_0001);
        r.dict = vec![("SUBSYSTEM".into(), "pci".into())];
        let j: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(j["caller"], "C1");
        assert_eq!(j["text"], "x\\xff");
        assert_eq!(j["dict"]["SUBSYSTEM"], "pci");
    }
}
