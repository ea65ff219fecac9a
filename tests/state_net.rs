//! Live-state collectors against the real kernel, inside lab namespaces
//! (removed by `Lab`'s drop even when an assertion fails).
mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use netwhy::state::counters::Counters;
use netwhy::state::neigh::NudState;
use netwhy::state::route::{self, Flow, RouteType, RpVerdict};
use netwhy::state::{counters, neigh, sysctl};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn route_get_forwarded_flow_leaves_router_on_eth1() {
    if !root_or_skip("route_get_forwarded_flow_leaves_router_on_eth1") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    let rtr = lab.ns("rtr").inode;

    let out = route::get(rtr, &Flow::to(ip("198.18.2.2"))).unwrap();
    assert_eq!(out.kind, RouteType::Unicast, "{out:?}");
    assert_eq!(out.dev.as_deref(), Some("eth1"), "{out:?}");
    assert_eq!(out.table, Some(254), "main table: {out:?}");
    assert_eq!(out.prefsrc, Some(ip("198.18.2.1")), "{out:?}");
    assert_eq!(out.prefix, Some((ip("198.18.2.0"), 24)), "{out:?}");

    // As a forwarded packet from the client would be routed.
    let fwd = route::get(
        rtr,
        &Flow::to(ip("198.18.2.2"))
            .from(ip("198.18.1.2"))
            .iif("eth0"),
    )
    .unwrap();
    assert_eq!(fwd.kind, RouteType::Unicast, "{fwd:?}");
    assert_eq!(fwd.dev.as_deref(), Some("eth1"), "{fwd:?}");

    // The client reaches it through its default gateway.
    let cli = route::get(lab.ns("cli").inode, &Flow::to(ip("198.18.2.2"))).unwrap();
    assert_eq!(cli.gateway, Some(ip("198.18.1.1")), "{cli:?}");
    assert_eq!(cli.dev.as_deref(), Some("eth0"), "{cli:?}");
    assert_eq!(cli.prefix, Some((ip("0.0.0.0"), 0)), "{cli:?}");
}

#[test]
fn route_get_blackhole_unreachable_prohibit() {
    if !root_or_skip("route_get_blackhole_unreachable_prohibit") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    lab.ip("rtr", &["route", "add", "blackhole", "198.18.9.0/24"])
        .unwrap();
    lab.ip("rtr", &["route", "add", "unreachable", "198.18.10.0/24"])
        .unwrap();
    lab.ip(
        "rtr",
        &["route", "add", "prohibit", "198.18.11.0/24", "table", "100"],
    )
    .unwrap();
    lab.ip(
        "rtr",
        &["rule", "add", "to", "198.18.11.0/24", "table", "100"],
    )
    .unwrap();
    let rtr = lab.ns("rtr").inode;

    let bh = route::get(rtr, &Flow::to(ip("198.18.9.9"))).unwrap();
    assert_eq!(bh.kind, RouteType::Blackhole, "{bh:?}");
    assert_eq!(bh.prefix, Some((ip("198.18.9.0"), 24)), "{bh:?}");
    assert_eq!(bh.table, Some(254), "{bh:?}");
    assert!(bh.kind.discards());

    // Forwarded into the blackhole: the input path refuses it the same way.
    let fwd = route::get(
        rtr,
        &Flow::to(ip("198.18.9.9"))
            .from(ip("198.18.1.2"))
            .iif("eth0"),
    )
    .unwrap();
    assert_eq!(fwd.kind, RouteType::Blackhole, "{fwd:?}");

    let un = route::get(rtr, &Flow::to(ip("198.18.10.1"))).unwrap();
    assert_eq!(un.kind, RouteType::Unreachable, "{un:?}");
    let pr = route::get(rtr, &Flow::to(ip("198.18.11.1"))).unwrap();
    assert_eq!(pr.kind, RouteType::Prohibit, "{pr:?}");
    assert_eq!(pr.table, Some(100), "{pr:?}");

    // No default route on the router: nothing covers 203.0.113.1.
    let none = route::get(rtr, &Flow::to(ip("203.0.113.1"))).unwrap();
    assert_eq!(none.kind, RouteType::NoRoute, "{none:?}");

    // Local addresses route as local.
    let local = route::get(rtr, &Flow::to(ip("198.18.2.1"))).unwrap();
    assert_eq!(local.kind, RouteType::Local, "{local:?}");
    assert_eq!(local.table, Some(255), "{local:?}");
}

#[test]
fn rp_filter_effective_is_max_of_all_and_dev() {
    if !root_or_skip("rp_filter_effective_is_max_of_all_and_dev") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    lab.sysctl("rtr", "net.ipv4.conf.all.rp_filter", "1")
        .unwrap();
    lab.sysctl("rtr", "net.ipv4.conf.eth0.rp_filter", "0")
        .unwrap();
    let rtr = lab.ns("rtr").inode;
    assert_eq!(sysctl::rp_filter_effective(rtr, "eth0").unwrap(), (1, 0, 1));
    assert_eq!(
        sysctl::read(rtr, "net.ipv4.conf.eth0.rp_filter").unwrap(),
        "0"
    );
    lab.sysctl("rtr", "net.ipv4.conf.eth0.rp_filter", "2")
        .unwrap();
    assert_eq!(sysctl::rp_filter_effective(rtr, "eth0").unwrap(), (1, 2, 2));

    let snap = sysctl::snapshot(rtr).unwrap();
    assert_eq!(snap.ip_forward, Some(1), "{snap:?}");
    assert_eq!(snap.rp_filter_all, Some(1));
    assert_eq!(snap.rp_filter.get("eth0"), Some(&2));
    assert!(snap.rp_filter.contains_key("eth1"));
    assert!(snap.accept_dad.contains_key("eth1"));
    assert!(snap.rmem_default.is_some() && snap.somaxconn.is_some());
    // The client's namespace has its own value.
    assert_eq!(
        sysctl::read(lab.ns("cli").inode, "net.ipv4.ip_forward").unwrap(),
        "0"
    );
    assert!(sysctl::read(rtr, "net.ipv4.conf.nosuchdev.rp_filter").is_err());
}

#[test]
fn reverse_path_points_to_the_other_interface() {
    if !root_or_skip("reverse_path_points_to_the_other_interface") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    lab.sysctl("rtr", "net.ipv4.conf.all.rp_filter", "1")
        .unwrap();
    let rtr = lab.ns("rtr").inode;

    // A packet claiming the server's source but arriving from the client's
    // side: the way back to 198.18.2.2 is eth1, not eth0.
    let rp = route::reverse_path(rtr, ip("198.18.2.2"), "eth0").unwrap();
    assert_eq!(rp.route.dev.as_deref(), Some("eth1"), "{rp:?}");
    assert_eq!(rp.came_in, "eth0");
    assert_eq!(rp.rp_filter.2, 1);
    assert_eq!(rp.verdict, RpVerdict::FailStrict, "{rp:?}");

    // The genuine client source passes.
    let ok = route::reverse_path(rtr, ip("198.18.1.2"), "eth0").unwrap();
    assert_eq!(ok.verdict, RpVerdict::Pass, "{ok:?}");

    // A source that is one of the router's own addresses is martian.
    let own = route::reverse_path(rtr, ip("198.18.2.1"), "eth0").unwrap();
    assert_eq!(own.route.kind, RouteType::Local, "{own:?}");
    assert_eq!(own.verdict, RpVerdict::FailStrict, "{own:?}");

    // Multipath: any nexthop on the incoming interface passes strict mode.
    lab.ip(
        "rtr",
        &[
            "route",
            "add",
            "198.18.50.0/24",
            "nexthop",
            "via",
            "198.18.1.2",
            "dev",
            "eth0",
            "nexthop",
            "via",
            "198.18.2.2",
            "dev",
            "eth1",
        ],
    )
    .unwrap();
    for dev in ["eth0", "eth1"] {
        let mp = route::reverse_path(rtr, ip("198.18.50.1"), dev).unwrap();
        assert_eq!(mp.route.nexthops, ["eth0", "eth1"], "{mp:?}");
        assert_eq!(mp.verdict, RpVerdict::Pass, "{dev}: {mp:?}");
    }

    // Loose mode only needs some route back.
    lab.sysctl("rtr", "net.ipv4.conf.all.rp_filter", "2")
        .unwrap();
    let loose = route::reverse_path(rtr, ip("198.18.2.2"), "eth0").unwrap();
    assert_eq!(loose.verdict, RpVerdict::Pass, "{loose:?}");
    let unroutable = route::reverse_path(rtr, ip("203.0.113.7"), "eth0").unwrap();
    assert_eq!(unroutable.verdict, RpVerdict::FailLoose, "{unroutable:?}");
}

#[test]
fn neighbour_of_unused_address_is_unresolved() {
    if !root_or_skip("neighbour_of_unused_address_is_unresolved") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    let cli_name = lab.ns("cli").name.clone();
    let cli = lab.ns("cli").inode;
    let ghost = ip("198.18.0.77");
    // Nobody has .77: ARP goes unanswered.
    traffic::udp_send(&cli_name, SocketAddr::new(ghost, 9), 1, b"x").unwrap();
    let n = neigh::lookup(cli, "eth0", ghost)
        .unwrap()
        .expect("an entry is created by the resolution attempt");
    assert!(n.state.unresolved(), "{} {n:?}", n.state);
    assert_eq!(n.lladdr, None);

    // After the probes run out (3 × 1 s) the entry is FAILED.
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let n = neigh::lookup(cli, "eth0", ghost).unwrap();
        if let Some(n) = n.filter(|n| n.state.has(NudState::FAILED)) {
            break Some(n);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(failed.is_some(), "never reached FAILED");

    // The real peer resolves and has a link-layer address.
    let srv = ip("198.18.0.2");
    traffic::udp_send(&cli_name, SocketAddr::new(srv, 9), 1, b"x").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let peer = loop {
        let n = neigh::lookup(cli, "eth0", srv).unwrap();
        if let Some(n) = n.filter(|n| n.lladdr.is_some() && !n.state.unresolved()) {
            break n;
        }
        assert!(Instant::now() < deadline, "peer never resolved");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mac = lab.mac("srv", "eth0").unwrap();
    assert_eq!(peer.lladdr.as_deref(), Some(&mac[..]));
    assert_eq!(neigh::lookup(cli, "eth0", ip("198.18.0.99")).unwrap(), None);
}

#[test]
fn counters_delta_shows_udp_noports() {
    if !root_or_skip("counters_delta_shows_udp_noports") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    let srv = lab.ns("srv").inode;
    let before = counters::read_all(srv).unwrap();
    traffic::udp_send(
        &lab.ns("cli").name,
        "198.18.0.2:9".parse().unwrap(),
        3,
        b"nobody listens",
    )
    .unwrap();
    // Delivery over the veth is asynchronous (backlog softirq).
    let deadline = Instant::now() + Duration::from_secs(5);
    let d = loop {
        let after = counters::read_all(srv).unwrap();
        let d = Counters::delta(&before, &after);
        if Counters::moved(&d, "Udp:NoPorts") >= 3 || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(Counters::moved(&d, "Udp:NoPorts"), 3, "{d:?}");
    assert!(Counters::moved(&d, "dev:eth0:rx_packets") >= 3, "{d:?}");
    // The counters are the server namespace's own: the host did not move.
    assert_eq!(before.get("dev:eth1:rx_packets"), None);
}

/// The verdict agrees with the kernel: a spoofed source that strict
/// rp_filter refuses moves TcpExt:IPReversePathFilter on the router.
#[test]
fn reverse_path_verdict_matches_kernel_counter() {
    if !root_or_skip("reverse_path_verdict_matches_kernel_counter") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    lab.sysctl("rtr", "net.ipv4.conf.all.rp_filter", "1")
        .unwrap();
    let rtr = lab.ns("rtr").inode;
    let mac = lab.mac("rtr", "eth0").unwrap();
    let cli = lab.ns("cli").name.clone();
    for (src, fails) in [("198.18.2.2", true), ("198.18.1.2", false)] {
        let verdict = route::reverse_path(rtr, ip(src), "eth0").unwrap().verdict;
        assert_eq!(
            verdict == RpVerdict::FailStrict,
            fails,
            "{src}: {verdict:?}"
        );
        let before = counters::read_all(rtr).unwrap();
        let pkt = traffic::ipv4_udp(
            src.parse().unwrap(),
            "198.18.1.1".parse().unwrap(),
            4000,
            9,
            b"rpf",
            false,
        );
        traffic::packet_send(&cli, "eth0", mac, pkt, 2).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        let moved = loop {
            let d = Counters::delta(&before, &counters::read_all(rtr).unwrap());
            let m = Counters::moved(&d, "TcpExt:IPReversePathFilter");
            let seen = Counters::moved(&d, "dev:eth0:rx_packets") >= 2;
            if (seen && m >= 2) || Instant::now() > deadline {
                break m;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(moved, if fails { 2 } else { 0 }, "{src}");
    }
}
