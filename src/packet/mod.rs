//! Packet headers to flows: the few header bytes a probe captured (up to
//! 128, possibly cut anywhere) become a [`Flow`] that says which
//! conversation a dropped packet belonged to.
//!
//! Parsing never fails: a short or odd packet yields the fields that could
//! be read and `truncated = true`, because a drop event is still worth
//! showing when its headers are incomplete.
#![forbid(unsafe_code)]
pub mod csum;
mod names;
mod parse;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

/// Where the captured bytes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdrKind {
    /// Nothing usable was captured.
    None,
    /// An Ethernet header (the skb's mac header was set).
    Eth,
    /// The network header; `ethertype` in host byte order (0x0800, 0x86dd,
    /// 0x0806) says what it is. 0 means unknown: the IP version nibble is
    /// then used (local-out skbs can lack `skb->protocol`).
    L3 { ethertype: u16 },
}

/// One packet's flow key and the header details worth printing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// "ipv4" | "ipv6" | "arp" | "l2" | "unknown".
    pub l3: &'static str,
    /// "tcp", "udp", "icmp", "icmpv6", "sctp", "igmp", "gre", "esp", "ah", or
    /// the IP protocol number as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// tcpdump-like letters in the order F S R P A U E W, e.g. "SA";
    /// "none" when no flag is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<String>,
    /// VLAN ids, outermost first; a hardware-accelerated tag is outermost.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlan: Vec<u16>,
    /// The ethertype after any VLAN tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethertype: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<Arp>,
    /// A non-first IP fragment: it carries no L4 header, so no ports.
    #[serde(skip_serializing_if = "is_false")]
    pub frag: bool,
    /// MAC addresses, for frames that are not IP (ARP, LLDP, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_mac: Option<String>,
    /// The Ethernet addresses of any captured frame, IP or not: an
    /// OTHERHOST drop is explained by comparing the destination with the
    /// device's own address, and the source names the interface that sent
    /// the frame. Not serialized: `src_mac`/`dst_mac` keep their JSON meaning.
    #[serde(skip)]
    pub eth_src: Option<[u8; 6]>,
    #[serde(skip)]
    pub eth_dst: Option<[u8; 6]>,
    /// Layer-4 checksum of a fully captured IPv4 or IPv6 UDP/TCP packet: "ok",
    /// "bad", or "partial" (offload pending on a locally sent packet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4_csum: Option<&'static str>,
    /// The checked values behind `l4_csum` (found, expected), for evidence.
    #[serde(skip)]
    pub l4_csum_check: Option<csum::L4Csum>,
    /// IP total length from the header (IPv6: payload + 40): what the
    /// packet was, not what was captured. Helps spot MTU drops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<u32>,
    /// The capture ended before a header this parser wanted to read.
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// An ICMP error's quoted packet (the header of the packet it is
    /// about): what ties an ICMP frag-needed to the packet that was too big.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_quote: Option<Box<Flow>>,
    /// The next-hop MTU an ICMP frag-needed / ICMPv6 packet-too-big
    /// announces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_mtu: Option<u32>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An ARP packet over IPv4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arp {
    /// "request", "reply", or the opcode number.
    pub op: String,
    pub sender: Ipv4Addr,
    pub target: Ipv4Addr,
    /// Sender hardware address (what a reply announces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_mac: Option<String>,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            l3: "unknown",
            proto: None,
            src: None,
            dst: None,
            sport: None,
            dport: None,
            icmp_type: None,
            icmp_code: None,
            tcp_flags: None,
            vlan: Vec::new(),
            ethertype: None,
            arp: None,
            frag: false,
            src_mac: None,
            dst_mac: None,
            eth_src: None,
            eth_dst: None,
            l4_csum: None,
            l4_csum_check: None,
            len: None,
            truncated: false,
            icmp_quote: None,
            icmp_mtu: None,
        }
    }
}

/// Parses captured header bytes. `hw_vlan` is the VLAN id (or TCI: only the
/// low 12 bits are used) of a tag the NIC stripped into skb metadata.
pub fn parse(kind: HdrKind, bytes: &[u8], hw_vlan: Option<u16>) -> Flow {
    let mut f = Flow::default();
    if let Some(tci) = hw_vlan {
        f.vlan.push(tci & 0x0fff);
    }
    match kind {
        HdrKind::None => {}
        HdrKind::Eth => parse::ethernet(&mut f, bytes),
        HdrKind::L3 { ethertype } => parse::network(&mut f, ethertype, bytes),
    }
    f
}

impl Flow {
    /// Same as [`parse`].
    pub fn parse(kind: HdrKind, bytes: &[u8], hw_vlan: Option<u16>) -> Flow {
        parse(kind, bytes, hw_vlan)
    }
}

impl fmt::Display for Flow {
    /// One tcpdump-like line, e.g. `198.18.0.1:40000 > 198.18.0.2:53 udp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.vlan.is_empty() {
            f.write_str("vlan ")?;
            for (i, v) in self.vlan.iter().enumerate() {
                write!(f, "{}{v}", if i > 0 { "," } else { "" })?;
            }
            f.write_str(" ")?;
        }
        match self.l3 {
            "ipv4" | "ipv6" => self.fmt_ip(f)?,
            "arp" => self.fmt_arp(f)?,
            "l2" => {
                let src = self.src_mac.as_deref().unwrap_or("?");
                let dst = self.dst_mac.as_deref().unwrap_or("?");
                write!(f, "{src} > {dst}")?;
                match self.ethertype {
                    Some(e) => write!(f, " ethertype {e:#06x}")?,
                    None => f.write_str(" 802.3")?,
                }
            }
            other => {
                f.write_str(other)?;
                if let Some(e) = self.ethertype {
                    write!(f, " ethertype {e:#06x}")?;
                }
            }
        }
        if self.truncated {
            f.write_str(" truncated")?;
        }
        Ok(())
    }
}

impl Flow {
    fn fmt_ip(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Some(src), Some(dst)) = (self.src, self.dst) else {
            return f.write_str(self.l3);
        };
        let end = |f: &mut fmt::Formatter<'_>, a: IpAddr, p: Option<u16>| match (a, p) {
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
            (a, Some(p)) => write!(f, "{a}:{p}"),
            (a, None) => write!(f, "{a}"),
        };
        end(f, src, self.sport)?;
        f.write_str(" > ")?;
        end(f, dst, self.dport)?;
        if let Some(p) = &self.proto {
            match p.parse::<u8>() {
                Ok(_) => write!(f, " proto {p}")?,
                Err(_) => write!(f, " {p}")?,
            }
        }
        if let Some(fl) = &self.tcp_flags {
            write!(f, " [{fl}]")?;
        }
        if let (Some(t), Some(c)) = (self.icmp_type, self.icmp_code) {
            let v6 = self.proto.as_deref() == Some("icmpv6");
            match names::icmp(v6, t, c) {
                (Some(n), false) => write!(f, " {n}")?,
                (Some(n), true) => write!(f, " {t}/{c} {n}")?,
                (None, _) => write!(f, " {t}/{c}")?,
            }
        }
        if self.frag {
            f.write_str(" frag")?;
        }
        Ok(())
    }

    fn fmt_arp(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(a) = &self.arp else {
            return f.write_str("arp");
        };
        match (a.op.as_str(), &a.sender_mac) {
            ("request", _) => write!(f, "arp who-has {} tell {}", a.target, a.sender),
            ("reply", Some(m)) => write!(f, "arp reply {} is-at {m}", a.sender),
            ("reply", None) => write!(f, "arp reply {} > {}", a.sender, a.target),
            (op, _) => write!(f, "arp op {op} {} > {}", a.sender, a.target),
        }
    }
}

#[cfg(test)]
mod tests;
