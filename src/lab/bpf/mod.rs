//! BPF programs the lab plants as a scenario's breakage (the BPF C beside
//! this file, compiled by build.rs). Scenarios attach them the classic,
//! netlink way (a cls_bpf filter in direct-action mode on a clsact qdisc,
//! or XDP through IFLA_XDP), as most CNIs did before bpf links: the device
//! holds the only reference to the program, so nothing stays loaded once
//! the lab's namespace (and with it the veth) is deleted. A tcx link lives
//! only as long as its fd, which the caller holds.
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys as sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{OpenObject, TcHookBuilder, TC_INGRESS};

use super::{traffic, LabError};

#[allow(clippy::all, non_camel_case_types, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/tc_block.skel.rs"));
}
use skel::*;

/// Priority and handle of the planted cls_bpf filter (what `tc filter show`
/// prints).
pub const PRIORITY: u32 = 1;
pub const HANDLE: u32 = 1;

/// Where and how the deny program goes on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `nwlab_udp_deny` as a cls_bpf filter on clsact ingress.
    ClsBpf,
    /// `nwlab_udp_deny` as a tcx ingress link (detached when its fd closes).
    Tcx,
    /// `nwlab_xdp_deny` in native (driver) XDP mode, else generic.
    Xdp { generic: bool },
}

/// A planted program: its id, and the link fd that keeps a tcx program on.
#[derive(Debug)]
pub struct Planted {
    pub id: u32,
    pub link: Option<OwnedFd>,
}

/// Loads the program that denies UDP to `port` and attaches it to `dev`
/// inside netns `ns` as `how` says.
pub fn plant_udp_deny(ns: &str, dev: &str, port: u16, how: How) -> Result<Planted, LabError> {
    let dev = dev.to_string();
    traffic::in_netns(ns, move || {
        let ifindex = crate::state::route::nl::ifindex(&dev)
            .ok_or_else(|| LabError::Traffic(format!("no device {dev}")))?;
        let mut storage = MaybeUninit::<OpenObject>::uninit();
        let mut open = TcBlockSkelBuilder::default()
            .open(&mut storage)
            .map_err(|e| bpf("open tc_block", e))?;
        open.maps
            .rodata_data
            .as_deref_mut()
            .expect("tc_block.bpf.c has rodata")
            .cfg_port = port;
        let skel = open.load().map_err(|e| bpf("load tc_block", e))?;
        let prog = match how {
            How::Xdp { .. } => &skel.progs.nwlab_xdp_deny,
            _ => &skel.progs.nwlab_udp_deny,
        };
        let fd = prog.as_fd();
        let id = libbpf_rs::Program::id_from_fd(fd).map_err(|e| bpf("program id", e))?;
        let mut link = None;
        match how {
            How::ClsBpf => {
                let mut hook = TcHookBuilder::new(fd)
                    .ifindex(ifindex as i32)
                    .replace(true)
                    .handle(HANDLE)
                    .priority(PRIORITY)
                    .hook(TC_INGRESS);
                hook.create()
                    .map_err(|e| bpf("create clsact (no clsact qdisc? modprobe sch_ingress)", e))?;
                hook.attach()
                    .map_err(|e| bpf("attach cls_bpf (no cls_bpf? modprobe cls_bpf)", e))?;
            }
            How::Tcx => {
                // SAFETY: a valid program fd; no options.
                let l = unsafe {
                    sys::bpf_link_create(
                        fd.as_raw_fd(),
                        ifindex as i32,
                        sys::BPF_TCX_INGRESS,
                        std::ptr::null(),
                    )
                };
                if l < 0 {
                    return Err(LabError::Traffic(format!(
                        "attach tcx: {}",
                        std::io::Error::from_raw_os_error(-l)
                    )));
                }
                // SAFETY: a new fd returned by bpf_link_create, owned here.
                link = Some(unsafe { OwnedFd::from_raw_fd(l) });
            }
            How::Xdp { generic } => {
                const XDP_FLAGS_SKB_MODE: u32 = 2;
                const XDP_FLAGS_DRV_MODE: u32 = 4;
                let mode = if generic {
                    XDP_FLAGS_SKB_MODE
                } else {
                    XDP_FLAGS_DRV_MODE
                };
                // SAFETY: a valid program fd; no options.
                let rc = unsafe {
                    sys::bpf_xdp_attach(ifindex as i32, fd.as_raw_fd(), mode, std::ptr::null())
                };
                if rc != 0 {
                    return Err(LabError::Traffic(format!(
                        "attach xdp: {}",
                        std::io::Error::from_raw_os_error(-rc)
                    )));
                }
            }
        }
        // The skeleton closes its fds here; the device (or the link) keeps
        // the program.
        Ok(Planted { id, link })
    })
}

fn bpf(what: &str, e: libbpf_rs::Error) -> LabError {
    LabError::Traffic(format!("{what}: {e}"))
}
