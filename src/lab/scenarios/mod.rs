//! The scenario catalog. Adding one: a file here plus one line in [`ALL`].
mod accept_queue_full;
mod bridge_stp;
mod ct_invalid_checksum;
mod firewall_checksum;
mod iptables_reject;
mod martian_destination;
mod nat_mismatch;
mod neigh_failed;
mod nft_family_drop;
mod nft_forward_drop;
mod nft_reject;
mod older_kernels;
mod otherhost_mac;
mod pmtu_blackhole;
mod routing;
mod rp_filter;
mod tc_bpf_drop;
mod tcp_bad_flags;
mod tcp_closed_port;
mod udp_closed_port;
mod udp_emsgsize;
mod udp_rcvbuf_full;
mod udp_rmem_overflow;
mod udp_send_no_route;
mod udp_sndbuf_full;
mod unhandled_ethertype;

use super::expect::Expect;
use super::{Lab, LabError};
use crate::diagnose::Id;

/// What the trigger did and saw from the application's side.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One line: the traffic sent and what the application got.
    pub text: String,
    /// Further observations (socket options read back, ICMP seen...).
    pub notes: Vec<String>,
    /// Set when the kernel has a fix for the modelled incident: the
    /// scenario passes `--check` on its "not affected" expectation and
    /// says why.
    pub not_affected: Option<String>,
}

impl From<String> for Outcome {
    fn from(text: String) -> Self {
        Outcome {
            text,
            ..Outcome::default()
        }
    }
}

impl From<&str> for Outcome {
    fn from(text: &str) -> Self {
        text.to_string().into()
    }
}

impl Outcome {
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.notes.push(n.into());
        self
    }
}

/// A reproducible broken network.
pub trait Scenario: Sync {
    fn name(&self) -> &'static str;
    /// One line: what is broken.
    fn summary(&self) -> &'static str;
    /// The real-world incident this models.
    fn incident(&self) -> &'static str;
    /// Diagnosis `netwhy explain` must produce for it (its first finding's
    /// cause); None: it must find nothing.
    fn diagnosis(&self) -> Option<Id>;
    /// Build the topology and break it.
    fn build(&self, lab: &mut Lab) -> Result<(), LabError>;
    /// Send the bounded traffic that hits the breakage.
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError>;
    /// What the kernel must report (and must not).
    fn expect(&self) -> Expect;
}

/// The registry: one line per scenario.
pub static ALL: &[&dyn Scenario] = &[
    &udp_closed_port::UdpClosedPort,
    &tcp_closed_port::TcpClosedPort,
    &nft_forward_drop::NftForwardDrop,
    &nft_reject::NftReject,
    &iptables_reject::IptablesReject { legacy: true },
    &iptables_reject::IptablesReject { legacy: false },
    &rp_filter::RpFilter { mode: 1 },
    &rp_filter::RpFilter { mode: 2 },
    &rp_filter::RpFilter { mode: 0 },
    &udp_rcvbuf_full::UdpRcvbufFull,
    &udp_rmem_overflow::UdpRmemOverflow,
    &routing::Routing(routing::Breakage::NoRoute),
    &routing::Routing(routing::Breakage::ForwardingOff),
    &routing::Routing(routing::Breakage::TtlExpired),
    &routing::Routing(routing::Breakage::PktTooBig),
    &neigh_failed::NeighFailed,
    &firewall_checksum::FirewallChecksum { firewall: true },
    &firewall_checksum::FirewallChecksum { firewall: false },
    &nat_mismatch::NatMismatch { lost_ct: false },
    &nat_mismatch::NatMismatch { lost_ct: true },
    &tc_bpf_drop::TcBpfDrop(crate::lab::bpf::How::ClsBpf),
    &tc_bpf_drop::TcBpfDrop(crate::lab::bpf::How::Xdp { generic: false }),
    &tc_bpf_drop::TcBpfDrop(crate::lab::bpf::How::Xdp { generic: true }),
    &accept_queue_full::AcceptQueueFull {
        syncookies: false,
        v6: false,
    },
    &accept_queue_full::AcceptQueueFull {
        syncookies: true,
        v6: false,
    },
    &udp_send_no_route::UdpSendNoRoute,
    &udp_sndbuf_full::UdpSndbufFull,
    &tcp_bad_flags::TcpBadFlags,
    &otherhost_mac::OtherhostMac,
    &bridge_stp::BridgeStp,
    &martian_destination::MartianDestination(martian_destination::Martian::ClassE),
    &martian_destination::MartianDestination(martian_destination::Martian::Loopback),
    &accept_queue_full::AcceptQueueFull {
        syncookies: true,
        v6: true,
    },
    &pmtu_blackhole::PmtuBlackhole::ClientInput,
    &pmtu_blackhole::PmtuBlackhole::RouterOutput,
    &udp_emsgsize::UdpEmsgsize,
    &unhandled_ethertype::UnhandledEthertype,
    &nft_family_drop::NftFamilyDrop(nft_family_drop::Family::Bridge),
    &nft_family_drop::NftFamilyDrop(nft_family_drop::Family::NetdevIngress),
    &nft_family_drop::NftFamilyDrop(nft_family_drop::Family::NetdevEgress),
    &nft_family_drop::NftFamilyDrop(nft_family_drop::Family::Arp),
    &ct_invalid_checksum::CtInvalidChecksum {
        v6: false,
        tcp: false,
    },
    &ct_invalid_checksum::CtInvalidChecksum {
        v6: false,
        tcp: true,
    },
    &ct_invalid_checksum::CtInvalidChecksum {
        v6: true,
        tcp: false,
    },
    &ct_invalid_checksum::CtInvalidChecksum {
        v6: true,
        tcp: true,
    },
];

pub fn find(name: &str) -> Option<&'static dyn Scenario> {
    ALL.iter().copied().find(|s| s.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_described() {
        let mut names: Vec<_> = ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for s in ALL {
            assert!(!s.expect().is_empty(), "{} expects nothing", s.name());
            assert!(s.incident().len() > 30);
        }
    }
}
