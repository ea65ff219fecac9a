//! Link-layer facts of a network namespace through one RTM_GETLINK dump:
//! each interface's MAC address, its bridge master, and the STP state and
//! timers of a bridge port and its bridge (`ip -d link show` reads the
//! same attributes). sysfs cannot answer for another namespace (it shows
//! the namespace it was mounted in), netlink opened inside can.
use std::io;
use std::net::IpAddr;

use super::ns::{self, NsError};
use super::route::nl;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("rtnetlink: {0}")]
    Netlink(#[from] io::Error),
}

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
const IFLA_BR_FORWARD_DELAY: u16 = 1;
const IFLA_BR_HELLO_TIME: u16 = 2;
const IFLA_BR_MAX_AGE: u16 = 3;
const IFLA_BR_STP_STATE: u16 = 5;
const IFLA_BRPORT_STATE: u16 = 1;
const IFLA_BRPORT_MESSAGE_AGE_TIMER: u16 = 21;
const IFLA_BRPORT_FORWARD_DELAY_TIMER: u16 = 22;

/// One interface as the link dump describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// The master device's ifindex (a bridge, a bond, a VRF).
    pub master: Option<u32>,
    /// IFLA_INFO_KIND: "bridge", "veth"...
    pub kind: Option<String>,
    /// For a bridge port: its STP state (BR_STATE_*) and timers.
    pub port: Option<PortStp>,
    /// For a bridge: its STP settings.
    pub bridge: Option<BridgeStp>,
}

/// A bridge port's STP view. Times are in milliseconds (the kernel reports
/// clock_t, 1/100 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStp {
    pub state: u8,
    pub forward_delay_timer_ms: Option<u64>,
    pub message_age_timer_ms: Option<u64>,
}

/// A bridge's STP settings, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStp {
    /// 0 off, 1 kernel STP, 2 user-space STP (mstpd).
    pub stp_state: u32,
    pub forward_delay_ms: u64,
    pub hello_time_ms: u64,
    pub max_age_ms: u64,
}

/// The name of a BR_STATE_* value (include/uapi/linux/if_bridge.h).
pub fn port_state_name(state: u8) -> &'static str {
    match state {
        0 => "disabled",
        1 => "listening",
        2 => "learning",
        3 => "forwarding",
        4 => "blocking",
        _ => "unknown",
    }
}

/// Every interface of netns `ino`.
pub fn links(ino: u32) -> Result<Vec<LinkInfo>, LinkError> {
    Ok(ns::run_in(ino, links_here)??)
}

/// Every interface of the calling thread's netns.
pub fn links_here() -> io::Result<Vec<LinkInfo>> {
    Ok(nl::link_dump_here()?
        .iter()
        .filter_map(|b| parse(b))
        .collect())
}

/// The interface named `dev` in netns `ino` and, when it is a bridge port,
/// its bridge.
pub fn with_master(ino: u32, dev: &str) -> Result<Option<(LinkInfo, Option<LinkInfo>)>, LinkError> {
    let all = links(ino)?;
    let Some(l) = all.iter().find(|l| l.name == dev).cloned() else {
        return Ok(None);
    };
    let master = l
        .master
        .and_then(|m| all.iter().find(|x| x.index == m).cloned());
    Ok(Some((l, master)))
}

/// An interface found by its MAC address, in whichever namespace has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacOwner {
    pub netns: u32,
    pub netns_name: String,
    pub dev: String,
    /// Its addresses (IPv4 and IPv6).
    pub addrs: Vec<IpAddr>,
}

/// The interfaces of netns `ino` whose MAC is `mac`, with their addresses:
/// a frame's source MAC names the interface that sent it, where an IP
/// source may be shared by many namespaces.
pub fn with_mac(ino: u32, mac: [u8; 6]) -> Result<Vec<(String, Vec<IpAddr>)>, LinkError> {
    Ok(ns::run_in(ino, move || mac_here(mac))??)
}

fn mac_here(mac: [u8; 6]) -> io::Result<Vec<(String, Vec<IpAddr>)>> {
    let hits: Vec<LinkInfo> = links_here()?
        .into_iter()
        .filter(|l| l.mac == Some(mac))
        .collect();
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let addrs = super::addr::addrs_here(libc::AF_UNSPEC)?;
    Ok(hits
        .into_iter()
        .map(|l| {
            let a = addrs
                .iter()
                .filter(|a| a.index == l.index)
                .map(|a| a.addr)
                .collect();
            (l.name, a)
        })
        .collect())
}

/// aa:bb:cc:dd:ee:ff
pub fn mac_string(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

fn u64_of(v: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?))
}

/// clock_t (USER_HZ = 100) to milliseconds.
fn cs_ms(cs: u64) -> u64 {
    cs * 10
}

/// An RTM_NEWLINK body: struct ifinfomsg (16 bytes) + IFLA_* attributes.
pub fn parse(b: &[u8]) -> Option<LinkInfo> {
    let mut l = LinkInfo {
        index: u32_of(b.get(4..8)?)?,
        ..LinkInfo::default()
    };
    for (t, v) in nl::attrs(b.get(16..)?) {
        match t {
            IFLA_IFNAME => {
                l.name = String::from_utf8_lossy(v.split(|&c| c == 0).next().unwrap_or(v)).into()
            }
            IFLA_ADDRESS => l.mac = v.try_into().ok(),
            IFLA_MASTER => l.master = u32_of(v).filter(|&m| m != 0),
            IFLA_LINKINFO => linkinfo(&mut l, v),
            _ => {}
        }
    }
    Some(l)
}

fn linkinfo(l: &mut LinkInfo, b: &[u8]) {
    let mut slave = None;
    let mut data = None;
    for (t, v) in nl::attrs(b) {
        match t {
            IFLA_INFO_KIND => {
                l.kind =
                    Some(String::from_utf8_lossy(v.split(|&c| c == 0).next().unwrap_or(v)).into())
            }
            IFLA_INFO_DATA => data = Some(v),
            IFLA_INFO_SLAVE_DATA => slave = Some(v),
            _ => {}
        }
    }
    if let (Some("bridge"), Some(d)) = (l.kind.as_deref(), data) {
        let mut br = BridgeStp::default();
        for (t, v) in nl::attrs(d) {
            let ms = || u32_of(v).map(|x| cs_ms(u64::from(x))).unwrap_or(0);
            match t {
                IFLA_BR_FORWARD_DELAY => br.forward_delay_ms = ms(),
                IFLA_BR_HELLO_TIME => br.hello_time_ms = ms(),
                IFLA_BR_MAX_AGE => br.max_age_ms = ms(),
                IFLA_BR_STP_STATE => br.stp_state = u32_of(v).unwrap_or(0),
                _ => {}
            }
        }
        l.bridge = Some(br);
    }
    if let Some(s) = slave {
        let attrs = nl::attrs(s);
        // Only a bridge port carries IFLA_BRPORT_STATE (a bond slave's
        // data uses the same numbers for other things, but has no timers).
        let state = attrs
            .iter()
            .find(|(t, _)| *t == IFLA_BRPORT_STATE)
            .and_then(|(_, v)| v.first().copied());
        let timer = |k: u16| {
            attrs
                .iter()
                .find(|(t, _)| *t == k)
                .and_then(|(_, v)| u64_of(v))
                .map(cs_ms)
        };
        if let (Some(state), Some(fd)) = (state, timer(IFLA_BRPORT_FORWARD_DELAY_TIMER)) {
            l.port = Some(PortStp {
                state,
                forward_delay_timer_ms: Some(fd),
                message_age_timer_ms: timer(IFLA_BRPORT_MESSAGE_AGE_TIMER),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[4..8].copy_from_slice(&7u32.to_ne_bytes());
        for (t, v) in attrs {
            nl::put_attr(&mut b, *t, v);
        }
        b
    }

    #[test]
    fn parses_a_listening_bridge_port_and_its_bridge() {
        let mut port = Vec::new();
        nl::put_attr(&mut port, IFLA_BRPORT_STATE, &[1]);
        nl::put_attr(
            &mut port,
            IFLA_BRPORT_FORWARD_DELAY_TIMER,
            &2570u64.to_ne_bytes(),
        );
        let mut info = Vec::new();
        nl::put_attr(&mut info, IFLA_INFO_KIND, b"veth\0");
        nl::put_attr(&mut info, IFLA_INFO_SLAVE_DATA, &port);
        let l = parse(&body(&[
            (IFLA_IFNAME, b"eth0\0".to_vec()),
            (IFLA_ADDRESS, vec![2, 0, 0, 0, 0, 9]),
            (IFLA_MASTER, 3u32.to_ne_bytes().to_vec()),
            (IFLA_LINKINFO, info),
        ]))
        .unwrap();
        assert_eq!((l.index, l.name.as_str(), l.master), (7, "eth0", Some(3)));
        assert_eq!(mac_string(&l.mac.unwrap()), "02:00:00:00:00:09");
        let p = l.port.unwrap();
        assert_eq!(port_state_name(p.state), "listening");
        assert_eq!(p.forward_delay_timer_ms, Some(25_700));

        let mut br = Vec::new();
        nl::put_attr(&mut br, IFLA_BR_FORWARD_DELAY, &3000u32.to_ne_bytes());
        nl::put_attr(&mut br, IFLA_BR_STP_STATE, &1u32.to_ne_bytes());
        nl::put_attr(&mut br, IFLA_BR_HELLO_TIME, &200u32.to_ne_bytes());
        let mut info = Vec::new();
        nl::put_attr(&mut info, IFLA_INFO_KIND, b"bridge\0");
        nl::put_attr(&mut info, IFLA_INFO_DATA, &br);
        let b = parse(&body(&[
            (IFLA_IFNAME, b"br0\0".to_vec()),
            (IFLA_LINKINFO, info),
        ]))
        .unwrap();
        let s = b.bridge.unwrap();
        assert_eq!(
            (s.stp_state, s.forward_delay_ms, s.hello_time_ms),
            (1, 30_000, 2_000)
        );
        assert!(b.port.is_none());
    }
}
