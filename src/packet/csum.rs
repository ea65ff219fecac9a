//! Layer-4 checksum of a fully captured IPv4 or IPv6 UDP/TCP packet, so a drop
//! can say "this packet's checksum is wrong" (a firewall's `ct state
//! invalid` drop hides that, see the `ct-invalid-checksum` diagnosis).
//!
//! A locally sent packet with checksum offload pending (CHECKSUM_PARTIAL)
//! carries only the pseudo-header sum in its checksum field; that pattern
//! is reported as "partial", not as corruption.

/// One's-complement sum of `b` (odd length padded with zero) added to `acc`.
fn sum(mut acc: u32, b: &[u8]) -> u32 {
    let mut it = b.chunks_exact(2);
    for c in &mut it {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = it.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data` started from `init` (a pseudo-header
/// sum, or 0): what a sender writes into the checksum field, and 0 when
/// `data` already carries a right one.
pub fn csum16(data: &[u8], init: u32) -> u16 {
    !fold(sum(init, data))
}

/// The IPv4 pseudo-header's sum (RFC 768/793) for an L4 segment of `len`
/// bytes: where a UDP or TCP checksum starts.
pub fn pseudo_v4(proto: u8, src: [u8; 4], dst: [u8; 4], len: u16) -> u32 {
    sum(sum(0, &src), &dst) + u32::from(proto) + u32::from(len)
}

/// The IPv6 pseudo-header's sum (RFC 8200 8.1): 128-bit addresses and a
/// 32-bit upper-layer length.
pub fn pseudo_v6(proto: u8, src: [u8; 16], dst: [u8; 16], len: u32) -> u32 {
    sum(sum(0, &src), &dst) + (len >> 16) + (len & 0xffff) + u32::from(proto)
}

/// A checked L4 checksum: the verdict and, for evidence, the value the
/// packet carries and the one its bytes call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Csum {
    /// "ok", "bad" or "partial" (see the module docs).
    pub verdict: &'static str,
    pub found: u16,
    pub expected: u16,
}

/// "ok", "bad" or "partial" for the UDP (17) or TCP (6) segment `l4` of an
/// IPv4 packet from `src` to `dst`; None when the protocol has no checksum
/// this knows, or UDP says "no checksum" (0).
pub fn ipv4_l4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Option<&'static str> {
    ipv4_check(proto, src, dst, l4).map(|c| c.verdict)
}

/// [`ipv4_l4`] with the found and expected values.
pub fn ipv4_check(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Option<L4Csum> {
    let len = u16::try_from(l4.len()).ok()?;
    check(proto, pseudo_v4(proto, src, dst, len), l4, true)
}

/// The same for IPv6 (`l4` after any extension headers), whose pseudo
/// header has 128-bit addresses and a 32-bit length. UDP over IPv6 must
/// carry a checksum, so 0 is checked like any other value.
pub fn ipv6_check(proto: u8, src: [u8; 16], dst: [u8; 16], l4: &[u8]) -> Option<L4Csum> {
    let len = u32::try_from(l4.len()).ok()?;
    check(proto, pseudo_v6(proto, src, dst, len), l4, false)
}

fn check(proto: u8, pseudo: u32, l4: &[u8], udp_zero_ok: bool) -> Option<L4Csum> {
    let at = match proto {
        17 => 6,
        6 => 16,
        _ => return None,
    };
    let found = u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?]);
    if proto == 17 && found == 0 && udp_zero_ok {
        return None;
    }
    // The sum over the segment with its checksum field taken out.
    let without = fold(sum(pseudo, l4) + u32::from(!found)) as u32;
    let mut expected = !fold(without);
    if proto == 17 && expected == 0 {
        expected = 0xffff; // UDP sends a computed 0 as all ones.
    }
    let verdict = if fold(sum(pseudo, l4)) == 0xffff {
        "ok"
    } else if found == fold(pseudo) {
        // Offload pending: the field holds the folded pseudo-header sum.
        "partial"
    } else {
        "bad"
    };
    Some(L4Csum {
        verdict,
        found,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP datagram 198.18.0.1:40000 -> 198.18.0.2:5305, "hi".
    fn udp(check: u16) -> Vec<u8> {
        let mut b = vec![0x9c, 0x40, 0x14, 0xb9, 0, 10];
        b.extend_from_slice(&check.to_be_bytes());
        b.extend_from_slice(b"hi");
        b
    }

    fn right() -> u16 {
        let (s, d) = ([198, 18, 0, 1], [198, 18, 0, 2]);
        let mut p = sum(0, &s);
        p = sum(p, &d) + 17 + 10;
        !fold(sum(p, &udp(0)))
    }

    #[test]
    fn good_bad_partial_and_none() {
        let (s, d) = ([198, 18, 0, 1], [198, 18, 0, 2]);
        let good = right();
        assert_eq!(ipv4_l4(17, s, d, &udp(good)), Some("ok"));
        assert_eq!(ipv4_l4(17, s, d, &udp(good ^ 0x00ff)), Some("bad"));
        assert_eq!(ipv4_l4(17, s, d, &udp(0)), None, "UDP without checksum");
        let mut p = sum(0, &s);
        p = sum(p, &d) + 17 + 10;
        assert_eq!(ipv4_l4(17, s, d, &udp(fold(p))), Some("partial"));
        assert_eq!(ipv4_l4(1, s, d, &udp(good)), None);
        assert_eq!(ipv4_l4(17, s, d, &udp(good)[..5]), None);
        let c = ipv4_check(17, s, d, &udp(good ^ 0x00ff)).expect("checked");
        assert_eq!(
            (c.verdict, c.found, c.expected),
            ("bad", good ^ 0x00ff, good)
        );
        assert_eq!(
            ipv4_check(17, s, d, &udp(good)).map(|c| c.expected),
            Some(good)
        );
    }

    #[test]
    fn ipv6_found_and_expected() {
        let (s, d) = (
            "fd00:18::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            "fd00:18::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        );
        let mut p = sum(sum(0, &s), &d) + 10 + 17;
        p = sum(p, &udp(0));
        let good = !fold(p);
        let ok = ipv6_check(17, s, d, &udp(good)).expect("checked");
        assert_eq!((ok.verdict, ok.expected), ("ok", good));
        let bad = ipv6_check(17, s, d, &udp(good.wrapping_add(7))).expect("checked");
        assert_eq!((bad.verdict, bad.expected), ("bad", good));
        // No "no checksum" escape over IPv6.
        assert_eq!(
            ipv6_check(17, s, d, &udp(0)).map(|c| c.verdict),
            Some("bad")
        );
    }
}
