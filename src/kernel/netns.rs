//! Network namespace names. The kernel identifies a netns only by the inode
//! number of its nsfs file; users know `ip netns` names, containers and the
//! processes living there. This maps one to the other.
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::KernelError;

/// Where `ip netns add` bind-mounts named namespaces.
const RUN_NETNS: &str = "/run/netns";
/// Numbers up to PID_MAX_LIMIT (2^22) are PIDs typed by mistake: nsfs
/// inodes are far larger (dynamic ones from 0xF0000000; since 6.18 the init
/// namespaces have fixed numbers just below, e.g. init_net 0xEFFFFFF9).
const MAX_PID: u64 = 1 << 22;
/// A miss rescans /proc at most this often: events from a short-lived
/// namespace must not turn into one /proc walk per event.
const MIN_RESCAN: Duration = Duration::from_secs(1);

/// Netns inode → human name.
#[derive(Debug, Default)]
pub struct NetnsNames {
    names: HashMap<u32, String>,
    scanned: Option<Instant>,
}

impl NetnsNames {
    /// Scans `/run/netns` and `/proc`. Unreadable entries (other users'
    /// processes when not root) are skipped: a partial map is still useful.
    pub fn scan() -> Self {
        let mut n = NetnsNames::default();
        n.refresh();
        n
    }

    /// Re-reads everything. Costs one readlink per process (a few ms on a
    /// busy host); prefer [`NetnsNames::name_or_refresh`] in event loops.
    pub fn refresh(&mut self) {
        self.names.clear();
        let holders = Holders::scan();
        // 1. ip-netns names win: they are what the user typed.
        for (ino, name) in holders.mounts {
            self.names.entry(ino).or_insert(name);
        }
        // 2. The init netns, unless it has an ip-netns name.
        if let Some(ino) = ns_of_pid("1") {
            self.names.entry(ino).or_insert_with(|| "init".to_owned());
        }
        // 3. The lowest pid in each remaining namespace names it.
        let mut lowest: HashMap<u32, u32> = HashMap::new();
        for (pid, ino) in holders.pids {
            if !self.names.contains_key(&ino) {
                let l = lowest.entry(ino).or_insert(pid);
                *l = (*l).min(pid);
            }
        }
        for (ino, pid) in lowest {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            self.names.insert(ino, format!("{pid}/{}", comm.trim_end()));
        }
        self.scanned = Some(Instant::now());
    }

    /// The name of netns `ino`, if known at the last scan.
    pub fn name(&self, ino: u32) -> Option<&str> {
        self.names.get(&ino).map(String::as_str)
    }

    /// Like [`NetnsNames::name`], but rescans on a miss, at most once per
    /// second, so namespaces created after start-up get names too.
    pub fn name_or_refresh(&mut self, ino: u32) -> Option<&str> {
        let stale = self.scanned.is_none_or(|t| t.elapsed() >= MIN_RESCAN);
        if !self.names.contains_key(&ino) && stale {
            self.refresh();
        }
        self.name(ino)
    }

    /// All known `(inode, name)` pairs, unordered.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        self.names.iter().map(|(&i, n)| (i, n.as_str()))
    }
}

/// Netns inode of a process, from the `net:[4026531840]` link text.
/// What keeps network namespaces alive: `ip netns` mounts and processes.
/// One walk serves both the naming above and the exporter's "which
/// namespaces still exist" (a namespace nobody holds is gone).
#[derive(Debug, Default)]
pub struct Holders {
    /// `/run/netns` entries: (inode, name).
    pub mounts: Vec<(u32, String)>,
    /// Every readable process: (pid, netns inode).
    pub pids: Vec<(u32, u32)>,
}

impl Holders {
    /// Walks `/run/netns` and `/proc`; unreadable entries are skipped.
    pub fn scan() -> Self {
        let mut h = Holders::default();
        if let Ok(dir) = fs::read_dir(RUN_NETNS) {
            for e in dir.flatten() {
                let file_name = e.file_name();
                let (Ok(meta), Some(name)) = (fs::metadata(e.path()), file_name.to_str()) else {
                    continue;
                };
                if let Ok(ino) = u32::try_from(meta.ino()) {
                    h.mounts.push((ino, name.to_owned()));
                }
            }
        }
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(ino) = ns_of_pid(&pid.to_string()) {
                    h.pids.push((pid, ino));
                }
            }
        }
        h
    }

    /// Every inode held by a mount or a process.
    pub fn inodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.mounts
            .iter()
            .map(|(ino, _)| *ino)
            .chain(self.pids.iter().map(|(_, ino)| *ino))
    }
}

fn ns_of_pid(pid: &str) -> Option<u32> {
    let link = fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    parse_ns_link(link.to_str()?)
}

fn parse_ns_link(s: &str) -> Option<u32> {
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The netns of this process (0 if /proc is unavailable, which no
/// supported setup has; 0 never matches a real namespace).
pub fn current_netns() -> u32 {
    fs::metadata("/proc/self/ns/net")
        .ok()
        .and_then(|m| u32::try_from(m.ino()).ok())
        .or_else(|| ns_of_pid("self"))
        .unwrap_or(0)
}

/// Turns a user's netns argument into an inode: a number (`4026531840`), an
/// `ip netns` name (`blue`), `init`, or a path (`/proc/1234/ns/net`,
/// `/run/netns/blue`, a container runtime's bind mount).
pub fn resolve_netns_spec(spec: &str) -> Result<u32, KernelError> {
    let unknown = |hint: String| KernelError::UnknownNetns {
        spec: spec.to_owned(),
        hint,
    };
    if spec.is_empty() {
        return Err(unknown(HINT.into()));
    }
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        return match spec.parse::<u64>() {
            Ok(n) if n > MAX_PID && n <= u32::MAX as u64 => Ok(n as u32),
            _ => Err(unknown(format!(
                "not a netns inode number (those look like 4026531840, see `lsns -t net`); \
                 for a process use /proc/{spec}/ns/net"
            ))),
        };
    }
    if spec.contains('/') {
        return stat_ino(Path::new(spec))
            .map_err(|e| unknown(format!("{e}; give a path like /proc/PID/ns/net")));
    }
    if spec == "init" {
        return stat_ino(Path::new("/proc/1/ns/net"))
            .map_err(|e| unknown(format!("{e}; run as root to see pid 1's namespace")));
    }
    stat_ino(&Path::new(RUN_NETNS).join(spec)).map_err(|_| unknown(HINT.into()))
}

const HINT: &str = "not an `ip netns` name (see `ip netns list`); give a name, \
                    an inode number (see `lsns -t net`) or a path like /proc/PID/ns/net";

fn stat_ino(p: &Path) -> Result<u32, String> {
    let m = fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    u32::try_from(m.ino()).map_err(|_| format!("{}: inode does not fit 32 bits", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_netns_matches_link() {
        let ino = current_netns();
        assert!(ino as u64 > MAX_PID, "{ino}");
        assert_eq!(ns_of_pid("self"), Some(ino));
    }

    #[test]
    fn scan_names_own_namespace() {
        let mut n = NetnsNames::scan();
        let me = current_netns();
        let name = n.name(me).expect("own netns has no name").to_owned();
        assert!(!name.is_empty());
        assert_eq!(n.name_or_refresh(me), Some(name.as_str()));
        // A namespace that cannot exist stays unnamed and costs one rescan.
        assert_eq!(n.name_or_refresh(1), None);
    }

    #[test]
    fn specs_resolve() {
        let me = current_netns();
        assert_eq!(resolve_netns_spec("/proc/self/ns/net").unwrap(), me);
        assert_eq!(resolve_netns_spec(&me.to_string()).unwrap(), me);
        let pid = std::process::id();
        assert_eq!(
            resolve_netns_spec(&format!("/proc/{pid}/ns/net")).unwrap(),
            me
        );
    }

    #[test]
    fn bad_specs_say_how_to_fix() {
        let e = resolve_netns_spec("no-such-netns-xyz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ip netns list"), "{e}");
        assert!(!e.contains('\n'));
        let e = resolve_netns_spec("1234").unwrap_err().to_string();
        assert!(e.contains("/proc/1234/ns/net"), "{e}");
        let e = resolve_netns_spec("/nonexistent/ns")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/proc/PID/ns/net"), "{e}");
        assert!(resolve_netns_spec("").is_err());
    }

    #[test]
    fn link_text_parses() {
        assert_eq!(parse_ns_link("net:[4026531840]"), Some(4026531840));
        assert_eq!(parse_ns_link("mnt:[4026531840]"), None);
        assert_eq!(parse_ns_link("net:[x]"), None);
    }
}
