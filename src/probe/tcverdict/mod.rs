//! The TC verdict probe: fexit on each TC BPF program found on the devices
//! in scope, so `netwhy trace` shows "tc-bpf NAME id N on DEV ingress →
//! TC_ACT_SHOT" in a tracked packet's timeline, right before the
//! TC_INGRESS drop that names no program. Tracing programs attached to BPF
//! programs are fentry/fexit only: this runs with `--backend fentry`.
//!
//! One load per target program (a tracing program is verified against one
//! target); the programs are few, so the skeleton is simply opened again.
//! Programs attached after the trace started are not followed.
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject};

use super::path::{PathBackend, PathCounters, RawStep, Role};
use super::skbfunc::SharedMaps;
use super::ProbeError;
use crate::state::tcbpf::HookProg;

#[allow(clippy::all, non_camel_case_types, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/tcverdict.skel.rs"));
}
use skel::*;

/// Step hook ids of TC program verdicts start here, 16 per program (one
/// per verdict): above the skb function ids (1024 + 16384).
pub const TC_HOOK_BASE: u16 = 0xc000;
const SLOTS: u16 = 16;
/// At most this many programs (the hook id space above the base).
pub const MAX_PROGS: usize = 1024;

/// TC_ACT_* by value + 1 (slot), as the step names them.
const VERDICTS: [&str; 10] = [
    "TC_ACT_UNSPEC",
    "TC_ACT_OK",
    "TC_ACT_RECLASSIFY",
    "TC_ACT_SHOT",
    "TC_ACT_PIPE",
    "TC_ACT_STOLEN",
    "TC_ACT_QUEUED",
    "TC_ACT_REPEAT",
    "TC_ACT_REDIRECT",
    "TC_ACT_TRAP",
];

/// fexit programs on TC programs, writing into the path probe's timeline.
pub struct TcVerdictProbe {
    links: Vec<(TcverdictSkel<'static>, Link)>,
    /// Per program: "tc-bpf NAME id N on DEV HOOK".
    labels: Vec<String>,
    /// Step names, indexed by hook id - TC_HOOK_BASE.
    names: Vec<String>,
    /// Programs that could not be traced, with why.
    pub skipped: Vec<String>,
}

impl TcVerdictProbe {
    /// Attaches to each distinct program of `progs` (first occurrence names
    /// its device and hook). Failures are per program, in `skipped`.
    pub fn attach(progs: &[HookProg], share: &SharedMaps) -> TcVerdictProbe {
        let mut p = TcVerdictProbe {
            links: Vec::new(),
            labels: Vec::new(),
            names: Vec::new(),
            skipped: Vec::new(),
        };
        let mut seen = Vec::new();
        // libbpf's own warnings are muted: a refusal is reported once, by
        // the caller, from `skipped`.
        let prev_print = libbpf_rs::set_print(None);
        for hp in progs {
            if seen.contains(&hp.id) || p.labels.len() >= MAX_PROGS {
                continue;
            }
            seen.push(hp.id);
            let slot = TC_HOOK_BASE + SLOTS * p.labels.len() as u16;
            match attach_one(hp, slot, share) {
                Ok(l) => {
                    let label =
                        format!("tc-bpf {} id {} on {} {}", hp.name, hp.id, hp.dev, hp.hook);
                    for v in 0..SLOTS as usize {
                        let verdict = VERDICTS.get(v).copied().unwrap_or("unknown verdict");
                        p.names.push(format!("{label} → {verdict}"));
                    }
                    p.labels.push(label);
                    p.links.push(l);
                }
                Err(e) => p.skipped.push(format!("{} id {}: {e}", hp.name, hp.id)),
            }
        }
        libbpf_rs::set_print(prev_print);
        p
    }

    /// "tc-bpf NAME id N on DEV HOOK" of each traced program.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The step name of hook id `id`, if it is one of this probe's.
    pub fn name(&self, id: u16) -> Option<&str> {
        let i = id.checked_sub(TC_HOOK_BASE)?;
        self.names.get(usize::from(i)).map(String::as_str)
    }
}

fn attach_one(
    hp: &HookProg,
    slot: u16,
    share: &SharedMaps,
) -> Result<(TcverdictSkel<'static>, Link), String> {
    let func = prog_func_name(hp.id).ok_or("no BTF for its function (built without -g?)")?;
    let target = libbpf_rs::Program::fd_from_id(hp.id).map_err(|e| e.to_string())?;
    // The skeleton borrows this for its life, as the other probes'.
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = TcverdictSkelBuilder::default()
        .open(storage)
        .map_err(|e| e.to_string())?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .expect("tcverdict.bpf.c has rodata");
    ro.cfg_hook = slot.into();
    ro.cfg_track_ns = share.track_ns;
    open.maps
        .tracked
        .reuse_fd(share.tracked.as_fd())
        .map_err(|e| e.to_string())?;
    open.maps
        .events
        .reuse_fd(share.events.as_fd())
        .map_err(|e| e.to_string())?;
    open.progs
        .nw_tc_fexit
        .set_attach_target(target.as_raw_fd(), Some(func))
        .map_err(|e| e.to_string())?;
    let skel = open.load().map_err(|e| format!("load: {e}"))?;
    let link = skel
        .progs
        .nw_tc_fexit
        .attach_trace()
        .map_err(|e| format!("attach: {e}"))?;
    Ok((skel, link))
}

/// A path backend plus TC verdict steps.
pub struct WithTcVerdicts {
    pub inner: Box<dyn PathBackend>,
    pub probe: TcVerdictProbe,
}

impl PathBackend for WithTcVerdicts {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn hooks(&self) -> Vec<&str> {
        self.inner.hooks()
    }

    fn hook(&self, id: u16) -> (&str, Role) {
        match self.probe.name(id) {
            Some(n) => (n, Role::Function),
            None => self.inner.hook(id),
        }
    }

    fn next_batch(&mut self, timeout: Duration) -> Result<Vec<RawStep>, ProbeError> {
        self.inner.next_batch(timeout)
    }

    fn counters(&self) -> Result<PathCounters, ProbeError> {
        self.inner.counters()
    }

    fn release_functions(&mut self) -> Option<String> {
        self.probe.links.clear();
        self.inner.release_functions()
    }
}

/// The name of program `id`'s main function in its BTF: what a tracing
/// program attaching to it must name (the kernel keeps only 15 characters
/// of the program name). None without BTF, or when it is gone.
pub fn prog_func_name(id: u32) -> Option<String> {
    crate::sys::bpf::prog_func_name(id)
}
