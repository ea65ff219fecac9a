//! iptables-legacy (x_tables) rules and their counters, read with
//! getsockopt(IPT_SO_GET_INFO / IPT_SO_GET_ENTRIES) on a raw socket inside
//! the drop's netns — the same interface `iptables-legacy -L -v` uses, with
//! no shell-out.
//!
//! Why counters: a legacy rule drop is reported by kfree_skb as
//! NETFILTER_DROP at nf_hook_slow with nothing naming the rule, and legacy
//! tables have no nftrace. Snapshotting every rule's packet counter before
//! and after a short window and keeping those that moved ([`moved`]) names
//! the rule (or chain policy) that saw the dropping flow.
//!
//! Side effects are avoided on purpose: asking the kernel for a table by
//! name auto-loads its module and *instantiates* the table in that netns
//! (which for `nat` also turns on connection tracking there). So only the
//! tables listed in /proc/net/ip_tables_names (ip6_tables_names) — those
//! that already exist in the netns — are read; a netns without legacy
//! tables gives an empty list.
//!
//! Usage: `let a = snapshot(ino)?; /* traffic */ let b = snapshot(ino)?;
//! for (rule, pkts) in moved(&a, &b) { ... }`.
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::Serialize;

use super::ns::{self, NsError};

mod layout;
pub mod parse;
mod render;
#[cfg(test)]
mod tests;

use parse::{TableInfo, GETINFO_LEN, GET_ENTRIES_HDR, TABLE_NAME_LEN};

/// IPT_SO_GET_INFO / IP6T_SO_GET_INFO (IPT_BASE_CTL = 64).
const SO_GET_INFO: libc::c_int = 64;
/// IPT_SO_GET_ENTRIES / IP6T_SO_GET_ENTRIES.
const SO_GET_ENTRIES: libc::c_int = 65;

#[derive(Debug, thiserror::Error)]
pub enum IptError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("reading {path}: {source}")]
    Names { path: String, source: io::Error },
    #[error("raw {family:?} socket for x_tables: {source} (needs root / CAP_NET_RAW)")]
    Socket { family: Family, source: io::Error },
    #[error("{family:?} table {table}: {op}: {source} (needs CAP_NET_ADMIN)")]
    Sockopt {
        family: Family,
        table: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("table {table}: kept changing while being read")]
    Unstable { table: String },
    #[error("table {table}: malformed x_tables blob: {what}")]
    Malformed { table: String, what: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    fn names_path(self) -> &'static str {
        // thread-self: /proc/net follows the thread group leader's netns,
        // and only this thread entered the target one.
        match self {
            Family::Ipv4 => "/proc/thread-self/net/ip_tables_names",
            Family::Ipv6 => "/proc/thread-self/net/ip6_tables_names",
        }
    }
    fn socket_args(self) -> (libc::c_int, libc::c_int) {
        match self {
            Family::Ipv4 => (libc::AF_INET, libc::IPPROTO_IP),
            Family::Ipv6 => (libc::AF_INET6, libc::IPPROTO_IPV6),
        }
    }
}

/// One rule (or builtin chain policy) of a legacy table with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyRule {
    pub family: Family,
    /// filter, nat, mangle, raw, security.
    pub table: String,
    /// Builtin (INPUT, FORWARD...) or user chain name.
    pub chain: String,
    /// 1-based position in its chain, as `iptables -L --line-numbers`;
    /// 0 for a chain policy.
    pub index: u32,
    /// True for a builtin chain's policy (its last, unconditional entry).
    pub policy: bool,
    /// DROP, ACCEPT, RETURN, an extension (REJECT, LOG, MASQUERADE...), the
    /// user chain jumped to, or "" for a rule with no target.
    pub target: String,
    pub pkts: u64,
    pub bytes: u64,
    /// What the rule matches, e.g. "tcp out eth1 dpt:22 reject-with
    /// icmp-port-unreachable"; "any" when unconditional.
    pub summary: String,
}

impl LegacyRule {
    /// Identity across snapshots (counters excluded).
    fn key(&self) -> (Family, &str, &str, u32, bool, &str, &str) {
        (
            self.family,
            &self.table,
            &self.chain,
            self.index,
            self.policy,
            &self.target,
            &self.summary,
        )
    }
}

/// Every legacy rule of netns `ino`, IPv4 and IPv6, with counters.
pub fn snapshot(ino: u32) -> Result<Vec<LegacyRule>, IptError> {
    ns::run_in(ino, snapshot_here)?
}

/// [`snapshot`] in the calling thread's netns.
pub fn snapshot_here() -> Result<Vec<LegacyRule>, IptError> {
    let mut out = Vec::new();
    for fam in [Family::Ipv4, Family::Ipv6] {
        let tables = existing_tables(fam)?;
        if tables.is_empty() {
            continue;
        }
        let sock = raw_socket(fam)?;
        for t in tables {
            out.extend(read_table(&sock, fam, &t)?);
        }
    }
    Ok(out)
}

/// Rules whose packet counter grew between two snapshots, with the growth,
/// in `after`'s order. Rules are matched by (family, table, chain, index,
/// policy, target, summary); a rule absent from `before` (added, or shifted
/// by an insert, during the window) is left out rather than guessed at.
pub fn moved(before: &[LegacyRule], after: &[LegacyRule]) -> Vec<(LegacyRule, u64)> {
    let old: std::collections::HashMap<_, u64> = before.iter().map(|r| (r.key(), r.pkts)).collect();
    after
        .iter()
        .filter_map(|r| {
            let d = r.pkts.saturating_sub(*old.get(&r.key())?);
            (d > 0).then(|| (r.clone(), d))
        })
        .collect()
}

/// Tables that already exist in this netns (none when the x_tables module
/// for the family is not even loaded).
fn existing_tables(fam: Family) -> Result<Vec<String>, IptError> {
    let path = fam.names_path();
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(IptError::Names {
                path: path.into(),
                source,
            })
        }
    };
    let mut v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.len() < TABLE_NAME_LEN)
        .map(String::from)
        .collect();
    v.sort();
    Ok(v)
}

fn getsockopt(sock: &OwnedFd, fam: Family, opt: libc::c_int, buf: &mut [u8]) -> io::Result<usize> {
    let (_, level) = fam.socket_args();
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf is valid for len bytes; the kernel writes at most len.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

/// A raw socket of `fam`, the handle the x_tables getsockopts need.
fn raw_socket(fam: Family) -> Result<OwnedFd, IptError> {
    let (af, _) = fam.socket_args();
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(af, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(IptError::Socket {
            family: fam,
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn read_table(sock: &OwnedFd, fam: Family, table: &str) -> Result<Vec<LegacyRule>, IptError> {
    match raw_table(sock, fam, table)? {
        None => Ok(Vec::new()),
        Some((ibuf, entries)) => {
            let info = TableInfo::parse(&ibuf).ok_or_else(|| IptError::Malformed {
                table: table.to_string(),
                what: "short ipt_getinfo".into(),
            })?;
            parse::rules(fam, table, &info, &entries)
        }
    }
}

/// The kernel's own bytes for `table` of `fam` in the calling thread's
/// netns: the ipt_getinfo answer and the entries blob after the
/// ipt_get_entries header (what the parser and the fuzz seeds read).
/// None when the table does not exist.
pub fn raw_table_here(fam: Family, table: &str) -> Result<Option<RawTable>, IptError> {
    raw_table(&raw_socket(fam)?, fam, table)
}

/// ipt_getinfo as the kernel wrote it, and the entries that follow the
/// ipt_get_entries header.
pub type RawTable = ([u8; GETINFO_LEN], Vec<u8>);

/// GET_INFO for the size, then GET_ENTRIES; the kernel answers EAGAIN when
/// the table was replaced in between (size changed), so retry a few times.
/// ENOENT (the table vanished) means no table.
fn raw_table(sock: &OwnedFd, fam: Family, table: &str) -> Result<Option<RawTable>, IptError> {
    let err = |op: &'static str, source: io::Error| IptError::Sockopt {
        family: fam,
        table: table.to_string(),
        op,
        source,
    };
    let mut name = [0u8; TABLE_NAME_LEN];
    name[..table.len()].copy_from_slice(table.as_bytes());
    for _ in 0..5 {
        let mut ibuf = [0u8; GETINFO_LEN];
        ibuf[..TABLE_NAME_LEN].copy_from_slice(&name);
        match getsockopt(sock, fam, SO_GET_INFO, &mut ibuf) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(err("IPT_SO_GET_INFO", e)),
        }
        let info = TableInfo::parse(&ibuf).ok_or_else(|| IptError::Malformed {
            table: table.to_string(),
            what: "short ipt_getinfo".into(),
        })?;
        let mut buf = vec![0u8; GET_ENTRIES_HDR + info.size as usize];
        buf[..TABLE_NAME_LEN].copy_from_slice(&name);
        buf[TABLE_NAME_LEN..TABLE_NAME_LEN + 4].copy_from_slice(&info.size.to_ne_bytes());
        match getsockopt(sock, fam, SO_GET_ENTRIES, &mut buf) {
            Ok(_) => return Ok(Some((ibuf, buf.split_off(GET_ENTRIES_HDR)))),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(err("IPT_SO_GET_ENTRIES", e)),
        }
    }
    Err(IptError::Unstable {
        table: table.to_string(),
    })
}
