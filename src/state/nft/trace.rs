//! Which nftables rule dropped a packet, through the kernel's nftrace
//! facility (nfnetlink, NETLINK_NETFILTER), without shelling out to `nft`.
//!
//! [`Tracer::start`] adds a small table of netwhy's own to the drop's netns,
//! `inet netwhy_trace_<pid>`, with base chains at prerouting and output
//! (priority -350, before raw and conntrack) whose single rule matches the
//! flow and sets `meta nftrace set 1`. Every later chain the packet crosses
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

    fn valid(&self) -> bool {
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
    stopped: bool,
}

impl Tracer {
    /// Start tracing packets matching `m` in netns `ino` (see module docs).
    /// One Tracer per process and netns: the table name is per process, so
    /// a second one in the same netns fails with EEXIST.
    pub fn start(ino: u32, m: Matcher) -> Result<Tracer, NftError> {
        if !m.valid() {
            return Err(NftError::EmptyMatcher);
        }
        let table = table_name(std::process::id());
        let t = table.clone();
        let (ctl, mon) = ns::run_in(ino, move || -> Result<_, NftError> {
            let mut ctl = nl::Socket::open()?;
            let mon = nl::Socket::open()?;
            mon.join(NFNLGRP_NFTRACE)?;
            remove_stale(&mut ctl)?;
            if let Err(e) = ctl.batch(&create_msgs(&t, &m, true), "create trace table") {
                // Kernels before 5.12 have no table owner flag.
                if matches!(&e, NftError::Kernel { source, .. }
                    if matches!(source.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)))
                {
                    ctl.batch(&create_msgs(&t, &m, false), "create trace table")?;
                } else {
                    return Err(e);
                }
            }
            Ok((ctl, mon))
        })??;
        Ok(Tracer {
            ino,
            table,
            ctl,
            mon,
            comments: HashMap::new(),
            stopped: false,
        })
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
        self.ctl
            .batch(&[del_table(&self.table)], "delete trace table")
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self
                .ctl
                .batch(&[del_table(&self.table)], "delete trace table");
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
        if t.family != NFPROTO_INET || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = s.batch(&[del_table(&t.name)], "delete stale trace table");
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

/// A NEWRULE message body (after nfgenmsg).
pub fn parse_rule(family: u8, attrs: &[u8]) -> Option<RuleInfo> {
    let mut r = RuleInfo {
        family,
        table: String::new(),
        chain: String::new(),
        handle: 0,
        comment: None,
        exprs: Vec::new(),
    };
    let mut have_handle = false;
    for (t, v) in nl::attrs(attrs) {
        match t {
            NFTA_RULE_TABLE => r.table = cstr(v),
            NFTA_RULE_CHAIN => r.chain = cstr(v),
            NFTA_RULE_HANDLE => {
                r.handle = be64(v)?;
                have_handle = true;
            }
            NFTA_RULE_USERDATA => r.comment = udata_comment(v),
            NFTA_RULE_EXPRESSIONS => r.exprs = super::rule::parse_exprs(v),
            _ => {}
        }
    }
    have_handle.then_some(r)
}

/// The comment in nftables rule userdata: TLVs of u8 type, u8 length.
pub fn udata_comment(mut u: &[u8]) -> Option<String> {
    while u.len() >= 2 {
        let (ty, len) = (u[0], u[1] as usize);
        let v = u.get(2..2 + len)?;
        if ty == UDATA_RULE_COMMENT {
            return Some(cstr(v));
        }
        u = &u[2 + len..];
    }
    None
}

/// An NFT_MSG_TRACE body (after nfgenmsg) of table family `family`.
pub fn parse_trace(family: u8, attrs: &[u8]) -> Option<TraceEvent> {
    let mut ev = TraceEvent {
        id: 0,
        kind: TraceKind::Other(0),
        family,
        nfproto: None,
        table: String::new(),
        chain: String::new(),
        rule_handle: None,
        verdict: None,
        iif: None,
        oif: None,
        comment: None,
        rule: None,
    };
    let mut id = None;
    let mut policy = None;
    for (t, v) in nl::attrs(attrs) {
        match t {
            NFTA_TRACE_ID => id = be32(v),
            NFTA_TRACE_TYPE => {
                ev.kind = match be32(v)? {
                    1 => TraceKind::Policy,
                    2 => TraceKind::Return,
                    3 => TraceKind::Rule,
                    k => TraceKind::Other(k),
                }
            }
            NFTA_TRACE_TABLE => ev.table = cstr(v),
            NFTA_TRACE_CHAIN => ev.chain = cstr(v),
            NFTA_TRACE_RULE_HANDLE => ev.rule_handle = be64(v),
            NFTA_TRACE_VERDICT => {
                let mut code = None;
                let mut chain = None;
                for (vt, vv) in nl::attrs(v) {
                    match vt {
                        NFTA_VERDICT_CODE => code = be32(vv),
                        NFTA_VERDICT_CHAIN => chain = Some(cstr(vv)),
                        _ => {}
                    }
                }
                ev.verdict = code.map(|c| Verdict::from_code(c as i32, chain));
            }
            NFTA_TRACE_NFPROTO => ev.nfproto = be32(v),
            NFTA_TRACE_POLICY => policy = be32(v),
            NFTA_TRACE_IIF => ev.iif = be32(v),
            NFTA_TRACE_OIF => ev.oif = be32(v),
            _ => {}
        }
    }
    if ev.kind == TraceKind::Policy && ev.verdict.is_none() {
        ev.verdict = policy.map(|p| Verdict::from_code(p as i32, None));
    }
    ev.id = id?;
    Some(ev)
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// One message of a batch: (type, extra flags, family, attributes).
type BatchMsg = (u16, u16, u8, Vec<u8>);

fn del_table(name: &str) -> BatchMsg {
    let mut a = Vec::new();
    nl::put_str(&mut a, NFTA_TABLE_NAME, name);
    (nft_type(NFT_MSG_DELTABLE), 0, NFPROTO_INET, a)
}

fn create_msgs(table: &str, m: &Matcher, owner: bool) -> Vec<BatchMsg> {
    let create = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut out = Vec::new();
    let mut a = Vec::new();
    nl::put_str(&mut a, NFTA_TABLE_NAME, table);
    if owner {
        nl::put(&mut a, NFTA_TABLE_FLAGS, &NFT_TABLE_F_OWNER.to_be_bytes());
    }
    out.push((nft_type(NFT_MSG_NEWTABLE), create, NFPROTO_INET, a));
    for (chain, hook) in [("pre", NF_INET_PRE_ROUTING), ("out", NF_INET_LOCAL_OUT)] {
        let mut a = Vec::new();
        nl::put_str(&mut a, NFTA_CHAIN_TABLE, table);
        nl::put_str(&mut a, NFTA_CHAIN_NAME, chain);
        let h = nl::nest_start(&mut a, NFTA_CHAIN_HOOK);
        nl::put(&mut a, NFTA_HOOK_HOOKNUM, &hook.to_be_bytes());
        nl::put(&mut a, NFTA_HOOK_PRIORITY, &TRACE_PRIORITY.to_be_bytes());
        nl::nest_end(&mut a, h);
        nl::put(&mut a, NFTA_CHAIN_POLICY, &NF_ACCEPT.to_be_bytes());
        nl::put_str(&mut a, NFTA_CHAIN_TYPE, "filter");
        out.push((nft_type(NFT_MSG_NEWCHAIN), create, NFPROTO_INET, a));

        let mut a = Vec::new();
        nl::put_str(&mut a, NFTA_RULE_TABLE, table);
        nl::put_str(&mut a, NFTA_RULE_CHAIN, chain);
        let l = nl::nest_start(&mut a, NFTA_RULE_EXPRESSIONS);
        rule_exprs(&mut a, m);
        nl::nest_end(&mut a, l);
        let comment = b"netwhy trace\0";
        let mut u = vec![UDATA_RULE_COMMENT, comment.len() as u8];
        u.extend_from_slice(comment);
        nl::put(&mut a, NFTA_RULE_USERDATA, &u);
        let flags = create | libc::NLM_F_APPEND as u16;
        out.push((nft_type(NFT_MSG_NEWRULE), flags, NFPROTO_INET, a));
    }
    out
}

/// Expressions of the trace rule: match `m`, then `meta nftrace set 1`.
fn rule_exprs(a: &mut Vec<u8>, m: &Matcher) {
    let reg = NFT_REG_1.to_be_bytes();
    let meta_load = |a: &mut Vec<u8>, key: u32| {
        expr(a, "meta", |a| {
            nl::put(a, NFTA_META_DREG, &reg);
            nl::put(a, NFTA_META_KEY, &key.to_be_bytes());
        })
    };
    let cmp_eq = |a: &mut Vec<u8>, data: &[u8]| {
        expr(a, "cmp", |a| {
            nl::put(a, NFTA_CMP_SREG, &reg);
            nl::put(a, NFTA_CMP_OP, &NFT_CMP_EQ.to_be_bytes());
            let d = nl::nest_start(a, NFTA_CMP_DATA);
            nl::put(a, NFTA_DATA_VALUE, data);
            nl::nest_end(a, d);
        })
    };
    let payload = |a: &mut Vec<u8>, base: u32, off: u32, len: u32| {
        expr(a, "payload", |a| {
            nl::put(a, NFTA_PAYLOAD_DREG, &reg);
            nl::put(a, NFTA_PAYLOAD_BASE, &base.to_be_bytes());
            nl::put(a, NFTA_PAYLOAD_OFFSET, &off.to_be_bytes());
            nl::put(a, NFTA_PAYLOAD_LEN, &len.to_be_bytes());
        })
    };
    if let Some(d) = m.daddr {
        meta_load(a, NFT_META_NFPROTO);
        cmp_eq(a, &[NFPROTO_IPV4]);
        payload(a, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
        cmp_eq(a, &d.octets());
    }
    if let Some(d) = m.daddr6 {
        meta_load(a, NFT_META_NFPROTO);
        cmp_eq(a, &[NFPROTO_IPV6]);
        payload(a, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
        cmp_eq(a, &d.octets());
    }
    if let Some(p) = m.l4proto {
        meta_load(a, NFT_META_L4PROTO);
        cmp_eq(a, &[p]);
    }
    if let Some(port) = m.dport {
        payload(a, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
        cmp_eq(a, &port.to_be_bytes());
    }
    expr(a, "immediate", |a| {
        nl::put(a, NFTA_IMMEDIATE_DREG, &reg);
        let d = nl::nest_start(a, NFTA_IMMEDIATE_DATA);
        nl::put(a, NFTA_DATA_VALUE, &[1]);
        nl::nest_end(a, d);
    });
    expr(a, "meta", |a| {
        nl::put(a, NFTA_META_KEY, &NFT_META_NFTRACE.to_be_bytes());
        nl::put(a, NFTA_META_SREG, &reg);
    });
}

fn expr(a: &mut Vec<u8>, name: &str, data: impl FnOnce(&mut Vec<u8>)) {
    let e = nl::nest_start(a, NFTA_LIST_ELEM);
    nl::put_str(a, NFTA_EXPR_NAME, name);
    let d = nl::nest_start(a, NFTA_EXPR_DATA);
    data(a);
    nl::nest_end(a, d);
    nl::nest_end(a, e);
}

/// nftables over the shared netlink client (`state::netlink`): bodies
/// start with an nfgenmsg, and changes go in nfnetlink batches.
mod nl {
    use super::*;
    use crate::state::netlink::{self, message, NlError, NLMSG_ERROR};
    pub use crate::state::netlink::{attrs, messages, nest_end, nest_start, put, put_str};

    impl From<NlError> for NftError {
        fn from(e: NlError) -> NftError {
            match e {
                NlError::Io { what, source } => NftError::Io { what, source },
                NlError::Kernel(source) => NftError::Kernel {
                    what: "request",
                    source,
                },
                NlError::Malformed => NftError::Malformed,
            }
        }
    }

    /// nfgenmsg (family, version 0, res_id big-endian) then `a`.
    fn nfgen(family: u8, res_id: u16, a: &[u8]) -> Vec<u8> {
        let mut b = vec![family, 0];
        b.extend(res_id.to_be_bytes());
        b.extend_from_slice(a);
        b
    }

    pub struct Socket(netlink::Socket);

    impl Socket {
        /// A NETLINK_NETFILTER socket in the calling thread's netns.
        pub fn open() -> Result<Socket, NftError> {
            Ok(Socket(netlink::Socket::open(NETLINK_NETFILTER)?))
        }

        pub fn join(&self, group: u32) -> Result<(), NftError> {
            Ok(self.0.join(group, "join NFNLGRP_NFTRACE")?)
        }

        /// One datagram within `t`, or None on timeout (Some(0): overrun).
        pub fn recv_within(&self, buf: &mut [u8], t: Duration) -> Result<Option<usize>, NftError> {
            Ok(self.0.recv_within(buf, t)?)
        }

        /// Send `msgs` as one nfnetlink batch, each with NLM_F_ACK, and wait
        /// until every one is acknowledged or one fails.
        pub fn batch(&mut self, msgs: &[BatchMsg], what: &'static str) -> Result<(), NftError> {
            let req = netlink::NLM_F_REQUEST;
            let sub = nfgen(0, NFNL_SUBSYS_NFTABLES, &[]);
            let mut out = Vec::new();
            message(&mut out, NFNL_MSG_BATCH_BEGIN, req, self.0.next_seq(), &sub);
            let mut pending = Vec::new();
            for (ty, flags, family, a) in msgs {
                let seq = self.0.next_seq();
                let f = req | netlink::NLM_F_ACK | flags;
                message(&mut out, *ty, f, seq, &nfgen(*family, 0, a));
                pending.push(seq);
            }
            message(&mut out, NFNL_MSG_BATCH_END, req, self.0.next_seq(), &sub);
            self.0.set_timeout(Duration::from_secs(3));
            self.0.send(&out)?;
            let mut buf = vec![0u8; 1 << 16];
            while !pending.is_empty() {
                let n = self.0.recv(&mut buf)?;
                for (ty, _, seq, body) in messages(&buf[..n]) {
                    if ty != NLMSG_ERROR {
                        continue;
                    }
                    let e = i32::from_ne_bytes(
                        body.get(0..4)
                            .ok_or(NftError::Malformed)?
                            .try_into()
                            .expect("4"),
                    );
                    if e != 0 {
                        return Err(NftError::Kernel {
                            what,
                            source: io::Error::from_raw_os_error(-e),
                        });
                    }
                    pending.retain(|&s| s != seq);
                }
            }
            Ok(())
        }

        /// A NLM_F_DUMP request; the bodies (nfgenmsg + attributes) of
        /// every answer.
        pub fn dump(&mut self, ty: u16, family: u8, a: &[u8]) -> Result<Vec<Vec<u8>>, NftError> {
            self.0.set_timeout(Duration::from_secs(3));
            self.0.dump(ty, &nfgen(family, 0, a)).map_err(|e| match e {
                NlError::Kernel(source) => NftError::Kernel {
                    what: "dump",
                    source,
                },
                e => e.into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u32, kind: TraceKind, chain: &str, v: Option<Verdict>) -> TraceEvent {
        TraceEvent {
            id,
            kind,
            family: 1,
            nfproto: Some(2),
            table: "t".into(),
            chain: chain.into(),
            rule_handle: Some(2),
            verdict: v,
            iif: None,
            oif: None,
            comment: None,
            rule: None,
        }
    }

    #[test]
    fn verdict_codes() {
        assert_eq!(Verdict::from_code(0, None), Verdict::Drop);
        assert_eq!(Verdict::from_code(1 << 16, None), Verdict::Drop);
        assert_eq!(Verdict::from_code(1, None), Verdict::Accept);
        assert_eq!(
            Verdict::from_code(-3, Some("c".into())),
            Verdict::Jump("c".into())
        );
        assert_eq!(Verdict::from_code(-5, None), Verdict::Return);
    }

    #[test]
    fn trace_roundtrip_and_grouping() {
        let mut a = Vec::new();
        nl::put(&mut a, NFTA_TRACE_ID, &7u32.to_be_bytes());
        nl::put(&mut a, NFTA_TRACE_TYPE, &3u32.to_be_bytes());
        nl::put_str(&mut a, NFTA_TRACE_TABLE, "nwlab_filter");
        nl::put_str(&mut a, NFTA_TRACE_CHAIN, "forward");
        nl::put(&mut a, NFTA_TRACE_RULE_HANDLE, &2u64.to_be_bytes());
        let v = nl::nest_start(&mut a, NFTA_TRACE_VERDICT);
        nl::put(&mut a, NFTA_VERDICT_CODE, &0u32.to_be_bytes());
        nl::nest_end(&mut a, v);
        let e = parse_trace(1, &a).unwrap();
        assert_eq!((e.id, e.kind, e.rule_handle), (7, TraceKind::Rule, Some(2)));
        assert_eq!(
            (e.table.as_str(), e.chain.as_str()),
            ("nwlab_filter", "forward")
        );
        assert!(e.is_drop());

        let evs = [
            ev(1, TraceKind::Rule, "a", Some(Verdict::Jump("b".into()))),
            ev(2, TraceKind::Policy, "a", Some(Verdict::Accept)),
            ev(1, TraceKind::Rule, "b", Some(Verdict::Drop)),
            ev(3, TraceKind::Policy, "a", Some(Verdict::Drop)),
        ];
        let d = drops_by_packet(&evs);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].id, d[0].chain.as_str()), (1, "b"));
        assert_eq!((d[1].id, d[1].kind), (3, TraceKind::Policy));
    }

    #[test]
    fn comment_userdata() {
        let mut u = vec![1, 2, 9, 9, UDATA_RULE_COMMENT, 4];
        u.extend_from_slice(b"abc\0");
        assert_eq!(udata_comment(&u).as_deref(), Some("abc"));
        assert_eq!(udata_comment(&[1, 1, 0]), None);
        assert_eq!(table_pid("netwhy_trace_42"), Some(42));
        assert_eq!(table_pid("nwlab_filter"), None);
    }

    #[test]
    fn matcher_validity() {
        assert!(Matcher::tcp_dport(443).valid());
        assert!(!Matcher::default().valid());
        let port_only = Matcher {
            dport: Some(1),
            ..Matcher::default()
        };
        assert!(!port_only.valid());
        let icmp_to = Matcher {
            l4proto: Some(1),
            ..Matcher::default()
        }
        .daddr([198, 18, 1, 2].into());
        assert!(icmp_to.valid());
        assert!(Matcher::default().daddr6(Ipv6Addr::LOCALHOST).valid());
        let both = icmp_to.daddr6(Ipv6Addr::LOCALHOST);
        assert!(!both.valid(), "one packet has one address family");
    }
}
