//! Which nftables rule dropped a packet, through the kernel's nftrace
//! facility (nfnetlink, NETLINK_NETFILTER), without shelling out to `nft`.
//!
//! [`Tracer::start`] adds small tables of netwhy's own to the drop's netns,
//! `inet netwhy_trace_<pid>` with base chains at prerouting and output
//! (priority -350, before raw and conntrack), and tables of the same name
//! in the bridge, arp and netdev families (see [`arm`] for why), whose
//! single rule per chain matches the flow and sets `meta nftrace set 1`. Every later chain the packet crosses
//! then reports each rule that decided something (NFT_MSG_TRACE on the
//! NFNLGRP_NFTRACE multicast group); [`Tracer::collect`] reads those events
//! and returns, per traced packet, the event whose verdict was drop (a
//! `reject` also ends in a drop verdict), with the rule's comment.
//!
//! Cleanup: the table is created with NFT_TABLE_F_OWNER, so the kernel
//! removes it by itself when the netlink socket that created it closes —
//! also when netwhy is killed. [`Tracer::stop`] (and Drop) delete it
//! explicitly. The undo journal only knows namespaces and sysctls, so for
//! kernels or races that leave a table behind anyway, `start` first deletes
//! every `netwhy_trace_<pid>` table in that netns whose pid is no longer
//! alive (a pid reused by an unrelated process keeps its table until then).
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::*;
use crate::state::ns::{self, NsError};

mod arm;
mod nl;
mod parse;

use arm::{create_msgs, del_table, plans, BatchMsg};
pub use parse::{family_label, parse_rule, parse_trace, udata_comment};

/// Prefix of netwhy's own trace tables.
pub const TABLE_PREFIX: &str = "netwhy_trace_";
/// Priority of the tracing base chains: before raw (-300) and conntrack.
pub const TRACE_PRIORITY: i32 = -350;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("nf_tables refused {what}: {source} (needs root / CAP_NET_ADMIN and nf_tables)")]
    Kernel {
        what: &'static str,
        source: io::Error,
    },
    #[error("malformed nf_tables netlink answer")]
    Malformed,
    #[error("a trace matcher needs at least one criterion (and a port needs tcp or udp)")]
    EmptyMatcher,
}

/// Which packets to trace. Criteria are ANDed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Matcher {
    /// IP protocol number (6 tcp, 17 udp, ...), `meta l4proto`.
    pub l4proto: Option<u8>,
    /// Transport destination port (needs l4proto tcp, udp, udplite, sctp or dccp).
    pub dport: Option<u16>,
    /// IPv4 destination address (restricts tracing to IPv4).
    pub daddr: Option<Ipv4Addr>,
    /// IPv6 destination address (restricts tracing to IPv6): a dropped
    /// ICMPv6 error has no port, only its protocol and whom it is for.
    pub daddr6: Option<Ipv6Addr>,
    /// Target address of an ARP packet (restricts tracing to ARP): an arp
    /// family rule that drops requests for an address.
    pub arp_tpa: Option<Ipv4Addr>,
}

impl Matcher {
    pub fn tcp_dport(port: u16) -> Matcher {
        Matcher {
            l4proto: Some(libc::IPPROTO_TCP as u8),
            dport: Some(port),
            ..Matcher::default()
        }
    }

    pub fn udp_dport(port: u16) -> Matcher {
        Matcher {
            l4proto: Some(libc::IPPROTO_UDP as u8),
            dport: Some(port),
            ..Matcher::default()
        }
    }

    pub fn daddr(mut self, a: Ipv4Addr) -> Matcher {
        self.daddr = Some(a);
        self
    }

    pub fn daddr6(mut self, a: Ipv6Addr) -> Matcher {
        self.daddr6 = Some(a);
        self
    }

    pub fn arp_tpa(mut self, a: Ipv4Addr) -> Matcher {
        self.arp_tpa = Some(a);
        self
    }

    fn valid(&self) -> bool {
        if self.arp_tpa.is_some() {
            // An ARP packet has no IP header, protocol or port.
            return *self
                == Matcher {
                    arp_tpa: self.arp_tpa,
                    ..Matcher::default()
                };
        }
        let ported = matches!(self.l4proto, Some(6 | 17 | 33 | 132 | 136));
        let addrs = self.daddr.is_some() as u8 + self.daddr6.is_some() as u8;
        (self.l4proto.is_some() || addrs == 1) && addrs < 2 && (self.dport.is_none() || ported)
    }
}

/// Kind of a trace event (enum nft_trace_types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    /// A rule issued a verdict.
    Rule,
    /// The end of a non-base chain was reached (implicit return).
    Return,
    /// The end of a base chain: its policy decided.
    Policy,
    Other(u32),
}

/// One NFT_MSG_TRACE event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// Same for every event of one packet (NFTA_TRACE_ID).
    pub id: u32,
    pub kind: TraceKind,
    /// Family of the table (nfgenmsg; 1 inet, 2 ip, 10 ip6, ...).
    pub family: u8,
    /// Protocol of the packet (NFTA_TRACE_NFPROTO: 2 ipv4, 10 ipv6).
    pub nfproto: Option<u32>,
    pub table: String,
    pub chain: String,
    /// Rule handle, for rule events.
    pub rule_handle: Option<u64>,
    /// The rule's verdict, or for a policy event the chain's policy.
    pub verdict: Option<Verdict>,
    pub iif: Option<u32>,
    pub oif: Option<u32>,
    /// The rule's comment, when it has one (filled by [`Tracer::collect`]).
    pub comment: Option<String>,
    /// The whole rule, decoded (filled by [`Tracer::collect`]).
    pub rule: Option<RuleInfo>,
}

impl TraceEvent {
    pub fn is_drop(&self) -> bool {
        self.verdict == Some(Verdict::Drop)
    }
}

/// A rule as NFT_MSG_GETRULE dumps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    /// The rule's expressions, decoded (see [`super::nft_rule`]).
    pub exprs: Vec<super::rule::Expr>,
}

impl RuleInfo {
    /// What the rule does to a packet it matches.
    pub fn action(&self) -> super::rule::Action {
        super::rule::action(&self.exprs)
    }

    /// nft-like text of the rule's expressions.
    pub fn text(&self) -> String {
        super::rule::describe(&self.exprs)
    }
}

/// A table in a netns: (family, name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableInfo {
    pub family: u8,
    pub name: String,
}

// --- protocol constants (include/uapi/linux/netfilter/nf_tables.h,
// nfnetlink.h, netfilter.h) ---

/// Name of netwhy's trace table for process `pid`.
pub fn table_name(pid: u32) -> String {
    format!("{TABLE_PREFIX}{pid}")
}

/// The pid in a netwhy trace table name.
pub fn table_pid(name: &str) -> Option<u32> {
    name.strip_prefix(TABLE_PREFIX)?.parse().ok()
}

/// Traces packets of one flow in one netns until stopped or dropped.
pub struct Tracer {
    ino: u32,
    table: String,
    /// Owns the table (NFT_TABLE_F_OWNER): closing it removes the table.
    ctl: nl::Socket,
    /// Subscribed to NFNLGRP_NFTRACE.
    mon: nl::Socket,
    comments: HashMap<(u8, String, String), Vec<RuleInfo>>,
    /// Families whose trace table exists (inet first).
    families: Vec<u8>,
    /// Families the kernel refused, with why (traced drops there go unnamed).
    unarmed: Vec<String>,
    stopped: bool,
}

impl Tracer {
    /// Start tracing packets matching `m` in netns `ino` (see module docs).
    /// One Tracer per process and netns: the table name is per process, so
    /// a second one in the same netns fails with EEXIST.
    pub fn start(ino: u32, m: Matcher) -> Result<Tracer, NftError> {
        Tracer::start_on(ino, m, None)
    }

    /// [`Tracer::start`], plus a netdev ingress chain on device `dev` (the
    /// drop's device): a netdev ingress rule runs before any other family.
    pub fn start_on(ino: u32, m: Matcher, dev: Option<&str>) -> Result<Tracer, NftError> {
        if !m.valid() {
            return Err(NftError::EmptyMatcher);
        }
        let table = table_name(std::process::id());
        let t = table.clone();
        let plans = plans(dev);
        let (ctl, mon, families, unarmed) = ns::run_in(ino, move || -> Result<_, NftError> {
            let mut ctl = nl::Socket::open()?;
            let mon = nl::Socket::open()?;
            mon.join(NFNLGRP_NFTRACE)?;
            remove_stale(&mut ctl)?;
            let (inet, rest) = plans.split_first().expect("inet is planned");
            let mut owner = true;
            if let Err(e) = ctl.batch(&create_msgs(inet, &t, &m, true), "create trace table") {
                // Kernels before 5.12 have no table owner flag.
                if matches!(&e, NftError::Kernel { source, .. }
                    if matches!(source.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)))
                {
                    owner = false;
                    ctl.batch(&create_msgs(inet, &t, &m, false), "create trace table")?;
                } else {
                    return Err(e);
                }
            }
            let (mut families, mut unarmed) = (vec![inet.family], Vec::new());
            for p in rest {
                match ctl.batch(&create_msgs(p, &t, &m, owner), "create trace table") {
                    Ok(()) => families.push(p.family),
                    Err(e) => unarmed.push(format!("{}: {e}", family_label(p.family))),
                }
            }
            Ok((ctl, mon, families, unarmed))
        })??;
        Ok(Tracer {
            ino,
            table,
            ctl,
            mon,
            comments: HashMap::new(),
            families,
            unarmed,
            stopped: false,
        })
    }

    /// Families whose trace table could not be added, with the kernel's
    /// reason (e.g. no bridge support): drops there stay unattributed.
    pub fn unarmed(&self) -> &[String] {
        &self.unarmed
    }

    fn del_msgs(&self) -> Vec<BatchMsg> {
        self.families
            .iter()
            .map(|&f| del_table(f, &self.table))
            .collect()
    }

    /// Name of this tracer's own table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Netns the tracer works in.
    pub fn netns(&self) -> u32 {
        self.ino
    }

    /// Every trace event received within `timeout` (events of the tracer's
    /// own table left out), in arrival order.
    pub fn events(&mut self, timeout: Duration) -> Result<Vec<TraceEvent>, NftError> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(n) = self.mon.recv_within(&mut buf, left)? else {
                break;
            };
            for (ty, _, _, body) in nl::messages(&buf[..n]) {
                if ty != nft_type(NFT_MSG_TRACE) || body.len() < 4 {
                    continue;
                }
                if let Some(ev) = parse_trace(body[0], &body[4..]) {
                    if ev.table != self.table {
                        out.push(ev);
                    }
                }
            }
        }
        Ok(out)
    }

    /// For each packet traced within `timeout`, the event that dropped it
    /// (a rule with a drop verdict, or a chain whose drop policy decided),
    /// with the rule's comment looked up. Packets that were not dropped
    /// are left out.
    pub fn collect(&mut self, timeout: Duration) -> Result<Vec<TraceEvent>, NftError> {
        let evs = self.events(timeout)?;
        let mut drops = drops_by_packet(&evs);
        for d in &mut drops {
            if let Some(h) = d.rule_handle {
                d.rule = self.rule_of(d.family, &d.table, &d.chain, h);
                d.comment = d.rule.as_ref().and_then(|r| r.comment.clone());
            }
        }
        Ok(drops)
    }

    fn rule_of(&mut self, family: u8, table: &str, chain: &str, handle: u64) -> Option<RuleInfo> {
        let key = (family, table.to_string(), chain.to_string());
        if !self.comments.contains_key(&key) {
            let rules = dump_rules(&mut self.ctl, family, table, chain).ok()?;
            self.comments.insert(key.clone(), rules);
        }
        self.comments[&key]
            .iter()
            .find(|r| r.handle == handle)
            .cloned()
    }

    /// Delete the trace table now.
    pub fn stop(mut self) -> Result<(), NftError> {
        self.stopped = true;
        let msgs = self.del_msgs();
        self.ctl.batch(&msgs, "delete trace table")
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if !self.stopped {
            let msgs = self.del_msgs();
            let _ = self.ctl.batch(&msgs, "delete trace table");
        }
    }
}

/// Per packet (trace id), the first event with a drop verdict, in order of
/// first appearance of the packet.
pub fn drops_by_packet(evs: &[TraceEvent]) -> Vec<TraceEvent> {
    let mut order: Vec<u32> = Vec::new();
    let mut first: HashMap<u32, TraceEvent> = HashMap::new();
    for e in evs {
        if !order.contains(&e.id) {
            order.push(e.id);
        }
        if e.is_drop() && !first.contains_key(&e.id) {
            first.insert(e.id, e.clone());
        }
    }
    order.iter().filter_map(|id| first.remove(id)).collect()
}

/// Tables in netns `ino`, all families.
pub fn tables(ino: u32) -> Result<Vec<TableInfo>, NftError> {
    ns::run_in(ino, || {
        let mut s = nl::Socket::open()?;
        list_tables(&mut s)
    })?
}

/// Rules of `table`/`chain` (family e.g. 1 for inet) in netns `ino`.
pub fn rules(ino: u32, family: u8, table: &str, chain: &str) -> Result<Vec<RuleInfo>, NftError> {
    let (table, chain) = (table.to_string(), chain.to_string());
    ns::run_in(ino, move || {
        let mut s = nl::Socket::open()?;
        dump_rules(&mut s, family, &table, &chain)
    })?
}

fn list_tables(s: &mut nl::Socket) -> Result<Vec<TableInfo>, NftError> {
    let msgs = s.dump(nft_type(NFT_MSG_GETTABLE), NFPROTO_UNSPEC, &[])?;
    Ok(msgs
        .iter()
        .filter(|b| b.len() >= 4)
        .filter_map(|b| {
            let name = nl::attrs(&b[4..]).find(|(t, _)| *t == NFTA_TABLE_NAME)?.1;
            Some(TableInfo {
                family: b[0],
                name: cstr(name),
            })
        })
        .collect())
}

/// Delete netwhy trace tables whose process is gone.
fn remove_stale(s: &mut nl::Socket) -> Result<(), NftError> {
    for t in list_tables(s)? {
        let Some(pid) = table_pid(&t.name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = s.batch(&[del_table(t.family, &t.name)], "delete stale trace table");
    }
    Ok(())
}

fn dump_rules(
    s: &mut nl::Socket,
    family: u8,
    table: &str,
    chain: &str,
) -> Result<Vec<RuleInfo>, NftError> {
    let mut a = Vec::new();
    nl::put_str(&mut a, NFTA_RULE_TABLE, table);
    nl::put_str(&mut a, NFTA_RULE_CHAIN, chain);
    let msgs = s.dump(nft_type(NFT_MSG_GETRULE), family, &a)?;
    Ok(msgs
        .iter()
        .filter(|b| b.len() >= 4)
        .filter_map(|b| parse_rule(b[0], &b[4..]))
        .collect())
}
