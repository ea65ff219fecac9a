//! UDP sends from a namespace without a default route: sendto() fails with
//! ENETUNREACH before an skb exists, so no drop is reported; only
//! Ip:OutNoRoutes moves.
use std::net::{SocketAddr, UdpSocket};

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct UdpSendNoRoute;

const SENT: u32 = 3;

impl super::Scenario for UdpSendNoRoute {
    fn name(&self) -> &'static str {
        "udp-send-no-route"
    }
    fn summary(&self) -> &'static str {
        "UDP sends from a namespace with no default route fail before a packet exists"
    }
    fn incident(&self) -> &'static str {
        "A container lost its default route (DHCP lease gone, a CNI that did not \
         set the gateway): DNS and metrics over UDP fail with 'network is \
         unreachable', no packet ever leaves, and the drop tracepoint sees \
         nothing; only Ip:OutNoRoutes counts the failures."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::SEND_NO_ROUTE.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        // The pair has only its on-link /24: no default route.
        lab.pair()
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let dst: SocketAddr = "203.0.113.53:53".parse().expect("literal");
        let unreachable = traffic::in_netns(&lab.ns("cli").name, move || {
            let s = UdpSocket::bind("0.0.0.0:0")
                .map_err(|e| LabError::Traffic(format!("udp bind: {e}")))?;
            let mut n = 0;
            for _ in 0..SENT {
                match s.send_to(b"netwhy dns query", dst) {
                    Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => n += 1,
                    Err(e) => return Err(LabError::Traffic(format!("udp send: {e}"))),
                    Ok(_) => {}
                }
            }
            Ok(n)
        })?;
        if unreachable != SENT {
            return Err(LabError::Traffic(format!(
                "expected {SENT} ENETUNREACH, got {unreachable}"
            )));
        }
        Ok(Outcome::from(format!(
            "{SENT} UDP datagrams cli -> {dst}: sendto() failed with ENETUNREACH {unreachable} times"
        )))
    }
    fn expect(&self) -> Expect {
        Expect::default().counter(ExpectCounter::new("cli", "Ip:OutNoRoutes", u64::from(SENT)))
    }
}
