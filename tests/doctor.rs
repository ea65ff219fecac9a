//! `netwhy doctor` against the real kernel: one namespace per planted
//! trap, each must be reported with exactly its check id, the right
//! subject and exit code; a clean pair reports nothing (root; skipped
//! otherwise unless CI).
mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `netwhy doctor ARGS -o json`: (exit code, findings, summary).
fn doctor(args: &[&str]) -> (i32, Vec<Value>, Value) {
    let mut v = vec!["doctor", "-o", "json"];
    v.extend_from_slice(args);
    let out = run(&v);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&stdout);
    let findings: Vec<Value> = of_type(&lines, "doctor_finding")
        .into_iter()
        .cloned()
        .collect();
    let summary = of_type(&lines, "doctor_summary")
        .first()
        .map(|s| (*s).clone())
        .unwrap_or_else(|| panic!("no summary; stdout {stdout} stderr {stderr}"));
    (out.status.code().expect("exit code"), findings, summary)
}

/// The findings' check ids, for assertion messages and equality.
fn checks(f: &[Value]) -> Vec<String> {
    f.iter()
        .map(|x| format!("{} {}", x["check"], x["subject"]))
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn socket_rcvbuf_near_int_max() {
    if !root_or_skip("socket_rcvbuf_near_int_max") {
        return;
    }
    // net.core.rmem_default is host-global (read-only in a child netns),
    // so the trap is planted as one socket whose buffer is forced to the
    // maximum; the sysctl path is unit-tested on a snapshot fixture.
    let mut lab = Lab::new().expect("lab");
    let ns = lab.add_ns("srv").expect("netns");
    let sock = traffic::in_netns(&ns.name, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:5399")
            .map_err(|e| netwhy::lab::LabError::Traffic(e.to_string()))?;
        let v: libc::c_int = i32::MAX;
        // SAFETY: valid socket fd and a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
        Ok(s)
    })
    .expect("plant socket");
    let (code, f, sum) = doctor(&["--netns", &ns.name, "--window", "0"]);
    assert_eq!(
        checks(&f),
        [r#""socket-rcvbuf-int-overflow" "udp 0.0.0.0:5399""#]
    );
    assert_eq!(f[0]["severity"], "warning");
    assert_eq!(f[0]["netns"], ns.inode);
    assert_eq!(f[0]["netns_name"], ns.name.as_str());
    let ev = f[0]["evidence"].to_string();
    assert!(ev.contains("sk_rcvbuf = 2147483646"), "{ev}");
    assert_eq!((code, sum["exit_code"].as_i64()), (2, Some(2)));
    close_udp(sock, ns.inode, 5399);
    let (code, f, _) = doctor(&["--netns", &ns.name, "--window", "0"]);
    assert_eq!((code, f.len()), (0, 0), "{f:?}");
}

#[test]
fn strict_rp_filter_with_asymmetric_route() {
    if !root_or_skip("strict_rp_filter_with_asymmetric_route") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.add_ns("host").expect("netns");
    lab.add_ns("peer").expect("netns");
    lab.veth("host", "eth0", "peer", "eth0").expect("veth");
    lab.veth("host", "eth1", "peer", "eth1").expect("veth");
    lab.ip("host", &["addr", "add", "198.18.0.2/24", "dev", "eth0"])
        .unwrap();
    lab.ip("host", &["addr", "add", "198.18.1.2/24", "dev", "eth1"])
        .unwrap();
    // Part of eth0's subnet is routed back out of eth1.
    lab.ip(
        "host",
        &[
            "route",
            "add",
            "198.18.0.128/25",
            "via",
            "198.18.1.1",
            "dev",
            "eth1",
        ],
    )
    .unwrap();
    lab.sysctl("host", "net.ipv4.conf.all.rp_filter", "0")
        .unwrap();
    lab.sysctl("host", "net.ipv4.conf.eth0.rp_filter", "1")
        .unwrap();
    let name = lab.ns("host").name.clone();
    let (code, f, _) = doctor(&["--netns", &name, "--window", "0"]);
    assert_eq!(checks(&f), [r#""rp-filter-asymmetric" "eth0""#]);
    let ev = f[0]["evidence"].to_string();
    assert!(
        ev.contains("198.18.0.128/25 via 198.18.1.1 dev eth1"),
        "{ev}"
    );
    assert!(f[0]["fix"].to_string().contains(&format!(
        "ip netns exec {name} sysctl -w net.ipv4.conf.eth0.rp_filter=2"
    )));
    assert_eq!(code, 2);
    // Loose mode is the fix: nothing left to report.
    lab.sysctl("host", "net.ipv4.conf.eth0.rp_filter", "2")
        .unwrap();
    let (code, f, _) = doctor(&["--netns", &name, "--window", "0"]);
    assert_eq!((code, checks(&f)), (0, Vec::<String>::new()));
}

#[test]
fn dadfailed_ipv6_address() {
    if !root_or_skip("dadfailed_ipv6_address") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.add_ns("a").expect("netns");
    lab.add_ns("b").expect("netns");
    lab.veth("a", "eth0", "b", "eth0").expect("veth");
    for r in ["a", "b"] {
        lab.sysctl(r, "net.ipv6.conf.eth0.accept_dad", "1").unwrap();
    }
    let addrs = |r: &str| {
        lab.exec(r, &["ip", "-6", "addr", "show", "dev", "eth0"])
            .unwrap()
    };
    // a owns the address first; then b claims it and loses DAD.
    lab.ip("a", &["addr", "add", "fd00:77::5/64", "dev", "eth0"])
        .unwrap();
    wait_until(
        "a's address to leave tentative",
        Duration::from_secs(10),
        || {
            let s = addrs("a");
            s.contains("fd00:77::5") && !s.contains("tentative")
        },
    );
    lab.ip("b", &["addr", "add", "fd00:77::5/64", "dev", "eth0"])
        .unwrap();
    wait_until(
        "b's address to go dadfailed",
        Duration::from_secs(10),
        || addrs("b").contains("dadfailed"),
    );
    let b = lab.ns("b").clone();
    let (code, f, sum) = doctor(&["--netns", &b.name, "--window", "0"]);
    assert_eq!(
        checks(&f),
        [r#""ipv6-dad-failed" "fd00:77::5/64 dev eth0""#]
    );
    assert_eq!(f[0]["severity"], "critical");
    assert!(f[0]["fix"]
        .to_string()
        .contains("sysctl -w net.ipv6.conf.eth0.accept_dad=0"));
    assert_eq!((code, sum["worst"].as_str()), (3, Some("critical")));
    // The owner is healthy.
    let (code, f, _) = doctor(&["--netns", &lab.ns("a").name, "--window", "0"]);
    assert_eq!((code, checks(&f)), (0, Vec::<String>::new()));
    // A scan of everything (host and all namespaces) finds it too.
    let (_, all, sum) = doctor(&["--window", "0"]);
    assert!(sum["namespaces"].as_u64().unwrap() >= 3, "{sum}");
    assert!(
        all.iter()
            .any(|x| x["netns"] == b.inode && x["check"] == "ipv6-dad-failed"),
        "{:?}",
        checks(&all)
    );
}

/// The handle `nft -a` shows for the first rule of `chain` containing `word`.
fn handle_of(lab: &Lab, role: &str, chain: &[&str], word: &str) -> u64 {
    let mut cmd = vec!["nft", "-a", "list", "chain"];
    cmd.extend_from_slice(chain);
    let out = lab.exec(role, &cmd).expect("nft -a list chain");
    let line = out
        .lines()
        .find(|l| l.contains(word) && l.contains("# handle"))
        .unwrap_or_else(|| panic!("no '{word}' rule in {out}"));
    line.rsplit("# handle ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn catch_all_reject_before_accept() {
    if !root_or_skip("catch_all_reject_before_accept") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.add_ns("fw").expect("netns");
    lab.nft(
        "fw",
        "table inet nwdoc {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 22 accept
    counter reject with icmpx type port-unreachable
    tcp dport 443 accept comment \"never reached\"
  }
}
",
    )
    .expect("nft");
    let handle = handle_of(&lab, "fw", &["inet", "nwdoc", "input"], "reject");
    let name = lab.ns("fw").name.clone();
    let (code, f, _) = doctor(&["--netns", &name, "--window", "0"]);
    assert_eq!(
        checks(&f),
        [format!(
            r#""firewall-catch-all" "inet nwdoc input handle {handle}""#
        )]
    );
    let ev = f[0]["evidence"].to_string();
    assert!(ev.contains("never reached"), "{ev}");
    assert!(f[0]["fix"].to_string().contains(&format!(
        "ip netns exec {name} nft delete rule inet nwdoc input handle {handle}"
    )));
    assert_eq!(code, 2);
}

#[test]
fn iptables_nft_catch_all_reject() {
    if !root_or_skip("iptables_nft_catch_all_reject") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    lab.add_ns("fw").expect("netns");
    lab.iptables_restore(
        "fw",
        "iptables-nft-restore",
        "*filter
:INPUT ACCEPT [0:0]
:NWDOC_FWI - [0:0]
-A INPUT -j NWDOC_FWI
-A NWDOC_FWI -p udp --dport 53 -j ACCEPT
-A NWDOC_FWI -j REJECT --reject-with icmp-port-unreachable
-A NWDOC_FWI -p tcp --dport 22 -j ACCEPT
COMMIT
",
    )
    .expect("iptables-nft-restore");
    let handle = handle_of(&lab, "fw", &["ip", "filter", "NWDOC_FWI"], "reject");
    let (code, f, _) = doctor(&["--netns", &lab.ns("fw").name, "--window", "0"]);
    assert_eq!(
        checks(&f),
        [format!(
            r#""firewall-catch-all" "ip filter NWDOC_FWI handle {handle}""#
        )]
    );
    assert!(f[0]["fix"].to_string().contains("iptables -D NWDOC_FWI 2"));
    assert_eq!(code, 2);
}

#[test]
fn rx_drops_rising_during_the_window() {
    if !root_or_skip("rx_drops_rising_during_the_window") {
        return;
    }
    let lab = pair();
    // A smaller MTU on srv's end: veth refuses the big frames on receive
    // and counts them in srv eth0's rx_dropped (__dev_forward_skb2).
    lab.ip("srv", &["link", "set", "eth0", "mtu", "1280"])
        .unwrap();
    let cli = lab.ns("cli").name.clone();
    let sender = std::thread::spawn(move || {
        traffic::in_netns(&cli, || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                let _ = s.send_to(&[0u8; 1400], "198.18.0.2:5398");
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let (code, f, _) = doctor(&["--netns", &lab.ns("srv").name, "--window", "1"]);
    sender.join().unwrap().expect("sender");
    assert_eq!(checks(&f), [r#""rx-drops-rising" "eth0""#]);
    assert!(f[0]["evidence"][0]
        .as_str()
        .unwrap()
        .starts_with("rx_dropped on eth0 +"));
    assert_eq!(code, 2);
    // With the window disabled the rising checks do not run.
    let (code, f, _) = doctor(&["--netns", &lab.ns("srv").name, "--window", "0"]);
    assert_eq!((code, f.len()), (0, 0));
}

#[test]
fn listener_with_a_full_accept_queue() {
    if !root_or_skip("listener_with_a_full_accept_queue") {
        return;
    }
    let mut lab = Lab::new().expect("lab");
    let ns = lab.add_ns("srv").expect("netns");
    // listen(fd, 0) and three clients that are never accepted: the first
    // fills the queue, the others' SYNs overflow it (and are retried).
    let held = traffic::in_netns(&ns.name, || {
        let l = std::net::TcpListener::bind("127.0.0.1:5397").unwrap();
        // SAFETY: valid listening socket; shrinks its backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let mut clients = Vec::new();
        for _ in 0..3 {
            // SAFETY: plain socket(2); owned right after.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
            assert!(fd >= 0);
            // SAFETY: fd was just returned by socket(2).
            let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 5397u16.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: valid fd and sockaddr_in; non-blocking, EINPROGRESS is fine.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            clients.push(fd);
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok((l, clients))
    })
    .expect("plant listener");
    // The window covers the clients' first SYN retransmit (1 s).
    let (code, f, _) = doctor(&["--netns", &ns.name, "--window", "1.5"]);
    assert_eq!(checks(&f), [r#""listen-overflow" "tcp 127.0.0.1:5397""#]);
    let ev = f[0]["evidence"].to_string();
    assert!(ev.contains("accept queue 1 of backlog 0"), "{ev}");
    assert!(ev.contains("TcpExt:ListenOverflows +"), "{ev}");
    assert_eq!(code, 2);
    drop(held);
}

#[test]
fn clean_pair_reports_nothing() {
    if !root_or_skip("clean_pair_reports_nothing") {
        return;
    }
    let lab = pair();
    // Default window (1 s): the rising checks run too.
    let (code, f, sum) = doctor(&[
        "--netns",
        &lab.ns("cli").name,
        "--netns",
        &lab.ns("srv").name,
    ]);
    assert_eq!(checks(&f), Vec::<String>::new());
    assert_eq!(sum["namespaces"], 2);
    assert_eq!(sum["findings"], 0);
    assert_eq!(code, 0);
    // One namespace named twice (name and inode) is scanned once.
    let srv = lab.ns("srv").clone();
    let ino = srv.inode.to_string();
    let (_, _, sum) = doctor(&["--netns", &srv.name, "--netns", &ino, "--window", "0"]);
    assert_eq!(sum["namespaces"], 1);
    // Text output says so too.
    let out = run(&["doctor", "--netns", &lab.ns("srv").name, "--window", "0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 finding(s) in 1 namespace(s)"), "{text}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unknown_netns_is_a_one_line_error() {
    let out = run(&["doctor", "--netns", "no-such-netns-doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr_of(&out);
    assert!(err.contains("bad --netns 'no-such-netns-doctor'"), "{err}");
    assert!(err.contains("ip netns list"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
