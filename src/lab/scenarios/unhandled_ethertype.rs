//! Frames of an ethertype nothing on the receiver handles (a vendor or
//! experimental protocol, LLDP-like traffic from a switch agent): the core
//! drops each as UNHANDLED_PROTO and counts it in the device's rx_dropped.
//! A deterministic way to move a veth's rx_dropped on 6.x: the drop and
//! the counter the NIC statistics show for it must point at the device.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::diagnose::kb;
use crate::diagnose::Id;
use crate::lab::expect::{Expect, ExpectDrop};
use crate::lab::scenarios::Outcome;
use crate::lab::traffic;
use crate::lab::{Lab, LabError};

pub struct UnhandledEthertype;

/// IEEE 802 "local experimental" ethertype: no kernel handler exists.
const ETHERTYPE: u16 = 0x88b5;
const SENT: u32 = 5;

impl super::Scenario for UnhandledEthertype {
    fn name(&self) -> &'static str {
        "unhandled-ethertype"
    }
    fn summary(&self) -> &'static str {
        "frames of an ethertype nothing handles: dropped, counted in the device's rx_dropped"
    }
    fn incident(&self) -> &'static str {
        "A host's NIC shows rx_dropped climbing (ip -s link, node exporters' \
         alerts) while no application loses traffic: a switch or an agent \
         sends frames of a protocol the host does not run (vendor discovery, \
         an experimental ethertype), and the kernel drops each one."
    }
    fn diagnosis(&self) -> Option<Id> {
        Some(kb::entry("UNHANDLED_PROTO").id)
    }
    fn build(&self, lab: &mut Lab) -> Result<(), LabError> {
        lab.pair()
    }
    fn trigger(&self, lab: &mut Lab) -> Result<Outcome, LabError> {
        let mac = lab.mac("srv", "eth0")?;
        // `ip netns exec` mounts the netns's own sysfs: srv's eth0.
        let rx_dropped = |lab: &Lab| -> Result<u64, LabError> {
            let out = lab.exec("srv", &["cat", "/sys/class/net/eth0/statistics/rx_dropped"])?;
            out.trim()
                .parse()
                .map_err(|_| LabError::Traffic(format!("bad rx_dropped '{}'", out.trim())))
        };
        let before = rx_dropped(lab)?;
        traffic::in_netns(&lab.ns("cli").name, move || send(mac, SENT))?;
        let moved = rx_dropped(lab)?.saturating_sub(before);
        if moved < u64::from(SENT) {
            return Err(LabError::Traffic(format!(
                "srv eth0 rx_dropped moved by {moved}, expected {SENT}"
            )));
        }
        Ok(Outcome::from(format!(
            "{SENT} frames of ethertype {ETHERTYPE:#06x} cli -> srv's eth0"
        ))
        .note(format!("srv eth0 rx_dropped +{moved}")))
    }
    fn expect(&self) -> Expect {
        Expect::drops(vec![ExpectDrop {
            min: u64::from(SENT),
            ..ExpectDrop::new("UNHANDLED_PROTO", "__netif_receive_skb_core", "srv").dev("eth0")
        }])
    }
}

fn err(what: &str) -> LabError {
    LabError::Traffic(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// `count` minimal frames of [`ETHERTYPE`] out of eth0 to `dst`, from an
/// AF_PACKET socket in the calling thread's netns.
fn send(dst: [u8; 6], count: u32) -> Result<(), LabError> {
    let proto = ETHERTYPE.to_be();
    // Protocol 0: the socket only sends. One opened with the ethertype
    // would register a receive handler for it, and on kernels whose
    // protocol handlers are not per netns (6.12) srv's frames would be
    // handed to it instead of dropped as unhandled.
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("AF_PACKET socket"));
    }
    // SAFETY: fd was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
    if ifindex == 0 {
        return Err(err("if_nametoindex eth0"));
    }
    // SAFETY: zeroed sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&dst);
    let payload = [0x6eu8; 46];
    for _ in 0..count {
        // SAFETY: valid fd, buffer and sockaddr_ll.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(err("AF_PACKET send"));
        }
    }
    Ok(())
}
