//! Issue #4's acceptance: for every lab scenario, `netwhy explain` (the real
//! binary, watching the scenario's namespaces while the scenario's own
//! trigger runs) names the scenario's diagnosis in its first finding, with
//! the stable subject (port, sysctl, rule handle...) the cause is about,
//! within 10 s; and leaves no nft trace table and no BPF program behind.
mod common;

use std::time::{Duration, Instant};

use common::*;
use netwhy::lab::scenarios::{Scenario, ALL};
use netwhy::state::tcbpf::Hook::{Ingress, Xdp};
use serde_json::Value;

/// What the first finding must be about, beyond the cause id.
fn check_subject(name: &str, f: &Value, lab: &Lab) {
    let subjects = f["subjects"].as_array().cloned().unwrap_or_default();
    let has = |pred: &dyn Fn(&Value) -> bool| subjects.iter().any(pred);
    let ok = match name {
        "udp-closed-port" => has(&|s| s["kind"] == "port" && s["port"] == 5300),
        "tcp-closed-port" => has(&|s| s["kind"] == "port" && s["port"] == 8080),
        "nft-forward-drop" | "nft-reject" | "iptables-nft-reject" | "firewall-checksum" => {
            let (fam, table, chain) = match name {
                "iptables-nft-reject" => (2, "filter", "LIBVIRT_FWI"),
                "firewall-checksum" => (1, "nwlab_filter", "input"),
                _ => (1, "nwlab_filter", "forward"),
            };
            let role = if name == "firewall-checksum" {
                "srv"
            } else {
                "rtr"
            };
            let planted = netwhy::state::nftrace::rules(lab.ns(role).inode, fam, table, chain)
                .expect("dump the planted rules");
            let want: Vec<u64> = planted
                .iter()
                .filter(|r| !matches!(r.action(), netwhy::state::nft_rule::Action::Accept))
                .map(|r| r.handle)
                .collect();
            has(&|s| {
                s["kind"] == "nft_rule"
                    && s["table"] == table
                    && s["chain"] == chain
                    && s["handle"].as_u64().is_some_and(|h| want.contains(&h))
            })
        }
        "nft-bridge-drop"
        | "nft-netdev-ingress-drop"
        | "nft-netdev-egress-drop"
        | "nft-arp-drop" => {
            // (family name, NFPROTO_*, table, chain, role) the scenario plants.
            let (fam, num, table, chain, role) = match name {
                "nft-bridge-drop" => ("bridge", 7, "nwlab_bridge", "forward", "br"),
                "nft-netdev-ingress-drop" => ("netdev", 5, "nwlab_netdev", "ingress", "srv"),
                "nft-netdev-egress-drop" => ("netdev", 5, "nwlab_netdev", "egress", "cli"),
                _ => ("arp", 3, "nwlab_arp", "input", "srv"),
            };
            let planted = netwhy::state::nftrace::rules(lab.ns(role).inode, num, table, chain)
                .expect("dump the planted rules");
            assert_eq!(planted.len(), 1, "{name}: {planted:?}");
            has(&|s| {
                s["kind"] == "nft_rule"
                    && s["family"] == fam
                    && s["table"] == table
                    && s["chain"] == chain
                    && s["handle"] == planted[0].handle
            })
        }
        "ct-invalid-checksum-udp4"
        | "ct-invalid-checksum-tcp4"
        | "ct-invalid-checksum-udp6"
        | "ct-invalid-checksum-tcp6" => {
            let planted =
                netwhy::state::nftrace::rules(lab.ns("srv").inode, 1, "nwlab_filter", "input")
                    .expect("dump the planted rules");
            // The checksum recomputed from the dropped bytes, and conntrack's
            // own invalid statistic, back the diagnosis.
            let ev = f["evidence"].to_string();
            assert!(
                ev.contains("checksum is wrong: it carries 0x"),
                "{name}: {f:#}"
            );
            assert!(ev.contains("conntrack -S: invalid +"), "{name}: {f:#}");
            let fixes = f["fix"].to_string();
            assert!(
                !fixes.contains("delete rule") && !fixes.contains("be_liberal"),
                "{name}: {f:#}"
            );
            has(&|s| {
                s["kind"] == "nft_rule"
                    && s["table"] == "nwlab_filter"
                    && s["chain"] == "input"
                    && s["handle"] == planted[0].handle
            })
        }
        "iptables-legacy-reject" => has(&|s| {
            s["kind"] == "iptables_rule"
                && s["chain"] == "LIBVIRT_FWI"
                && s["index"] == 2
                && s["target"] == "REJECT"
        }),
        "rp-filter-martian" => has(&|s| {
            s["kind"] == "sysctl"
                && s["name"] == "net.ipv4.conf.eth0.rp_filter"
                && s["value"] == "1"
        }),
        "forwarding-disabled" => has(&|s| {
            s["kind"] == "sysctl" && s["name"] == "net.ipv4.ip_forward" && s["value"] == "0"
        }),
        "udp-rcvbuf-full" | "udp-rmem-overflow" => has(&|s| s["kind"] == "socket"),
        "neigh-failed" => has(&|s| s["kind"] == "neighbour" && s["addr"] == "198.18.0.9"),
        "conntrack-nat-mismatch" => {
            has(&|s| s["kind"] == "conntrack") && has(&|s| s["kind"] == "socket")
        }
        "conntrack-lost-dns" => has(&|s| s["kind"] == "socket"),
        "tc-bpf-drop" | "xdp-drop" | "xdp-generic-drop" => {
            // The planted program's id, as the device's hook lists it.
            let hook = if name == "tc-bpf-drop" { Ingress } else { Xdp };
            let id = netwhy::state::tcbpf::on_device(lab.ns("srv").inode, "eth0", hook)
                .expect("list the planted program")
                .first()
                .map(|p| u64::from(p.id));
            id.is_some()
                && has(&|s| {
                    s["kind"] == "bpf_prog"
                        && s["id"].as_u64() == id
                        && s["hook"] == hook.to_string()
                })
        }
        "tcp-accept-queue-full" | "tcp-syncookie-accept-queue-full" => {
            has(&|s| s["kind"] == "socket" && s["local"] == "198.18.0.2:8088")
                && has(&|s| s["kind"] == "sysctl" && s["name"] == "net.core.somaxconn")
        }
        "pmtu-blackhole" | "pmtu-blackhole-router-output" => {
            // The rule that eats the ICMP, as planted on the client's input
            // or the router's output.
            let (role, chain) = if name == "pmtu-blackhole" {
                ("cli", "input")
            } else {
                ("rtr", "output")
            };
            let planted =
                netwhy::state::nftrace::rules(lab.ns(role).inode, 1, "nwlab_filter", chain)
                    .expect("dump the planted rules");
            let want: Vec<u64> = planted.iter().map(|r| r.handle).collect();
            let rule = has(&|s| {
                s["kind"] == "nft_rule"
                    && s["table"] == "nwlab_filter"
                    && s["chain"] == chain
                    && s["handle"].as_u64().is_some_and(|h| want.contains(&h))
            });
            // The chain of evidence: the too-big packet and the ICMP about it.
            let ev = f["evidence"].to_string();
            rule && ev.contains("MTU 1280") && ev.contains("quotes that very packet")
        }
        "udp-emsgsize" => {
            // The sender's socket, the route's MTU and the size it broke.
            let ev = f["evidence"].to_string();
            has(&|s| {
                s["kind"] == "socket"
                    && s["local"]
                        .as_str()
                        .is_some_and(|l| l.starts_with("0.0.0.0:"))
            }) && ev.contains("MTU 1280")
                && ev.contains("1428 bytes")
                && f["fix"][0]
                    .as_str()
                    .is_some_and(|x| x.contains("at most 1252 bytes"))
        }
        "unhandled-ethertype" => has(&|s| {
            s["kind"] == "counter"
                && s["name"] == "dev:eth0:rx_dropped"
                && s["change"].as_u64().is_some_and(|c| c >= 5)
        }),
        "tcp6-syncookie-accept-queue-full" => {
            has(&|s| s["kind"] == "socket" && s["local"] == "[fd00:18::2]:8088")
                && has(&|s| s["kind"] == "sysctl" && s["name"] == "net.core.somaxconn")
        }
        "udp-send-no-route" | "udp-sndbuf-full" => {
            let (counter, min) = if name == "udp-sndbuf-full" {
                ("Udp:SndbufErrors", 5)
            } else {
                ("Ip:OutNoRoutes", 3)
            };
            has(&|s| {
                s["kind"] == "counter"
                    && s["name"] == counter
                    && s["change"].as_u64().is_some_and(|c| c >= min)
            })
        }
        "tcp-bad-flags" => {
            // The flags decoded from the dropped segment, the listener it
            // hit, and the interface that sent it.
            let cli = lab.ns("cli").name.clone();
            has(&|s| {
                s["kind"] == "tcp_segment"
                    && s["flags"] == "FS"
                    && s["dst"] == "198.18.0.2:8089"
                    && s["socket"] == "LISTEN"
            }) && has(&|s| {
                s["kind"] == "sender" && s["netns"] == cli.as_str() && s["dev"] == "eth0"
            })
        }
        "otherhost-wrong-neighbour" => {
            let srv_mac = lab
                .mac("srv", "eth0")
                .expect("srv's MAC")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            let cli = lab.ns("cli").name.clone();
            has(&|s| {
                s["kind"] == "wrong_neighbour"
                    && s["netns"] == cli.as_str()
                    && s["dev"] == "eth0"
                    && s["addr"] == "198.18.0.2"
                    && s["lladdr"] == "02:4e:57:00:00:02"
                    && s["want"] == srv_mac.as_str()
            })
        }
        "bridge-stp-listening" => has(&|s| {
            s["kind"] == "bridge_port"
                && s["bridge"] == "br0"
                && s["port"] == "eth0"
                && s["state"] == "listening"
                && s["forward_delay_ms"] == 30_000
                && s["timer_ms"].as_u64().is_some_and(|t| t > 0 && t <= 30_000)
        }),
        "martian-destination" | "martian-loopback" => {
            let (addr, class) = if name == "martian-loopback" {
                ("127.0.0.53", "127.0.0.0/8")
            } else {
                ("240.0.0.1", "240.0.0.0/4")
            };
            let cli = lab.ns("cli").name.clone();
            has(&|s| s["kind"] == "martian" && s["addr"] == addr && s["class"] == class)
                && has(&|s| s["kind"] == "sender" && s["netns"] == cli.as_str())
                && (name != "martian-loopback"
                    || has(&|s| {
                        s["kind"] == "sysctl"
                            && s["name"] == "net.ipv4.conf.eth0.route_localnet"
                            && s["value"] == "0"
                    }))
        }
        _ => true,
    };
    assert!(ok, "{name}: subject missing from the first finding: {f:#}");
    // Kernel counters of the watched namespaces corroborate the drop.
    let counter = match name {
        "udp-closed-port" => Some("Udp:NoPorts +"),
        "udp-bad-checksum" => Some("Udp:InCsumErrors +"),
        "rp-filter-martian" => Some("TcpExt:IPReversePathFilter +"),
        "no-route" => Some("IpExt:InNoRoutes +"),
        "martian-destination" => Some("Ip:InAddrErrors +"),
        "tcp-accept-queue-full"
        | "tcp-syncookie-accept-queue-full"
        | "tcp6-syncookie-accept-queue-full" => Some("TcpExt:ListenOverflows +"),
        _ => None,
    };
    if let Some(c) = counter {
        assert!(
            f["evidence"].to_string().contains(c),
            "{name}: no {c} in the evidence: {f:#}"
        );
    }
}

fn run_one(s: &dyn Scenario) {
    let name = s.name();
    let mut lab = Lab::new().expect("lab");
    s.build(&mut lab)
        .unwrap_or_else(|e| panic!("{name}: build: {e}"));
    let t0 = Instant::now();
    let mut args: Vec<String> = vec!["explain".into(), "-o".into(), "json".into()];
    args.extend(["--duration".into(), "9".into()]);
    for ns in &lab.nss {
        args.extend(["--netns".into(), ns.name.clone()]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = start(&argv);
    let pid = r.child.id();
    let progs = prog_ids_of(pid);
    assert!(!progs.is_empty(), "{name}: explain holds no BPF program?");
    s.trigger(&mut lab)
        .unwrap_or_else(|e| panic!("{name}: trigger: {e}"));
    // Ctrl-C: explain now rather than at the end of the window.
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    let took = t0.elapsed();
    assert!(st.success(), "{name}: explain failed: {err:?}");
    assert!(took < Duration::from_secs(10), "{name}: took {took:?}");
    let v = json_lines(&out);
    let findings = of_type(&v, "finding");
    if s.diagnosis().is_none() {
        assert!(findings.is_empty(), "{name}: expected no finding: {out}");
    } else {
        let first = findings
            .first()
            .unwrap_or_else(|| panic!("{name}: no finding at all: {out} {err:?}"));
        assert_eq!(
            first["cause"],
            s.diagnosis().unwrap().as_str(),
            "{name}: first finding: {first:#}"
        );
        assert!(
            first["fix"].as_array().is_some_and(|f| !f.is_empty()),
            "{name}: no fix"
        );
        check_subject(name, first, &lab);
    }
    // Nothing left behind: trace tables and BPF programs are gone.
    for ns in &lab.nss {
        let tables = netwhy::state::nftrace::tables(ns.inode).expect("list tables");
        assert!(
            tables.iter().all(|t| !t.name.starts_with("netwhy_trace_")),
            "{name}: trace table left in {}: {tables:?}",
            ns.role
        );
    }
    // Program unloads are deferred (RCU): allow a moment.
    let gone = progs_unloaded(&progs);
    assert!(gone, "{name}: BPF programs {progs:?} still loaded");
    eprintln!("{name}: {:?} in {took:?}", s.diagnosis());
}

#[test]
fn explain_names_every_lab_scenarios_cause() {
    if !root_or_skip("explain_names_every_lab_scenarios_cause") {
        return;
    }
    let only = std::env::var("NETWHY_SCENARIO").ok();
    let mut failed = Vec::new();
    for s in ALL {
        if only.as_deref().is_some_and(|o| o != s.name()) {
            continue;
        }
        // One scenario's failure must not hide the others'.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(*s))).is_err() {
            failed.push(s.name());
        }
    }
    assert!(
        failed.is_empty(),
        "explain got these scenarios wrong: {failed:?}"
    );
}

/// A TCP listener on 127.0.0.1 (an ephemeral port) with a listen backlog
/// of 0: std's TcpListener always asks for 128.
fn tiny_listener() -> (std::os::fd::OwnedFd, std::net::SocketAddr) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2), owned at once.
    let fd = unsafe { OwnedFd::from_raw_fd(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)) };
    // SAFETY: zeroed sockaddr_in is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: valid fd and sockaddr_in of `len` bytes.
    unsafe {
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_in).cast(),
                len
            ),
            0
        );
        assert_eq!(libc::listen(fd.as_raw_fd(), 0), 0);
        assert_eq!(
            libc::getsockname(
                fd.as_raw_fd(),
                (&mut sa as *mut libc::sockaddr_in).cast(),
                &mut len
            ),
            0
        );
    }
    let port = u16::from_be(sa.sin_port);
    (fd, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Without --netns, explain watches the host's counters too: a listen
/// overflow on the host (a listener that never accepts, backlog 0) is a
/// counter-only finding of the host namespace about that listener.
#[test]
fn unscoped_explain_reports_a_host_listen_overflow() {
    if !root_or_skip("unscoped_explain_reports_a_host_listen_overflow") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let host = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    let r = start(&["explain", "-o", "json", "--duration", "9"]);
    assert!(
        !prog_ids_of(r.child.id()).is_empty(),
        "explain attached nothing"
    );
    // The host's counters are snapshotted just after "attached" is logged.
    std::thread::sleep(Duration::from_millis(300));
    let (listener, addr) = tiny_listener();
    // The first connection fills the queue; the next SYNs are refused.
    let first = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("the first connection fits the queue");
    for _ in 0..3 {
        let late = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        assert!(late.is_err(), "a SYN got past a full accept queue");
    }
    r.signal(libc::SIGINT);
    let (st, out, err) = r.finish();
    // Closed only now: their resets must not land in the capture.
    drop((first, listener));
    assert!(st.success(), "explain failed: {err:?}");
    let v = json_lines(&out);
    let f = of_type(&v, "finding")
        .into_iter()
        .find(|f| f["cause"] == "accept-queue-full" && f["netns"] == host)
        .unwrap_or_else(|| panic!("no host accept-queue-full finding: {out}"));
    assert_eq!(f["source"], "counter", "{f:#}");
    assert!(f["count"].as_u64().is_some_and(|c| c >= 3), "{f:#}");
    let local = addr.to_string();
    assert!(
        f["subjects"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["kind"] == "socket" && s["local"] == local.as_str())),
        "the listener is not the subject: {f:#}"
    );
}
