//! Conntrack entries in the namespace of a drop, through ctnetlink
//! (NETLINK_NETFILTER, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET dump).
//!
//! NAT lives in conntrack: a reply is reverse-NATed only if it matches the
//! *reply tuple* of an entry. When a reply comes back from somewhere else
//! (the docker-in-docker DNS case: the answer leaves from an address that is
//! not the DNAT target) nothing matches, nothing is rewritten, and the client
//! drops it with NO_SOCKET. Showing both tuples of the entry next to the
//! observed packet is what makes that drop understandable.
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::netlink::{self as nl, NlError};
use super::ns::{self, NsError};

#[derive(Debug, thiserror::Error)]
pub enum CtError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("ctnetlink: {0} (is nf_conntrack available?)")]
    Netlink(#[from] NlError),
    #[error("reading {path}: {source}")]
    Proc {
        path: &'static str,
        source: std::io::Error,
    },
}

/// One direction of a connection as conntrack stores it. For ICMP, `sport`
/// holds the echo id and `dport` is `type << 8 | code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Tuple {
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, ...).
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

impl Tuple {
    pub fn new(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Tuple {
        Tuple {
            proto,
            src,
            dst,
            sport,
            dport,
        }
    }

    /// The same flow seen from the other side.
    pub fn reversed(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => format!("proto {n}"),
    }
}

pub fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}",
            proto_name(self.proto),
            endpoint(self.src, self.sport),
            endpoint(self.dst, self.dport)
        )
    }
}

/// Bits of `enum ip_conntrack_status` (include/uapi/.../nf_conntrack_common.h).
pub mod status {
    pub const EXPECTED: u32 = 1 << 0;
    pub const SEEN_REPLY: u32 = 1 << 1;
    pub const ASSURED: u32 = 1 << 2;
    pub const CONFIRMED: u32 = 1 << 3;
    pub const SRC_NAT: u32 = 1 << 4;
    pub const DST_NAT: u32 = 1 << 5;
    pub const SEQ_ADJUST: u32 = 1 << 6;
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    pub const DST_NAT_DONE: u32 = 1 << 8;
    pub const DYING: u32 = 1 << 9;
    pub const FIXED_TIMEOUT: u32 = 1 << 10;
    pub const TEMPLATE: u32 = 1 << 11;
    pub const HELPER: u32 = 1 << 13;
    pub const OFFLOAD: u32 = 1 << 14;
    pub const HW_OFFLOAD: u32 = 1 << 15;

    pub(super) const NAMES: &[(u32, &str)] = &[
        (EXPECTED, "EXPECTED"),
        (SEEN_REPLY, "SEEN_REPLY"),
        (ASSURED, "ASSURED"),
        (CONFIRMED, "CONFIRMED"),
        (SRC_NAT, "SRC_NAT"),
        (DST_NAT, "DST_NAT"),
        (SEQ_ADJUST, "SEQ_ADJUST"),
        (SRC_NAT_DONE, "SRC_NAT_DONE"),
        (DST_NAT_DONE, "DST_NAT_DONE"),
        (DYING, "DYING"),
        (FIXED_TIMEOUT, "FIXED_TIMEOUT"),
        (TEMPLATE, "TEMPLATE"),
        (HELPER, "HELPER"),
        (OFFLOAD, "OFFLOAD"),
        (HW_OFFLOAD, "HW_OFFLOAD"),
    ];
}

/// One conntrack entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CtEntry {
    /// The tuple of the first packet, before NAT.
    pub orig: Tuple,
    /// The tuple a reply must have to match (after NAT is applied).
    pub reply: Tuple,
    /// `status::*` bits.
    pub status: u32,
    /// TCP conntrack state (enum tcp_conntrack), TCP entries only.
    pub tcp_state: Option<u8>,
    pub mark: u32,
    /// Seconds left before the entry expires.
    pub timeout: u32,
    pub id: u32,
    pub zone: u16,
}

impl CtEntry {
    pub fn has(&self, bit: u32) -> bool {
        self.status & bit != 0
    }

    /// Names of the set status bits, e.g. ["SEEN_REPLY", "DST_NAT"].
    pub fn flags(&self) -> Vec<&'static str> {
        status::NAMES
            .iter()
            .filter(|(b, _)| self.has(*b))
            .map(|(_, n)| *n)
            .collect()
    }

    pub fn tcp_state_name(&self) -> Option<&'static str> {
        self.tcp_state.map(|s| match s {
            0 => "NONE",
            1 => "SYN_SENT",
            2 => "SYN_RECV",
            3 => "ESTABLISHED",
            4 => "FIN_WAIT",
            5 => "CLOSE_WAIT",
            6 => "LAST_ACK",
            7 => "TIME_WAIT",
            8 => "CLOSE",
            9 => "SYN_SENT2",
            _ => "UNKNOWN",
        })
    }

    /// Does a packet with tuple `t` belong to this entry (either direction)?
    pub fn matches(&self, t: &Tuple) -> bool {
        *t == self.orig || *t == self.reply
    }

    /// Does either tuple of this entry have `ip:port` as an endpoint?
    pub fn touches(&self, proto: u8, ip: IpAddr, port: u16) -> bool {
        [self.orig, self.reply].iter().any(|t| {
            t.proto == proto
                && ((t.src == ip && t.sport == port) || (t.dst == ip && t.dport == port))
        })
    }
}

impl fmt::Display for CtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} | reply {}", self.orig, self.reply)?;
        if let Some(s) = self.tcp_state_name() {
            write!(f, " {s}")?;
        }
        write!(f, " [{}]", self.flags().join(","))?;
        if self.mark != 0 {
            write!(f, " mark {:#x}", self.mark)?;
        }
        write!(f, " timeout {}s", self.timeout)
    }
}

/// Entries in netns `ino` that a packet with tuple `flow` belongs to, in
/// either direction (as sent, or as the reply).
pub fn entries_for(ino: u32, flow: Tuple) -> Result<Vec<CtEntry>, CtError> {
    let mut v = dump_in(ino)?;
    v.retain(|e| e.matches(&flow) || e.matches(&flow.reversed()));
    Ok(v)
}

/// Entries in netns `ino` with `ip:port` as an endpoint of either tuple:
/// the candidates when a packet matches nothing (see [`explain_nat_mismatch`]).
pub fn entries_touching(
    ino: u32,
    proto: u8,
    ip: IpAddr,
    port: u16,
) -> Result<Vec<CtEntry>, CtError> {
    let mut v = dump_in(ino)?;
    v.retain(|e| e.touches(proto, ip, port));
    Ok(v)
}

/// Why a reply with tuple `observed` does not match `entry`, and what NAT
/// did to the flow; None when it matches the entry's reply tuple.
pub fn explain_nat_mismatch(entry: &CtEntry, observed: &Tuple) -> Option<String> {
    if *observed == entry.reply {
        return None;
    }
    let expected = entry.reply;
    let mut out = String::new();
    let dnat = entry.has(status::DST_NAT);
    let snat = entry.has(status::SRC_NAT);
    if dnat {
        out.push_str(&format!(
            "DNAT rewrote the destination {} to {}",
            endpoint(entry.orig.dst, entry.orig.dport),
            endpoint(expected.src, expected.sport)
        ));
    }
    if snat {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&format!(
            "SNAT rewrote the source {} to {}",
            endpoint(entry.orig.src, entry.orig.sport),
            endpoint(expected.dst, expected.dport)
        ));
    }
    if out.is_empty() {
        out.push_str(&format!("no NAT on {}", entry.orig));
    }
    out.push_str(&format!(
        ". A reply must look like {expected} to match; this one is {observed}"
    ));
    let mut why = Vec::new();
    if observed.proto != expected.proto {
        why.push(format!(
            "protocol {} is not {}",
            proto_name(observed.proto),
            proto_name(expected.proto)
        ));
    }
    if (observed.src, observed.sport) != (expected.src, expected.sport) {
        let target = if dnat {
            ", which is not the DNAT target"
        } else {
            ""
        };
        why.push(format!(
            "it comes from {}{target}",
            endpoint(observed.src, observed.sport)
        ));
    }
    if (observed.dst, observed.dport) != (expected.dst, expected.dport) {
        let target = if snat { ", not the SNAT address" } else { "" };
        why.push(format!(
            "it goes to {}{target}",
            endpoint(observed.dst, observed.dport)
        ));
    }
    out.push_str(&format!(": {}", why.join(" and ")));
    if dnat || snat {
        out.push_str(&format!(
            ". With no conntrack match NAT is not reversed, so the packet reaches {} still from {}, \
             which no socket there is connected to (NO_SOCKET)",
            endpoint(observed.dst, observed.dport),
            endpoint(observed.src, observed.sport),
        ));
        if dnat {
            out.push_str(&format!(
                "; the client expects its answer from {}",
                endpoint(entry.orig.dst, entry.orig.dport)
            ));
        }
    }
    Some(out)
}

/// (nf_conntrack_count, nf_conntrack_max) in netns `ino`. A full table drops
/// new flows (NF_CONNTRACK drops, "table full" in dmesg).
pub fn count_and_max(ino: u32) -> Result<(u64, u64), CtError> {
    ns::run_in(ino, || -> Result<(u64, u64), CtError> {
        Ok((
            read_num("/proc/sys/net/netfilter/nf_conntrack_count")?,
            read_num("/proc/sys/net/netfilter/nf_conntrack_max")?,
        ))
    })?
}

fn read_num(path: &'static str) -> Result<u64, CtError> {
    let s = fs::read_to_string(path).map_err(|source| CtError::Proc { path, source })?;
    s.trim().parse().map_err(|_| CtError::Proc {
        path,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a number: {s:?}"),
        ),
    })
}

/// Every conntrack entry (IPv4 and IPv6) in netns `ino`.
pub fn dump_in(ino: u32) -> Result<Vec<CtEntry>, CtError> {
    ns::run_in(ino, dump)?
}

/// Every conntrack entry in the calling thread's netns.
pub fn dump() -> Result<Vec<CtEntry>, CtError> {
    let sock = nl::Socket::open(libc::NETLINK_NETFILTER)?;
    let msgs = sock.dump(CT_GET, &dump_request())?;
    Ok(msgs.iter().filter_map(|m| parse_ct_msg(m)).collect())
}

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const CT_GET: u16 = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET;

/// struct nfgenmsg for a dump of every family (AF_UNSPEC, NFNETLINK_V0).
pub fn dump_request() -> Vec<u8> {
    vec![libc::AF_UNSPEC as u8, 0, 0, 0]
}

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;

const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;

/// nfgenmsg header in front of the attributes.
const NFGENMSG_LEN: usize = 4;

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(0..4)?.try_into().ok()?))
}

fn be16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(0..2)?.try_into().ok()?))
}

/// Parse one IPCTNL_MSG_CT_NEW answer (nfgenmsg + CTA_* attributes). None
/// if either tuple is missing or incomplete.
pub fn parse_ct_msg(b: &[u8]) -> Option<CtEntry> {
    let mut orig = None;
    let mut reply = None;
    let mut e = CtEntry {
        orig: Tuple::new(
            0,
            Ipv4Addr::UNSPECIFIED.into(),
            0,
            Ipv4Addr::UNSPECIFIED.into(),
            0,
        ),
        reply: Tuple::new(
            0,
            Ipv4Addr::UNSPECIFIED.into(),
            0,
            Ipv4Addr::UNSPECIFIED.into(),
            0,
        ),
        status: 0,
        tcp_state: None,
        mark: 0,
        timeout: 0,
        id: 0,
        zone: 0,
    };
    for (ty, v) in nl::attrs(b.get(NFGENMSG_LEN..)?) {
        match ty {
            CTA_TUPLE_ORIG => orig = parse_tuple(v),
            CTA_TUPLE_REPLY => reply = parse_tuple(v),
            CTA_STATUS => e.status = be32(v)?,
            CTA_TIMEOUT => e.timeout = be32(v)?,
            CTA_MARK => e.mark = be32(v)?,
            CTA_ID => e.id = be32(v)?,
            CTA_ZONE => e.zone = be16(v)?,
            CTA_PROTOINFO => {
                for (pty, pv) in nl::attrs(v) {
                    if pty == CTA_PROTOINFO_TCP {
                        e.tcp_state = nl::attrs(pv)
                            .find(|(t, _)| *t == CTA_PROTOINFO_TCP_STATE)
                            .and_then(|(_, s)| s.first().copied());
                    }
                }
            }
            _ => {}
        }
    }
    e.orig = orig?;
    e.reply = reply?;
    Some(e)
}

/// Parse a nested CTA_TUPLE_* attribute.
pub fn parse_tuple(b: &[u8]) -> Option<Tuple> {
    let (mut src, mut dst, mut proto) = (None, None, None);
    let (mut sport, mut dport) = (0u16, 0u16);
    let (mut itype, mut icode) = (0u8, 0u8);
    for (ty, v) in nl::attrs(b) {
        match ty {
            CTA_TUPLE_IP => {
                for (ity, iv) in nl::attrs(v) {
                    let ip = match ity {
                        CTA_IP_V4_SRC | CTA_IP_V4_DST => {
                            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(iv.get(0..4)?).ok()?))
                        }
                        CTA_IP_V6_SRC | CTA_IP_V6_DST => {
                            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(iv.get(0..16)?).ok()?))
                        }
                        _ => continue,
                    };
                    if ity == CTA_IP_V4_SRC || ity == CTA_IP_V6_SRC {
                        src = Some(ip);
                    } else {
                        dst = Some(ip);
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (pty, pv) in nl::attrs(v) {
                    match pty {
                        CTA_PROTO_NUM => proto = pv.first().copied(),
                        CTA_PROTO_SRC_PORT => sport = be16(pv)?,
                        CTA_PROTO_DST_PORT => dport = be16(pv)?,
                        CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => sport = be16(pv)?,
                        CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => itype = *pv.first()?,
                        CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => icode = *pv.first()?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let proto = proto?;
    if proto == 1 || proto == 58 {
        dport = u16::from(itype) << 8 | u16::from(icode);
    }
    Some(Tuple::new(proto, src?, sport, dst?, dport))
}

// The fixtures hold native-endian netlink headers captured on x86_64.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Captured from 6.18 on the lab router: a datagram from 198.18.1.2 to
    // the router's 198.18.1.1:53, DNATed to 198.18.2.2 (nothing answered),
    // and an un-NATed datagram to the router's own 198.18.1.1:5300.
    const DNAT: &str = "02000000340001801400018008000100c612010208000200c61201011c000280050001001100000006000200a3f800000600030000350000340002801400018008000100c612020208000200c61201021c0002800500010011000000060002000035000006000300a3f8000008000300000001a8080008000000000008000c00b59fdd9308000b0000000001080007000000001d";
    const PLAIN: &str = "02000000340001801400018008000100c612010208000200c61201011c000280050001001100000006000200b19600000600030014b40000340002801400018008000100c612010108000200c61201021c00028005000100110000000600020014b4000006000300b19600000800030000000188080008000000000008000c000a63255d08000b0000000001080007000000001d";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_dnat_entry() {
        let e = parse_ct_msg(&unhex(DNAT)).unwrap();
        assert_eq!(
            e.orig,
            Tuple::new(17, ip("198.18.1.2"), 0xa3f8, ip("198.18.1.1"), 53)
        );
        assert_eq!(
            e.reply,
            Tuple::new(17, ip("198.18.2.2"), 53, ip("198.18.1.2"), 0xa3f8)
        );
        assert_eq!(
            e.flags(),
            vec!["CONFIRMED", "DST_NAT", "SRC_NAT_DONE", "DST_NAT_DONE"]
        );
        assert!(e.has(status::DST_NAT) && !e.has(status::SRC_NAT) && !e.has(status::SEEN_REPLY));
        assert_eq!((e.timeout, e.mark, e.tcp_state, e.zone), (29, 0, None, 0));
        assert_eq!(e.id, 0xb59fdd93);
        assert!(e.matches(&e.reply) && e.matches(&e.orig));
        assert!(e.touches(17, ip("198.18.2.2"), 53));
        assert_eq!(
            e.to_string(),
            "udp 198.18.1.2:41976 -> 198.18.1.1:53 | reply udp 198.18.2.2:53 -> 198.18.1.2:41976 \
             [CONFIRMED,DST_NAT,SRC_NAT_DONE,DST_NAT_DONE] timeout 29s"
        );
    }

    #[test]
    fn explains_reply_from_wrong_source() {
        let e = parse_ct_msg(&unhex(DNAT)).unwrap();
        assert_eq!(explain_nat_mismatch(&e, &e.reply), None);
        let stray = Tuple::new(17, ip("198.18.2.9"), 53, ip("198.18.1.2"), 0xa3f8);
        let why = explain_nat_mismatch(&e, &stray).unwrap();
        assert!(
            why.starts_with("DNAT rewrote the destination 198.18.1.1:53 to 198.18.2.2:53."),
            "{why}"
        );
        assert!(
            why.contains("it comes from 198.18.2.9:53, which is not the DNAT target"),
            "{why}"
        );
        assert!(why.contains("NO_SOCKET"), "{why}");
        assert!(
            why.contains("expects its answer from 198.18.1.1:53"),
            "{why}"
        );
    }

    #[test]
    fn plain_entry_has_no_nat() {
        let e = parse_ct_msg(&unhex(PLAIN)).unwrap();
        assert_eq!(e.orig.reversed(), e.reply);
        assert!(!e.has(status::DST_NAT) && !e.has(status::SRC_NAT));
        let other = Tuple::new(17, ip("198.18.1.1"), 5301, e.orig.src, e.orig.sport);
        let why = explain_nat_mismatch(&e, &other).unwrap();
        assert!(why.starts_with("no NAT on udp"), "{why}");
        assert!(!why.contains("NO_SOCKET"), "{why}");
    }

    #[test]
    fn truncated_message_is_rejected() {
        let b = unhex(DNAT);
        assert!(parse_ct_msg(&b[..30]).is_none());
        assert!(parse_ct_msg(&b[..2]).is_none());
        assert_eq!(dump_request(), vec![0, 0, 0, 0]);
    }
}
