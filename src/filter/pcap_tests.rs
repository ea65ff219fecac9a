//! The reference interpreter against libpcap's own matcher, on the packet
//! fixtures (tests/fixtures/packet/flows.txt, from the IP header) and every
//! truncation of them; plus hand-written programs for the corners libpcap's
//! compiler rarely emits (division by zero, scratch memory, MSH).
use super::*;
use crate::filter::cbpf::{run, validate, Insn};

const TABLE: &str = include_str!("../../tests/fixtures/packet/flows.txt");

/// Every fixture as bytes from its IP header (Ethernet ones unwrapped).
fn l3_fixtures() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for line in TABLE.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let input = line.split_once("=>").expect("=>").0;
        let mut words = input.split_whitespace();
        let kind = words.next().unwrap();
        let hex: String = words.collect();
        let b: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        match kind {
            "eth" if b.len() > 14 && b[12..14] == [0x08, 0x00] => out.push(b[14..].to_vec()),
            k if k.starts_with("l3:") => out.push(b),
            _ => {}
        }
    }
    out
}

const EXPRS: &[&str] = &[
    "udp",
    "tcp",
    "icmp",
    "icmp6",
    "ip6",
    "udp port 53",
    "udp dst port 53 and host 198.18.0.2",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-rst|tcp-ack) == (tcp-rst|tcp-ack)",
    "src net 198.18.0.0/24 and not port 80",
    "ip[8] = 64",
    "len > 40",
    "less 50",
    "icmp[icmptype] = icmp-unreach",
    "portrange 1-100",
    "ip6 and icmp6[0] = 128",
    "host fd00::2",
    "ip[6:2] & 0x1fff != 0",
    "ip and (udp[0:2] = 40000 or tcp[2:2] = 80)",
];

#[test]
fn reference_interpreter_agrees_with_libpcap() {
    let pkts = l3_fixtures();
    assert!(pkts.len() >= 10, "{}", pkts.len());
    let dead = pcap::Capture::dead(pcap::Linktype(DLT_RAW)).unwrap();
    let mut matched = 0;
    for expr in EXPRS {
        let ours = PcapFilter::compile(expr).unwrap().unwrap();
        let theirs = dead.compile(expr, true).unwrap();
        for p in &pkts {
            for n in 0..=p.len() {
                let cut = &p[..n];
                let want = theirs.filter(cut);
                assert_eq!(ours.matches(cut, n as u32), want, "{expr} on {cut:02x?}");
                matched += usize::from(want && n == p.len());
            }
        }
    }
    // The table must exercise both outcomes, or agreement proves little.
    assert!(matched > 20, "only {matched} whole-packet matches");
}

#[test]
fn one_flow_out_of_two() {
    let f = PcapFilter::compile("udp dst port 5301").unwrap().unwrap();
    let udp = |dport: u16| {
        let mut p = vec![
            0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 10, 0, 0, 1, 2]);
        p
    };
    assert!(f.matches(&udp(5301), 30));
    assert!(!f.matches(&udp(5302), 30));
}

#[test]
fn bad_expressions_name_the_problem() {
    let e = PcapFilter::compile("udp prot 53").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("syntax error"), "{msg}");
    assert!(!msg.contains('\n'));
    let e = PcapFilter::compile("ether host 02:00:00:00:00:01").unwrap_err();
    assert!(e.to_string().contains("bad filter expression"), "{e}");
    assert_eq!(PcapFilter::compile("  ").unwrap(), None);
}

#[test]
fn long_programs_are_refused() {
    let expr = (1..=60)
        .map(|p| format!("port {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let e = PcapFilter::compile(&expr).unwrap_err();
    assert!(e.to_string().contains("at most 128"), "{e}");
}

const LD_W_ABS: u16 = 0x20;
const LDX_B_MSH: u16 = 0xb1;
const LD_IMM: u16 = 0x00;
const LDX_IMM: u16 = 0x01;
const ALU_DIV_X: u16 = 0x3c;
const ALU_MOD_K: u16 = 0x94;
const ST: u16 = 0x02;
const LD_MEM: u16 = 0x60;
const RET_A: u16 = 0x16;
const RET_K: u16 = 0x06;
const TXA: u16 = 0x87;
const JEQ_K: u16 = 0x15;

#[test]
fn corners() {
    let pkt = [0x46u8, 1, 2, 3, 4, 5, 6, 7];
    // Division by a zero X ends the program with 0.
    let p = [
        Insn::new(LD_IMM, 0, 0, 7),
        Insn::new(LDX_IMM, 0, 0, 0),
        Insn::new(ALU_DIV_X, 0, 0, 0),
        Insn::new(RET_K, 0, 0, 1),
    ];
    validate(&p).unwrap();
    assert_eq!(run(&p, &pkt, 8), 0);
    // Modulo by a constant zero too.
    let p = [Insn::new(ALU_MOD_K, 0, 0, 0), Insn::new(RET_K, 0, 0, 1)];
    assert_eq!(run(&p, &pkt, 8), 0);
    // MSH: X = 4 * (P[0] & 0xf); scratch store and load.
    let p = [
        Insn::new(LDX_B_MSH, 0, 0, 0),
        Insn::new(TXA, 0, 0, 0),
        Insn::new(ST, 0, 0, 3),
        Insn::new(LD_IMM, 0, 0, 0),
        Insn::new(LD_MEM, 0, 0, 3),
        Insn::new(RET_A, 0, 0, 0),
    ];
    validate(&p).unwrap();
    assert_eq!(run(&p, &pkt, 8), 24);
    // A word load that crosses the captured end: no match, like the kernel.
    let p = [Insn::new(LD_W_ABS, 0, 0, 5), Insn::new(RET_K, 0, 0, 1)];
    assert_eq!(run(&p, &pkt, 100), 0);
    let p = [Insn::new(LD_W_ABS, 0, 0, 4), Insn::new(RET_A, 0, 0, 0)];
    assert_eq!(run(&p, &pkt, 100), 0x0405_0607);
    // Conditional jumps pick jt/jf.
    let p = [
        Insn::new(LD_IMM, 0, 0, 9),
        Insn::new(JEQ_K, 1, 0, 9),
        Insn::new(RET_K, 0, 0, 0),
        Insn::new(RET_K, 0, 0, 5),
    ];
    assert_eq!(run(&p, &pkt, 8), 5);
}

#[test]
fn validator_rejects_what_the_kernel_side_cannot_run() {
    assert!(validate(&[]).is_err());
    // Jump past the end.
    assert!(validate(&[Insn::new(JEQ_K, 3, 0, 1), Insn::new(RET_K, 0, 0, 0)]).is_err());
    // Falls off the end without RET.
    assert!(validate(&[Insn::new(LD_IMM, 0, 0, 1)]).is_err());
    // Scratch slot 16 does not exist.
    assert!(validate(&[Insn::new(ST, 0, 0, 16), Insn::new(RET_K, 0, 0, 0)]).is_err());
}
