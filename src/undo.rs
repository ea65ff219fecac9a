//! The undo journal: every change netwhy makes to the system that would
//! outlive it is written to /run/netwhy/undo-*.json *before* it is made,
//! and undone (newest first) when the owner finishes, fails or is
//! interrupted. (nftrace tables and private cgroup2 mounts need no entry:
//! the kernel releases them with the fd that made them.) A run killed with
//! SIGKILL leaves its journal behind; the next netwhy of any kind (see
//! main.rs) finds journals whose process is gone and replays them.
//!
//! Replays and brief host changes (`Lab::with_host_sysctl`) take [`lock`]:
//! otherwise a replay could restore a sysctl in the middle of another run's
//! brief change, which would then "restore" the killed run's value.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

pub mod netset;
pub mod tracefs;

pub const DIR: &str = "/run/netwhy";

/// One change and how to revert it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Action {
    /// `ip netns del NAME` (also removes the veths and nft tables inside).
    DeleteNetns { name: String },
    /// Write VALUE back to a /proc/sys path (host namespace).
    RestoreSysctl { path: String, value: String },
    /// Remove a cgroup directory netwhy created (`netwhy run`), killing
    /// what is still inside first: an empty cgroup is the only removable one.
    /// A filesystem path: what journals written before `RemoveCgroup2`
    /// existed hold.
    RemoveCgroup { path: String },
    /// The same for a cgroup named by its path in the v2 hierarchy, as
    /// /proc/PID/cgroup shows it from cgroup namespace `cgroupns` (inode).
    /// Undoing finds the hierarchy again, mounted or privately mounted
    /// (src/sys/cgroup.rs), so a run that had no mounted hierarchy (under
    /// `ip netns exec`, in a container) is undone too, from anywhere in the
    /// same cgroup namespace; from another one the same path names another
    /// cgroup, so it is refused.
    RemoveCgroup2 { cgroup: String, cgroupns: u64 },
    /// Unmount the tracefs netwhy mounted at /sys/kernel/tracing for the
    /// classic tracepoints (it was not mounted before).
    UnmountTracefs,
    /// Put sysctls of named netns NETNS back (`netwhy bisect`), as
    /// (dotted key, value) in write order: only those whose value differs
    /// now are written, so keys that cascade (ip_forward sets every
    /// device's forwarding) are settled by the later, specific ones. A
    /// namespace that is gone needs nothing.
    RestoreNetnsSysctls {
        netns: String,
        sysctls: Vec<(String, String)>,
    },
    /// Make the routes and rules of named netns NETNS exactly ROUTES again
    /// (`netwhy bisect`; kernel-owned routes are not in the list and not
    /// touched, see `state::route_set`).
    RestoreNetnsRoutes {
        netns: String,
        routes: Vec<crate::state::route_set::Entry>,
    },
    /// Load RULESET (`nft list ruleset` text) into named netns NETNS in
    /// one transaction with `flush ruleset`, when its stateless listing
    /// differs from STATELESS (`netwhy bisect`, undo/netset.rs).
    RestoreNetnsNft {
        netns: String,
        ruleset: String,
        stateless: String,
    },
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::DeleteNetns { name } => format!("delete netns {name}"),
            Action::RestoreSysctl { path, value } => format!("restore {path} = {value}"),
            Action::RemoveCgroup { path } => format!("remove cgroup {path}"),
            Action::RemoveCgroup2 { cgroup, .. } => format!("remove cgroup {cgroup}"),
            Action::UnmountTracefs => "unmount /sys/kernel/tracing".into(),
            Action::RestoreNetnsSysctls { netns, sysctls } => {
                format!("restore {} sysctls in netns {netns}", sysctls.len())
            }
            Action::RestoreNetnsRoutes { netns, routes } => {
                format!("restore {} routes and rules in netns {netns}", routes.len())
            }
            Action::RestoreNetnsNft { netns, .. } => {
                format!("restore the nft ruleset of netns {netns}")
            }
        }
    }

    fn apply(&self) -> io::Result<()> {
        match self {
            Action::DeleteNetns { name } => {
                // What `ip netns del` does: detach the bind mount that pins
                // the namespace and remove its file; the kernel frees the
                // namespace (and the veths, tables inside) when unused.
                let file = Path::new("/run/netns").join(name);
                if !file.exists() {
                    return Ok(());
                }
                // Not mounted (a half-made namespace) is no reason to stop:
                // the file still goes.
                let _ = crate::sys::detach_mount(&file);
                fs::remove_file(&file)
            }
            Action::UnmountTracefs => {
                crate::sys::tracefs::unmount();
                Ok(())
            }
            Action::RestoreSysctl { path, value } => fs::write(path, value),
            Action::RestoreNetnsSysctls { netns, sysctls } => restore_netns_sysctls(netns, sysctls),
            Action::RestoreNetnsRoutes { netns, routes } => {
                crate::state::route_set::settle_in(netns, routes.clone())
                    .map(|_| ())
                    .map_err(io::Error::other)
            }
            Action::RestoreNetnsNft {
                netns,
                ruleset,
                stateless,
            } => netset::restore_nft(netns, ruleset, stateless),
            Action::RemoveCgroup2 { cgroup, cgroupns } => {
                let here = crate::sys::cgroup::namespace();
                if here != *cgroupns {
                    return Err(io::Error::other(format!(
                        "it was made in cgroup namespace {cgroupns}, this is {here}"
                    )));
                }
                crate::sys::cgroup::Hierarchy::find(true)
                    .map_err(|e| io::Error::other(format!("{e:#}")))?
                    .remove(cgroup)
            }
            Action::RemoveCgroup { path } => {
                let dir = Path::new(path);
                if !dir.exists() {
                    return Ok(());
                }
                // cgroup.kill (5.14+) ends every process inside at once.
                let _ = fs::write(dir.join("cgroup.kill"), "1");
                let mut last = Ok(());
                for _ in 0..50 {
                    last = fs::remove_dir(dir);
                    if last.is_ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                last
            }
        }
    }
}

/// [`Action::RestoreNetnsSysctls`]: enter the namespace on a thread and
/// write back what differs (whitespace-insensitive, as /proc prints tabs).
fn restore_netns_sysctls(netns: &str, sysctls: &[(String, String)]) -> io::Result<()> {
    let file = match fs::File::open(Path::new("/run/netns").join(netns)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let sysctls = sysctls.to_vec();
    let failed = crate::sys::netns::run_in(file, move || {
        let mut failed = Vec::new();
        for (key, value) in &sysctls {
            let path = crate::state::sysctl::path_of(key);
            let now = fs::read_to_string(&path).unwrap_or_default();
            let same = now.split_whitespace().eq(value.split_whitespace());
            if !same {
                if let Err(e) = fs::write(&path, value) {
                    failed.push(format!("{key}: {e}"));
                }
            }
        }
        failed
    })
    .map_err(io::Error::other)?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(failed.join(", ")))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    pid: u32,
    /// Process start time (clock ticks since boot), so a reused pid is not
    /// mistaken for the journal's owner.
    start: u64,
    actions: Vec<Action>,
}

/// An open journal; undoes everything on drop.
pub struct Journal {
    path: PathBuf,
    rec: Record,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Journal {
    pub fn open() -> io::Result<Journal> {
        fs::create_dir_all(DIR)?;
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(DIR).join(format!("undo-{pid}-{seq}.json"));
        let j = Journal {
            path,
            rec: Record {
                pid,
                start: start_time(pid).unwrap_or(0),
                actions: Vec::new(),
            },
        };
        j.save()?;
        Ok(j)
    }

    /// Record an action before making the change it reverts.
    pub fn record(&mut self, a: Action) -> io::Result<()> {
        self.rec.actions.push(a);
        self.save()
    }

    fn save(&self) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec(&self.rec)?)?;
        fs::rename(tmp, &self.path)
    }

    /// Undo the newest change now (it was meant to be brief) and drop it
    /// from the journal, so teardown does not write the old value a second
    /// time. On failure the action stays journalled for teardown/clean.
    pub fn undo_last(&mut self) -> io::Result<()> {
        let Some(a) = self.rec.actions.last() else {
            return Ok(());
        };
        a.apply()?;
        self.rec.actions.pop();
        self.save()
    }

    /// Drop every record without undoing it (the change was not made).
    pub fn forget(&mut self) {
        self.rec.actions.clear();
        let _ = fs::remove_file(&self.path);
    }

    /// Undo everything, newest first. Returns failures as text.
    pub fn undo_all(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        while let Some(a) = self.rec.actions.pop() {
            if let Err(e) = a.apply() {
                errs.push(format!("{}: {e}", a.describe()));
            }
        }
        let _ = fs::remove_file(&self.path);
        errs
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        for e in self.undo_all() {
            eprintln!("netwhy: warning: cleanup: {e}");
        }
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised comm (which may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn alive(rec: &Record) -> bool {
    start_time(rec.pid).is_some_and(|s| s == rec.start)
}

/// An exclusive lock on the journal directory (flock on the directory
/// itself, so no lock file is left behind); released when dropped, or by
/// the kernel when the holder dies.
pub struct Lock {
    _dir: fs::File,
}

/// Take the journal lock, waiting for whoever holds it.
pub fn lock() -> io::Result<Lock> {
    fs::create_dir_all(DIR)?;
    let f = fs::File::open(DIR)?;
    // SAFETY: a valid fd owned by `f`.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Lock { _dir: f })
}

/// Take the journal lock if it comes free within `wait`.
fn try_lock(wait: std::time::Duration) -> io::Result<Option<Lock>> {
    let f = fs::File::open(DIR)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        // SAFETY: a valid fd owned by `f`.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc == 0 {
            return Ok(Some(Lock { _dir: f }));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(e);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Replay the journals of processes that are gone. Returns what was done.
pub fn clean_stale() -> Vec<String> {
    if !Path::new(DIR).is_dir() {
        // Nothing was ever journalled on this boot: stay cheap.
        return Vec::new();
    }
    // The lock is held for moments only; a holder that is stopped (^Z)
    // must not hang every later netwhy: skip, a later run replays.
    match try_lock(std::time::Duration::from_secs(2)) {
        Ok(Some(held)) => clean_stale_locked(&held),
        Ok(None) => {
            eprintln!(
                "netwhy: warning: another netwhy holds the lock on {DIR}: journals of killed runs are replayed by a later run"
            );
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

/// [`clean_stale`] for a caller that already holds the [`lock`] (a second
/// flock on another descriptor would wait for ourselves).
pub fn clean_stale_locked(_held: &Lock) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(dir) = fs::read_dir(DIR) else {
        return done;
    };
    for ent in dir.flatten() {
        let path = ent.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {}
            // A save killed between writing the temporary file and renaming
            // it: the change it announced was not made yet (changes follow
            // the rename), so the file only has to go once its writer is gone.
            Some("tmp") => {
                let writer_gone = pid_in_name(&path).is_some_and(|pid| {
                    match fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                    {
                        Some(rec) => !alive(&rec),
                        None => !Path::new(&format!("/proc/{pid}")).exists(),
                    }
                });
                if writer_gone {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            _ => continue,
        }
        let Ok(bytes) = fs::read(&path) else { continue };
        let Ok(rec) = serde_json::from_slice::<Record>(&bytes) else {
            let _ = fs::remove_file(&path);
            continue;
        };
        if alive(&rec) {
            continue;
        }
        for a in rec.actions.iter().rev() {
            match a.apply() {
                Ok(()) => done.push(a.describe()),
                Err(e) => done.push(format!("{} failed: {e}", a.describe())),
            }
        }
        let _ = fs::remove_file(&path);
    }
    done
}

/// The pid in a journal file name, `undo-PID-SEQ.json` (or `.tmp`).
fn pid_in_name(path: &Path) -> Option<u32> {
    let stem = path.file_stem()?.to_str()?;
    stem.strip_prefix("undo-")?.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_as_json() {
        let a = Action::RestoreSysctl {
            path: "/proc/sys/net/core/rmem_default".into(),
            value: "212992".into(),
        };
        let s = serde_json::to_string(&a).unwrap();
        assert!(s.contains("\"undo\":\"restore_sysctl\""));
        assert_eq!(serde_json::from_str::<Action>(&s).unwrap(), a);
        let a = Action::RestoreNetnsRoutes {
            netns: "blue".into(),
            routes: vec![crate::state::route_set::Entry {
                rule: false,
                hdr: vec![2, 32, 0, 0, 254, 4, 0, 6, 0, 0, 0, 0],
                attrs: vec![(4, vec![])],
                devs: vec!["eth0".into()],
            }],
        };
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Action>(&s).unwrap(), a);
    }

    #[test]
    fn a_cgroup_of_another_cgroup_namespace_is_left_alone() {
        // The same hierarchy path names another cgroup there.
        let a = Action::RemoveCgroup2 {
            cgroup: "/netwhy-run-1-00000000".into(),
            cgroupns: 1,
        };
        let e = a.apply().unwrap_err().to_string();
        assert!(e.contains("made in cgroup namespace 1"), "{e}");
    }

    #[test]
    fn pid_is_read_from_journal_and_temporary_names() {
        assert_eq!(
            pid_in_name(Path::new("/run/netwhy/undo-4242-3.json")),
            Some(4242)
        );
        assert_eq!(
            pid_in_name(Path::new("/run/netwhy/undo-4242-3.tmp")),
            Some(4242)
        );
        assert_eq!(pid_in_name(Path::new("/run/netwhy/other.tmp")), None);
    }

    #[test]
    fn own_process_is_alive_and_dead_pid_is_not() {
        let me = Record {
            pid: std::process::id(),
            start: start_time(std::process::id()).unwrap(),
            actions: vec![],
        };
        assert!(alive(&me));
        let wrong_start = Record {
            start: me.start + 1,
            ..me
        };
        assert!(!alive(&wrong_start));
    }
}
