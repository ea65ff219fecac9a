//! Issue #12 part 2: every drop is attributed to its network namespace, so
//! `drops --netns N` shows exactly what an unfiltered `drops` puts in N.
//!
//! A catalogue of real drops is caused in the server namespace of a lab
//! pair — socket-layer TCP drops whose skb has lost both its device and its
//! socket (SYN+FIN to a listener, a stray ACK, a SYN-cookie ACK on a full
//! accept queue), a closed TCP and UDP port, a full UDP receive buffer, a
//! bad IP header checksum, a failed neighbour, a qdisc drop — while two
//! captures run side by side: one unfiltered, one with `--netns srv`.
mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use serde_json::Value;

const CLI: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SRV: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// An IPv4/TCP segment cli → srv with the given flags and correct sums.
fn tcp_segment(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    traffic::ipv4_tcp(CLI, SRV, sport, dport, seq, ack, flags)
}

/// A TCP listener on `port` in `ns` with an accept queue of `backlog`,
/// never accepted from (kept open while the value lives).
fn listener(ns: &str, port: u16, backlog: i32) -> OwnedFd {
    traffic::in_netns(ns, move || {
        // SAFETY: plain socket calls on a fresh fd owned below.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let owned = OwnedFd::from_raw_fd(fd);
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as u16;
            sa.sin_port = port.to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len);
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            assert_eq!(libc::listen(fd, backlog), 0);
            Ok(owned)
        }
    })
    .expect("listener")
}

/// Cause every drop of the catalogue in srv. Returns the sockets that must
/// stay open until the captures end.
fn catalogue(lab: &Lab) -> Vec<OwnedFd> {
    let srv = lab.ns("srv").name.clone();
    let cli = lab.ns("cli").name.clone();
    let srv_mac = lab.mac("srv", "eth0").expect("srv mac");
    let mut keep = Vec::new();

    // TCP_FLAGS: SYN+FIN, then a stray ACK, to a listener.
    keep.push(listener(&srv, 8080, 16));
    traffic::packet_send(
        &cli,
        "eth0",
        srv_mac,
        tcp_segment(40001, 8080, 0x03, 7, 0),
        2,
    )
    .expect("syn+fin");
    traffic::packet_send(
        &cli,
        "eth0",
        srv_mac,
        tcp_segment(40002, 8080, 0x10, 7, 9),
        2,
    )
    .expect("stray ack");
    // NO_SOCKET at tcp_v4_rcv: a SYN to a closed port.
    traffic::packet_send(
        &cli,
        "eth0",
        srv_mac,
        tcp_segment(40003, 9999, 0x02, 7, 0),
        2,
    )
    .expect("syn to a closed port");

    // NO_SOCKET at cookie_v4_check: SYN cookies always on, an accept queue
    // of one; the client's handshake ACKs are held back by its own
    // firewall until both connections have their cookie, then the data of
    // each completes one: the second finds the queue full.
    lab.sysctl("srv", "net.ipv4.tcp_syncookies", "2")
        .expect("syncookies");
    keep.push(listener(&srv, 8081, 0));
    lab.nft(
        "cli",
        "table ip nwtest_hold {\n chain out {\n type filter hook output priority 0;\n tcp dport 8081 tcp flags == ack drop\n }\n}\n",
    )
    .expect("hold back ACKs");
    let conns: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            traffic::in_netns(&cli, || {
                std::net::TcpStream::connect_timeout(
                    &SocketAddr::from((SRV, 8081)),
                    Duration::from_secs(2),
                )
                .map_err(|e| netwhy::lab::LabError::Traffic(e.to_string()))
            })
            .expect("connect")
        })
        .collect();
    lab.exec("cli", &["nft", "delete", "table", "ip", "nwtest_hold"])
        .expect("release ACKs");
    for mut c in conns {
        use std::io::Write;
        c.write_all(b"hello").expect("send data");
        std::thread::sleep(Duration::from_millis(100));
    }

    // NO_SOCKET at __udp4_lib_rcv (closed port) and SOCKET_RCVBUFF.
    traffic::udp_send(&cli, SocketAddr::from((SRV, 5300)), 2, b"x").expect("udp closed port");
    let sock = traffic::udp_socket(&srv, SocketAddr::from((SRV, 5301))).expect("udp socket");
    traffic::set_int(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, 1).expect("tiny rcvbuf");
    traffic::udp_send(&cli, SocketAddr::from((SRV, 5301)), 40, &[0u8; 512]).expect("fill rcvbuf");
    keep.push(OwnedFd::from(sock));

    // IP_CSUM: a header checksum that does not add up.
    let mut bad = traffic::ipv4_udp(CLI, SRV, 1, 5302, b"x", false);
    bad[10] ^= 0xff;
    traffic::packet_send(&cli, "eth0", srv_mac, bad, 2).expect("bad ip checksum");

    // NEIGH_FAILED: srv sends to an address nobody answers ARP for, and
    // gives up after one probe.
    for (k, v) in [
        ("net.ipv4.neigh.eth0.ucast_solicit", "1"),
        ("net.ipv4.neigh.eth0.mcast_solicit", "1"),
        ("net.ipv4.neigh.eth0.retrans_time_ms", "100"),
    ] {
        lab.sysctl("srv", k, v).expect("neigh sysctl");
    }
    traffic::udp_send(&srv, SocketAddr::from(([198, 18, 0, 77], 5303)), 1, b"x")
        .expect("udp to a silent neighbour");

    // QDISC_DROP: a tbf that holds one packet, and a burst through it.
    lab.exec(
        "srv",
        &[
            "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "8kbit", "burst", "1540",
            "limit", "1540",
        ],
    )
    .expect("tbf");
    traffic::in_netns(&srv, || {
        let s = UdpSocket::bind("0.0.0.0:0")
            .map_err(|e| netwhy::lab::LabError::Traffic(e.to_string()))?;
        for _ in 0..20 {
            let _ = s.send_to(&[0u8; 1000], SocketAddr::from((CLI, 5304)));
        }
        Ok(())
    })
    .expect("burst");
    // Let the neighbour time out and the queue drain.
    std::thread::sleep(Duration::from_millis(800));
    keep
}

/// (reason, location address, skb) of each drop: the same drop seen by
/// two probes has the same triple.
type Key = (String, String, String);

fn keys<'a>(drops: impl Iterator<Item = &'a Value>) -> BTreeMap<Key, usize> {
    let mut m = BTreeMap::new();
    for d in drops {
        let k = (
            d["reason"].as_str().unwrap_or_default().to_string(),
            d["location"]["address"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            d["skb"].as_str().unwrap_or_default().to_string(),
        );
        *m.entry(k).or_default() += 1;
    }
    m
}

#[test]
fn netns_filter_shows_exactly_what_the_unfiltered_capture_attributes() {
    if !root_or_skip("netns_filter_shows_exactly_what_the_unfiltered_capture_attributes") {
        return;
    }
    let lab = pair();
    // The catalogue is IPv4. With IPv6 on, a fresh veth sends router
    // solicitations and MLD reports on its own timer, and the one that
    // lands between the two captures' start-ups is seen by only one of them.
    for ns in ["cli", "srv"] {
        for k in [
            "net.ipv6.conf.all.disable_ipv6",
            "net.ipv6.conf.default.disable_ipv6",
        ] {
            lab.sysctl(ns, k, "1").expect("disable ipv6");
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let srv = lab.ns("srv").clone();
    let all = start(&[
        "drops",
        "--events",
        "--all",
        "-o",
        "json",
        "--duration",
        "30",
    ]);
    let one = start(&[
        "drops",
        "--events",
        "--all",
        "-o",
        "json",
        "--duration",
        "30",
        "--netns",
        &srv.name,
    ]);
    let keep = catalogue(&lab);
    all.signal(libc::SIGINT);
    one.signal(libc::SIGINT);
    let (st_all, out_all, err_all) = all.finish();
    let (st_one, out_one, err_one) = one.finish();
    drop(keep);
    assert!(st_all.success(), "unfiltered drops failed: {err_all:?}");
    assert!(st_one.success(), "drops --netns failed: {err_one:?}");
    let v_all = json_lines(&out_all);
    let v_one = json_lines(&out_one);
    let drops_all = of_type(&v_all, "drop");
    let drops_one = of_type(&v_one, "drop");

    // No drop anywhere on the machine has an unknown namespace.
    let unknown: Vec<&&Value> = drops_all.iter().filter(|d| d["netns"] == 0).collect();
    assert!(unknown.is_empty(), "drops with no namespace: {unknown:#?}");
    for d in &drops_all {
        assert_ne!(d["netns_source"], "unknown", "{d:#}");
    }

    let in_srv = |d: &&&Value| d["netns"].as_u64() == Some(u64::from(srv.inode));
    let want = keys(drops_all.iter().filter(in_srv).copied());
    let got = keys(drops_one.iter().copied());
    assert!(
        drops_one
            .iter()
            .all(|d| d["netns"].as_u64() == Some(u64::from(srv.inode))),
        "--netns let through another namespace's drops"
    );
    assert_eq!(
        got, want,
        "--netns {} differs from the unfiltered capture's drops in it",
        srv.name
    );

    // Every kind of the catalogue was caused and attributed to srv.
    let seen: Vec<(String, String, String)> = drops_one
        .iter()
        .map(|d| {
            (
                d["reason"].as_str().unwrap_or_default().to_string(),
                d["location"]["symbol"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                d["netns_source"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    eprintln!("drops in srv: {seen:?}");
    let has = |reason: &str, func: &str| seen.iter().any(|(r, f, _)| r == reason && f == func);
    for (reason, func) in [
        ("TCP_FLAGS", "tcp_rcv_state_process"),
        ("NO_SOCKET", "cookie_v4_check"),
        ("NO_SOCKET", "tcp_v4_rcv"),
        ("NO_SOCKET", "__udp4_lib_rcv"),
        ("SOCKET_RCVBUFF", "udp_queue_rcv_one_skb"),
        ("IP_CSUM", "ip_rcv_core"),
        ("NEIGH_FAILED", "neigh_invalidate"),
        ("QDISC_DROP", "__dev_queue_xmit"),
    ] {
        assert!(
            has(reason, func),
            "{reason} at {func} not seen in srv: {seen:?}"
        );
    }
    // The socket-layer drops owe their namespace to kfree_skb's rx_sk.
    assert!(
        seen.iter()
            .any(|(r, f, s)| r == "TCP_FLAGS" && f == "tcp_rcv_state_process" && s == "rx_sk"),
        "TCP_FLAGS not attributed through rx_sk: {seen:?}"
    );
}
