//! `netwhy trace` against the real kernel, in namespaces the tests create:
//! the in-kernel tcpdump filter, tracking through NAT and across veth, the
//! fate of each packet, and the pcapng output read back by tshark.
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;

use common::*;
use serde_json::Value;

/// Steps and fate of each packet id in JSON Lines output.
fn packets(out: &str) -> BTreeMap<u64, (Vec<Value>, Value)> {
    let v = json_lines(out);
    let mut m: BTreeMap<u64, (Vec<Value>, Value)> = BTreeMap::new();
    for x in &v {
        let id = match x["packet"].as_u64() {
            Some(id) => id,
            None => continue,
        };
        let e = m.entry(id).or_insert_with(|| (Vec::new(), Value::Null));
        match x["type"].as_str() {
            Some("step") => e.0.push(x.clone()),
            Some("fate") => e.1 = x.clone(),
            other => panic!("unexpected record {other:?}"),
        }
    }
    m
}

fn send(lab: &Lab, role: &str, dst: &str, n: u32) {
    traffic::udp_send(&lab.ns(role).name, dst.parse().unwrap(), n, b"netwhy-trace").unwrap();
}

fn assert_time_ordered(steps: &[Value]) {
    let t: Vec<u64> = steps
        .iter()
        .map(|s| s["time_ns"].as_u64().unwrap())
        .collect();
    assert!(
        t.windows(2).all(|w| w[0] <= w[1]),
        "steps out of order: {t:?}"
    );
}

#[test]
fn pcap_filter_traces_only_the_matching_flow() {
    if !root_or_skip("pcap_filter_one_flow") {
        return;
    }
    let lab = pair();
    let cli = lab.ns("cli").name.clone();
    let srv = lab.ns("srv").clone();
    // A listener for the traced flow; nothing on the other port.
    let sock = traffic::udp_socket(&srv.name, "0.0.0.0:5301".parse().unwrap()).unwrap();
    let r = start(&[
        "trace",
        "udp and dst port 5301",
        "--netns",
        &cli,
        "-o",
        "json",
        "--count",
        "5",
        "--duration",
        "20",
    ]);
    let other = {
        let cli = cli.clone();
        std::thread::spawn(move || {
            let dst: SocketAddr = "198.18.0.2:5302".parse().unwrap();
            traffic::udp_send(&cli, dst, 5, b"other flow").unwrap();
        })
    };
    send(&lab, "cli", "198.18.0.2:5301", 5);
    other.join().unwrap();
    let (st, out, err) = r.finish();
    drop(sock);
    assert!(st.success(), "{err:?}");
    let p = packets(&out);
    assert_eq!(p.len(), 5, "{out}");
    for (id, (steps, fate)) in &p {
        assert!(steps.len() >= 3, "packet {id}: {steps:?}");
        for s in steps {
            let f = &s["flow"];
            if f["l3"] == "ipv4" {
                assert_eq!(f["dport"], 5301, "packet {id} step {s}");
                assert_eq!(f["src"], "198.18.0.1");
                assert_eq!(f["dst"], "198.18.0.2");
            }
        }
        // It crossed the veth: seen in both namespaces.
        assert!(steps.iter().any(|s| s["netns"] == srv.inode), "{steps:?}");
        assert_eq!(fate["fate"], "delivered", "{fate}");
        assert_eq!(fate["socket"]["port"], 5301);
        assert_eq!(
            fate["pid"],
            std::process::id(),
            "owner of the socket: {fate}"
        );
    }
    let all = json_lines(&out);
    let s = of_type(&all, "summary");
    assert_eq!(s.len(), 1);
    assert!(s[0]["lost"].is_u64());
}

#[test]
fn invalid_expression_is_one_line_naming_the_problem() {
    let out = run(&["trace", "udp", "prot", "53"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("bad filter expression 'udp prot 53'"),
        "{err}"
    );
    assert!(lines[0].contains("syntax error"), "{err}");
}

#[test]
fn closed_port_fate_is_no_socket_with_the_icmp_answer() {
    if !root_or_skip("closed_port_fate") {
        return;
    }
    let lab = pair();
    let srv = lab.ns("srv").clone();
    let r = start(&[
        "trace",
        "udp port 5300",
        "--netns",
        &lab.ns("cli").name,
        "-o",
        "json",
        "--count",
        "2",
        "--duration",
        "20",
    ]);
    send(&lab, "cli", "198.18.0.2:5300", 2);
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let p = packets(&out);
    assert_eq!(p.len(), 2, "{out}");
    for (steps, fate) in p.values() {
        assert_eq!(fate["fate"], "dropped", "{fate}");
        assert_eq!(fate["reason"], "NO_SOCKET");
        assert_eq!(fate["location"]["symbol"], "__udp4_lib_rcv");
        assert_eq!(fate["netns"], srv.inode);
        assert_eq!(fate["dev"], "eth0");
        assert!(fate["hint"].as_str().is_some_and(|h| !h.is_empty()));
        let hooks: Vec<&str> = steps.iter().map(|s| s["hook"].as_str().unwrap()).collect();
        assert!(hooks.contains(&"net_dev_queue"), "{hooks:?}");
        assert!(hooks.contains(&"netif_receive_skb"), "{hooks:?}");
        let icmp = steps
            .iter()
            .find(|s| s["hook"] == "icmp_send")
            .expect("icmp_send step");
        assert_eq!(icmp["icmp"], "3/3", "port unreachable sent back");
        assert_eq!(*hooks.last().unwrap(), "kfree_skb");
        assert_time_ordered(steps);
    }
    // Then explain's finding for the drops, from live state: nothing is
    // bound to the port in srv.
    let v = json_lines(&out);
    let f = of_type(&v, "finding");
    assert_eq!(f.len(), 1, "{out}");
    assert_eq!(f[0]["cause"], "no-socket-udp");
    assert_eq!(f[0]["count"], 2);
    assert_eq!(f[0]["netns"], srv.inode);
}

fn dnat_ruleset() -> &'static str {
    "table ip nwtrace_nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 198.18.1.1 udp dport 53 dnat to 198.18.2.2
  }
}
"
}

#[test]
fn dnat_shows_tuple_before_and_after_and_the_fate() {
    if !root_or_skip("dnat_tuple_change") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.routed().unwrap();
    lab.nft("rtr", dnat_ruleset()).unwrap();
    let (cli, rtr, srv) = (
        lab.ns("cli").clone(),
        lab.ns("rtr").clone(),
        lab.ns("srv").clone(),
    );
    let r = start(&[
        "trace",
        "udp port 53",
        "--netns",
        &cli.name,
        "-o",
        "json",
        "--count",
        "2",
        "--duration",
        "20",
    ]);
    // First with a listener (delivered), then without (NO_SOCKET).
    let sock = traffic::udp_socket(&srv.name, "0.0.0.0:53".parse().unwrap()).unwrap();
    send(&lab, "cli", "198.18.1.1:53", 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    close_udp(sock, srv.inode, 53);
    send(&lab, "cli", "198.18.1.1:53", 1);
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let p = packets(&out);
    assert_eq!(p.len(), 2, "{out}");
    let fates: Vec<&str> = p
        .values()
        .map(|(_, f)| f["fate"].as_str().unwrap())
        .collect();
    assert_eq!(fates, ["delivered", "dropped"], "{out}");
    for (steps, fate) in p.values() {
        assert_time_ordered(steps);
        let first = &steps[0];
        assert_eq!(first["netns"], cli.inode);
        assert_eq!(first["flow"]["dst"], "198.18.1.1", "before DNAT");
        let changed: Vec<&Value> = steps
            .iter()
            .filter(|s| s["tuple_changed"] == true)
            .collect();
        assert_eq!(changed.len(), 1, "one rewrite: {steps:?}");
        assert_eq!(changed[0]["flow"]["dst"], "198.18.2.2", "after DNAT");
        assert_eq!(changed[0]["flow"]["dport"], 53);
        assert_eq!(changed[0]["netns"], rtr.inode, "rewritten on the router");
        assert!(steps.iter().any(|s| s["netns"] == srv.inode), "reached srv");
        assert_eq!(fate["netns"], srv.inode);
    }
    let dropped = &p.values().nth(1).unwrap().1;
    assert_eq!(dropped["reason"], "NO_SOCKET");
    assert_eq!(dropped["location"]["symbol"], "__udp4_lib_rcv");
}

#[test]
fn pcapng_opens_in_tshark_with_comments() {
    if !root_or_skip("pcapng_tshark") {
        return;
    }
    let lab = pair();
    let dir = std::env::temp_dir().join(format!("netwhy-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.pcapng");
    let r = start(&[
        "trace",
        "udp port 5300",
        "--netns",
        &lab.ns("cli").name,
        "--count",
        "1",
        "--duration",
        "20",
        "--pcapng",
        file.to_str().unwrap(),
    ]);
    send(&lab, "cli", "198.18.0.2:5300", 1);
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    assert!(out.contains("fate: dropped NO_SOCKET"), "{out}");
    let t = Command::new("tshark")
        .args([
            "-r",
            file.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.comment",
            "-e",
            "udp.dstport",
        ])
        .output()
        .expect("tshark (apt install tshark)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let text = String::from_utf8_lossy(&t.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    assert!(
        lines.iter().all(|l| l.ends_with("\t5300")),
        "tshark decodes the UDP header: {text}"
    );
    assert!(
        lines[0].contains("packet 1 step 1/") && lines[0].contains("net_dev_queue"),
        "{text}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.contains("kfree_skb") && last.contains("fate=dropped reason=NO_SOCKET"),
        "{text}"
    );
}

/// `-w -` streams pcap-ng to stdout like tcpdump (`| wireshark -k -i -`):
/// stdout is nothing but pcap-ng that tshark reads from a pipe, the report
/// goes to stderr, and no file named "-" appears. `-c` and `-i` are
/// tcpdump's `--count` and `--dev`.
#[test]
fn pcapng_dash_streams_to_stdout_with_tcpdump_flags() {
    if !root_or_skip("pcapng_dash") {
        return;
    }
    let lab = pair();
    let dir = std::env::temp_dir().join(format!("netwhy-dash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "cd {} && \"$0\" \"$@\" | tshark -r - -T fields -e frame.comment -e udp.dstport",
        dir.display()
    );
    let r = start_wrapped(
        &["sh", "-c", &script],
        &[
            "trace",
            "udp port 5300",
            "--netns",
            &lab.ns("cli").name,
            "-i",
            "eth0",
            "-c",
            "1",
            "--duration",
            "20",
            "-w",
            "-",
        ],
    );
    send(&lab, "cli", "198.18.0.2:5300", 2);
    let (st, out, err) = r.finish();
    let stray = dir.join("-").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(st.success(), "{err:?}");
    assert!(!stray, "a file named '-' was written");
    let err = err.join("\n");
    assert!(
        err.contains("1 packets in"),
        "the summary goes to stderr: {err}"
    );
    assert!(
        !err.contains("packet 1 "),
        "no packet blocks anywhere: {err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 3, "tshark read the stream: {out}");
    assert!(lines.iter().all(|l| l.ends_with("\t5300")), "{out}");
    assert!(
        lines.iter().all(|l| l.contains("packet 1 step")),
        "-c 1: one packet: {out}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .contains("fate=dropped reason=NO_SOCKET"),
        "{out}"
    );
}

const BIG: [u8; 100] = [b'x'; 100];

/// One run per expression over the same mixed traffic: the in-kernel
/// classic BPF interpreter must select exactly the packets tcpdump's
/// semantics select (counts per destination port).
#[test]
fn in_kernel_filter_selects_what_tcpdump_would() {
    if !root_or_skip("in_kernel_filter") {
        return;
    }
    let lab = pair();
    let cli = lab.ns("cli").name.clone();
    let traffic = |lab: &Lab| {
        send(lab, "cli", "198.18.0.2:5301", 2); // 12-byte payload
        traffic::udp_send(&cli, "198.18.0.2:5302".parse().unwrap(), 2, &BIG).unwrap();
        traffic::udp_send(&cli, "198.18.0.2:5303".parse().unwrap(), 2, b"nw-marked").unwrap();
        traffic::udp_send(&cli, "[fd00:18::2]:5305".parse().unwrap(), 1, b"v6").unwrap();
        let dst = "198.18.0.2:5304".parse().unwrap();
        let c = traffic::tcp_connect(&cli, dst, std::time::Duration::from_secs(2)).unwrap();
        assert!(matches!(c, traffic::Connect::Refused));
    };
    // (expression, expected packets per destination port)
    let cases: &[(&str, &[(u64, usize)])] = &[
        ("udp dst port 5302", &[(5302, 2)]),
        ("udp and greater 100", &[(5302, 2)]),
        ("udp[8:2] = 0x6e77", &[(5303, 2)]),
        ("tcp[tcpflags] & tcp-syn != 0", &[(5304, 1)]),
        (
            "udp and not (port 5301 or port 5303)",
            &[(5302, 2), (5305, 1)],
        ),
        ("ip6 and udp", &[(5305, 1)]),
        (
            "ip[6:2] & 0x1fff = 0 and udp[2:2] > 5301 and udp[2:2] < 5303",
            &[(5302, 2)],
        ),
    ];
    for (expr, want) in cases {
        let r = start(&[
            "trace",
            expr,
            "--netns",
            &cli,
            "-o",
            "json",
            "--duration",
            "2",
        ]);
        traffic(&lab);
        let (st, out, err) = r.finish();
        assert!(st.success(), "{expr}: {err:?}");
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        for (steps, _) in packets(&out).values() {
            let port = steps[0]["flow"]["dport"].as_u64().unwrap_or(0);
            *got.entry(port).or_default() += 1;
        }
        let want: BTreeMap<u64, usize> = want.iter().copied().collect();
        assert_eq!(got, want, "{expr}: {out}");
    }
}

#[test]
fn sigterm_exits_zero_with_summary() {
    if !root_or_skip("trace_sigterm") {
        return;
    }
    let r = start(&["trace", "udp port 1"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    r.signal(libc::SIGTERM);
    let (st, _, err) = r.finish();
    assert!(st.success(), "{st:?} {err:?}");
    let last = err.last().unwrap();
    assert!(
        last.contains("packets in") && last.contains("lost: 0"),
        "{err:?}"
    );
}

/// A ring buffer too small for a burst: the kernel counts what it could not
/// queue, and every step it did queue is printed (steps + lost = emitted).
#[test]
fn lost_steps_are_counted_never_silent() {
    if !root_or_skip("trace_lost") {
        return;
    }
    let lab = pair();
    let r = start(&[
        "trace",
        "udp port 5300",
        "--netns",
        &lab.ns("cli").name,
        "-o",
        "json",
        "--ring-kib",
        "4",
        "--duration",
        "2",
    ]);
    send(&lab, "cli", "198.18.0.2:5300", 300);
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let v = json_lines(&out);
    let s = of_type(&v, "summary")[0];
    let printed = of_type(&v, "step").len() as u64;
    assert!(s["lost"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["steps"].as_u64().unwrap(), printed, "{s}");
    assert_eq!(s["matched"], 300, "{s}");
}
