//! The send-failure probe (sendfail.bpf.c): sends that fail with EMSGSIZE
//! before an skb exists, seen at sendto/sendmsg's syscall tracepoints.
//! `explain` attaches it for the capture only; each failing socket is a
//! [`SendFailure`]: the sender, its socket's fd, the length it tried,
//! where to, and how many sends failed (`pipeline` hands them to
//! `diagnose::emsgsize`).
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use super::ProbeError;

#[allow(clippy::all, non_camel_case_types, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/sendfail.skel.rs"));
}
use skel::*;

/// One socket whose sends failed with EMSGSIZE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// The sending task's netns (not necessarily the socket's).
    pub netns: u32,
    pub tgid: u32,
    pub pid: u32,
    pub comm: String,
    pub fd: u32,
    /// Bytes the last failed send tried.
    pub len: u64,
    pub count: u64,
    pub dst: Option<SocketAddr>,
}

/// The attached programs and their table of failing sockets.
pub struct SendFailProbe {
    // Links first: dropped (detached) before the skeleton.
    _links: Vec<Link>,
    skel: SendfailSkel<'static>,
}

impl SendFailProbe {
    pub fn attach() -> Result<SendFailProbe, ProbeError> {
        let load = |e: libbpf_rs::Error| ProbeError::Load {
            probe: "sendfail",
            detail: e.to_string(),
        };
        // The skeleton borrows this for its life, as the other probes'.
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let open = SendfailSkelBuilder::default().open(storage).map_err(load)?;
        let skel = open.load().map_err(load)?;
        let mut links = Vec::new();
        for (name, prog) in [
            ("sys_enter_sendto", &skel.progs.nw_enter_sendto),
            ("sys_enter_sendmsg", &skel.progs.nw_enter_sendmsg),
            ("sys_exit_sendto", &skel.progs.nw_exit_sendto),
            ("sys_exit_sendmsg", &skel.progs.nw_exit_sendmsg),
        ] {
            links.push(prog.attach().map_err(|e| ProbeError::Attach {
                probe: "sendfail",
                hook: format!("tracepoint/syscalls/{name}"),
                detail: e.to_string(),
            })?);
        }
        Ok(SendFailProbe {
            _links: links,
            skel,
        })
    }
}

impl SendFailProbe {
    /// Every failing socket so far, each with its running count.
    pub fn failures(&self) -> Vec<SendFailure> {
        let map = &self.skel.maps.fails;
        map.keys()
            .filter_map(|k| {
                let v = map.lookup(&k, MapFlags::ANY).ok()??;
                decode(&k, &v)
            })
            .collect()
    }
}

/// One `struct nw_sendfail_key` and its `struct nw_sendfail`.
fn decode(k: &[u8], d: &[u8]) -> Option<SendFailure> {
    let u32_at = |b: &[u8], o: usize| Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_ne_bytes(d.get(o..o + 8)?.try_into().ok()?));
    let u16_at = |o: usize| Some(u16::from_ne_bytes(d.get(o..o + 2)?.try_into().ok()?));
    let (netns, tgid, fd) = (u32_at(k, 0)?, u32_at(k, 4)?, u32_at(k, 8)?);
    let (len, count, pid) = (u64_at(0)?, u64_at(8)?, u32_at(d, 16)?);
    let family = u16_at(24)?;
    let port = u16::from_be(u16_at(26)?);
    let addr = d.get(28..44)?;
    let ip: Option<IpAddr> = match family {
        2 => Some(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into()),
        10 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?).into()),
        _ => None,
    };
    let comm = d.get(44..60)?;
    let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
    Some(SendFailure {
        netns,
        tgid,
        pid,
        fd,
        len,
        count,
        dst: ip.map(|ip| SocketAddr::new(ip, port)),
        comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
    })
}
