//! Interfaces, addresses and whole route tables of a network namespace, as
//! `ip link` / `ip addr` / `ip route show table all` list them, through
//! rtnetlink dumps (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE with NLM_F_DUMP).
//!
//! `route` answers "where does this one flow go"; a health check needs the
//! whole picture instead: which interfaces carry which subnets, which
//! routes point where, and which IPv6 addresses never finished duplicate
//! address detection. The `_here` functions talk to the calling thread's
//! netns (open the socket after setns, see `state::ns`).
use std::io;
use std::net::IpAddr;

use super::route::{ip_from, nl};

const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;
const RTA_PRIORITY: u16 = 6;
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_LOWER_UP: u32 = 0x1_0000;
/// ifaddrmsg flags (include/uapi/linux/if_addr.h).
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_DADFAILED: u32 = 0x08;
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// rtm_type unicast; rtm_table of the local table (255) and main (254).
pub const RTN_UNICAST: u8 = 1;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub lower_up: bool,
    pub loopback: bool,
}

/// One address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// IFA_F_* flags: the 32-bit IFA_FLAGS attribute when present (the
    /// 8-bit header field cannot hold the newer ones).
    pub flags: u32,
    pub scope: u8,
    /// Creation time in 1/100 s since boot (IFA_CACHEINFO cstamp).
    pub created_cs: Option<u32>,
}

impl Addr {
    pub fn tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }
    pub fn dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
}

/// One route of any table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteEntry {
    pub table: u32,
    /// rtm_type (1 unicast, 2 local, 6 blackhole...).
    pub rtype: u8,
    pub dst: IpAddr,
    pub dst_len: u8,
    /// Output interfaces by index: one, or every nexthop of a multipath route.
    pub oifs: Vec<u32>,
    pub gateway: Option<IpAddr>,
    pub metric: u32,
}

impl RouteEntry {
    pub fn is_default(&self) -> bool {
        self.dst_len == 0
    }
}

/// Every interface of the calling thread's netns.
pub fn links_here() -> io::Result<Vec<Link>> {
    Ok(nl::link_dump_here()?
        .iter()
        .filter_map(|b| parse_link(b))
        .collect())
}

/// The MTU of interface `name` in the calling thread's netns (IFLA_MTU),
/// None when there is no such interface.
pub fn mtu_here(name: &str) -> io::Result<Option<u32>> {
    const IFLA_MTU: u16 = 4;
    Ok(nl::link_dump_here()?
        .iter()
        .filter(|b| parse_link(b).is_some_and(|l| l.name == name))
        .find_map(|b| {
            nl::attrs(b.get(16..)?)
                .into_iter()
                .find(|(t, _)| *t == IFLA_MTU)
                .and_then(|(_, v)| u32_at(v, 0))
        }))
}

/// Every address of `family` (AF_INET, AF_INET6, or AF_UNSPEC for both).
pub fn addrs_here(family: i32) -> io::Result<Vec<Addr>> {
    let sock = nl::Socket::open()?;
    let req = [family as u8, 0, 0, 0, 0, 0, 0, 0]; // struct ifaddrmsg
    let msgs = sock.request(RTM_GETADDR, nl::NLM_F_DUMP, &req)?;
    Ok(msgs
        .iter()
        .filter(|m| m.ty == RTM_NEWADDR)
        .filter_map(|m| parse_addr(&m.body))
        .collect())
}

/// Every route of `family` in every table (local and main included).
pub fn routes_here(family: i32) -> io::Result<Vec<RouteEntry>> {
    let sock = nl::Socket::open()?;
    let mut req = vec![family as u8, 0, 0, 0, 0, 0, 0, 0];
    req.extend_from_slice(&0u32.to_ne_bytes());
    let msgs = sock.request(nl::RTM_GETROUTE, nl::NLM_F_DUMP, &req)?;
    Ok(msgs
        .iter()
        .filter(|m| m.ty == nl::RTM_NEWROUTE)
        .filter_map(|m| parse_route_entry(&m.body))
        .collect())
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// An RTM_NEWLINK body: struct ifinfomsg (16 bytes) + IFLA_* attributes.
pub fn parse_link(b: &[u8]) -> Option<Link> {
    let index = u32_at(b, 4)?;
    let flags = u32_at(b, 8)?;
    let name = nl::attrs(b.get(16..)?)
        .into_iter()
        .find(|(t, _)| *t == IFLA_IFNAME)
        .map(|(_, v)| {
            let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        })?;
    Some(Link {
        index,
        name,
        up: flags & IFF_UP != 0,
        lower_up: flags & IFF_LOWER_UP != 0,
        loopback: flags & IFF_LOOPBACK != 0,
    })
}

/// An RTM_NEWADDR body: struct ifaddrmsg (8 bytes) + IFA_* attributes.
/// IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on
/// point-to-point links and the address otherwise (the only one for IPv6).
pub fn parse_addr(b: &[u8]) -> Option<Addr> {
    if b.len() < 8 {
        return None;
    }
    let mut a = Addr {
        index: u32_at(b, 4)?,
        addr: IpAddr::from([0u8; 4]),
        prefix_len: b[1],
        flags: u32::from(b[2]),
        scope: b[3],
        created_cs: None,
    };
    let (mut local, mut address) = (None, None);
    for (t, v) in nl::attrs(&b[8..]) {
        match t {
            IFA_LOCAL => local = ip_from(v),
            IFA_ADDRESS => address = ip_from(v),
            IFA_FLAGS => a.flags = u32_at(v, 0)?,
            IFA_CACHEINFO => a.created_cs = u32_at(v, 8),
            _ => {}
        }
    }
    a.addr = local.or(address)?;
    Some(a)
}

/// An RTM_NEWROUTE body: struct rtmsg (12 bytes) + RTA_* attributes.
pub fn parse_route_entry(b: &[u8]) -> Option<RouteEntry> {
    if b.len() < 12 {
        return None;
    }
    let v4 = i32::from(b[0]) == libc::AF_INET;
    let mut r = RouteEntry {
        table: u32::from(b[4]),
        rtype: b[7],
        dst: if v4 {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u8; 16])
        },
        dst_len: b[1],
        oifs: Vec::new(),
        gateway: None,
        metric: 0,
    };
    for (t, v) in nl::attrs(&b[12..]) {
        match t {
            nl::RTA_DST => r.dst = ip_from(v)?,
            nl::RTA_OIF => r.oifs.push(u32_at(v, 0)?),
            nl::RTA_GATEWAY => r.gateway = ip_from(v),
            nl::RTA_TABLE => r.table = u32_at(v, 0)?,
            RTA_PRIORITY => r.metric = u32_at(v, 0)?,
            nl::RTA_MULTIPATH => r.oifs.extend(multipath_oifs(v)),
            _ => {}
        }
    }
    Some(r)
}

/// Interface indexes of a RTA_MULTIPATH list of struct rtnexthop (len u16,
/// flags u8, hops u8, ifindex i32, attributes).
fn multipath_oifs(mut b: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        if len < 8 || len > b.len() {
            break;
        }
        out.extend(u32_at(b, 4));
        b = &b[nl::align(len).min(b.len())..];
    }
    out
}

/// True when `ip` lies in `net`/`len`.
pub fn prefix_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let (n, a) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (n.octets().to_vec(), a.octets().to_vec()),
        (IpAddr::V6(n), IpAddr::V6(a)) => (n.octets().to_vec(), a.octets().to_vec()),
        _ => return false,
    };
    let len = usize::from(len).min(n.len() * 8);
    (0..len).all(|bit| {
        let (byte, shift) = (bit / 8, 7 - bit % 8);
        (n[byte] >> shift) & 1 == (a[byte] >> shift) & 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifaddrmsg(family: u8, plen: u8, flags: u8, index: u32) -> Vec<u8> {
        let mut b = vec![family, plen, flags, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        b
    }

    #[test]
    fn address_flags_prefer_ifa_flags() {
        let mut b = ifaddrmsg(libc::AF_INET6 as u8, 64, 0, 3);
        let ip: std::net::Ipv6Addr = "fd00:18::5".parse().unwrap();
        nl::put_attr(&mut b, IFA_ADDRESS, &ip.octets());
        nl::put_attr(
            &mut b,
            IFA_FLAGS,
            &(IFA_F_DADFAILED | IFA_F_TENTATIVE).to_ne_bytes(),
        );
        let mut ci = Vec::new();
        for v in [u32::MAX, u32::MAX, 1234, 1300] {
            ci.extend_from_slice(&v.to_ne_bytes());
        }
        nl::put_attr(&mut b, IFA_CACHEINFO, &ci);
        let a = parse_addr(&b).unwrap();
        assert_eq!(a.addr, IpAddr::V6(ip));
        assert_eq!((a.index, a.prefix_len), (3, 64));
        assert!(a.dad_failed() && a.tentative());
        assert_eq!(a.created_cs, Some(1234));
    }

    #[test]
    fn ipv4_local_wins_over_peer() {
        let mut b = ifaddrmsg(libc::AF_INET as u8, 32, IFA_F_NODAD as u8, 2);
        nl::put_attr(&mut b, IFA_ADDRESS, &[10, 0, 0, 2]);
        nl::put_attr(&mut b, IFA_LOCAL, &[10, 0, 0, 1]);
        let a = parse_addr(&b).unwrap();
        assert_eq!(a.addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(a.flags, IFA_F_NODAD);
        assert!(!a.tentative());
    }

    #[test]
    fn route_entries_and_multipath() {
        let mut b = vec![libc::AF_INET as u8, 25, 0, 0, 254, 3, 0, RTN_UNICAST];
        b.extend_from_slice(&0u32.to_ne_bytes());
        nl::put_attr(&mut b, nl::RTA_DST, &[198, 18, 0, 128]);
        nl::put_attr(&mut b, RTA_PRIORITY, &100u32.to_ne_bytes());
        let mut mp = Vec::new();
        for ifi in [4u32, 5] {
            mp.extend_from_slice(&8u16.to_ne_bytes());
            mp.extend_from_slice(&[0, 0]);
            mp.extend_from_slice(&ifi.to_ne_bytes());
        }
        nl::put_attr(&mut b, nl::RTA_MULTIPATH, &mp);
        let r = parse_route_entry(&b).unwrap();
        assert_eq!(r.dst, "198.18.0.128".parse::<IpAddr>().unwrap());
        assert_eq!((r.dst_len, r.table, r.metric), (25, 254, 100));
        assert_eq!(r.oifs, [4, 5]);
        assert!(!r.is_default());
    }

    #[test]
    fn link_flags() {
        let mut b = vec![0u8; 16];
        b[4..8].copy_from_slice(&7u32.to_ne_bytes());
        b[8..12].copy_from_slice(&(IFF_UP | IFF_LOWER_UP).to_ne_bytes());
        nl::put_attr(&mut b, IFLA_IFNAME, b"eth1\0");
        let l = parse_link(&b).unwrap();
        assert_eq!((l.index, l.name.as_str()), (7, "eth1"));
        assert!(l.up && l.lower_up && !l.loopback);
    }

    #[test]
    fn containment() {
        let net: IpAddr = "198.18.0.0".parse().unwrap();
        assert!(prefix_contains(net, 24, "198.18.0.200".parse().unwrap()));
        assert!(!prefix_contains(net, 24, "198.18.1.1".parse().unwrap()));
        assert!(!prefix_contains(net, 24, "fd00::1".parse().unwrap()));
    }
}
