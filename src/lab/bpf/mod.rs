//! BPF programs the lab plants as a scenario's breakage (the BPF C beside
//! this file, compiled by build.rs). They are attached the classic way, as
//! a cls_bpf filter (direct-action) on a clsact qdisc, which is how most
//! CNIs attached theirs before tcx: the filter holds the only reference to
//! the program, so nothing stays loaded once the lab's namespace (and with
//! it the veth and its qdisc) is deleted.
use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{OpenObject, TcHookBuilder, TC_INGRESS};

use super::{traffic, LabError};

#[allow(clippy::all, non_camel_case_types, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/tc_block.skel.rs"));
}
use skel::*;

/// Priority and handle of the planted filter (what `tc filter show` prints).
pub const PRIORITY: u32 = 1;
pub const HANDLE: u32 = 1;

/// Loads `nwlab_udp_deny` (TC_ACT_SHOT for UDP to `port`) and attaches it to
/// the clsact ingress of `dev` inside netns `ns`; returns the program id.
pub fn plant_udp_deny(ns: &str, dev: &str, port: u16) -> Result<u32, LabError> {
    let dev = dev.to_string();
    traffic::in_netns(ns, move || {
        let bpf = |what: &str, e: libbpf_rs::Error| LabError::Traffic(format!("{what}: {e}"));
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
        let prog = &skel.progs.nwlab_udp_deny;
        let mut hook = TcHookBuilder::new(prog.as_fd())
            .ifindex(ifindex as i32)
            .replace(true)
            .handle(HANDLE)
            .priority(PRIORITY)
            .hook(TC_INGRESS);
        hook.create().map_err(|e| bpf("create clsact", e))?;
        hook.attach().map_err(|e| bpf("attach cls_bpf", e))?;
        let id = libbpf_rs::Program::id_from_fd(prog.as_fd()).map_err(|e| bpf("program id", e))?;
        // The skeleton closes its fds here; the filter keeps the program.
        Ok(id)
    })
}
