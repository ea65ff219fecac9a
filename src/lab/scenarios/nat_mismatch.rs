//! A UDP reply through DNAT that comes back with a tuple the client's
//! socket does not own: the server answers from another address, or the
//! conntrack entry is lost while the query is in flight.
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

/// `lost_ct`: flush the router's conntrack table mid-flight instead of
/// having the server answer from the wrong address.
pub struct NatMismatch {
    pub lost_ct: bool,
}

/// The service address clients use (the router's) and where DNAT sends it.
const VIP: &str = "198.18.1.1:53";

fn ruleset(target: &str) -> String {
    format!(
        "table ip nwlab_nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 198.18.1.1 udp dport 53 dnat to {target} comment \"netwhy lab: DNS VIP\"
  }}
}}
"
    )
}

fn terr(what: &str, e: std::io::Error) -> LabError {
    LabError::Traffic(format!("{what}: {e}"))
}

impl super::Scenario for NatMismatch {
    fn name(&self) -> &'static str {
        if self.lost_ct {
            "conntrack-lost-dns"
        } else {
            "conntrack-nat-mismatch"
        }
    }
    fn summary(&self) -> &'static str {
        if self.lost_ct {
            "a DNS query through DNAT whose conntrack entry is flushed mid-flight"
        } else {
            "a DNS reply after DNAT comes from another server address: not un-NATed"
        }
    }
    fn incident(&self) -> &'static str {
        if self.lost_ct {
            "Conntrack entries vanish while a DNS query is in flight (a \
             `conntrack -F` by a network agent, a kube-proxy resync, table \
             pressure): the reply is no longer un-NATed, reaches the client \
             from the real server address, and is dropped; lookups time out \
             intermittently."
        } else {
            "Docker-in-docker / nested NAT: a UDP service is reached through \
             DNAT, but the server (bound to 0.0.0.0, several addresses) answers \
             from a different address than the DNAT target; conntrack does not \
             match the reply, so it reaches the client with a tuple the \
             client's connected socket does not own."
        }
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::NAT_TUPLE_MISMATCH.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.routed()?;
        let target = if self.lost_ct {
            "198.18.2.2"
        } else {
            // Secondary address: replies from 0.0.0.0 sockets use the primary.
            lab.ip("srv", &["addr", "add", "198.18.2.3/24", "dev", "eth0"])?;
            "198.18.2.3"
        };
        lab.nft("rtr", &ruleset(target))
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let server =
            traffic::udp_socket(&lab.ns("srv").name, "0.0.0.0:53".parse().expect("literal"))?;
        let client =
            traffic::udp_socket(&lab.ns("cli").name, "0.0.0.0:0".parse().expect("literal"))?;
        let vip: SocketAddr = VIP.parse().expect("literal");
        client.connect(vip).map_err(|e| terr("connect", e))?;
        client
            .send(b"netwhy dns query")
            .map_err(|e| terr("send", e))?;
        server
            .set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| terr("timeout", e))?;
        let mut buf = [0u8; 512];
        let (_, from) = server
            .recv_from(&mut buf)
            .map_err(|e| terr("server did not get the query through DNAT", e))?;
        let mut o = Outcome::from(format!(
            "UDP query cli -> {VIP} (DNAT on rtr) arrived at srv from {from}; "
        ));
        if self.lost_ct {
            let out = lab.exec("rtr", &["conntrack", "-F"]);
            o = o.note(format!(
                "rtr: conntrack -F before the reply ({})",
                match out {
                    Ok(_) => "flushed".to_string(),
                    Err(e) => format!("failed: {e}"),
                }
            ));
        }
        server
            .send_to(b"netwhy dns answer", from)
            .map_err(|e| terr("reply", e))?;
        let got = recv_one(&client, Duration::from_millis(300));
        o.text += &format!("reply sent from srv: client {got}");
        if got != "got nothing (timed out)" && !got.starts_with("got an error") {
            return Err(LabError::Traffic(format!(
                "the client received the reply: {got}"
            )));
        }
        Ok(o)
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop::new("NO_SOCKET", "__udp4_lib_rcv", "cli")
            .dev("eth0")
            .flow("udp", "198.18.1.2", None)])
        .absent(ExpectDrop::new("NO_SOCKET", "*", "srv"))
    }
}

fn recv_one(s: &UdpSocket, t: Duration) -> String {
    let _ = s.set_read_timeout(Some(t));
    let mut buf = [0u8; 512];
    match s.recv(&mut buf) {
        Ok(n) => format!("received {n} bytes"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            "got nothing (timed out)".into()
        }
        Err(e) => format!("got an error: {e}"),
    }
}
