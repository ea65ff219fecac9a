//! A DNS-like UDP exchange through DNAT on a router namespace, for the
//! `netwhy run` tests: healthy, or with the reply coming back from an
//! address conntrack cannot un-NAT (the client's socket then refuses it).
use std::net::UdpSocket;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{traffic, Lab};

/// The client, for `bash -c`: one query to the VIP on a connected UDP
/// socket, then 1 s waiting for the answer (status 124 if none comes).
/// head reads the whole datagram at once (bash's `read` takes one byte per
/// recv, which on UDP throws the rest of the datagram away).
pub const QUERY: &str =
    "exec 3<>/dev/udp/198.18.1.1/53; echo query >&3; timeout 1 head -c 6 <&3 >/dev/null";

/// cli → rtr (DNAT 198.18.1.1:53 → `target`:53) → srv. A `target` other
/// than srv's primary address 198.18.2.2 makes the answer leave from the
/// wrong address.
pub fn dns_lab(target: &str) -> Lab {
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    if target != "198.18.2.2" {
        lab.ip(
            "srv",
            &["addr", "add", &format!("{target}/24"), "dev", "eth0"],
        )
        .unwrap();
    }
    let rules = format!(
        "table ip nwrun_nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 198.18.1.1 udp dport 53 dnat to {target}
  }}
}}
"
    );
    lab.nft("rtr", &rules).unwrap();
    lab
}

/// Answers one query; a socket on 0.0.0.0 answers from the primary address.
pub fn server(lab: &Lab) -> JoinHandle<()> {
    let s: UdpSocket =
        traffic::udp_socket(&lab.ns("srv").name, "0.0.0.0:53".parse().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok((_, from)) = s.recv_from(&mut buf) {
            s.send_to(b"answer\n", from).unwrap();
            // Keep the socket open until the report names its owner.
            std::thread::sleep(Duration::from_millis(800));
        }
    })
}
