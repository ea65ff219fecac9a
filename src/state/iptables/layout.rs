//! The fixed layouts of `ipt_entry` / `ip6t_entry` and their target
//! headers (sizes in parse.rs's header), and the bounds-checked readers both
//! the decoder (`parse`) and the describer (`render`) use, so that neither
//! needs the other's internals.
use super::{Family, IptError};

/// xt_entry_match / xt_entry_target header.
pub(super) const XT_HDR: usize = 32;
/// Where the fixed fields sit in one family's entry header.
pub(super) struct Layout {
    pub(super) entry: usize,
    pub(super) target_offset: usize,
    pub(super) counters: usize,
    pub(super) goto_flag: u8,
}

pub(super) fn layout(f: Family) -> Layout {
    match f {
        Family::Ipv4 => Layout {
            entry: 112,
            target_offset: 88,
            counters: 96,
            goto_flag: 0x02,
        },
        Family::Ipv6 => Layout {
            entry: 168,
            target_offset: 140,
            counters: 152,
            goto_flag: 0x04,
        },
    }
}

pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A NUL-terminated name from a fixed-size field.
pub(super) fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// One entry, split but not yet placed in a chain.
pub(super) struct Raw<'a> {
    pub(super) off: u32,
    pub(super) next: u32,
    pub(super) bytes: &'a [u8],
    pub(super) target_at: usize,
    pub(super) target: String,
    /// Standard target's verdict, or None for an extension target.
    pub(super) verdict: Option<i32>,
    /// ERROR target's name (chain name, or "ERROR" at the end).
    pub(super) error: Option<String>,
}

/// The table's entries in order, each bounds-checked against its own
/// offsets and the blob.
pub(super) fn split<'a>(
    fam: Family,
    blob: &'a [u8],
    bad: &dyn Fn(String) -> IptError,
) -> Result<Vec<Raw<'a>>, IptError> {
    let l = layout(fam);
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < blob.len() {
        let hdr = blob
            .get(off..off + l.entry)
            .ok_or_else(|| bad(format!("entry at {off} runs past the end")))?;
        let t_at = usize::from(u16_at(hdr, l.target_offset).unwrap_or(0));
        let next = usize::from(u16_at(hdr, l.target_offset + 2).unwrap_or(0));
        if t_at < l.entry || t_at + XT_HDR > next || off + next > blob.len() {
            return Err(bad(format!(
                "entry at {off}: target_offset {t_at} / next_offset {next} inconsistent"
            )));
        }
        let bytes = &blob[off..off + next];
        let t_size = usize::from(u16_at(bytes, t_at).unwrap_or(0));
        if t_size < XT_HDR || t_at + t_size > next {
            return Err(bad(format!(
                "entry at {off}: target size {t_size} out of bounds"
            )));
        }
        let target = cstr(&bytes[t_at + 2..t_at + 31]);
        let data = &bytes[t_at + XT_HDR..t_at + t_size];
        let verdict = if target.is_empty() {
            let v = u32_at(data, 0)
                .ok_or_else(|| bad(format!("entry at {off}: standard target without verdict")))?;
            Some(v as i32)
        } else {
            None
        };
        let error = (target == "ERROR").then(|| cstr(data));
        out.push(Raw {
            off: off as u32,
            next: next as u32,
            bytes,
            target_at: t_at,
            target,
            verdict,
            error,
        });
        off += next;
    }
    Ok(out)
}
