//! Layer-4 checksum of a fully captured IPv4 UDP/TCP packet, so a drop
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

/// "ok", "bad" or "partial" for the UDP (17) or TCP (6) segment `l4` of an
/// IPv4 packet from `src` to `dst`; None when the protocol has no checksum
/// this knows, or UDP says "no checksum" (0).
pub fn ipv4_l4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Option<&'static str> {
    let at = match proto {
        17 => 6,
        6 => 16,
        _ => return None,
    };
    let field = u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?]);
    if proto == 17 && field == 0 {
        return None;
    }
    let len = u16::try_from(l4.len()).ok()?;
    let mut pseudo = sum(0, &src);
    pseudo = sum(pseudo, &dst);
    pseudo += u32::from(proto) + u32::from(len);
    if fold(sum(pseudo, l4)) == 0xffff {
        return Some("ok");
    }
    // Offload pending: the field holds the folded pseudo-header sum.
    if field == fold(pseudo) {
        return Some("partial");
    }
    Some("bad")
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
    }
}
