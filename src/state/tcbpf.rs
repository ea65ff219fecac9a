//! BPF programs attached to a device's packet hooks, in the device's own
//! network namespace: cls_bpf filters on clsact (rtnetlink RTM_GETTFILTER,
//! `TCA_BPF_ID`), tcx links (BPF_PROG_QUERY on the ifindex) and XDP
//! (RTM_GETLINK, `IFLA_XDP`). The kernel reports a TC drop as TC_INGRESS /
//! TC_EGRESS and an XDP drop not at all: these are the candidates that made
//! the decision, with what `bpf_prog_get_info_by_fd` says about each.
use std::fmt;
use std::io;

use serde::Serialize;

use super::netlink;
use super::ns::{self, NsError};
use super::route::nl;

#[derive(Debug, thiserror::Error)]
pub enum TcBpfError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("rtnetlink: {0}")]
    Netlink(#[from] io::Error),
    #[error("no interface named '{0}' in this network namespace")]
    NoDevice(String),
}

/// Which packet hook of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    Ingress,
    Egress,
    Xdp,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Ingress => "ingress",
            Hook::Egress => "egress",
            Hook::Xdp => "xdp",
        })
    }
}

/// How the program is attached: what detaching it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Attach {
    /// A cls_bpf filter on the clsact (or ingress) qdisc.
    ClsBpf {
        priority: u16,
        handle: u32,
        chain: u32,
        direct_action: bool,
    },
    /// A tcx link or attachment (kernel 6.6+); runs before cls_bpf.
    Tcx { position: usize },
    /// XDP in `mode` (drv, skb (generic), hw).
    Xdp { mode: &'static str },
}

/// One program on a hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookProg {
    pub dev: String,
    pub hook: Hook,
    pub attach: Attach,
    pub id: u32,
    /// The program's name as the kernel keeps it (at most 15 characters).
    pub name: String,
    /// Hex of the 8-byte tag (a hash of the instructions).
    pub tag: String,
    /// The name the cls_bpf filter was given (the object file and section
    /// for `tc`), when the loader set one.
    pub filter_name: Option<String>,
}

impl fmt::Display for HookProg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BPF program id {} '{}' (tag {}) on {} {}",
            self.id, self.name, self.tag, self.dev, self.hook
        )?;
        match &self.attach {
            Attach::ClsBpf {
                priority,
                handle,
                chain,
                direct_action,
            } => {
                write!(f, " as cls_bpf filter pref {priority} handle {handle:#x}")?;
                if *chain != 0 {
                    write!(f, " chain {chain}")?;
                }
                if *direct_action {
                    f.write_str(" direct-action")?;
                }
                Ok(())
            }
            Attach::Tcx { position } => write!(f, " via tcx (position {position})"),
            Attach::Xdp { mode } => write!(f, " (mode {mode})"),
        }
    }
}

/// Programs on `hook` of `dev` in netns `ino`, in the order the kernel runs
/// them (tcx first, then cls_bpf by priority).
pub fn on_device(ino: u32, dev: &str, hook: Hook) -> Result<Vec<HookProg>, TcBpfError> {
    let dev = dev.to_string();
    ns::run_in(ino, move || on_device_here(&dev, hook))?
}

/// [`on_device`] in the calling thread's netns.
pub fn on_device_here(dev: &str, hook: Hook) -> Result<Vec<HookProg>, TcBpfError> {
    let index = nl::ifindex(dev).ok_or_else(|| TcBpfError::NoDevice(dev.to_string()))?;
    let mut out = Vec::new();
    let mut found = Vec::new();
    match hook {
        Hook::Ingress | Hook::Egress => {
            for (position, id) in tcx_ids(index, hook).into_iter().enumerate() {
                found.push((id, Attach::Tcx { position }, None));
            }
            let mut filters = cls_bpf_filters(index, hook)?;
            filters.sort_by_key(|(_, a, _)| match a {
                Attach::ClsBpf {
                    chain, priority, ..
                } => (*chain, *priority),
                _ => (0, 0),
            });
            found.extend(filters);
        }
        Hook::Xdp => found.extend(xdp_progs(index)?),
    }
    for (id, attach, filter_name) in found {
        let (name, tag) = prog_info(id).unwrap_or_else(|| ("?".into(), "?".into()));
        out.push(HookProg {
            dev: dev.to_string(),
            hook,
            attach,
            id,
            name,
            tag,
            filter_name,
        });
    }
    Ok(out)
}

/// Every TC program (tcx and cls_bpf, both directions) on every device of
/// the calling thread's netns.
pub fn tc_programs_here() -> Result<Vec<HookProg>, TcBpfError> {
    let mut out = Vec::new();
    for body in nl::link_dump_here()? {
        let Some(name) = netlink::attrs(&body[16..])
            .find(|(t, _)| *t == IFLA_IFNAME)
            .map(|(_, v)| cstr(v))
        else {
            continue;
        };
        for hook in [Hook::Ingress, Hook::Egress] {
            // A device gone since the dump has no programs to report.
            if let Ok(p) = on_device_here(&name, hook) {
                out.extend(p);
            }
        }
    }
    Ok(out)
}

const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_CHAIN: u16 = 11;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
/// clsact's parents: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / _EGRESS).
/// The legacy `ingress` qdisc answers to the ingress one too.
const CLSACT_INGRESS: u32 = 0xffff_fff2;
const CLSACT_EGRESS: u32 = 0xffff_fff3;

type Found = (u32, Attach, Option<String>);

/// cls_bpf filters of the clsact hook (every chain). Other classifiers (u32,
/// flower...) are skipped: they carry no program.
fn cls_bpf_filters(index: u32, hook: Hook) -> Result<Vec<Found>, TcBpfError> {
    let parent = if hook == Hook::Egress {
        CLSACT_EGRESS
    } else {
        CLSACT_INGRESS
    };
    // struct tcmsg: family, pad (3), ifindex, handle, parent, info
    let mut req = vec![0u8; 4];
    req.extend((index as i32).to_ne_bytes());
    req.extend(0u32.to_ne_bytes());
    req.extend(parent.to_ne_bytes());
    req.extend(0u32.to_ne_bytes());
    let sock = nl::Socket::open()?;
    let msgs = match sock.request(RTM_GETTFILTER, nl::NLM_F_DUMP, &req) {
        Ok(m) => m,
        // No clsact qdisc on the device: no filters.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(msgs
        .iter()
        .filter(|m| m.ty == RTM_NEWTFILTER)
        .filter_map(|m| parse_filter(&m.body))
        .collect())
}

/// One RTM_NEWTFILTER body → (program id, attachment, filter name) when it
/// is a cls_bpf filter with a program.
pub(crate) fn parse_filter(b: &[u8]) -> Option<Found> {
    if b.len() < 20 {
        return None;
    }
    let handle = u32::from_ne_bytes(b[8..12].try_into().ok()?);
    let info = u32::from_ne_bytes(b[16..20].try_into().ok()?);
    let (mut kind, mut chain, mut id, mut flags, mut name) = (None, 0, None, 0, None);
    for (t, v) in netlink::attrs(&b[20..]) {
        match t {
            TCA_KIND => kind = Some(cstr(v)),
            TCA_CHAIN => chain = u32_of(v)?,
            TCA_OPTIONS => {
                for (t, v) in netlink::attrs(v) {
                    match t {
                        TCA_BPF_ID => id = u32_of(v),
                        TCA_BPF_FLAGS => flags = u32_of(v).unwrap_or(0),
                        TCA_BPF_NAME => name = Some(cstr(v)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if kind.as_deref() != Some("bpf") {
        return None;
    }
    let attach = Attach::ClsBpf {
        priority: (info >> 16) as u16,
        handle,
        chain,
        direct_action: flags & TCA_BPF_FLAG_ACT_DIRECT != 0,
    };
    Some((id?, attach, name))
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// Program ids on the tcx hook, in run order; empty on kernels before tcx
/// (the query fails there) and on devices without tcx programs.
fn tcx_ids(index: u32, hook: Hook) -> Vec<u32> {
    use libbpf_rs::libbpf_sys as sys;
    let ty = if hook == Hook::Egress {
        sys::BPF_TCX_EGRESS
    } else {
        sys::BPF_TCX_INGRESS
    };
    let mut ids = [0u32; 64];
    // SAFETY: a zeroed opts struct is its documented default state.
    let mut opts: sys::bpf_prog_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<sys::bpf_prog_query_opts>() as sys::size_t;
    opts.prog_ids = ids.as_mut_ptr();
    opts.__bindgen_anon_1.count = ids.len() as u32;
    // SAFETY: opts points at `ids`, whose length it declares.
    let rc = unsafe { sys::bpf_prog_query_opts(index as i32, ty, &mut opts) };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: both union fields are the same u32.
    let n = unsafe { opts.__bindgen_anon_1.count } as usize;
    ids[..n.min(ids.len())].to_vec()
}

/// XDP programs of the device from RTM_GETLINK (one per mode).
fn xdp_progs(index: u32) -> Result<Vec<Found>, TcBpfError> {
    // struct ifinfomsg: family, pad, type, index, flags, change
    let mut req = vec![0u8; 4];
    req.extend((index as i32).to_ne_bytes());
    req.extend([0u8; 8]);
    let sock = nl::Socket::open()?;
    let msgs = sock.request(nl::RTM_GETLINK, 0, &req)?;
    let mut out = Vec::new();
    for m in msgs
        .iter()
        .filter(|m| m.ty == nl::RTM_NEWLINK && m.body.len() >= 16)
    {
        for (t, v) in netlink::attrs(&m.body[16..]) {
            if t != IFLA_XDP {
                continue;
            }
            for (t, v) in netlink::attrs(v) {
                let mode = match t {
                    IFLA_XDP_DRV_PROG_ID => "drv",
                    IFLA_XDP_SKB_PROG_ID => "skb",
                    IFLA_XDP_HW_PROG_ID => "hw",
                    _ => continue,
                };
                if let Some(id) = u32_of(v).filter(|&i| i != 0) {
                    out.push((id, Attach::Xdp { mode }, None));
                }
            }
        }
    }
    Ok(out)
}

/// (name, hex tag) of program `id`, None when it is gone.
pub fn prog_info(id: u32) -> Option<(String, String)> {
    crate::sys::bpf::prog_name_tag(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWTFILTER body as the kernel sends it for
    /// `tc filter add dev eth0 ingress pref 3 handle 7 bpf da ...`.
    fn filter_body(kind: &str, id: Option<u32>) -> Vec<u8> {
        let mut b = vec![0u8; 4];
        b.extend(2i32.to_ne_bytes());
        b.extend(7u32.to_ne_bytes());
        b.extend(CLSACT_INGRESS.to_ne_bytes());
        b.extend(((3u32 << 16) | 0x0008).to_ne_bytes());
        netlink::put_str(&mut b, TCA_KIND, kind);
        netlink::put(&mut b, TCA_CHAIN, &0u32.to_ne_bytes());
        let at = netlink::nest_start(&mut b, TCA_OPTIONS);
        netlink::put_str(&mut b, TCA_BPF_NAME, "deny.o:[tc]");
        netlink::put(&mut b, TCA_BPF_FLAGS, &1u32.to_ne_bytes());
        if let Some(id) = id {
            netlink::put(&mut b, TCA_BPF_ID, &id.to_ne_bytes());
        }
        netlink::nest_end(&mut b, at);
        b
    }

    #[test]
    fn cls_bpf_filters_parse() {
        let (id, attach, name) = parse_filter(&filter_body("bpf", Some(42))).unwrap();
        assert_eq!(id, 42);
        assert_eq!(name.as_deref(), Some("deny.o:[tc]"));
        assert_eq!(
            attach,
            Attach::ClsBpf {
                priority: 3,
                handle: 7,
                chain: 0,
                direct_action: true
            }
        );
        assert!(parse_filter(&filter_body("u32", Some(42))).is_none());
        assert!(parse_filter(&filter_body("bpf", None)).is_none());
        let b = filter_body("bpf", Some(42));
        for cut in 0..b.len() {
            let _ = parse_filter(&b[..cut]);
        }
    }
}
