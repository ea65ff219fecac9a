//! The skb function probe: every kernel function taking a `struct sk_buff *`
//! (found in the running kernel's BTF, kept if ftrace can hook it), hooked
//! through kprobe-multi, fentry or single kprobes, whichever feature probes
//! show this kernel allows, plus the skb tracepoints, which need none of them.
//!
//! `netwhy skbfuncs` counts hits per function; `netwhy trace` hands over the
//! path probe's maps ([`SharedMaps`]) and gets a step per function a
//! tracked packet enters, in the path probe's timeline.
mod attach;
pub mod clone;
mod fentry;
mod parallel;
mod probes;
pub mod select;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};
use serde::Serialize;

pub use select::{Backend, ProbeResult, Target};

use super::{have_privilege, ProbeError};

#[allow(clippy::all, non_camel_case_types, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/skbfunc.skel.rs"));
}
use skel::*;

/// Slots in the hits map (NW_SKBFUNC_MAX in skbfunc.h).
const MAX_SLOTS: usize = 16384;
/// Where feature probes count their hits: a slot no name maps to.
const PROBE_SLOT: u32 = MAX_SLOTS as u32 - 1;
/// Tracepoints after the functions, in NW_TP_* order.
pub const TRACEPOINTS: [&str; 5] = [
    "netif_receive_skb",
    "net_dev_queue",
    "net_dev_xmit",
    "kfree_skb",
    "consume_skb",
];

#[derive(Debug, Clone, Default)]
pub struct SkbFuncOptions {
    /// Force a backend (`--backend`); None picks by [`select::PREFERENCE`].
    pub backend: Option<Backend>,
    /// Only functions whose name matches (`--funcs REGEX`).
    pub funcs: Option<regex::Regex>,
    /// Count only TCP/UDP packets with this source or destination port.
    pub port: Option<u16>,
    /// Also trace these modules' skb functions (`--kmods nf_tables,veth`).
    pub kmods: Vec<String>,
    /// Emit steps of the path probe's tracked packets into its ring buffer
    /// instead of counting (`netwhy trace`); the skb tracepoints are then
    /// the path probe's, not attached here.
    pub share: Option<Arc<SharedMaps>>,
    /// With `backend` None: the backends the choice may fall on (None:
    /// all); any other choice becomes tracepoints only.
    pub allow: Option<Vec<Backend>>,
}

/// The path probe's maps, for the function probe to write steps into.
#[derive(Debug)]
pub struct SharedMaps {
    /// skb address -> packet (`tracked`).
    pub tracked: OwnedFd,
    /// The step ring buffer (`events`).
    pub events: OwnedFd,
    /// The packet id counter (`next_id`): copies of tracked packets get
    /// their ids from it too.
    pub next_id: OwnedFd,
    /// Per-CPU counters (`counters`): copies followed, lost steps.
    pub counters: OwnedFd,
    /// Step hook ids of functions start here (function id added).
    pub hook_base: u16,
    /// Step hook ids of the cloning functions ([`clone::FUNCS`]) start here.
    pub clone_hook_base: u16,
    /// The path probe's age limit of a tracked skb address.
    pub track_ns: u64,
}

/// What attaching did, for the start-up line and the JSON summary.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    pub backend: Backend,
    pub probes: Vec<ProbeResult>,
    /// Functions the backend hooked (0 for tracepoints only).
    pub functions: usize,
    /// Cloning functions whose copies of tracked packets are followed
    /// (`netwhy trace` with a function backend; [`clone`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clones: Vec<String>,
    /// Candidates the kernel refused one by one (name, error), first few.
    pub skipped: Vec<(String, String)>,
    pub skipped_count: usize,
    pub tracepoints: usize,
    /// Reading BTF and available_filter_functions, choosing targets.
    pub discovery_ms: f64,
    /// Loading and attaching the function set (after the feature probes).
    pub attach_ms: f64,
}

/// Hits of one function or tracepoint.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub name: String,
    pub count: u64,
    /// Kernel monotonic ns of the first hit: sorting by it gives the path.
    pub first_ns: u64,
}

/// A loaded and attached probe; [`SkbFuncProbe::detach`] times the detach.
pub struct SkbFuncProbe {
    skel: SkbfuncSkel<'static>,
    /// The fentry object whose programs seed the clones (kept alive: the
    /// clones' instructions refer to its maps).
    _fentry_skel: Option<SkbfuncSkel<'static>>,
    links: Vec<Link>,
    clones: Vec<fentry::Clone>,
    names: Vec<String>,
    pub report: AttachReport,
}

fn leak() -> &'static mut MaybeUninit<OpenObject> {
    // The skeleton borrows its object storage for its whole life.
    Box::leak(Box::new(MaybeUninit::uninit()))
}

fn open_skel(opts: &SkbFuncOptions, tp_base: u32) -> Result<OpenSkbfuncSkel<'static>, ProbeError> {
    let mut open = SkbfuncSkelBuilder::default()
        .open(leak())
        .map_err(|e| load_err(&e))?;
    let ro = open.maps.rodata_data.as_deref_mut().expect("rodata");
    ro.cfg_port = opts.port.map(i32::from).unwrap_or(-1);
    ro.cfg_tp_base = tp_base;
    if let Some(sh) = &opts.share {
        ro.cfg_steps = true;
        ro.cfg_hook_base = sh.hook_base.into();
        ro.cfg_track_ns = sh.track_ns;
        ro.cfg_clone_hook_base = sh.clone_hook_base.into();
        let m = &mut open.maps;
        for (map, fd) in [
            (&mut m.tracked, &sh.tracked),
            (&mut m.events, &sh.events),
            (&mut m.next_id, &sh.next_id),
            (&mut m.counters, &sh.counters),
        ] {
            map.reuse_fd(fd.as_fd()).map_err(|e| load_err(&e))?;
        }
    }
    // Copies are followed only for trace; fexit needs its target first
    // (probes::load_fentry).
    let follow = opts.share.is_some();
    for p in clone::progs_mut(&mut open) {
        p.set_autoload(follow);
    }
    open.progs.nw_clone_fexit.set_autoload(false);
    Ok(open)
}

/// Loads the main object, leaving out what this kernel refuses to load:
/// first the clone programs (copies are then not followed, the function
/// steps still work), then every kprobe program (a kernel that cannot even
/// load those: tracepoints only).
fn load_main(opts: &SkbFuncOptions, tp_base: u32) -> Result<SkbfuncSkel<'static>, ProbeError> {
    let mut err = None;
    for without in [0, 1, 2] {
        if without == 1 && opts.share.is_none() {
            continue; // no clone programs to leave out
        }
        let mut open = open_skel(opts, tp_base)?;
        for p in probes::fentry_progs_mut(&mut open) {
            p.set_autoload(false);
        }
        if without >= 1 {
            for p in clone::progs_mut(&mut open) {
                p.set_autoload(false);
            }
        }
        if without == 2 {
            open.progs.nw_skb_kmulti.set_autoload(false);
            open.progs.nw_skb_kprobe.set_autoload(false);
        }
        match open.load() {
            Ok(s) => return Ok(s),
            Err(e) => err = Some(e),
        }
    }
    Err(load_err(&err.expect("tried at least once")))
}

fn load_err(e: &libbpf_rs::Error) -> ProbeError {
    ProbeError::Load {
        probe: "skbfunc",
        detail: format!("{e:#}"),
    }
}

impl SkbFuncProbe {
    pub fn attach(opts: &SkbFuncOptions) -> Result<Self, ProbeError> {
        if !have_privilege() {
            return Err(ProbeError::Privilege);
        }
        let t0 = Instant::now();
        let probes::Discovered {
            mut targets,
            fallback: probe_fallback,
            clones: clone_targets,
        } = probes::discover(opts)?;
        targets.truncate(MAX_SLOTS - TRACEPOINTS.len());
        let tp_base = targets.len() as u32;
        let discovery_ms = ms(t0.elapsed());

        // The main object: tracepoints and both kprobe flavours. fentry
        // programs need a target at load and live in their own object.
        let skel = load_main(opts, tp_base)?;
        let mut links = Vec::new();
        let tps = [
            &skel.progs.nw_tp_netif_receive_skb,
            &skel.progs.nw_tp_net_dev_queue,
            &skel.progs.nw_tp_net_dev_xmit,
            &skel.progs.nw_tp_kfree_skb,
            &skel.progs.nw_tp_consume_skb,
        ];
        let mut skipped = Vec::new();
        // Sharing: the path probe has its own tracepoints.
        let tps = if opts.share.is_some() {
            &tps[..0]
        } else {
            &tps[..]
        };
        for (p, name) in tps.iter().zip(TRACEPOINTS) {
            match p.attach() {
                Ok(l) => links.push(l),
                Err(e) => skipped.push((format!("tp:{name}"), e.to_string())),
            }
        }
        let tracepoints = links.len();

        // Feature probes, each on one real skb function. libbpf's own
        // warnings are muted until the attach is done: a refusal is
        // reported once, in the probe result or the skipped list.
        let prev_print = libbpf_rs::set_print(None);
        let r = Self::probe_and_attach(
            opts,
            skel,
            links,
            skipped,
            tracepoints,
            targets,
            probe_fallback,
            tp_base,
            &clone_targets,
        );
        libbpf_rs::set_print(prev_print);
        let (mut probe, report) = r?;
        probe.report = AttachReport {
            discovery_ms,
            ..report
        };
        Ok(probe)
    }

    #[allow(clippy::too_many_arguments)]
    fn probe_and_attach(
        opts: &SkbFuncOptions,
        skel: SkbfuncSkel<'static>,
        mut links: Vec<Link>,
        mut skipped: Vec<(String, String)>,
        tracepoints: usize,
        targets: Vec<Target>,
        probe_fallback: Option<Target>,
        tp_base: u32,
        clone_targets: &[clone::CloneTarget],
    ) -> Result<(Self, AttachReport), ProbeError> {
        let probe_target = ["ip_rcv", "__netif_receive_skb", "kfree_skb_reason"]
            .iter()
            .find_map(|n| targets.iter().find(|t| t.name == *n))
            .or(targets.iter().find(|t| t.module.is_none()))
            .cloned()
            .or(probe_fallback);
        let mut probes = Vec::new();
        let mut fentry_skel = None;
        let mut btf_ids = None;
        match &probe_target {
            None => {
                let why = "no skb function in BTF matches";
                for b in select::PREFERENCE {
                    probes.push(ProbeResult::failed(b, why));
                }
            }
            Some(t) => {
                probes.push(probes::probe_kmulti(&skel, t));
                probes.push(probes::probe_kprobe(&skel, t));
                // A kernel refusing the clone fexit program still gets
                // fentry function steps (copies then not followed).
                let fentry = probes::load_fentry(opts, tp_base, &skel, &targets, clone_targets)
                    .or_else(|e| {
                        if clone_targets.is_empty() || e.contains("Operation not permitted") {
                            Err(e)
                        } else {
                            probes::load_fentry(opts, tp_base, &skel, &targets, &[])
                        }
                    });
                match fentry {
                    Ok((fs, btf)) => {
                        probes.push(probes::probe_fentry(&fs, &btf, t));
                        fentry_skel = Some(fs);
                        btf_ids = Some(btf);
                    }
                    Err(e) => probes.push(ProbeResult::failed(Backend::Fentry, e)),
                }
            }
        }
        let mut backend = select::choose(opts.backend, &probes)
            .map_err(|e| ProbeError::BackendRefused(e.to_string()))?;
        if opts.allow.as_ref().is_some_and(|a| !a.contains(&backend)) {
            backend = Backend::Tracepoint;
        }

        let t1 = Instant::now();
        let fe = fentry_skel.as_ref().zip(btf_ids.as_ref());
        let attach::Hooked {
            links: more,
            fentry: mut clones,
            count: hooked,
            mut refused,
        } = attach::functions(backend, &skel, fe, &targets)?;
        links.extend(more);
        let copies = clone::attach(backend, &skel, fe, clone_targets);
        links.extend(copies.links);
        clones.extend(copies.fexit);
        refused.extend(
            copies
                .refused
                .into_iter()
                .map(|(f, e)| (format!("clone:{f}"), e)),
        );
        let attach_ms = ms(t1.elapsed());
        let skipped_count = skipped.len() + refused.len();
        skipped.extend(refused);
        skipped.truncate(8);
        let mut names: Vec<String> = targets.into_iter().map(|t| t.name).collect();
        names.extend(TRACEPOINTS.iter().map(|t| format!("tp:{t}")));
        let report = AttachReport {
            backend,
            probes,
            functions: hooked,
            clones: copies.funcs,
            skipped,
            skipped_count,
            tracepoints,
            discovery_ms: 0.0,
            attach_ms,
        };
        let probe = SkbFuncProbe {
            skel,
            _fentry_skel: fentry_skel,
            links,
            clones,
            names,
            report: report.clone(),
        };
        Ok((probe, report))
    }

    /// Names of the function ids (their step hooks: base + id).
    pub fn function_names(&self) -> &[String] {
        let n = self.names.len() - TRACEPOINTS.len();
        &self.names[..n]
    }

    /// Every function and tracepoint hit at least once, in path order
    /// (first hit first).
    pub fn hits(&self) -> Result<Vec<Hit>, ProbeError> {
        let mut v = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            let key = (i as u32).to_ne_bytes();
            let val = self
                .skel
                .maps
                .hits
                .lookup(&key, MapFlags::ANY)
                .map_err(|e| ProbeError::map("hits", e))?;
            let Some(b) = val.filter(|b| b.len() >= 16) else {
                continue;
            };
            let count = u64::from_ne_bytes(b[0..8].try_into().expect("8 bytes"));
            let first_ns = u64::from_ne_bytes(b[8..16].try_into().expect("8 bytes"));
            if count > 0 {
                v.push(Hit {
                    name: name.clone(),
                    count,
                    first_ns,
                });
            }
        }
        v.sort_by_key(|h| (h.first_ns, h.name.clone()));
        Ok(v)
    }

    /// Detaches everything; returns how long that took. Links are closed
    /// from many threads at once: each ftrace unregistration waits for an
    /// RCU-tasks grace period, and concurrent waiters share one.
    pub fn detach(mut self) -> Duration {
        let t = Instant::now();
        parallel::drop_all(std::mem::take(&mut self.clones), parallel::DETACH_THREADS);
        parallel::drop_all(std::mem::take(&mut self.links), parallel::DETACH_THREADS);
        t.elapsed()
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}
