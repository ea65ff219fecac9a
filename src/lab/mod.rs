//! The broken-network lab: small networks of namespaces that netwhy builds,
//! breaks in one specific way, triggers, checks against what the kernel
//! reports, and always removes.
//!
//! Topology commands use `ip`/`nft`/`sysctl` on purpose: a scenario is also
//! documentation of how the incident is reproduced by hand. (Live-state
//! collectors, by contrast, use netlink.) Addresses are from 198.18.0.0/15
//! and fd00::/8 and exist only inside the lab's namespaces.
pub mod bpf;
pub mod expect;
pub mod runner;
pub mod scenarios;
pub mod traffic;
#[cfg(test)]
mod verified_tests;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::undo::{Action, Journal};

/// Every lab namespace name starts with this; `lab clean` relies on it.
pub const NS_PREFIX: &str = "nwlab-";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("cannot run `{cmd}`: {err} (install iproute2 / nftables)")]
    Spawn { cmd: String, err: std::io::Error },
    #[error("namespace {0}: {1}")]
    Netns(String, std::io::Error),
    #[error("the lab needs root to create network namespaces: run it with sudo")]
    Privilege,
    #[error("no lab scenario named '{0}': `netwhy lab list` shows them")]
    Unknown(String),
    #[error("undo journal: {0}")]
    Journal(std::io::Error),
    #[error("traffic: {0}")]
    Traffic(String),
}

/// A namespace of the lab, by role (e.g. "cli", "rtr", "srv").
#[derive(Debug, Clone)]
pub struct Netns {
    pub role: String,
    pub name: String,
    pub inode: u32,
}

/// A lab instance. Dropping it removes every namespace and restores every
/// sysctl it changed (through its undo journal).
pub struct Lab {
    id: String,
    pub nss: Vec<Netns>,
    journal: Journal,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    pub fn new() -> Result<Lab, LabError> {
        if !crate::sys::is_root() {
            return Err(LabError::Privilege);
        }
        crate::undo::clean_stale();
        let id = format!(
            "{NS_PREFIX}{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Lab {
            id,
            nss: Vec::new(),
            journal: Journal::open().map_err(LabError::Journal)?,
        })
    }

    /// Create a namespace for `role` with loopback up.
    pub fn add_ns(&mut self, role: &str) -> Result<Netns, LabError> {
        let name = format!("{}-{role}", self.id);
        self.journal
            .record(Action::DeleteNetns { name: name.clone() })
            .map_err(LabError::Journal)?;
        run(&["ip", "netns", "add", &name])?;
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        let inode = fs::metadata(Path::new("/run/netns").join(&name))
            .map_err(|e| LabError::Netns(name.clone(), e))?
            .ino() as u32;
        let ns = Netns {
            role: role.to_string(),
            name,
            inode,
        };
        self.nss.push(ns.clone());
        Ok(ns)
    }

    pub fn ns(&self, role: &str) -> &Netns {
        self.nss
            .iter()
            .find(|n| n.role == role)
            .unwrap_or_else(|| panic!("scenario bug: no namespace with role {role}"))
    }

    pub fn inodes(&self) -> Vec<u32> {
        self.nss.iter().map(|n| n.inode).collect()
    }

    /// A veth pair: `a_if` in role `a`, `b_if` in role `b`, both up.
    pub fn veth(&mut self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), LabError> {
        let (na, nb) = (self.ns(a).name.clone(), self.ns(b).name.clone());
        run(&[
            "ip", "-n", &na, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns",
            &nb,
        ])?;
        run(&["ip", "-n", &na, "link", "set", a_if, "up"])?;
        run(&["ip", "-n", &nb, "link", "set", b_if, "up"])?;
        Ok(())
    }

    /// `ip -n <ns of role> ARGS...`
    pub fn ip(&self, role: &str, args: &[&str]) -> Result<(), LabError> {
        let name = &self.ns(role).name;
        let mut v = vec!["ip", "-n", name.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Set a sysctl inside the namespace of `role` (gone with the netns).
    pub fn sysctl(&self, role: &str, key: &str, value: &str) -> Result<(), LabError> {
        let kv = format!("{key}={value}");
        self.exec(role, &["sysctl", "-qw", &kv]).map(|_| ())
    }

    /// Set a host (init netns) sysctl, journalled for restore.
    pub fn host_sysctl(&mut self, key: &str, value: &str) -> Result<String, LabError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let old = fs::read_to_string(&path)
            .map_err(|e| LabError::Netns(path.clone(), e))?
            .trim()
            .to_string();
        self.journal
            .record(Action::RestoreSysctl {
                path: path.clone(),
                value: old.clone(),
            })
            .map_err(LabError::Journal)?;
        fs::write(&path, value).map_err(|e| LabError::Netns(path, e))?;
        Ok(old)
    }

    /// Load an nft ruleset inside the namespace of `role`.
    pub fn nft(&self, role: &str, ruleset: &str) -> Result<(), LabError> {
        self.exec_stdin(role, &["nft", "-f", "-"], ruleset)
            .map(|_| ())
    }

    /// Kernel counters of the namespace of `role`: /proc/net/snmp and
    /// /proc/net/netstat as `Group:Name` -> value.
    pub fn counters(&self, role: &str) -> Result<std::collections::HashMap<String, u64>, LabError> {
        let name = self.ns(role).name.clone();
        traffic::in_netns(&name, || {
            let mut m = std::collections::HashMap::new();
            for f in ["snmp", "netstat"] {
                // thread-self: /proc/self/net would show the process's netns.
                let t = fs::read_to_string(format!("/proc/thread-self/net/{f}"))
                    .map_err(|e| LabError::Traffic(format!("read {f}: {e}")))?;
                expect::parse_snmp(&t, &mut m);
            }
            Ok(m)
        })
    }

    /// Set a host sysctl only while `f` runs (e.g. to create one socket that
    /// inherits it), then restore it at once. Journalled, so a killed run
    /// still restores it; serialised with other netwhy processes (and with
    /// journal replays) by the journal lock.
    pub fn with_host_sysctl<T>(
        &mut self,
        key: &str,
        value: &str,
        f: impl FnOnce() -> Result<T, LabError>,
    ) -> Result<T, LabError> {
        let lock = crate::undo::lock().map_err(LabError::Journal)?;
        // A run killed inside this window (it held the lock until it died)
        // left its value in place: restore it before reading the "old"
        // value, or this run would put the killed run's value back.
        crate::undo::clean_stale_locked(&lock);
        self.host_sysctl(key, value)?;
        test_pause("host sysctl set");
        let r = f();
        let restored = self.journal.undo_last().map_err(LabError::Journal);
        drop(lock);
        restored?;
        r
    }

    /// Load iptables rules (iptables-restore format) with `tool`
    /// (`iptables-legacy-restore`, `iptables-nft-restore`) in `role`.
    pub fn iptables_restore(&self, role: &str, tool: &str, rules: &str) -> Result<(), LabError> {
        self.exec_stdin(role, &[tool, "--noflush"], rules)
            .map(|_| ())
    }

    /// Link-layer address of `dev` in the namespace of `role`.
    pub fn mac(&self, role: &str, dev: &str) -> Result<[u8; 6], LabError> {
        let out = self.exec(role, &["cat", &format!("/sys/class/net/{dev}/address")])?;
        traffic::parse_mac(&out)
            .ok_or_else(|| LabError::Traffic(format!("bad MAC '{}'", out.trim())))
    }

    /// A permanent neighbour entry in `role` for `addr`, pointing at the MAC
    /// of `peer_dev` in `peer`: for topologies where the peer will not
    /// answer ARP (strict rp_filter drops requests from the spoofed source
    /// too), as on a real network with a warm ARP cache.
    pub fn pin_neighbour(
        &self,
        role: &str,
        dev: &str,
        addr: &str,
        peer: &str,
        peer_dev: &str,
    ) -> Result<(), LabError> {
        let mac = self.mac(peer, peer_dev)?;
        let mac = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        self.ip(
            role,
            &[
                "neigh",
                "replace",
                addr,
                "lladdr",
                &mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ],
        )
    }

    /// Run a command inside the namespace of `role`; returns stdout.
    pub fn exec(&self, role: &str, cmd: &[&str]) -> Result<String, LabError> {
        self.exec_stdin(role, cmd, "")
    }

    fn exec_stdin(&self, role: &str, cmd: &[&str], input: &str) -> Result<String, LabError> {
        let name = &self.ns(role).name;
        let mut v = vec!["ip", "netns", "exec", name.as_str()];
        v.extend_from_slice(cmd);
        run_stdin(&v, input)
    }

    /// Client ⇄ server on one veth: cli 198.18.0.1/24 (eth0), srv
    /// 198.18.0.2/24 (eth0), plus fd00:18::1/2 without DAD.
    pub fn pair(&mut self) -> Result<(), LabError> {
        self.add_ns("cli")?;
        self.add_ns("srv")?;
        self.veth("cli", "eth0", "srv", "eth0")?;
        for (role, v4, v6) in [
            ("cli", "198.18.0.1/24", "fd00:18::1/64"),
            ("srv", "198.18.0.2/24", "fd00:18::2/64"),
        ] {
            self.ip(role, &["addr", "add", v4, "dev", "eth0"])?;
            self.ip(role, &["addr", "add", v6, "dev", "eth0", "nodad"])?;
        }
        Ok(())
    }

    /// Client ⇄ router ⇄ server: cli 198.18.1.2 — rtr 198.18.1.1 | 198.18.2.1
    /// — srv 198.18.2.2, default routes via the router, forwarding on.
    pub fn routed(&mut self) -> Result<(), LabError> {
        self.add_ns("cli")?;
        self.add_ns("rtr")?;
        self.add_ns("srv")?;
        self.veth("cli", "eth0", "rtr", "eth0")?;
        self.veth("srv", "eth0", "rtr", "eth1")?;
        self.ip("cli", &["addr", "add", "198.18.1.2/24", "dev", "eth0"])?;
        self.ip("rtr", &["addr", "add", "198.18.1.1/24", "dev", "eth0"])?;
        self.ip("rtr", &["addr", "add", "198.18.2.1/24", "dev", "eth1"])?;
        self.ip("srv", &["addr", "add", "198.18.2.2/24", "dev", "eth0"])?;
        self.ip("cli", &["route", "add", "default", "via", "198.18.1.1"])?;
        self.ip("srv", &["route", "add", "default", "via", "198.18.2.1"])?;
        self.sysctl("rtr", "net.ipv4.ip_forward", "1")?;
        Ok(())
    }

    /// Tear down now (also happens on drop). Returns cleanup failures.
    pub fn teardown(mut self) -> Vec<String> {
        self.journal.undo_all()
    }
}

/// Remove leftovers of killed runs: journals of dead processes, then any
/// `nwlab-PID-*` namespace whose PID is gone. Returns what was removed.
pub fn clean(all: bool) -> Vec<String> {
    let mut done = crate::undo::clean_stale();
    if let Ok(dir) = fs::read_dir("/run/netns") {
        for ent in dir.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            let owner_alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if all || !owner_alive {
                match run(&["ip", "netns", "del", &name]) {
                    Ok(()) => done.push(format!("delete netns {name}")),
                    Err(e) => done.push(format!("delete netns {name} failed: {e}")),
                }
            }
        }
    }
    done
}

/// Test hook: with NETWHY_TEST_PAUSE_MS set, announce `point` on stderr and
/// sleep there, so a test can act (e.g. SIGKILL netwhy) at a known moment
/// (tests/lab.rs, tests/kill9.rs). NETWHY_TEST_PAUSE_AT names the point;
/// unset, it is "lab built".
pub(crate) fn test_pause(point: &str) {
    let at = std::env::var("NETWHY_TEST_PAUSE_AT").unwrap_or_else(|_| "lab built".into());
    if at == point {
        if let Some(ms) = std::env::var("NETWHY_TEST_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            eprintln!("netwhy: {point}, pausing {ms} ms");
            // NETWHY_TEST_PAUSE_UNTIL=FILE ends the pause as soon as FILE
            // exists: a slow machine then waits as long as it needs, a
            // fast one no longer than it must.
            let until = std::env::var_os("NETWHY_TEST_PAUSE_UNTIL");
            let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            while std::time::Instant::now() < end {
                if until
                    .as_ref()
                    .is_some_and(|f| std::path::Path::new(f).exists())
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

pub(crate) fn run(cmd: &[&str]) -> Result<(), LabError> {
    run_stdin(cmd, "").map(|_| ())
}

fn run_stdin(cmd: &[&str], input: &str) -> Result<String, LabError> {
    let joined = cmd.join(" ");
    let mut command = Command::new(cmd[0]);
    crate::sys::die_with_us(&mut command);
    let mut child = command
        .args(&cmd[1..])
        .stdin(if input.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| LabError::Spawn {
            cmd: joined.clone(),
            err,
        })?;
    if !input.is_empty() {
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(input.as_bytes());
        }
    }
    let out = child.wait_with_output().map_err(|err| LabError::Spawn {
        cmd: joined.clone(),
        err,
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: joined,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
