//! A bridge with kernel STP and a 30 s forward_delay: a port that just came
//! up stays in listening, then learning, and drops every frame meanwhile.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct BridgeStp;

const PORT: u16 = 5308;
const SENT: u32 = 8;

impl super::Scenario for BridgeStp {
    fn name(&self) -> &'static str {
        "bridge-stp-listening"
    }
    fn summary(&self) -> &'static str {
        "a bridge port is still in STP listening (forward_delay 30 s)"
    }
    fn incident(&self) -> &'static str {
        "A VM or container is attached to a Linux bridge that runs STP: its \
         port spends forward_delay in listening and again in learning, so \
         DHCP, the first pings and health checks vanish for up to a minute \
         after every (re)start, then everything works."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::BRIDGE_PORT_STP_WAIT.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.add_ns("cli")?;
        lab.add_ns("sw")?;
        lab.add_ns("srv")?;
        lab.veth("cli", "eth0", "sw", "eth0")?;
        lab.veth("srv", "eth0", "sw", "eth1")?;
        lab.ip("cli", &["addr", "add", "198.18.0.1/24", "dev", "eth0"])?;
        lab.ip("srv", &["addr", "add", "198.18.0.2/24", "dev", "eth0"])?;
        // forward_delay is in 1/100 s: 30 s, the largest the kernel takes.
        lab.ip(
            "sw",
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "stp_state",
                "1",
                "forward_delay",
                "3000",
            ],
        )?;
        for port in ["eth0", "eth1"] {
            lab.ip("sw", &["link", "set", port, "master", "br0"])?;
        }
        lab.ip("sw", &["link", "set", "br0", "up"])?;
        // A warm ARP cache: the dropped frames are the data, not ARP.
        lab.pin_neighbour("cli", "eth0", "198.18.0.2", "srv", "eth0")
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let state = lab
            .exec("sw", &["cat", "/sys/class/net/eth0/brport/state"])
            .unwrap_or_default();
        let s = traffic::udp_socket(&lab.ns("cli").name, "0.0.0.0:0".parse().expect("literal"))?;
        for _ in 0..SENT {
            s.send_to(b"netwhy-stp", ("198.18.0.2", PORT))
                .map_err(|e| LabError::Traffic(format!("udp send: {e}")))?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Outcome::from(format!(
            "{SENT} UDP datagrams cli -> 198.18.0.2:{PORT} across br0 right after it came up"
        ))
        .note(format!(
            "sw's eth0 brport/state was {} (1 = listening)",
            state.trim()
        )))
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop {
            min: u64::from(SENT),
            ..ExpectDrop::new(
                super::older_kernels::reason_or_unspecified("BRIDGE_INGRESS_STP_STATE"),
                "br_handle_frame",
                "sw",
            )
            .dev("eth0")
            .flow("udp", "198.18.0.2", Some(PORT))
        }])
    }
}
