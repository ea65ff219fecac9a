//! The 2020 `net.core.rmem_default = 2^31-1` UDP overflow.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct UdpRmemOverflow;

/// The tuning value from the incident: INT_MAX.
pub const RMEM: &str = "2147483647";

impl super::Scenario for UdpRmemOverflow {
    fn name(&self) -> &'static str {
        "udp-rmem-overflow"
    }
    fn summary(&self) -> &'static str {
        "net.core.rmem_default=2^31-1: UDP sockets' rcvbuf near INT_MAX (DNS over UDP vs TCP)"
    }
    fn incident(&self) -> &'static str {
        "A tuning guide set net.core.rmem_default (or SO_RCVBUFFORCE) to \
         2147483647; on kernels before the 2020 fix the signed receive-buffer \
         accounting overflowed and every UDP datagram was dropped as \
         SOCKET_RCVBUFF: DNS over UDP failed while DNS over TCP worked."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::UDP_RMEM_OVERFLOW.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let srv = lab.ns("srv").name.clone();
        let udp = lab.with_host_sysctl("net.core.rmem_default", RMEM, || {
            traffic::udp_socket(&srv, "198.18.0.2:53".parse().expect("literal"))
        })?;
        let udp_rcvbuf = traffic::get_int(&udp, libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        // SO_RCVBUFFORCE near 2^31 on a second socket (root may exceed rmem_max).
        let forced = traffic::udp_socket(&srv, "198.18.0.2:5353".parse().expect("literal"))?;
        traffic::set_int(
            &forced,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            i32::MAX / 2,
        )?;
        let forced_rcvbuf = traffic::get_int(&forced, libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        let cli = lab.ns("cli").name.clone();
        traffic::udp_send(
            &cli,
            "198.18.0.2:53".parse().expect("literal"),
            3,
            b"netwhy dns query",
        )?;
        traffic::udp_send(
            &cli,
            "198.18.0.2:5353".parse().expect("literal"),
            3,
            b"netwhy mdns query",
        )?;
        let got = traffic::drain(&udp, Duration::from_millis(150));
        let got_forced = traffic::drain(&forced, Duration::from_millis(50));
        let mut o = Outcome::from(format!(
            "3 DNS-sized UDP datagrams to a socket created with rmem_default={RMEM}: {got} delivered; \
             3 to a socket with SO_RCVBUFFORCE={}: {got_forced} delivered",
            i32::MAX / 2
        ))
        .note(format!("SO_RCVBUF read back: {udp_rcvbuf} (rmem_default socket), {forced_rcvbuf} (SO_RCVBUFFORCE socket)"))
        .note("host net.core.rmem_default was set only while the socket was created and restored at once");
        if got == 3 && got_forced == 3 {
            o.not_affected = Some(format!(
                "receive buffers of {udp_rcvbuf} bytes accept datagrams: this kernel has the 2020 fix for the \
                 signed overflow of the receive-queue accounting (the value is still a misconfiguration \
                 that lets one socket pin all memory)"
            ));
        } else {
            o = o.note(
                "THIS KERNEL IS AFFECTED: UDP datagrams to the huge-rcvbuf socket were dropped",
            );
        }
        Ok(o)
    }
    fn expect(&self) -> Expect {
        // This kernel (6.18) has the fix: delivery, no SOCKET_RCVBUFF.
        Expect::default()
            .absent(ExpectDrop::new("SOCKET_RCVBUFF", "*", "srv"))
            .counter(ExpectCounter::new("srv", "Udp:InDatagrams", 6))
    }
}
