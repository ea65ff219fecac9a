//! An nftables drop in a family other than inet/ip: a bridge forward chain
//! between two bridge ports, a netdev ingress or egress chain hooked on a
//! device, an arp input chain. Every one ends at `nft_do_chain` with
//! NETFILTER_DROP like an inet rule, so only nftrace (armed in that family
//! too) names the table, chain and rule.
use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

/// Where the dropping chain hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `bridge` forward, on a bridge between cli and srv.
    Bridge,
    /// `netdev` ingress on the server's device.
    NetdevIngress,
    /// `netdev` egress on the client's device.
    NetdevEgress,
    /// `arp` input on the server: ARP requests for it are dropped.
    Arp,
}

pub struct NftFamilyDrop(pub Family);

/// UDP port each IP variant sends to (the arp variant sends to one too, but
/// its datagrams never leave: the address never resolves).
const PORT: u16 = 5310;

impl NftFamilyDrop {
    /// (nft family, table, chain, namespace role) of the planted rule.
    pub fn rule_site(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self.0 {
            Family::Bridge => ("bridge", "nwlab_bridge", "forward", "br"),
            Family::NetdevIngress => ("netdev", "nwlab_netdev", "ingress", "srv"),
            Family::NetdevEgress => ("netdev", "nwlab_netdev", "egress", "cli"),
            Family::Arp => ("arp", "nwlab_arp", "input", "srv"),
        }
    }

    fn ruleset(&self) -> String {
        let (family, table, chain, _) = self.rule_site();
        let (hook, rule) = match self.0 {
            Family::Bridge => ("forward", format!("udp dport {PORT} drop")),
            Family::NetdevIngress => ("ingress device eth0", format!("udp dport {PORT} drop")),
            Family::NetdevEgress => ("egress device eth0", format!("udp dport {PORT} drop")),
            Family::Arp => ("input", "arp operation request drop".to_string()),
        };
        format!(
            "table {family} {table} {{
  chain {chain} {{
    type filter hook {hook} priority filter; policy accept;
    {rule} comment \"netwhy lab: {family} {chain} drop\"
  }}
}}
"
        )
    }

    /// cli and srv on one /24, through a bridge in its own namespace.
    fn bridged(lab: &mut Lab) -> Result<(), LabError> {
        lab.add_ns("cli")?;
        lab.add_ns("br")?;
        lab.add_ns("srv")?;
        lab.ip("br", &["link", "add", "br0", "type", "bridge"])?;
        lab.veth("cli", "eth0", "br", "p1")?;
        lab.veth("srv", "eth0", "br", "p2")?;
        for p in ["p1", "p2"] {
            lab.ip("br", &["link", "set", p, "master", "br0"])?;
        }
        lab.ip("br", &["link", "set", "br0", "up"])?;
        lab.ip("cli", &["addr", "add", "198.18.0.1/24", "dev", "eth0"])?;
        lab.ip("srv", &["addr", "add", "198.18.0.2/24", "dev", "eth0"])?;
        Ok(())
    }
}

impl super::Scenario for NftFamilyDrop {
    fn name(&self) -> &'static str {
        match self.0 {
            Family::Bridge => "nft-bridge-drop",
            Family::NetdevIngress => "nft-netdev-ingress-drop",
            Family::NetdevEgress => "nft-netdev-egress-drop",
            Family::Arp => "nft-arp-drop",
        }
    }
    fn summary(&self) -> &'static str {
        match self.0 {
            Family::Bridge => {
                "a bridge-family forward chain drops udp/5310 between two bridge ports"
            }
            Family::NetdevIngress => "a netdev ingress chain on the server's eth0 drops udp/5310",
            Family::NetdevEgress => "a netdev egress chain on the client's eth0 drops udp/5310",
            Family::Arp => "an arp-family input chain drops the ARP requests for the server",
        }
    }
    fn incident(&self) -> &'static str {
        match self.0 {
            Family::Bridge => {
                "A container or VM host filters bridged traffic with a bridge-family \
                 ruleset (libvirt nwfilter, a hand-written L2 firewall): two guests on \
                 one bridge cannot talk, and the inet ruleset shows nothing."
            }
            Family::NetdevIngress | Family::NetdevEgress => {
                "An early-drop ruleset hooked on a device (DDoS filtering at netdev \
                 ingress, an egress policy) drops one service before routing or after \
                 it; the inet tables and their counters show nothing."
            }
            Family::Arp => {
                "An arptables/arp-family rule (a VIP kept silent for a load balancer, a \
                 leftover from a failover setup) drops ARP requests: clients never \
                 resolve the server's address and every packet dies in their ARP queue."
            }
        }
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(specific::NFT_RULE_DROP.id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        if self.0 == Family::Bridge {
            Self::bridged(lab)?;
        } else {
            lab.pair()?;
        }
        if self.0 == Family::Arp {
            // Quick ARP retries, so the requests after the first (the ones the
            // tracer sees) come within the capture.
            lab.sysctl("cli", "net.ipv4.neigh.eth0.retrans_time_ms", "150")?;
            lab.sysctl("cli", "net.ipv4.neigh.eth0.mcast_solicit", "5")?;
        }
        let (_, _, _, role) = self.rule_site();
        lab.nft(role, &self.ruleset())
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let cli = lab.ns("cli").name.clone();
        let dst = std::net::SocketAddr::from(([198, 18, 0, 2], PORT));
        if self.0 == Family::Arp {
            traffic::udp_send(&cli, dst, 1, b"netwhy arp")?;
            // The request retries, RETRY_PAUSE-like apart, then give up.
            std::thread::sleep(std::time::Duration::from_millis(900));
            return Ok("1 UDP datagram cli -> 198.18.0.2:5310: 5 ARP requests unanswered".into());
        }
        // Three datagrams, a client's retry pause apart (rule attribution is
        // armed by the first drop and names the rule on a later one).
        for i in 0..3 {
            if i > 0 {
                std::thread::sleep(traffic::RETRY_PAUSE);
            }
            traffic::udp_send(&cli, dst, 1, b"netwhy family drop")?;
        }
        Ok("3 UDP datagrams cli -> 198.18.0.2:5310".into())
    }
    fn expect(&self) -> Expect {
        let (_, _, _, role) = self.rule_site();
        let d = ExpectDrop {
            min: 2,
            ..ExpectDrop::new("NETFILTER_DROP", "nft_do_chain", role)
        };
        let d = match self.0 {
            Family::Bridge => d.dev("p2").flow("udp", "198.18.0.2", Some(PORT)),
            Family::Arp => d.dev("eth0"),
            _ => d.dev("eth0").flow("udp", "198.18.0.2", Some(PORT)),
        };
        Expect::drops(vec![d])
    }
}
