//! `ct state invalid drop` meets packets whose L4 checksum is really wrong,
//! over TCP and IPv6 (the IPv4 UDP case is `firewall-checksum`). The
//! packets are built by hand and sent through a packet socket, so the
//! checksum on the wire is the bad one (a socket's packet on a veth would
//! carry a pending-offload checksum, which is not an error).
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic::{self, csum16};
use crate::lab::{Lab, LabError};

/// Which packet carries the bad checksum.
pub struct CtInvalidChecksum {
    pub v6: bool,
    pub tcp: bool,
}

pub const RULESET: &str = "table inet nwlab_filter {
  chain input {
    type filter hook input priority filter; policy accept;
    ct state invalid counter drop comment \"netwhy lab: drop invalid\"
  }
}
";

const PORT: u16 = 5306;
const SRC6: &str = "fd00:18::1";
const DST6: &str = "fd00:18::2";

/// A TCP SYN (20-byte header) or a UDP datagram carrying `payload`, with
/// its checksum computed over `pseudo` and then corrupted.
fn l4_bad(tcp: bool, pseudo: impl Fn(u8, u32) -> u32, payload: &[u8]) -> Vec<u8> {
    let mut l4 = if tcp {
        let mut t = vec![0u8; 20];
        t[4..8].copy_from_slice(&0x4e57_0001u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x02; // SYN
        t[14..16].copy_from_slice(&65535u16.to_be_bytes());
        t
    } else {
        let mut u = vec![0u8; 8];
        u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u
    };
    l4[0..2].copy_from_slice(&40001u16.to_be_bytes());
    l4[2..4].copy_from_slice(&PORT.to_be_bytes());
    if !tcp {
        l4.extend_from_slice(payload);
    }
    let (proto, at) = if tcp { (6, 16) } else { (17, 6) };
    let good = csum16(&l4, pseudo(proto, l4.len() as u32));
    l4[at..at + 2].copy_from_slice(&(good ^ 0x5a5a).to_be_bytes());
    l4
}

fn sum_words(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum()
}

/// An IPv6 packet fd00:18::1 -> fd00:18::2 around a bad-checksum segment.
fn ipv6_bad(tcp: bool) -> Vec<u8> {
    let (s, d): (Ipv6Addr, Ipv6Addr) = (SRC6.parse().expect("lit"), DST6.parse().expect("lit"));
    let pseudo = |proto: u8, len: u32| {
        sum_words(&s.octets())
            + sum_words(&d.octets())
            + (len >> 16)
            + (len & 0xffff)
            + u32::from(proto)
    };
    let l4 = l4_bad(tcp, pseudo, b"netwhy bad checksum v6");
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    p[6] = if tcp { 6 } else { 17 };
    p[7] = 64;
    p[8..24].copy_from_slice(&s.octets());
    p[24..40].copy_from_slice(&d.octets());
    p.extend_from_slice(&l4);
    p
}

/// An IPv4 TCP SYN 198.18.0.1 -> 198.18.0.2 with a bad TCP checksum.
fn ipv4_tcp_bad() -> Vec<u8> {
    let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    let mut p = traffic::ipv4_tcp(s, d, 40001, PORT, 0x4e57_0001, 0, 0x02);
    p[36] ^= 0x5a;
    p[37] ^= 0x5a;
    p
}

impl super::Scenario for CtInvalidChecksum {
    fn name(&self) -> &'static str {
        match (self.v6, self.tcp) {
            (false, true) => "ct-invalid-checksum-tcp4",
            (true, false) => "ct-invalid-checksum-udp6",
            (true, true) => "ct-invalid-checksum-tcp6",
            (false, false) => "ct-invalid-checksum-udp4",
        }
    }
    fn summary(&self) -> &'static str {
        match (self.v6, self.tcp) {
            (false, true) => "TCP SYNs with a bad checksum meet `ct state invalid drop` (IPv4)",
            (true, false) => "UDP with a bad checksum meets `ct state invalid drop` (IPv6)",
            (true, true) => "TCP SYNs with a bad checksum meet `ct state invalid drop` (IPv6)",
            (false, false) => "UDP with a bad checksum meets `ct state invalid drop` (IPv4)",
        }
    }
    fn incident(&self) -> &'static str {
        "A sender with broken checksum offload (a NIC erratum, a virtual switch \
         or tunnel rewriting headers) emits segments whose checksum is wrong; \
         conntrack marks them invalid and the host firewall's `ct state invalid \
         drop` discards them: connections hang and the firewall looks guilty."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::CT_INVALID_CHECKSUM.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        lab.sysctl("srv", "net.netfilter.nf_conntrack_checksum", "1")?;
        lab.nft("srv", RULESET)
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let mac = lab.mac("srv", "eth0")?;
        let pkt = match (self.v6, self.tcp) {
            (false, true) => ipv4_tcp_bad(),
            (false, false) => traffic::ipv4_udp(
                [198, 18, 0, 1].into(),
                [198, 18, 0, 2].into(),
                40001,
                PORT,
                b"netwhy bad checksum",
                true,
            ),
            (true, tcp) => ipv6_bad(tcp),
        };
        // Three tries, a client's retry pause apart (rule attribution, armed
        // by the first drop, traces a later one).
        for i in 0..3 {
            if i > 0 {
                std::thread::sleep(traffic::RETRY_PAUSE);
            }
            traffic::packet_send(&lab.ns("cli").name, "eth0", mac, pkt.clone(), 1)?;
        }
        let (proto, dst) = match (self.v6, self.tcp) {
            (false, true) => ("TCP SYNs", "198.18.0.2"),
            (false, false) => ("UDP datagrams", "198.18.0.2"),
            (true, true) => ("TCP SYNs", DST6),
            (true, false) => ("UDP datagrams", DST6),
        };
        Ok(
            format!("3 {proto} with a corrupted checksum cli -> {dst} port {PORT}, sent raw")
                .into(),
        )
    }
    fn expect(&self) -> Expect {
        let (proto, dst) = match (self.v6, self.tcp) {
            (false, tcp) => (if tcp { "tcp" } else { "udp" }, "198.18.0.2"),
            (true, tcp) => (if tcp { "tcp" } else { "udp" }, DST6),
        };
        let d = ExpectDrop {
            min: 3,
            ..ExpectDrop::new("NETFILTER_DROP", "nft_do_chain", "srv")
                .dev("eth0")
                .flow(proto, dst, Some(PORT))
        };
        Expect::drops(vec![d])
    }
}
