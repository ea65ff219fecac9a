//! Sysctls of a network namespace, read from /proc/sys/net on a thread that
//! has entered it: /proc/sys/net resolves through the reading task's netns,
//! so the same path gives each namespace's own value. (net.core.rmem_* and
//! wmem_* are host-global: a child netns sees a read-only mirror.)
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;

use super::ns::{self, NsError};

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("sysctl {key}: {source}")]
    Read { key: String, source: io::Error },
    #[error("sysctl {key}: '{value}' is not an integer")]
    NotInt { key: String, value: String },
}

/// /proc/sys path of a dotted key. As in sysctl(8), a '/' in the key stands
/// for a '.' in a name (VLAN device eth0.100 is `net.ipv4.conf.eth0/100.rp_filter`).
pub fn path_of(key: &str) -> String {
    let p: String = key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    format!("/proc/sys/{p}")
}

/// Key of a sysctl for device `dev` (escaping dots in the name).
pub fn dev_key(prefix: &str, dev: &str, leaf: &str) -> String {
    format!("{prefix}.{}.{leaf}", dev.replace('.', "/"))
}

/// Read `key` (e.g. "net.ipv4.conf.eth0.rp_filter") inside netns `ino`.
pub fn read(ino: u32, key: &str) -> Result<String, SysctlError> {
    let key = key.to_string();
    ns::run_in(ino, move || read_here(&key))?
}

/// [`read`] in the calling thread's netns. Trailing newline removed.
pub fn read_here(key: &str) -> Result<String, SysctlError> {
    fs::read_to_string(path_of(key))
        .map(|s| s.trim_end().to_string())
        .map_err(|source| SysctlError::Read {
            key: key.to_string(),
            source,
        })
}

fn int_here(key: &str) -> Result<i64, SysctlError> {
    let v = read_here(key)?;
    v.trim().parse().map_err(|_| SysctlError::NotInt {
        key: key.to_string(),
        value: v,
    })
}

fn opt_int(key: &str) -> Option<i64> {
    int_here(key).ok()
}

/// rp_filter for `dev` inside netns `ino`: (all, dev, effective). The
/// kernel uses the maximum of conf/all and conf/DEV (IN_DEV_RPFILTER is
/// IN_DEV_MAXCONF), so `all=1 dev=0` is strict, and `all=2` makes every
/// device at least loose.
pub fn rp_filter_effective(ino: u32, dev: &str) -> Result<(i64, i64, i64), SysctlError> {
    let dev = dev.to_string();
    ns::run_in(ino, move || rp_filter_here(&dev))?
}

/// [`rp_filter_effective`] in the calling thread's netns.
pub fn rp_filter_here(dev: &str) -> Result<(i64, i64, i64), SysctlError> {
    let all = int_here("net.ipv4.conf.all.rp_filter")?;
    let d = int_here(&dev_key("net.ipv4.conf", dev, "rp_filter"))?;
    Ok((all, d, all.max(d)))
}

/// The sysctls that decide whether packets are dropped. `None` where the
/// key does not exist (e.g. nf_conntrack not loaded, IPv6 disabled).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub rp_filter_all: Option<i64>,
    pub rp_filter_default: Option<i64>,
    /// Per-device rp_filter (raw value; effective is max with `all`).
    pub rp_filter: BTreeMap<String, i64>,
    pub log_martians_all: Option<i64>,
    pub ip_forward: Option<i64>,
    pub ipv6_forwarding_all: Option<i64>,
    pub rmem_default: Option<i64>,
    pub rmem_max: Option<i64>,
    pub wmem_default: Option<i64>,
    pub wmem_max: Option<i64>,
    pub netdev_max_backlog: Option<i64>,
    pub somaxconn: Option<i64>,
    pub tcp_max_syn_backlog: Option<i64>,
    pub nf_conntrack_max: Option<i64>,
    pub nf_conntrack_count: Option<i64>,
    /// Per-device IPv6 accept_ra / accept_dad.
    pub accept_ra: BTreeMap<String, i64>,
    pub accept_dad: BTreeMap<String, i64>,
}

/// Read a [`Snapshot`] inside netns `ino`.
pub fn snapshot(ino: u32) -> Result<Snapshot, SysctlError> {
    Ok(ns::run_in(ino, snapshot_here)?)
}

fn devices(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "all" && n != "default")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// [`snapshot`] in the calling thread's netns.
pub fn snapshot_here() -> Snapshot {
    let mut s = Snapshot {
        rp_filter_all: opt_int("net.ipv4.conf.all.rp_filter"),
        rp_filter_default: opt_int("net.ipv4.conf.default.rp_filter"),
        log_martians_all: opt_int("net.ipv4.conf.all.log_martians"),
        ip_forward: opt_int("net.ipv4.ip_forward"),
        ipv6_forwarding_all: opt_int("net.ipv6.conf.all.forwarding"),
        rmem_default: opt_int("net.core.rmem_default"),
        rmem_max: opt_int("net.core.rmem_max"),
        wmem_default: opt_int("net.core.wmem_default"),
        wmem_max: opt_int("net.core.wmem_max"),
        netdev_max_backlog: opt_int("net.core.netdev_max_backlog"),
        somaxconn: opt_int("net.core.somaxconn"),
        tcp_max_syn_backlog: opt_int("net.ipv4.tcp_max_syn_backlog"),
        nf_conntrack_max: opt_int("net.netfilter.nf_conntrack_max"),
        nf_conntrack_count: opt_int("net.netfilter.nf_conntrack_count"),
        ..Snapshot::default()
    };
    for dev in devices("/proc/sys/net/ipv4/conf") {
        if let Some(v) = opt_int(&dev_key("net.ipv4.conf", &dev, "rp_filter")) {
            s.rp_filter.insert(dev, v);
        }
    }
    for dev in devices("/proc/sys/net/ipv6/conf") {
        if let Some(v) = opt_int(&dev_key("net.ipv6.conf", &dev, "accept_ra")) {
            s.accept_ra.insert(dev.clone(), v);
        }
        if let Some(v) = opt_int(&dev_key("net.ipv6.conf", &dev, "accept_dad")) {
            s.accept_dad.insert(dev, v);
        }
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

/// A sysctl value that causes or risks drops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub key: String,
    pub value: String,
    pub why: String,
    pub suggestion: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.key, self.value, self.why)?;
        if let Some(s) = &self.suggestion {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

/// Headroom below 2^31 under which a socket buffer limit is dangerous: the
/// truesize of one skb (a 64 KiB GSO/GRO datagram plus overhead is ~70 KiB;
/// a large GRO train can be several hundred KiB) must fit on top of it.
const INT_HEADROOM: i64 = 1 << 20;

/// Values in `s` that cause or risk drops.
pub fn danger(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let int_max = i64::from(i32::MAX);
    for (key, v, safe) in [
        ("net.core.rmem_default", s.rmem_default, 4_194_304),
        ("net.core.wmem_default", s.wmem_default, 4_194_304),
    ] {
        if let Some(v) = v.filter(|&v| v > int_max - INT_HEADROOM) {
            out.push(Finding {
                severity: Severity::Critical,
                key: key.into(),
                value: v.to_string(),
                why: format!(
                    "every new socket starts with this buffer limit (sk_rcvbuf/sk_sndbuf, an int); \
                     the kernel compares `sk_rmem_alloc + skb->truesize` against it, and {v} + one \
                     ~64 KiB skb exceeds 2^31-1 = {int_max}: the int wraps negative and the datagram \
                     is dropped as a buffer overflow (SOCKET_RCVBUFF, UDP RcvbufErrors) although the \
                     queue is empty. Recent kernels compare unsigned and survive it; older ones drop \
                     everything"
                ),
                suggestion: Some(format!("{key}={safe}")),
            });
        }
    }
    for (key, v, safe) in [
        ("net.core.rmem_max", s.rmem_max, 16_777_216),
        ("net.core.wmem_max", s.wmem_max, 16_777_216),
    ] {
        if let Some(v) = v.filter(|&v| v > int_max / 2) {
            out.push(Finding {
                severity: Severity::Warning,
                key: key.into(),
                value: v.to_string(),
                why: format!(
                    "SO_RCVBUF/SO_SNDBUF clamp the request to this maximum and then DOUBLE it \
                     into an int (sk_rcvbuf = 2 * min(val, {key})): above 2^30 = {} the doubled value \
                     no longer fits and, with the truesize of queued skbs added, the comparison can \
                     wrap, so an application asking for a huge buffer may get drops instead",
                    1i64 << 30
                ),
                suggestion: Some(format!("{key}={safe}")),
            });
        }
    }
    if let (Some(count), Some(max)) = (s.nf_conntrack_count, s.nf_conntrack_max) {
        if max > 0 && count * 10 > max * 9 {
            let full = count >= max;
            out.push(Finding {
                severity: if full {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                key: "net.netfilter.nf_conntrack_count".into(),
                value: format!("{count} of {max}"),
                why: if full {
                    "the conntrack table is full: new flows are dropped \
                     (\"nf_conntrack: table full, dropping packet\")"
                        .into()
                } else {
                    format!(
                        "the conntrack table is {}% full: once it is, new flows are dropped",
                        count * 100 / max
                    )
                },
                suggestion: Some(format!(
                    "raise net.netfilter.nf_conntrack_max (e.g. {}) or shorten conntrack timeouts",
                    max * 2
                )),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_paths() {
        assert_eq!(
            path_of("net.ipv4.conf.eth0/100.rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            dev_key("net.ipv4.conf", "eth0.100", "rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
    }

    #[test]
    fn rmem_near_int_max_is_critical() {
        let s = Snapshot {
            rmem_default: Some(2_147_483_647),
            rmem_max: Some(2_147_483_647),
            wmem_default: Some(212_992),
            ..Snapshot::default()
        };
        let f = danger(&s);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].key, "net.core.rmem_default");
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(
            f[0].suggestion.as_deref(),
            Some("net.core.rmem_default=4194304")
        );
        assert_eq!(f[1].key, "net.core.rmem_max");
        let healthy = Snapshot {
            rmem_default: Some(212_992),
            rmem_max: Some(16_777_216),
            ..Snapshot::default()
        };
        assert!(danger(&healthy).is_empty());
    }

    #[test]
    fn conntrack_near_full() {
        let mut s = Snapshot {
            nf_conntrack_count: Some(950),
            nf_conntrack_max: Some(1000),
            ..Snapshot::default()
        };
        assert_eq!(danger(&s)[0].severity, Severity::Warning);
        s.nf_conntrack_count = Some(1000);
        assert_eq!(danger(&s)[0].severity, Severity::Critical);
        s.nf_conntrack_count = Some(100);
        assert!(danger(&s).is_empty());
    }

    #[test]
    fn own_namespace_snapshot() {
        let s = snapshot_here();
        assert!(s.ip_forward.is_some());
        assert!(s.rp_filter.contains_key("lo"));
    }
}
