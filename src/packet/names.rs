//! Names for IP protocol numbers and ICMP types, as tcpdump users know them.

/// The protocol's short name, or its number as a string.
pub(super) fn proto(p: u8) -> String {
    let name = match p {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        132 => "sctp",
        _ => return p.to_string(),
    };
    name.to_owned()
}

/// The name of an ICMP (`v6 = false`) or ICMPv6 message, and whether it is
/// an error message whose code matters (shown as `type/code name`).
pub(super) fn icmp(v6: bool, t: u8, c: u8) -> (Option<&'static str>, bool) {
    if v6 {
        icmp6(t, c)
    } else {
        icmp4(t, c)
    }
}

fn icmp4(t: u8, c: u8) -> (Option<&'static str>, bool) {
    let name = match (t, c) {
        (0, _) => "echo-reply",
        (3, 0) => "net-unreachable",
        (3, 1) => "host-unreachable",
        (3, 2) => "protocol-unreachable",
        (3, 3) => "port-unreachable",
        (3, 4) => "frag-needed",
        (3, 5) => "source-route-failed",
        (3, 6) => "net-unknown",
        (3, 7) => "host-unknown",
        (3, 9) => "net-prohibited",
        (3, 10) => "host-prohibited",
        (3, 13) => "admin-prohibited",
        (3, _) => "unreachable",
        (4, _) => "source-quench",
        (5, _) => "redirect",
        (8, _) => "echo-request",
        (11, 0) => "ttl-exceeded",
        (11, 1) => "reassembly-timeout",
        (11, _) => "time-exceeded",
        (12, _) => "parameter-problem",
        (13, _) => "timestamp-request",
        (14, _) => "timestamp-reply",
        _ => return (None, false),
    };
    (Some(name), matches!(t, 3 | 5 | 11 | 12))
}

fn icmp6(t: u8, c: u8) -> (Option<&'static str>, bool) {
    let name = match (t, c) {
        (1, 0) => "no-route",
        (1, 1) => "admin-prohibited",
        (1, 2) => "beyond-scope",
        (1, 3) => "address-unreachable",
        (1, 4) => "port-unreachable",
        (1, 5) => "source-policy-failed",
        (1, 6) => "reject-route",
        (1, _) => "unreachable",
        (2, _) => "packet-too-big",
        (3, 0) => "hop-limit-exceeded",
        (3, 1) => "reassembly-timeout",
        (3, _) => "time-exceeded",
        (4, _) => "parameter-problem",
        (128, _) => "echo-request",
        (129, _) => "echo-reply",
        (130, _) => "mld-query",
        (131, _) => "mld-report",
        (132, _) => "mld-done",
        (133, _) => "router-solicit",
        (134, _) => "router-advert",
        (135, _) => "neighbor-solicit",
        (136, _) => "neighbor-advert",
        (137, _) => "redirect",
        (143, _) => "mldv2-report",
        _ => return (None, false),
    };
    (Some(name), t < 128)
}
