//! A router whose nftables forward chain drops one service.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic::{self, Connect};
use crate::lab::{Lab, LabError};

pub struct NftForwardDrop;

/// The rule the scenario plants; `explain` must name it.
pub const RULESET: &str = "table inet nwlab_filter {
  chain forward {
    type filter hook forward priority filter; policy accept;
    tcp dport 443 drop comment \"netwhy lab: block https\"
  }
}
";

impl super::Scenario for NftForwardDrop {
    fn name(&self) -> &'static str {
        "nft-forward-drop"
    }
    fn summary(&self) -> &'static str {
        "nftables on the router drops tcp/443 in the forward chain"
    }
    fn incident(&self) -> &'static str {
        "A firewall (firewalld, a hand-written nft ruleset) on a router or \
         container host silently drops one service; clients time out, routes \
         look fine, and only rule counters or nftrace name the rule."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::NFT_RULE_DROP.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.routed()?;
        lab.nft("rtr", RULESET)
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let r = traffic::tcp_connect_retrying(
            &lab.ns("cli").name,
            "198.18.2.2:443".parse().expect("literal"),
            Duration::from_millis(300),
            3,
        )?;
        if r != Connect::TimedOut {
            return Err(LabError::Traffic(format!("expected a timeout, got {r:?}")));
        }
        Ok("3 TCP connects cli -> 198.18.2.2:443 via rtr: timed out".into())
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop::new(
            "NETFILTER_DROP",
            "nft_do_chain",
            "rtr",
        )
        .dev("eth0")
        .flow("tcp", "198.18.2.2", Some(443))])
    }
}
