//! Issue #15, "reasons with thin evidence": the variants the lab scenarios
//! do not cover, where the same drop reason must lead to another diagnosis
//! because the packet or the live state differs. Each runs the real
//! `explain` over a pair of lab namespaces and hand-made frames.
mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Runs `explain` on the lab's namespaces while `send` runs; returns the
/// finding whose reason is `reason` in the namespace of role `role`.
fn explain_during(lab: &Lab, reason: &str, role: &str, send: impl FnOnce()) -> Value {
    let mut args = vec!["explain", "-o", "json", "--duration", "9"];
    for ns in &lab.nss {
        args.extend(["--netns", ns.name.as_str()]);
    }
    let r = start(&args);
    send();
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    assert!(st.success(), "explain failed: {err:?}");
    let v = json_lines(&out);
    of_type(&v, "finding")
        .into_iter()
        .find(|f| f["reason"] == reason && f["netns"] == lab.ns(role).inode)
        .cloned()
        .unwrap_or_else(|| panic!("no {reason} finding in {role}: {out}"))
}

fn subject<'a>(f: &'a Value, kind: &str) -> Option<&'a Value> {
    f["subjects"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["kind"] == kind))
}

const CLI: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SRV: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// A bare ACK at a listener is not a crafted segment: it belongs to a
/// connection the server does not have, and the fix is about that.
#[test]
fn bare_ack_at_a_listener_is_a_lost_connection() {
    if !root_or_skip("bare_ack_at_a_listener_is_a_lost_connection") {
        return;
    }
    let lab = pair();
    let listener = traffic::in_netns(&lab.ns("srv").name, || {
        TcpListener::bind((SRV, 8090)).map_err(|e| netwhy::lab::LabError::Traffic(e.to_string()))
    })
    .expect("listen");
    let mac = lab.mac("srv", "eth0").expect("srv MAC");
    let f = explain_during(&lab, "TCP_FLAGS", "srv", || {
        let ack = traffic::ipv4_tcp(CLI, SRV, 41010, 8090, 7, 99, 0x10);
        traffic::packet_send(&lab.ns("cli").name, "eth0", mac, ack, 3).expect("send");
        std::thread::sleep(Duration::from_millis(300));
    });
    drop(listener);
    assert_eq!(f["cause"], "tcp-ack-to-listener", "{f:#}");
    let seg = subject(&f, "tcp_segment").unwrap_or_else(|| panic!("{f:#}"));
    assert_eq!(seg["flags"], "A", "{f:#}");
    assert_eq!(seg["socket"], "LISTEN", "{f:#}");
    assert_eq!(seg["src"], "198.18.0.1:41010", "{f:#}");
}

/// A frame to another MAC whose IP is not ours either is someone else's
/// frame: no neighbour entry is blamed, the generic (harmless) entry stays.
#[test]
fn frame_for_another_host_blames_no_neighbour() {
    if !root_or_skip("frame_for_another_host_blames_no_neighbour") {
        return;
    }
    let lab = pair();
    let f = explain_during(&lab, "OTHERHOST", "srv", || {
        let p = traffic::ipv4_udp(CLI, Ipv4Addr::new(198, 18, 0, 77), 41011, 5310, b"x", false);
        let other = [0x02, 0x4e, 0x57, 0, 0, 0x77];
        traffic::packet_send(&lab.ns("cli").name, "eth0", other, p, 3).expect("send");
        std::thread::sleep(Duration::from_millis(200));
    });
    assert_eq!(f["cause"], "other-host", "{f:#}");
    assert!(subject(&f, "wrong_neighbour").is_none(), "{f:#}");
    let ev = f["evidence"].to_string();
    assert!(ev.contains("02:4e:57:00:00:77"), "the frame's MAC: {f:#}");
    assert!(ev.contains("not an address of this namespace"), "{f:#}");
}

/// With forwarding on, the kernel reports a martian destination as
/// IP_INNOROUTES: still a martian, not a missing route.
#[test]
fn martian_with_forwarding_on_is_not_a_missing_route() {
    if !root_or_skip("martian_with_forwarding_on_is_not_a_missing_route") {
        return;
    }
    let lab = pair();
    lab.sysctl("srv", "net.ipv4.ip_forward", "1")
        .expect("forwarding on");
    let mac = lab.mac("srv", "eth0").expect("srv MAC");
    let f = explain_during(&lab, "IP_INNOROUTES", "srv", || {
        let p = traffic::ipv4_udp(CLI, Ipv4Addr::new(0, 0, 0, 7), 41012, 5311, b"x", false);
        traffic::packet_send(&lab.ns("cli").name, "eth0", mac, p, 3).expect("send");
        std::thread::sleep(Duration::from_millis(200));
    });
    assert_eq!(f["cause"], "martian-destination", "{f:#}");
    let m = subject(&f, "martian").unwrap_or_else(|| panic!("{f:#}"));
    assert_eq!(m["addr"], "0.0.0.7");
    assert_eq!(m["class"], "0.0.0.0/8");
}

/// A FIN to a closed port is NO_SOCKET like a SYN, but no connection
/// attempt: the evidence says the peer still sends on a lost connection.
#[test]
fn fin_to_a_closed_port_is_named_a_stray_segment() {
    if !root_or_skip("fin_to_a_closed_port_is_named_a_stray_segment") {
        return;
    }
    let lab = pair();
    let mac = lab.mac("srv", "eth0").expect("srv MAC");
    let f = explain_during(&lab, "NO_SOCKET", "srv", || {
        let fin = traffic::ipv4_tcp(CLI, SRV, 41013, 9091, 7, 99, 0x11);
        traffic::packet_send(&lab.ns("cli").name, "eth0", mac, fin, 3).expect("send");
        std::thread::sleep(Duration::from_millis(200));
    });
    assert_eq!(f["cause"], "no-socket-tcp", "{f:#}");
    assert!(
        f["evidence"]
            .to_string()
            .contains("segment flags [FA]: no connection attempt"),
        "{f:#}"
    );
}
