//! Helpers for integration tests: they drive the real binary as root
//! against the real kernel, inside namespaces the test creates (through
//! netwhy's own lab builder, whose drop removes them even on failure).
#![allow(dead_code)]

pub mod dns;
pub mod prometheus;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[allow(unused_imports)]
pub use netwhy::lab::traffic;
pub use netwhy::lab::Lab;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netwhy")
}

/// True when the test can run. Outside CI a non-root run skips with a
/// message; in CI (CI=true) a missing capability is a failure.
pub fn root_or_skip(test: &str) -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: CI must run as root");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A running `netwhy` whose stderr has announced it is attached.
pub struct Running {
    pub child: Child,
    stderr_rx: mpsc::Receiver<String>,
    pub stderr_lines: Vec<String>,
}

/// Start netwhy with `args` and wait (up to 10 s) for the "attached" line.
pub fn start(args: &[&str]) -> Running {
    start_wrapped(&[], args)
}

/// `start` for netwhy run by a wrapper (`ip netns exec NS`, `unshare ...`)
/// that execs it, so the child's pid is netwhy's.
pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Running {
    let mut argv = wrapper.to_vec();
    argv.push(bin());
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netwhy");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => {
                let attached = l.contains("attached to");
                lines.push(l);
                if attached {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("netwhy {args:?} never attached; stderr: {lines:?}");
            }
        }
    }
    Running {
        child,
        stderr_rx: rx,
        stderr_lines: lines,
    }
}

impl Running {
    /// Wait for exit; returns (status, stdout, all stderr lines).
    pub fn finish(mut self) -> (std::process::ExitStatus, String, Vec<String>) {
        use std::io::Read;
        let mut stdout = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            s.read_to_string(&mut stdout).expect("read stdout");
        }
        let status = self.child.wait().expect("wait netwhy");
        let mut lines = std::mem::take(&mut self.stderr_lines);
        while let Ok(l) = self.stderr_rx.recv_timeout(Duration::from_secs(2)) {
            lines.push(l);
        }
        (status, stdout, lines)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run netwhy")
}

/// A run's stderr without the notices of cleaning up after a killed
/// netwhy: any run as root prints them when another netwhy on the box was
/// SIGKILLed just before (tests/kill9.rs does that on purpose).
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("netwhy: cleaned up after a killed run: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Parse JSON Lines; panics with the offending line on bad JSON.
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub fn of_type<'a>(v: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
    v.iter().filter(|x| x["type"] == t).collect()
}

/// The lab "pair" topology: cli 198.18.0.1 — srv 198.18.0.2 on eth0.
pub fn pair() -> Lab {
    let mut lab = Lab::new().expect("lab");
    lab.pair().expect("pair topology");
    lab
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave a capture running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(key, value)` of every numeric fdinfo line (`prog_id`, `link_id`...)
/// of `pid`'s descriptors; `None` when the process is gone.
pub fn fdinfo_ids(pid: &str) -> Option<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(info) = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        )) else {
            continue;
        };
        for l in info.lines() {
            let (k, v) = l.split_once(':').unwrap_or(("", ""));
            if let Ok(v) = v.trim().parse::<u64>() {
                out.push((k.to_string(), v));
            }
        }
    }
    Some(out)
}

/// BPF program ids held by `pid`, from its fds' fdinfo (this bpftool
/// build cannot show pids).
pub fn prog_ids_of(pid: u32) -> Vec<u64> {
    let mut ids: Vec<u64> = fdinfo_ids(&pid.to_string())
        .expect("process alive")
        .into_iter()
        .filter(|(k, _)| k == "prog_id")
        .map(|(_, v)| v)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

pub fn loaded_prog_ids() -> Vec<u64> {
    let out = std::process::Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .expect("bpftool (apt install bpftool)");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect()
}

/// True once none of `progs` is loaded: program unloads are deferred
/// (RCU), so this waits up to 5 s.
pub fn progs_unloaded(progs: &[u64]) -> bool {
    (0..50).any(|_| {
        let loaded = loaded_prog_ids();
        let gone = progs.iter().all(|p| !loaded.contains(p));
        if !gone {
            std::thread::sleep(Duration::from_millis(100));
        }
        gone
    })
}

/// `promtool check metrics` on an exposition must be clean.
pub fn promtool_check_metrics(body: &str) {
    use std::io::Write;
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt install prometheus)");
    p.stdin
        .take()
        .expect("stdin piped")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = p.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Undo journals of netwhy process `pid` left in /run/netwhy.
pub fn journals_of(pid: u32) -> usize {
    std::fs::read_dir("/run/netwhy")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("undo-{pid}-"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Close `sock`, bound to UDP `port` in netns `ino`, and wait until the
/// kernel has no socket on that port there. Tests run in parallel threads:
/// another test's fork (before its exec) holds a copy of every open
/// descriptor for a moment, so a dropped socket can outlive the drop and
/// still take the next datagram.
pub fn close_udp(sock: std::net::UdpSocket, ino: u32, port: u16) {
    use netwhy::state::sockets::{listeners_on, Proto};
    drop(sock);
    for _ in 0..200 {
        if listeners_on(ino, Proto::Udp, port)
            .expect("socket dump")
            .is_empty()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("a UDP socket on port {port} in netns {ino} outlived its close by 2 s");
}
