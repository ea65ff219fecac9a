//! Decoding the blob IPT_SO_GET_ENTRIES / IP6T_SO_GET_ENTRIES returns: the
//! table exactly as the kernel runs it, a flat array of variable-length
//! entries (`struct ipt_entry` / `ip6t_entry`, their matches, one target).
//! Chains are not stored as such: builtin chains start at the offsets
//! `hook_entry[]` gives and end with their policy at `underflow[]`; a user
//! chain starts after an ERROR target named after it and ends with an
//! unconditional RETURN; the table ends with an ERROR target named "ERROR".
//! Jumps are byte offsets. Everything is bounds-checked: a short or
//! inconsistent blob is an error, never a panic.
//!
//! Layouts (x86_64, checked against the uapi headers with offsetof):
//! ipt_entry 112 bytes (ipt_ip 84, target_offset @88, next_offset @90,
//! counters @96); ip6t_entry 168 (ip6t_ip6 136, target_offset @140,
//! counters @152); xt_entry_match / xt_entry_target headers 32 bytes
//! (u16 size, name[29], u8 revision); a standard target is 40 bytes (header
//! + i32 verdict + padding), an error target 64 (header + name[30] + pad).
use std::collections::HashMap;

use super::layout::{layout, split, u32_at, u64_at};
use super::render::describe;
use super::{Family, IptError, LegacyRule};

/// `sizeof(struct ipt_getinfo)` (and ip6t_getinfo): name[32], valid_hooks,
/// hook_entry[5], underflow[5], num_entries, size.
pub const GETINFO_LEN: usize = 84;
/// `sizeof(struct ipt_get_entries)`: name[32], size, padding; entries follow.
pub const GET_ENTRIES_HDR: usize = 40;
/// XT_TABLE_MAXNAMELEN, including the NUL.
pub const TABLE_NAME_LEN: usize = 32;
/// Builtin chain names by netfilter hook number (NF_INET_PRE_ROUTING = 0...).
pub const HOOKS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// What IPT_SO_GET_INFO says about a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Bit n set: hook n (see [`HOOKS`]) has a builtin chain.
    pub valid_hooks: u32,
    /// Offset of each builtin chain's first entry.
    pub hook_entry: [u32; 5],
    /// Offset of each builtin chain's policy entry.
    pub underflow: [u32; 5],
    pub num_entries: u32,
    /// Bytes of entries: what IPT_SO_GET_ENTRIES must be asked for.
    pub size: u32,
}

impl TableInfo {
    /// Decode a `struct ipt_getinfo` reply.
    pub fn parse(b: &[u8]) -> Option<TableInfo> {
        if b.len() < GETINFO_LEN {
            return None;
        }
        let arr = |at: usize| std::array::from_fn(|i| u32_at(b, at + 4 * i).unwrap_or(0));
        Some(TableInfo {
            valid_hooks: u32_at(b, 32)?,
            hook_entry: arr(36),
            underflow: arr(56),
            num_entries: u32_at(b, 76)?,
            size: u32_at(b, 80)?,
        })
    }
}

/// Decode a whole table's entries into rules, in table order. Builtin chain
/// policies are included with `policy: true` and index 0; the ERROR heads and
/// the RETURN tails of user chains, which are bookkeeping, are not.
pub fn rules(
    fam: Family,
    table: &str,
    info: &TableInfo,
    blob: &[u8],
) -> Result<Vec<LegacyRule>, IptError> {
    let bad = |what: String| IptError::Malformed {
        table: table.to_string(),
        what,
    };
    let raws = split(fam, blob, &bad)?;
    // Chain starts by offset: builtins from hook_entry, user chains right
    // after their ERROR head. Jump verdicts are offsets into this map.
    let mut builtin: HashMap<u32, (String, u32)> = HashMap::new();
    for (h, name) in HOOKS.iter().enumerate() {
        if info.valid_hooks & (1 << h) != 0 {
            builtin.insert(info.hook_entry[h], (name.to_string(), info.underflow[h]));
        }
    }
    let mut starts: HashMap<u32, String> = builtin
        .iter()
        .map(|(off, (name, _))| (*off, name.clone()))
        .collect();
    for w in raws.windows(2) {
        if let Some(name) = &w[0].error {
            starts.insert(w[1].off, name.clone());
        }
    }

    let l = layout(fam);
    let mut out = Vec::new();
    // (chain name, policy offset for a builtin chain)
    let mut chain: Option<(String, Option<u32>)> = None;
    let mut index = 0u32;
    for (i, r) in raws.iter().enumerate() {
        if let Some((name, under)) = builtin.get(&r.off) {
            chain = Some((name.clone(), Some(*under)));
            index = 0;
        }
        if let Some(name) = &r.error {
            if name == "ERROR" && i + 1 == raws.len() {
                break;
            }
            chain = Some((name.clone(), None));
            index = 0;
            continue;
        }
        let Some((chain_name, under)) = chain.clone() else {
            return Err(bad(format!("entry at {} belongs to no chain", r.off)));
        };
        let policy = under == Some(r.off);
        let user_tail = under.is_none() && raws.get(i + 1).is_some_and(|n| n.error.is_some());
        if user_tail {
            continue;
        }
        if policy {
            chain = None;
        } else {
            index += 1;
        }
        let target = match r.verdict {
            Some(v) => verdict_name(v, r.off + r.next, &starts),
            None => r.target.clone(),
        };
        let goto = ip_flags(fam, r.bytes) & l.goto_flag != 0;
        let mut summary = describe(fam, r, &bad)?;
        if goto {
            summary.push_str(" (goto)");
        }
        out.push(LegacyRule {
            family: fam,
            table: table.to_string(),
            chain: chain_name,
            index: if policy { 0 } else { index },
            policy,
            target,
            pkts: u64_at(r.bytes, l.counters).unwrap_or(0),
            bytes: u64_at(r.bytes, l.counters + 8).unwrap_or(0),
            summary,
        });
    }
    Ok(out)
}

/// Standard verdicts are stored as -verdict-1 (NF_DROP 0 → -1, NF_ACCEPT
/// 1 → -2, XT_RETURN = -NF_REPEAT-1 = -5); non-negative values jump to
/// that offset. A jump to the very next entry is a rule with no target.
fn verdict_name(v: i32, next_off: u32, starts: &HashMap<u32, String>) -> String {
    match v {
        -1 => "DROP".into(),
        -2 => "ACCEPT".into(),
        -3 => "STOLEN".into(),
        -4 => "QUEUE".into(),
        -5 => "RETURN".into(),
        v if v >= 0 => match starts.get(&(v as u32)) {
            Some(chain) => chain.clone(),
            None if v as u32 == next_off => String::new(),
            None => format!("jump@{v}"),
        },
        v => format!("verdict {v}"),
    }
}

fn ip_flags(fam: Family, e: &[u8]) -> u8 {
    match fam {
        Family::Ipv4 => e[82],
        Family::Ipv6 => e[131],
    }
}
