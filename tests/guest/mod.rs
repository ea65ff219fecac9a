//! Guest harness: boots a Debian kernel under qemu (TCG, no KVM needed) with
//! a busybox initramfs, runs a shell script there with host binaries copied
//! in, and hands the script's exit code and output back to the host test.
//!
//! Why a guest: this machine's kernel refuses kprobes and fentry, and has one
//! numbering of the drop reasons. Debian's 6.12 kernel has every backend
//! `netwhy` can use and different enum values, so running the real binary
//! there proves the backends and the by-name reason decoding for real.
//!
//! Layout of a run's initramfs: a cached base part (busybox, /init, the
//! kernel modules in load order) followed by a per-run payload cpio (the
//! binaries with their shared libraries, the script); the kernel unpacks
//! concatenated archives in order. /init mounts proc, sys, devtmpfs, tracefs,
//! debugfs, bpffs and cgroup2, loads the modules, runs `/payload.sh` with its
//! output on the virtio console (fast, kept apart from kernel messages), and
//! prints the exit code on the serial console before powering off.
#![allow(dead_code)]

pub mod image;
pub mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test binary uses some
pub use image::{KernelSpec, DEBIAN_6_1, DEBIAN_6_12};

/// Modules every scenario may need: veth pairs, nftables with NAT and
/// REJECT, conntrack. Dependencies (nf_defrag_*, libcrc32c...) follow.
pub const NET_MODULES: &[&str] = &[
    // built in from 6.12 on, modules on 6.1 (skipped where built in)
    "virtio_pci",
    "virtio_console",
    "veth",
    "nf_tables",
    "nf_conntrack",
    "nf_nat",
    "nft_chain_nat",
    "nft_nat",
    "nft_ct",
    "nft_reject",
    "nft_reject_inet",
    "nft_reject_ipv4",
    "nft_reject_ipv6",
    // conntrack -F (ctnetlink), iptables-legacy and iptables-nft rules
    "nf_conntrack_netlink",
    "ip_tables",
    "iptable_filter",
    "xt_conntrack",
    "ipt_REJECT",
    "nft_compat",
];

const EXIT_MARK: &str = "NETWHY-GUEST-EXIT=";

/// One boot at a time: parallel TCG guests on a small machine only make
/// each slower (and would skew the attach timings the tests report).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Turns a missing capability into a failure in CI and a skip elsewhere.
pub fn or_skip<T>(test: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if in_ci() => panic!("{test}: CI=true and the qemu guest is unavailable: {e}"),
        Err(e) => {
            eprintln!("SKIP {test}: qemu guest unavailable: {e}");
            None
        }
    }
}

/// What the guest reported.
#[derive(Debug)]
pub struct Outcome {
    /// The script's exit status.
    pub code: i32,
    /// The script's stdout and stderr (virtio console).
    pub output: String,
    /// Kernel and init messages (serial console).
    pub serial: String,
    /// Boot to power-off, wall clock.
    pub elapsed: Duration,
}

/// A guest to boot: kernel, modules and host files to copy in.
pub struct Guest {
    spec: KernelSpec,
    modules: Vec<&'static str>,
    /// (guest path, host path, with shared libraries)
    files: Vec<(String, PathBuf, bool)>,
    /// Host directories copied file by file to the same path (plugins
    /// loaded with dlopen, which ldd cannot see).
    dirs: Vec<PathBuf>,
    memory: &'static str,
}

impl Guest {
    pub fn new(spec: KernelSpec) -> Self {
        Guest {
            spec,
            modules: NET_MODULES.to_vec(),
            files: Vec::new(),
            dirs: Vec::new(),
            memory: "512M",
        }
    }

    /// Also load this kernel module (with its dependencies), e.g. `bridge`.
    pub fn module(mut self, name: &'static str) -> Self {
        self.modules.push(name);
        self
    }

    /// Copy a host executable (and the libraries it links) to `/usr/local/bin/NAME`.
    pub fn binary(mut self, name: &str, host: impl Into<PathBuf>) -> Self {
        self.files
            .push((format!("/usr/local/bin/{name}"), host.into(), true));
        self
    }

    /// The netwhy under test, plus the host's iproute2 `ip` and `tc`, `nft`,
    /// `conntrack` and iptables (legacy and nft): netwhy's lab builds and
    /// breaks networks with them, and busybox's `ip` cannot (it ignores veth
    /// peer names and has no `ip netns`). The iptables multi-call binaries
    /// dispatch on their name, so each name gets its copy.
    ///
    /// `NETWHY_GUEST_BIN` replaces the netwhy under test, e.g. with the
    /// static build of scripts/build-static.
    pub fn with_netwhy(mut self) -> Self {
        let netwhy = std::env::var_os("NETWHY_GUEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_netwhy")));
        self = self
            .binary("netwhy", netwhy)
            .binary("ip", "/usr/sbin/ip")
            .binary("nft", "/usr/sbin/nft")
            .binary("conntrack", "/usr/sbin/conntrack")
            // busybox's tc knows no tbf (udp-sndbuf-full shapes with it).
            .binary("tc", "/usr/sbin/tc");
        for name in [
            "iptables-legacy",
            "iptables-legacy-restore",
            "ip6tables-legacy",
        ] {
            self = self.binary(name, "/usr/sbin/xtables-legacy-multi");
        }
        for name in ["iptables-nft", "iptables-nft-restore"] {
            self = self.binary(name, "/usr/sbin/xtables-nft-multi");
        }
        self.dirs
            .push(PathBuf::from("/usr/lib/x86_64-linux-gnu/xtables"));
        // netwhy dlopens libpcap to compile trace filters: ldd of netwhy
        // does not list it, so it comes with its own libraries.
        let pcap = "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8";
        self.files.push((pcap.into(), PathBuf::from(pcap), true));
        self
    }

    /// Boots, runs `script` (busybox sh, `set -e` is up to the script; its
    /// applets win over PATH, so call a host tool that busybox also has,
    /// like `ip`, by its full path /usr/local/bin/NAME) and
    /// returns once the guest powered off. qemu is killed on timeout and on
    /// any early return or panic (the guard's Drop).
    pub fn run(&self, script: &str, timeout: Duration) -> Result<Outcome, String> {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let qemu = image::need_tool("qemu-system-x86_64", "qemu-system-x86")?;
        let busybox = Path::new("/bin/busybox");
        if !busybox.is_file() {
            return Err("/bin/busybox not found: install the Debian package busybox-static".into());
        }
        let kernel = {
            let _lock = CacheLock::take()?;
            image::kernel(&self.spec)?
        };
        let mods = {
            let _lock = CacheLock::take()?;
            image::modules(&kernel, &self.modules)?
        };
        let work = tempdir()?;
        let mut cpio = image::Cpio::default();
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "run", "tmp", "etc",
        ] {
            cpio.dir(d);
        }
        cpio.file(
            "bin/busybox",
            0o755,
            &std::fs::read(busybox).map_err(|e| e.to_string())?,
        );
        let mut order = String::new();
        for (name, bytes) in &mods {
            cpio.file(&format!("lib/modules/netwhy/{name}.ko"), 0o644, bytes);
            order.push_str(name);
            order.push('\n');
        }
        cpio.file("lib/modules/netwhy/order", 0o644, order.as_bytes());
        cpio.file("init", 0o755, INIT.as_bytes());
        cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/:/bin/sh\n");
        let mut copied = std::collections::BTreeSet::new();
        for (guest, host, libs) in &self.files {
            if *libs {
                for (p, bytes) in image::with_libraries(host)? {
                    if copied.insert(p.clone()) {
                        cpio.file(&p, 0o755, &bytes);
                    }
                }
            }
            let bytes = std::fs::read(host).map_err(|e| format!("{}: {e}", host.display()))?;
            cpio.file(guest, 0o755, &bytes);
        }
        for dir in &self.dirs {
            let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for e in entries.flatten() {
                let p = e.path();
                if p.is_file() {
                    let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                    cpio.file(&p.to_string_lossy(), 0o755, &bytes);
                }
            }
        }
        cpio.file("payload.sh", 0o755, script.as_bytes());
        let initrd = work.0.join("initrd.cpio");
        std::fs::write(&initrd, cpio.finish()).map_err(|e| e.to_string())?;
        let serial = work.0.join("serial.log");
        let output = work.0.join("output.log");
        let start = Instant::now();
        let child = Command::new(qemu)
            .args(["-M", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1"])
            .args([
                "-m",
                self.memory,
                "-nodefaults",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&kernel.vmlinuz)
            .arg("-initrd")
            .arg(&initrd)
            .args([
                "-append",
                "console=ttyS0 loglevel=4 panic=-1 oops=panic rdinit=/init",
            ])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args([
                "-device",
                "virtio-serial-pci",
                "-device",
                "virtconsole,chardev=out",
            ])
            .arg("-chardev")
            .arg(format!("file,id=out,path={}", output.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
        let mut guard = Killer(child);
        let status = loop {
            if let Some(st) = guard.0.try_wait().map_err(|e| e.to_string())? {
                break st;
            }
            if start.elapsed() > timeout {
                let tail = tail(&std::fs::read_to_string(&serial).unwrap_or_default(), 1500);
                let out = tail_of(&output, 3000);
                return Err(format!(
                    "guest ({}) still running after {timeout:?}: killed.\n--- serial tail:\n{tail}\n--- output tail:\n{out}",
                    self.spec.tag
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let elapsed = start.elapsed();
        let serial_text =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        let out_text =
            String::from_utf8_lossy(&std::fs::read(&output).unwrap_or_default()).into_owned();
        if std::env::var_os("NETWHY_GUEST_DEBUG").is_some() {
            eprintln!("--- guest serial:\n{serial_text}");
        }
        let code = serial_text
            .lines()
            .find_map(|l| l.trim().strip_prefix(EXIT_MARK))
            .and_then(|v| v.trim().parse::<i32>().ok());
        match code {
            Some(code) => Ok(Outcome {
                code,
                output: out_text,
                serial: serial_text,
                elapsed,
            }),
            None => {
                let mut err = String::new();
                if let Some(mut e) = guard.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                Err(format!(
                    "guest ({}) ended ({status}) without an exit code; qemu: {}\n--- serial tail:\n{}\n--- output tail:\n{}",
                    self.spec.tag,
                    err.trim(),
                    tail(&serial_text, 2000),
                    tail(&out_text, 2000)
                ))
            }
        }
    }
}

/// /init: mount what netwhy needs, load modules, run the payload, report.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/local/sbin:/usr/local/bin:/bin:/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
# The payload's output goes to a console (hvc0, TERM=linux from the
# kernel), where netwhy colours; the tests parse it as a log.
export NO_COLOR=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 none /sys/fs/cgroup
ulimit -l unlimited
for m in $(cat /lib/modules/netwhy/order); do
  insmod /lib/modules/netwhy/$m.ko || echo "netwhy-guest: insmod $m failed" > /dev/ttyS0
done
ip link set lo up
cd /tmp
/bin/sh /payload.sh > /dev/hvc0 2>&1
echo "NETWHY-GUEST-EXIT=$?" > /dev/ttyS0
sync
poweroff -f
"#;

/// Kills qemu when the run ends early (timeout, error, test panic).
struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A per-run scratch directory, removed afterwards.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, String> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("netwhy-guest-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(TempDir(p))
}

fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

fn tail_of(p: &Path, n: usize) -> String {
    tail(
        &String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()),
        n,
    )
}

/// Cross-process lock on the cache (test binaries run in parallel): the
/// first one downloads and extracts, the others wait.
struct CacheLock(PathBuf);
impl CacheLock {
    fn take() -> Result<Self, String> {
        let dir = image::cache_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(".lock");
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(CacheLock(path));
                }
                Err(_) => {
                    let pid = std::fs::read_to_string(&path).unwrap_or_default();
                    let pid = pid.trim();
                    if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if start.elapsed() > Duration::from_secs(300) {
                        return Err(format!("guest cache lock {} held too long", path.display()));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}
impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
