//! From what the user typed to kernel-side filters.
//!
//! Two stages, as in ripgrep: clap gives raw strings ([`FilterArgs`]); this
//! module validates them against the running kernel (reason names from BTF,
//! netns names from /run/netns) into a [`KernelFilter`] the probe freezes
//! into its rodata. Every error names what was wrong and how to fix it.
//! Also here: the noise rules hidden by default ([`noise`]) and tcpdump
//! expressions compiled to classic BPF ([`pcap`], [`cbpf`]).
//!
//! No unsafe code: the libpcap compiler is loaded in `sys::libpcap`, and
//! the types defined here are what the probes import, never the reverse.
#![forbid(unsafe_code)]
pub mod cbpf;
pub mod libpcap;
pub mod noise;
pub mod pcap;

use std::net::IpAddr;

use crate::container::{ContainerError, Resolver};
use crate::kernel::netns::resolve_netns_spec;
use crate::kernel::reasons::DropReasons;

/// Device filter: an ifindex is only unique inside one netns, a name is what
/// people type; both are compared in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevMatch {
    Index(u32),
    Name(String),
}

/// Kernel-side filters. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelFilter {
    pub reasons_include: Vec<u32>,
    pub reasons_exclude: Vec<u32>,
    pub netns: Vec<u32>,
    pub dev: Option<DevMatch>,
    /// (value, mask)
    pub mark: Option<(u32, u32)>,
    pub ethertype: Option<u16>,
    pub l4proto: Option<u8>,
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("unknown drop reason '{0}': `netwhy reasons` lists the names this kernel knows")]
    UnknownReason(String),
    #[error("this kernel reports no drop reasons (needs 5.17+): --reason cannot be used")]
    NoReasons,
    #[error("bad --netns '{spec}': {detail}")]
    Netns { spec: String, detail: String },
    #[error(
        "bad --proto '{0}': use tcp, udp, icmp, icmp6, sctp, arp, ip, ip6 or a protocol number"
    )]
    Proto(String),
    #[error("bad --host '{0}': give one IPv4 or IPv6 address")]
    Host(String),
    #[error("bad --port '{0}': give a number from 0 to 65535")]
    Port(String),
    #[error("bad --mark '{0}': give VALUE or VALUE/MASK (decimal or 0x hex)")]
    Mark(String),
    #[error("bad --dev '{0}': interface names are at most 15 bytes")]
    Dev(String),
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// The filter flags shared by every capturing subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only this network namespace: inode number, `ip netns` name or a path
    /// such as /proc/PID/ns/net. Repeatable.
    #[arg(long, value_name = "NS")]
    pub netns: Vec<String>,
    /// Only drops on this device (name, or ifindex as a number).
    #[arg(long, short = 'i', value_name = "DEV")]
    pub dev: Option<String>,
    /// Only this drop reason (e.g. NO_SOCKET); `!NAME` excludes it. Repeatable.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub reason: Vec<String>,
    /// Only this protocol: tcp, udp, icmp, icmp6, sctp, arp, ip, ip6, or a number.
    #[arg(long, value_name = "PROTO")]
    pub proto: Option<String>,
    /// Only packets from or to this address.
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,
    /// Only packets from or to this TCP/UDP/SCTP port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Only packets whose skb mark matches VALUE[/MASK].
    #[arg(long, value_name = "MARK")]
    pub mark: Option<String>,
    /// Only the network namespace of this Kubernetes pod: NAMESPACE/NAME,
    /// or NAME in any namespace (read from the container runtimes' records
    /// on this node).
    #[arg(long, value_name = "NS/NAME")]
    pub pod: Option<String>,
    /// Only the network namespace of this container: its name (docker,
    /// podman, Kubernetes container name) or id (12 characters or more).
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
}

impl FilterArgs {
    pub fn build(&self, reasons: &DropReasons) -> Result<KernelFilter, FilterError> {
        let mut f = KernelFilter::default();
        for r in &self.reason {
            let (exclude, name) = match r.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, r.as_str()),
            };
            if !reasons.has_reasons() {
                return Err(FilterError::NoReasons);
            }
            let v = reasons
                .value(name.trim())
                .ok_or_else(|| FilterError::UnknownReason(name.to_string()))?;
            if exclude {
                f.reasons_exclude.push(v);
            } else {
                f.reasons_include.push(v);
            }
        }
        for spec in &self.netns {
            let ino = resolve_netns_spec(spec).map_err(|e| FilterError::Netns {
                spec: spec.clone(),
                detail: e.to_string(),
            })?;
            f.netns.push(ino);
        }
        // Resolved now, like --netns: the kernel compares inodes, so a pod
        // started after this point is not followed.
        if self.pod.is_some() || self.container.is_some() {
            let found = Resolver::new().netns_of(self.pod.as_deref(), self.container.as_deref())?;
            f.netns.extend(found);
        }
        if let Some(d) = &self.dev {
            f.dev = Some(parse_dev(d)?);
        }
        if let Some(p) = &self.proto {
            let (eth, l4) = parse_proto(p)?;
            f.ethertype = eth;
            f.l4proto = l4;
        }
        if let Some(h) = &self.host {
            f.host = Some(
                h.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| FilterError::Host(h.clone()))?,
            );
        }
        if let Some(p) = &self.port {
            f.port = Some(p.trim().parse().map_err(|_| FilterError::Port(p.clone()))?);
        }
        if let Some(m) = &self.mark {
            f.mark = Some(parse_mark(m)?);
        }
        Ok(f)
    }
}

pub fn parse_dev(d: &str) -> Result<DevMatch, FilterError> {
    if let Ok(i) = d.parse::<u32>() {
        return Ok(DevMatch::Index(i));
    }
    if d.is_empty() || d.len() > 15 {
        return Err(FilterError::Dev(d.to_string()));
    }
    Ok(DevMatch::Name(d.to_string()))
}

/// Returns (ethertype, L4 protocol number) for a --proto value.
pub fn parse_proto(p: &str) -> Result<(Option<u16>, Option<u8>), FilterError> {
    const V4: Option<u16> = Some(0x0800);
    const V6: Option<u16> = Some(0x86dd);
    Ok(match p.to_ascii_lowercase().as_str() {
        "tcp" => (None, Some(6)),
        "udp" => (None, Some(17)),
        "sctp" => (None, Some(132)),
        "icmp" => (V4, Some(1)),
        "icmp6" | "icmpv6" => (V6, Some(58)),
        "arp" => (Some(0x0806), None),
        "ip" | "ipv4" | "ip4" => (V4, None),
        "ip6" | "ipv6" => (V6, None),
        other => match other.parse::<u8>() {
            Ok(n) => (None, Some(n)),
            Err(_) => return Err(FilterError::Proto(p.to_string())),
        },
    })
}

fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

pub fn parse_mark(m: &str) -> Result<(u32, u32), FilterError> {
    let err = || FilterError::Mark(m.to_string());
    match m.split_once('/') {
        Some((v, mask)) => Ok((
            parse_u32(v).ok_or_else(err)?,
            parse_u32(mask).ok_or_else(err)?,
        )),
        None => Ok((parse_u32(m).ok_or_else(err)?, u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protos() {
        assert_eq!(parse_proto("UDP").unwrap(), (None, Some(17)));
        assert_eq!(parse_proto("icmp6").unwrap(), (Some(0x86dd), Some(58)));
        assert_eq!(parse_proto("arp").unwrap(), (Some(0x0806), None));
        assert_eq!(parse_proto("47").unwrap(), (None, Some(47)));
        assert!(matches!(parse_proto("tcpp"), Err(FilterError::Proto(_))));
    }

    #[test]
    fn marks() {
        assert_eq!(parse_mark("0x10").unwrap(), (16, u32::MAX));
        assert_eq!(parse_mark("1/0xff").unwrap(), (1, 255));
        assert!(parse_mark("x").is_err());
        assert!(parse_mark("1/").is_err());
    }

    #[test]
    fn devs() {
        assert_eq!(parse_dev("3").unwrap(), DevMatch::Index(3));
        assert_eq!(parse_dev("veth0").unwrap(), DevMatch::Name("veth0".into()));
        assert!(parse_dev("a-very-long-interface-name").is_err());
    }
}
