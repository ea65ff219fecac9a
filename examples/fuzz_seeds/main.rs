//! Captures the seeds committed in fuzz/seeds/TARGET/ from the running
//! kernel. A routed lab (cli — rtr — srv) gets nftables, iptables-nft and
//! iptables-legacy rules, NAT, a multipath route, a cls_bpf filter and open
//! sockets; traffic through it fills conntrack, neighbour tables and nftrace;
//! then the same netlink and getsockopt reads netwhy makes are saved raw.
//! Real answers give the fuzzer the layouts (nested attributes, x_tables
//! offsets) that it would take it hours to guess from nothing.
//!
//! As root: `cargo run --release --example fuzz_seeds -- fuzz/seeds`.
//! Names are stable, so a rerun overwrites; the lab is removed at exit.
mod capture;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netwhy::filter::pcap::PcapFilter;
use netwhy::lab::{bpf, traffic, Lab, LabError};
use netwhy::state::{conntrack, sockets};

const NFT_RULES: &str = "
table inet fw {
  set blocked { type ipv4_addr; elements = { 198.18.7.7 } }
  chain routed {
    type filter hook forward priority 0; policy accept;
    meta nftrace set 1
    ct state invalid drop
    ip saddr @blocked counter drop
    tcp dport 22 reject with tcp reset
    udp dport { 5300, 5301 } log prefix \"seed \" reject
    iifname \"eth1\" tcp flags & (syn | ack) == syn jump audit
    ip6 nexthdr ipv6-icmp accept
  }
  chain audit { meta l4proto tcp counter return; }
}
table ip nat {
  chain pre { type nat hook prerouting priority -100; udp dport 5353 dnat to 198.18.2.2:53; }
  chain post { type nat hook postrouting priority 100; oifname \"eth1\" masquerade; }
}";

/// iptables-legacy in srv: builtin and user chains, goto, matches with and
/// without data, standard and extension targets, NAT.
const LEGACY_V4: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:AUDIT - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset
-A INPUT -s 198.18.1.0/24 -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -m comment --comment \"fuzz seed\" -j AUDIT
-A INPUT -p udp -g AUDIT
-A AUDIT -p icmp -j LOG --log-prefix \"seed \"
-A AUDIT -j RETURN
-A OUTPUT ! -o eth0 -d 10.0.0.0/8 -j REJECT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 5353 -j DNAT --to-destination 198.18.2.2:53
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
";
const LEGACY_V6: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -s fd00::/8 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -o eth0 -j DROP
COMMIT
";

/// tcpdump expressions for the cbpf seeds, compiled by libpcap as netwhy
/// compiles `--filter`.
const FILTERS: &[&str] = &[
    "udp port 53",
    "tcp[tcpflags] & tcp-syn != 0",
    "icmp or icmp6",
    "src net 198.18.0.0/15 and not port 22",
    "ip[6:2] & 0x1fff != 0 or len > 100",
    "ip6 and tcp dst port 80",
];

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or("fuzz/seeds".into()));
    if let Err(e) = run(&out) {
        eprintln!("fuzz_seeds: {e}");
        std::process::exit(1);
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> LabError {
    LabError::Traffic(format!("{what}: {e}"))
}

fn save(out: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<(), LabError> {
    let dir = out.join(target);
    fs::create_dir_all(&dir).map_err(|e| err("mkdir", e))?;
    fs::write(dir.join(name), bytes).map_err(|e| err(name, e))?;
    println!("{target}/{name}: {} bytes", bytes.len());
    Ok(())
}

fn run(out: &Path) -> Result<(), LabError> {
    let mut lab = Lab::new()?;
    lab.routed()?;
    lab.ip(
        "cli",
        &["addr", "add", "fd00:1::2/64", "dev", "eth0", "nodad"],
    )?;
    lab.ip(
        "rtr",
        &["addr", "add", "fd00:1::1/64", "dev", "eth0", "nodad"],
    )?;
    let multipath = [
        "nexthop",
        "via",
        "198.18.1.2",
        "nexthop",
        "via",
        "198.18.2.2",
    ];
    lab.ip(
        "rtr",
        &[&["route", "add", "198.18.9.0/24"][..], &multipath].concat(),
    )?;
    lab.nft("rtr", NFT_RULES)?;
    lab.exec(
        "rtr",
        &[
            "iptables-nft",
            "-A",
            "FORWARD",
            "-p",
            "tcp",
            "-m",
            "multiport",
            "--dports",
            "23,24",
            "-j",
            "REJECT",
            "--reject-with",
            "icmp-host-prohibited",
        ],
    )?;
    lab.iptables_restore("srv", "iptables-legacy-restore", LEGACY_V4)?;
    lab.iptables_restore("srv", "ip6tables-legacy-restore", LEGACY_V6)?;
    let (rtr, srv) = (lab.ns("rtr").name.clone(), lab.ns("srv").name.clone());
    let planted = bpf::plant_udp_deny(&srv, "eth0", 5300, bpf::How::ClsBpf)?;

    // Listening before the traffic: nftrace events and frames on rtr,
    // sockets on srv (one gets an established connection).
    let (trace, frames) = traffic::in_netns(&rtr, || {
        let t = netwhy::state::netlink::Socket::open(libc::NETLINK_NETFILTER)
            .map_err(|e| err("nfnetlink", e))?;
        t.join(9, "NFNLGRP_NFTRACE").map_err(|e| err("join", e))?;
        Ok((
            t,
            capture::packet_socket().map_err(|e| err("packet socket", e))?,
        ))
    })?;
    let socks = traffic::in_netns(&srv, || {
        let b = |a: &str| a.parse::<std::net::SocketAddr>().expect("literal");
        let mut tcp = Vec::new();
        for a in ["0.0.0.0:80", "127.0.0.1:8080", "[::]:443"] {
            tcp.push(std::net::TcpListener::bind(b(a)).map_err(|e| err("listen", e))?);
        }
        let mut udp = Vec::new();
        for a in ["198.18.2.2:53", "[::]:5300"] {
            udp.push(std::net::UdpSocket::bind(b(a)).map_err(|e| err("bind", e))?);
        }
        Ok((tcp, udp))
    })?;
    let dst = |a: &str| a.parse().expect("literal");
    traffic::udp_send(&lab.ns("cli").name, dst("198.18.2.2:5353"), 2, b"seed")?;
    traffic::udp_send(&lab.ns("cli").name, dst("198.18.2.2:5300"), 1, b"seed")?;
    let short = Duration::from_millis(300);
    for port in [80, 22, 23] {
        traffic::tcp_connect(
            &lab.ns("cli").name,
            dst(&format!("198.18.2.2:{port}")),
            short,
        )?;
    }
    // Closed ports on rtr: ICMP and ICMPv6 errors (and neighbour discovery).
    traffic::udp_send(&lab.ns("cli").name, dst("198.18.1.1:9"), 1, b"seed")?;
    traffic::udp_send(&lab.ns("cli").name, dst("[fd00:1::1]:9"), 1, b"seed")?;

    let mut buf = vec![0u8; 1 << 16];
    for i in 0..6 {
        match trace.recv_within(&mut buf, short) {
            Ok(Some(n)) => save(out, "nftables", &format!("trace-{i}"), &buf[..n])?,
            _ => break,
        }
    }
    packets(out, &capture::frames(&frames, short))?;
    netlink_dumps(out, &rtr, &srv)?;
    drop((socks, planted));
    Ok(())
}

/// Frames as Ethernet seeds, IP ones also from their network header; the
/// first frame of each (ethertype, IP protocol) only. Then libpcap programs,
/// each with one of the IP packets.
fn packets(out: &Path, frames: &[Vec<u8>]) -> Result<(), LabError> {
    let mut seen = std::collections::HashSet::new();
    let mut l3 = Vec::new();
    for f in frames.iter().filter(|f| f.len() > 14) {
        let et = u16::from_be_bytes([f[12], f[13]]);
        let proto = match et {
            0x0800 => f.get(14 + 9),
            0x86dd => f.get(14 + 6),
            _ => None,
        };
        if !seen.insert((et, proto.copied())) {
            continue;
        }
        let name = format!("eth-{et:04x}-{}", proto.map_or(0, |p| *p));
        save(out, "packet", &name, &[&[0u8][..], f].concat())?;
        if proto.is_some() {
            save(
                out,
                "packet",
                &format!("l3-{et:04x}-{}", proto.unwrap_or(&0)),
                &[&[1u8][..], &f[14..]].concat(),
            )?;
            l3.push(f[14..].to_vec());
        }
    }
    flows(out)?;
    if l3.is_empty() {
        return Err(err("packet capture", "no IP frame seen on rtr"));
    }
    for (i, expr) in FILTERS.iter().enumerate() {
        let prog = PcapFilter::compile(expr)
            .map_err(|e| err("libpcap", e))?
            .ok_or_else(|| err("libpcap", "empty program"))?
            .prog;
        let mut seed = vec![prog.len() as u8];
        for insn in &prog {
            seed.extend(insn.code.to_ne_bytes());
            seed.extend([insn.jt, insn.jf]);
            seed.extend(insn.k.to_ne_bytes());
        }
        seed.extend_from_slice(&l3[i % l3.len()]);
        save(out, "cbpf", &format!("filter-{i}"), &seed)?;
    }
    Ok(())
}

/// The hand-built headers of tests/fixtures/packet/flows.txt (VLAN and QinQ
/// tags, IPv6 extension headers, fragments), in the packet target's layout.
fn flows(out: &Path) -> Result<(), LabError> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/packet/flows.txt"
    );
    let text = fs::read_to_string(path).map_err(|e| err(path, e))?;
    let lines = text.lines().map(str::trim);
    for (i, line) in lines
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
    {
        let input = line.split_once("=>").map_or(line, |(a, _)| a);
        let mut words = input.split_whitespace();
        let kind = words.next().unwrap_or_default();
        let hex: String = words.collect();
        let bytes = (0..hex.len() / 2).map(|j| u8::from_str_radix(&hex[2 * j..2 * j + 2], 16));
        let bytes: Vec<u8> = bytes.collect::<Result<_, _>>().map_err(|e| err(line, e))?;
        let head = match kind.strip_prefix("l3:") {
            Some(et) => {
                let et = u16::from_str_radix(et, 16).map_err(|e| err(line, e))?;
                vec![2, (et >> 8) as u8, et as u8]
            }
            None if kind == "eth" => vec![0],
            None => vec![3],
        };
        save(
            out,
            "packet",
            &format!("flows-{i:02}"),
            &[head, bytes].concat(),
        )?;
    }
    Ok(())
}

/// The netlink and x_tables reads, in the namespace each state lives in.
fn netlink_dumps(out: &Path, rtr: &str, srv: &str) -> Result<(), LabError> {
    let route = libc::NETLINK_ROUTE;
    let (nf, diag) = (libc::NETLINK_NETFILTER, libc::NETLINK_SOCK_DIAG);
    let rtr_reads = traffic::in_netns(rtr, move || {
        let io = |e: std::io::Error| err("netlink", e);
        let mut get = Vec::new();
        get.extend([libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        netwhy::state::netlink::put(&mut get, 1, &[198, 18, 2, 2]); // RTA_DST
        Ok(vec![
            (
                "rtnetlink",
                "links",
                capture::dump(route, 18, &[0; 16]).map_err(io)?,
            ),
            (
                "rtnetlink",
                "addrs",
                capture::dump(route, 22, &[0; 8]).map_err(io)?,
            ),
            (
                "rtnetlink",
                "routes",
                capture::dump(route, 26, &[0; 12]).map_err(io)?,
            ),
            (
                "rtnetlink",
                "neigh",
                capture::dump(route, 30, &[0; 12]).map_err(io)?,
            ),
            (
                "rtnetlink",
                "route-get",
                capture::ask(route, 26, &get).map_err(io)?,
            ),
            (
                "conntrack",
                "dump",
                capture::dump(nf, 0x101, &conntrack::dump_request()).map_err(io)?,
            ),
            (
                "nftables",
                "rules",
                capture::dump(nf, 10 << 8 | 7, &[0; 4]).map_err(io)?,
            ),
            (
                "nftables",
                "chains",
                capture::dump(nf, 10 << 8 | 4, &[0; 4]).map_err(io)?,
            ),
        ])
    })?;
    let srv_reads = traffic::in_netns(srv, move || {
        let io = |e: std::io::Error| err("read", e);
        // struct tcmsg for eth0's clsact ingress filters.
        // SAFETY: a NUL-terminated name.
        let eth0 = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
        let mut tc = vec![0u8; 4];
        tc.extend((eth0 as i32).to_ne_bytes());
        tc.extend([0u32, 0xffff_fff2, 0].iter().flat_map(|v| v.to_ne_bytes()));
        let mut v = vec![(
            "rtnetlink",
            "tfilter".to_string(),
            capture::dump(route, 46, &tc).map_err(io)?,
        )];
        for (proto, fam, name) in [
            (sockets::Proto::Tcp, libc::AF_INET, "tcp4"),
            (sockets::Proto::Tcp, libc::AF_INET6, "tcp6"),
            (sockets::Proto::Udp, libc::AF_INET, "udp4"),
            (sockets::Proto::Udp, libc::AF_INET6, "udp6"),
        ] {
            let req = sockets::diag_request(fam as u8, proto);
            let mut seed = vec![proto.number()];
            seed.extend(capture::dump(diag, 20, &req).map_err(io)?);
            v.push(("sock_diag", name.to_string(), seed));
        }
        for (v6, table) in [(false, "filter"), (false, "nat"), (true, "filter")] {
            let name = format!("{}-{table}", if v6 { "ip6" } else { "ip" });
            v.push(("iptables", name, capture::x_table(v6, table).map_err(io)?));
        }
        Ok(v)
    })?;
    for (target, name, bytes) in &rtr_reads {
        save(out, target, name, bytes)?;
    }
    for (target, name, bytes) in &srv_reads {
        save(out, target, name, bytes)?;
    }
    // Each rule's expressions alone, for nft_expr.
    let rules = &rtr_reads.iter().find(|r| r.1 == "rules").expect("rules").2;
    for (i, (_, _, _, body)) in netwhy::state::netlink::messages(rules).enumerate() {
        let exprs =
            netwhy::state::netlink::attrs(body.get(4..).unwrap_or_default()).find(|(t, _)| *t == 4); // NFTA_RULE_EXPRESSIONS
        if let Some((_, e)) = exprs {
            save(out, "nft_expr", &format!("rule-{i}"), e)?;
        }
    }
    Ok(())
}
