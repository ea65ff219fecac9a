//! Packets to a martian destination arriving from the wire: a class E
//! address a client's route sends to its neighbour (dropped as an address
//! error, the same reason as "forwarding disabled"), or loopback framed
//! onto the link (IP_LOCALNET).
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Martian {
    /// 240.0.0.0/4, routed by the client to the server.
    ClassE,
    /// 127.0.0.0/8 on the wire.
    Loopback,
}

pub struct MartianDestination(pub Martian);

const PORT: u16 = 5309;
const SENT: u32 = 4;

impl MartianDestination {
    fn dst(&self) -> &'static str {
        match self.0 {
            Martian::ClassE => "240.0.0.1",
            Martian::Loopback => "127.0.0.53",
        }
    }
}

impl super::Scenario for MartianDestination {
    fn name(&self) -> &'static str {
        match self.0 {
            Martian::ClassE => "martian-destination",
            Martian::Loopback => "martian-loopback",
        }
    }
    fn summary(&self) -> &'static str {
        match self.0 {
            Martian::ClassE => "a client routes 240.0.0.0/4 (class E) to its neighbour",
            Martian::Loopback => "frames to 127.0.0.53 arrive on a veth",
        }
    }
    fn incident(&self) -> &'static str {
        match self.0 {
            Martian::ClassE => {
                "Someone uses 240.0.0.0/4 as 'spare private space' (or an \
                 application has a placeholder address) and routes it to a \
                 neighbour: the neighbour drops every packet as an address error, \
                 which reads like 'forwarding disabled' but no setting there helps."
            }
            Martian::Loopback => {
                "A DNAT to 127.0.0.1 on one box, a container runtime or a broken \
                 NAT puts loopback-addressed packets on a link: the receiver \
                 refuses them (route_localnet=0) and the service seems unreachable."
            }
        }
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::MARTIAN_DESTINATION.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        match self.0 {
            Martian::ClassE => lab.ip("cli", &["route", "add", "240.0.0.0/4", "via", "198.18.0.2"]),
            Martian::Loopback => Ok(()),
        }
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let dst = self.dst();
        match self.0 {
            Martian::ClassE => {
                let s = traffic::udp_socket(
                    &lab.ns("cli").name,
                    "0.0.0.0:0".parse().expect("literal"),
                )?;
                for _ in 0..SENT {
                    s.send_to(b"netwhy-martian", (dst, PORT))
                        .map_err(|e| LabError::Traffic(format!("udp send: {e}")))?;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Martian::Loopback => {
                // No socket sends 127/8 out of an interface: frame it by hand.
                let mac = lab.mac("srv", "eth0")?;
                let p = traffic::ipv4_udp(
                    Ipv4Addr::new(198, 18, 0, 1),
                    dst.parse().expect("literal"),
                    41001,
                    PORT,
                    b"netwhy-martian",
                    false,
                );
                traffic::packet_send(&lab.ns("cli").name, "eth0", mac, p, SENT)?;
            }
        }
        Ok(format!("{SENT} UDP datagrams cli 198.18.0.1 -> {dst}:{PORT} to srv's MAC").into())
    }
    fn expect(&self) -> Expect {
        let at = |reason, func| ExpectDrop {
            min: u64::from(SENT),
            ..ExpectDrop::new(reason, func, "srv")
                .dev("eth0")
                .flow("udp", self.dst(), Some(PORT))
        };
        match self.0 {
            Martian::ClassE => Expect::drops(vec![at("IP_INADDRERRORS", "ip_error")]).counter(
                ExpectCounter::new("srv", "Ip:InAddrErrors", u64::from(SENT)),
            ),
            Martian::Loopback => Expect::drops(vec![at(
                super::older_kernels::reason_or_unspecified("IP_LOCALNET"),
                "ip_rcv_finish_core",
            )]),
        }
    }
}
