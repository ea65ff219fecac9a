//! TCP segments with SYN and FIN both set, sent to a listener: the kernel
//! drops them as TCP_FLAGS without an answer.
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct TcpBadFlags;

const PORT: u16 = 8089;
const SENT: u32 = 6;
/// FIN | SYN.
const SYN_FIN: u8 = 0x03;

impl super::Scenario for TcpBadFlags {
    fn name(&self) -> &'static str {
        "tcp-bad-flags"
    }
    fn summary(&self) -> &'static str {
        "SYN+FIN segments from a raw socket reach a TCP listener"
    }
    fn incident(&self) -> &'static str {
        "A scanner or a broken middlebox sends TCP segments with a flag \
         combination no stack produces (SYN+FIN, null, Xmas); the listener's \
         kernel drops them silently, and the firewall logs or the drop \
         counters are all anyone sees."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::TCP_FLAGS_NEVER_VALID.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let listener = traffic::in_netns(&lab.ns("srv").name, || {
            TcpListener::bind(("198.18.0.2", PORT))
                .map_err(|e| LabError::Traffic(format!("listen: {e}")))
        })?;
        let mac = lab.mac("srv", "eth0")?;
        let seg = traffic::ipv4_tcp(
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
            41000,
            PORT,
            0x4e57_0001,
            0,
            SYN_FIN,
        );
        traffic::packet_send(&lab.ns("cli").name, "eth0", mac, seg, SENT)?;
        // The listener stays while a watcher reads the socket it hit.
        std::thread::sleep(Duration::from_millis(300));
        drop(listener);
        Ok(format!(
            "{SENT} TCP segments [SYN,FIN] cli 198.18.0.1:41000 -> 198.18.0.2:{PORT} (a \
             listener) through an AF_PACKET socket: no answer"
        )
        .into())
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop {
            min: u64::from(SENT),
            ..ExpectDrop::new("TCP_FLAGS", "tcp_rcv_state_process", "srv").flow(
                "tcp",
                "198.18.0.2",
                Some(PORT),
            )
        }])
    }
}
