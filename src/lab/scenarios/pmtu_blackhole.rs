//! A PMTU black hole: the router's next hop has a smaller MTU, so it drops
//! the client's large DF datagrams and answers with ICMP frag-needed; the
//! client's firewall drops all ICMP ("block ping"), so the client never
//! learns the path MTU and keeps sending packets that cannot pass. Two
//! drops (PKT_TOO_BIG on the router, the nft drop of the ICMP on the
//! client), one incident: `explain` must join them through the ICMP's
//! quote of the too-big packet and name the rule that eats the ICMP.
//! Variant `RouterOutput`: the router's own output chain drops the ICMP it
//! generates (a locally sent packet: the rule is found by nftrace on the
//! output hook).
use std::net::SocketAddr;
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

/// Where the ICMP frag-needed dies.
pub enum PmtuBlackhole {
    /// The client's input chain ("block ping" on the host).
    ClientInput,
    /// The router's output chain, before the ICMP leaves.
    RouterOutput,
}

const PORT: u16 = 5305;
/// Datagrams sent, spaced so the rule tracer armed at the first ICMP drop
/// sees the next ones.
const SENT: u32 = 6;
const SIZE: usize = 1400;

/// The firewall: a "no ICMP" rule, which also drops frag-needed.
fn ruleset(chain: &str) -> String {
    format!(
        "table inet nwlab_filter {{
  chain {chain} {{
    type filter hook {chain} priority filter; policy accept;
    ip protocol icmp drop comment \"netwhy lab: block ping\"
  }}
}}
"
    )
}

impl PmtuBlackhole {
    /// (role, chain) of the rule that drops the ICMP.
    pub fn rule_at(&self) -> (&'static str, &'static str) {
        match self {
            PmtuBlackhole::ClientInput => ("cli", "input"),
            PmtuBlackhole::RouterOutput => ("rtr", "output"),
        }
    }
}

impl super::Scenario for PmtuBlackhole {
    fn name(&self) -> &'static str {
        match self {
            PmtuBlackhole::ClientInput => "pmtu-blackhole",
            PmtuBlackhole::RouterOutput => "pmtu-blackhole-router-output",
        }
    }
    fn summary(&self) -> &'static str {
        match self {
            PmtuBlackhole::ClientInput => {
                "a smaller MTU on the path, and the client's firewall drops the ICMP frag-needed"
            }
            PmtuBlackhole::RouterOutput => {
                "a smaller MTU on the path, and the router's output chain drops its own ICMP"
            }
        }
    }
    fn incident(&self) -> &'static str {
        "A VPN or tunnel link with a smaller MTU sits on the path, and a \
         firewall drops all ICMP to \"block ping\": the router's frag-needed \
         never reaches the sender, which keeps sending packets that cannot \
         pass. Small requests work, large responses and TLS handshakes hang."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::PMTU_BLACKHOLE.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.routed()?;
        lab.ip("rtr", &["link", "set", "eth1", "mtu", "1280"])?;
        lab.ip("srv", &["link", "set", "eth0", "mtu", "1280"])?;
        // One frag-needed per datagram: no ICMP rate limit on the router.
        lab.sysctl("rtr", "net.ipv4.icmp_ratelimit", "0")?;
        let (role, chain) = self.rule_at();
        lab.nft(role, &ruleset(chain))
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let dst: SocketAddr = format!("198.18.2.2:{PORT}").parse().expect("literal");
        // Had the ICMP come through, the next sends would fail with
        // EMSGSIZE.
        let (_s, refused) = traffic::df_udp_burst(
            &lab.ns("cli").name,
            dst,
            SIZE,
            SENT,
            Duration::from_millis(150),
        )?;
        if refused > 0 {
            return Err(LabError::Traffic(format!(
                "{refused} sends failed with EMSGSIZE: the client learnt the path MTU, \
                 the ICMP was not dropped"
            )));
        }
        Ok(Outcome::from(format!(
            "{SENT} UDP datagrams of {SIZE} bytes with DF cli -> {dst} via rtr (next-hop MTU \
             1280): every send succeeded, the client never learnt the path MTU"
        )))
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![
            ExpectDrop {
                min: 3,
                ..ExpectDrop::new("PKT_TOO_BIG", "ip_forward", "rtr")
                    .dev("eth0")
                    .flow("udp", "198.18.2.2", Some(PORT))
            },
            ExpectDrop {
                min: 3,
                ..ExpectDrop::new("NETFILTER_DROP", "nft_do_chain", self.rule_at().0).flow(
                    "icmp",
                    "198.18.1.2",
                    None,
                )
            },
        ])
    }
}
