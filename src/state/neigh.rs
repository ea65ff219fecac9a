//! Neighbour (ARP / NDP) entries of a network namespace via RTM_GETNEIGH:
//! an INCOMPLETE or FAILED entry explains drops with reason NEIGH_FAILED /
//! NEIGH_QUEUEFULL (packets queued behind an unanswered resolution).
use std::fmt;
use std::io;
use std::net::IpAddr;

use super::ns::{self, NsError};
use super::route::{ip_from, nl};

#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("rtnetlink: {0}")]
    Netlink(#[from] io::Error),
    #[error("no interface named '{0}' in this network namespace")]
    NoDevice(String),
}

/// NUD_* state bits (include/uapi/linux/neighbour.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NudState(pub u16);

impl NudState {
    pub const INCOMPLETE: u16 = 0x01;
    pub const REACHABLE: u16 = 0x02;
    pub const STALE: u16 = 0x04;
    pub const DELAY: u16 = 0x08;
    pub const PROBE: u16 = 0x10;
    pub const FAILED: u16 = 0x20;
    pub const NOARP: u16 = 0x40;
    pub const PERMANENT: u16 = 0x80;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// True when the neighbour is not (yet) resolved: packets to it wait in
    /// a short queue (INCOMPLETE) or are dropped (FAILED).
    pub fn unresolved(self) -> bool {
        self.has(Self::INCOMPLETE) || self.has(Self::FAILED)
    }
}

impl fmt::Display for NudState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u16, &str); 8] = [
            (NudState::INCOMPLETE, "INCOMPLETE"),
            (NudState::REACHABLE, "REACHABLE"),
            (NudState::STALE, "STALE"),
            (NudState::DELAY, "DELAY"),
            (NudState::PROBE, "PROBE"),
            (NudState::FAILED, "FAILED"),
            (NudState::NOARP, "NOARP"),
            (NudState::PERMANENT, "PERMANENT"),
        ];
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(b, _)| self.has(*b))
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("NONE")
        } else {
            f.write_str(&names.join("|"))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Neighbour {
    pub dev: String,
    pub addr: IpAddr,
    pub state: NudState,
    /// Link-layer address, absent while unresolved.
    pub lladdr: Option<Vec<u8>>,
    /// NTF_ROUTER: the neighbour advertised itself as an IPv6 router.
    pub router: bool,
}

impl Neighbour {
    /// lladdr as aa:bb:cc:dd:ee:ff.
    pub fn lladdr_string(&self) -> Option<String> {
        self.lladdr.as_ref().map(|l| {
            l.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
    }
}

/// The neighbour entry for `addr` on `dev` inside netns `ino`, if any.
pub fn lookup(ino: u32, dev: &str, addr: IpAddr) -> Result<Option<Neighbour>, NeighError> {
    let dev = dev.to_string();
    ns::run_in(ino, move || lookup_here(&dev, addr))?
}

/// [`lookup`] in the calling thread's netns.
pub fn lookup_here(dev: &str, addr: IpAddr) -> Result<Option<Neighbour>, NeighError> {
    let index = nl::ifindex(dev).ok_or_else(|| NeighError::NoDevice(dev.to_string()))?;
    Ok(dump_here(addr.is_ipv4())?
        .into_iter()
        .find(|(i, n)| *i == index && n.addr == addr)
        .map(|(_, n)| n))
}

/// Every neighbour entry of one family in netns `ino`.
pub fn list(ino: u32, ipv4: bool) -> Result<Vec<Neighbour>, NeighError> {
    ns::run_in(ino, move || {
        dump_here(ipv4).map(|v| v.into_iter().map(|(_, n)| n).collect())
    })?
}

/// (ifindex, entry) for every entry of the family. A dump, not a
/// single-entry RTM_GETNEIGH: that needs strict checking and proxy flags
/// right, and the tables of a namespace are small.
fn dump_here(ipv4: bool) -> Result<Vec<(u32, Neighbour)>, NeighError> {
    let family = if ipv4 { libc::AF_INET } else { libc::AF_INET6 } as u8;
    // struct ndmsg: family, pad1, pad2, ifindex, state, flags, type
    let mut req = vec![family, 0, 0, 0];
    req.extend_from_slice(&0i32.to_ne_bytes());
    req.extend_from_slice(&[0, 0, 0, 0]);
    let sock = nl::Socket::open()?;
    let msgs = sock.request(nl::RTM_GETNEIGH, nl::NLM_F_DUMP, &req)?;
    let mut out = Vec::new();
    for m in msgs.iter().filter(|m| m.ty == nl::RTM_NEWNEIGH) {
        if let Some(e) = parse(&m.body) {
            out.push(e);
        }
    }
    Ok(out)
}

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NTF_ROUTER: u8 = 0x80;

pub(crate) fn parse(b: &[u8]) -> Option<(u32, Neighbour)> {
    if b.len() < 12 {
        return None;
    }
    let index = i32::from_ne_bytes(b[4..8].try_into().ok()?) as u32;
    let state = u16::from_ne_bytes([b[8], b[9]]);
    let flags = b[10];
    let mut addr = None;
    let mut lladdr = None;
    for (t, v) in nl::attrs(&b[12..]) {
        match t {
            NDA_DST => addr = ip_from(v),
            NDA_LLADDR => lladdr = Some(v.to_vec()),
            _ => {}
        }
    }
    Some((
        index,
        Neighbour {
            dev: nl::ifname(index).unwrap_or_else(|| format!("if{index}")),
            addr: addr?,
            state: NudState(state),
            lladdr,
            router: flags & NTF_ROUTER != 0,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names() {
        assert_eq!(NudState(0x20).to_string(), "FAILED");
        assert_eq!(NudState(0).to_string(), "NONE");
        assert_eq!(NudState(0x81).to_string(), "INCOMPLETE|PERMANENT");
        assert!(NudState(1).unresolved());
        assert!(!NudState(2).unresolved());
    }
}
