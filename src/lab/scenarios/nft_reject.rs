//! A router whose nftables forward chain REJECTs one service.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic::{self, Connect};
use crate::lab::{Lab, LabError};

pub struct NftReject;

pub const RULESET: &str = "table inet nwlab_filter {
  chain forward {
    type filter hook forward priority filter; policy accept;
    tcp dport 8443 reject with icmp type port-unreachable comment \"netwhy lab: reject 8443\"
  }
}
";

impl super::Scenario for NftReject {
    fn name(&self) -> &'static str {
        "nft-reject"
    }
    fn summary(&self) -> &'static str {
        "nftables on the router rejects tcp/8443 with ICMP port-unreachable"
    }
    fn incident(&self) -> &'static str {
        "A firewall rejects a service instead of dropping it: clients get an \
         immediate 'connection refused' that looks exactly like a server with \
         nothing listening, yet the server never saw the SYN."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::NFT_REJECT.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.routed()?;
        lab.nft("rtr", RULESET)
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let r = traffic::tcp_connect_retrying(
            &lab.ns("cli").name,
            "198.18.2.2:8443".parse().expect("literal"),
            Duration::from_secs(2),
            3,
        )?;
        if r != Connect::Refused {
            return Err(LabError::Traffic(format!(
                "expected connection refused (ICMP port-unreachable from the router), got {r:?}"
            )));
        }
        Ok(
            Outcome::from("3 TCP connects cli -> 198.18.2.2:8443 via rtr: refused").note(
                "the refusal is the router's ICMP port-unreachable: the server never saw the SYN",
            ),
        )
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop::new(
            "NETFILTER_DROP",
            "nft_do_chain",
            "rtr",
        )
        .dev("eth0")
        .flow("tcp", "198.18.2.2", Some(8443))])
        .absent(ExpectDrop::new("NO_SOCKET", "tcp_v4_rcv", "srv"))
    }
}
