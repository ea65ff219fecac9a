//! `netwhy run` wherever the cgroup v2 hierarchy is, or is not, mounted
//! (issue #12): under `ip netns exec` (a fresh /sys without cgroups) on this
//! hybrid host (cgroup2 at /sys/fs/cgroup/unified); in unified mode,
//! simulated by a private mount namespace where only cgroup2 is mounted, at
//! /sys/fs/cgroup; inside a container; after a killed run; and where it can
//! be neither found nor mounted.
//!
//! The containers are made with unshare: new mount, cgroup and pid
//! namespaces rooted at a cgroup of their own, with a fresh /proc, /sys and
//! /run, in the lab's client network namespace: what runc sets up that
//! matters here (what netwhy can mount and see, and what /proc/PID/cgroup
//! paths are relative to). A runc container would add a root filesystem,
//! which would have to hold netwhy's shared libraries, and a daemon per
//! test, for nothing netwhy looks at.
//!
//! Every run sends the DNS query of `common::dns` through a DNAT that the
//! reply escapes, or a healthy one: the packets can only be in the report
//! if the cgroup id netwhy computed is the one the kernel gives the
//! command's socket.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::dns::{self, dns_lab, server};
use common::*;
use netwhy::sys::cgroup::{parse_mountinfo, Hierarchy};
use serde_json::Value;

/// One test at a time: the killed-run test must look at its leftovers
/// before another netwhy (which cleans stale journals when it starts)
/// removes them; and each run loads the path probe on two shared cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where this host mounts cgroup v2 (/sys/fs/cgroup/unified when hybrid).
fn host_mount() -> PathBuf {
    Hierarchy::find(true)
        .expect("cgroup v2")
        .mountpoint()
        .expect("the host mounts cgroup v2")
        .to_path_buf()
}

/// The host's cgroup2 mounts: (mount point, super options).
fn host_cgroup2_mounts() -> Vec<(PathBuf, String)> {
    parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .map(|m| (m.mountpoint, m.super_opts))
        .collect()
}

/// `WRAPPER... netwhy run -o json -- CMD...`: output, JSON Lines, stderr.
fn run_wrapped(wrapper: &[&str], cmd: &[&str]) -> (Output, Vec<Value>, String) {
    let mut argv = wrapper.to_vec();
    argv.extend([bin(), "run", "-o", "json", "--"]);
    argv.extend(cmd);
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    let v = json_lines(&String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, v, err)
}

/// The run's cgroup as netwhy announced it ("... in cgroup X ...").
fn announced_cgroup(stderr: &str) -> String {
    stderr
        .split("in cgroup ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cgroup announced: {stderr}"))
        .to_string()
}

/// The healthy exchange: query and answer, both delivered.
fn assert_delivered(lab: &Lab, out: &Output, v: &[Value], err: &str) {
    assert!(out.status.success(), "{err}");
    let flows = of_type(v, "flow");
    assert_eq!(flows.len(), 1, "one socket, one flow: {err}\n{v:?}");
    let p = flows[0]["packets"].as_array().unwrap();
    assert_eq!(p.len(), 2, "query and answer: {p:?}");
    assert_eq!(p[0]["direction"], "out");
    assert_eq!(p[0]["fate"]["fate"], "delivered");
    assert_eq!(p[0]["fate"]["netns"], lab.ns("srv").inode);
    assert_eq!(p[1]["direction"], "in");
    assert_eq!(p[1]["fate"]["fate"], "delivered");
    assert_eq!(p[1]["fate"]["netns"], lab.ns("cli").inode);
}

/// The reply escaping DNAT: the query delivered, the reply dropped at the
/// client (no socket for its source), the client timed out.
fn assert_reply_dropped(lab: &Lab, out: &Output, v: &[Value], err: &str) {
    assert_eq!(out.status.code(), Some(124), "the client timed out: {err}");
    let flows = of_type(v, "flow");
    assert_eq!(flows.len(), 1, "one socket, one flow: {err}\n{v:?}");
    let p = flows[0]["packets"].as_array().unwrap();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0]["direction"], "out");
    assert_eq!(p[0]["fate"]["fate"], "delivered");
    assert_eq!(p[0]["fate"]["netns"], lab.ns("srv").inode);
    let f = &p[1]["fate"];
    assert_eq!(p[1]["direction"], "in");
    assert_eq!(p[1]["remote"], "198.18.2.2:53", "not un-NATed");
    assert_eq!(f["fate"], "dropped");
    assert_eq!(f["reason"], "NO_SOCKET");
    assert_eq!(f["netns"], lab.ns("cli").inode);
    assert_eq!(of_type(v, "finding")[0]["cause"], "nat-tuple-mismatch");
}

#[test]
fn ip_netns_exec_netwhy_run_traces_the_command_on_a_hybrid_host() {
    if !root_or_skip("run_under_ip_netns_exec") {
        return;
    }
    let _s = serial();
    let mounts = host_cgroup2_mounts();
    assert!(
        mounts
            .iter()
            .any(|(p, _)| p == Path::new("/sys/fs/cgroup/unified")),
        "this test is for a hybrid host: {mounts:?}"
    );
    let lab = dns_lab("198.18.2.3");
    let srv = server(&lab);
    let cli = lab.ns("cli").name.clone();
    let (out, v, err) = run_wrapped(&["ip", "netns", "exec", &cli], &["bash", "-c", dns::QUERY]);
    srv.join().unwrap();
    assert_reply_dropped(&lab, &out, &v, &err);
    // Not mounted under `ip netns exec`: netwhy mounted it for itself.
    assert!(err.contains("(cgroup v2, mounted privately)"), "{err}");
    let cg = announced_cgroup(&err);
    let host_dir = host_mount().join(cg.trim_start_matches('/'));
    assert!(!host_dir.exists(), "{} left behind", host_dir.display());
    assert_eq!(host_cgroup2_mounts(), mounts, "the host's mounts and flags");
}

#[test]
fn unified_host_run_outside_and_under_ip_netns_exec() {
    if !root_or_skip("run_unified") {
        return;
    }
    let _s = serial();
    let mounts = host_cgroup2_mounts();
    // The same hierarchy at /sys/fs/cgroup and nothing else, in a mount
    // namespace of our own (unshare makes it private: nothing propagates
    // back). A cgroup2 mount from the initial cgroup namespace sets the
    // hierarchy-wide flags, so it restates the host's.
    let flags: Vec<&str> = mounts[0]
        .1
        .split(',')
        .filter(|o| *o != "rw" && *o != "ro")
        .collect();
    let opt = if flags.is_empty() {
        String::new()
    } else {
        format!("-o {}", flags.join(","))
    };
    let unified = format!(
        "umount -l /sys/fs/cgroup && mount -t cgroup2 {opt} none /sys/fs/cgroup && \
         [ \"$(grep -c cgroup /proc/self/mountinfo)\" = 1 ] && exec \"$@\""
    );
    let in_unified = ["unshare", "-m", "sh", "-c", unified.as_str(), "sh"];
    let lab = dns_lab("198.18.2.2");
    let cli = lab.ns("cli").name.clone();

    // netwhy outside, the command in the netns: the mounted hierarchy.
    let srv = server(&lab);
    let (out, v, err) = run_wrapped(
        &in_unified,
        &["ip", "netns", "exec", &cli, "bash", "-c", dns::QUERY],
    );
    srv.join().unwrap();
    assert_delivered(&lab, &out, &v, &err);
    let outside = announced_cgroup(&err);
    assert!(outside.starts_with("/sys/fs/cgroup/netwhy-run-"), "{err}");

    // netwhy itself under `ip netns exec`: its /sys has no cgroup mounted.
    let srv = server(&lab);
    let mut wrapper = in_unified.to_vec();
    wrapper.extend(["ip", "netns", "exec", &cli]);
    let (out, v, err) = run_wrapped(&wrapper, &["bash", "-c", dns::QUERY]);
    srv.join().unwrap();
    assert_delivered(&lab, &out, &v, &err);
    assert!(err.contains("(cgroup v2, mounted privately)"), "{err}");
    let under = announced_cgroup(&err);

    let host = host_mount();
    for cg in [
        outside.trim_start_matches("/sys/fs/cgroup/"),
        under.trim_start_matches('/'),
    ] {
        assert!(!host.join(cg).exists(), "{cg} left behind");
    }
    assert_eq!(host_cgroup2_mounts(), mounts, "the host's mounts and flags");
}

/// A cgroup standing for a container's, at the top of the host's
/// hierarchy; removed, with whatever is left inside, even on failure.
struct ContainerCgroup(PathBuf);

impl ContainerCgroup {
    fn new(tag: &str) -> ContainerCgroup {
        let p = host_mount().join(format!("netwhy-test-{tag}-{}", std::process::id()));
        std::fs::create_dir(&p).unwrap();
        ContainerCgroup(p)
    }

    /// The child cgroups (directories) inside.
    fn children(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// `sh -c 'join this cgroup; exec "$@"' sh`: a wrapper that starts
    /// the rest of the command line in it.
    fn join_script(&self) -> String {
        format!("echo $$ > {}/cgroup.procs && exec \"$@\"", self.0.display())
    }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove(&e.path());
                }
            }
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        remove(&self.0);
    }
}

/// The command's own cgroup line, written to stderr before the query.
const SHOW_CGROUP: &str = "tail -n1 /proc/self/cgroup >&2; ";

#[test]
fn container_with_a_fresh_sys_and_its_own_cgroup_namespace() {
    if !root_or_skip("run_in_container") {
        return;
    }
    let _s = serial();
    let lab = dns_lab("198.18.2.3");
    let ctr = ContainerCgroup::new("ctr");
    let join = ctr.join_script();
    let cli = lab.ns("cli").name.clone();
    // The container: the lab's client netns (`ip netns exec` also gives
    // the fresh /sys, with no cgroup mounted), then new mount, cgroup and
    // pid namespaces with their own /proc and /run (its journal stays
    // inside, as a container's would), sh as their PID 1.
    let wrapper = [
        "sh",
        "-c",
        &join,
        "sh",
        "ip",
        "netns",
        "exec",
        &cli,
        "unshare",
        "--mount",
        "--cgroup",
        "--pid",
        "--fork",
        "--mount-proc",
        "sh",
        "-c",
        "mount -t tmpfs tmpfs /run && ! grep -q cgroup /proc/self/mountinfo && \"$@\"",
        "sh",
    ];
    let script = format!("{SHOW_CGROUP}{}", dns::QUERY);
    let srv = server(&lab);
    let (out, v, err) = run_wrapped(&wrapper, &["bash", "-c", &script]);
    srv.join().unwrap();
    assert_reply_dropped(&lab, &out, &v, &err);
    // The command ran in a cgroup netwhy made inside the container's (its
    // path is relative to the container's cgroup namespace).
    let cg = announced_cgroup(&err);
    assert!(cg.starts_with("/netwhy-run-"), "{err}");
    assert!(err.contains(&format!("0::{cg}\n")), "{err}");
    assert!(err.contains("(cgroup v2, mounted privately)"), "{err}");
    assert_eq!(ctr.children(), Vec::<String>::new(), "left behind");
}

#[test]
fn container_seeing_the_hosts_mount_from_its_cgroup_namespace() {
    if !root_or_skip("run_in_cgroupns") {
        return;
    }
    let _s = serial();
    let lab = dns_lab("198.18.2.3");
    let ctr = ContainerCgroup::new("cgns");
    let join = ctr.join_script();
    let cli = lab.ns("cli").name.clone();
    // New mount and cgroup namespaces that keep the host's /sys: its
    // cgroup2 mount's root lies above the namespace root ("/.." in
    // mountinfo), so paths of the namespace do not resolve under it.
    let check = format!(
        "grep -q ' /\\.\\. {} .* - cgroup2 ' /proc/self/mountinfo && exec \"$@\"",
        host_mount().display()
    );
    let wrapper = [
        "sh", "-c", &join, "sh", "unshare", "--mount", "--cgroup", "sh", "-c", &check, "sh",
    ];
    let script = format!("{SHOW_CGROUP}{}", dns::QUERY);
    let srv = server(&lab);
    let (out, v, err) = run_wrapped(
        &wrapper,
        &["ip", "netns", "exec", &cli, "bash", "-c", &script],
    );
    srv.join().unwrap();
    assert_reply_dropped(&lab, &out, &v, &err);
    // Inside the container's cgroup, not at the top of the host's.
    let cg = announced_cgroup(&err);
    assert!(cg.starts_with("/netwhy-run-"), "{err}");
    assert!(err.contains(&format!("0::{cg}\n")), "{err}");
    assert_eq!(ctr.children(), Vec::<String>::new(), "left behind");
}

#[test]
fn a_killed_run_under_ip_netns_exec_is_cleaned_by_the_next() {
    if !root_or_skip("run_killed_cleaned") {
        return;
    }
    let _s = serial();
    let mut lab = Lab::new().unwrap();
    let cli = lab.add_ns("cli").unwrap().name;
    let mut r = start_wrapped(
        &["ip", "netns", "exec", &cli],
        &["run", "--", "sleep", "60"],
    );
    let pid = r.child.id();
    let cg = announced_cgroup(&r.stderr_lines.join("\n"));
    let dir = host_mount().join(cg.trim_start_matches('/'));
    // (netwhy announces the cgroup just before it starts the command.)
    let mut procs = String::new();
    for _ in 0..100 {
        procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        if !procs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(procs.lines().count(), 1, "sleep inside: {procs}");
    r.signal(libc::SIGKILL);
    // (Not `finish`: sleep, alive, still holds netwhy's stdout.)
    let st = r.child.wait().unwrap();
    assert_eq!(st.code(), None, "killed");
    let journal = |pid: u32| {
        std::fs::read_dir(netwhy::undo::DIR)
            .unwrap()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("undo-{pid}-"))
            })
    };
    assert!(dir.exists(), "a killed run cannot clean up");
    assert!(journal(pid), "but its journal says what to undo");
    // The next run replays it, reaching the hierarchy the same way.
    let out = Command::new("ip")
        .args(["netns", "exec", &cli, bin(), "run", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !dir.exists(),
        "{} left behind (sleep still in it)",
        dir.display()
    );
    assert!(!journal(pid), "journal replayed and removed");
    // (Another netwhy on this machine may have replayed it first.)
    if !err.contains(&format!(
        "cleaned up after a killed run: remove cgroup {cg}"
    )) {
        eprintln!("the killed run was cleaned by another netwhy: {err}");
    }
}

#[test]
fn no_hierarchy_and_no_way_to_mount_one_is_one_line_naming_the_fix() {
    if !root_or_skip("run_no_cgroup2") {
        return;
    }
    let _s = serial();
    let mut lab = Lab::new().unwrap();
    let cli = lab.add_ns("cli").unwrap().name;
    let mounts = host_cgroup2_mounts();
    // Under `ip netns exec` nothing is mounted, and without CAP_SYS_ADMIN
    // (as in a container without it) nothing can be.
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &cli,
            "setpriv",
            "--bounding-set",
            "-sys_admin",
        ])
        .args([bin(), "run", "--", "true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("netwhy: error: netwhy run needs the cgroup v2 hierarchy"),
        "{err}"
    );
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
    assert!(err.contains("netwhy run -- ip netns exec NS CMD"), "{err}");
    assert!(out.stdout.is_empty());
    // Nothing left: no journal, no cgroup, no mount.
    let journals: Vec<_> = std::fs::read_dir(netwhy::undo::DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("undo-{pid}-")))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(journals, Vec::<String>::new());
    let cgroups: Vec<_> = std::fs::read_dir(host_mount())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("netwhy-run-{pid}-")))
        .collect();
    assert_eq!(cgroups, Vec::<String>::new());
    assert_eq!(host_cgroup2_mounts(), mounts);
}
