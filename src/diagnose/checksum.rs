//! A `ct state invalid` drop whose real cause is a bad layer-4 checksum.
//!
//! Conntrack (with net.netfilter.nf_conntrack_checksum=1, the default)
//! verifies TCP and UDP checksums at prerouting and marks a packet whose
//! checksum is wrong invalid, so a `ct state invalid drop` rule eats it
//! before TCP/UDP could count a checksum error: the firewall gets the
//! blame. Three pieces of live evidence tell that case apart from the other
//! reasons conntrack has for "invalid" (out of window, odd flags): the
//! checksum recomputed from the dropped packet's captured bytes, the rule
//! that dropped it (nftrace: it matches `ct state invalid`), and
//! conntrack's own per-CPU `invalid` statistic moving while we watch.
//!
//! A checksum still waiting for offload (CHECKSUM_PARTIAL, the field holds
//! only the pseudo-header sum) is not bad: the parser calls it "partial",
//! and this module only acts on "bad".
use std::net::IpAddr;

use super::clues::{in_ns, Clues};
use crate::packet::csum::L4Csum;
use crate::packet::Flow;

/// The dropped packet's checksum when the captured bytes prove it wrong.
pub fn bad(flow: &Flow) -> Option<L4Csum> {
    flow.l4_csum_check.filter(|c| c.verdict == "bad")
}

/// Sum over CPUs of the `invalid` column of /proc/net/stat/nf_conntrack
/// (hex per CPU, the numbers `conntrack -S` prints); None without it.
pub fn parse_invalid(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    let col = lines
        .next()?
        .split_whitespace()
        .position(|h| h == "invalid")?;
    let mut total = 0u64;
    for l in lines {
        let v = l.split_whitespace().nth(col)?;
        total += u64::from_str_radix(v, 16).ok()?;
    }
    Some(total)
}

/// Conntrack's invalid count in netns `ino` now.
pub fn invalid_count(ino: u32) -> Option<u64> {
    crate::state::ns::run_in(ino, || {
        // thread-self: /proc/self/net would show the process's netns.
        std::fs::read_to_string("/proc/thread-self/net/stat/nf_conntrack").ok()
    })
    .ok()
    .flatten()
    .as_deref()
    .and_then(parse_invalid)
}

/// Evidence and fixes for a `ct state invalid` drop of a packet whose
/// checksum `c` is wrong; `invalid` is conntrack's invalid count before
/// and after the traced packets.
pub fn explain(
    c: L4Csum,
    flow: &Flow,
    invalid: (Option<u64>, Option<u64>),
    ns_name: Option<&str>,
    out: &mut Clues,
) {
    let proto = flow.proto.as_deref().unwrap_or("L4");
    let from = flow
        .src
        .map(|a| a.to_string())
        .unwrap_or_else(|| "the sender".into());
    out.line(format!(
        "the dropped packet's {proto} checksum is wrong: it carries 0x{:04x}, the right \
         value is 0x{:04x} (recomputed from the captured packet, {}): conntrack \
         (nf_conntrack_checksum=1) marked it invalid and the rule drops invalid packets",
        c.found,
        c.expected,
        match flow.src {
            Some(IpAddr::V6(_)) => "IPv6 pseudo-header",
            _ => "IPv4 pseudo-header",
        }
    ));
    match invalid {
        (Some(a), Some(b)) if b > a => out.line(format!(
            "conntrack -S: invalid +{} during the capture (per-CPU \
             /proc/net/stat/nf_conntrack of this netns)",
            b - a
        )),
        (Some(_), Some(_)) => out.line(
            "conntrack -S: invalid did not move after the tracer was armed (the \
             checksum verdict rests on the captured bytes)",
        ),
        _ => {}
    }
    let ns = in_ns(ns_name);
    out.fix(format!(
        "Fix the sender {from}: its {proto} checksums are wrong — on that host, check \
         `ethtool -k <dev> | grep tx-checksum` and turn broken offload off \
         (`ethtool -K <dev> tx off`), or fix the NIC driver/tunnel that rewrites the headers"
    ));
    out.fix(format!(
        "Only if traffic from {from} is trusted: {ns}sysctl -w \
         net.netfilter.nf_conntrack_checksum=0 (conntrack stops verifying checksums; the \
         stack still drops the bad ones and counts InCsumErrors)"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{parse, HdrKind};

    /// An IPv4 UDP datagram 198.18.0.1:40000 -> 198.18.0.2:5305 with the
    /// UDP checksum `check` (the right one is 0x5da1).
    fn udp4(check: u16) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        let hc = ip_sum(&p);
        p[10..12].copy_from_slice(&hc.to_be_bytes());
        p.extend_from_slice(&[0x9c, 0x40, 0x14, 0xb9, 0, 10]);
        p.extend_from_slice(&check.to_be_bytes());
        p.extend_from_slice(b"hi");
        p
    }

    fn ip_sum(h: &[u8]) -> u16 {
        let mut s: u32 = h
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn right() -> u16 {
        parse(HdrKind::L3 { ethertype: 0x0800 }, &udp4(0x1234), None)
            .l4_csum_check
            .expect("checked")
            .expected
    }

    #[test]
    fn bad_checksum_is_named_with_found_and_expected() {
        let good = right();
        let f = parse(
            HdrKind::L3 { ethertype: 0x0800 },
            &udp4(good ^ 0x0101),
            None,
        );
        let c = bad(&f).expect("a bad checksum");
        assert_eq!((c.found, c.expected), (good ^ 0x0101, good));
        let mut out = Clues::default();
        explain(c, &f, (Some(4), Some(6)), Some("srv"), &mut out);
        let text = out.lines.join("\n");
        assert!(
            text.contains(&format!("carries 0x{:04x}", good ^ 0x0101)),
            "{text}"
        );
        assert!(
            text.contains(&format!("right value is 0x{good:04x}")),
            "{text}"
        );
        assert!(text.contains("invalid +2"), "{text}");
        let fixes = out.fixes.join("\n");
        assert!(fixes.contains("ethtool -K <dev> tx off"), "{fixes}");
        assert!(fixes.contains("nf_conntrack_checksum=0"), "{fixes}");
        assert!(!fixes.contains("delete rule"), "{fixes}");
        assert!(!fixes.contains("be_liberal"), "{fixes}");
    }

    /// The noise case: a `ct state invalid` drop of a packet whose checksum
    /// is right (or only pending offload) is no checksum problem.
    #[test]
    fn good_or_partial_checksum_is_not_bad() {
        let good = parse(HdrKind::L3 { ethertype: 0x0800 }, &udp4(right()), None);
        assert_eq!(good.l4_csum, Some("ok"));
        assert_eq!(bad(&good), None);
        // Pending offload: the field holds the folded pseudo-header sum
        // (198.18.0.1 + 198.18.0.2 + proto 17 + length 10).
        let pseudo: u32 = 0xc612 + 0x0001 + 0xc612 + 0x0002 + 17 + 10;
        let folded = ((pseudo & 0xffff) + (pseudo >> 16)) as u16;
        let partial = parse(HdrKind::L3 { ethertype: 0x0800 }, &udp4(folded), None);
        assert_eq!(partial.l4_csum, Some("partial"));
        assert_eq!(bad(&partial), None);
        // Truncated capture: nothing to recompute, nothing claimed.
        let cut = parse(HdrKind::L3 { ethertype: 0x0800 }, &udp4(0x1234)[..26], None);
        assert_eq!(bad(&cut), None);
    }

    #[test]
    fn conntrack_invalid_sums_cpus() {
        let t = "entries  clashres found new invalid ignore\n\
                 00000001  00000000 00000000 00000000 0000000a 00000000\n\
                 00000000  00000000 00000000 00000000 00000003 00000000\n";
        assert_eq!(parse_invalid(t), Some(13));
        assert_eq!(parse_invalid("entries found\n1 2\n"), None);
        assert_eq!(parse_invalid(""), None);
    }
}
