//! `netwhy export`: the drop aggregate as a Prometheus scrape target.
//!
//! Threads, each owning one job:
//! - the caller's (the pipeline loop): reads the first drop of every new
//!   group from the ring buffer (the probe samples it in the kernel) and
//!   queues it for diagnosis; stops on SIGTERM/SIGINT;
//! - `http`: answers scrapes; each scrape reads the kernel aggregate
//!   through duplicated map fds, so a drop costs the same whether or not
//!   anyone scrapes, and user space does no work per drop;
//! - `causes`: diagnoses queued samples as `explain` would, rate-limited,
//!   and caches the cause per group;
//! - `doctor`: runs the doctor checks every `--doctor-interval`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::event::Enricher;
use crate::probe::drop::AggReader;

mod causes;
mod doctor;
mod http;
pub mod metrics;
mod scrape;
pub mod series;
mod state;

pub use scrape::GroupLabels;

/// What `netwhy export` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub limits: series::Limits,
    /// Add pod_namespace, pod and container labels (`--labels pod,container`).
    pub pod_labels: bool,
    /// Doctor refresh period; None disables the doctor gauges.
    pub doctor_interval: Option<Duration>,
    /// Diagnose new groups (`netwhy_drop_cause_info`).
    pub causes: bool,
    /// Most diagnoses per second (each reads live state).
    pub causes_per_sec: f64,
    /// Watch firewall rules this long after a NETFILTER_DROP sample (arms
    /// nftrace tables): only with `--attribute-rules`.
    pub rules_window: Option<Duration>,
    /// Where series are persisted across restarts.
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot listen on {addr}: {detail} (pick another with --listen ADDR:PORT)")]
    Listen { addr: SocketAddr, detail: String },
    #[error(transparent)]
    Probe(#[from] crate::probe::ProbeError),
    #[error("state file {path}: {detail} (fix it or remove it; --state-file is optional)")]
    State { path: PathBuf, detail: String },
}

/// What the threads share. Locks are held for one scrape or one sample.
pub struct Shared {
    pub opts: Options,
    pub reader: AggReader,
    pub enricher: Mutex<Enricher>,
    pub tracker: Mutex<series::Tracker<GroupLabels>>,
    pub causes: Mutex<HashMap<GroupLabels, causes::Cause>>,
    pub doctor: Mutex<Vec<metrics::Labels>>,
    /// Samples dropped because the diagnosis queue was full.
    pub cause_queue_lost: AtomicU64,
    pub last_scrape_ns: AtomicU64,
    pub build: metrics::Labels,
    pub started: Instant,
    pub stop: AtomicBool,
    pub live_netns: Mutex<scrape::LiveNetns>,
}

impl Shared {
    pub fn new(opts: Options, reader: AggReader, enricher: Enricher, hook: &str) -> Shared {
        let kernel = crate::kernel::release().unwrap_or_default();
        let build = vec![
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ("kernel".into(), kernel.trim().to_string()),
            ("hook".into(), hook.to_string()),
        ];
        Shared {
            tracker: Mutex::new(series::Tracker::new(opts.limits)),
            opts,
            reader,
            enricher: Mutex::new(enricher),
            causes: Mutex::default(),
            doctor: Mutex::default(),
            cause_queue_lost: AtomicU64::new(0),
            last_scrape_ns: AtomicU64::new(0),
            build,
            started: Instant::now(),
            stop: AtomicBool::new(false),
            live_netns: Mutex::default(),
        }
    }

    /// Seconds since start: the tracker's clock.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Locks, shrugging off a panicked holder: every value here stays valid
/// between statements, and a scrape must not die of an earlier panic.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub use causes::Sampler;
pub use http::Server;

/// Loads the state file into the tracker (if any).
pub fn restore(shared: &Shared) -> Result<usize, ExportError> {
    let Some(path) = &shared.opts.state_file else {
        return Ok(0);
    };
    let restored = state::load(path)?;
    let n = restored.series.len();
    lock(&shared.tracker).restore(shared.now(), restored.series, restored.folded);
    Ok(n)
}

/// Writes the state file (if any), atomically.
pub fn save(shared: &Shared) -> Result<(), ExportError> {
    let Some(path) = &shared.opts.state_file else {
        return Ok(());
    };
    let (series, folded) = lock(&shared.tracker).saved();
    state::save(path, &series, &folded)
}

/// Starts the doctor thread (if asked for).
pub fn start_doctor(shared: &Arc<Shared>) {
    if let Some(every) = shared.opts.doctor_interval {
        doctor::spawn(shared.clone(), every);
    }
}

/// Benchmarks: fills the kernel aggregate with `n` groups, one per kernel
/// function, spread over ten reasons, in this process's namespace on `lo`,
/// so that scrape latency at 10k series can be measured (bench/export).
#[doc(hidden)]
pub fn bench_fill(shared: &Shared, n: usize) -> Result<(), ExportError> {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata("/proc/self/ns/net")
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
        .unwrap_or(0);
    let addrs: Vec<u64> = {
        let en = lock(&shared.enricher);
        let mut seen = std::collections::HashSet::new();
        en.kallsyms
            .iter()
            .filter(|(_, name, module)| module.is_none() && seen.insert(name.to_string()))
            .map(|(a, _, _)| a + 1)
            .take(n)
            .collect()
    };
    let mut ifname = [0i8; 16];
    for (d, s) in ifname.iter_mut().zip(b"lo") {
        *d = *s as i8;
    }
    for (i, addr) in addrs.iter().enumerate() {
        let key = crate::probe::drop::RawAggKey {
            location: *addr,
            reason: 2 + (i % 10) as u32,
            netns,
            ifindex: 1,
            ..Default::default()
        };
        let val = crate::probe::drop::RawAggVal {
            count: i as u64 + 1,
            bytes: 100 * (i as u64 + 1),
            ifname,
            ..Default::default()
        };
        shared.reader.insert(&key, &val)?;
    }
    Ok(())
}
