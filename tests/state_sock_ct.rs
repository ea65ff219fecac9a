//! Live socket and conntrack state read through netlink inside lab
//! namespaces, against the real kernel (root; skipped otherwise unless CI).
mod common;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use common::*;
use netwhy::state::conntrack::{self, status, Tuple};
use netwhy::state::sockets::{self, Proto};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A TCP listener with an explicit backlog, created inside netns `ns`.
fn tcp_listen(ns: &str, addr: SocketAddr, backlog: i32) -> TcpListener {
    traffic::in_netns(ns, move || {
        // SAFETY: plain socket calls on a fresh fd that is owned right after.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0);
            let l = TcpListener::from_raw_fd(fd);
            let IpAddr::V4(ip) = addr.ip() else {
                panic!("v4 only")
            };
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: addr.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip.octets()),
                },
                sin_zero: [0; 8],
            };
            let rc = libc::bind(
                l.as_raw_fd(),
                (&sin as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            assert_eq!(libc::listen(l.as_raw_fd(), backlog), 0);
            Ok(l)
        }
    })
    .unwrap()
}

#[test]
fn udp_listener_found_with_rcvbuf_and_owner() {
    if !root_or_skip("udp_listener_found_with_rcvbuf_and_owner") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    let srv = lab.ns("srv").clone();
    let s = traffic::udp_socket(&srv.name, sa("198.18.0.2:5300")).unwrap();
    traffic::udp_send(&lab.ns("cli").name, sa("198.18.0.2:5300"), 3, b"hello").unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let found = sockets::listeners_on(srv.inode, Proto::Udp, 5300).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f.local, sa("198.18.0.2:5300"));
    assert_eq!(f.state_name(), "UNCONN");
    let mem = f.mem.expect("SKMEMINFO");
    assert!(mem.rcvbuf > 0, "{f}");
    assert!(
        mem.rmem_alloc > 0 && f.rqueue > 0,
        "3 datagrams queued: {f}"
    );
    assert_eq!(
        f.owner.as_ref().map(|o| o.pid),
        Some(std::process::id()),
        "{f}"
    );

    // The kernel's choice for a datagram to it, and for one to elsewhere.
    let hit = sockets::socket_for(
        srv.inode,
        Proto::Udp,
        sa("198.18.0.2:5300"),
        sa("198.18.0.1:40000"),
    )
    .unwrap()
    .expect("bound socket");
    assert_eq!(hit.inode, f.inode);
    assert!(sockets::socket_for(
        srv.inode,
        Proto::Udp,
        sa("127.0.0.1:5300"),
        sa("127.0.0.1:1")
    )
    .unwrap()
    .is_none());
    // Bound to one address only: a datagram to another finds NO_SOCKET.
    let why = sockets::explain_no_socket(srv.inode, Proto::Udp, sa("127.0.0.1:5300"))
        .unwrap()
        .expect("explained");
    assert!(why.contains("only on 198.18.0.2:5300"), "{why}");
    assert_eq!(
        sockets::explain_no_socket(srv.inode, Proto::Udp, sa("198.18.0.2:5300")).unwrap(),
        None
    );
    drop(s);
}

#[test]
fn loopback_only_udp_explains_no_socket() {
    if !root_or_skip("loopback_only_udp_explains_no_socket") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    let srv = lab.ns("srv").clone();
    let _s = traffic::udp_socket(&srv.name, sa("127.0.0.1:5302")).unwrap();
    let why = sockets::explain_no_socket(srv.inode, Proto::Udp, sa("198.18.0.2:5302"))
        .unwrap()
        .expect("explained");
    assert!(why.contains("127.0.0.1:5302"), "{why}");
}

#[test]
fn tcp_listener_shows_backlog_and_closed_port_is_empty() {
    if !root_or_skip("tcp_listener_shows_backlog_and_closed_port_is_empty") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    let srv = lab.ns("srv").clone();
    let _l = tcp_listen(&srv.name, sa("198.18.0.2:5300"), 4);

    let found = sockets::listeners_on(srv.inode, Proto::Tcp, 5300).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].state_name(), "LISTEN");
    assert_eq!(found[0].accept_queue(), Some((0, 4)), "{}", found[0]);

    // One connection that nobody accepts sits in the accept queue.
    assert_eq!(
        traffic::tcp_connect(
            &lab.ns("cli").name,
            sa("198.18.0.2:5300"),
            Duration::from_secs(2)
        )
        .unwrap(),
        traffic::Connect::Connected
    );
    let found = sockets::listeners_on(srv.inode, Proto::Tcp, 5300).unwrap();
    assert_eq!(found[0].accept_queue(), Some((1, 4)), "{}", found[0]);

    assert!(sockets::listeners_on(srv.inode, Proto::Tcp, 5301)
        .unwrap()
        .is_empty());
    assert!(sockets::listeners_on(srv.inode, Proto::Udp, 5301)
        .unwrap()
        .is_empty());
    assert_eq!(
        sockets::explain_no_socket(srv.inode, Proto::Udp, sa("198.18.0.2:5301")).unwrap(),
        None
    );
}

#[test]
fn dnat_entry_on_router_and_mismatched_reply() {
    if !root_or_skip("dnat_entry_on_router_and_mismatched_reply") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    lab.nft(
        "rtr",
        "table ip nat {\n chain pre {\n type nat hook prerouting priority dstnat; policy accept;\n udp dport 53 dnat to 198.18.2.2\n }\n}\n",
    )
    .unwrap();
    let rtr = lab.ns("rtr").inode;
    let _srv = traffic::udp_socket(&lab.ns("srv").name, sa("198.18.2.2:53")).unwrap();
    traffic::udp_send(&lab.ns("cli").name, sa("198.18.1.1:53"), 1, b"query").unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let cli: IpAddr = "198.18.1.2".parse().unwrap();
    let all = conntrack::entries_touching(rtr, 17, "198.18.1.1".parse().unwrap(), 53).unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    let e = &all[0];
    assert!(e.has(status::DST_NAT), "{e}");
    assert!(e.flags().contains(&"DST_NAT"));
    assert_eq!(e.orig.src, cli);
    assert_eq!(e.orig.dst, "198.18.1.1".parse::<IpAddr>().unwrap());
    assert_eq!(
        (e.reply.src, e.reply.sport),
        ("198.18.2.2".parse().unwrap(), 53)
    );
    assert_eq!((e.reply.dst, e.reply.dport), (cli, e.orig.sport));
    assert!(e.timeout > 0);

    // Found by the flow in either direction.
    assert_eq!(conntrack::entries_for(rtr, e.orig).unwrap().len(), 1);
    assert_eq!(
        conntrack::entries_for(rtr, e.reply.reversed())
            .unwrap()
            .len(),
        1
    );

    // The reply the entry expects matches; one from elsewhere does not.
    assert_eq!(conntrack::explain_nat_mismatch(e, &e.reply), None);
    let stray = Tuple::new(17, "198.18.2.9".parse().unwrap(), 53, cli, e.orig.sport);
    let why = conntrack::explain_nat_mismatch(e, &stray).unwrap();
    assert!(
        why.contains("198.18.2.2:53") && why.contains("198.18.2.9:53"),
        "{why}"
    );
    assert!(
        why.contains("not the DNAT target") && why.contains("NO_SOCKET"),
        "{why}"
    );

    let (count, max) = conntrack::count_and_max(rtr).unwrap();
    assert!(count >= 1 && max > 0, "{count}/{max}");
}

#[test]
fn empty_conntrack_in_fresh_namespace() {
    if !root_or_skip("empty_conntrack_in_fresh_namespace") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.pair().unwrap();
    assert!(conntrack::dump_in(lab.ns("cli").inode).unwrap().is_empty());
}
