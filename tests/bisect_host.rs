//! `netwhy bisect --allow-host-changes`: host-global culprits, which a
//! child namespace only mirrors (read-only there on 6.18, checked below):
//! the GCP incident's net.core.rmem_default, and a conntrack limit of 1
//! (net.netfilter.nf_conntrack_max). These tests change the HOST (through
//! the lab's undo journal, so a test that dies still puts it back, and
//! netwhy's own brief changes go through netwhy's journal): they hold
//! [`HOST`] so that they never overlap each other, keep the broken window
//! to the bisect run, and assert the host value exactly restored.
//!
//! On 6.18 rmem_default=2^31-1 no longer drops (the 2020 overflow fix:
//! the lab's udp-rmem-overflow scenario shows it), so the broken value
//! here is a tiny default receive buffer (16 KiB): a burst of datagrams to
//! a socket created with it overflows, as the incident's DNS replies did.
mod bisect_common;
mod common;

use std::sync::Mutex;

use bisect_common::*;
use common::{root_or_skip, stderr_of, Lab};

/// One host-changing test at a time.
static HOST: Mutex<()> = Mutex::new(());

fn host_lock() -> std::sync::MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

const RMEM_MAX: &str = "/proc/sys/net/core/rmem_max";
const RMEM_DEFAULT: &str = "/proc/sys/net/core/rmem_default";
const CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

fn host_value(path: &str) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// 32 datagrams of 1000 bytes to a fresh UDP socket on srv's loopback,
/// read only after all are sent: all arrive with the default 208 KiB
/// receive buffer, a few with 16 KiB.
const UDP_BURST: &str = "
import socket, sys
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(('127.0.0.1', 0))
r.settimeout(0.2)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(32):
    s.sendto(b'x' * 1000, r.getsockname())
n = 0
try:
    while True:
        r.recv(2000)
        n += 1
except socket.timeout:
    pass
sys.exit(0 if n == 32 else 1)
";

/// Two TCP connections on srv's loopback, the first established (so its
/// conntrack entry is assured and cannot be evicted) before the second.
const TWO_FLOWS: &str = "
import socket, sys
l = socket.socket()
l.bind(('127.0.0.1', 0))
l.listen(8)
try:
    a = socket.create_connection(l.getsockname(), timeout=1.5)
    s, _ = l.accept()
    a.sendall(b'x'); s.recv(1); s.sendall(b'y'); a.recv(1)
    socket.create_connection(l.getsockname(), timeout=1.5)
except OSError:
    sys.exit(1)
";

fn python(lab: &Lab, script: &str) -> Vec<String> {
    [
        "ip",
        "netns",
        "exec",
        &lab.ns("srv").name,
        "python3",
        "-c",
        script,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A good file from a fresh namespace's values (`ref`), read while the
/// host is healthy: srv's harmless differences and the host-global key.
fn good_file(lab: &mut Lab, tag: &str) -> std::path::PathBuf {
    lab.add_ns("ref").unwrap();
    let mut good = String::new();
    for (k, e) in &snapshot(lab, "ref") {
        good.push_str(&format!("{k} = {}\n", e.value));
    }
    let file = std::env::temp_dir().join(format!("netwhy-bisect-{tag}-{}", std::process::id()));
    std::fs::write(&file, good).unwrap();
    file
}

/// `bisect --netns srv --good-file file [--allow-host-changes] --no-explain
/// -o json -- repro`.
fn bisect_against_file(
    srv: &str,
    file: &std::path::Path,
    allow: bool,
    repro: &[String],
) -> std::process::Output {
    let mut args = vec!["--netns", srv, "--good-file", file.to_str().unwrap()];
    if allow {
        args.push("--allow-host-changes");
    }
    args.extend(["--no-explain", "-o", "json", "--"]);
    args.extend(repro.iter().map(String::as_str));
    bisect(&args)
}

/// The host-global culprit case: `key` broken on the host (journalled by
/// the lab), a dozen harmless differences in srv, `repro`. Without
/// --allow-host-changes bisect says the difference is host-global; with
/// it, it names `key` with its values. The host ends with the broken
/// value after each run (bisect's brief changes undone) and with the
/// original one once the lab is gone.
fn host_culprit(key: &str, path: &str, bad: &str, script: &str, setup: impl Fn(&Lab)) {
    let _host = host_lock();
    let original = host_value(path);
    {
        let mut lab = common::pair();
        setup(&lab);
        let file = good_file(&mut lab, "host");
        harm(&lab, "srv");
        let repro = python(&lab, script);
        let cmd: Vec<&str> = repro[4..].iter().map(String::as_str).collect();
        assert!(
            lab.exec("srv", &cmd).is_ok(),
            "repro fails on a healthy host"
        );
        let srv = lab.ns("srv").name.clone();
        let before = snapshot(&lab, "srv");
        // A child namespace only mirrors it: read-only there.
        assert!(!before[key].writable, "{key} is per-namespace here");
        assert_eq!(lab.host_sysctl(key, bad).unwrap(), original);
        assert!(
            lab.exec("srv", &cmd).is_err(),
            "{key}={bad} did not break the repro"
        );
        let broken = snapshot(&lab, "srv");
        for allow in [false, true] {
            let out = bisect_against_file(&srv, &file, allow, &repro);
            assert_eq!(host_value(path), bad, "bisect left the host changed");
            assert_same(&broken, &snapshot(&lab, "srv"));
            if !allow {
                let err = stderr_of(&out);
                assert!(!out.status.success(), "{err}");
                assert!(
                    err.contains("the difference is not in these settings")
                        && err.contains("host-global: try --allow-host-changes"),
                    "{err}"
                );
                continue;
            }
            let r = result(&out);
            let c = &r["culprits"];
            assert_eq!(c.as_array().unwrap().len(), 1, "{r}");
            assert_eq!(c[0]["sysctl"], key, "{r}");
            assert_eq!(c[0]["bad"], bad, "{r}");
            assert_eq!(c[0]["good"], original.as_str(), "{r}");
            assert_eq!(c[0]["host"], true, "{r}");
            assert_eq!(r["fix"][0], format!("sysctl -w {key}={original}"), "{r}");
            let n = r["differences"].as_u64().unwrap();
            assert!(n > HARMLESS.len() as u64, "{r}");
            assert!(r["runs"].as_u64().unwrap() <= one_culprit_bound(n), "{r}");
        }
        let _ = std::fs::remove_file(&file);
    }
    assert_eq!(
        host_value(path),
        original,
        "the host's {key} was not restored"
    );
}

#[test]
fn a_tiny_host_rmem_default_is_named_only_with_allow_host_changes() {
    if !root_or_skip("a_tiny_host_rmem_default_is_named_only_with_allow_host_changes") {
        return;
    }
    host_culprit(
        "net.core.rmem_default",
        RMEM_DEFAULT,
        "16384",
        UDP_BURST,
        |lab| {
            lab.ip("srv", &["link", "set", "lo", "up"]).unwrap();
        },
    );
}

#[test]
fn a_host_conntrack_limit_of_one_is_named_only_with_allow_host_changes() {
    if !root_or_skip("a_host_conntrack_limit_of_one_is_named_only_with_allow_host_changes") {
        return;
    }
    host_culprit(
        "net.netfilter.nf_conntrack_max",
        CONNTRACK_MAX,
        "1",
        TWO_FLOWS,
        |lab| {
            lab.ip("srv", &["link", "set", "lo", "up"]).unwrap();
            // A ct rule: conntrack tracks srv's flows (a namespace without
            // one has no entries to count).
            lab.nft(
                "srv",
                "table inet track {\n\
                   chain input { type filter hook input priority 0; policy accept; ct state established,related accept; }\n\
                 }\n",
            )
            .unwrap();
        },
    );
}

#[test]
fn host_global_settings_only_with_allow_host_changes_and_restored() {
    if !root_or_skip("host_global_settings_only_with_allow_host_changes_and_restored") {
        return;
    }
    let _host = host_lock();
    let lab = common::pair();
    harm(&lab, "srv");
    let before = snapshot(&lab, "srv");
    let srv = lab.ns("srv").name.clone();
    // The good file: srv's own values but tcp_sack and fin_timeout at the
    // defaults, and a host-global rmem_max one byte above the host's (a
    // change no socket notices).
    let host_rmem = std::fs::read_to_string(RMEM_MAX)
        .unwrap()
        .trim()
        .to_string();
    let good_rmem = (host_rmem.parse::<u64>().unwrap() + 1).to_string();
    let mut good = String::new();
    for (k, e) in &before {
        let v = match k.as_str() {
            "net.ipv4.tcp_sack" => "1",
            "net.ipv4.tcp_fin_timeout" => "60",
            "net.core.rmem_max" => good_rmem.as_str(),
            _ => e.value.as_str(),
        };
        good.push_str(&format!("{k} = {v}\n"));
    }
    let file = std::env::temp_dir().join(format!("netwhy-bisect-host-{}", std::process::id()));
    std::fs::write(&file, good).unwrap();
    let repro = pair_repro(&srv);
    for allow in [false, true] {
        let out = bisect_against_file(&srv, &file, allow, &repro);
        assert_same(&before, &snapshot(&lab, "srv"));
        assert_eq!(std::fs::read_to_string(RMEM_MAX).unwrap().trim(), host_rmem);
        let r = result(&out);
        let names: Vec<&str> = r["culprits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sysctl"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_sack"],
            "{r}"
        );
        let skipped_rmem = r["skipped"].as_array().unwrap().iter().any(|s| {
            s["sysctl"] == "net.core.rmem_max"
                && s["why"].as_str().unwrap().contains("--allow-host-changes")
        });
        // Without the flag it is skipped; with it, it is one of the three
        // settings bisected (and found harmless).
        assert_eq!(skipped_rmem, !allow, "{r}");
        assert_eq!(r["differences"], if allow { 3 } else { 2 }, "{r}");
    }
    let _ = std::fs::remove_file(&file);
}
