//! Which namespaces to scan, and everything the checks read from each.
//!
//! A namespace is entered once (a thread that setns(2)s, see `state::ns`)
//! and read whole: checks never talk to the kernel, so they stay pure and
//! testable on fixtures. The "rising" checks need two counter samples: all
//! namespaces are sampled first, then one shared `--window` sleep, then the
//! full read takes the second sample, so the scan costs one window, not one
//! per namespace.
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kernel::netns::{resolve_netns_spec, NetnsNames};
use crate::state::addr::{self, Addr, Link, RouteEntry};
use crate::state::counters::{self, Counters};
use crate::state::nft::list::{self as nftlist, ChainRules};
use crate::state::ns;
use crate::state::sockets::{self, Proto, SockInfo};
use crate::state::sysctl::{self, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("bad --netns '{spec}': {detail}")]
    Netns { spec: String, detail: String },
    #[error("cannot scan netns {name}: {detail}")]
    Enter { name: String, detail: String },
}

/// A namespace to scan: its inode, a file to enter it by, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ino: u32,
    pub path: PathBuf,
    /// `ip netns` name, `init`, or `PID/comm` of a process inside.
    pub name: String,
    pub is_init: bool,
    /// How a shell command is run there (`ip netns exec NAME`), None for init.
    pub exec_prefix: Option<String>,
}

fn init_ino() -> Option<u32> {
    fs::metadata("/proc/1/ns/net")
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
}

fn prefix_for(path: &Path, is_init: bool) -> Option<String> {
    if is_init {
        return None;
    }
    match path.strip_prefix("/run/netns") {
        Ok(n) => Some(format!("ip netns exec {}", n.display())),
        Err(_) => Some(format!("nsenter --net={}", path.display())),
    }
}

impl Target {
    fn new(ino: u32, path: PathBuf, names: &NetnsNames, init: Option<u32>) -> Target {
        let is_init = Some(ino) == init;
        let name = match path.strip_prefix("/run/netns") {
            Ok(n) => n.display().to_string(),
            Err(_) => names
                .name(ino)
                .map(str::to_string)
                .unwrap_or_else(|| ino.to_string()),
        };
        let name = if is_init { "init".to_string() } else { name };
        Target {
            ino,
            exec_prefix: prefix_for(&path, is_init),
            path,
            name,
            is_init,
        }
    }

    /// A `--netns` argument, resolved as `drops --netns` does (inode,
    /// `ip netns` name, `init`, or a path), keeping a path to enter it by.
    pub fn resolve(spec: &str) -> Result<Target, CollectError> {
        let bad = |detail: String| CollectError::Netns {
            spec: spec.to_string(),
            detail,
        };
        let ino = resolve_netns_spec(spec).map_err(|e| bad(e.to_string()))?;
        let path = if spec.contains('/') {
            PathBuf::from(spec)
        } else if spec == "init" {
            PathBuf::from("/proc/1/ns/net")
        } else if spec.bytes().all(|b| b.is_ascii_digit()) {
            ns::path_of(ino).ok_or_else(|| {
                bad("no `ip netns` name and no process inside: it cannot be entered".into())
            })?
        } else {
            Path::new("/run/netns").join(spec)
        };
        Ok(Target::new(ino, path, &NetnsNames::scan(), init_ino()))
    }
}

/// The host and every namespace reachable by an `ip netns` name or a
/// process inside, init first, each once.
pub fn all_targets() -> Vec<Target> {
    let names = NetnsNames::scan();
    let init = init_ino();
    let mut paths: Vec<PathBuf> = vec![PathBuf::from("/proc/1/ns/net")];
    if let Ok(d) = fs::read_dir("/run/netns") {
        let mut v: Vec<PathBuf> = d.flatten().map(|e| e.path()).collect();
        v.sort();
        paths.extend(v);
    }
    if let Ok(d) = fs::read_dir("/proc") {
        paths.extend(
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .map(|e| e.path().join("ns/net")),
        );
    }
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for p in paths {
        let Some(ino) = fs::metadata(&p)
            .ok()
            .and_then(|m| u32::try_from(m.ino()).ok())
        else {
            continue;
        };
        if seen.insert(ino, ()).is_none() {
            out.push(Target::new(ino, p, &names, init));
        }
    }
    out
}

/// Everything the checks look at in one namespace.
#[derive(Debug, Clone, Default)]
pub struct NsState {
    pub target: TargetInfo,
    /// The init netns is part of this scan: host-global values (net.core.*)
    /// are reported there only, not once per namespace.
    pub host_scanned: bool,
    pub sysctl: Snapshot,
    pub links: Vec<Link>,
    /// IPv4 and IPv6 addresses.
    pub addrs: Vec<Addr>,
    /// IPv4 routes of every table.
    pub routes4: Vec<RouteEntry>,
    /// Chains with their rules; None when the ruleset could not be read.
    pub ruleset: Option<Vec<ChainRules>>,
    /// TCP and UDP sockets (owners filled for the ones checks care about).
    pub sockets: Vec<SockInfo>,
    /// Counters at the start and end of the window (None: window 0).
    pub before: Option<Counters>,
    pub after: Option<Counters>,
    /// Time between the two samples.
    pub window: Duration,
    /// Seconds since boot ×100, the clock of address creation stamps.
    pub uptime_cs: Option<u64>,
    /// What could not be read here, one line each.
    pub gaps: Vec<String>,
}

/// The part of a [`Target`] checks need (kept Default for fixtures).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetInfo {
    pub ino: u32,
    pub name: String,
    pub is_init: bool,
    pub exec_prefix: Option<String>,
}

impl NsState {
    /// Name of interface `index` (or `if<N>` if it vanished).
    pub fn dev(&self, index: u32) -> String {
        self.link(index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("if{index}"))
    }

    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    /// `cmd` as it must be typed to run inside this namespace.
    pub fn cmd(&self, cmd: &str) -> String {
        match &self.target.exec_prefix {
            Some(p) => format!("{p} {cmd}"),
            None => cmd.to_string(),
        }
    }

    /// The counter's change over the window, if both samples exist.
    pub fn delta(&self, name: &str) -> Option<i128> {
        let (b, a) = (self.before.as_ref()?, self.after.as_ref()?);
        Some(i128::from(a.get(name)?) - i128::from(b.get(name).unwrap_or(0)))
    }
}

/// Collected states, and the namespaces that could not be scanned.
pub struct Collected {
    pub ok: Vec<NsState>,
    pub skipped: Vec<String>,
}

/// Read every target. A namespace that cannot be entered is an error when
/// the user named it (`explicit`), and a skipped line otherwise (namespaces
/// come and go while we scan).
pub fn collect(
    targets: &[Target],
    window: Duration,
    explicit: bool,
) -> Result<Collected, CollectError> {
    let mut first: HashMap<u32, (Instant, Counters)> = HashMap::new();
    if !window.is_zero() {
        for t in targets {
            if let Ok(Ok(c)) = ns::run_in_path(&t.path, counters::read_all_here) {
                first.insert(t.ino, (Instant::now(), c));
            }
        }
        std::thread::sleep(window);
    }
    let host_scanned = targets.iter().any(|t| t.is_init);
    let mut out = Collected {
        ok: Vec::new(),
        skipped: Vec::new(),
    };
    for t in targets {
        let info = TargetInfo {
            ino: t.ino,
            name: t.name.clone(),
            is_init: t.is_init,
            exec_prefix: t.exec_prefix.clone(),
        };
        let before = first.remove(&t.ino);
        match ns::run_in_path(&t.path, move || read_here(info, before)) {
            Ok(mut st) => {
                st.host_scanned = host_scanned;
                out.ok.push(st);
            }
            Err(e) if explicit => {
                return Err(CollectError::Enter {
                    name: t.name.clone(),
                    detail: e.to_string(),
                })
            }
            Err(e) => out.skipped.push(format!("netns {}: {e}", t.name)),
        }
    }
    Ok(out)
}

fn uptime_cs() -> Option<u64> {
    let s = fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some((secs * 100.0) as u64)
}

/// Everything, in the calling thread's netns.
fn read_here(target: TargetInfo, before: Option<(Instant, Counters)>) -> NsState {
    let mut st = NsState {
        sysctl: sysctl::snapshot_here(),
        uptime_cs: uptime_cs(),
        ..NsState::default()
    };
    let mut gap = |what: &str, e: &dyn std::fmt::Display| {
        st.gaps.push(format!("netns {}: {what}: {e}", target.name))
    };
    let links = addr::links_here().unwrap_or_else(|e| {
        gap("links", &e);
        Vec::new()
    });
    let addrs = addr::addrs_here(libc::AF_UNSPEC).unwrap_or_else(|e| {
        gap("addresses", &e);
        Vec::new()
    });
    let routes4 = addr::routes_here(libc::AF_INET).unwrap_or_else(|e| {
        gap("routes", &e);
        Vec::new()
    });
    let ruleset = nftlist::ruleset_here()
        .map_err(|e| gap("nftables ruleset", &e))
        .ok();
    let mut socks = Vec::new();
    for p in [Proto::Tcp, Proto::Udp] {
        match sockets::dump(p) {
            Ok(v) => socks.extend(v),
            Err(e) => gap("sockets", &e),
        }
    }
    let after = if before.is_some() {
        counters::read_all_here()
            .map_err(|e| gap("counters", &e))
            .ok()
    } else {
        None
    };
    fill_owners(&mut socks);
    st.links = links;
    st.addrs = addrs;
    st.routes4 = routes4;
    st.ruleset = ruleset;
    st.sockets = socks;
    if let (Some((t0, b)), Some(a)) = (before, after) {
        st.window = t0.elapsed();
        st.before = Some(b);
        st.after = Some(a);
    }
    st.target = target;
    st
}

/// Owners only for sockets a check may report (a /proc walk per scan).
fn fill_owners(socks: &mut [SockInfo]) {
    let interesting = |s: &SockInfo| {
        s.mem.is_some_and(|m| m.rcvbuf > 1 << 30)
            || s.accept_queue().is_some_and(|(q, max)| q > max)
    };
    let inodes: Vec<u32> = socks
        .iter()
        .filter(|s| interesting(s))
        .map(|s| s.inode)
        .collect();
    if inodes.is_empty() {
        return;
    }
    let owners = sockets::owners(&inodes);
    for s in socks.iter_mut() {
        s.owner = owners.get(&s.inode).cloned();
    }
}
