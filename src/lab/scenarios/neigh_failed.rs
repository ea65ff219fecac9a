//! Packets to an on-link address nobody answers ARP for.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct NeighFailed;

const PORT: u16 = 5306;
const SENT: u32 = 4;

impl super::Scenario for NeighFailed {
    fn name(&self) -> &'static str {
        "neigh-failed"
    }
    fn summary(&self) -> &'static str {
        "packets to an on-link address whose ARP never resolves"
    }
    fn incident(&self) -> &'static str {
        "A gateway or server IP moved (failover, a VM migrated, a wrong static \
         address): ARP goes unanswered, packets queue on the unresolved \
         neighbour, the queue overflows, and when resolution fails the queue \
         is discarded; the sender sees only 'host unreachable' later."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::NEIGH_FAILED.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        // Fail fast: one broadcast probe, 100 ms, and room for one packet.
        lab.sysctl("cli", "net.ipv4.neigh.eth0.mcast_solicit", "1")?;
        lab.sysctl("cli", "net.ipv4.neigh.eth0.ucast_solicit", "0")?;
        lab.sysctl("cli", "net.ipv4.neigh.eth0.app_solicit", "0")?;
        lab.sysctl("cli", "net.ipv4.neigh.eth0.retrans_time_ms", "100")?;
        lab.sysctl("cli", "net.ipv4.neigh.eth0.unres_qlen_bytes", "1")
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let s = traffic::udp_socket(&lab.ns("cli").name, "0.0.0.0:0".parse().expect("literal"))?;
        for _ in 0..SENT {
            s.send_to(b"netwhy-neigh", "198.18.0.9:5306")
                .map_err(|e| LabError::Traffic(format!("udp send: {e}")))?;
        }
        // Resolution fails after one probe (100 ms).
        std::thread::sleep(Duration::from_millis(200));
        Ok(format!(
            "{SENT} UDP datagrams cli -> 198.18.0.9:{PORT} (on-link, no such host; unres_qlen_bytes=1, one ARP probe)"
        )
        .into())
    }
    fn expect(&self) -> Expect {
        let d = |reason, func, min| ExpectDrop {
            min,
            ..ExpectDrop::new(reason, func, "cli")
                .dev("eth0")
                .flow("udp", "198.18.0.9", Some(PORT))
        };
        Expect::drops(vec![
            d("NEIGH_QUEUEFULL", "__neigh_event_send", u64::from(SENT) - 1),
            d("NEIGH_FAILED", "neigh_invalidate", 1),
        ])
    }
}
