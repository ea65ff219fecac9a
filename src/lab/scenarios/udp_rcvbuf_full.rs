//! A UDP server that reads too slowly: its receive buffer fills up.
use std::os::fd::AsRawFd;

use crate::diagnose::refine;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectCounter, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct UdpRcvbufFull;

const SENT: u32 = 64;

impl super::Scenario for UdpRcvbufFull {
    fn name(&self) -> &'static str {
        "udp-rcvbuf-full"
    }
    fn summary(&self) -> &'static str {
        "a UDP socket with a small receive buffer that is not read fills up"
    }
    fn incident(&self) -> &'static str {
        "A syslog/statsd/DNS server falls behind a burst (GC pause, slow disk, \
         a single-threaded reader): datagrams pile up until the socket's \
         receive buffer is full and the kernel drops the rest \
         (Udp RcvbufErrors grows), while the sender sees no error."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(refine::UDP_RCVBUF_FULL.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let sink = traffic::udp_socket(
            &lab.ns("srv").name,
            "198.18.0.2:5302".parse().expect("literal"),
        )?;
        // The kernel doubles the value and enforces a minimum: ~4.6 KiB.
        traffic::set_int(&sink, libc::SOL_SOCKET, libc::SO_RCVBUF, 1)?;
        let rcvbuf = traffic::get_int(&sink, libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        static PAYLOAD: [u8; 1000] = [0x6e; 1000];
        traffic::udp_send(
            &lab.ns("cli").name,
            "198.18.0.2:5302".parse().expect("literal"),
            SENT,
            &PAYLOAD,
        )?;
        let got = traffic::drain(&sink, std::time::Duration::from_millis(50));
        let _ = sink.as_raw_fd();
        Ok(Outcome::from(format!(
            "{SENT} UDP datagrams of 1000 bytes cli -> 198.18.0.2:5302, socket not read until the end: {got} queued, {} dropped",
            SENT as usize - got
        ))
        .note(format!("SO_RCVBUF of the server socket: {rcvbuf} bytes")))
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop {
            min: 10,
            ..ExpectDrop::new("SOCKET_RCVBUFF", "udp_queue_rcv_one_skb", "srv")
                .dev("eth0")
                .flow("udp", "198.18.0.2", Some(5302))
        }])
        .counter(ExpectCounter::new("srv", "Udp:RcvbufErrors", 10))
    }
}
