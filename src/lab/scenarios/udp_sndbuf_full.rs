//! A UDP sender with a small send buffer behind a slow qdisc: once the
//! buffer is full, sendto() fails with EAGAIN before an skb exists, so no
//! drop is reported; only Udp:SndbufErrors moves.
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct UdpSndbufFull;

const SENT: u32 = 20;
/// Failed sends the scenario needs to see (and the counter to count).
const MIN_FAILED: u64 = 5;

impl super::Scenario for UdpSndbufFull {
    fn name(&self) -> &'static str {
        "udp-sndbuf-full"
    }
    fn summary(&self) -> &'static str {
        "a UDP sender's send buffer fills behind a slow link: sends fail with EAGAIN"
    }
    fn incident(&self) -> &'static str {
        "A metrics or log shipper sends UDP faster than its uplink (a shaped \
         link, a VPN) drains: datagrams wait in the qdisc and hold the socket's \
         send buffer, further sends fail with EAGAIN/ENOBUFS and are lost by \
         the application; no packet was built, so no drop is reported and only \
         Udp:SndbufErrors counts them."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::UDP_SNDBUF_FULL.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        // 1 kbit/s: after the first datagram, each waits seconds in the
        // queue (long after the capture); the limit is big enough that the
        // qdisc itself never drops.
        lab.exec(
            "cli",
            &[
                "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "1kbit", "burst",
                "1600", "limit", "1000000",
            ],
        )
        .map(|_| ())
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let dst: SocketAddr = "198.18.0.2:5399".parse().expect("literal");
        // A receiver, so the datagram that gets through is not a drop.
        let sink = traffic::udp_socket(&lab.ns("srv").name, dst)?;
        let (sndbuf, failed) = traffic::in_netns(&lab.ns("cli").name, move || {
            let terr = |e: std::io::Error| LabError::Traffic(format!("udp: {e}"));
            let s = UdpSocket::bind("0.0.0.0:0").map_err(terr)?;
            // The kernel doubles the value and enforces a minimum: ~4.6 KiB.
            traffic::set_int(&s, libc::SOL_SOCKET, libc::SO_SNDBUF, 1)?;
            let sndbuf = traffic::get_int(&s, libc::SOL_SOCKET, libc::SO_SNDBUF)?;
            s.set_nonblocking(true).map_err(terr)?;
            static PAYLOAD: [u8; 1000] = [0x6d; 1000];
            let mut failed = 0u64;
            for _ in 0..SENT {
                match s.send_to(&PAYLOAD, dst) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => failed += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => failed += 1,
                    Err(e) => return Err(terr(e)),
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok((sndbuf, failed))
        })?;
        let got = traffic::drain(&sink, Duration::from_millis(100));
        if failed < MIN_FAILED {
            return Err(LabError::Traffic(format!(
                "only {failed} of {SENT} sends failed: the send buffer never filled"
            )));
        }
        Ok(Outcome::from(format!(
            "{SENT} UDP datagrams of 1000 bytes cli -> {dst} behind a 1 kbit/s qdisc: \
             {failed} sends failed with EAGAIN, {got} arrived so far"
        ))
        .note(format!("SO_SNDBUF of the sender: {sndbuf} bytes")))
    }
    fn expect(&self) -> Expect {
        Expect::default().counter(ExpectCounter::new("cli", "Udp:SndbufErrors", MIN_FAILED))
    }
}
