//! The path probe: follow selected packets through the kernel's skb
//! tracepoints (tp_btf), the backend that works on every BTF kernel,
//! including this project's, which has no kprobes and no fentry.
//!
//! [`PathBackend`] is what `netwhy trace` consumes; kprobe-multi and fentry
//! backends (issue 7) implement it too and reuse the wire struct, so the
//! timeline, tracking and outputs do not change with the backend.
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::rc::Rc;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use super::{have_privilege, ProbeError};
use crate::filter::cbpf::{Insn, MAX_INSNS};
use crate::filter::DevMatch;
use crate::kernel::btf::Btf;

#[allow(clippy::all, non_camel_case_types, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/path.skel.rs"));
}
use skel::*;

pub mod funcs;

/// One step of one packet, generated from `event.h`.
pub use skel::types::nw_path_event as RawStep;

/// Step flags (event.h NW_STEP_*).
pub const STEP_FIRST: u8 = 1;
pub const STEP_FATE: u8 = 2;

/// What a hook means for a packet's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Arrived on a device.
    Receive,
    /// Queued for, or handed to, a device.
    Transmit,
    /// The driver has it: the packet left on this device.
    Transmitted,
    /// A socket or the TCP/UDP layer did something with it.
    Socket,
    /// A process read its data from a socket.
    Delivered,
    /// Appended to a socket's receive queue (the socket was woken).
    Queued,
    /// Processed by an established TCP socket (tcp_probe): the end of the
    /// road for most ACKs, which TCP frees without a tracepoint.
    SocketRx,
    /// The kernel answered it with an ICMP error.
    IcmpError,
    /// Freed as dropped (reason > SKB_CONSUMED) or consumed.
    Free,
    /// Entered a kernel function (the skb function probe's steps): shows
    /// the way, never decides the fate.
    Function,
}

/// A tracepoint the probe can attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathHook {
    /// Tracepoint name (`btf_trace_<tp>` in BTF, program `nw_path_<tp>`).
    pub tp: &'static str,
    /// 0-based index of the skb among the tracepoint's arguments (of the
    /// sock for sk_data_ready); must match the BPF program and the running
    /// kernel's BTF.
    pub skb_arg: u8,
    /// The struct that argument points to.
    pub arg_struct: &'static str,
    pub role: Role,
}

/// The hooks, indexed by `enum nw_hook` (event.h): append only.
pub const HOOKS: &[PathHook] = &[
    hook("napi_gro_receive_entry", 0, Role::Receive),
    hook("netif_rx", 0, Role::Receive),
    hook("netif_receive_skb", 0, Role::Receive),
    hook("net_dev_queue", 0, Role::Transmit),
    hook("qdisc_enqueue", 2, Role::Transmit),
    hook("qdisc_dequeue", 3, Role::Transmit),
    hook("net_dev_start_xmit", 0, Role::Transmit),
    hook("net_dev_xmit", 0, Role::Transmitted),
    hook("icmp_send", 0, Role::IcmpError),
    hook("sock_rcvqueue_full", 1, Role::Socket),
    hook("udp_fail_queue_rcv_skb", 2, Role::Socket),
    hook("tcp_probe", 1, Role::SocketRx),
    hook("tcp_retransmit_skb", 1, Role::Socket),
    hook("tcp_send_reset", 1, Role::Socket),
    hook("tcp_bad_csum", 0, Role::Socket),
    hook("skb_copy_datagram_iovec", 0, Role::Delivered),
    hook("kfree_skb", 0, Role::Free),
    hook("consume_skb", 0, Role::Free),
    hook("sk_data_ready", 0, Role::Queued),
];

const fn hook(tp: &'static str, skb_arg: u8, role: Role) -> PathHook {
    let arg_struct = if matches!(role, Role::Queued) {
        "sock"
    } else {
        "sk_buff"
    };
    PathHook {
        tp,
        skb_arg,
        arg_struct,
        role,
    }
}

/// Step hooks from this value on are skb functions (id = hook - base),
/// written by the skb function probe into this probe's ring buffer.
pub const FUNC_HOOK_BASE: u16 = 1024;
/// Step hooks from this value on are the cloning functions (skb_clone...,
/// [`crate::probe::skbfunc::clone::FUNCS`] order), whose steps make a
/// tracked packet's copy a packet of its own. Below [`FUNC_HOOK_BASE`],
/// far above the tracepoints.
pub const CLONE_HOOK_BASE: u16 = 512;

pub const HOOK_KFREE_SKB: u16 = 16;
pub const HOOK_CONSUME_SKB: u16 = 17;

/// Hooks this kernel has with the skb where the program expects it, and
/// the ones left out with why.
pub fn select_hooks(btf: &Btf) -> (Vec<u16>, Vec<(&'static str, String)>) {
    let skb = btf.raw_tracepoints_with_struct_ptr_arg("sk_buff");
    let sock = btf.raw_tracepoints_with_struct_ptr_arg("sock");
    let mut on = Vec::new();
    let mut off = Vec::new();
    for (id, h) in HOOKS.iter().enumerate() {
        let found = if h.arg_struct == "sock" { &sock } else { &skb };
        let has = btf.raw_tracepoint_arg_count(h.tp).unwrap_or(0);
        match found.iter().find(|f| f.func == h.tp) {
            Some(_) if has < args_read(h.tp) => off.push((
                h.tp,
                format!(
                    "{has} arguments here, the program reads {}",
                    args_read(h.tp)
                ),
            )),
            Some(f) if f.arg_index == h.skb_arg => on.push(id as u16),
            Some(f) => off.push((
                h.tp,
                format!("skb is argument {} here, not {}", f.arg_index, h.skb_arg),
            )),
            None => off.push((h.tp, format!("no such tracepoint with a {}", h.arg_struct))),
        }
    }
    (on, off)
}

/// How many tracepoint arguments a hook's program reads unconditionally
/// (beyond the skb and sock, which `select_hooks` checks by type). A tp_btf
/// program reading past the last argument fails to load.
fn args_read(tp: &str) -> usize {
    match tp {
        "net_dev_xmit" => 4,
        "kfree_skb" | "icmp_send" => 3,
        "skb_copy_datagram_iovec" => 2,
        _ => 1,
    }
}

/// Whether consume_skb passes its caller's location (6.3+; 6.1 passes only
/// the skb): the program reads it only when told so.
pub fn consume_has_location(btf: &Btf) -> bool {
    btf.raw_tracepoint_arg_count("consume_skb")
        .is_some_and(|n| n >= 2)
}

/// Kernel-side counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PathCounters {
    /// Packets that matched the filters (tracking started).
    pub matched: u64,
    pub steps: u64,
    /// Steps the ring buffer had no room for.
    pub lost: u64,
    /// Packets that could not be tracked (map full).
    pub track_full: u64,
    /// Tracked addresses found reused by another packet, or too old.
    pub stale: u64,
    /// Copies of tracked packets followed as packets of their own
    /// (function backends only).
    pub clones: u64,
}

/// A source of path steps. The tracepoint probe here; kprobe/fentry
/// backends on kernels that have them.
pub trait PathBackend {
    /// "tp_btf", "kprobe-multi", ...
    fn name(&self) -> &'static str;
    /// Names of the attached hooks.
    fn hooks(&self) -> Vec<&str>;
    /// Name and role of the hook a step carries.
    fn hook(&self, id: u16) -> (&str, Role);
    /// Steps queued so far, waiting up to `timeout` for more.
    fn next_batch(&mut self, timeout: Duration) -> Result<Vec<RawStep>, ProbeError>;
    fn counters(&self) -> Result<PathCounters, ProbeError>;
    /// Detaches the kernel function hooks now (dropping does it too) and
    /// says how long that took: detaching thousands of functions is the
    /// slow half on some backends, so the user sees where the time goes.
    fn release_functions(&mut self) -> Option<String> {
        None
    }
}

/// What to trace.
#[derive(Debug, Clone)]
pub struct PathOptions {
    /// Classic BPF from libpcap (validated); empty = every packet.
    pub cbpf: Vec<Insn>,
    pub netns: Vec<u32>,
    pub dev: Option<DevMatch>,
    pub mark: Option<(u32, u32)>,
    /// SKB_CONSUMED in this kernel's enum (u32::MAX: none, as in 6.1).
    pub consumed: u32,
    /// consume_skb has a location argument ([`consume_has_location`]).
    pub consume_location: bool,
    /// Hooks to enable (ids into [`HOOKS`]).
    pub hooks: Vec<u16>,
    pub ringbuf_bytes: u32,
    /// Age after which a tracked skb address is presumed reused.
    pub track_ns: u64,
    /// `netwhy run`: trace only packets of sockets created in this cgroup
    /// (v2 id = the cgroup directory's inode) and replies to their local
    /// endpoints. 0 = off.
    pub cgroup: u64,
}

/// The loaded and attached tracepoint backend.
pub struct PathProbe {
    skel: PathSkel<'static>,
    _links: Vec<Link>,
    hooks: Vec<u16>,
    track_ns: u64,
    ring: libbpf_rs::RingBuffer<'static>,
    queue: Rc<RefCell<Vec<RawStep>>>,
}

impl PathProbe {
    pub fn start(opts: &PathOptions) -> Result<PathProbe, ProbeError> {
        if !have_privilege() {
            return Err(ProbeError::Privilege);
        }
        if opts.cbpf.len() > MAX_INSNS {
            return Err(load_err(format!(
                "filter has {} instructions, at most {MAX_INSNS}",
                opts.cbpf.len()
            )));
        }
        // As in the drop probe: the skeleton borrows this for its life.
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = PathSkelBuilder::default()
            .open(storage)
            .map_err(|e| load_err(e.to_string()))?;
        configure(&mut open, opts).map_err(|e| load_err(e.to_string()))?;
        let skel = open.load().map_err(|e| load_err(e.to_string()))?;
        let mut prog = Vec::with_capacity(MAX_INSNS * 8);
        for i in (0..MAX_INSNS).map(|n| opts.cbpf.get(n).copied().unwrap_or_default()) {
            prog.extend_from_slice(&i.code.to_ne_bytes());
            prog.extend_from_slice(&[i.jt, i.jf]);
            prog.extend_from_slice(&i.k.to_ne_bytes());
        }
        skel.maps
            .cbpf_prog
            .update(&0u32.to_ne_bytes(), &prog, MapFlags::ANY)
            .map_err(|e| ProbeError::map("cbpf_prog", e))?;
        let one = [1u8];
        for ns in &opts.netns {
            skel.maps
                .netns_set
                .update(&ns.to_ne_bytes(), &one, MapFlags::ANY)
                .map_err(|e| ProbeError::map("netns_set", e))?;
        }
        let mut links = Vec::new();
        for prog in skel.object().progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            if !prog.autoload() {
                continue;
            }
            let link = prog.attach().map_err(|e| ProbeError::Attach {
                probe: "path",
                hook: format!("tp_btf/{}", name.trim_start_matches("nw_path_")),
                detail: e.to_string(),
            })?;
            links.push(link);
        }
        let queue: Rc<RefCell<Vec<RawStep>>> = Rc::default();
        let q = queue.clone();
        let mut b = libbpf_rs::RingBufferBuilder::new();
        b.add(&skel.maps.events, move |data: &[u8]| {
            if let Some(ev) = decode::<RawStep>(data) {
                q.borrow_mut().push(ev);
            }
            0
        })
        .map_err(|e| ProbeError::map("events", e))?;
        let ring = b.build().map_err(|e| ProbeError::map("events", e))?;
        Ok(PathProbe {
            skel,
            _links: links,
            hooks: opts.hooks.clone(),
            track_ns: opts.track_ns,
            ring,
            queue,
        })
    }
}

impl PathProbe {
    /// Duplicates of the `tracked` and `events` fds, for the skb function
    /// probe to load against (libbpf reuse_fd) and step into this
    /// probe's timelines.
    pub fn shared_maps(&self) -> Result<crate::probe::skbfunc::SharedMaps, ProbeError> {
        use std::os::fd::AsFd;
        let dup = |m: &libbpf_rs::Map, name| {
            m.as_fd()
                .try_clone_to_owned()
                .map_err(|e| ProbeError::map(name, e))
        };
        Ok(crate::probe::skbfunc::SharedMaps {
            tracked: dup(&self.skel.maps.tracked, "tracked")?,
            events: dup(&self.skel.maps.events, "events")?,
            next_id: dup(&self.skel.maps.next_id, "next_id")?,
            counters: dup(&self.skel.maps.counters, "counters")?,
            hook_base: FUNC_HOOK_BASE,
            clone_hook_base: CLONE_HOOK_BASE,
            track_ns: self.track_ns,
        })
    }
}

impl PathBackend for PathProbe {
    fn name(&self) -> &'static str {
        "tp_btf"
    }

    fn hooks(&self) -> Vec<&str> {
        self.hooks.iter().map(|&i| HOOKS[i as usize].tp).collect()
    }

    fn hook(&self, id: u16) -> (&str, Role) {
        match HOOKS.get(id as usize) {
            Some(h) => (h.tp, h.role),
            None => ("?", Role::Socket),
        }
    }

    fn next_batch(&mut self, timeout: Duration) -> Result<Vec<RawStep>, ProbeError> {
        match self.ring.poll(timeout) {
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            r => r.map_err(|e| ProbeError::map("events", e))?,
        }
        self.ring
            .consume()
            .map_err(|e| ProbeError::map("events", e))?;
        Ok(std::mem::take(&mut *self.queue.borrow_mut()))
    }

    fn counters(&self) -> Result<PathCounters, ProbeError> {
        let sum = |idx: u32| -> Result<u64, ProbeError> {
            let per_cpu = self
                .skel
                .maps
                .counters
                .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| ProbeError::map("counters", e))?
                .unwrap_or_default();
            Ok(per_cpu
                .iter()
                .filter_map(|b| b.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
                .sum())
        };
        Ok(PathCounters {
            matched: sum(0)?,
            steps: sum(1)?,
            lost: sum(2)?,
            track_full: sum(3)?,
            stale: sum(4)?,
            clones: sum(5)?,
        })
    }
}

fn configure(open: &mut OpenPathSkel<'static>, opts: &PathOptions) -> libbpf_rs::Result<()> {
    open.maps.events.set_max_entries(opts.ringbuf_bytes)?;
    for mut prog in open.open_object_mut().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        let tp = name.trim_start_matches("nw_path_");
        let wanted = HOOKS
            .iter()
            .position(|h| h.tp == tp)
            .is_some_and(|i| opts.hooks.contains(&(i as u16)));
        prog.set_autoload(wanted);
    }
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .expect("path.bpf.c has rodata");
    ro.cfg_consumed = opts.consumed;
    ro.cfg_consume_location = opts.consume_location;
    ro.cfg_netns_filter = !opts.netns.is_empty();
    set_dev_mark_filters!(&mut *ro, &opts.dev, opts.mark);
    ro.cfg_track_ns = opts.track_ns;
    ro.cfg_cgroup = opts.cgroup;
    ro.cfg_cbpf_len = opts.cbpf.len() as u32;
    Ok(())
}

fn load_err(detail: String) -> ProbeError {
    if detail.contains("Operation not permitted") {
        return ProbeError::Privilege;
    }
    ProbeError::Load {
        probe: "path",
        detail,
    }
}

fn decode<T: Copy + Default>(data: &[u8]) -> Option<T> {
    if data.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is a generated #[repr(C)] struct of integers and arrays (any
    // bit pattern is valid); the length was checked; unaligned read.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

const _: () = assert!(std::mem::size_of::<RawStep>() == 96 + 32 + 128);

#[cfg(test)]
mod tests;
