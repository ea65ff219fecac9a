//! UDP to a port nobody listens on: the everyday NO_SOCKET.
use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::{traffic, Lab, LabError};

pub struct UdpClosedPort;

impl super::Scenario for UdpClosedPort {
    fn name(&self) -> &'static str {
        "udp-closed-port"
    }
    fn summary(&self) -> &'static str {
        "UDP datagrams to a port with no socket bound"
    }
    fn incident(&self) -> &'static str {
        "A client queries a DNS/syslog/statsd server whose daemon is down or bound \
         to another address; the server's kernel answers ICMP port-unreachable and \
         drops the datagram."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::NO_SOCKET_UDP.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        traffic::udp_send(
            &lab.ns("cli").name,
            "198.18.0.2:5300".parse().expect("literal"),
            3,
            b"netwhy-udp",
        )?;
        Ok("3 UDP datagrams cli -> 198.18.0.2:5300".into())
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop {
            min: 3,
            ..ExpectDrop::new("NO_SOCKET", "__udp4_lib_rcv", "srv")
                .dev("eth0")
                .flow("udp", "198.18.0.2", Some(5300))
        }])
    }
}
