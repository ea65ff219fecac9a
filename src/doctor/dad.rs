//! IPv6 addresses that duplicate address detection (DAD) failed or never
//! finished. Such an address is on the interface (`ip addr` lists it) but
//! the kernel does not use it: bind(2) to it fails with EADDRNOTAVAIL and
//! nothing is sent from or accepted for it. The seed case: keepalived
//! could not bind its IPv6 VIP because the old master still answered for
//! it, and the address sat there "dadfailed tentative".
use super::{Finding, NsState, Severity};
use crate::state::addr::Addr;

pub const FAILED_ID: &str = "ipv6-dad-failed";
pub const TENTATIVE_ID: &str = "ipv6-tentative";

/// A tentative address younger than this is just doing DAD (1 probe and
/// 1 s by default, a few with dad_transmits raised).
pub const TENTATIVE_GRACE_CS: u64 = 10 * 100;

fn link_local(a: &Addr) -> bool {
    matches!(a.addr, std::net::IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80)
}

fn subject(st: &NsState, a: &Addr) -> String {
    format!("{}/{} dev {}", a.addr, a.prefix_len, st.dev(a.index))
}

fn accept_dad_line(st: &NsState, dev: &str) -> Option<String> {
    st.sysctl
        .accept_dad
        .get(dev)
        .map(|v| format!("net.ipv6.conf.{dev}.accept_dad = {v}"))
}

/// Addresses with IFA_F_DADFAILED: another node on the link claimed them.
pub fn dad_failed(st: &NsState) -> Vec<Finding> {
    st.addrs
        .iter()
        .filter(|a| a.addr.is_ipv6() && a.dad_failed())
        .map(|a| {
            let dev = st.dev(a.index);
            let mut f = Finding::new(st, FAILED_ID, Severity::Critical, subject(st, a)).seen(format!(
                "{}/{} on {dev} is dadfailed: during duplicate address detection another node \
                 on the link answered for it (or sent the same probe), so the kernel will not use \
                 it: bind() to it fails with EADDRNOTAVAIL (keepalived, haproxy, a DNS server \
                 cannot listen on it) and it is never a source address",
                a.addr, a.prefix_len
            ));
            if let Some(l) = accept_dad_line(st, &dev) {
                f = f.seen(l);
            }
            f.fix(format!(
                "# find the other holder: from another host on the link, `ip -6 neigh show {}` \
                 gives its MAC (an old VRRP master, a cloned VM, a static config)",
                a.addr
            ))
            .fix("# once it is gone, re-add the address so DAD runs again:")
            .fix(st.cmd(&format!("ip -6 addr del {}/{} dev {dev}", a.addr, a.prefix_len)))
            .fix(st.cmd(&format!("ip -6 addr add {}/{} dev {dev}", a.addr, a.prefix_len)))
            .fix("# if sharing is intended (a VIP managed by VRRP), skip DAD for this interface:")
            .fix(st.cmd(&format!("sysctl -w net.ipv6.conf.{dev}.accept_dad=0")))
            .fix("# caveat: then a real duplicate is not detected and both hosts lose traffic silently; `nodad` on just this address is narrower")
        })
        .collect()
}

/// Addresses tentative for longer than [`TENTATIVE_GRACE_CS`] on an
/// interface that is up: DAD does not complete (no carrier, or the probes
/// never go out). Link-local (fe80::/10) addresses are left out: they are
/// generated per interface, and one stuck tentative only repeats that the
/// link has no carrier; configured addresses (a VIP) are what breaks.
pub fn stuck_tentative(st: &NsState) -> Vec<Finding> {
    let Some(now) = st.uptime_cs else {
        return Vec::new();
    };
    st.addrs
        .iter()
        .filter(|a| a.addr.is_ipv6() && a.tentative() && !a.dad_failed() && !link_local(a))
        .filter(|a| st.link(a.index).is_some_and(|l| l.up))
        .filter_map(|a| {
            let age = now.checked_sub(u64::from(a.created_cs?))?;
            (age >= TENTATIVE_GRACE_CS).then_some((a, age))
        })
        .map(|(a, age)| {
            let dev = st.dev(a.index);
            let mut f = Finding::new(st, TENTATIVE_ID, Severity::Warning, subject(st, a)).seen(format!(
                "{}/{} on {dev} has been tentative for {}s: until duplicate address detection \
                 finishes the kernel does not use it (bind() fails with EADDRNOTAVAIL)",
                a.addr,
                a.prefix_len,
                age / 100
            ));
            let carrier = st.link(a.index).is_some_and(|l| l.lower_up);
            if !carrier {
                f = f.seen(format!(
                    "{dev} has no carrier (NO-CARRIER): DAD starts only when the link comes up"
                ));
                f = f.fix(format!("# bring the link up: check the cable / the peer end of {dev}"));
            }
            if let Some(l) = accept_dad_line(st, &dev) {
                f = f.seen(l);
            }
            f.fix(st.cmd(&format!(
                "ip -6 addr replace {}/{} dev {dev} nodad",
                a.addr, a.prefix_len
            )))
            .fix("# caveat: nodad skips duplicate detection for this address; make sure no other node uses it")
        })
        .collect()
}

#[cfg(test)]
// Fixtures are built field by field from an empty namespace state.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::state::addr::{Link, IFA_F_DADFAILED, IFA_F_TENTATIVE};

    fn st(flags: u32, created_cs: u32, lower_up: bool) -> NsState {
        let mut s = NsState::default();
        s.uptime_cs = Some(100_000);
        s.links = vec![Link {
            index: 2,
            name: "eth0".into(),
            up: true,
            lower_up,
            loopback: false,
        }];
        s.sysctl.accept_dad.insert("eth0".into(), 1);
        s.addrs = vec![Addr {
            index: 2,
            addr: "fd00:18::5".parse().unwrap(),
            prefix_len: 64,
            flags,
            scope: 0,
            created_cs: Some(created_cs),
        }];
        s
    }

    #[test]
    fn dadfailed_is_critical_with_the_address_as_subject() {
        let s = st(IFA_F_DADFAILED | IFA_F_TENTATIVE, 99_990, true);
        let f = dad_failed(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "fd00:18::5/64 dev eth0");
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f[0]
            .evidence
            .contains(&"net.ipv6.conf.eth0.accept_dad = 1".to_string()));
        assert!(f[0]
            .fix
            .contains(&"sysctl -w net.ipv6.conf.eth0.accept_dad=0".to_string()));
        assert!(stuck_tentative(&s).is_empty(), "dadfailed is reported once");
    }

    #[test]
    fn tentative_only_after_grace() {
        assert!(stuck_tentative(&st(IFA_F_TENTATIVE, 99_500, true)).is_empty());
        let f = stuck_tentative(&st(IFA_F_TENTATIVE, 90_000, false));
        assert_eq!(f.len(), 1);
        assert!(f[0].evidence[0].contains("tentative for 100s"));
        assert!(f[0].evidence[1].contains("no carrier"));
        assert!(stuck_tentative(&st(0x80, 0, true)).is_empty());
        assert!(dad_failed(&st(IFA_F_TENTATIVE, 0, true)).is_empty());
        let mut ll = st(IFA_F_TENTATIVE, 90_000, false);
        ll.addrs[0].addr = "fe80::1".parse().unwrap();
        assert!(
            stuck_tentative(&ll).is_empty(),
            "link-local only mirrors the carrier"
        );
    }
}
