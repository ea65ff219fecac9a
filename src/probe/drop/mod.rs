//! The drop probe: skb:kfree_skb with in-kernel filters and aggregation.
//!
//! User space decides everything before load (filters, noise rules, mode)
//! and freezes it into the program's rodata, so the verifier prunes unused
//! branches and a drop that fails a filter costs a few loads and a compare.
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

use super::backend::{drop_hooks, Hook};
use super::{have_privilege, ProbeError};
/// The filter types live with the code that builds them; these names are
/// what `DropOptions` users have always imported from here.
pub use crate::filter::noise::{NoiseRange, MAX_NOISE};
pub use crate::filter::{DevMatch, KernelFilter};
use crate::undo::tracefs::{ensure_tracefs, TracefsMount};

#[allow(clippy::all, non_camel_case_types, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/drop.skel.rs"));
}
use skel::*;

/// The wire struct of one dropped packet, generated from `event.h`.
pub use skel::types::nw_drop_event as RawDrop;
pub use skel::types::{nw_agg_key as RawAggKey, nw_agg_val as RawAggVal};

/// Limits mirrored from event.h (checked against the generated types below).
const CNT_SEEN: u32 = 0;
const CNT_LOST: u32 = 1;
const CNT_HIDDEN: u32 = 2;
const CNT_AGG_FULL: u32 = 3;
const CNT_SELF: u32 = 4;

#[derive(Debug, Clone)]
pub struct DropOptions {
    pub filter: KernelFilter,
    pub noise: Vec<NoiseRange>,
    /// Count per (reason, location, netns, ifindex) in a per-CPU map.
    pub aggregate: bool,
    /// Stream one event per drop through the ring buffer.
    pub events: bool,
    /// With `aggregate`: stream the first drop of each new group, so a
    /// consumer can diagnose one sample per group at constant cost
    /// (`netwhy export`).
    pub sample_new: bool,
    /// The kernel passes a drop reason (>= 5.17).
    pub has_reason: bool,
    /// kfree_skb passes the socket it was delivering to (>= 6.11): the
    /// namespace of socket-layer drops whose skb lost its dev and sk.
    pub has_rx_sk: bool,
    /// Drops caused by this process's own syscalls are counted apart and
    /// never reported (netwhy's netlink lookups, trace arming, probes).
    /// None: report them (the lab, whose own traffic is the subject).
    pub self_tgid: Option<u32>,
    /// Value of SKB_CONSUMED in this kernel's enum.
    pub consumed: u32,
    /// Force a hook instead of the best available.
    pub hook: Option<Hook>,
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ringbuf_bytes: u32,
    /// Benchmark baseline: attach a program that does nothing instead.
    #[doc(hidden)]
    pub bench_empty: bool,
}

impl Default for DropOptions {
    fn default() -> Self {
        DropOptions {
            filter: KernelFilter::default(),
            noise: Vec::new(),
            aggregate: true,
            events: false,
            sample_new: false,
            has_reason: true,
            has_rx_sk: false,
            self_tgid: Some(std::process::id()),
            consumed: 1,
            hook: None,
            ringbuf_bytes: 8 << 20,
            bench_empty: false,
        }
    }
}

/// Kernel-side counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Drops that passed every filter (and were not hidden).
    pub seen: u64,
    /// Events the ring buffer had no room for.
    pub lost: u64,
    /// Drops matching a noise rule.
    pub hidden: u64,
    /// Drops not counted because the aggregate map was full.
    pub agg_full: u64,
    /// Drops netwhy's own syscalls caused (not reported).
    #[serde(rename = "own")]
    pub own: u64,
}

/// A loaded and attached drop probe. Dropping it detaches every link.
pub struct DropProbe {
    skel: DropSkel<'static>,
    hook: Hook,
    /// tracefs we mounted for the classic tracepoint: unmounted on drop,
    /// after the program is detached.
    tracefs: Option<TracefsMount>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if let Some(m) = self.tracefs.take() {
            // Detach the program first so nothing holds the event open.
            self.skel.links.nw_drop_tp = None;
            drop(m);
        }
    }
}

impl DropProbe {
    /// Load and attach on the best hook this kernel offers.
    pub fn start(opts: &DropOptions) -> Result<Self, ProbeError> {
        if !have_privilege() {
            return Err(ProbeError::Privilege);
        }
        let hooks = match opts.hook {
            Some(h) => vec![h],
            None => drop_hooks(),
        };
        if hooks.is_empty() {
            return Err(ProbeError::NoHook);
        }
        let mut last = None;
        for hook in hooks {
            match Self::start_on(opts, hook) {
                Ok(p) => return Ok(p),
                Err(e @ ProbeError::Privilege) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ProbeError::NoHook))
    }

    fn start_on(opts: &DropOptions, hook: Hook) -> Result<Self, ProbeError> {
        let mut tracefs = None;
        if hook == Hook::Tracepoint && !opts.bench_empty {
            let (visible, mounted) = ensure_tracefs();
            if !visible {
                return Err(ProbeError::NoHook);
            }
            tracefs = mounted;
        }
        // On error the mount (if any) is dropped here: unmounted.
        Self::load_attach(opts, hook, tracefs)
    }

    fn load_attach(
        opts: &DropOptions,
        hook: Hook,
        tracefs: Option<TracefsMount>,
    ) -> Result<Self, ProbeError> {
        // The skeleton borrows its object storage for its whole life; a probe
        // lives about as long as the process, so the few bytes are leaked.
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = DropSkelBuilder::default()
            .open(storage)
            .map_err(|e| load_err(&e))?;
        configure(&mut open, opts, hook).map_err(|e| load_err(&e))?;
        let skel = open.load().map_err(|e| load_err(&e))?;
        let mut probe = DropProbe {
            skel,
            hook,
            tracefs,
        };
        probe.fill_maps(&opts.filter)?;
        let prog = match hook {
            _ if opts.bench_empty => &probe.skel.progs.nw_drop_empty,
            Hook::TpBtf => &probe.skel.progs.nw_drop_btf,
            Hook::Tracepoint => &probe.skel.progs.nw_drop_tp,
        };
        let link = prog.attach().map_err(|e| ProbeError::Attach {
            probe: "drop",
            hook: format!("{}/kfree_skb", hook.as_str()),
            detail: e.to_string(),
        })?;
        match hook {
            _ if opts.bench_empty => probe.skel.links.nw_drop_empty = Some(link),
            Hook::TpBtf => probe.skel.links.nw_drop_btf = Some(link),
            Hook::Tracepoint => probe.skel.links.nw_drop_tp = Some(link),
        }
        Ok(probe)
    }

    fn fill_maps(&mut self, f: &KernelFilter) -> Result<(), ProbeError> {
        let one = [1u8];
        let two = [2u8];
        for r in &f.reasons_include {
            update(&self.skel.maps.reasons, "reasons", &r.to_ne_bytes(), &one)?;
        }
        for r in &f.reasons_exclude {
            update(&self.skel.maps.reasons, "reasons", &r.to_ne_bytes(), &two)?;
        }
        for ns in &f.netns {
            update(
                &self.skel.maps.netns_set,
                "netns_set",
                &ns.to_ne_bytes(),
                &one,
            )?;
        }
        Ok(())
    }

    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// Kernel counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters, ProbeError> {
        read_counters(&self.skel.maps.counters)
    }

    /// Every aggregate group with its count and bytes summed over CPUs.
    pub fn groups(&self) -> Result<Vec<(RawAggKey, RawAggVal)>, ProbeError> {
        read_groups(&self.skel.maps.agg)
    }

    /// A handle on the aggregate and the counters that another thread can
    /// own: the exporter's HTTP thread reads them at scrape time while the
    /// probe (not `Send`) stays with the thread that attached it.
    pub fn agg_reader(&self) -> Result<AggReader, ProbeError> {
        let maps = &self.skel.maps;
        Ok(AggReader {
            agg: libbpf_rs::MapHandle::try_from(&maps.agg)
                .map_err(|e| ProbeError::map("agg", e))?,
            counters: libbpf_rs::MapHandle::try_from(&maps.counters)
                .map_err(|e| ProbeError::map("counters", e))?,
        })
    }

    /// A reader of the ring buffer (--events mode).
    pub fn events(&self) -> Result<EventReader<'_>, ProbeError> {
        let queue: Rc<RefCell<Vec<RawDrop>>> = Rc::default();
        let q = queue.clone();
        let mut b = libbpf_rs::RingBufferBuilder::new();
        b.add(&self.skel.maps.events, move |data: &[u8]| {
            if let Some(ev) = decode::<RawDrop>(data) {
                q.borrow_mut().push(ev);
            }
            0
        })
        .map_err(|e| ProbeError::map("events", e))?;
        let ring = b.build().map_err(|e| ProbeError::map("events", e))?;
        Ok(EventReader { ring, queue })
    }
}

/// The aggregate and counters of a running probe, through duplicated map
/// file descriptors: valid while the probe's programs stay loaded.
pub struct AggReader {
    agg: libbpf_rs::MapHandle,
    counters: libbpf_rs::MapHandle,
}

impl AggReader {
    pub fn counters(&self) -> Result<Counters, ProbeError> {
        read_counters(&self.counters)
    }

    pub fn groups(&self) -> Result<Vec<(RawAggKey, RawAggVal)>, ProbeError> {
        read_groups(&self.agg)
    }

    /// Forgets groups (of namespaces that are gone): their next drop, if
    /// any, starts a new group.
    pub fn remove(&self, key: &RawAggKey) -> Result<(), ProbeError> {
        match self.agg.delete(encode(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProbeError::map("agg", e)),
        }
    }

    /// Adds a group as if the kernel had made it. Benchmarks only
    /// (`netwhy export --bench-groups`): a scrape of 10k groups is
    /// measured without building 10k namespaces.
    #[doc(hidden)]
    pub fn insert(&self, key: &RawAggKey, val: &RawAggVal) -> Result<(), ProbeError> {
        let cpus = libbpf_rs::num_possible_cpus().map_err(|e| ProbeError::map("agg", e))?;
        let zero = RawAggVal::default();
        let values: Vec<Vec<u8>> = (0..cpus)
            .map(|i| value_bytes(if i == 0 { val } else { &zero }).to_vec())
            .collect();
        self.agg
            .update_percpu(encode(key), &values, MapFlags::ANY)
            .map_err(|e| ProbeError::map("agg", e))
    }

    /// Capacity of the aggregate map, in groups.
    pub fn capacity(&self) -> u32 {
        self.agg.max_entries()
    }
}

fn read_counters(map: &dyn MapCore) -> Result<Counters, ProbeError> {
    let sum = |idx: u32| -> Result<u64, ProbeError> {
        let per_cpu = map
            .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| ProbeError::map("counters", e))?
            .unwrap_or_default();
        Ok(per_cpu.iter().map(|b| read_u64(b)).sum())
    };
    Ok(Counters {
        seen: sum(CNT_SEEN)?,
        lost: sum(CNT_LOST)?,
        hidden: sum(CNT_HIDDEN)?,
        agg_full: sum(CNT_AGG_FULL)?,
        own: sum(CNT_SELF)?,
    })
}

fn read_groups(map: &dyn MapCore) -> Result<Vec<(RawAggKey, RawAggVal)>, ProbeError> {
    let mut out = Vec::new();
    for key in map.keys() {
        let Some(per_cpu) = map
            .lookup_percpu(&key, MapFlags::ANY)
            .map_err(|e| ProbeError::map("agg", e))?
        else {
            continue; // deleted meanwhile
        };
        let mut total = RawAggVal::default();
        for v in &per_cpu {
            let v: RawAggVal = decode(v).ok_or_else(|| ProbeError::Map {
                map: "agg",
                detail: "short value".into(),
            })?;
            total.count += v.count;
            total.bytes += v.bytes;
            if v.ifname[0] != 0 {
                total.ifname = v.ifname;
            }
            if v.netns_src != 0 {
                total.netns_src = v.netns_src;
            }
        }
        if let Some(k) = decode::<RawAggKey>(&key) {
            out.push((k, total));
        }
    }
    Ok(out)
}

/// Reads drop events from the ring buffer in batches.
pub struct EventReader<'a> {
    ring: libbpf_rs::RingBuffer<'a>,
    queue: Rc<RefCell<Vec<RawDrop>>>,
}

impl EventReader<'_> {
    /// Wait up to `timeout` for events and return all that are queued. The
    /// probe batches wake-ups, so the queue is read even when the wait times
    /// out. A signal interrupting the wait is not an error: the caller's stop
    /// flag decides what happens next.
    pub fn next_batch(&self, timeout: Duration) -> Result<Vec<RawDrop>, ProbeError> {
        match self.ring.poll(timeout) {
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            r => r.map_err(|e| ProbeError::map("events", e))?,
        }
        self.ring
            .consume()
            .map_err(|e| ProbeError::map("events", e))?;
        Ok(std::mem::take(&mut *self.queue.borrow_mut()))
    }
}

fn configure(
    open: &mut OpenDropSkel<'static>,
    opts: &DropOptions,
    hook: Hook,
) -> libbpf_rs::Result<()> {
    open.maps.events.set_max_entries(opts.ringbuf_bytes)?;
    open.progs.nw_drop_empty.set_autoload(opts.bench_empty);
    if opts.bench_empty {
        open.progs.nw_drop_tp.set_autoload(false);
        open.progs.nw_drop_btf.set_autoload(false);
    } else {
        match hook {
            Hook::TpBtf => open.progs.nw_drop_tp.set_autoload(false),
            Hook::Tracepoint => open.progs.nw_drop_btf.set_autoload(false),
        }
    }
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .expect("drop.bpf.c has rodata");
    let f = &opts.filter;
    ro.cfg_has_reason = opts.has_reason;
    ro.cfg_has_rx_sk = opts.has_rx_sk;
    ro.cfg_self_tgid = opts.self_tgid.unwrap_or(0);
    ro.cfg_consumed = opts.consumed;
    ro.cfg_aggregate = opts.aggregate;
    ro.cfg_events = opts.events;
    ro.cfg_sample_new = opts.sample_new && opts.aggregate;
    ro.cfg_reason_include = !f.reasons_include.is_empty();
    ro.cfg_reason_exclude = !f.reasons_exclude.is_empty();
    ro.cfg_netns_filter = !f.netns.is_empty();
    set_dev_mark_filters!(&mut *ro, &f.dev, f.mark);
    ro.cfg_ethertype = f.ethertype.unwrap_or(0);
    ro.cfg_l4proto = f.l4proto.map(i16::from).unwrap_or(-1);
    match f.host {
        Some(IpAddr::V4(a)) => {
            ro.cfg_host_family = 4;
            ro.cfg_host[..4].copy_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            ro.cfg_host_family = 6;
            ro.cfg_host.copy_from_slice(&a.octets());
        }
        None => {}
    }
    ro.cfg_port = f.port.map(i32::from).unwrap_or(-1);
    let noise = &opts.noise[..opts.noise.len().min(MAX_NOISE)];
    ro.cfg_noise_count = noise.len() as u32;
    for (i, n) in noise.iter().enumerate() {
        ro.cfg_noise_reason[i] = n.reason.unwrap_or(u32::MAX);
        ro.cfg_noise_start[i] = n.start;
        ro.cfg_noise_end[i] = n.end;
    }
    Ok(())
}

fn update(map: &dyn MapCore, name: &'static str, k: &[u8], v: &[u8]) -> Result<(), ProbeError> {
    map.update(k, v, MapFlags::ANY)
        .map_err(|e| ProbeError::map(name, e))
}

fn load_err(e: &libbpf_rs::Error) -> ProbeError {
    let detail = e.to_string();
    if detail.contains("Operation not permitted") || detail.contains("EPERM") {
        return ProbeError::Privilege;
    }
    ProbeError::Load {
        probe: "drop",
        detail,
    }
}

fn read_u64(b: &[u8]) -> u64 {
    b.get(..8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_ne_bytes)
        .unwrap_or(0)
}

/// Copy a generated plain-old-data struct out of a byte slice.
fn decode<T: Copy + Default>(data: &[u8]) -> Option<T> {
    if data.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is a generated #[repr(C)] struct of integers and arrays
    // (every bit pattern valid); the length was checked; read_unaligned
    // tolerates the ring buffer's 8-byte alignment.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

/// The bytes of an aggregate key, as the map stores it (explicitly padded
/// in event.h, so no byte is uninitialised).
fn encode(k: &RawAggKey) -> &[u8] {
    // SAFETY: RawAggKey is a generated #[repr(C)] struct of integers with
    // explicit padding fields; any &T may be viewed as size_of::<T>() bytes.
    unsafe {
        std::slice::from_raw_parts(
            (k as *const RawAggKey).cast::<u8>(),
            std::mem::size_of::<RawAggKey>(),
        )
    }
}

/// The bytes of an aggregate value (explicitly padded in event.h).
fn value_bytes(v: &RawAggVal) -> &[u8] {
    // SAFETY: as for `encode`: a #[repr(C)] struct of integers and arrays
    // with explicit padding fields.
    unsafe {
        std::slice::from_raw_parts(
            (v as *const RawAggVal).cast::<u8>(),
            std::mem::size_of::<RawAggVal>(),
        )
    }
}

// The generated layout must match what the C header promises.
const _: () = assert!(std::mem::size_of::<RawDrop>() == 64 + 16 + 16 + 128);
const _: () = assert!(std::mem::size_of::<RawAggKey>() == 24);
