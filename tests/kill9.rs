//! SIGKILL `explain`, `trace`, `run`, `lab run`, `bisect` and `doctor` at
//! chosen moments, run one more netwhy of some other kind, and check that nothing
//! the killed run changed is left: nft trace tables, BPF programs and links,
//! the `run` cgroup (and the command inside it), undo journals, tracefs
//! mounts, lab namespaces, host sysctls, the sysctls, routes and nft
//! tables `bisect` changes in a namespace (issue #12, part 5b; #16).
//!
//! Kill points are of three kinds, so each run is reproducible: a side
//! effect seen by polling (the trace table, the cgroup, a lab namespace,
//! tracefs, a journal), a line netwhy prints (`attached to`, a test pause of
//! the lab), and delays from a seeded schedule (log-uniform, 5 ms to 1.5 s).
//! The seed is printed; `NETWHY_KILL9_SEED=N` replays a schedule.
//!
//! The machine is shared with other test suites, so only what this test
//! owns or what carries the killed process's pid is compared: its journals
//! `undo-PID-*`, namespaces `nwlab-PID-*`, cgroup `netwhy-run-PID-*`, table
//! `netwhy_trace_PID`, the BPF programs and links its descriptors held (and
//! those attached in its namespaces). A test that cannot fail is a defect:
//! the test also requires that the kills did leave each kind of change
//! behind at least once, for the next run to undo.
mod bisect_common;
mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{bin, fdinfo_ids, root_or_skip, traffic, Lab};
use netwhy::state::nftrace;

const TRACEFS: &str = "/sys/kernel/tracing";
const RMEM_DEFAULT: &str = "/proc/sys/net/core/rmem_default";
/// The test topology's firewall drops this port on the router.
const PORT: u16 = 5309;

/// splitmix64: a seeded schedule without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Log-uniform in 5 ms ..= 1.5 s: as many kills in the first tens of
    /// milliseconds (argument parsing, journal, load) as later.
    fn delay(&mut self) -> Duration {
        let f = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(0.005 * (1.5f64 / 0.005).powf(f))
    }
}

/// A change a killed run can leave, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Journal,
    Netns,
    Cgroup,
    CgroupProcess,
    TraceTable,
    Tracefs,
    Sysctl,
    /// srv's sysctls, routes, rules or nft tables not as before (bisect).
    Bisected,
    BpfProg,
    BpfLink,
}

/// Where the kill lands.
#[derive(Clone, Debug)]
enum At {
    /// This long after the spawn.
    Delay(Duration),
    /// As soon as stderr has a line containing this.
    Says(&'static str),
    /// As soon as this change is visible.
    Sees(Kind),
}

/// One kill: what runs, where it dies.
struct Case {
    phase: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    at: At,
    /// `netwhy run`'s command line marker, to find its process afterwards.
    token: Option<String>,
}

/// BPF objects on the box: program id -> name, link id -> program id.
#[derive(Default)]
struct Bpf {
    progs: HashMap<u64, String>,
    links: HashMap<u64, u64>,
}

fn bpf_now() -> Bpf {
    // bpftool walks ids, then opens each: an object freed in between (other
    // runs on the box come and go) fails the listing; list again.
    let json = |what: &str| -> Vec<serde_json::Value> {
        let mut err = String::new();
        for _ in 0..10 {
            let out = Command::new("bpftool")
                .args([what, "show", "-j"])
                .output()
                .expect("bpftool (apt install bpftool)");
            if out.status.success() {
                if let Some(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                {
                    return v;
                }
            }
            err = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("bpftool {what} show keeps failing: {err}");
    };
    let mut b = Bpf::default();
    for p in json("prog") {
        if let Some(id) = p["id"].as_u64() {
            b.progs
                .insert(id, p["name"].as_str().unwrap_or("").to_string());
        }
    }
    for l in json("link") {
        if let Some(id) = l["id"].as_u64() {
            b.links.insert(id, l["prog_id"].as_u64().unwrap_or(0));
        }
    }
    b
}

/// BPF program and link ids held by the descriptors of `pid` (fdinfo).
fn bpf_held_by(pid: &str, progs: &mut BTreeSet<u64>, links: &mut BTreeSet<u64>) {
    for (k, v) in fdinfo_ids(pid).unwrap_or_default() {
        match k.as_str() {
            "prog_id" => {
                progs.insert(v);
            }
            "link_id" => {
                links.insert(v);
            }
            _ => {}
        }
    }
}

/// Every BPF program and link some live process holds a descriptor of.
fn bpf_held_by_anyone() -> (BTreeSet<u64>, BTreeSet<u64>) {
    let (mut p, mut l) = (BTreeSet::new(), BTreeSet::new());
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit()) {
            bpf_held_by(&name, &mut p, &mut l);
        }
    }
    (p, l)
}

/// Programs attached (tc, XDP) to devices of the named namespace.
fn bpf_attached_in(ns: &str) -> BTreeSet<u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "bpftool", "net", "show", "-j"])
        .output()
        .expect("ip netns exec bpftool");
    let mut ids = BTreeSet::new();
    collect_ids(
        &serde_json::from_slice(&out.stdout).unwrap_or_default(),
        &mut ids,
    );
    ids
}

fn collect_ids(v: &serde_json::Value, out: &mut BTreeSet<u64>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "id" || k == "prog_id" {
                    if let Some(id) = x.as_u64() {
                        out.insert(id);
                    }
                }
                collect_ids(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_ids(x, out)),
        _ => {}
    }
}

fn tracefs_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(4) == Some(&TRACEFS) && l.contains(" - tracefs ")
        })
        .count()
}

fn unmount_tracefs() {
    while tracefs_mounts() > 0 {
        assert!(Command::new("umount")
            .arg(TRACEFS)
            .status()
            .unwrap()
            .success());
    }
}

/// tracefs back as the test found it, even when an assertion failed.
struct TracefsBack(usize);

impl Drop for TracefsBack {
    fn drop(&mut self) {
        if self.0 > 0 && tracefs_mounts() == 0 {
            let _ = Command::new("mount")
                .args(["-t", "tracefs", "nodev", TRACEFS])
                .status();
        }
    }
}

/// Whatever a failed run left is removed before the test ends.
struct LabCleanOnExit;

impl Drop for LabCleanOnExit {
    fn drop(&mut self) {
        let _ = Command::new(bin()).args(["lab", "clean"]).output();
    }
}

/// Journals of live netwhy processes that will unmount tracefs: a tracefs
/// mount they explain is theirs, not a leftover.
fn live_tracefs_journal() -> bool {
    let Ok(d) = std::fs::read_dir("/run/netwhy") else {
        return false;
    };
    d.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("undo-")
            .and_then(|r| r.split('-').next())
            .unwrap_or("");
        !pid.is_empty()
            && Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("unmount_tracefs"))
    })
}

/// The host sysctl a scenario changes, read while no netwhy is in the
/// middle of a brief change (they hold the journal lock meanwhile).
fn rmem_default() -> String {
    let _held = netwhy::undo::lock().expect("journal lock");
    std::fs::read_to_string(RMEM_DEFAULT).unwrap()
}

fn cgroup2() -> PathBuf {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    netwhy::sys::cgroup::parse_mountinfo(&mi)
        .into_iter()
        .find(|m| m.root == "/")
        .map(|m| m.mountpoint)
        .expect("a cgroup v2 mount")
}

/// Processes whose command line is `sleep TOKEN`.
fn sleepers(token: &str) -> Vec<String> {
    let want = format!("sleep\0{token}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

struct World {
    topo: Lab,
    cg2: PathBuf,
    rmem: String,
    /// srv's settings as `bisect` must leave them ([`bisect_state`]).
    srv: String,
    /// srv's routes and rules as netwhy reads them (cheap to poll).
    srv_routes: Vec<netwhy::state::route_set::Entry>,
    /// tracefs mounts expected now (0 while the test has unmounted it).
    tracefs: usize,
}

impl World {
    fn names_of(&self, pid: u32, dir: &str, prefix: &str) -> Vec<String> {
        let p = format!("{prefix}{pid}-");
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&p))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cgroups `netwhy run` (process `pid`) made: `netwhy-run-PID-RANDOM`.
    fn run_cgroups(&self, pid: u32) -> Vec<PathBuf> {
        let dir = self.cg2.display().to_string();
        self.names_of(pid, &dir, "netwhy-run-")
            .into_iter()
            .map(|n| self.cg2.join(n))
            .collect()
    }

    /// What the dead process `pid` changed and is still there, except BPF
    /// objects.
    fn changes(&self, pid: u32, token: Option<&str>) -> Vec<(Kind, String)> {
        let mut v = Vec::new();
        for j in self.names_of(pid, "/run/netwhy", "undo-") {
            v.push((Kind::Journal, format!("/run/netwhy/{j}")));
        }
        for n in self.names_of(pid, "/run/netns", "nwlab-") {
            v.push((Kind::Netns, n));
        }
        for cg in self.run_cgroups(pid) {
            v.push((Kind::Cgroup, cg.display().to_string()));
        }
        if let Some(t) = token {
            for p in sleepers(t) {
                v.push((Kind::CgroupProcess, format!("`sleep {t}` (pid {p})")));
            }
        }
        let own = nftrace::table_name(pid);
        for ns in &self.topo.nss {
            if let Ok(ts) = nftrace::tables(ns.inode) {
                if ts.iter().any(|t| t.name == own) {
                    v.push((Kind::TraceTable, format!("table {own} in {}", ns.name)));
                }
            }
        }
        if tracefs_mounts() > self.tracefs && !live_tracefs_journal() {
            v.push((Kind::Tracefs, format!("tracefs mounted at {TRACEFS}")));
        }
        let rmem = rmem_default();
        if rmem != self.rmem {
            v.push((
                Kind::Sysctl,
                format!(
                    "net.core.rmem_default = {} (was {})",
                    rmem.trim(),
                    self.rmem.trim()
                ),
            ));
        }
        let srv = bisect_state(&self.topo);
        if srv != self.srv {
            v.push((
                Kind::Bisected,
                format!("srv changed:\n{srv}\nwas:\n{}", self.srv),
            ));
        }
        v
    }

    /// Whether the change `k` of the live process `pid` is visible yet
    /// (cheap: polled every millisecond).
    fn sees(&self, k: Kind, pid: u32) -> bool {
        let cgs = self.run_cgroups(pid);
        match k {
            Kind::Journal => !self.names_of(pid, "/run/netwhy", "undo-").is_empty(),
            Kind::Netns => !self.names_of(pid, "/run/netns", "nwlab-").is_empty(),
            Kind::Cgroup => !cgs.is_empty(),
            Kind::CgroupProcess => cgs.iter().any(|cg| {
                std::fs::read_to_string(cg.join("cgroup.procs")).is_ok_and(|s| !s.trim().is_empty())
            }),
            Kind::TraceTable => nftrace::tables(self.topo.ns("rtr").inode)
                .is_ok_and(|ts| ts.iter().any(|t| t.name == nftrace::table_name(pid))),
            Kind::Tracefs => tracefs_mounts() > self.tracefs,
            Kind::Sysctl => std::fs::read_to_string(RMEM_DEFAULT).unwrap() != self.rmem,
            Kind::Bisected => {
                netwhy::state::route_set::read_in(&self.topo.ns("srv").name)
                    .ok()
                    .flatten()
                    .as_ref()
                    != Some(&self.srv_routes)
            }
            Kind::BpfProg | Kind::BpfLink => false,
        }
    }

    /// The "next netwhy of any kind", in turn.
    fn next_cmd(&self, i: usize) -> Vec<String> {
        let cli = self.topo.ns("cli").name.clone();
        let v: Vec<&str> = match i % 5 {
            0 => vec!["doctor", "--window", "0", "--netns", &cli],
            1 => vec!["reasons", "NO_SOCKET"],
            2 => vec!["lab", "list"],
            3 => vec!["drops", "--duration", "0.1", "--netns", &cli],
            _ => vec!["vmcore", "info", "/dev/null"],
        };
        v.into_iter().map(String::from).collect()
    }
}

/// srv's writable sysctls, then its routes, rules and stateless nft
/// ruleset as the bisect tests compare them.
fn bisect_state(topo: &Lab) -> String {
    let name = &topo.ns("srv").name;
    let mut s = String::new();
    if let Ok(side) = netwhy::bisect::apply::read_netns(name) {
        for (k, e) in side.iter().filter(|(_, e)| e.writable) {
            s.push_str(&format!("{k} = {}\n", e.value));
        }
    }
    s.push_str(&bisect_common::net_state(topo, "srv"));
    s
}

struct Outcome {
    /// Kinds the kill left behind, for the next run to undo.
    left: BTreeSet<Kind>,
    failure: Option<String>,
}

fn kill_and_check(w: &World, case: &Case, next: &[String]) -> Outcome {
    let before = bpf_now();
    let mut cmd = Command::new(bin());
    cmd.args(&case.args)
        .envs(case.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn netwhy");
    let pid = child.id();
    let t0 = Instant::now();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut said: Vec<String> = Vec::new();
    let (mut progs, mut links) = (BTreeSet::new(), BTreeSet::new());
    let mut last_sample = t0 - Duration::from_secs(1);
    let mut problem = None;
    loop {
        said.extend(rx.try_iter());
        if let Some(st) = child.try_wait().unwrap() {
            if !matches!(case.at, At::Delay(_)) {
                problem = Some(format!("exited ({st}) before the kill point"));
            }
            break;
        }
        if last_sample.elapsed() >= Duration::from_millis(10) {
            bpf_held_by(&pid.to_string(), &mut progs, &mut links);
            last_sample = Instant::now();
        }
        let reached = match &case.at {
            At::Delay(d) => t0.elapsed() >= *d,
            At::Says(s) => said.iter().any(|l| l.contains(s)),
            At::Sees(k) => w.sees(*k, pid),
        };
        if reached {
            break;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            problem = Some("kill point not reached in 20 s".into());
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    bpf_held_by(&pid.to_string(), &mut progs, &mut links);
    // What the kill leaves, read just before it: another netwhy on the box
    // may well be the next run and undo it before a look after the kill.
    // (Cheap checks only, so the kill still lands at its point.)
    let at_kill: Vec<Kind> = [
        Kind::Journal,
        Kind::Netns,
        Kind::Cgroup,
        Kind::CgroupProcess,
        Kind::Tracefs,
        Kind::Sysctl,
    ]
    .into_iter()
    .filter(|k| w.sees(*k, pid))
    .collect();
    // SAFETY: kill(2) on our own child (not yet reaped).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let killed_at = t0.elapsed();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    said.extend(rx.try_iter());

    // What the kill left for the next run (BPF: what the kernel frees by
    // itself once the descriptors close, and what hangs on a device in the
    // run's namespaces until those are deleted).
    let left_now = w.changes(pid, case.token.as_deref());
    for ns in w.names_of(pid, "/run/netns", "nwlab-") {
        progs.extend(bpf_attached_in(&ns));
    }
    let after = bpf_now();
    for (id, name) in &after.progs {
        if !before.progs.contains_key(id) && name.starts_with("nw_") {
            progs.insert(*id);
        }
    }
    for (id, prog) in &after.links {
        if !before.links.contains_key(id) && progs.contains(prog) {
            links.insert(*id);
        }
    }
    let mut left: BTreeSet<Kind> = left_now.iter().map(|(k, _)| *k).collect();
    left.extend(at_kill);
    if progs.iter().any(|p| after.progs.contains_key(p)) {
        left.insert(Kind::BpfProg);
    }
    if links.iter().any(|l| after.links.contains_key(l)) {
        left.insert(Kind::BpfLink);
    }

    let out = Command::new(bin())
        .args(next)
        .stdin(Stdio::null())
        .output()
        .expect("run the next netwhy");
    let next_err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code().is_none() {
        problem = Some(format!("the next run died: {}", out.status));
    }

    // The kernel frees BPF objects (and a deleted namespace's devices)
    // asynchronously: wait for them a little. One still held by a live
    // process (another netwhy on the box) is not this run's.
    let deadline = Instant::now() + Duration::from_secs(5);
    let remaining = loop {
        let now = bpf_now();
        progs.retain(|p| now.progs.contains_key(p));
        links.retain(|l| now.links.contains_key(l));
        if !progs.is_empty() || !links.is_empty() {
            let (hp, hl) = bpf_held_by_anyone();
            progs.retain(|p| !hp.contains(p));
            links.retain(|l| !hl.contains(l));
        }
        let mut rest = w.changes(pid, case.token.as_deref());
        let bpf_left = !progs.is_empty() || !links.is_empty();
        if (rest.is_empty() && !bpf_left) || Instant::now() >= deadline {
            for p in &progs {
                rest.push((Kind::BpfProg, format!("prog {p} {}", now.progs[p])));
            }
            for l in &links {
                rest.push((Kind::BpfLink, format!("link {l} (prog {})", now.links[l])));
            }
            break rest;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let failure = if problem.is_some() || !remaining.is_empty() {
        Some(format!(
            "{} {:?} killed at {:?} ({} ms){}; next: netwhy {}\n  left after the next run: {:?}\n  killed run said: {:?}\n  next run said: {}",
            case.phase,
            case.args,
            case.at,
            killed_at.as_millis(),
            problem.map(|p| format!(": {p}")).unwrap_or_default(),
            next.join(" "),
            remaining,
            said,
            next_err.trim()
        ))
    } else {
        None
    };
    eprintln!(
        "kill9: {:<8} {:<28} at {:>5} ms  left {:?}  next `{}`: {}",
        case.phase,
        format!("{:?}", case.at),
        killed_at.as_millis(),
        left,
        next.join(" "),
        if failure.is_some() {
            "LEFTOVERS"
        } else {
            "clean"
        }
    );
    Outcome { left, failure }
}

/// UDP to the router's dropped port, from the client, until stopped: the
/// drops `explain` arms nftrace on and `trace` follows.
fn traffic_until(stop: Arc<AtomicBool>, cli: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let dst = format!("198.18.2.2:{PORT}").parse().unwrap();
        while !stop.load(Ordering::Relaxed) {
            let _ = traffic::udp_send(&cli, dst, 1, b"netwhy kill9");
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

#[test]
fn sigkill_at_any_point_leaves_nothing_after_the_next_run() {
    if !root_or_skip("sigkill_at_any_point_leaves_nothing_after_the_next_run") {
        return;
    }
    let seed = std::env::var("NETWHY_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000
        });
    eprintln!("kill9: seed {seed} (NETWHY_KILL9_SEED={seed} replays this schedule)");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let _clean = LabCleanOnExit;

    let mut topo = Lab::new().expect("lab");
    topo.routed().expect("routed topology");
    topo.nft(
        "rtr",
        &format!(
            "table inet nwk9_filter {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
    udp dport {PORT} drop comment \"kill9\"
  }}
}}
"
        ),
    )
    .expect("nft");
    // srv for bisect: a sysctl, a route, a rule and a table away from a
    // fresh namespace's, and a repro that fails while the route is there.
    topo.sysctl("srv", "net.ipv4.tcp_fin_timeout", "20")
        .expect("sysctl");
    topo.ip(
        "srv",
        &["route", "add", "10.77.0.0/16", "via", "198.18.2.1"],
    )
    .expect("route");
    topo.ip(
        "srv",
        &[
            "rule",
            "add",
            "to",
            "10.78.0.0/16",
            "lookup",
            "main",
            "pref",
            "500",
        ],
    )
    .expect("rule");
    topo.nft("srv", "table ip nwk9_bisect {\n}\n").expect("nft");
    let srv = topo.ns("srv").name.clone();
    let srv_routes = netwhy::state::route_set::read_in(&srv)
        .expect("routes")
        .expect("srv");
    let rtr = topo.ns("rtr").name.clone();
    let cli = topo.ns("cli").name.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic_until(stop.clone(), cli.clone());
    let mut w = World {
        topo,
        cg2: cgroup2(),
        rmem: rmem_default(),
        srv: String::new(),
        srv_routes,
        tracefs: tracefs_mounts(),
    };
    w.srv = bisect_state(&w.topo);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut cases: Vec<Case> = Vec::new();
    let case = |phase, args: Vec<String>, at| Case {
        phase,
        args,
        env: Vec::new(),
        at,
        token: None,
    };

    // explain: the nftrace table in the router (tp_btf), and the tracefs
    // mount of the classic tracepoint hook (tracefs is unmounted for it).
    let explain = |hook: &str| {
        s(&[
            "explain",
            "--netns",
            &rtr,
            "--duration",
            "10",
            "--hook",
            hook,
        ])
    };
    cases.push(case(
        "explain",
        explain("tp-btf"),
        At::Sees(Kind::TraceTable),
    ));
    cases.push(case(
        "explain",
        explain("tracepoint"),
        At::Sees(Kind::Tracefs),
    ));
    cases.push(case(
        "explain",
        explain("tracepoint"),
        At::Says("attached to"),
    ));
    for i in 0..3 {
        let hook = if i % 2 == 0 { "tracepoint" } else { "tp-btf" };
        cases.push(case("explain", explain(hook), At::Delay(rng.delay())));
    }
    let explain_cases = cases.len();

    // trace: BPF programs and links only (tp_btf needs no tracefs).
    let trace = s(&[
        "trace",
        &format!("udp port {PORT}"),
        "--netns",
        &cli,
        "--duration",
        "10",
    ]);
    cases.push(case("trace", trace.clone(), At::Says("attached to")));
    for _ in 0..3 {
        cases.push(case("trace", trace.clone(), At::Delay(rng.delay())));
    }

    // run: the cgroup, empty and then with the command inside.
    let run_case = |at, token: String| Case {
        phase: "run",
        args: s(&["run", "--", "sleep", &token]),
        env: Vec::new(),
        at,
        token: Some(token),
    };
    let tokens: Vec<String> = (0..5)
        .map(|_| format!("60.{:06}", rng.next() % 1_000_000))
        .collect();
    let mut tokens = tokens.into_iter();
    let mut token = || tokens.next().unwrap();
    let mut runs = vec![
        run_case(At::Sees(Kind::Cgroup), token()),
        run_case(At::Sees(Kind::CgroupProcess), token()),
        run_case(At::Says("attached to"), token()),
    ];
    for d in [rng.delay(), rng.delay()] {
        runs.push(run_case(At::Delay(d), token()));
    }
    cases.extend(runs);

    // lab: namespaces (and a BPF program on a device in one), the host
    // sysctl a scenario changes for a moment (paused there to kill it).
    let lab = |name: &str| s(&["lab", "run", name]);
    cases.push(Case {
        env: vec![
            ("NETWHY_TEST_PAUSE_AT", "host sysctl set"),
            ("NETWHY_TEST_PAUSE_MS", "30000"),
        ],
        ..case("lab", lab("udp-rmem-overflow"), At::Says("host sysctl set"))
    });
    cases.push(Case {
        env: vec![("NETWHY_TEST_PAUSE_MS", "30000")],
        ..case("lab", lab("tc-bpf-drop"), At::Says("lab built"))
    });
    cases.push(case("lab", lab("nft-forward-drop"), At::Sees(Kind::Netns)));
    cases.push(case(
        "lab",
        lab("udp-rmem-overflow"),
        At::Sees(Kind::Journal),
    ));
    for name in ["tc-bpf-drop", "nft-forward-drop", "udp-rmem-overflow"] {
        cases.push(case("lab", lab(name), At::Delay(rng.delay())));
    }

    // bisect: srv's sysctls, routes, rules and tables, changed from the
    // first configuration on (each run of the repro takes 50 ms).
    let repro = format!("sleep 0.05; ! ip -n {srv} route show 10.77.0.0/16 | grep -q .");
    let bisect = s(&[
        "bisect",
        "--netns",
        &srv,
        "--what",
        "sysctl,route,nft",
        "--no-explain",
        "--",
        "sh",
        "-c",
        &repro,
    ]);
    cases.push(case("bisect", bisect.clone(), At::Sees(Kind::Bisected)));
    cases.push(case("bisect", bisect.clone(), At::Says("(all good)")));
    for _ in 0..2 {
        cases.push(case("bisect", bisect.clone(), At::Delay(rng.delay())));
    }

    // doctor changes nothing: a kill anywhere must leave nothing either.
    let doctor = s(&["doctor", "--netns", &rtr, "--netns", &cli]);
    // (A run takes ~60 ms: uniform delays over it.)
    let mut quick = || Duration::from_millis(5 + rng.next() % 60);
    for _ in 0..2 {
        cases.push(case("doctor", doctor.clone(), At::Delay(quick())));
    }
    cases.push(case("doctor", s(&["doctor"]), At::Delay(quick())));

    let first_next = (seed % 5) as usize;
    let mut failures = Vec::new();
    let mut left_seen = BTreeSet::new();
    let mut tracefs_back = None;
    for (i, c) in cases.iter().enumerate() {
        // tracefs unmounted for explain only: the classic hook mounts it.
        if i == 0 {
            tracefs_back = Some(TracefsBack(tracefs_mounts()));
            unmount_tracefs();
            w.tracefs = 0;
        } else if i == explain_cases {
            drop(tracefs_back.take());
            w.tracefs = tracefs_mounts();
        }
        let next = w.next_cmd(first_next + i);
        let o = kill_and_check(&w, c, &next);
        left_seen.extend(o.left);
        failures.extend(o.failure);
    }
    drop(tracefs_back);
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "kill9: {} kills in {:.1} s; changes killed runs left for the next run: {left_seen:?}",
        cases.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {} kills left something after the next run:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Each kind of change was really left by a kill and undone by the next
    // run: otherwise the kill points miss what they are meant to exercise.
    // (BPF objects and trace tables die with the process: the kernel frees
    // them, so they are checked above but not required here.)
    for k in [
        Kind::Journal,
        Kind::Netns,
        Kind::Cgroup,
        Kind::CgroupProcess,
        Kind::Tracefs,
        Kind::Sysctl,
        Kind::Bisected,
    ] {
        assert!(
            left_seen.contains(&k),
            "seed {seed}: no kill left a {k:?} change behind: the kill points miss it"
        );
    }
    assert!(
        elapsed < Duration::from_secs(120),
        "seed {seed}: took {elapsed:?}"
    );
}

/// A journal save killed between writing its temporary file and renaming it
/// leaves `undo-PID-SEQ.tmp`; the change it announced was never made. The
/// next run removes it once its writer is dead, and leaves a live one's.
#[test]
fn half_written_journal_of_a_dead_run_is_removed() {
    if !root_or_skip("half_written_journal_of_a_dead_run_is_removed") {
        return;
    }
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::create_dir_all("/run/netwhy").unwrap();
    let dead_tmp = format!("/run/netwhy/undo-{dead}-0.tmp");
    let live_tmp = format!("/run/netwhy/undo-{}-99.tmp", std::process::id());
    // Cut short mid-write, as a SIGKILL would.
    std::fs::write(&dead_tmp, format!("{{\"pid\":{dead},\"start\":1,\"acti")).unwrap();
    std::fs::write(&live_tmp, "{\"pid\":").unwrap();
    let out = Command::new(bin()).args(["lab", "list"]).output().unwrap();
    let dead_left = Path::new(&dead_tmp).exists();
    let live_left = Path::new(&live_tmp).exists();
    let _ = std::fs::remove_file(&dead_tmp);
    let _ = std::fs::remove_file(&live_tmp);
    assert!(out.status.success());
    assert!(!dead_left, "the next run left {dead_tmp}");
    assert!(live_left, "the next run removed a live writer's {live_tmp}");
}
