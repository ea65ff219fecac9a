//! Pods and containers on every drop, with real runtimes: a podman
//! container and a containerd + runc container carrying the annotations
//! Kubernetes' CRI plugin writes, both built from a busybox root filesystem
//! made here (no image registry). Each drops TCP SYNs to a closed port on
//! its own loopback (NO_SOCKET in its own netns); netwhy must name them.
//!
//! Both runtimes keep every file under a temporary directory of their own
//! (podman `--root/--runroot`, containerd `--config` with its own root,
//! state and socket): nothing of the host's runtimes is touched, and the
//! resolver must find the records there through the container's parent
//! (conmon's `-b`, the containerd shim's working directory).
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{json_lines, of_type, root_or_skip, run, stderr_of};
use serde_json::{json, Value};

/// The container's program: a connection refused every 100 ms.
const DROPPER: &str = "while :; do echo | nc 127.0.0.1 9; sleep 0.1; done";

/// True when `tool` runs; in CI its absence fails the test.
fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: `{tool}` is missing (scripts/apt-packages installs it)");
        }
        eprintln!("skipping {test}: `{tool}` is not installed");
    }
    ok
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary directory holding a busybox root filesystem, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("netwhy-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
        for applet in ["sh", "nc", "sleep", "echo"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The drop events of `netwhy drops --events -o json` with `filter`.
fn drops(filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["drops", "--events", "-o", "json", "--duration", "2.5"];
    args.extend_from_slice(filter);
    let out = run(&args);
    assert!(
        out.status.success(),
        "drops {filter:?}: {}",
        stderr_of(&out)
    );
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    of_type(&lines, "drop").into_iter().cloned().collect()
}

/// `netwhy explain` text and JSON findings for `filter`.
fn explain(filter: &[&str]) -> (String, Vec<Value>) {
    let mut args = vec!["explain", "--duration", "2"];
    args.extend_from_slice(filter);
    let text = run(&args);
    assert!(text.status.success(), "explain: {}", stderr_of(&text));
    args.extend_from_slice(&["-o", "json"]);
    let out = run(&args);
    assert!(out.status.success(), "explain -o json: {}", stderr_of(&out));
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let findings = of_type(&lines, "finding").into_iter().cloned().collect();
    (String::from_utf8_lossy(&text.stdout).into_owned(), findings)
}

// ---------------------------------------------------------------- podman

struct Podman {
    dir: Scratch,
    name: String,
}

impl Podman {
    /// podman confined to `dir`: vfs storage (overlay needs a kernel and
    /// filesystem this may not have), cgroupfs (no systemd as PID 1 here),
    /// file events (no journald).
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path("root"))
            .arg("--runroot")
            .arg(self.dir.path("run"))
            .arg("--tmpdir")
            .arg(self.dir.path("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"]);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
        let _ = self
            .cmd()
            .args(["rmi", "-f", "localhost/netwhy-test:1"])
            .output();
    }
}

#[test]
fn podman_container_is_named() {
    if !root_or_skip("podman_container_is_named") || !have("podman", "podman_container_is_named") {
        return;
    }
    let dir = Scratch::new("podman");
    let tar = dir.path("rootfs.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(dir.path("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let name = format!("netwhy-test-{}", std::process::id());
    let p = Podman { dir, name };
    sh(p.cmd()
        .arg("import")
        .arg(&tar)
        .arg("localhost/netwhy-test:1"));
    // nofile/nproc: podman asks for 1048576 by default, more than a
    // container's hard limit may be (runc then fails to start).
    sh(p.cmd()
        .args(["run", "-d", "--name", &p.name, "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "localhost/netwhy-test:1",
            "/bin/sh",
            "-c",
            DROPPER,
        ]));

    let all = drops(&[]);
    let ours: Vec<&Value> = all
        .iter()
        .filter(|e| e["container"]["name"] == p.name.as_str())
        .collect();
    assert!(!ours.is_empty(), "no drop names {}: {all:?}", p.name);
    for e in &ours {
        assert_eq!(e["container"]["runtime"], "podman", "{e}");
        assert_eq!(e["container"]["id"].as_str().map(str::len), Some(64), "{e}");
        assert_eq!(e["reason"], "NO_SOCKET", "{e}");
    }
    // Every drop in that netns names the same container.
    assert!(all
        .iter()
        .filter(|e| e["netns"] == ours[0]["netns"])
        .all(|e| e["container"] == ours[0]["container"]));

    let only = drops(&["--container", &p.name]);
    assert!(!only.is_empty());
    assert!(
        only.iter()
            .all(|e| e["container"]["name"] == p.name.as_str()),
        "{only:?}"
    );
    let (text, findings) = explain(&["--container", &p.name]);
    assert!(
        text.contains(&format!("container={}", p.name)),
        "explain text lacks the name: {text}"
    );
    assert!(findings
        .iter()
        .any(|f| f["container"]["name"] == p.name.as_str()));

    // doctor scans that container's namespace alone.
    let out = run(&[
        "doctor",
        "--container",
        &p.name,
        "-o",
        "json",
        "--window",
        "0",
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 2 | 3)),
        "doctor --container: {}",
        stderr_of(&out)
    );
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let summary = of_type(&lines, "doctor_summary");
    assert_eq!(summary.len(), 1, "{lines:?}");
    assert_eq!(summary[0]["namespaces"], 1, "{:?}", summary[0]);

    // trace names it on the steps and the fate of a packet dropped there.
    let out = run(&[
        "trace",
        "tcp port 9",
        "--container",
        &p.name,
        "-o",
        "json",
        "--count",
        "1",
        "--duration",
        "15",
    ]);
    assert!(out.status.success(), "trace: {}", stderr_of(&out));
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let fates = of_type(&lines, "fate");
    assert!(
        fates.iter().any(|f| f["fate"] == "dropped"
            && f["container"]["name"] == p.name.as_str()
            && f["container"]["runtime"] == "podman"),
        "{lines:?}"
    );

    let out = run(&[
        "drops",
        "--container",
        "netwhy-no-such-container",
        "--duration",
        "1",
    ]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("no running container matches --container netwhy-no-such-container")
            && err.contains(&format!("container={} (podman)", p.name)),
        "{err}"
    );
}

// ------------------------------------------------------------ containerd

const POD_NS: &str = "shop";
const CONTAINER: &str = "nginx";

/// A containerd of our own (root, state and socket under `dir`) and one
/// task in it; everything is stopped and removed on drop.
struct Containerd {
    dir: Scratch,
    daemon: Child,
    id: String,
    cgroup: String,
}

impl Containerd {
    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.path("containerd.sock"))
            .args(["--namespace", "k8s.io"]);
        c
    }

    fn start(dir: Scratch) -> Containerd {
        let d = |rel: &str| dir.path(rel).display().to_string();
        let config = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n",
            d("root"),
            d("state"),
            d("containerd.sock"),
            d("containerd.sock.ttrpc")
        );
        fs::write(dir.path("config.toml"), config).unwrap();
        let log = fs::File::create(dir.path("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.path("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let id: String = format!("{:064x}", u128::from(std::process::id()) << 64 | 0xc0ffee);
        let c = Containerd {
            dir,
            daemon,
            cgroup: format!("/kubepods/besteffort/pod{}/{id}", std::process::id()),
            id,
        };
        let t0 = Instant::now();
        while !c
            .ctr()
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "containerd did not start: {}",
                fs::read_to_string(c.dir.path("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// The OCI spec the CRI plugin would write for an application container
    /// of pod `pod`: its annotations, a kubepods cgroup, a netns of its own
    /// (no path: runc makes one, with loopback up).
    fn spec(&self, pod: &str) -> Value {
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/sh", "-c", DROPPER],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": true
            },
            "root": {"path": self.dir.path("rootfs"), "readonly": true},
            "hostname": pod,
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
            ],
            "annotations": {
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": CONTAINER,
                "io.kubernetes.cri.sandbox-id": "ab".repeat(32),
                "io.kubernetes.cri.sandbox-name": pod,
                "io.kubernetes.cri.sandbox-namespace": POD_NS,
                "io.kubernetes.cri.image-name": "localhost/busybox:test"
            },
            "linux": {
                "cgroupsPath": self.cgroup,
                "namespaces": [
                    {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                    {"type": "uts"}, {"type": "mount"}
                ]
            }
        })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self
            .ctr()
            .args(["task", "kill", "-s", "KILL", &self.id])
            .output();
        let _ = self.ctr().args(["task", "delete", "-f", &self.id]).output();
        let _ = self.ctr().args(["container", "delete", &self.id]).output();
        // Our own child, by its pid.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        // The shim's socket directory is fixed in containerd 1.6; removed
        // when we left it empty (and /run/containerd if we made it).
        let _ = fs::remove_dir("/run/containerd/s");
        let _ = fs::remove_dir("/run/containerd");
        // runc removes the container's cgroup; the pod and qos levels above
        // it were made for this test (rmdir only removes empty ones).
        for hier in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let mut p = Path::new(&self.cgroup).parent();
            while let Some(rel) = p.filter(|r| *r != Path::new("/")) {
                let _ = fs::remove_dir(hier.path().join(rel.strip_prefix("/").unwrap()));
                p = rel.parent();
            }
        }
    }
}

#[test]
fn containerd_pod_is_named() {
    let test = "containerd_pod_is_named";
    if !root_or_skip(test) || !have("containerd", test) || !have("ctr", test) || !have("runc", test)
    {
        return;
    }
    let c = Containerd::start(Scratch::new("containerd"));
    let pod = format!("web-{}", std::process::id());
    let spec = c.dir.path("spec.json");
    fs::write(&spec, c.spec(&pod).to_string()).unwrap();
    // FIFOs and runc's state under our directory too (ctr's defaults are
    // in /run/containerd).
    sh(c.ctr()
        .args(["run", "-d", "--fifo-dir"])
        .arg(c.dir.path("fifo"))
        .arg("--runc-root")
        .arg(c.dir.path("runc"))
        .arg("--config")
        .arg(&spec)
        .arg(&c.id));

    let pod_spec = format!("{POD_NS}/{pod}");
    let evs = drops(&["--pod", &pod_spec]);
    assert!(!evs.is_empty(), "no drops in pod {pod_spec}");
    for e in &evs {
        let want = json!({
            "runtime": "containerd", "id": c.id, "name": CONTAINER,
            "pod": pod, "namespace": POD_NS
        });
        assert_eq!(e["container"], want, "{e}");
    }
    // The pod name alone (any namespace) and the container name resolve
    // to the same namespace.
    let netns = &evs[0]["netns"];
    let by_name = drops(&["--pod", &pod, "--container", CONTAINER]);
    assert!(!by_name.is_empty() && by_name.iter().all(|e| &e["netns"] == netns));

    let (text, findings) = explain(&["--pod", &pod_spec]);
    let label = format!("pod={pod_spec} container={CONTAINER}");
    assert!(text.contains(&label), "explain text lacks {label}: {text}");
    assert!(
        findings
            .iter()
            .any(|f| f["container"]["pod"] == pod.as_str()
                && f["container"]["namespace"] == POD_NS
                && f["cause"].is_string()),
        "{findings:?}"
    );

    // The exporter labels the pod's drop series (--labels pod,container).
    let addr = format!("127.0.0.1:{}", common::prometheus::free_port());
    let exp = common::start(&[
        "export",
        "--listen",
        &addr,
        "--labels",
        "pod,container",
        "--pod",
        &pod_spec,
        "--doctor-interval",
        "0",
    ]);
    let want = [
        format!("pod_namespace=\"{POD_NS}\""),
        format!("pod=\"{pod}\""),
        format!("container=\"{CONTAINER}\""),
    ];
    let end = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let series = loop {
        let (st, body) = common::prometheus::get(&addr, "/metrics").expect("scrape");
        assert_eq!(st, 200);
        let hit: Vec<String> = body
            .lines()
            .filter(|l| l.starts_with("netwhy_drops_total{") && want.iter().all(|w| l.contains(w)))
            .map(str::to_string)
            .collect();
        if !hit.is_empty() && body.contains("netwhy_drop_cause_info{") {
            break hit;
        }
        assert!(
            std::time::Instant::now() < end,
            "no labelled series: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(series[0].contains("reason=\"NO_SOCKET\""), "{series:?}");
    drop(exp);

    let out = run(&["drops", "--events", "--duration", "1.5", "--pod", &pod_spec]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.contains(&label)), "{text}");

    let out = run(&[
        "explain",
        "--pod",
        "shop/netwhy-no-such-pod",
        "--duration",
        "1",
    ]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("no running container matches --pod shop/netwhy-no-such-pod")
            && err.contains(&label),
        "{err}"
    );
}
