//! A UDP datagram with a bad checksum, with and without a firewall that
//! validates checksums through conntrack.
use crate::diagnose::kb::{ip, specific};
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

/// `firewall`: the server runs `ct state invalid drop`.
pub struct FirewallChecksum {
    pub firewall: bool,
}

pub const RULESET: &str = "table inet nwlab_filter {
  chain input {
    type filter hook input priority filter; policy accept;
    ct state invalid counter drop comment \"netwhy lab: drop invalid\"
  }
}
";

const PORT: u16 = 5305;

impl super::Scenario for FirewallChecksum {
    fn name(&self) -> &'static str {
        if self.firewall {
            "firewall-checksum"
        } else {
            "udp-bad-checksum"
        }
    }
    fn summary(&self) -> &'static str {
        if self.firewall {
            "bad-L4-checksum UDP meets `ct state invalid drop` (conntrack validates checksums)"
        } else {
            "bad-L4-checksum UDP with no firewall: UDP itself drops it"
        }
    }
    fn incident(&self) -> &'static str {
        "A NIC/driver with broken checksum offload (or a tunnel that rewrites \
         headers without fixing the checksum) emits packets with a bad L4 \
         checksum; a firewall dropping `ct state invalid` discards them before \
         UDP does, so the drop shows up as a firewall drop, not a checksum error."
    }
    fn diagnosis(&self) -> Option<Id> {
        if self.firewall {
            Some(specific::CT_INVALID_CHECKSUM.id)
        } else {
            Some(ip::UDP_CSUM.id)
        }
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        if self.firewall {
            lab.sysctl("srv", "net.netfilter.nf_conntrack_checksum", "1")?;
            lab.nft("srv", RULESET)?;
        }
        Ok(())
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let mac = lab.mac("srv", "eth0")?;
        let pkt = traffic::ipv4_udp(
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into(),
            40000,
            PORT,
            b"netwhy bad checksum",
            true,
        );
        // Three tries, a client's retry pause apart (lets rule attribution,
        // armed by the first drop, trace a later one).
        for i in 0..3 {
            if i > 0 {
                std::thread::sleep(traffic::RETRY_PAUSE);
            }
            traffic::packet_send(&lab.ns("cli").name, "eth0", mac, pkt.clone(), 1)?;
        }
        Ok("3 UDP datagrams with a corrupted checksum cli -> 198.18.0.2:5305, sent raw (AF_PACKET)".into())
    }
    fn expect(&self) -> Expect {
        let d = |reason, func| ExpectDrop {
            min: 3,
            ..ExpectDrop::new(reason, func, "srv")
                .dev("eth0")
                .flow("udp", "198.18.0.2", Some(PORT))
        };
        if self.firewall {
            Expect::drops(vec![d("NETFILTER_DROP", "nft_do_chain")])
                .absent(ExpectDrop::new("UDP_CSUM", "*", "srv"))
        } else {
            Expect::drops(vec![d("UDP_CSUM", "__udp4_lib_rcv")]).counter(ExpectCounter::new(
                "srv",
                "Udp:InCsumErrors",
                3,
            ))
        }
    }
}
