//! A martian destination: an IPv4 packet received for an address no host
//! can own on a wire (0.0.0.0/8, class E 240.0.0.0/4, loopback 127/8).
//! The kernel reports it as a route error (IP_INADDRERRORS or
//! IP_INNOROUTES at `ip_error`, depending on ip_forward) or IP_LOCALNET,
//! so without the address's class the diagnosis would read "forwarding
//! disabled" or "no route": the fix is on the sender, not on this host.
use std::net::{IpAddr, Ipv4Addr};

use super::clues::{in_ns, Clues, Subject};
use super::kb::specific;
use crate::event::DropEvent;
use crate::state::sysctl;

/// The martian class of `a`, if it is one (None for any routable address,
/// and for the limited broadcast 255.255.255.255, which is valid on a link).
pub fn class(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    if o[0] == 0 {
        Some("0.0.0.0/8, \"this network\": only a source, while a host has no address yet")
    } else if o[0] == 127 {
        Some("127.0.0.0/8, loopback: never valid on a wire")
    } else if o[0] >= 240 && a != Ipv4Addr::BROADCAST {
        Some("240.0.0.0/4, class E: reserved, routed by no network")
    } else {
        None
    }
}

/// True for a drop this module explains: a received IPv4 packet to a
/// martian destination, dropped by the input route lookup.
pub fn applies(e: &DropEvent) -> bool {
    // NOT_SPECIFIED at ip_rcv_finish_core: 127/8 from a wire on kernels
    // before IP_LOCALNET (6.12).
    let route_drop = matches!(
        (
            e.reason,
            super::refine::normalize_function(&e.location.symbol)
        ),
        (
            "IP_INADDRERRORS" | "IP_INNOROUTES" | "NOT_SPECIFIED",
            "ip_error"
        ) | ("NOT_SPECIFIED", "ip_rcv_finish_core")
            | ("IP_LOCALNET" | "IP_INVALID_DEST", _)
    );
    route_drop && dst_class(e).is_some()
}

fn dst_class(e: &DropEvent) -> Option<(Ipv4Addr, &'static str)> {
    match e.flow.dst? {
        IpAddr::V4(a) => class(a).map(|c| (a, c)),
        IpAddr::V6(_) => None,
    }
}

pub(super) fn gather(e: &DropEvent, c: &mut Clues) {
    let Some((dst, cls)) = dst_class(e) else {
        return;
    };
    let dev = e.dev.as_deref().unwrap_or("?");
    let ns = in_ns(e.netns_name.as_deref());
    c.line(format!(
        "destination {dst} is a martian: {cls}; no host on this link should be sent it: the \
         sender is wrong, not this host's forwarding or routes"
    ));
    c.subjects.push(Subject::Martian {
        addr: dst.to_string(),
        class: cls.split(',').next().unwrap_or(cls).to_string(),
    });
    c.cause = Some(specific::MARTIAN_DESTINATION);
    let sender = super::sender::describe(e, c);
    let who = sender
        .as_ref()
        .map(|o| format!("{} in netns {}", o.dev, o.netns_name))
        .unwrap_or_else(|| {
            e.flow
                .src
                .map(|s| s.to_string())
                .unwrap_or("the sender".into())
        });
    let check = sender
        .as_ref()
        .map(|o| format!(" ({}ip route get {dst})", in_ns(Some(&o.netns_name))))
        .unwrap_or_default();
    c.fix(format!(
        "fix the sender, {who}: it sends to {dst}; correct the address the application is \
         configured with, or the route/NAT rule that produces it{check}"
    ));
    if dst.is_loopback() {
        let key = sysctl::dev_key("net.ipv4.conf", dev, "route_localnet");
        let v = sysctl::read(e.netns, &key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        if !v.is_empty() {
            c.line(format!(
                "{key} = {v} here: 127/8 from a wire is refused unless it is 1"
            ));
            c.subjects.push(Subject::Sysctl {
                name: key.clone(),
                value: v,
            });
        }
        c.fix(format!(
            "only if reaching a localhost service from {dev} is intended (a DNAT to 127.0.0.1): \
             {ns}sysctl -w {key}=1  (it exposes localhost-only services to that link)"
        ));
    } else if let Ok(v) = sysctl::read(e.netns, "net.ipv4.ip_forward") {
        // Why the kernel's reason is a routing one, and why it does not matter.
        c.line(format!(
            "net.ipv4.ip_forward = {} here: {}",
            v.trim(),
            if v.trim() == "0" {
                "the kernel counts it as an address error, but enabling forwarding would not deliver it"
            } else {
                "no route can carry it anyway"
            }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn martian_classes() {
        let c = |s: &str| class(s.parse().unwrap());
        assert!(c("0.0.0.7").is_some_and(|c| c.starts_with("0.0.0.0/8")));
        assert!(c("240.0.0.1").is_some_and(|c| c.contains("class E")));
        assert!(c("254.1.2.3").is_some());
        assert!(c("127.0.0.53").is_some_and(|c| c.contains("loopback")));
        assert_eq!(c("255.255.255.255"), None);
        assert_eq!(c("198.18.0.2"), None);
        assert_eq!(c("224.0.0.1"), None);
    }
}
