//! A BPF program on the server's veth denies one UDP service: at tc ingress
//! (cls_bpf), or in XDP (native veth XDP, or generic XDP).
use std::time::Duration;

use crate::diagnose::kb::specific;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::{bpf, traffic, Lab, LabError};

/// The deny program, attached as `.0` says (cls_bpf or XDP).
pub struct TcBpfDrop(pub bpf::How);

/// The UDP port the planted program denies; 5301 is let through.
pub const PORT: u16 = 5300;

impl super::Scenario for TcBpfDrop {
    fn name(&self) -> &'static str {
        match self.0 {
            bpf::How::Xdp { generic: false } => "xdp-drop",
            bpf::How::Xdp { generic: true } => "xdp-generic-drop",
            _ => "tc-bpf-drop",
        }
    }
    fn summary(&self) -> &'static str {
        match self.0 {
            bpf::How::Xdp { generic: false } => {
                "a native XDP program on the server's veth drops udp/5300"
            }
            bpf::How::Xdp { generic: true } => {
                "a generic-mode XDP program on the server's veth drops udp/5300"
            }
            _ => "a TC ingress BPF program on the server's veth drops udp/5300",
        }
    }
    fn incident(&self) -> &'static str {
        "A CNI (Cilium, Calico eBPF) or a hand-written TC program on a pod's or \
         host's interface returns TC_ACT_SHOT for a service: the server is up and \
         listening, nftables is empty, and the kernel only says TC_INGRESS, not \
         which of the BPF programs on the box decided (for XDP drops, not even \
         that: NOT_SPECIFIED in the driver or generic-XDP path)."
    }
    fn diagnosis(&self) -> Option<Id> {
        match self.0 {
            bpf::How::Xdp { .. } => Some(specific::XDP_BPF_DROP.id),
            _ => Some(specific::TC_BPF_DROP.id),
        }
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()?;
        bpf::plant_udp_deny(&lab.ns("srv").name, "eth0", PORT, self.0).map(|_| ())
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let srv = lab.ns("srv").name.clone();
        let cli = lab.ns("cli").name.clone();
        let denied = traffic::udp_socket(&srv, "198.18.0.2:5300".parse().expect("literal"))?;
        let allowed = traffic::udp_socket(&srv, "198.18.0.2:5301".parse().expect("literal"))?;
        traffic::udp_send(
            &cli,
            "198.18.0.2:5300".parse().expect("literal"),
            3,
            b"nw-deny",
        )?;
        traffic::udp_send(
            &cli,
            "198.18.0.2:5301".parse().expect("literal"),
            1,
            b"nw-pass",
        )?;
        let got_denied = traffic::drain(&denied, Duration::from_millis(200));
        let got_allowed = traffic::drain(&allowed, Duration::from_millis(200));
        if got_denied != 0 || got_allowed != 1 {
            return Err(LabError::Traffic(format!(
                "expected 0 datagrams on :5300 and 1 on :5301, got {got_denied} and {got_allowed}"
            )));
        }
        Ok(Outcome::from(
            "3 UDP datagrams cli -> 198.18.0.2:5300 (a socket listens): none arrived; \
             1 to :5301 arrived",
        ))
    }
    fn expect(&self) -> Expect {
        // What this kernel (6.18) reports: a tc verdict has its own reason;
        // an XDP_DROP is a plain kfree_skb in veth's XDP receive path, or
        // in the generic-XDP hook.
        let (reason, function) = match self.0 {
            bpf::How::Xdp { generic: false } => ("NOT_SPECIFIED", "veth_xdp_rcv_skb"),
            bpf::How::Xdp { generic: true } => ("NOT_SPECIFIED", "do_xdp_generic"),
            _ => ("TC_INGRESS", "__netif_receive_skb_core"),
        };
        Expect::drops(vec![ExpectDrop {
            min: 3,
            ..ExpectDrop::new(reason, function, "srv").dev("eth0").flow(
                "udp",
                "198.18.0.2",
                Some(PORT),
            )
        }])
        .absent(ExpectDrop::new("NO_SOCKET", "*", "srv"))
    }
}
