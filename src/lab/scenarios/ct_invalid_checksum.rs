//! `ct state invalid drop` meets packets whose L4 checksum is really wrong,
//! over TCP and IPv6 (the IPv4 UDP case is `firewall-checksum`). The
//! packets are built by hand and sent through a packet socket, so the
//! checksum on the wire is the bad one (a socket's packet on a veth would
//! carry a pending-offload checksum, which is not an error).
use std::net::Ipv4Addr;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
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

/// A TCP SYN 198.18.0.1 -> 198.18.0.2 or fd00:18::1 -> fd00:18::2 whose
/// TCP checksum is corrupted after it was computed.
fn tcp_syn_bad(v6: bool) -> Vec<u8> {
    let (mut p, at) = if v6 {
        let (s, d) = (SRC6.parse().expect("lit"), DST6.parse().expect("lit"));
        (
            traffic::ipv6_tcp(s, d, 40001, PORT, 0x4e57_0001, 0, 0x02),
            56,
        )
    } else {
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        (
            traffic::ipv4_tcp(s, d, 40001, PORT, 0x4e57_0001, 0, 0x02),
            36,
        )
    };
    p[at] ^= 0x5a;
    p[at + 1] ^= 0x5a;
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
            (v6, true) => tcp_syn_bad(v6),
            (false, false) => traffic::ipv4_udp(
                [198, 18, 0, 1].into(),
                [198, 18, 0, 2].into(),
                40001,
                PORT,
                b"netwhy bad checksum",
                true,
            ),
            (true, false) => traffic::ipv6_udp(
                SRC6.parse().expect("lit"),
                DST6.parse().expect("lit"),
                40001,
                PORT,
                b"netwhy bad checksum v6",
                true,
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::csum;

    /// The shared builders' checksums verify when asked to be right and
    /// are caught as bad when corrupted, over both pseudo-headers.
    #[test]
    fn packets_carry_the_checksum_asked_for() {
        let (s, d): (std::net::Ipv6Addr, std::net::Ipv6Addr) =
            (SRC6.parse().expect("lit"), DST6.parse().expect("lit"));
        for bad in [false, true] {
            let u = traffic::ipv6_udp(s, d, 40001, PORT, b"odd payload", bad);
            assert_eq!(u.len(), 40 + 8 + 11);
            let c = csum::ipv6_check(17, s.octets(), d.octets(), &u[40..]).expect("udp");
            assert_eq!(c.verdict, if bad { "bad" } else { "ok" }, "{c:?}");
        }
        let t6 = tcp_syn_bad(true);
        let c = csum::ipv6_check(6, s.octets(), d.octets(), &t6[40..]).expect("tcp6");
        assert_eq!(c.verdict, "bad");
        let t4 = tcp_syn_bad(false);
        let c = csum::ipv4_check(6, [198, 18, 0, 1], [198, 18, 0, 2], &t4[20..]).expect("tcp4");
        assert_eq!(c.verdict, "bad");
    }
}
