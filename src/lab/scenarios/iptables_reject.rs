//! A libvirt-style forward chain REJECTing new connections into a guest
//! network, loaded with iptables-legacy or iptables-nft.
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic::{self, Connect};
use crate::lab::{Lab, LabError};

pub struct IptablesReject {
    pub legacy: bool,
}

/// Modelled on libvirt's LIBVIRT_FWI: only related/established traffic may
/// enter the guest network (eth1 here); everything else is REJECTed.
pub const RULES: &str = "*filter
:LIBVIRT_FWI - [0:0]
-A FORWARD -j LIBVIRT_FWI
-A LIBVIRT_FWI -d 198.18.2.0/24 -o eth1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A LIBVIRT_FWI -o eth1 -j REJECT --reject-with icmp-port-unreachable
COMMIT
";

impl super::Scenario for IptablesReject {
    fn name(&self) -> &'static str {
        if self.legacy {
            "iptables-legacy-reject"
        } else {
            "iptables-nft-reject"
        }
    }
    fn summary(&self) -> &'static str {
        if self.legacy {
            "iptables-legacy LIBVIRT_FWI-style chain REJECTs forwarded connections"
        } else {
            "the same LIBVIRT_FWI-style REJECT chain loaded through iptables-nft"
        }
    }
    fn incident(&self) -> &'static str {
        "libvirt (or docker) installs iptables chains such as LIBVIRT_FWI that \
         REJECT forwarded traffic into a NAT'ed guest network with \
         icmp-port-unreachable; traffic routed to the guests from elsewhere is \
         refused, and `nft list ruleset` shows nothing when the rules live in \
         iptables-legacy."
    }
    fn diagnosis(&self) -> Option<Id> {
        if self.legacy {
            Some(specific::IPTABLES_LEGACY_REJECT.id)
        } else {
            Some(specific::IPTABLES_REJECT.id)
        }
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.routed()?;
        let tool = if self.legacy {
            "iptables-legacy-restore"
        } else {
            "iptables-nft-restore"
        };
        lab.iptables_restore("rtr", tool, RULES)
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let r = traffic::tcp_connect_retrying(
            &lab.ns("cli").name,
            "198.18.2.2:22".parse().expect("literal"),
            Duration::from_secs(2),
            3,
        )?;
        if r != Connect::Refused {
            return Err(LabError::Traffic(format!(
                "expected connection refused (icmp-port-unreachable), got {r:?}"
            )));
        }
        Ok("3 TCP connects cli -> 198.18.2.2:22 via rtr: refused by LIBVIRT_FWI".into())
    }
    fn expect(&self) -> Expect {
        let at = if self.legacy {
            "nf_hook_slow"
        } else {
            "nft_do_chain"
        };
        Expect::drops(vec![ExpectDrop::new("NETFILTER_DROP", at, "rtr")
            .dev("eth0")
            .flow("tcp", "198.18.2.2", Some(22))])
    }
}
