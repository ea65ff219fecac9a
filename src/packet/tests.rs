//! Flow parsing tests: a table of hand-written hex frames with the expected
//! one-line rendering (tests/fixtures/packet/flows.txt), field-level checks
//! on frames built here, and every truncation of every frame.
use super::*;
use std::net::Ipv6Addr;

const TABLE: &str = include_str!("../../tests/fixtures/packet/flows.txt");

/// `(kind, bytes, expected display)` for each fixture line.
fn table() -> Vec<(HdrKind, Vec<u8>, String)> {
    let mut out = Vec::new();
    for line in TABLE.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (input, want) = line.split_once("=>").expect("missing =>");
        let mut words = input.split_whitespace();
        let kind = match words.next().unwrap() {
            "eth" => HdrKind::Eth,
            "none" => HdrKind::None,
            k => HdrKind::L3 {
                ethertype: u16::from_str_radix(k.strip_prefix("l3:").unwrap(), 16).unwrap(),
            },
        };
        let hex: String = words.collect();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        out.push((kind, bytes, want.trim().to_owned()));
    }
    out
}

#[test]
fn fixture_table_renders() {
    let t = table();
    assert!(t.len() >= 16);
    for (kind, bytes, want) in t {
        assert_eq!(parse(kind, &bytes, None).to_string(), want);
    }
}

#[test]
fn every_prefix_of_every_fixture_is_safe() {
    for (kind, bytes, _) in table() {
        for n in 0..=bytes.len() {
            let f = parse(kind, &bytes[..n], Some(7));
            let _ = f.to_string();
            assert_eq!(f.vlan.first(), Some(&7));
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    };
    for round in 0..3000 {
        let len = round % 129;
        let mut b: Vec<u8> = (0..len).map(|_| next()).collect();
        // Steer some rounds into the deeper parsers.
        if round % 3 == 0 && len > 20 {
            b[0] = 0x60;
            b[6] = [0, 43, 44, 60, 51][round % 5];
        }
        for kind in [
            HdrKind::Eth,
            HdrKind::L3 { ethertype: 0x0800 },
            HdrKind::L3 { ethertype: 0x86dd },
            HdrKind::L3 { ethertype: 0x0806 },
            HdrKind::L3 { ethertype: 0 },
        ] {
            let _ = parse(kind, &b, None).to_string();
        }
    }
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    let tot = (20 + payload.len()) as u16;
    v[2..4].copy_from_slice(&tot.to_be_bytes());
    v.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
    v.extend_from_slice(payload);
    v
}

fn ipv6(nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nh, 64]);
    v.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(payload);
    v
}

fn tcp(flags: u8) -> Vec<u8> {
    let mut v = vec![0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags];
    v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    v
}

const V4: HdrKind = HdrKind::L3 { ethertype: 0x0800 };
const V6: HdrKind = HdrKind::L3 { ethertype: 0x86dd };

#[test]
fn tcp_flag_letters() {
    for (bits, want) in [
        (0x02, "S"),
        (0x12, "SA"),
        (0x04, "R"),
        (0x11, "FA"),
        (0x18, "PA"),
        (0xc2, "SEW"),
        (0x00, "none"),
    ] {
        let f = parse(V4, &ipv4(6, &tcp(bits)), None);
        assert_eq!(f.tcp_flags.as_deref(), Some(want));
    }
}

#[test]
fn ipv4_udp_fields() {
    let f = parse(V4, &ipv4(17, &[0x9c, 0x40, 0, 53, 0, 8, 0, 0]), None);
    assert_eq!(f.l3, "ipv4");
    assert_eq!(f.proto.as_deref(), Some("udp"));
    assert_eq!(f.src, Some("198.18.0.1".parse().unwrap()));
    assert_eq!(f.dst, Some("198.18.0.2".parse().unwrap()));
    assert_eq!((f.sport, f.dport), (Some(40000), Some(53)));
    assert_eq!(f.ethertype, Some(0x0800));
    assert_eq!(f.len, Some(28));
    assert!(!f.frag && !f.truncated);
    assert_eq!(f.src_mac, None);
}

#[test]
fn ipv4_first_fragment_keeps_ports() {
    let mut b = ipv4(17, &[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
    b[6] = 0x20; // MF, offset 0
    let f = parse(V4, &b, None);
    assert!(!f.frag);
    assert_eq!(f.dport, Some(53));
}

#[test]
fn ipv6_tcp_and_udp() {
    let f = parse(V6, &ipv6(6, &tcp(0x02)), None);
    assert_eq!(f.to_string(), "[fd00::1]:40000 > [fd00::2]:80 tcp [S]");
    assert_eq!(f.len, Some(60));
    let f = parse(V6, &ipv6(17, &[0x9c, 0x40, 0, 53, 0, 8, 0, 0]), None);
    assert_eq!(f.to_string(), "[fd00::1]:40000 > [fd00::2]:53 udp");
}

#[test]
fn ipv6_extension_chain() {
    // Hop-by-hop (8) -> routing (16) -> dest opts (8) -> UDP.
    let mut p = vec![43, 0, 1, 4, 0, 0, 0, 0];
    p.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    p.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
    let f = parse(V6, &ipv6(0, &p), None);
    assert_eq!((f.proto.as_deref(), f.dport), (Some("udp"), Some(53)));
    // Cut inside the chain: no protocol guessed.
    let f = parse(V6, &ipv6(0, &p[..20]), None);
    assert!(f.truncated);
    assert_eq!(f.proto, None);
}

#[test]
fn ipv6_fragments() {
    let first = [17, 0, 0, 1, 0, 0, 0, 9, 0x9c, 0x40, 0, 53, 0, 8, 0, 0];
    let f = parse(V6, &ipv6(44, &first), None);
    assert!(!f.frag);
    assert_eq!(f.dport, Some(53));
    let later = [17, 0, 0x05, 0xc8, 0, 0, 0, 9, 1, 2, 3, 4];
    let f = parse(V6, &ipv6(44, &later), None);
    assert!(f.frag);
    assert_eq!((f.proto.as_deref(), f.sport), (Some("udp"), None));
    assert_eq!(f.to_string(), "fd00::1 > fd00::2 udp frag");
}

#[test]
fn icmpv6_errors_show_codes() {
    let f = parse(V6, &ipv6(58, &[1, 4, 0, 0, 0, 0, 0, 0]), None);
    assert_eq!(
        f.to_string(),
        "fd00::1 > fd00::2 icmpv6 1/4 port-unreachable"
    );
    assert_eq!((f.icmp_type, f.icmp_code), (Some(1), Some(4)));
}

/// An ICMP error quotes the packet it is about: parsed as a flow of its
/// own, with the MTU a frag-needed / packet-too-big announces.
#[test]
fn icmp_errors_carry_their_quote_and_mtu() {
    let quoted = ipv4(17, &[0x9c, 0x40, 0x14, 0xb9, 0x05, 0x80, 0, 0]);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(&quoted);
    let f = parse(V4, &ipv4(1, &icmp), None);
    assert_eq!(f.icmp_mtu, Some(1280));
    let q = f.icmp_quote.as_deref().expect("a quote");
    assert_eq!(q.to_string(), "198.18.0.1:40000 > 198.18.0.2:5305 udp");
    // Not an error: no quote.
    let f = parse(V4, &ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1, 0x45]), None);
    assert!(f.icmp_quote.is_none() && f.icmp_mtu.is_none());
    // ICMPv6 packet-too-big: a 32-bit MTU, then the quoted packet.
    let mut ptb = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    ptb.extend_from_slice(&ipv6(6, &[0x9c, 0x40, 0, 80]));
    let f = parse(V6, &ipv6(58, &ptb), None);
    assert_eq!(f.icmp_mtu, Some(1280));
    let q = f.icmp_quote.as_deref().expect("a quote");
    assert_eq!(
        (q.proto.as_deref(), q.sport, q.dport),
        (Some("tcp"), Some(40000), Some(80))
    );
}

#[test]
fn vlan_tags_outermost_first() {
    let mut b = vec![
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xa8, 0, 10, 0x81, 0, 0, 20,
    ];
    b.extend_from_slice(&[0x08, 0]);
    b.extend_from_slice(&ipv4(1, &[8, 0, 0, 0]));
    let f = parse(HdrKind::Eth, &b, Some(0x2005));
    assert_eq!(f.vlan, vec![5, 10, 20]);
    assert_eq!(
        f.to_string(),
        "vlan 5,10,20 198.18.0.1 > 198.18.0.2 icmp echo-request"
    );
    // Cut inside the second tag: L2 with MACs, truncated.
    let f = parse(HdrKind::Eth, &b[..18], None);
    assert_eq!((f.l3, f.truncated), ("l2", true));
    assert_eq!(f.vlan, vec![10]);
    assert_eq!(f.dst_mac.as_deref(), Some("02:00:00:00:00:02"));
}

#[test]
fn arp_fields() {
    let (kind, bytes, _) = table()
        .into_iter()
        .find(|(_, b, w)| b.len() > 20 && w.starts_with("arp who-has"))
        .unwrap();
    let f = parse(kind, &bytes, None);
    let a = f.arp.as_ref().unwrap();
    assert_eq!(a.op, "request");
    assert_eq!(a.sender, Ipv4Addr::new(198, 18, 0, 1));
    assert_eq!(a.target, Ipv4Addr::new(198, 18, 0, 2));
    assert_eq!(f.src_mac.as_deref(), Some("02:00:00:00:00:01"));
    assert_eq!(f.ethertype, Some(0x0806));
}

#[test]
fn unknown_ethertype_zero_sniffs_version() {
    let f = parse(HdrKind::L3 { ethertype: 0 }, &ipv6(58, &[128, 0]), None);
    assert_eq!(f.l3, "ipv6");
    assert_eq!(f.to_string(), "fd00::1 > fd00::2 icmpv6 echo-request");
    let f = parse(HdrKind::L3 { ethertype: 0 }, &[0x12, 0x34], None);
    assert_eq!(f.to_string(), "unknown");
    let f = parse(HdrKind::L3 { ethertype: 0x8847 }, &[0; 8], None);
    assert_eq!(f.to_string(), "unknown ethertype 0x8847");
}

#[test]
fn other_protocols_by_name_or_number() {
    let f = parse(V4, &ipv4(47, &[0; 4]), None);
    assert_eq!(f.to_string(), "198.18.0.1 > 198.18.0.2 gre");
    let f = parse(V4, &ipv4(253, &[0; 4]), None);
    assert_eq!(f.proto.as_deref(), Some("253"));
    assert_eq!(f.to_string(), "198.18.0.1 > 198.18.0.2 proto 253");
}

#[test]
fn json_omits_absent_fields() {
    let f = parse(V4, &ipv4(17, &[0x9c, 0x40, 0, 53, 0, 8, 0, 0]), None);
    let j = serde_json::to_string(&f).unwrap();
    assert_eq!(
        j,
        r#"{"l3":"ipv4","proto":"udp","src":"198.18.0.1","dst":"198.18.0.2","sport":40000,"dport":53,"ethertype":2048,"len":28}"#
    );
}
