//! Byte fixtures built the way the kernel lays a table out (sizes from the
//! uapi headers, see parse.rs), decoded back into rules.
use super::parse::{self, TableInfo};
use super::*;

const V4_ENTRY: usize = 112;
const V6_ENTRY: usize = 168;

fn name_field(buf: &mut [u8], name: &str) {
    buf[..name.len()].copy_from_slice(name.as_bytes());
}

/// xt_entry_match / xt_entry_target: u16 size, name[29], revision, data,
/// padded to 8 bytes (XT_ALIGN).
fn xt(name: &str, data: &[u8]) -> Vec<u8> {
    let size = (32 + data.len()).div_ceil(8) * 8;
    let mut v = vec![0u8; size];
    v[..2].copy_from_slice(&(size as u16).to_ne_bytes());
    name_field(&mut v[2..31], name);
    v[32..32 + data.len()].copy_from_slice(data);
    v
}

fn standard(verdict: i32) -> Vec<u8> {
    let v = xt("", &verdict.to_ne_bytes());
    assert_eq!(v.len(), 40, "xt_standard_target is 40 bytes");
    v
}

fn error(name: &str) -> Vec<u8> {
    let mut data = [0u8; 30];
    name_field(&mut data, name);
    let v = xt("ERROR", &data);
    assert_eq!(v.len(), 64, "xt_error_target is 64 bytes");
    v
}

fn ports(s: (u16, u16), d: (u16, u16), tail: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = [s.0, s.1, d.0, d.1]
        .iter()
        .flat_map(|p| p.to_ne_bytes())
        .collect();
    v.extend_from_slice(tail);
    v
}

/// An entry: family header with `ip` applied, matches, target, counters.
fn entry(
    fam: Family,
    ip: &dyn Fn(&mut [u8]),
    matches: &[Vec<u8>],
    target: Vec<u8>,
    pkts: u64,
) -> Vec<u8> {
    let (len, t_at, ctr) = match fam {
        Family::Ipv4 => (V4_ENTRY, 88, 96),
        Family::Ipv6 => (V6_ENTRY, 140, 152),
    };
    let mut e = vec![0u8; len];
    ip(&mut e);
    for m in matches {
        e.extend_from_slice(m);
    }
    let target_offset = e.len() as u16;
    e.extend_from_slice(&target);
    let next = e.len() as u16;
    e[t_at..t_at + 2].copy_from_slice(&target_offset.to_ne_bytes());
    e[t_at + 2..t_at + 4].copy_from_slice(&next.to_ne_bytes());
    e[ctr..ctr + 8].copy_from_slice(&pkts.to_ne_bytes());
    e[ctr + 8..ctr + 16].copy_from_slice(&(pkts * 60).to_ne_bytes());
    e
}

fn any(_: &mut [u8]) {}

/// Concatenate entries; returns the blob and each entry's offset.
fn join(entries: &[Vec<u8>]) -> (Vec<u8>, Vec<u32>) {
    let mut blob = Vec::new();
    let mut offs = Vec::new();
    for e in entries {
        offs.push(blob.len() as u32);
        blob.extend_from_slice(e);
    }
    (blob, offs)
}

/// Set the verdict of the standard target of the entry at `off`.
fn patch_jump(blob: &mut [u8], fam: Family, off: u32, to: u32) {
    let t_field = if fam == Family::Ipv4 { 88 } else { 140 };
    let at = off as usize;
    let t_at = u16::from_ne_bytes([blob[at + t_field], blob[at + t_field + 1]]) as usize;
    blob[at + t_at + 32..at + t_at + 36].copy_from_slice(&(to as i32).to_ne_bytes());
}

/// filter as iptables-legacy lays it out for: INPUT (policy ACCEPT),
/// FORWARD (-j LIBVIRT_FWI; -s 10.0.0.0/8 -i eth0 -p tcp --dport 80 -j
/// ACCEPT; policy DROP), OUTPUT (policy ACCEPT), LIBVIRT_FWI (-o eth1 -p
/// tcp --dport 22 -j REJECT --reject-with icmp-port-unreachable).
fn libvirt_filter() -> (TableInfo, Vec<u8>) {
    let fam = Family::Ipv4;
    let tcp = |spt, dpt| xt("tcp", &ports(spt, dpt, &[0, 0, 0, 0]));
    let entries = vec![
        entry(fam, &any, &[], standard(-2), 100), // 0 INPUT policy ACCEPT
        entry(fam, &any, &[], standard(0), 7),    // 1 FORWARD -j LIBVIRT_FWI (patched)
        entry(
            fam,
            &|e| {
                e[0..4].copy_from_slice(&[10, 0, 0, 0]);
                e[8..12].copy_from_slice(&[255, 0, 0, 0]);
                name_field(&mut e[16..32], "eth0");
                e[48..53].fill(0xff);
                e[80] = 6;
            },
            &[tcp((0, 0xffff), (80, 80))],
            standard(-2),
            3,
        ), // 2 FORWARD ACCEPT
        entry(fam, &any, &[], standard(-1), 5),   // 3 FORWARD policy DROP
        entry(fam, &any, &[], standard(-2), 50),  // 4 OUTPUT policy ACCEPT
        entry(fam, &any, &[], error("LIBVIRT_FWI"), 0), // 5 head
        entry(
            fam,
            &|e| {
                name_field(&mut e[32..48], "eth1");
                e[64..69].fill(0xff);
                e[80] = 6;
            },
            &[tcp((0, 0xffff), (22, 22))],
            xt("REJECT", &3u32.to_ne_bytes()),
            4,
        ), // 6 LIBVIRT_FWI REJECT
        entry(fam, &any, &[], standard(-5), 0),   // 7 tail RETURN
        entry(fam, &any, &[], error("ERROR"), 0), // 8 end
    ];
    let (mut blob, offs) = join(&entries);
    patch_jump(&mut blob, fam, offs[1], offs[6]);
    let info = TableInfo {
        valid_hooks: 0b1110,
        hook_entry: [0, offs[0], offs[1], offs[4], 0],
        underflow: [0, offs[0], offs[3], offs[4], 0],
        num_entries: entries.len() as u32,
        size: blob.len() as u32,
    };
    (info, blob)
}

fn find<'a>(rules: &'a [LegacyRule], chain: &str, index: u32) -> &'a LegacyRule {
    rules
        .iter()
        .find(|r| r.chain == chain && r.index == index)
        .unwrap_or_else(|| panic!("{chain} #{index} missing from {rules:#?}"))
}

#[test]
fn libvirt_style_chain_is_decoded_with_jumps_policies_and_counters() {
    let (info, blob) = libvirt_filter();
    let rules = parse::rules(Family::Ipv4, "filter", &info, &blob).unwrap();
    // 3 policies + 2 FORWARD rules + 1 user rule; no ERROR heads, no tail.
    assert_eq!(rules.len(), 6, "{rules:#?}");

    let jump = find(&rules, "FORWARD", 1);
    assert_eq!(
        (jump.target.as_str(), jump.summary.as_str(), jump.pkts),
        ("LIBVIRT_FWI", "any", 7)
    );
    let accept = find(&rules, "FORWARD", 2);
    assert_eq!(accept.target, "ACCEPT");
    assert_eq!(accept.summary, "tcp src 10.0.0.0/8 in eth0 dpt:80");
    assert_eq!((accept.pkts, accept.bytes), (3, 180));

    let reject = find(&rules, "LIBVIRT_FWI", 1);
    assert_eq!(reject.target, "REJECT");
    assert_eq!(
        reject.summary,
        "tcp out eth1 dpt:22 reject-with icmp-port-unreachable"
    );
    assert!(!reject.policy);

    let policy = find(&rules, "FORWARD", 0);
    assert!(policy.policy);
    assert_eq!((policy.target.as_str(), policy.pkts), ("DROP", 5));
    assert_eq!(find(&rules, "INPUT", 0).target, "ACCEPT");
    assert_eq!(find(&rules, "OUTPUT", 0).pkts, 50);
    let order: Vec<_> = rules.iter().map(|r| (r.chain.as_str(), r.index)).collect();
    assert_eq!(
        order,
        [
            ("INPUT", 0),
            ("FORWARD", 1),
            ("FORWARD", 2),
            ("FORWARD", 0),
            ("OUTPUT", 0),
            ("LIBVIRT_FWI", 1)
        ]
    );
}

#[test]
fn ipv6_entry_with_inverted_address_port_range_and_comment() {
    let fam = Family::Ipv6;
    let mut comment = vec![0u8; 256];
    name_field(&mut comment, "block the lab");
    let entries = vec![
        entry(
            fam,
            &|e| {
                e[0] = 0xfd; // src fd00::/8, inverted
                e[32] = 0xff;
                name_field(&mut e[64..80], "veth+"); // wildcard: mask stops before '+'
                e[96..100].fill(0xff);
                e[128] = 17;
                e[131] = 0x01; // IP6T_F_PROTO
                e[132] = 0x08; // IP6T_INV_SRCIP
            },
            &[
                xt("udp", &ports((0, 0xffff), (1000, 2000), &[0])),
                xt("comment", &comment),
            ],
            standard(-1),
            9,
        ),
        entry(fam, &any, &[], standard(-2), 1),
        entry(fam, &any, &[], error("ERROR"), 0),
    ];
    let (blob, offs) = join(&entries);
    let info = TableInfo {
        valid_hooks: 0b0010,
        hook_entry: [0, offs[0], 0, 0, 0],
        underflow: [0, offs[1], 0, 0, 0],
        num_entries: 3,
        size: blob.len() as u32,
    };
    let rules = parse::rules(fam, "filter", &info, &blob).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0].summary,
        "udp ! src fd00::/8 in veth+ dpts:1000:2000 /* block the lab */"
    );
    assert_eq!(
        (rules[0].target.as_str(), rules[0].index, rules[0].family),
        ("DROP", 1, Family::Ipv6)
    );
}

#[test]
fn getinfo_reply_is_decoded() {
    let mut b = vec![0u8; parse::GETINFO_LEN];
    name_field(&mut b, "nat");
    let words: [u32; 13] = [0b11011, 0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 9, 1234];
    for (i, w) in words.iter().enumerate() {
        b[32 + 4 * i..36 + 4 * i].copy_from_slice(&w.to_ne_bytes());
    }
    let info = TableInfo::parse(&b).unwrap();
    assert_eq!(info.valid_hooks, 0b11011);
    assert_eq!(info.hook_entry, [0, 1, 2, 3, 4]);
    assert_eq!(info.underflow, [10, 11, 12, 13, 14]);
    assert_eq!((info.num_entries, info.size), (9, 1234));
    assert!(TableInfo::parse(&b[..83]).is_none());
}

#[test]
fn malformed_blobs_are_errors_not_panics() {
    let (info, blob) = libvirt_filter();
    // Every truncation: an error (or, at an entry boundary before the end
    // marker, a shorter table) — never a panic.
    for n in 0..blob.len() {
        let _ = parse::rules(Family::Ipv4, "filter", &info, &blob[..n]);
    }
    assert!(matches!(
        parse::rules(Family::Ipv4, "filter", &info, &blob[..100]),
        Err(IptError::Malformed { .. })
    ));
    // Every byte forced to extremes, one at a time.
    for i in 0..blob.len() {
        for v in [0u8, 0xff, 0x7f] {
            let mut b = blob.clone();
            b[i] = v;
            let _ = parse::rules(Family::Ipv4, "filter", &info, &b);
        }
    }
    // next_offset of 0 would loop forever if not rejected.
    let mut b = blob.clone();
    b[90..92].copy_from_slice(&0u16.to_ne_bytes());
    assert!(parse::rules(Family::Ipv4, "filter", &info, &b).is_err());
    // A match claiming more bytes than precede the target.
    let mut b = blob.clone();
    let m = info.hook_entry[2] as usize + 152 + V4_ENTRY;
    b[m..m + 2].copy_from_slice(&500u16.to_ne_bytes());
    let e = parse::rules(Family::Ipv4, "filter", &info, &b).unwrap_err();
    assert!(e.to_string().contains("match"), "{e}");
}

fn rule(chain: &str, index: u32, target: &str, pkts: u64) -> LegacyRule {
    LegacyRule {
        family: Family::Ipv4,
        table: "filter".into(),
        chain: chain.into(),
        index,
        policy: index == 0,
        target: target.into(),
        pkts,
        bytes: pkts * 60,
        summary: "tcp dpt:22".into(),
    }
}

#[test]
fn moved_reports_grown_counters_only() {
    let before = vec![
        rule("FORWARD", 1, "LIBVIRT_FWI", 10),
        rule("LIBVIRT_FWI", 1, "REJECT", 4),
        rule("FORWARD", 0, "ACCEPT", 7),
    ];
    let mut after = before.clone();
    after[0].pkts = 13;
    after[1].pkts = 7;
    after.push(rule("FORWARD", 2, "DROP", 99)); // appeared during the window
    let m = moved(&before, &after);
    let got: Vec<_> = m
        .iter()
        .map(|(r, d)| (r.chain.as_str(), r.index, *d))
        .collect();
    assert_eq!(got, [("FORWARD", 1, 3), ("LIBVIRT_FWI", 1, 3)]);
    // Counters reset by a table replace do not underflow.
    let mut reset = before.clone();
    reset[0].pkts = 0;
    assert!(moved(&before, &reset).is_empty());
}
