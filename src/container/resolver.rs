//! netns inode → container, cached: the walk of /proc happens on a miss
//! at most once a second, and every 30 s so names follow containers that
//! came and went (an inode can be reused once its namespace is freed).
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cgroup::{self, Candidate};
use super::records::{self, Found, Hints};
use super::{Container, ContainerError};

/// A miss rescans at most this often (as `NetnsNames` does).
const MIN_RESCAN: Duration = Duration::from_secs(1);
/// Even without misses, answers are re-read after this long.
const MAX_AGE: Duration = Duration::from_secs(30);

/// Maps network namespaces to the containers running in them.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
    /// Every netns seen at the last scan (the host's and those without a
    /// container too, so their drops are hits), with its containers: the
    /// one to show first.
    by_netns: HashMap<u32, Vec<Arc<Container>>>,
    /// Records already read, by what the cgroup said: a container's files
    /// are read once, not once per process nor per scan.
    records: HashMap<Candidate, Option<Found>>,
    scanned: Option<Instant>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new()
    }
}

impl Resolver {
    /// The host's paths; under `$NETWHY_HOST_ROOT` when set (the DaemonSet
    /// mounts the host's root there, with hostPID so its /proc is the
    /// host's).
    pub fn new() -> Resolver {
        match std::env::var_os("NETWHY_HOST_ROOT").filter(|r| !r.is_empty()) {
            Some(r) => Resolver::with_root(Path::new(&r)),
            None => Resolver::with_root(Path::new("/")),
        }
    }

    /// Everything (`proc/`, the runtimes' state) read under `root`.
    pub fn with_root(root: &Path) -> Resolver {
        Resolver {
            root: root.to_path_buf(),
            by_netns: HashMap::new(),
            records: HashMap::new(),
            scanned: None,
        }
    }

    /// The container running in netns `netns`; when several share it (a
    /// pod), an application container before the sandbox, then the one
    /// whose process has the lowest pid.
    pub fn lookup(&mut self, netns: u32) -> Option<Arc<Container>> {
        if netns == 0 {
            return None;
        }
        let age = self.scanned.map(|t| t.elapsed());
        let old = age.is_none_or(|a| a >= MAX_AGE);
        let may_rescan = age.is_none_or(|a| a >= MIN_RESCAN);
        if old || (may_rescan && !self.by_netns.contains_key(&netns)) {
            let _ = self.scan();
            // A netns no process is in (held by a bind mount, as `ip netns`
            // makes them) has no container: remembered until the next
            // periodic scan, so its drops do not rescan every second.
            self.by_netns.entry(netns).or_default();
        }
        self.by_netns.get(&netns)?.first().cloned()
    }

    /// The namespaces of the containers `--pod` (`ns/name` or `name`) and
    /// `--container` (name or id) name, both when both are given; sorted.
    /// An error when none does, naming what runs instead.
    pub fn netns_of(
        &mut self,
        pod: Option<&str>,
        container: Option<&str>,
    ) -> Result<Vec<u32>, ContainerError> {
        if pod.is_none() && container.is_none() {
            return Ok(Vec::new());
        }
        self.scan()?;
        let mut out: Vec<u32> = self
            .by_netns
            .iter()
            .filter(|(_, cs)| {
                cs.iter().any(|c| {
                    pod.is_none_or(|p| c.matches_pod(p))
                        && container.is_none_or(|n| c.matches_container(n))
                })
            })
            .map(|(&ns, _)| ns)
            .collect();
        out.sort_unstable();
        if out.is_empty() {
            let wanted = [("--pod", pod), ("--container", container)]
                .iter()
                .filter_map(|(f, v)| v.map(|v| format!("{f} {v}")))
                .collect::<Vec<_>>()
                .join(" ");
            return Err(ContainerError::NoMatch {
                wanted,
                seen: self.seen(),
            });
        }
        Ok(out)
    }

    /// What runs, for an error: a few labels, or how to look.
    fn seen(&self) -> String {
        let mut labels: Vec<String> = self
            .by_netns
            .values()
            .flatten()
            .map(|c| format!("{} ({})", c.label(), c.runtime.as_str()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        labels.sort();
        if labels.is_empty() {
            return "no container runs here (`podman ps`, `crictl ps`, `ctr -n k8s.io tasks ls` list them)".into();
        }
        let more = labels.len().saturating_sub(8);
        labels.truncate(8);
        let mut s = format!("running: {}", labels.join(", "));
        if more > 0 {
            s += &format!(" and {more} more");
        }
        s
    }

    /// Re-reads /proc: each process's netns, and for the processes outside
    /// the host's netns their cgroup and, once per container, its records.
    fn scan(&mut self) -> Result<(), ContainerError> {
        self.scanned = Some(Instant::now());
        let proc_dir = self.root.join("proc");
        let dir = fs::read_dir(&proc_dir).map_err(|e| ContainerError::Proc {
            path: proc_dir.display().to_string(),
            detail: e.to_string(),
        })?;
        let me = std::process::id();
        let host = netns_of_pid(&proc_dir, 1);
        let mut pids: HashMap<u32, Vec<u32>> = HashMap::new();
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Some(ns) = netns_of_pid(&proc_dir, pid) {
                pids.entry(ns).or_default().push(pid);
            }
        }
        let mut read_now = HashMap::new();
        let mut by_netns = HashMap::new();
        for (ns, mut list) in pids {
            if Some(ns) == host {
                by_netns.insert(ns, Vec::new());
                continue;
            }
            list.sort_unstable();
            let mut apps: Vec<Arc<Container>> = Vec::new();
            let mut sandboxes: Vec<Arc<Container>> = Vec::new();
            for pid in list {
                let Ok(file) = fs::read_to_string(proc_dir.join(format!("{pid}/cgroup"))) else {
                    continue;
                };
                for cand in cgroup::candidates(&file) {
                    let found = match read_now.get(&cand) {
                        Some(f) => f,
                        None => {
                            let f = self.records.remove(&cand).unwrap_or_else(|| {
                                records::read(&self.root, &cand, &parent_hints(&proc_dir, pid))
                            });
                            read_now.entry(cand.clone()).or_insert(f)
                        }
                    };
                    let Some(f) = found else { continue };
                    let list = if f.sandbox { &mut sandboxes } else { &mut apps };
                    if !list.iter().any(|c| c.id == f.container.id) {
                        list.push(Arc::new(f.container.clone()));
                    }
                    break;
                }
            }
            apps.extend(sandboxes);
            by_netns.insert(ns, apps);
        }
        self.records = read_now;
        self.by_netns = by_netns;
        Ok(())
    }
}

/// Netns inode of `pid`, from the `net:[4026531840]` link text.
fn netns_of_pid(proc_dir: &Path, pid: u32) -> Option<u32> {
    let link = fs::read_link(proc_dir.join(format!("{pid}/ns/net"))).ok()?;
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Where the records are, from `pid`'s parent (conmon, a containerd shim).
fn parent_hints(proc_dir: &Path, pid: u32) -> Hints {
    let Some(ppid) = fs::read_to_string(proc_dir.join(format!("{pid}/stat")))
        .ok()
        .and_then(|s| parent_pid(&s))
    else {
        return Hints::default();
    };
    let parent = proc_dir.join(ppid.to_string());
    let cmdline = fs::read(parent.join("cmdline")).unwrap_or_default();
    let cwd = fs::read_link(parent.join("cwd")).ok();
    Hints::from_parent(&cmdline, cwd.as_deref())
}

/// The ppid field of /proc/PID/stat (after the parenthesised comm, which
/// may itself hold spaces and parentheses).
pub(crate) fn parent_pid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
