//! Reading the oracles' text output back into records, so ours can be
//! compared record for record despite the documented escaping differences.
#![allow(dead_code)]

/// Undoes the oracles' escapes: `\xNN` (vmcore-dmesg) and the sign-extended
/// `\xffffffNN` makedumpfile prints for bytes >= 0x80.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = |r: std::ops::Range<usize>| {
                b.get(r)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            };
            if b[i + 2..].starts_with(b"ffffff") {
                if let Some(v) = hex(i + 8..i + 10) {
                    out.push(v);
                    i += 10;
                    continue;
                }
            }
            if let Some(v) = hex(i + 2..i + 4) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Parses `[seconds.micros] text` output; lines without a stamp continue the
/// previous record (a multi-line record).
pub fn parse_oracle(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let text = String::from_utf8_lossy(text);
    let mut recs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut indent = String::new();
    for line in text.lines() {
        let stamp = line
            .strip_prefix('[')
            .and_then(|r| r.split_once("] ").or_else(|| r.split_once(']')));
        let parsed = stamp.and_then(|(ts, rest)| {
            let (s, us) = ts.trim().split_once('.')?;
            Some((
                s.parse::<u64>().ok()? * 1_000_000 + us.parse::<u64>().ok()?,
                rest,
            ))
        });
        match parsed {
            Some((ts, rest)) => {
                // makedumpfile indents continuation lines by the stamp width.
                indent = " ".repeat(line.len() - rest.len());
                recs.push((ts, unescape(rest)))
            }
            None => {
                let line = line.strip_prefix(indent.as_str()).unwrap_or(line);
                let last = recs.last_mut().expect("continuation before any record");
                last.1.push(b'\n');
                last.1.extend(unescape(line));
            }
        }
    }
    recs
}

pub fn assert_same(what: &str, ours: &[(u64, Vec<u8>)], theirs: &[(u64, Vec<u8>)]) {
    assert!(!theirs.is_empty(), "{what}: the oracle printed nothing");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(
            a,
            b,
            "{what}: record {i} differs: ours [{}] {:?} vs oracle [{}] {:?}",
            a.0,
            String::from_utf8_lossy(&a.1),
            b.0,
            String::from_utf8_lossy(&b.1)
        );
    }
    assert_eq!(ours.len(), theirs.len(), "{what}: record counts differ");
}
