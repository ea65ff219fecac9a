//! Changing BROKEN: every value is journalled before the first write, so
//! whatever ends netwhy (error, Ctrl-C, SIGTERM, SIGKILL and the next run),
//! BROKEN gets its own values back. Host-global settings are changed only
//! around the repro runs of one configuration, under the journal lock, and
//! put back at once.
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::collect::{self, Change, Setting, Side, Skipped};
use super::{nft, BisectError};
use crate::state::route_set::{self, Entry};
use crate::state::sysctl::path_of;
use crate::undo::{Action, Journal};

/// BROKEN, and the journal of what was done to it.
pub struct Target {
    pub name: String,
    pub inode: u32,
    journal: Journal,
    /// BROKEN's routes and rules at the start, once journalled.
    pub(super) routes: Option<Vec<Entry>>,
    /// BROKEN's ruleset at the start, once journalled.
    pub(super) nft: Option<Nft>,
}

/// BROKEN's nft ruleset as saved, and each bisected table as it is now.
pub(super) struct Nft {
    pub(super) stateful: String,
    pub(super) stateless: String,
    pub(super) now: std::collections::BTreeMap<String, Option<String>>,
}

/// The routes and rules of named netns `name`.
pub fn routes_of(name: &str) -> Result<Vec<Entry>, BisectError> {
    route_set::read_in(name)
        .map_err(|e| BisectError::Io(e.to_string()))?
        .ok_or_else(|| BisectError::NoNetns(name.to_string()))
}

fn ns_file(name: &str) -> Result<File, BisectError> {
    File::open(Path::new("/run/netns").join(name))
        .map_err(|_| BisectError::NoNetns(name.to_string()))
}

fn read_in(file: File) -> Result<Side, BisectError> {
    crate::sys::netns::run_in(file, collect::read_here).map_err(|e| BisectError::Io(e.to_string()))
}

/// Every `net.*` sysctl of named namespace `name`.
pub fn read_netns(name: &str) -> Result<Side, BisectError> {
    read_in(ns_file(name)?)
}

/// The init namespace's view (where host-global keys are writable); our
/// own namespace's where pid 1's is out of reach (a container that hides
/// it: there, ours is the best "host" there is).
pub fn read_host() -> Result<Side, BisectError> {
    match File::open("/proc/1/ns/net") {
        Ok(f) => read_in(f),
        Err(_) => Ok(collect::read_here()),
    }
}

/// Write each (key, value), in order, where the value differs now. Returns
/// how many were written and the failures as text.
fn settle_here(pairs: &[(String, String)]) -> (usize, Vec<String>) {
    let mut written = 0;
    let mut failed = Vec::new();
    for (k, v) in pairs {
        let path = path_of(k);
        let now = fs::read_to_string(&path).unwrap_or_default();
        if collect::norm(&now) != collect::norm(v) {
            match fs::write(&path, v) {
                Ok(()) => written += 1,
                Err(e) => failed.push(format!("{k}={v}: {e}")),
            }
        }
    }
    (written, failed)
}

impl Target {
    pub fn open(name: &str) -> Result<Target, BisectError> {
        let f = ns_file(name)?;
        let inode = f
            .metadata()
            .map_err(|e| BisectError::Io(e.to_string()))?
            .ino() as u32;
        Ok(Target {
            name: name.to_string(),
            inode,
            journal: Journal::open().map_err(BisectError::Journal)?,
            routes: None,
            nft: None,
        })
    }

    pub fn read(&self) -> Result<Side, BisectError> {
        read_netns(&self.name)
    }

    /// A fresh namespace's sysctls and routes (its nft ruleset is empty):
    /// made (journalled) and removed at once.
    pub fn scratch_defaults(&mut self) -> Result<(Side, Vec<Entry>), BisectError> {
        let name = format!(
            "netwhy-bisect-{}-{:08x}",
            std::process::id(),
            crate::sys::random_u32()
        );
        self.journal
            .record(Action::DeleteNetns { name: name.clone() })
            .map_err(BisectError::Journal)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "add", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::sys::die_with_us(&mut cmd);
        let out = cmd.output().map_err(|e| {
            BisectError::Io(format!("cannot run `ip netns add`: {e} (install iproute2)"))
        })?;
        let side = if out.status.success() {
            read_netns(&name).and_then(|s| Ok((s, routes_of(&name)?)))
        } else {
            Err(BisectError::Io(format!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        };
        self.journal.undo_last().map_err(BisectError::Journal)?;
        side
    }

    /// Journal BROKEN's writable values before anything is written; and
    /// its routes and rules, and its nft ruleset, when `settings` has any
    /// of those.
    pub fn protect(&mut self, broken: &Side, settings: &[Setting]) -> Result<(), BisectError> {
        self.journal
            .record(Action::RestoreNetnsSysctls {
                netns: self.name.clone(),
                sysctls: ordered(broken),
            })
            .map_err(BisectError::Journal)?;
        if settings
            .iter()
            .any(|s| matches!(s.change, Change::Route { .. }))
        {
            let routes = routes_of(&self.name)?;
            self.journal
                .record(Action::RestoreNetnsRoutes {
                    netns: self.name.clone(),
                    routes: routes.clone(),
                })
                .map_err(BisectError::Journal)?;
            self.routes = Some(routes);
        }
        let tables: Vec<(String, Option<String>)> = settings
            .iter()
            .filter_map(|s| match &s.change {
                Change::Nft { bad, .. } => Some((s.name.as_str().to_string(), bad.clone())),
                _ => None,
            })
            .collect();
        if !tables.is_empty() {
            let stateful = nft::stateful(&self.name)?;
            let stateless = nft::stateless(&self.name)?;
            // A ruleset nft cannot load back (iptables-nft's xt matches)
            // could not be restored: refuse before changing it.
            nft::check(&self.name, &crate::undo::netset::reload_script(&stateful)).map_err(
                |e| {
                    BisectError::Io(format!(
                        "{}'s nft ruleset cannot be reloaded ({e}): leave nft out of --what",
                        self.name
                    ))
                },
            )?;
            self.journal
                .record(Action::RestoreNetnsNft {
                    netns: self.name.clone(),
                    ruleset: stateful.clone(),
                    stateless: stateless.clone(),
                })
                .map_err(BisectError::Journal)?;
            self.nft = Some(Nft {
                stateful,
                stateless,
                now: tables.into_iter().collect(),
            });
        }
        Ok(())
    }

    /// Returns how many values were written.
    fn settle(&self, pairs: Vec<(String, String)>) -> Result<usize, BisectError> {
        let (written, failed) =
            crate::sys::netns::run_in(ns_file(&self.name)?, move || settle_here(&pairs))
                .map_err(|e| BisectError::Io(e.to_string()))?;
        if failed.is_empty() {
            Ok(written)
        } else {
            Err(BisectError::Io(format!(
                "in netns {}: {}",
                self.name,
                failed.join(", ")
            )))
        }
    }

    /// Try each setting's good value and its own: those the kernel refuses
    /// (EINVAL, EPERM: a congestion control that is not loaded here, a
    /// key that rejects writes) are skipped and keep BROKEN's value.
    pub fn preflight(
        &mut self,
        settings: Vec<Setting>,
    ) -> Result<(Vec<Setting>, Vec<Skipped>), BisectError> {
        let (net, settings): (Vec<Setting>, Vec<Setting>) = settings
            .into_iter()
            .partition(|s| !matches!(s.change, Change::Sysctl));
        let (host, local): (Vec<Setting>, Vec<Setting>) =
            settings.into_iter().partition(|s| s.host);
        let tried = crate::sys::netns::run_in(ns_file(&self.name)?, move || {
            local
                .into_iter()
                .map(|s| {
                    let mut err = None;
                    for (k, b, g) in s.keys() {
                        for v in [g, b] {
                            if let Err(e) = fs::write(path_of(k), v) {
                                err.get_or_insert(format!("{k}={v} refused: {e}"));
                            }
                        }
                    }
                    (s, err)
                })
                .collect::<Vec<_>>()
        })
        .map_err(|e| BisectError::Io(e.to_string()))?;
        let mut ok = Vec::new();
        let mut refused = Vec::new();
        for (s, err) in tried {
            match err {
                None => ok.push(s),
                Some(why) => refused.push(Skipped {
                    name: s.name.clone(),
                    why,
                }),
            }
        }
        ok.extend(host);
        let (net, net_refused) = self.preflight_net(net)?;
        ok.extend(net);
        refused.extend(net_refused);
        ok.sort_by_key(collect::order);
        Ok((ok, refused))
    }

    /// Run `f` with the settings of `bad` (indices) at their broken values
    /// and the others at their good ones.
    pub fn with<T>(
        &mut self,
        settings: &[Setting],
        bad: &[usize],
        f: impl FnOnce() -> Result<T, BisectError>,
    ) -> Result<T, BisectError> {
        let mut pairs = Vec::new();
        let mut host = Vec::new();
        for (i, s) in settings.iter().enumerate() {
            let broken = bad.contains(&i);
            for (k, b, g) in s.keys() {
                let v = if broken { b } else { g };
                if s.host {
                    host.push((k.to_string(), v.to_string()));
                } else {
                    pairs.push((k.to_string(), v.to_string()));
                }
            }
        }
        pairs.sort_by_key(|a| collect::rank(&a.0));
        let mut written = self.settle(pairs)?;
        if let Some(base) = &self.routes {
            let want = super::routes::mix(base, settings, |i| bad.contains(&i));
            written += self.settle_routes(want)?;
        }
        let tables: Vec<(String, Option<String>)> = settings
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.change {
                Change::Nft { bad: b, good: g } => Some((
                    s.name.as_str().to_string(),
                    if bad.contains(&i) {
                        b.clone()
                    } else {
                        g.clone()
                    },
                )),
                _ => None,
            })
            .collect();
        written += self.settle_nft(tables)?;
        if written > 0 {
            // Tests kill netwhy here, with BROKEN changed.
            crate::lab::test_pause("bisect step");
        }
        if host.is_empty() {
            return f();
        }
        self.with_host(host, f)
    }

    /// Host-global values for the length of `f` only, under the journal
    /// lock (a replay cannot interleave), each journalled before its write.
    fn with_host<T>(
        &mut self,
        host: Vec<(String, String)>,
        f: impl FnOnce() -> Result<T, BisectError>,
    ) -> Result<T, BisectError> {
        let lock = crate::undo::lock().map_err(BisectError::Journal)?;
        crate::undo::clean_stale_locked(&lock);
        let mut changed = 0;
        let mut r = Ok(());
        for (k, v) in &host {
            let path = path_of(k);
            let Ok(old) = fs::read_to_string(&path) else {
                continue;
            };
            if collect::norm(&old) == collect::norm(v) {
                continue;
            }
            if let Err(e) = self.journal.record(Action::RestoreSysctl {
                path: path.clone(),
                value: old.trim().to_string(),
            }) {
                r = Err(BisectError::Journal(e));
                break;
            }
            changed += 1;
            if let Err(e) = fs::write(&path, v) {
                r = Err(BisectError::Io(format!("host {k}={v}: {e}")));
                break;
            }
        }
        let out = r.and_then(|()| f());
        for _ in 0..changed {
            self.journal.undo_last().map_err(BisectError::Journal)?;
        }
        drop(lock);
        out
    }

    /// Put BROKEN's values back now and check every writable one.
    pub fn restore(&mut self, broken: &Side) -> Result<(), BisectError> {
        self.settle(ordered(broken))?;
        let mut differ: Vec<String> = Vec::new();
        if let Some(base) = self.routes.clone() {
            self.settle_routes(base.clone())?;
            if routes_of(&self.name)? != base {
                differ.push("routes and rules".into());
            }
        }
        if let Some(saved) = &self.nft {
            crate::undo::netset::restore_nft(&self.name, &saved.stateful, &saved.stateless)
                .map_err(|e| BisectError::Io(format!("in netns {}: {e}", self.name)))?;
            if nft::stateless(&self.name)? != saved.stateless {
                differ.push("nft ruleset".into());
            }
        }
        let now = self.read()?;
        differ.extend(
            broken
                .iter()
                .filter(|(_, e)| e.writable)
                .filter(|(k, e)| now.get(*k).map(|n| &n.value) != Some(&e.value))
                .map(|(k, _)| k.clone()),
        );
        if differ.is_empty() {
            Ok(())
        } else {
            Err(BisectError::NotRestored(
                self.name.clone(),
                differ.join(", "),
            ))
        }
    }
}

/// BROKEN's writable values in write order.
fn ordered(side: &Side) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = side
        .iter()
        .filter(|(_, e)| e.writable)
        .map(|(k, e)| (k.clone(), e.value.clone()))
        .collect();
    v.sort_by_key(|a| collect::rank(&a.0));
    v
}
