//! Route lookups inside a network namespace, as `ip route get DST from SRC
//! iif DEV` does: RTM_GETROUTE asks the kernel's own FIB code, so policy
//! rules, marks and VRFs are honoured without re-implementing them.
//!
//! Blackhole, unreachable and prohibit routes make the kernel refuse the
//! lookup with the errno the route carries (EINVAL, EHOSTUNREACH, EACCES):
//! exactly what a packet hitting them gets. We turn that errno back into the
//! route type and, to name the route, find the most specific route of that
//! type covering the destination in a table dump.
//!
//! The small rtnetlink client in [`nl`] is shared with `neigh`: a socket
//! opened on a thread that has setns(2)'d talks to that namespace.
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ns::{self, NsError};
use super::sysctl;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("rtnetlink: {0}")]
    Netlink(#[from] io::Error),
    #[error("no interface named '{0}' in this network namespace")]
    NoDevice(String),
    #[error("source {src} and destination {dst} are not the same address family")]
    Family { src: IpAddr, dst: IpAddr },
    #[error(
        "an input lookup (iif {0}) needs a source address: the kernel treats 0.0.0.0 as martian"
    )]
    NeedSource(String),
    #[error(transparent)]
    Sysctl(#[from] sysctl::SysctlError),
}

/// What a route does with a packet (`rtm_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteType {
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Multicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Throw,
    Nat,
    /// No route at all (ENETUNREACH): not a route type in the kernel, but
    /// what a drop report needs to say.
    NoRoute,
    Other(u8),
}

impl RouteType {
    fn from_rtm(t: u8) -> RouteType {
        match t {
            1 => RouteType::Unicast,
            2 => RouteType::Local,
            3 => RouteType::Broadcast,
            4 => RouteType::Anycast,
            5 => RouteType::Multicast,
            6 => RouteType::Blackhole,
            7 => RouteType::Unreachable,
            8 => RouteType::Prohibit,
            9 => RouteType::Throw,
            10 => RouteType::Nat,
            t => RouteType::Other(t),
        }
    }

    fn rtm(self) -> Option<u8> {
        Some(match self {
            RouteType::Blackhole => 6,
            RouteType::Unreachable => 7,
            RouteType::Prohibit => 8,
            RouteType::Throw => 9,
            _ => return None,
        })
    }

    /// The errno the kernel's FIB returns for a lookup ending on a route of
    /// this type (`fib_props[]` in net/ipv4/fib_semantics.c).
    fn from_errno(e: i32) -> Option<RouteType> {
        match e {
            libc::EINVAL => Some(RouteType::Blackhole),
            libc::EHOSTUNREACH => Some(RouteType::Unreachable),
            libc::EACCES => Some(RouteType::Prohibit),
            libc::ENETUNREACH => Some(RouteType::NoRoute),
            _ => None,
        }
    }

    /// True when a packet routed here is discarded by the routing code.
    pub fn discards(self) -> bool {
        matches!(
            self,
            RouteType::Blackhole
                | RouteType::Unreachable
                | RouteType::Prohibit
                | RouteType::NoRoute
        )
    }
}

/// A network and its prefix length, e.g. (198.18.2.0, 24).
pub type Prefix = (IpAddr, u8);

/// The flow to look up. `iif` makes it an input (forwarding/local
/// delivery) lookup, as for a received packet; without it, an output
/// lookup as for a locally sent one.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    pub dst: Option<IpAddr>,
    pub src: Option<IpAddr>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub mark: u32,
}

impl Flow {
    pub fn to(dst: IpAddr) -> Flow {
        Flow {
            dst: Some(dst),
            ..Flow::default()
        }
    }
    pub fn from(mut self, src: IpAddr) -> Flow {
        self.src = Some(src);
        self
    }
    pub fn iif(mut self, dev: &str) -> Flow {
        self.iif = Some(dev.to_string());
        self
    }
    pub fn oif(mut self, dev: &str) -> Flow {
        self.oif = Some(dev.to_string());
        self
    }
    pub fn mark(mut self, mark: u32) -> Flow {
        self.mark = mark;
        self
    }
}

/// The kernel's answer for a flow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    pub kind: RouteType,
    /// Output device (for local routes: `lo`, as the kernel says).
    pub dev: Option<String>,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    /// Routing table the route was found in (RTM_F_LOOKUP_TABLE).
    pub table: Option<u32>,
    /// The matching FIB entry's prefix (RTM_F_FIB_MATCH), e.g. 198.18.2.0/24.
    pub prefix: Option<Prefix>,
    /// Errno the lookup failed with, when the route discards (see module doc).
    pub errno: Option<i32>,
    /// Devices of every nexthop of the matching entry when it is multipath
    /// (RTA_MULTIPATH); empty for a single-path route (see `dev`).
    pub nexthops: Vec<String>,
}

/// `ip route get` for `flow` inside netns `ino`.
pub fn get(ino: u32, flow: &Flow) -> Result<Route, RouteError> {
    let flow = flow.clone();
    ns::run_in(ino, move || get_here(&flow))?
}

/// [`get`] in the calling thread's own network namespace.
pub fn get_here(flow: &Flow) -> Result<Route, RouteError> {
    let dst = flow.dst.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if let Some(src) = flow.src {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(RouteError::Family { src, dst });
        }
    }
    if let (Some(iif), None) = (&flow.iif, flow.src) {
        if dst.is_ipv4() {
            return Err(RouteError::NeedSource(iif.clone()));
        }
    }
    let sock = nl::Socket::open()?;
    let req = build_get(flow, dst, nl::RTM_F_LOOKUP_TABLE)?;
    match sock.request(nl::RTM_GETROUTE, 0, &req) {
        Ok(msgs) => {
            let m = msgs
                .into_iter()
                .find(|m| m.ty == nl::RTM_NEWROUTE)
                .ok_or_else(|| io::Error::other("RTM_GETROUTE: no route in the answer"))?;
            let mut route = parse_route(&m.body);
            // A second question names the FIB entry that matched; its
            // absence (old kernel) is not an error.
            if let Ok(req) = build_get(flow, dst, nl::RTM_F_FIB_MATCH) {
                if let Ok(msgs) = sock.request(nl::RTM_GETROUTE, 0, &req) {
                    if let Some(m) = msgs.iter().find(|m| m.ty == nl::RTM_NEWROUTE) {
                        let entry = parse_route(&m.body);
                        route.prefix = entry.prefix;
                        route.nexthops = entry.nexthops;
                    }
                }
            }
            Ok(route)
        }
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            let Some(kind) = RouteType::from_errno(errno) else {
                return Err(e.into());
            };
            let mut route = Route {
                kind,
                dev: None,
                gateway: None,
                prefsrc: None,
                table: None,
                prefix: None,
                nexthops: Vec::new(),
                errno: Some(errno),
            };
            if let Some(t) = kind.rtm() {
                if let Some((table, prefix)) = covering_route(&sock, dst, t)? {
                    route.table = Some(table);
                    route.prefix = Some(prefix);
                }
            }
            Ok(route)
        }
    }
}

fn build_get(flow: &Flow, dst: IpAddr, flags: u32) -> Result<Vec<u8>, RouteError> {
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    } as u8;
    let full = if dst.is_ipv4() { 32 } else { 128 };
    let mut b = Vec::with_capacity(64);
    // struct rtmsg
    b.push(family);
    b.push(if flow.dst.is_some() { full } else { 0 });
    b.push(if flow.src.is_some() { full } else { 0 });
    b.extend_from_slice(&[0, 0, 0, 0, 0]); // tos table protocol scope type
    b.extend_from_slice(&flags.to_ne_bytes());
    if flow.dst.is_some() {
        nl::put_attr(&mut b, nl::RTA_DST, &ip_bytes(dst));
    }
    if let Some(src) = flow.src {
        nl::put_attr(&mut b, nl::RTA_SRC, &ip_bytes(src));
    }
    if let Some(dev) = &flow.iif {
        let i = nl::ifindex(dev).ok_or_else(|| RouteError::NoDevice(dev.clone()))?;
        nl::put_attr(&mut b, nl::RTA_IIF, &i.to_ne_bytes());
    }
    if let Some(dev) = &flow.oif {
        let i = nl::ifindex(dev).ok_or_else(|| RouteError::NoDevice(dev.clone()))?;
        nl::put_attr(&mut b, nl::RTA_OIF, &i.to_ne_bytes());
    }
    if flow.mark != 0 {
        nl::put_attr(&mut b, nl::RTA_MARK, &flow.mark.to_ne_bytes());
    }
    Ok(b)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(crate) fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

fn u32_of(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// Devices of a RTA_MULTIPATH payload: a list of `struct rtnexthop`
/// (len u16, flags u8, hops u8, ifindex i32, then attributes).
fn multipath_devs(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        if len < 8 || len > b.len() {
            break;
        }
        let index = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        out.push(nl::ifname(index).unwrap_or_else(|| format!("if{index}")));
        b = &b[nl::align(len).min(b.len())..];
    }
    out
}

pub(crate) fn parse_route(body: &[u8]) -> Route {
    let mut r = Route {
        kind: RouteType::Other(0),
        dev: None,
        gateway: None,
        prefsrc: None,
        table: None,
        prefix: None,
        nexthops: Vec::new(),
        errno: None,
    };
    if body.len() < 12 {
        return r;
    }
    let dst_len = body[1];
    r.kind = RouteType::from_rtm(body[7]);
    r.table = Some(u32::from(body[4]));
    let mut dst = None;
    for (t, v) in nl::attrs(&body[12..]) {
        match t {
            nl::RTA_DST => dst = ip_from(v),
            nl::RTA_OIF => r.dev = u32_of(v).and_then(nl::ifname),
            nl::RTA_GATEWAY => r.gateway = ip_from(v),
            nl::RTA_PREFSRC => r.prefsrc = ip_from(v),
            nl::RTA_TABLE => r.table = u32_of(v),
            nl::RTA_MULTIPATH => r.nexthops = multipath_devs(v),
            _ => {}
        }
    }
    if body[0] as i32 == libc::AF_INET6 || body[0] as i32 == libc::AF_INET {
        let zero = if body[0] as i32 == libc::AF_INET {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        // RTM_F_FIB_MATCH answers carry the entry's own prefix; plain
        // lookups echo the full-length destination, which names no entry.
        let full = if body[0] as i32 == libc::AF_INET {
            32
        } else {
            128
        };
        if dst_len < full || dst.is_none() {
            r.prefix = Some((dst.unwrap_or(zero), dst_len));
        }
    }
    r
}

/// The most specific route of type `rtm_type` containing `dst`, over all
/// tables: (table, prefix). Used when the kernel refused the lookup.
fn covering_route(
    sock: &nl::Socket,
    dst: IpAddr,
    rtm_type: u8,
) -> Result<Option<(u32, Prefix)>, RouteError> {
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    } as u8;
    let mut req = vec![family, 0, 0, 0, 0, 0, 0, 0];
    req.extend_from_slice(&0u32.to_ne_bytes());
    let msgs = sock.request(nl::RTM_GETROUTE, nl::NLM_F_DUMP, &req)?;
    let mut best: Option<(u32, Prefix)> = None;
    for m in msgs.iter().filter(|m| m.ty == nl::RTM_NEWROUTE) {
        let r = parse_route(&m.body);
        if m.body.len() < 12 || m.body[7] != rtm_type {
            continue;
        }
        let (Some(table), Some((net, len))) = (r.table, r.prefix) else {
            continue;
        };
        if contains(net, len, dst) && best.is_none_or(|(_, (_, l))| len > l) {
            best = Some((table, (net, len)));
        }
    }
    Ok(best)
}

fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let (n, a) = (ip_bytes(net), ip_bytes(ip));
    if n.len() != a.len() {
        return false;
    }
    let len = usize::from(len).min(n.len() * 8);
    (0..len).all(|bit| {
        let (byte, shift) = (bit / 8, 7 - bit % 8);
        (n[byte] >> shift) & 1 == (a[byte] >> shift) & 1
    })
}

/// How `rp_filter` judges a packet from `source` that came in on `came_in`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReversePath {
    pub source: IpAddr,
    pub came_in: String,
    /// Where the kernel would send a reply to `source` (the reverse path).
    pub route: Route,
    /// (all, dev, effective = max(all, dev)) for `came_in`.
    pub rp_filter: (i64, i64, i64),
    pub verdict: RpVerdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RpVerdict {
    /// rp_filter is 0: no check.
    Off,
    /// The reverse path leaves through the interface the packet came in on
    /// (strict) or some route back exists (loose).
    Pass,
    /// Strict mode (1) and the reverse path uses another interface.
    FailStrict,
    /// Loose mode (2) and there is no usable route back at all.
    FailLoose,
}

/// Reverse-path validation as `fib_validate_source()` does it for
/// rp_filter: look up the packet's SOURCE as a destination and compare the
/// interface the answer leaves through with `came_in`.
///
/// Strict (1): a nexthop of the route back must be `came_in` (any nexthop
/// of a multipath route counts, as in the kernel). Loose (2): a unicast
/// route back must exist. In both modes a route back that is not unicast
/// (local: the source is one of our own addresses; blackhole...) fails, as
/// the kernel's `res.type != RTN_UNICAST` check does (accept_local ignored).
pub fn reverse_path(ino: u32, source: IpAddr, came_in: &str) -> Result<ReversePath, RouteError> {
    reverse_path_marked(ino, source, came_in, 0)
}

/// [`reverse_path`] for a packet carrying skb mark `mark`: the kernel uses
/// the mark in the reverse lookup only when `src_valid_mark` is set, so do
/// we.
pub fn reverse_path_marked(
    ino: u32,
    source: IpAddr,
    came_in: &str,
    mark: u32,
) -> Result<ReversePath, RouteError> {
    let came_in = came_in.to_string();
    ns::run_in(ino, move || reverse_path_here(source, &came_in, mark))?
}

/// [`reverse_path_marked`] in the calling thread's own network namespace.
pub fn reverse_path_here(
    source: IpAddr,
    came_in: &str,
    mark: u32,
) -> Result<ReversePath, RouteError> {
    let valid_mark = |k: &str| sysctl::read_here(k).is_ok_and(|v| v.trim() != "0");
    let use_mark = mark != 0
        && (valid_mark("net.ipv4.conf.all.src_valid_mark")
            || valid_mark(&sysctl::dev_key("net.ipv4.conf", came_in, "src_valid_mark")));
    let mut flow = Flow::to(source);
    if use_mark {
        flow = flow.mark(mark);
    }
    let route = get_here(&flow)?;
    let rp_filter = sysctl::rp_filter_here(came_in)?;
    let unicast = route.kind == RouteType::Unicast;
    let via_came_in =
        route.dev.as_deref() == Some(came_in) || route.nexthops.iter().any(|d| d == came_in);
    let verdict = match rp_filter.2 {
        0 => RpVerdict::Off,
        1 if !unicast || !via_came_in => RpVerdict::FailStrict,
        2 if !unicast => RpVerdict::FailLoose,
        _ => RpVerdict::Pass,
    };
    Ok(ReversePath {
        source,
        came_in: came_in.to_string(),
        route,
        rp_filter,
        verdict,
    })
}

/// A minimal rtnetlink client over libc sockets: one request, its answers
/// until ACK/DONE, errors as io::Error with the kernel's errno.
pub(crate) mod nl {
    use std::ffi::CString;
    use std::io;

    use crate::state::netlink;

    pub const RTM_NEWLINK: u16 = 16;
    pub const RTM_GETLINK: u16 = 18;
    pub const RTM_NEWROUTE: u16 = 24;
    pub const RTM_GETROUTE: u16 = 26;
    pub const RTM_NEWNEIGH: u16 = 28;
    pub const RTM_GETNEIGH: u16 = 30;
    pub use crate::state::netlink::NLM_F_DUMP;
    pub const RTM_F_LOOKUP_TABLE: u32 = 0x1000;
    pub const RTM_F_FIB_MATCH: u32 = 0x2000;
    pub const RTA_DST: u16 = 1;
    pub const RTA_SRC: u16 = 2;
    pub const RTA_IIF: u16 = 3;
    pub const RTA_OIF: u16 = 4;
    pub const RTA_GATEWAY: u16 = 5;
    pub const RTA_PREFSRC: u16 = 7;
    pub const RTA_TABLE: u16 = 15;
    pub const RTA_MULTIPATH: u16 = 9;
    pub const RTA_MARK: u16 = 16;

    pub use crate::state::netlink::{align, Msg};

    /// A NETLINK_ROUTE socket: requests always ask for an ACK, so a
    /// non-dump request ends at the kernel's answer to it.
    pub struct Socket(netlink::Socket);

    impl Socket {
        /// A NETLINK_ROUTE socket in the calling thread's netns.
        pub fn open() -> io::Result<Socket> {
            Ok(Socket(netlink::Socket::open(libc::NETLINK_ROUTE)?))
        }

        /// Send one request (`flags` adds e.g. NLM_F_DUMP) and collect the
        /// answers. A non-zero NLMSG_ERROR becomes the returned error.
        pub fn request(&self, ty: u16, flags: u16, body: &[u8]) -> io::Result<Vec<Msg>> {
            Ok(self.0.request(ty, netlink::NLM_F_ACK | flags, body)?)
        }
    }

    /// The RTM_NEWLINK bodies (struct ifinfomsg + IFLA_* attributes) of one
    /// link dump of the calling thread's netns. Every interface reader (names
    /// and flags, MTU, MAC and STP, TC hooks) parses what it needs from these
    /// rather than running its own dump; it lives here, below both
    /// `state::link` and `state::addr`, so neither imports the other for it.
    pub fn link_dump_here() -> io::Result<Vec<Vec<u8>>> {
        let req = [0u8; 16]; // struct ifinfomsg, AF_UNSPEC
        let msgs = Socket::open()?.request(RTM_GETLINK, NLM_F_DUMP, &req)?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.ty == RTM_NEWLINK && m.body.len() >= 16)
            .map(|m| m.body)
            .collect())
    }

    pub fn put_attr(b: &mut Vec<u8>, ty: u16, data: &[u8]) {
        netlink::put(b, ty, data);
    }

    /// (type, payload) of each rtattr; nested/byte-order flag bits removed.
    pub fn attrs(b: &[u8]) -> Vec<(u16, &[u8])> {
        netlink::attrs(b).collect()
    }

    /// Interface index by name in the calling thread's netns
    /// (if_nametoindex opens its socket there).
    pub fn ifindex(name: &str) -> Option<u32> {
        let c = CString::new(name).ok()?;
        // SAFETY: NUL-terminated string.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        (i != 0).then_some(i)
    }

    /// Interface name by index in the calling thread's netns.
    pub fn ifname(index: u32) -> Option<String> {
        let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: buffer of IF_NAMESIZE bytes as required.
        let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
        let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        Some(s.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_containment() {
        let net: IpAddr = "198.18.9.0".parse().unwrap();
        assert!(contains(net, 24, "198.18.9.9".parse().unwrap()));
        assert!(!contains(net, 24, "198.18.8.9".parse().unwrap()));
        assert!(contains(net, 0, "10.0.0.1".parse().unwrap()));
        assert!(!contains(net, 24, "fd00::1".parse().unwrap()));
    }

    #[test]
    fn attrs_round_trip() {
        let mut b = Vec::new();
        nl::put_attr(&mut b, nl::RTA_DST, &[198, 18, 2, 2]);
        nl::put_attr(&mut b, nl::RTA_MARK, &7u32.to_ne_bytes());
        nl::put_attr(&mut b, 99, &[1]);
        let a = nl::attrs(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(ip_from(a[0].1), Some("198.18.2.2".parse().unwrap()));
        assert_eq!(u32_of(a[1].1), Some(7));
        assert_eq!(a[2], (99, &[1u8][..]));
    }

    #[test]
    fn errno_names_the_discarding_route() {
        assert_eq!(
            RouteType::from_errno(libc::EINVAL),
            Some(RouteType::Blackhole)
        );
        assert_eq!(
            RouteType::from_errno(libc::EACCES),
            Some(RouteType::Prohibit)
        );
        assert_eq!(RouteType::from_errno(libc::EPERM), None);
    }
}
