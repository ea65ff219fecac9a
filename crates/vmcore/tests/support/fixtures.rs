//! Builds real crash dumps for the tests: boots Debian's cloud kernel under
//! qemu (TCG) with a tiny busybox initramfs that writes known marker lines to
//! /dev/kmsg and panics, then asks qemu (QMP `dump-guest-memory`) for the dump.
//!
//! Why a Rust helper and not a shell script: it needs a QMP client and a cpio
//! writer, and doing both here keeps CI's package list to qemu, busybox and the
//! kernel .deb (no python, no socat, no cpio). It installs nothing: it fails
//! with a line naming the missing package instead.
//!
//! Everything lands in a cache directory (`NETWHY_VMCORE_CACHE`, default
//! `/var/cache/netwhy-vmcore` when writable, else `target/vmcore-fixtures`), so
//! only the first run pays for the boots.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bumped whenever the guest script or the dump set changes, so stale caches
/// are rebuilt instead of silently reused.
const FIXTURE_VERSION: &str = "v1";

/// Files derived from the qemu phys ELF with makedumpfile (suffix, args).
/// `mdf.elf` is that ELF with its program headers moved to offset 64, the
/// only layout makedumpfile accepts; the others are makedumpfile's own
/// kdump-compressed outputs (`-F` writes the flattened stream to stdout).
pub const DERIVED: &[(&str, &[&str])] = &[
    ("mdf-zlib.kdump", &["-c", "-d", "31"]),
    ("mdf-lzo.kdump", &["-l", "-d", "31"]),
    ("mdf-flat.kdump", &["-c", "-F", "-d", "31"]),
    ("mdf-E.elf", &["-E", "-d", "31"]),
];

/// Number of filler lines the "wrap" boot writes: ~80 bytes each, well past the
/// 128 KiB data ring (CONFIG_LOG_BUF_SHIFT=17) and its 4096 descriptors.
pub const WRAP_LINES: usize = 6000;

/// The marker lines every guest writes, in order, before panicking.
pub const MARKERS: &[&str] = &[
    "netwhy-marker: begin",
    "netwhy-marker: utf8 h\u{e9}llo w\u{f6}rld",
    "netwhy-marker: end",
];

/// One boot of the guest and the dumps taken from it.
#[derive(Clone, Copy, Debug)]
pub struct Boot {
    pub name: &'static str,
    /// `-cpu` value: `max` gives LA57 (5-level paging) under TCG, `qemu64` 4-level.
    pub cpu: &'static str,
    pub kaslr: bool,
    /// Extra kernel command line (e.g. `log_buf_len=1M`, which moves the log
    /// into the direct map and so exercises the page-table walk).
    pub extra_cmdline: &'static str,
    /// Filler lines written between the markers.
    pub fill: usize,
}

pub const BOOTS: &[Boot] = &[
    Boot {
        name: "kaslr-wrap",
        cpu: "max",
        kaslr: true,
        extra_cmdline: "",
        fill: WRAP_LINES,
    },
    Boot {
        name: "nokaslr-bigbuf",
        cpu: "qemu64",
        kaslr: false,
        extra_cmdline: "log_buf_len=1M",
        fill: 20,
    },
];

/// Dump formats asked of qemu for every boot: (file suffix, format, paging).
pub const DUMPS: &[(&str, &str, bool)] = &[
    ("elf", "elf", true),
    ("phys.elf", "elf", false),
    ("kdump-zlib", "kdump-zlib", false),
];

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NETWHY_VMCORE_CACHE") {
        return PathBuf::from(d);
    }
    let sys = PathBuf::from("/var/cache/netwhy-vmcore");
    if std::fs::create_dir_all(&sys).is_ok() && is_writable(&sys) {
        return sys;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/vmcore-fixtures")
}

fn is_writable(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(probe);
    ok
}

/// Paths of the dumps of one boot, built on first use.
pub fn dump_path(boot: &str, suffix: &str) -> PathBuf {
    cache_dir()
        .join(FIXTURE_VERSION)
        .join(format!("{boot}.{suffix}"))
}

/// Builds every fixture that is missing. Returns Err with a one-line reason
/// (e.g. a missing package) when a capability is absent.
pub fn ensure_all() -> Result<PathBuf, String> {
    let dir = cache_dir().join(FIXTURE_VERSION);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock = dir.join(".lock");
    let _guard = FileLock::take(&lock)?;
    for boot in BOOTS {
        let done = DUMPS
            .iter()
            .all(|(s, _, _)| dump_path(boot.name, s).exists());
        if !done {
            build_boot(&dir, boot)?;
        }
        derive(boot)?;
    }
    Ok(dir)
}

/// A crude cross-process lock (test binaries run in parallel): create_new on a
/// lock file, waiting while another process holds it.
struct FileLock(PathBuf);
impl FileLock {
    fn take(path: &Path) -> Result<Self, String> {
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(FileLock(path.to_owned()));
                }
                Err(_) => {
                    // A holder that died leaves its pid behind: steal the lock.
                    let pid = std::fs::read_to_string(path).unwrap_or_default();
                    if !pid.is_empty() && !Path::new(&format!("/proc/{}", pid.trim())).exists() {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if start.elapsed() > Duration::from_secs(600) {
                        return Err(format!("fixture lock {} held too long", path.display()));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}
impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Builds the makedumpfile-derived variants of one boot's dump.
fn derive(boot: &Boot) -> Result<(), String> {
    let mdf = dump_path(boot.name, "mdf.elf");
    if !mdf.exists() {
        let tmp = mdf.with_extension("tmp");
        rewrite_phdrs_at_64(&dump_path(boot.name, "phys.elf"), &tmp)?;
        std::fs::rename(&tmp, &mdf).map_err(|e| e.to_string())?;
    }
    for (suffix, args) in DERIVED {
        let out = dump_path(boot.name, suffix);
        if out.exists() {
            continue;
        }
        need_tool("makedumpfile", "makedumpfile")?;
        let tmp = out.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut cmd = Command::new("makedumpfile");
        cmd.args(*args).arg(&mdf);
        if args.contains(&"-F") {
            let f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
            cmd.stdout(f);
        } else {
            cmd.arg(&tmp);
        }
        let o = cmd.output().map_err(|e| format!("makedumpfile: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "makedumpfile {args:?} failed: {}",
                String::from_utf8_lossy(&o.stdout).trim()
            ));
        }
        std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Copies an ELF core with its program headers moved right after the ELF
/// header (qemu leaves a gap and puts them at 192). Fails if they would not
/// fit before the first byte of segment data.
pub fn rewrite_phdrs_at_64(src: &Path, dst: &Path) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};
    std::fs::copy(src, dst).map_err(|e| format!("copy {}: {e}", src.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dst)
        .map_err(|e| e.to_string())?;
    let mut eh = [0u8; 64];
    std::io::Read::read_exact(&mut f, &mut eh).map_err(|e| e.to_string())?;
    let phoff = u64::from_le_bytes(eh[32..40].try_into().unwrap());
    let phnum = u16::from_le_bytes([eh[56], eh[57]]) as usize;
    let mut tab = vec![0u8; phnum * 56];
    f.seek(SeekFrom::Start(phoff)).map_err(|e| e.to_string())?;
    std::io::Read::read_exact(&mut f, &mut tab).map_err(|e| e.to_string())?;
    let first_data = tab
        .chunks(56)
        .map(|p| u64::from_le_bytes(p[8..16].try_into().unwrap()))
        .min()
        .unwrap_or(0);
    if 64 + tab.len() as u64 > first_data {
        return Err(format!(
            "{}: no room to move {phnum} program headers to offset 64",
            src.display()
        ));
    }
    eh[32..40].copy_from_slice(&64u64.to_le_bytes());
    eh[52..54].copy_from_slice(&64u16.to_le_bytes());
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    f.write_all(&eh).map_err(|e| e.to_string())?;
    f.write_all(&tab).map_err(|e| e.to_string())?;
    Ok(())
}

fn need_tool(name: &str, package: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
        || ["/sbin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(name).is_file());
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{name}` not found: install the Debian package {package}"
        ))
    }
}

/// The extracted Debian cloud kernel: (vmlinuz, qemu_fw_cfg.ko, release).
pub fn kernel() -> Result<(PathBuf, PathBuf, String), String> {
    let root = cache_dir().join("kernel");
    if let Some(k) = find_kernel(&root) {
        return Ok(k);
    }
    need_tool("apt-get", "apt")?;
    need_tool("dpkg-deb", "dpkg")?;
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let deb = match std::env::var_os("NETWHY_VMCORE_KERNEL_DEB") {
        Some(d) => PathBuf::from(d),
        None => download_kernel_deb(&root)?,
    };
    let x = root.join("x");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
        "dpkg-deb -x",
    )?;
    find_kernel(&root).ok_or_else(|| format!("no vmlinuz/qemu_fw_cfg.ko inside {}", deb.display()))
}

fn download_kernel_deb(root: &Path) -> Result<PathBuf, String> {
    // The meta package names the current ABI, e.g. linux-image-6.1.0-56-cloud-amd64.
    let out = Command::new("apt-cache")
        .args(["depends", "linux-image-cloud-amd64"])
        .output()
        .map_err(|e| format!("apt-cache: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pkg = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .ok_or("apt-cache knows no linux-image-cloud-amd64 (run `apt-get update`)")?
        .to_string();
    run(
        Command::new("apt-get")
            .args(["download", &pkg])
            .current_dir(root),
        "apt-get download",
    )?;
    std::fs::read_dir(root)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {pkg} produced no .deb"))
}

fn find_kernel(root: &Path) -> Option<(PathBuf, PathBuf, String)> {
    let boot = root.join("x/boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })?;
    let release = vmlinuz
        .file_name()?
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let ko = root.join(format!(
        "x/lib/modules/{release}/kernel/drivers/firmware/qemu_fw_cfg.ko"
    ));
    ko.exists().then_some((vmlinuz, ko, release))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The guest's /init: markers, optional filler, then a sysrq crash (a panic).
fn init_script(boot: &Boot) -> String {
    let fill = if boot.fill > 0 {
        format!(
            "i=0\nwhile [ $i -lt {} ]; do echo \"<6>netwhy-fill $i: the quick brown fox jumps over the lazy dog 0123456789\" > /dev/kmsg; i=$((i+1)); done\n",
            boot.fill
        )
    } else {
        String::new()
    };
    format!(
        "#!/bin/busybox sh\n\
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin\n\
/bin/busybox --install -s\n\
mount -t proc proc /proc\n\
mount -t sysfs sys /sys\n\
mount -t devtmpfs dev /dev\n\
insmod /qemu_fw_cfg.ko\n\
echo '<6>{m0}' > /dev/kmsg\n\
{fill}\
echo '<5>{m1}' > /dev/kmsg\n\
printf '<6>netwhy-marker: two\\nlines\\n' > /dev/kmsg\n\
printf '<6>netwhy-marker: ctl [\\001] tab[\\t]\\n' > /dev/kmsg\n\
echo '<4>{m2}' > /dev/kmsg\n\
echo 1 > /proc/sys/kernel/sysrq\n\
echo c > /proc/sysrq-trigger\n\
sleep 100\n",
        m0 = MARKERS[0],
        m1 = MARKERS[1],
        m2 = MARKERS[2],
    )
}

/// Writes a newc cpio archive (uncompressed: the kernel accepts that).
fn cpio(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ino = 1u32;
    let mut push = |out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]| {
        let hdr = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
        );
        ino += 1;
        out.extend_from_slice(hdr.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (name, mode, data) in entries {
        push(&mut out, name, *mode, data);
    }
    push(&mut out, "TRAILER!!!", 0, &[]);
    out
}

fn build_boot(dir: &Path, boot: &Boot) -> Result<(), String> {
    need_tool("qemu-system-x86_64", "qemu-system-x86")?;
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("/bin/busybox not found: install the Debian package busybox-static".into());
    }
    let (vmlinuz, ko, _release) = kernel()?;
    let work = dir.join(format!("{}.work", boot.name));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let bb = std::fs::read(busybox).map_err(|e| e.to_string())?;
    let kob = std::fs::read(&ko).map_err(|e| e.to_string())?;
    let init = init_script(boot);
    let initrd = cpio(&[
        ("bin", 0o040755, &[]),
        ("bin/busybox", 0o100755, &bb),
        ("init", 0o100755, init.as_bytes()),
        ("qemu_fw_cfg.ko", 0o100644, &kob),
    ]);
    let initrd_path = work.join("initrd.cpio");
    std::fs::write(&initrd_path, initrd).map_err(|e| e.to_string())?;
    let serial = work.join("serial.log");
    let qmp = work.join("qmp.sock");
    let mut append = String::from("console=ttyS0 loglevel=3 printk.devkmsg=on panic=0 ");
    append.push_str(if boot.kaslr { "kaslr " } else { "nokaslr " });
    append.push_str(boot.extra_cmdline);
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-M", "pc", "-accel", "tcg", "-m", "128M", "-smp", "1"])
        .args([
            "-cpu",
            boot.cpu,
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd_path)
        .args(["-append", &append, "-device", "vmcoreinfo"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let result = drive(boot, dir, &serial, &qmp);
    let _ = child.kill();
    let _ = child.wait();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn drive(boot: &Boot, dir: &Path, serial: &Path, qmp: &Path) -> Result<(), String> {
    let start = Instant::now();
    let timeout = Duration::from_secs(240);
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if log.contains("end Kernel panic") {
            break;
        }
        if start.elapsed() > timeout {
            let tail: String = log
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(format!(
                "guest {} did not panic in {:?}; serial tail: {tail}",
                boot.name, timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut q = Qmp::connect(qmp)?;
    q.call(r#"{"execute":"qmp_capabilities"}"#)?;
    q.call(r#"{"execute":"stop"}"#)?;
    for (suffix, format, paging) in DUMPS {
        let final_path = dir.join(format!("{}.{suffix}", boot.name));
        let tmp = dir.join(format!("{}.{suffix}.tmp", boot.name));
        let cmd = format!(
            r#"{{"execute":"dump-guest-memory","arguments":{{"paging":{paging},"protocol":"file:{}","format":"{format}"}}}}"#,
            tmp.display()
        );
        q.call(&cmd)?;
        std::fs::rename(&tmp, &final_path).map_err(|e| e.to_string())?;
    }
    let _ = q.call(r#"{"execute":"quit"}"#);
    Ok(())
}

/// Just enough QMP: send one command, read lines until its return or error,
/// skipping asynchronous events.
struct Qmp(BufReader<UnixStream>);
impl Qmp {
    fn connect(path: &Path) -> Result<Self, String> {
        let s = UnixStream::connect(path)
            .map_err(|e| format!("QMP connect {}: {e}", path.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(300)))
            .map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut greeting = String::new();
        r.read_line(&mut greeting)
            .map_err(|e| format!("QMP greeting: {e}"))?;
        Ok(Qmp(r))
    }
    fn call(&mut self, cmd: &str) -> Result<String, String> {
        self.0
            .get_mut()
            .write_all(cmd.as_bytes())
            .map_err(|e| format!("QMP write: {e}"))?;
        loop {
            let mut line = String::new();
            let n = self
                .0
                .read_line(&mut line)
                .map_err(|e| format!("QMP read: {e}"))?;
            if n == 0 {
                return Err(format!("QMP closed during {cmd}"));
            }
            if line.contains("\"return\"") {
                return Ok(line);
            }
            if line.contains("\"error\"") {
                return Err(format!("QMP {cmd}: {}", line.trim()));
            }
        }
    }
}
