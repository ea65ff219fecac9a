//! Rule attribution beyond the inet forward/input chains: rules on the
//! output hook (locally generated packets) and in the bridge, netdev and
//! arp families name their table, chain and handle, through the tracer
//! alone and through `netwhy explain` (root; skipped otherwise unless CI).
mod common;

use std::time::Duration;

use common::*;
use netwhy::state::nftrace::{self, Matcher, Tracer};

/// The router's own output chain eats the ICMP "fragmentation needed" it
/// generates for a too-big DF packet: the PMTU black hole's firewall half.
const OUTPUT_ICMP: &str = "table inet nwlab_out {
  chain output {
    type filter hook output priority filter; policy accept;
    icmp type destination-unreachable counter drop comment \"eat icmp errors\"
  }
}
";

/// A routed lab whose router links to srv with MTU 1280 and runs
/// [`OUTPUT_ICMP`].
fn pmtu_lab() -> Lab {
    let mut lab = Lab::new().expect("lab");
    lab.routed().expect("routed");
    lab.ip("rtr", &["link", "set", "eth1", "mtu", "1280"])
        .expect("mtu");
    lab.nft("rtr", OUTPUT_ICMP).expect("nft");
    lab
}

/// Three 1400-byte DF datagrams cli -> srv, sent raw to the router's MAC
/// (a socket would learn nothing either: the ICMP never arrives).
fn send_too_big(lab: &Lab, count: u32) {
    let mac = lab.mac("rtr", "eth0").expect("mac");
    let pkt = traffic::ipv4_udp(
        [198, 18, 1, 2].into(),
        [198, 18, 2, 2].into(),
        40000,
        9999,
        &[0x55; 1372],
        false,
    );
    for _ in 0..count {
        traffic::packet_send(&lab.ns("cli").name, "eth0", mac, pkt.clone(), 1).expect("send");
        std::thread::sleep(traffic::RETRY_PAUSE);
    }
}

/// A cli/srv pair whose srv input chain drops `ct state invalid`.
fn ct_invalid_pair() -> Lab {
    let mut lab = Lab::new().expect("lab");
    lab.pair().expect("pair");
    lab.nft(
        "srv",
        "table inet nwlab_filter {
  chain input {
    type filter hook input priority filter; policy accept;
    ct state invalid drop
  }
}
",
    )
    .expect("nft");
    lab
}

#[test]
fn output_hook_drop_of_a_generated_icmp_is_attributed() {
    if !root_or_skip("output_hook_drop_of_a_generated_icmp_is_attributed") {
        return;
    }
    let lab = pmtu_lab();
    let rtr = lab.ns("rtr").inode;
    let planted = nftrace::rules(rtr, 1, "nwlab_out", "output").expect("dump");
    assert_eq!(planted.len(), 1, "{planted:?}");
    let m = Matcher {
        l4proto: Some(1),
        ..Matcher::default()
    }
    .daddr([198, 18, 1, 2].into());
    let mut tracer = Tracer::start(rtr, m).expect("start tracer");
    send_too_big(&lab, 2);
    let drops = tracer.collect(Duration::from_millis(300)).expect("collect");
    assert!(!drops.is_empty(), "the generated ICMP was not traced");
    let d = &drops[0];
    assert_eq!(
        (d.table.as_str(), d.chain.as_str()),
        ("nwlab_out", "output")
    );
    assert_eq!(d.rule_handle, Some(planted[0].handle));
    assert_eq!(d.comment.as_deref(), Some("eat icmp errors"));
    tracer.stop().expect("stop");
}

/// End to end: the first dropped ICMP arms the tracer, the next ones name
/// the output rule in explain's nft finding.
#[test]
fn explain_names_the_output_rule_that_eats_icmp() {
    if !root_or_skip("explain_names_the_output_rule_that_eats_icmp") {
        return;
    }
    let lab = pmtu_lab();
    let rtr = lab.ns("rtr").inode;
    let handle = nftrace::rules(rtr, 1, "nwlab_out", "output").expect("dump")[0].handle;
    let r = start(&[
        "explain",
        "-o",
        "json",
        "--duration",
        "9",
        "--netns",
        &lab.ns("rtr").name,
    ]);
    send_too_big(&lab, 3);
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    assert!(st.success(), "explain failed: {err:?}");
    let v = json_lines(&out);
    let named = of_type(&v, "finding").into_iter().any(|f| {
        f["subjects"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["kind"] == "nft_rule"
                    && s["table"] == "nwlab_out"
                    && s["chain"] == "output"
                    && s["handle"] == handle
            })
        })
    });
    assert!(named, "no finding names the output rule: {out}");
    assert!(
        nftrace::tables(rtr)
            .expect("tables")
            .iter()
            .all(|t| !t.name.starts_with("netwhy_trace_")),
        "trace table left behind"
    );
}

/// Conntrack's per-CPU invalid statistic is read inside a lab namespace
/// (the `conntrack -S` evidence of the ct-invalid-checksum diagnosis).
#[test]
fn conntrack_invalid_count_is_read_in_a_namespace() {
    if !root_or_skip("conntrack_invalid_count_is_read_in_a_namespace") {
        return;
    }
    // Conntrack must be active in the netns for its statistics to exist.
    let lab = ct_invalid_pair();
    let srv = lab.ns("srv").inode;
    let before = netwhy::diagnose::checksum::invalid_count(srv).expect("statistics read");
    let mac = lab.mac("srv", "eth0").expect("mac");
    let bad = traffic::ipv4_udp(
        [198, 18, 0, 1].into(),
        [198, 18, 0, 2].into(),
        40000,
        5305,
        b"bad",
        true,
    );
    traffic::packet_send(&lab.ns("cli").name, "eth0", mac, bad, 2).expect("send");
    let after = netwhy::diagnose::checksum::invalid_count(srv).expect("statistics read");
    eprintln!("invalid {before} -> {after}");
    assert!(after >= before + 2, "invalid {before} -> {after}");
}

/// The noise case, for real: a `ct state invalid` drop of a packet whose
/// checksum is right (a SYN+FIN, invalid flags for conntrack) is not
/// called a bad checksum.
#[test]
fn ct_invalid_drop_with_a_good_checksum_is_not_a_checksum_problem() {
    if !root_or_skip("ct_invalid_drop_with_a_good_checksum_is_not_a_checksum_problem") {
        return;
    }
    let lab = ct_invalid_pair();
    let r = start(&[
        "explain",
        "-o",
        "json",
        "--duration",
        "9",
        "--netns",
        &lab.ns("srv").name,
    ]);
    let mac = lab.mac("srv", "eth0").expect("mac");
    // SYN+FIN, both checksums right.
    let pkt = traffic::ipv4_tcp(
        [198, 18, 0, 1].into(),
        [198, 18, 0, 2].into(),
        40002,
        5307,
        1,
        0,
        0x03,
    );
    for _ in 0..3 {
        traffic::packet_send(&lab.ns("cli").name, "eth0", mac, pkt.clone(), 1).expect("send");
        std::thread::sleep(traffic::RETRY_PAUSE);
    }
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    assert!(st.success(), "explain failed: {err:?}");
    let v = json_lines(&out);
    let causes: Vec<String> = of_type(&v, "finding")
        .iter()
        .map(|f| f["cause"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        causes.iter().any(|c| c == "ct-invalid-drop"),
        "no ct-invalid-drop finding: {out}"
    );
    assert!(
        !causes.iter().any(|c| c == "ct-invalid-checksum"),
        "a good checksum called bad: {out}"
    );
}
