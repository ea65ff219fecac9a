//! A sender with a static ARP entry for the server's IP that points at an
//! old MAC: every frame reaches the server's link, addressed to another
//! host, and is dropped as OTHERHOST.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct OtherhostMac;

const PORT: u16 = 5307;
const SENT: u32 = 5;
/// The MAC the server "had before": locally administered, on no device.
const OLD_MAC: &str = "02:4e:57:00:00:02";

impl super::Scenario for OtherhostMac {
    fn name(&self) -> &'static str {
        "otherhost-wrong-neighbour"
    }
    fn summary(&self) -> &'static str {
        "the client's permanent ARP entry for the server points at an old MAC"
    }
    fn incident(&self) -> &'static str {
        "A server's NIC, VM or container was replaced and came back with the \
         same IP but a new MAC; a client (or a router) keeps a static ARP \
         entry for it, so its frames carry the old MAC and the server drops \
         them before IP: the service looks down from that client only."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::OTHERHOST_WRONG_NEIGHBOUR.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        lab.ip(
            "cli",
            &[
                "neigh",
                "replace",
                "198.18.0.2",
                "lladdr",
                OLD_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let s = traffic::udp_socket(&lab.ns("cli").name, "0.0.0.0:0".parse().expect("literal"))?;
        for _ in 0..SENT {
            s.send_to(b"netwhy-otherhost", ("198.18.0.2", PORT))
                .map_err(|e| LabError::Traffic(format!("udp send: {e}")))?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(format!(
            "{SENT} UDP datagrams cli -> 198.18.0.2:{PORT}, framed to {OLD_MAC} by cli's permanent \
             neighbour entry"
        )
        .into())
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop {
            min: u64::from(SENT),
            ..ExpectDrop::new("OTHERHOST", "ip_rcv_core", "srv")
                .dev("eth0")
                .flow("udp", "198.18.0.2", Some(PORT))
        }])
    }
}
