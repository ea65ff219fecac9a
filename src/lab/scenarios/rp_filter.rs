//! Asymmetric routing meets reverse-path filtering.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

/// `mode` is the rp_filter value on the server: 1 drops, 2 and 0 pass.
pub struct RpFilter {
    pub mode: u8,
}

impl super::Scenario for RpFilter {
    fn name(&self) -> &'static str {
        match self.mode {
            1 => "rp-filter-martian",
            2 => "rp-filter-loose",
            _ => "rp-filter-off",
        }
    }
    fn summary(&self) -> &'static str {
        match self.mode {
            1 => "asymmetric routing with rp_filter=1: the server drops the client as a martian",
            2 => "the same asymmetric routing with rp_filter=2 (loose): delivered",
            _ => "the same asymmetric routing with rp_filter=0: delivered",
        }
    }
    fn incident(&self) -> &'static str {
        "A multi-homed host (two uplinks, a VPN, a second NIC) answers via a \
         different interface than requests arrive on; strict reverse-path \
         filtering (rp_filter=1, the default of many distributions) silently \
         drops the requests, and only log_martians says why."
    }
    fn diagnosis(&self) -> Option<Id> {
        match self.mode {
            1 => Some(specific::RP_FILTER_STRICT.id),
            _ => None,
        }
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        // cli eth0 198.18.0.1 -- srv eth0 198.18.0.2 (requests arrive here)
        // cli eth1 198.18.3.1 -- srv eth1 198.18.3.2 (srv routes cli back here)
        lab.pair()?;
        lab.veth("cli", "eth1", "srv", "eth1")?;
        lab.ip("cli", &["addr", "add", "198.18.3.1/24", "dev", "eth1"])?;
        lab.ip("srv", &["addr", "add", "198.18.3.2/24", "dev", "eth1"])?;
        lab.ip(
            "srv",
            &[
                "route",
                "add",
                "198.18.0.1/32",
                "via",
                "198.18.3.1",
                "dev",
                "eth1",
            ],
        )?;
        // Strict rp_filter also ignores the client's ARP requests (their
        // sender fails the same check): pin the neighbour so the test
        // shows the IP drop, as on a real network with a warm ARP cache.
        lab.pin_neighbour("cli", "eth0", "198.18.0.2", "srv", "eth0")?;
        let m = self.mode.to_string();
        for ifc in ["all", "default", "eth0", "eth1"] {
            lab.sysctl("srv", &format!("net.ipv4.conf.{ifc}.rp_filter"), &m)?;
            lab.sysctl("srv", &format!("net.ipv4.conf.{ifc}.log_martians"), "1")?;
        }
        Ok(())
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let sink = traffic::udp_socket(
            &lab.ns("srv").name,
            "198.18.0.2:5301".parse().expect("literal"),
        )?;
        traffic::udp_send(
            &lab.ns("cli").name,
            "198.18.0.2:5301".parse().expect("literal"),
            3,
            b"netwhy-rp",
        )?;
        let got = traffic::drain(
            &sink,
            Duration::from_millis(if self.mode == 1 { 100 } else { 300 }),
        );
        let text = format!(
            "3 UDP datagrams cli 198.18.0.1 -> 198.18.0.2:5301 on eth0 (srv routes 198.18.0.1 via eth1), rp_filter={}: {got} received",
            self.mode
        );
        let ok = if self.mode == 1 { got == 0 } else { got == 3 };
        if !ok {
            return Err(LabError::Traffic(format!("unexpected delivery: {text}")));
        }
        Ok(text.into())
    }
    fn expect(&self) -> Expect {
        let rp = ExpectDrop::new("IP_RPFILTER", "ip_rcv_finish_core", "srv")
            .dev("eth0")
            .flow("udp", "198.18.0.2", Some(5301));
        if self.mode == 1 {
            Expect::drops(vec![ExpectDrop { min: 3, ..rp }]).counter(ExpectCounter::new(
                "srv",
                "TcpExt:IPReversePathFilter",
                3,
            ))
        } else {
            Expect::default()
                .absent(ExpectDrop::new("IP_RPFILTER", "*", "srv"))
                .counter(ExpectCounter::new("srv", "Udp:InDatagrams", 3))
        }
    }
}
