//! The settings of each side and how they differ.
//!
//! Which `net.*` sysctls a child namespace owns is read from the kernel at
//! run time, not from a list: /proc/sys/net in a child namespace shows its
//! own tables writable, and the host-global ones it only mirrors (on 6.18:
//! net.core.{r,w}mem_{default,max}, net.netfilter.nf_conntrack_max, the
//! read-only hash sizes) with the write bits cleared, while the host shows
//! them writable. So: writable in BROKEN = per-namespace; read-only in
//! BROKEN but writable on the host = host-global; anything else (read-only
//! everywhere, write-only like route.flush, unreadable like stable_secret)
//! cannot be bisected and is reported as skipped when it differs.
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One sysctl as a side has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub writable: bool,
}

/// Every readable `net.*` sysctl of one side, by dotted key.
pub type Side = BTreeMap<String, Entry>;

pub use super::setting::{Change, Name, Setting, Skipped};

/// Dotted key of a /proc/sys path relative to /proc/sys: components are
/// joined with '.', a '.' inside one (VLAN eth0.100) becomes '/' as in
/// sysctl(8), the inverse of `state::sysctl::path_of`.
fn key_of(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().replace('.', "/"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Read every `net.*` sysctl of the calling thread's namespace.
/// Write-only and unreadable files are left out (nothing to compare).
pub fn read_here() -> Side {
    let mut out = Side::new();
    walk(Path::new("/proc/sys/net"), &mut out);
    out
}

fn walk(dir: &Path, out: &mut Side) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for ent in rd.flatten() {
        let path = ent.path();
        let Ok(meta) = ent.metadata() else { continue };
        if meta.is_dir() {
            walk(&path, out);
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o444 == 0 {
            continue;
        }
        let Ok(value) = fs::read_to_string(&path) else {
            continue;
        };
        let rel = path.strip_prefix("/proc/sys").unwrap_or(&path);
        out.insert(
            key_of(rel),
            Entry {
                value: norm(&value),
                writable: mode & 0o200 != 0,
            },
        );
    }
}

/// Values compare whitespace-insensitively: /proc prints tabs
/// (ip_local_port_range), sysctl.conf files spaces.
pub fn norm(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A good side from a file in sysctl.conf / `sysctl -a` form (`key = value`,
/// '#' and ';' comments, a leading '-' ignored). Only `net.*` keys count.
pub fn parse_file(text: &str) -> Result<Side, String> {
    let mut out = Side::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY = VALUE", n + 1));
        };
        let k = k.trim().trim_start_matches('-').trim();
        if !k.starts_with("net.") {
            continue;
        }
        out.insert(
            k.to_string(),
            Entry {
                value: norm(v),
                writable: true,
            },
        );
    }
    Ok(out)
}

/// Per-device trees: `net.F.T.DEV.leaf` for these (F, T).
const DEVICE_TREES: &[(&str, &str)] = &[
    ("ipv4", "conf"),
    ("ipv6", "conf"),
    ("ipv4", "neigh"),
    ("ipv6", "neigh"),
    ("mpls", "conf"),
];

/// For a per-device key of a real device (not all/default), the same key
/// under `default`: what the good side would give a device it lacks.
pub fn default_key(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.splitn(5, '.').collect();
    if parts.len() != 5 || parts[0] != "net" {
        return None;
    }
    if !DEVICE_TREES.contains(&(parts[1], parts[2])) || matches!(parts[3], "all" | "default") {
        return None;
    }
    Some(format!(
        "net.{}.{}.default.{}",
        parts[1], parts[2], parts[4]
    ))
}

/// Write order: namespace-wide keys, then `all`, then `default`, then
/// devices. Writes cascade downwards (ip_forward and conf.all.forwarding
/// set every device, conf.default seeds new ones), never upwards, so this
/// order lets each later, more specific value stand.
pub fn rank(key: &str) -> (u8, String) {
    let parts: Vec<&str> = key.splitn(5, '.').collect();
    let r = if parts.len() == 5 && DEVICE_TREES.contains(&(parts[1], parts[2])) {
        match parts[3] {
            "all" => 1,
            "default" => 2,
            _ => 3,
        }
    } else {
        0
    };
    (r, key.to_string())
}

/// Listing and write order of settings: sysctls (wide to specific, see
/// [`rank`]), then routes and rules, then nft tables.
pub fn order(s: &Setting) -> (u8, (u8, String)) {
    match &s.name {
        Name::Sysctl(k) => (0, rank(k)),
        Name::Route(k) | Name::Rule(k) => (1, (0, k.clone())),
        Name::NftTable(k) => (2, (0, k.clone())),
    }
}

/// Keys that are one kernel variable under two names: only the first is
/// bisected (devinet.c: net.ipv4.ip_forward is conf.all.forwarding).
const ALIASES: &[(&str, &str)] = &[("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")];

/// The differences between BROKEN and the good side. `host` is the init
/// namespace's view (to tell host-global mirrors from read-only keys).
pub fn diff(
    broken: &Side,
    good: &Side,
    host: &Side,
    allow_host: bool,
) -> (Vec<Setting>, Vec<Skipped>) {
    let mut set = Vec::new();
    let mut skipped = Vec::new();
    for (key, b) in broken {
        if ALIASES
            .iter()
            .any(|(main, alias)| key == alias && broken.contains_key(*main))
        {
            continue;
        }
        let good_v = good
            .get(key)
            .or_else(|| default_key(key).and_then(|d| good.get(&d)))
            .map(|e| e.value.clone());
        let Some(good_v) = good_v else { continue };
        if good_v == b.value {
            continue;
        }
        let skip = |why: &str| Skipped {
            name: Name::Sysctl(key.clone()),
            why: why.to_string(),
        };
        let host_writable = host.get(key).is_some_and(|h| h.writable);
        if b.writable {
            set.push(Setting::sysctl(key, &b.value, &good_v, false));
        } else if host_writable && allow_host {
            set.push(Setting::sysctl(key, &b.value, &good_v, true));
        } else if host_writable {
            skipped.push(skip(
                "host-global (a namespace only mirrors it): needs --allow-host-changes",
            ));
        } else {
            skipped.push(skip("read-only"));
        }
    }
    set.sort_by_key(|s| rank(s.name.as_str()));
    (group(set), skipped)
}

/// The key a per-device key follows when both changed alike: its tree's
/// `all` key (or the name that key is an alias of).
fn parent(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.splitn(5, '.').collect();
    if rank(key).0 < 2 {
        return None;
    }
    let all = format!("net.{}.{}.all.{}", parts[1], parts[2], parts[4]);
    Some(
        ALIASES
            .iter()
            .find(|(_, alias)| *alias == all)
            .map_or(all, |(main, _)| main.to_string()),
    )
}

fn group(set: Vec<Setting>) -> Vec<Setting> {
    let mut out: Vec<Setting> = Vec::new();
    for s in set {
        let p = parent(s.name.as_str());
        let lead = p.and_then(|p| {
            out.iter_mut()
                .find(|o| o.name.as_str() == p && o.bad == s.bad && o.good == s.good && !o.host)
        });
        match lead {
            Some(o) if !s.host => o.with.push(s.name.as_str().to_string()),
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(kv: &[(&str, &str, bool)]) -> Side {
        kv.iter()
            .map(|(k, v, w)| {
                (
                    k.to_string(),
                    Entry {
                        value: v.to_string(),
                        writable: *w,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn keys_from_paths_escape_dots_in_device_names() {
        assert_eq!(
            key_of(Path::new("net/ipv4/conf/eth0.100/rp_filter")),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(
            crate::state::sysctl::path_of(&key_of(Path::new("net/ipv4/conf/eth0.100/rp_filter"))),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
        );
    }

    #[test]
    fn devices_the_good_side_lacks_compare_with_its_default() {
        let broken = side(&[
            ("net.ipv4.conf.eth0.rp_filter", "1", true),
            ("net.ipv4.conf.lo.rp_filter", "0", true),
            ("net.core.rmem_default", "2147483647", false),
            ("net.netfilter.nf_conntrack_count", "3", false),
            ("net.ipv4.ip_local_port_range", "1000 2000", true),
            ("net.ipv4.ip_forward", "0", true),
            ("net.ipv4.conf.all.forwarding", "0", true),
        ]);
        let good = side(&[
            ("net.ipv4.conf.default.rp_filter", "0", true),
            ("net.ipv4.conf.lo.rp_filter", "0", true),
            ("net.core.rmem_default", "212992", true),
            ("net.netfilter.nf_conntrack_count", "0", false),
            ("net.ipv4.ip_local_port_range", "1000 2000", true),
            ("net.ipv4.ip_forward", "1", true),
            ("net.ipv4.conf.all.forwarding", "1", true),
        ]);
        let host = side(&[
            ("net.core.rmem_default", "2147483647", true),
            ("net.netfilter.nf_conntrack_count", "0", false),
        ]);
        let (set, skipped) = diff(&broken, &good, &host, false);
        let names: Vec<&str> = set.iter().map(|s| s.name.as_str()).collect();
        assert!(set[0].with.is_empty());
        assert_eq!(
            names,
            ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.rp_filter"]
        );
        assert_eq!(set[1].good, "0");
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].why.contains("--allow-host-changes"));
        assert_eq!(skipped[1].why, "read-only");
        let (set, _) = diff(&broken, &good, &host, true);
        assert!(set
            .iter()
            .any(|s| s.host && s.name.as_str() == "net.core.rmem_default"));
    }

    #[test]
    fn files_in_sysctl_conf_form() {
        let s = parse_file(
            "# c\n-net.ipv4.ip_forward = 1\nkernel.x=2\nnet.ipv4.ip_local_port_range = 1\t2\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s["net.ipv4.ip_local_port_range"].value, "1 2");
        assert!(parse_file("net.x\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn device_copies_of_a_cascade_follow_their_leader() {
        let broken = side(&[
            ("net.ipv4.ip_forward", "0", true),
            ("net.ipv4.conf.all.forwarding", "0", true),
            ("net.ipv4.conf.default.forwarding", "0", true),
            ("net.ipv4.conf.eth0.forwarding", "0", true),
            ("net.ipv4.conf.eth1.forwarding", "1", true),
            ("net.ipv4.conf.eth0.rp_filter", "1", true),
        ]);
        let good = side(&[
            ("net.ipv4.ip_forward", "1", true),
            ("net.ipv4.conf.all.forwarding", "1", true),
            ("net.ipv4.conf.default.forwarding", "1", true),
            ("net.ipv4.conf.eth0.forwarding", "1", true),
            ("net.ipv4.conf.eth1.forwarding", "0", true),
            ("net.ipv4.conf.eth0.rp_filter", "0", true),
        ]);
        let (set, _) = diff(&broken, &good, &Side::new(), false);
        assert_eq!(set.len(), 3, "{set:?}");
        assert_eq!(set[0].name.as_str(), "net.ipv4.ip_forward");
        assert_eq!(
            set[0].with,
            [
                "net.ipv4.conf.default.forwarding",
                "net.ipv4.conf.eth0.forwarding"
            ]
        );
        assert_eq!(set[0].keys().len(), 3);
        // eth1 changed the other way: a setting of its own.
        assert_eq!(set[1].name.as_str(), "net.ipv4.conf.eth0.rp_filter");
        assert_eq!(set[2].name.as_str(), "net.ipv4.conf.eth1.forwarding");
    }

    #[test]
    fn write_order_is_wide_to_specific() {
        let mut v = vec![
            "net.ipv4.conf.eth0.forwarding",
            "net.ipv4.conf.default.forwarding",
            "net.ipv4.ip_forward",
            "net.ipv4.conf.all.forwarding",
        ];
        v.sort_by_key(|k| rank(k));
        assert_eq!(
            v,
            [
                "net.ipv4.ip_forward",
                "net.ipv4.conf.all.forwarding",
                "net.ipv4.conf.default.forwarding",
                "net.ipv4.conf.eth0.forwarding"
            ]
        );
    }
}
