//! Strict reverse-path filtering (rp_filter = 1) on an interface whose
//! routes are asymmetric: the kernel drops a packet arriving on X when the
//! route back to its source leaves by another interface (IP_RPFILTER,
//! "martian source"), so legitimate traffic vanishes on multi-homed hosts.
//!
//! Effective mode = max(conf.all, conf.DEV). The heuristic, IPv4 only:
//! 1. a unicast route out of Y lies inside a subnet that is connected on
//!    X (a more specific route steals part of X's subnet): those hosts'
//!    packets arriving on X fail;
//! 2. X has a default route (in any table) but the main table's preferred
//!    default leaves by Y: packets from off-link sources arriving on X
//!    (policy routing, a second uplink) fail.
//!
//! Either is reported for X with the route lines as evidence.
use std::net::IpAddr;

use super::{Finding, NsState, Severity};
use crate::state::addr::{prefix_contains, RouteEntry, RTN_UNICAST, RT_TABLE_LOCAL, RT_TABLE_MAIN};
use crate::state::sysctl::dev_key;

pub const ID: &str = "rp-filter-asymmetric";

/// `dst/len [via gw] dev X[,Y] [table T] [metric M]`, as `ip route` shows.
pub fn route_text(st: &NsState, r: &RouteEntry) -> String {
    let mut s = if r.is_default() {
        "default".to_string()
    } else {
        format!("{}/{}", r.dst, r.dst_len)
    };
    if let Some(g) = r.gateway {
        s += &format!(" via {g}");
    }
    let devs: Vec<String> = r.oifs.iter().map(|&i| st.dev(i)).collect();
    s += &format!(" dev {}", devs.join(","));
    if r.table != RT_TABLE_MAIN {
        s += &format!(" table {}", r.table);
    }
    if r.metric != 0 {
        s += &format!(" metric {}", r.metric);
    }
    s
}

/// `ip` masked to its first `len` bits.
pub fn network(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn usable(r: &RouteEntry) -> bool {
    r.table != RT_TABLE_LOCAL && r.rtype == RTN_UNICAST && !r.oifs.is_empty()
}

/// Why routing is asymmetric for packets arriving on interface `index`.
pub fn asymmetries(st: &NsState, index: u32) -> Vec<String> {
    let me = st.dev(index);
    let mut why = Vec::new();
    for a in st
        .addrs
        .iter()
        .filter(|a| a.index == index && a.addr.is_ipv4())
    {
        if a.prefix_len >= 32 {
            continue;
        }
        let net = network(a.addr, a.prefix_len);
        for r in st.routes4.iter().filter(|r| usable(r)) {
            if r.dst_len > a.prefix_len
                && prefix_contains(net, a.prefix_len, r.dst)
                && !r.oifs.contains(&index)
            {
                let other = st.dev(r.oifs[0]);
                why.push(format!(
                    "route {} lies inside {net}/{} connected on {me}: replies to those hosts \
                     leave by {other}, so their packets arriving on {me} fail the strict check",
                    route_text(st, r),
                    a.prefix_len
                ));
            }
        }
    }
    let best_main = st
        .routes4
        .iter()
        .filter(|r| usable(r) && r.is_default() && r.table == RT_TABLE_MAIN)
        .min_by_key(|r| r.metric);
    if let Some(best) = best_main.filter(|b| !b.oifs.contains(&index)) {
        for r in st
            .routes4
            .iter()
            .filter(|r| usable(r) && r.is_default() && r.oifs.contains(&index))
        {
            why.push(format!(
                "{me} has a default route ({}) but the reverse path for an off-link source is \
                 the main table's preferred default ({}): packets from off-link sources \
                 arriving on {me} fail the strict check",
                route_text(st, r),
                route_text(st, best)
            ));
        }
    }
    why
}

pub fn check(st: &NsState) -> Vec<Finding> {
    let all = st.sysctl.rp_filter_all.unwrap_or(0);
    let mut out = Vec::new();
    for l in st.links.iter().filter(|l| !l.loopback && l.up) {
        let dev = st.sysctl.rp_filter.get(&l.name).copied().unwrap_or(0);
        if all.max(dev) != 1 {
            continue;
        }
        let why = asymmetries(st, l.index);
        if why.is_empty() {
            continue;
        }
        let key = dev_key("net.ipv4.conf", &l.name, "rp_filter");
        let mut f = Finding::new(st, ID, Severity::Warning, l.name.clone()).seen(format!(
            "rp_filter on {}: all = {all}, {} = {dev}, effective max(all, dev) = 1 (strict)",
            l.name, l.name
        ));
        f.evidence.extend(why);
        f = f.seen(
            "the kernel drops such packets as IP_RPFILTER (\"martian source\" with \
             log_martians); `netwhy drops --reason IP_RPFILTER` shows them",
        );
        if all == 1 {
            f = f
                .fix(st.cmd("sysctl -w net.ipv4.conf.all.rp_filter=0"))
                .fix("# conf.all = 1 forces strict on every interface: set the mode per interface instead");
        }
        f = f
            .fix(st.cmd(&format!("sysctl -w {key}=2")))
            .fix("# 2 = loose: any route back to the source will do (RFC 3704 for multi-homed hosts)")
            .fix("# or make routing symmetric (policy routing per uplink: ip rule add from <addr> table <n>)");
        out.push(f);
    }
    out
}

#[cfg(test)]
// Fixtures are built field by field from an empty namespace state.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::state::addr::{Addr, Link};

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            lower_up: true,
            loopback: name == "lo",
        }
    }

    fn addr(index: u32, a: &str, len: u8) -> Addr {
        Addr {
            index,
            addr: a.parse().unwrap(),
            prefix_len: len,
            flags: 0x80,
            scope: 0,
            created_cs: None,
        }
    }

    fn route(
        dst: &str,
        len: u8,
        oif: u32,
        gw: Option<&str>,
        table: u32,
        metric: u32,
    ) -> RouteEntry {
        RouteEntry {
            table,
            rtype: if table == RT_TABLE_LOCAL {
                2
            } else {
                RTN_UNICAST
            },
            dst: dst.parse().unwrap(),
            dst_len: len,
            oifs: vec![oif],
            gateway: gw.map(|g| g.parse().unwrap()),
            metric,
        }
    }

    fn two_legs() -> NsState {
        let mut st = NsState::default();
        st.target.exec_prefix = Some("ip netns exec h".into());
        st.links = vec![link(1, "lo"), link(2, "eth0"), link(3, "eth1")];
        st.addrs = vec![addr(2, "198.18.0.2", 24), addr(3, "198.18.1.2", 24)];
        st.routes4 = vec![
            route("198.18.0.0", 24, 2, None, 254, 0),
            route("198.18.1.0", 24, 3, None, 254, 0),
            route("198.18.0.2", 32, 2, None, 255, 0),
        ];
        st.sysctl.rp_filter_all = Some(0);
        st.sysctl.rp_filter.insert("eth0".into(), 1);
        st.sysctl.rp_filter.insert("eth1".into(), 1);
        st
    }

    #[test]
    fn symmetric_routes_are_fine() {
        assert!(check(&two_legs()).is_empty());
    }

    #[test]
    fn a_more_specific_route_out_of_another_interface_is_reported() {
        let mut st = two_legs();
        st.routes4
            .push(route("198.18.0.128", 25, 3, Some("198.18.1.1"), 254, 0));
        let f = check(&st);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].subject, "eth0");
        assert_eq!(f[0].check, ID);
        assert!(f[0].evidence[1].starts_with(
            "route 198.18.0.128/25 via 198.18.1.1 dev eth1 lies inside 198.18.0.0/24"
        ));
        assert!(f[0]
            .fix
            .contains(&"ip netns exec h sysctl -w net.ipv4.conf.eth0.rp_filter=2".to_string()));
        // Loose mode on eth0 silences it.
        st.sysctl.rp_filter.insert("eth0".into(), 2);
        assert!(check(&st).is_empty());
        // ...unless conf.all forces strict.
        st.sysctl.rp_filter_all = Some(1);
        st.sysctl.rp_filter.insert("eth0".into(), 0);
        let f = check(&st);
        assert_eq!(f.len(), 1);
        assert!(f[0].fix[0].ends_with("net.ipv4.conf.all.rp_filter=0"));
    }

    #[test]
    fn a_second_default_route_is_reported() {
        let mut st = two_legs();
        st.routes4
            .push(route("0.0.0.0", 0, 2, Some("198.18.0.1"), 254, 100));
        st.routes4
            .push(route("0.0.0.0", 0, 3, Some("198.18.1.1"), 254, 200));
        let f = check(&st);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].subject, "eth1");
        assert!(f[0].evidence[1].contains("default via 198.18.0.1 dev eth0 metric 100"));
    }

    #[test]
    fn networks_mask() {
        assert_eq!(
            network("198.18.0.77".parse().unwrap(), 24),
            "198.18.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            network("fd00::1".parse().unwrap(), 0),
            "::".parse::<IpAddr>().unwrap()
        );
    }
}
