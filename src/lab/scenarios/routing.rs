//! Drops on a router's forwarding path: no route, forwarding disabled, TTL
//! expiry, a DF packet too big for the next hop. One file, four scenarios
//! (they share the routed topology and the UDP probe).
use std::net::SocketAddr;
use std::time::Duration;

use crate::diagnose::kb::{ip, specific};
use crate::diagnose::refine;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    NoRoute,
    ForwardingOff,
    TtlExpired,
    PktTooBig,
}

pub struct Routing(pub Breakage);

const PORT: u16 = 5304;

impl Routing {
    fn dst(&self) -> &'static str {
        match self.0 {
            Breakage::NoRoute => "198.18.9.9",
            _ => "198.18.2.2",
        }
    }
}

impl super::Scenario for Routing {
    fn name(&self) -> &'static str {
        match self.0 {
            Breakage::NoRoute => "no-route",
            Breakage::ForwardingOff => "forwarding-disabled",
            Breakage::TtlExpired => "ttl-expired",
            Breakage::PktTooBig => "pkt-too-big",
        }
    }
    fn summary(&self) -> &'static str {
        match self.0 {
            Breakage::NoRoute => "the router has no route to the destination",
            Breakage::ForwardingOff => "the router has net.ipv4.ip_forward=0",
            Breakage::TtlExpired => "a packet's TTL runs out on the router",
            Breakage::PktTooBig => "a DF packet is bigger than the router's next-hop MTU",
        }
    }
    fn incident(&self) -> &'static str {
        match self.0 {
            Breakage::NoRoute => {
                "A router (or a container host) lacks a route for a prefix: a \
                 VPN route that was not pushed, a missing default route after a \
                 DHCP failure; packets arriving for it are dropped and ICMP \
                 net-unreachable goes back."
            }
            Breakage::ForwardingOff => {
                "A host meant to route (a Docker/Kubernetes node, a VPN gateway) \
                 has ip_forward reset to 0 by a reboot or a security baseline: \
                 everything it should forward is dropped as an address error."
            }
            Breakage::TtlExpired => {
                "A routing loop or a too-small TTL (traceroute, a tunnel \
                 decrementing twice) makes a packet's TTL run out on a router, \
                 which drops it and sends ICMP time-exceeded."
            }
            Breakage::PktTooBig => {
                "A tunnel or a smaller-MTU link sits on the path, and ICMP \
                 frag-needed is filtered somewhere: large DF packets vanish \
                 (PMTU black hole), small ones pass; TLS handshakes hang."
            }
        }
    }
    fn diagnosis(&self) -> Option<Id> {
        match self.0 {
            Breakage::NoRoute => Some(ip::IP_INNOROUTES.id),
            Breakage::ForwardingOff => Some(specific::FORWARDING_DISABLED.id),
            Breakage::TtlExpired => Some(refine::TTL_EXPIRED.id),
            Breakage::PktTooBig => Some(refine::PKT_TOO_BIG.id),
        }
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.routed()?;
        match self.0 {
            Breakage::NoRoute => Ok(()), // rtr knows only its two subnets
            Breakage::ForwardingOff => lab.sysctl("rtr", "net.ipv4.ip_forward", "0"),
            Breakage::TtlExpired => Ok(()),
            Breakage::PktTooBig => {
                lab.ip("rtr", &["link", "set", "eth1", "mtu", "1280"])?;
                lab.ip("srv", &["link", "set", "eth0", "mtu", "1280"])
            }
        }
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let dst: SocketAddr = format!("{}:{PORT}", self.dst()).parse().expect("literal");
        let s = traffic::udp_socket(&lab.ns("cli").name, "0.0.0.0:0".parse().expect("literal"))?;
        let (count, len) = match self.0 {
            Breakage::TtlExpired => {
                traffic::set_int(&s, libc::IPPROTO_IP, libc::IP_TTL, 1)?;
                (3, 64)
            }
            Breakage::PktTooBig => {
                traffic::set_int(
                    &s,
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    libc::IP_PMTUDISC_PROBE,
                )?;
                (3, 1400)
            }
            _ => (3, 64),
        };
        let payload = vec![0x6eu8; len];
        let mut errors = Vec::new();
        for _ in 0..count {
            if let Err(e) = s.send_to(&payload, dst) {
                errors.push(e.to_string());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut o = Outcome::from(format!(
            "{count} UDP datagrams of {len} bytes cli -> {dst} via rtr{}",
            match self.0 {
                Breakage::TtlExpired => " with TTL 1",
                Breakage::PktTooBig => " with DF set (IP_PMTUDISC_PROBE: ignore learnt PMTU)",
                _ => "",
            }
        ));
        if !errors.is_empty() {
            o = o.note(format!("send errors: {}", errors.join("; ")));
        }
        Ok(o)
    }
    fn expect(&self) -> Expect {
        let at = |reason, func| ExpectDrop {
            min: 3,
            ..ExpectDrop::new(reason, func, "rtr")
                .dev("eth0")
                .flow("udp", self.dst(), Some(PORT))
        };
        match self.0 {
            Breakage::NoRoute => Expect::drops(vec![at("IP_INNOROUTES", "ip_error")])
                .counter(ExpectCounter::new("rtr", "IpExt:InNoRoutes", 3)),
            Breakage::ForwardingOff => Expect::drops(vec![at("IP_INADDRERRORS", "ip_error")])
                .counter(ExpectCounter::new("rtr", "Ip:InAddrErrors", 3)),
            Breakage::TtlExpired => Expect::drops(vec![at("IP_INHDR", "ip_forward")])
                .counter(ExpectCounter::new("rtr", "Ip:InHdrErrors", 3)),
            Breakage::PktTooBig => Expect::drops(vec![at("PKT_TOO_BIG", "ip_forward")])
                .counter(ExpectCounter::new("rtr", "Ip:FragFails", 3)),
        }
    }
}
