//! The fix: commands that give BROKEN the culprits' good values, each once.
#![forbid(unsafe_code)]

use super::collect::{Change, Setting};
use super::{nft, routes};

/// True when writing `leader` sets `copy` too, so a fix line for the copy
/// would only repeat it: ip_forward (= conf.all.forwarding) sets every
/// IPv4 device's forwarding and conf.default's (devinet.c,
/// inet_forward_change); IPv6 conf.all.forwarding does the same for IPv6
/// (addrconf_forward_change). No other key cascades.
fn cascades(leader: &str, copy: &str) -> bool {
    let v4 = matches!(
        leader,
        "net.ipv4.ip_forward" | "net.ipv4.conf.all.forwarding"
    ) && copy.starts_with("net.ipv4.conf.");
    let v6 = leader == "net.ipv6.conf.all.forwarding" && copy.starts_with("net.ipv6.conf.");
    (v4 || v6) && copy.ends_with(".forwarding")
}

fn sysctl_line(netns: &str, host: bool, key: &str, good: &str) -> String {
    let v = if good.contains(' ') {
        format!("\"{good}\"")
    } else {
        good.to_string()
    };
    if host {
        format!("sysctl -w {key}={v}")
    } else {
        format!("ip netns exec {netns} sysctl -w {key}={v}")
    }
}

/// Fix lines for `culprits`, in order, without repeats. `good_ns` names
/// the good namespace (where a good nft table can be listed from).
pub fn lines(netns: &str, good_ns: Option<&str>, culprits: &[Setting]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in culprits {
        let new = match &s.change {
            Change::Sysctl => {
                let keys = s.keys();
                let lead = keys.first().map_or("", |k| k.0);
                keys.iter()
                    .enumerate()
                    .filter(|(i, (k, _, _))| *i == 0 || !cascades(lead, k))
                    .map(|(_, (k, _, g))| sysctl_line(netns, s.host, k, g))
                    .collect()
            }
            Change::Route { .. } => routes::fix(netns, s),
            Change::Nft { .. } => nft::fix(netns, good_ns, s),
        };
        for l in new {
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_copies_of_ip_forward_are_fixed_by_it() {
        let mut s = Setting::sysctl("net.ipv4.ip_forward", "0", "1", false);
        s.with = vec![
            "net.ipv4.conf.default.forwarding".into(),
            "net.ipv4.conf.eth0.forwarding".into(),
        ];
        let mut rp = Setting::sysctl("net.ipv4.conf.all.rp_filter", "1", "0", false);
        rp.with = vec!["net.ipv4.conf.eth0.rp_filter".into()];
        let l = lines("r", None, &[s.clone(), rp, s]);
        assert_eq!(
            l,
            [
                "ip netns exec r sysctl -w net.ipv4.ip_forward=1",
                "ip netns exec r sysctl -w net.ipv4.conf.all.rp_filter=0",
                // rp_filter does not cascade: the device's own value counts.
                "ip netns exec r sysctl -w net.ipv4.conf.eth0.rp_filter=0",
            ]
        );
        let host = Setting::sysctl("net.core.rmem_default", "4608", "212992", true);
        assert_eq!(
            lines("r", None, &[host]),
            ["sysctl -w net.core.rmem_default=212992"]
        );
    }
}
