//! The routes and policy rules of a namespace as a set that can be read,
//! compared with another namespace's and written back (`netwhy bisect`
//! and its undo journal): RTM_GETROUTE / RTM_GETRULE dumps, and
//! RTM_NEWROUTE / RTM_DELROUTE / RTM_NEWRULE / RTM_DELRULE built from the
//! dumped messages themselves, so every attribute the kernel reported
//! (metrics, preference, multipath weights, rule selectors) goes back as
//! it came, without a model of each one that could forget a field.
//!
//! Interface indexes differ between namespaces (and across a device's
//! re-creation), so the attributes that hold one (RTA_OIF, RTA_IIF, the
//! nexthops of RTA_MULTIPATH) are kept as device names and turned back
//! into indexes where the entry is written.
//!
//! Kernel-owned routes are left out: those of the `local` table and those
//! with `proto kernel` are made by the kernel for addresses and links
//! (and come back with them), `proto redirect` / `proto ra` ones are
//! learnt from the network and expire. What remains is what a person or a
//! daemon configured: static, boot, dhcp, blackhole, policy tables.
use std::fs::File;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::netlink as nl;
use super::route::{ip_from, nl::ifindex, nl::ifname};

mod text;

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const RTM_GETRULE: u16 = 34;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_IIF: u16 = 3;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_CACHEINFO: u16 = 12;
const RTA_TABLE: u16 = 15;
const RTA_EXPIRES: u16 = 23;

const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_IIFNAME: u16 = 3;
const FRA_GOTO: u16 = 4;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FRA_OIFNAME: u16 = 17;
const FRA_SUPPRESS_IFGROUP: u16 = 13;
const FRA_SUPPRESS_PREFIXLEN: u16 = 14;
const FRA_PROTOCOL: u16 = 21;

const RT_TABLE_LOCAL: u8 = 255;
const RTPROT_REDIRECT: u8 = 1;
const RTPROT_KERNEL: u8 = 2;
const RTPROT_RA: u8 = 9;
/// The one nexthop / route flag that is configuration (the others are
/// state: dead, linkdown, offload...).
const RTNH_F_ONLINK: u32 = 4;
/// The one rule flag that is configuration (`not`).
const FIB_RULE_INVERT: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum RouteSetError {
    #[error("rtnetlink: {0}")]
    Netlink(#[from] nl::NlError),
    #[error("{what} {entry}: {source}")]
    Write {
        what: &'static str,
        entry: String,
        source: io::Error,
    },
    #[error("no interface named '{0}' in this namespace")]
    NoDevice(String),
    #[error("netns {0}: {1}")]
    Netns(String, String),
}

/// One route or policy rule as the kernel dumped it, minus volatile state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// A policy rule (`ip rule`) rather than a route.
    pub rule: bool,
    /// struct rtmsg / struct fib_rule_hdr (12 bytes), state flags cleared.
    pub hdr: Vec<u8>,
    /// Attributes in dump order; those naming a device are empty here.
    pub attrs: Vec<(u16, Vec<u8>)>,
    /// Device names for RTA_OIF, RTA_IIF and each multipath nexthop, in
    /// attribute order.
    pub devs: Vec<String>,
}

fn u32_of(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

impl Entry {
    fn attr(&self, ty: u16) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| v.as_slice())
    }

    pub fn family(&self) -> u8 {
        self.hdr[0]
    }

    fn table(&self) -> u32 {
        self.attr(if self.rule { FRA_TABLE } else { RTA_TABLE })
            .and_then(u32_of)
            .unwrap_or(u32::from(self.hdr[4]))
    }

    fn prefix(&self, ty: u16, len: u8) -> String {
        let zero = if i32::from(self.family()) == libc::AF_INET6 {
            "::"
        } else {
            "0.0.0.0"
        };
        let ip = self
            .attr(ty)
            .and_then(ip_from)
            .map_or(zero.to_string(), |a| a.to_string());
        format!("{ip}/{len}")
    }

    /// True when a route's nexthop is a gateway (it needs a route to the
    /// gateway to be added, so it is added after link routes).
    fn via(&self) -> bool {
        self.attr(RTA_GATEWAY).is_some() || self.attr(RTA_MULTIPATH).is_some()
    }

    /// The message body with device names turned into this namespace's
    /// indexes.
    fn body(&self) -> Result<Vec<u8>, RouteSetError> {
        let mut b = self.hdr.clone();
        let mut devs = self.devs.iter();
        let mut index = || -> Result<u32, RouteSetError> {
            let name = devs.next().map_or("", |d| d.as_str());
            ifindex(name).ok_or_else(|| RouteSetError::NoDevice(name.to_string()))
        };
        let mut has_prio = false;
        for (t, v) in &self.attrs {
            match *t {
                RTA_OIF | RTA_IIF if !self.rule => nl::put(&mut b, *t, &index()?.to_ne_bytes()),
                RTA_MULTIPATH if !self.rule => {
                    let mut v = v.clone();
                    let mut at = 0;
                    while at + 8 <= v.len() {
                        let len = usize::from(u16::from_ne_bytes([v[at], v[at + 1]]));
                        v[at + 4..at + 8].copy_from_slice(&index()?.to_ne_bytes());
                        if len < 8 {
                            break;
                        }
                        at += nl::align(len);
                    }
                    nl::put(&mut b, *t, &v);
                }
                t => {
                    has_prio |= self.rule && t == FRA_PRIORITY;
                    nl::put(&mut b, t, v);
                }
            }
        }
        // A rule of preference 0 is dumped without FRA_PRIORITY, and one
        // added without it would get the kernel's next free preference.
        if self.rule && !has_prio {
            nl::put(&mut b, FRA_PRIORITY, &0u32.to_ne_bytes());
        }
        Ok(b)
    }
}

/// A dumped route, or None for kernel-owned and learnt routes.
fn route_entry(body: &[u8]) -> Option<Entry> {
    if body.len() < 12 {
        return None;
    }
    let (table, proto) = (body[4], body[5]);
    let mut e = Entry {
        rule: false,
        hdr: body[..12].to_vec(),
        attrs: Vec::new(),
        devs: Vec::new(),
    };
    let flags = u32_of(&body[8..]).unwrap_or(0) & RTNH_F_ONLINK;
    e.hdr[8..12].copy_from_slice(&flags.to_ne_bytes());
    for (t, v) in nl::attrs(&body[12..]) {
        match t {
            RTA_CACHEINFO | RTA_EXPIRES => {}
            RTA_OIF | RTA_IIF => {
                let i = u32_of(v).unwrap_or(0);
                e.devs.push(ifname(i).unwrap_or_else(|| format!("if{i}")));
                e.attrs.push((t, Vec::new()));
            }
            RTA_MULTIPATH => {
                let mut v = v.to_vec();
                let mut at = 0;
                while at + 8 <= v.len() {
                    let len = usize::from(u16::from_ne_bytes([v[at], v[at + 1]]));
                    if len < 8 || at + len > v.len() {
                        break;
                    }
                    v[at + 2] &= RTNH_F_ONLINK as u8;
                    let i = u32_of(&v[at + 4..]).unwrap_or(0);
                    e.devs.push(ifname(i).unwrap_or_else(|| format!("if{i}")));
                    v[at + 4..at + 8].copy_from_slice(&[0; 4]);
                    at += nl::align(len);
                }
                e.attrs.push((t, v));
            }
            t => e.attrs.push((t, v.to_vec())),
        }
    }
    let table = e.attr(RTA_TABLE).and_then(u32_of).unwrap_or(table.into());
    if table == u32::from(RT_TABLE_LOCAL)
        || matches!(proto, RTPROT_KERNEL | RTPROT_REDIRECT | RTPROT_RA)
    {
        return None;
    }
    Some(e)
}

fn rule_entry(body: &[u8]) -> Option<Entry> {
    if body.len() < 12 {
        return None;
    }
    let mut e = Entry {
        rule: true,
        hdr: body[..12].to_vec(),
        attrs: nl::attrs(&body[12..])
            .map(|(t, v)| (t, v.to_vec()))
            .collect(),
        devs: Vec::new(),
    };
    let flags = u32_of(&body[8..]).unwrap_or(0) & FIB_RULE_INVERT;
    e.hdr[8..12].copy_from_slice(&flags.to_ne_bytes());
    Some(e)
}

/// Every configured route (v4, v6, all tables) and policy rule of the
/// calling thread's namespace, sorted.
pub fn read_here() -> Result<Vec<Entry>, RouteSetError> {
    let s = nl::Socket::open(libc::NETLINK_ROUTE)?;
    let mut out = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let mut rtmsg = vec![family];
        rtmsg.resize(12, 0);
        for b in s.dump(RTM_GETROUTE, &rtmsg)? {
            out.extend(route_entry(&b));
        }
        for b in s.dump(RTM_GETRULE, &rtmsg)? {
            out.extend(rule_entry(&b));
        }
    }
    out.sort();
    Ok(out)
}

/// Make the calling thread's namespace hold exactly `want` (besides the
/// kernel-owned routes, which are not touched): removes what is not in it
/// (gateway routes before the link routes they may need), then adds what
/// is missing (link routes first). Returns how many entries changed.
pub fn settle_here(want: &[Entry]) -> Result<usize, RouteSetError> {
    let now = read_here()?;
    let s = nl::Socket::open(libc::NETLINK_ROUTE)?;
    let mut gone: Vec<&Entry> = now.iter().filter(|e| !want.contains(e)).collect();
    gone.sort_by_key(|e| (e.rule, !e.via()));
    let mut new: Vec<&Entry> = want.iter().filter(|e| !now.contains(e)).collect();
    new.sort_by_key(|e| (!e.rule, e.via()));
    for e in &gone {
        let ty = if e.rule { RTM_DELRULE } else { RTM_DELROUTE };
        match s.request(ty, nl::NLM_F_ACK, &e.body()?) {
            Ok(_) => {}
            // Gone already (a route that went with another).
            Err(nl::NlError::Kernel(err))
                if matches!(err.raw_os_error(), Some(libc::ESRCH) | Some(libc::ENOENT)) => {}
            Err(err) => {
                return Err(RouteSetError::Write {
                    what: "delete",
                    entry: e.describe(),
                    source: err.into(),
                })
            }
        }
    }
    for e in &new {
        let ty = if e.rule { RTM_NEWRULE } else { RTM_NEWROUTE };
        s.request(ty, nl::NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &e.body()?)
            .map_err(|err| RouteSetError::Write {
                what: "add",
                entry: e.describe(),
                source: err.into(),
            })?;
    }
    Ok(gone.len() + new.len())
}

fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> Result<T, RouteSetError> + Send + 'static,
) -> Result<Option<T>, RouteSetError> {
    let file = match File::open(Path::new("/run/netns").join(netns)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RouteSetError::Netns(netns.into(), e.to_string())),
    };
    crate::sys::netns::run_in(file, f)
        .map_err(|e| RouteSetError::Netns(netns.into(), e.to_string()))?
        .map(Some)
}

/// [`read_here`] in named netns `netns` (None when there is no such).
pub fn read_in(netns: &str) -> Result<Option<Vec<Entry>>, RouteSetError> {
    in_netns(netns, read_here)
}

/// [`settle_here`] in named netns `netns`; a namespace that is gone needs
/// nothing (Ok(0)).
pub fn settle_in(netns: &str, want: Vec<Entry>) -> Result<usize, RouteSetError> {
    Ok(in_netns(netns, move || settle_here(&want))?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: [u8; 4], len: u8, ty: u8, proto: u8, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![libc::AF_INET as u8, len, 0, 0, 254, proto, 0, ty];
        b.extend(0x10u32.to_ne_bytes()); // linkdown: state, not setting
        nl::put(&mut b, RTA_TABLE, &254u32.to_ne_bytes());
        nl::put(&mut b, RTA_DST, &dst);
        for (t, v) in attrs {
            nl::put(&mut b, *t, v);
        }
        b
    }

    #[test]
    fn kernel_routes_are_left_out_and_state_flags_cleared() {
        assert!(route_entry(&route([10, 0, 0, 0], 8, 1, RTPROT_KERNEL, &[])).is_none());
        let e = route_entry(&route(
            [198, 18, 0, 2],
            32,
            6,
            4,
            &[(RTA_PRIORITY, 5u32.to_ne_bytes().to_vec())],
        ))
        .unwrap();
        assert_eq!(u32_of(&e.hdr[8..]), Some(0));
        assert_eq!(e.key(), "198.18.0.2/32 table main metric 5");
        assert_eq!(
            e.describe(),
            "blackhole 198.18.0.2/32 table main proto static metric 5"
        );
        // RTA_TABLE is what counts (the header's byte caps at 255).
        let mut b = vec![libc::AF_INET as u8, 32, 0, 0, 252, 4, 0, 1];
        b.extend(0u32.to_ne_bytes());
        nl::put(&mut b, RTA_TABLE, &255u32.to_ne_bytes());
        assert!(route_entry(&b).is_none());
    }

    #[test]
    fn rules_read_like_ip_rule_and_keep_preference_zero() {
        let mut b = vec![libc::AF_INET as u8, 32, 0, 0, 100, 0, 0, 1];
        b.extend(0u32.to_ne_bytes());
        nl::put(&mut b, FRA_DST, &[198, 18, 0, 2]);
        nl::put(&mut b, FRA_TABLE, &100u32.to_ne_bytes());
        nl::put(&mut b, FRA_SUPPRESS_PREFIXLEN, &u32::MAX.to_ne_bytes());
        nl::put(&mut b, FRA_PROTOCOL, &[0]);
        let e = rule_entry(&b).unwrap();
        assert_eq!(e.describe(), "pref 0 from all to 198.18.0.2/32 lookup 100");
        let body = e.body().unwrap();
        let prio: Vec<_> = nl::attrs(&body[12..])
            .filter(|(t, _)| *t == FRA_PRIORITY)
            .collect();
        assert_eq!(prio, [(FRA_PRIORITY, &0u32.to_ne_bytes()[..])]);
    }
}
