//! TCP SYN to a closed port: the kernel resets and drops the SYN.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic::{self, Connect};
use crate::lab::{Lab, LabError};

pub struct TcpClosedPort;

impl super::Scenario for TcpClosedPort {
    fn name(&self) -> &'static str {
        "tcp-closed-port"
    }
    fn summary(&self) -> &'static str {
        "TCP connection to a port with no listener"
    }
    fn incident(&self) -> &'static str {
        "An application connects to a service that is not listening (crashed, \
         wrong port, bound to 127.0.0.1 only); the client sees 'connection \
         refused' and the server's kernel drops the SYN."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::NO_SOCKET_TCP.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let r = traffic::tcp_connect(
            &lab.ns("cli").name,
            "198.18.0.2:8080".parse().expect("literal"),
            Duration::from_secs(2),
        )?;
        if r != Connect::Refused {
            return Err(LabError::Traffic(format!(
                "expected connection refused, got {r:?}"
            )));
        }
        Ok("TCP connect cli -> 198.18.0.2:8080: refused".into())
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop::new("NO_SOCKET", "tcp_v4_rcv", "srv")
            .dev("eth0")
            .flow("tcp", "198.18.0.2", Some(8080))])
    }
}
