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
        _ => true,
    };
    assert!(ok, "{name}: subject missing from the first finding: {f:#}");
    // Kernel counters of the watched namespaces corroborate the drop.
    let counter = match name {
        "udp-closed-port" => Some("Udp:NoPorts +"),
        "udp-bad-checksum" => Some("Udp:InCsumErrors +"),
        "rp-filter-martian" => Some("TcpExt:IPReversePathFilter +"),
        "no-route" => Some("IpExt:InNoRoutes +"),
        "tcp-accept-queue-full" | "tcp-syncookie-accept-queue-full" => {
            Some("TcpExt:ListenOverflows +")
        }
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
    let gone = (0..50).any(|_| {
        let loaded = loaded_prog_ids();
        let gone = progs.iter().all(|p| !loaded.contains(p));
        if !gone {
            std::thread::sleep(Duration::from_millis(100));
        }
        gone
    });
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
