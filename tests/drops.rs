//! `netwhy drops` against the real kernel, in namespaces the tests create.
mod common;

use std::time::Duration;

use common::*;

const UDP_PORT: u16 = 5300;

fn send_udp(lab: &Lab, role: &str, dst: &str, n: u32) {
    traffic::udp_send(&lab.ns(role).name, dst.parse().unwrap(), n, b"netwhy-test").unwrap();
}

#[test]
fn events_json_names_reason_location_flow_netns_device() {
    if !root_or_skip("events_json") {
        return;
    }
    let lab = pair();
    let srv = lab.ns("srv").clone();
    let r = start(&[
        "drops",
        "--events",
        "-o",
        "json",
        "--netns",
        &srv.name,
        "--proto",
        "udp",
        "--count",
        "3",
        "--duration",
        "15",
    ]);
    send_udp(&lab, "cli", "198.18.0.2:5300", 3);
    let (st, out, err) = r.finish();
    assert!(st.success(), "exit {st:?}, stderr {err:?}");
    let v = json_lines(&out);
    let drops = of_type(&v, "drop");
    assert_eq!(drops.len(), 3, "{out}");
    for d in drops {
        assert_eq!(d["v"], 1);
        assert_eq!(d["reason"], "NO_SOCKET");
        assert_eq!(d["location"]["symbol"], "__udp4_lib_rcv");
        assert!(d["location"]["offset"].as_u64().unwrap() > 0);
        assert_eq!(d["netns"], srv.inode);
        assert_eq!(d["netns_name"], srv.name.as_str());
        assert_eq!(d["dev"], "eth0");
        assert!(d["ifindex"].as_u64().unwrap() > 1);
        assert_eq!(d["flow"]["l3"], "ipv4");
        assert_eq!(d["flow"]["proto"], "udp");
        assert_eq!(d["flow"]["src"], "198.18.0.1");
        assert_eq!(d["flow"]["dst"], "198.18.0.2");
        assert_eq!(d["flow"]["dport"], UDP_PORT);
        assert!(d["flow"]["sport"].as_u64().unwrap() > 0);
        assert_eq!(
            d["len"],
            8 + 11,
            "skb->len at the UDP layer: header + payload"
        );
        assert!(d["time_ns"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    }
    let s = of_type(&v, "summary");
    assert_eq!(s.len(), 1);
    assert!(s[0]["lost"].is_u64(), "lost counter always present");
    assert_eq!(s[0]["events"], 3);
}

#[test]
fn aggregate_counts_in_kernel() {
    if !root_or_skip("aggregate") {
        return;
    }
    let lab = pair();
    let srv = lab.ns("srv").clone();
    let r = start(&[
        "drops",
        "-o",
        "json",
        "--netns",
        &srv.inode.to_string(),
        "--duration",
        "2",
    ]);
    send_udp(&lab, "cli", "198.18.0.2:5300", 20);
    let (st, out, err) = r.finish();
    assert!(st.success(), "{err:?}");
    let v = json_lines(&out);
    let groups = of_type(&v, "group");
    let g = groups
        .iter()
        .find(|g| g["reason"] == "NO_SOCKET" && g["location"]["symbol"] == "__udp4_lib_rcv")
        .unwrap_or_else(|| panic!("no NO_SOCKET group in {out}"));
    assert_eq!(g["count"], 20);
    assert_eq!(g["netns"], srv.inode);
    assert_eq!(g["dev"], "eth0");
    let s = of_type(&v, "summary")[0];
    assert!(s["drops"].as_u64().unwrap() >= 20);
    assert!(s["lost"].is_u64() && s["hidden"].is_u64());
}

/// Run one capture with `filter` while both a matching and a non-matching
/// drop happen; returns the destination ports of what was reported.
fn capture_ports(lab: &Lab, filter: &[&str], traffic: impl FnOnce(&Lab)) -> Vec<u64> {
    let srv = lab.ns("srv");
    let mut args = vec![
        "drops",
        "--events",
        "-o",
        "json",
        "--duration",
        "2",
        "--netns",
        &srv.name,
    ];
    args.extend_from_slice(filter);
    let r = start(&args);
    traffic(lab);
    let (st, out, err) = r.finish();
    assert!(st.success(), "{filter:?}: {err:?}");
    let mut ports: Vec<u64> = of_type(&json_lines(&out), "drop")
        .iter()
        .filter_map(|d| d["flow"]["dport"].as_u64())
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

#[test]
fn filters_include_and_exclude() {
    if !root_or_skip("filters") {
        return;
    }
    let lab = pair();
    lab.ip("srv", &["addr", "add", "198.18.0.3/24", "dev", "eth0"])
        .unwrap();
    let udp_a = |lab: &Lab| send_udp(lab, "cli", "198.18.0.2:5301", 2);
    let udp_b = |lab: &Lab| send_udp(lab, "cli", "198.18.0.3:5302", 2);
    let tcp = |lab: &Lab| {
        let _ = traffic::tcp_connect(
            &lab.ns("cli").name,
            "198.18.0.2:5303".parse().unwrap(),
            Duration::from_secs(1),
        );
    };
    let lo = |lab: &Lab| send_udp(lab, "srv", "127.0.0.1:5304", 2);
    let marked = |lab: &Lab| {
        traffic::udp_send_marked(
            &lab.ns("srv").name,
            "127.0.0.1:5305".parse().unwrap(),
            2,
            b"m",
            0x42,
        )
        .unwrap()
    };
    let all = |lab: &Lab| {
        udp_a(lab);
        udp_b(lab);
        tcp(lab);
        lo(lab);
        marked(lab);
    };
    assert_eq!(capture_ports(&lab, &["--port", "5301"], all), [5301]);
    assert_eq!(capture_ports(&lab, &["--host", "198.18.0.3"], all), [5302]);
    assert_eq!(capture_ports(&lab, &["--proto", "tcp"], all), [5303]);
    assert_eq!(capture_ports(&lab, &["--dev", "lo"], all), [5304, 5305]);
    assert_eq!(
        capture_ports(&lab, &["--dev", "eth0", "--proto", "udp"], all),
        [5301, 5302]
    );
    assert_eq!(capture_ports(&lab, &["--mark", "0x42"], all), [5305]);
    assert_eq!(
        capture_ports(&lab, &["--mark", "0x40/0xf0", "--port", "5305"], all),
        [5305]
    );
    assert_eq!(
        capture_ports(&lab, &["--reason", "NO_SOCKET", "--port", "5303"], all),
        [5303]
    );
    assert_eq!(
        capture_ports(&lab, &["--reason", "!NO_SOCKET"], all),
        Vec::<u64>::new()
    );
    assert_eq!(
        capture_ports(&lab, &["--reason", "NETFILTER_DROP"], all),
        Vec::<u64>::new()
    );
    // The netns filter excludes the client's namespace: nothing drops there.
    let cli_only = {
        let r = start(&[
            "drops",
            "--events",
            "-o",
            "json",
            "--duration",
            "2",
            "--netns",
            &lab.ns("cli").name,
        ]);
        all(&lab);
        json_lines(&r.finish().1)
    };
    assert!(of_type(&cli_only, "drop").is_empty());
    // Path form of --netns: our own namespace is not the lab's, so nothing.
    let r = start(&[
        "drops",
        "--events",
        "-o",
        "json",
        "--duration",
        "1",
        "--netns",
        "/proc/self/ns/net",
        "--port",
        "5301",
    ]);
    udp_a(&lab);
    assert!(of_type(&json_lines(&r.finish().1), "drop").is_empty());
}

#[test]
fn classic_tracepoint_hook_reports_the_same_drop() {
    if !root_or_skip("tracepoint hook") {
        return;
    }
    let lab = pair();
    let srv = lab.ns("srv").clone();
    let r = start(&[
        "drops",
        "--events",
        "-o",
        "json",
        "--hook",
        "tracepoint",
        "--netns",
        &srv.name,
        "--count",
        "2",
        "--duration",
        "15",
    ]);
    assert!(r
        .stderr_lines
        .iter()
        .any(|l| l.contains("tracepoint/kfree_skb")));
    send_udp(&lab, "cli", "198.18.0.2:5300", 2);
    let (st, out, _) = r.finish();
    assert!(st.success());
    let v = json_lines(&out);
    let d = of_type(&v, "drop");
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["reason"], "NO_SOCKET");
    assert_eq!(d[0]["location"]["symbol"], "__udp4_lib_rcv");
    // The classic tracepoint knows the context: this was a softirq.
    assert_ne!(d[0]["task"]["context"], "unknown");
}

#[test]
fn lost_events_are_counted_never_silent() {
    if !root_or_skip("lost events") {
        return;
    }
    let lab = pair();
    let srv = lab.ns("srv").clone();
    // A 4 KiB ring holds ~17 events; a burst overflows it between reads.
    let r = start(&[
        "drops",
        "--events",
        "-o",
        "json",
        "--ring-kib",
        "4",
        "--netns",
        &srv.name,
        "--duration",
        "3",
    ]);
    let cli = lab.ns("cli").name.clone();
    traffic::in_netns(&cli, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..20000 {
            let _ = s.send_to(b"x", "198.18.0.2:5300");
        }
        Ok(())
    })
    .unwrap();
    let (st, out, _) = r.finish();
    assert!(st.success());
    let v = json_lines(&out);
    let delivered = of_type(&v, "drop").len() as u64;
    let s = of_type(&v, "summary")[0];
    let lost = s["lost"].as_u64().unwrap();
    assert!(lost > 0, "a 4 KiB ring must overflow on 20000 drops");
    assert_eq!(s["events"].as_u64().unwrap(), delivered);
    assert_eq!(
        s["drops"].as_u64().unwrap(),
        delivered + lost,
        "every drop is delivered or counted lost"
    );
}

#[test]
fn ctrl_c_and_sigterm_exit_zero_with_summary_and_detach() {
    if !root_or_skip("signals") {
        return;
    }
    let table: &[&str] = &["drops", "--duration", "30"];
    let events: &[&str] = &["drops", "--events", "--duration", "30"];
    for (sig, args) in [
        (libc::SIGINT, table),
        (libc::SIGTERM, table),
        (libc::SIGINT, events),
        (libc::SIGTERM, events),
    ] {
        let r = start(args);
        let ours = prog_ids_of(r.child.id());
        assert_eq!(ours.len(), 1, "one program attached while running");
        assert!(loaded_prog_ids().contains(&ours[0]));
        r.signal(sig);
        let (st, out, err) = r.finish();
        assert!(st.success(), "signal {sig}: {st:?} {err:?}");
        let summary_on = if args.contains(&"--events") {
            err.join("\n")
        } else {
            out
        };
        assert!(
            summary_on.contains("lost: "),
            "final summary printed: {summary_on}"
        );
        // Program unloads are deferred (RCU): allow a moment.
        let mut gone = false;
        for _ in 0..50 {
            if !loaded_prog_ids().contains(&ours[0]) {
                gone = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(gone, "program {} still loaded after exit", ours[0]);
    }
}

#[test]
fn non_root_gets_one_line_error() {
    if !root_or_skip("non-root") {
        return;
    }
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin(),
            "drops",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("root") && err.contains("sudo"), "{err}");
}

#[test]
fn bad_filters_fail_with_one_line() {
    for (args, needle) in [
        (
            vec!["drops", "--reason", "NO_SUCH_REASON"],
            "unknown drop reason",
        ),
        (vec!["drops", "--port", "70000"], "--port"),
        (vec!["drops", "--netns", "no-such-netns-xyz"], "--netns"),
        (vec!["drops", "--proto", "bogus"], "--proto"),
        (vec!["drops", "--events", "--ring-kib", "3"], "--ring-kib"),
    ] {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = common::stderr_of(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// The live table on a terminal (a pty from script(1)) runs in the
/// alternate screen. Ctrl-C leaves it and prints the final table; a second
/// signal exits at once with 130 and still gives the screen back (the
/// handler writes the restore bytes, as no destructor runs).
#[test]
fn live_table_gives_the_terminal_back_on_one_or_two_signals() {
    if !root_or_skip("live_table_terminal") {
        return;
    }
    for (second, want) in [(None, 0), (Some(libc::SIGTERM), 130)] {
        let cmd = format!("exec {} drops --interval 0.2 --all", bin());
        let child = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux");
        // netwhy is script's child on the pty.
        let nw = (0..100)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                let kids = std::fs::read_to_string(format!(
                    "/proc/{}/task/{}/children",
                    child.id(),
                    child.id()
                ))
                .ok()?;
                kids.split_whitespace().next()?.parse::<i32>().ok()
            })
            .expect("netwhy started under script");
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: plain kill(2) on a process we started.
        unsafe {
            libc::kill(nw, libc::SIGINT);
            if let Some(s) = second {
                libc::kill(nw, s);
            }
        }
        let out = child.wait_with_output().expect("script exits");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(want), "{second:?}: {text:?}");
        let entered = text
            .find("\x1b[?1049h")
            .expect("entered the alternate screen");
        let left = text
            .rfind("\x1b[?1049l")
            .expect("left the alternate screen");
        assert!(left > entered, "{text:?}");
        assert!(
            text[entered..].contains("RATE/s"),
            "drew the table: {text:?}"
        );
        if second.is_none() {
            assert!(
                text[left..].contains("drops in"),
                "the final table lands on the shell's screen: {text:?}"
            );
        }
    }
}
