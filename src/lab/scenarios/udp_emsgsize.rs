//! UDP datagrams larger than the route MTU on a socket with DF
//! (IP_PMTUDISC_DO): sendto() fails with EMSGSIZE before an skb exists.
//! No drop event, no counter: only the syscall's return value says it, and
//! explain sees it through the send-failure probe.
use std::net::SocketAddr;
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct UdpEmsgsize;

const PORT: u16 = 5306;
const SENT: u32 = 4;
/// A payload sized for a 1500-byte MTU, on a 1280-byte link.
const SIZE: usize = 1400;
pub const MTU: &str = "1280";

impl super::Scenario for UdpEmsgsize {
    fn name(&self) -> &'static str {
        "udp-emsgsize"
    }
    fn summary(&self) -> &'static str {
        "UDP datagrams with DF larger than the route MTU: sendto() fails with EMSGSIZE"
    }
    fn incident(&self) -> &'static str {
        "An application that sets DF on its UDP socket (QUIC, DNS with a large \
         EDNS buffer, a game or tunnel client) runs in a container or behind a \
         VPN whose interface has a smaller MTU: its large sends fail with \
         'message too long', no packet is built, no counter moves, and the \
         application's retries fail the same way."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::UDP_EMSGSIZE.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        lab.ip("cli", &["link", "set", "eth0", "mtu", MTU])?;
        lab.ip("srv", &["link", "set", "eth0", "mtu", MTU])
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let dst: SocketAddr = format!("198.18.0.2:{PORT}").parse().expect("literal");
        let (_s, refused) = traffic::df_udp_burst(
            &lab.ns("cli").name,
            dst,
            SIZE,
            SENT,
            Duration::from_millis(50),
        )?;
        if refused != SENT {
            return Err(LabError::Traffic(format!(
                "expected {SENT} EMSGSIZE, got {refused}"
            )));
        }
        // Keep the socket a while: explain reads it at first sight.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Outcome::from(format!(
            "{SENT} UDP datagrams of {SIZE} bytes with DF (IP_PMTUDISC_DO) cli -> {dst}, \
             link MTU {MTU}: sendto() failed with EMSGSIZE {refused} times"
        )))
    }
    fn expect(&self) -> Expect {
        // No skb was built: nothing is dropped as too big, nothing arrives.
        Expect::default()
            .absent(ExpectDrop::new("PKT_TOO_BIG", "*", "cli"))
            .absent(ExpectDrop::new("NO_SOCKET", "*", "srv"))
    }
}
