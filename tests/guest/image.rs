//! What goes into a guest: a Debian kernel (downloaded as a .deb and
//! extracted, never installed), its modules with their dependencies
//! (decompressed, in load order), host binaries with the shared libraries
//! they need, all packed as newc cpio archives the kernel unpacks itself.
//!
//! Everything downloaded or derived is cached under [`cache_dir`], so only
//! the first run pays for apt and xz. Errors are one line naming the missing
//! package or the failed step.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Debian kernel flavour the guest can boot: apt's meta package pins the
/// current ABI (e.g. linux-image-6.12-cloud-amd64 → linux-image-6.12.117+deb12-cloud-amd64).
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    /// Short name for messages and cache directories.
    pub tag: &'static str,
    pub meta_package: &'static str,
}

/// bookworm-security's 6.12 (CONFIG_FPROBE=y: kprobe-multi works).
pub const DEBIAN_6_12: KernelSpec = KernelSpec {
    tag: "6.12",
    meta_package: "linux-image-6.12-cloud-amd64",
};
/// bookworm's own 6.1 (tp_btf and kprobes, but no kprobe-multi).
pub const DEBIAN_6_1: KernelSpec = KernelSpec {
    tag: "6.1",
    meta_package: "linux-image-cloud-amd64",
};

/// An extracted kernel: the image and the module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub release: String,
    /// `<root>/lib/modules/<release>`, with a modules.dep we generated.
    pub moddir: PathBuf,
}

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NETWHY_GUEST_CACHE") {
        return PathBuf::from(d);
    }
    let sys = PathBuf::from("/var/cache/netwhy-guest");
    if std::fs::create_dir_all(&sys).is_ok() && writable(&sys) {
        return sys;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/guest-cache")
}

fn writable(dir: &Path) -> bool {
    let p = dir.join(format!(".probe-{}", std::process::id()));
    let ok = std::fs::write(&p, b"").is_ok();
    let _ = std::fs::remove_file(p);
    ok
}

pub fn need_tool(name: &str, package: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{name}` not found: install the Debian package {package}"))
}

pub fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The kernel of `spec`, downloaded and extracted on first use. The caller
/// holds the cache lock.
pub fn kernel(spec: &KernelSpec) -> Result<Kernel, String> {
    let root = cache_dir().join(format!("kernel-{}", spec.tag));
    if let Some(k) = find_kernel(&root) {
        return Ok(k);
    }
    need_tool("dpkg-deb", "dpkg")?;
    need_tool("depmod", "kmod")?;
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let deb = download(spec, &root)?;
    let x = root.join("x.tmp");
    let _ = std::fs::remove_dir_all(&x);
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
        "dpkg-deb -x",
    )?;
    let release = release_in(&x).ok_or_else(|| format!("no vmlinuz in {}", deb.display()))?;
    // The package's postinst would run depmod; we need its modules.dep to
    // know each module's dependencies.
    run(
        Command::new("depmod").arg("-b").arg(&x).arg(&release),
        "depmod",
    )?;
    std::fs::rename(&x, root.join("x")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&deb);
    find_kernel(&root).ok_or_else(|| format!("extracted {} but found no kernel", deb.display()))
}

fn download(spec: &KernelSpec, root: &Path) -> Result<PathBuf, String> {
    need_tool("apt-get", "apt")?;
    let out = run(
        Command::new("apt-cache").args(["depends", spec.meta_package]),
        "apt-cache depends",
    )
    .map_err(|e| {
        format!("{e} (run `apt-get update`; bookworm-security must be a source for 6.12)")
    })?;
    let text = String::from_utf8_lossy(&out);
    let pkg = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| format!("apt knows no {} (run `apt-get update`)", spec.meta_package))?
        .to_string();
    run(
        Command::new("apt-get")
            .args(["download", "-q", &pkg])
            .current_dir(root),
        &format!("apt-get download {pkg}"),
    )?;
    std::fs::read_dir(root)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {pkg} produced no .deb"))
}

fn release_in(x: &Path) -> Option<String> {
    std::fs::read_dir(x.join("boot"))
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("vmlinuz-").map(str::to_string)
        })
}

fn find_kernel(root: &Path) -> Option<Kernel> {
    let x = root.join("x");
    let release = release_in(&x)?;
    let moddir = x.join("lib/modules").join(&release);
    moddir.join("modules.dep").exists().then(|| Kernel {
        vmlinuz: x.join("boot").join(format!("vmlinuz-{release}")),
        release,
        moddir,
    })
}

/// The modules `wanted` and everything they depend on, dependencies first,
/// as (module name, decompressed .ko bytes). Modules built into this kernel
/// are skipped; an unknown name is an error.
pub fn modules(k: &Kernel, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let dep = std::fs::read_to_string(k.moddir.join("modules.dep")).map_err(|e| e.to_string())?;
    let builtin = std::fs::read_to_string(k.moddir.join("modules.builtin")).unwrap_or_default();
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in dep.lines() {
        let Some((file, rest)) = line.split_once(':') else {
            continue;
        };
        let d = rest.split_whitespace().map(mod_name).collect();
        deps.insert(mod_name(file), (file.to_string(), d));
    }
    let is_builtin = |m: &str| builtin.lines().any(|l| mod_name(l) == m);
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        m: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(m.to_string()) {
            return;
        }
        if let Some((_, ds)) = deps.get(m) {
            for d in ds {
                visit(d, deps, seen, order);
            }
        }
        order.push(m.to_string());
    }
    for w in wanted {
        let w = w.replace('-', "_");
        if !deps.contains_key(&w) {
            if is_builtin(&w) {
                continue;
            }
            return Err(format!("kernel {} has no module {w}", k.release));
        }
        visit(&w, &deps, &mut seen, &mut order);
    }
    let cache = cache_dir().join(format!("ko-{}", k.release));
    std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    order
        .into_iter()
        .map(|m| {
            let file = k.moddir.join(&deps[&m].0);
            let out = cache.join(format!("{m}.ko"));
            if !out.exists() {
                let bytes = decompress(&file)?;
                let tmp = out.with_extension("tmp");
                std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
                std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
            }
            Ok((m, std::fs::read(&out).map_err(|e| e.to_string())?))
        })
        .collect()
}

/// `kernel/net/netfilter/nf_nat.ko.xz` → `nf_nat` (dashes as underscores,
/// as the kernel names modules).
fn mod_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.split(".ko").next().unwrap_or(base).replace('-', "_")
}

fn decompress(file: &Path) -> Result<Vec<u8>, String> {
    let name = file.to_string_lossy();
    if name.ends_with(".ko") {
        return std::fs::read(file).map_err(|e| e.to_string());
    }
    let (tool, pkg) = if name.ends_with(".xz") {
        ("xz", "xz-utils")
    } else if name.ends_with(".zst") {
        ("zstd", "zstd")
    } else {
        ("gzip", "gzip")
    };
    let t = need_tool(tool, pkg)?;
    run(Command::new(t).arg("-dc").arg(file), &format!("{tool} -dc"))
}

/// A host executable and every shared library `ldd` says it loads, as
/// (absolute guest path, bytes): the guest gets the same paths, so the
/// host's dynamic loader finds them there too. A static binary needs none.
pub fn with_libraries(exe: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let ldd = need_tool("ldd", "libc-bin")?;
    let o = Command::new(ldd)
        .arg(exe)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !o.status.success() {
        return Err(format!("ldd {} failed: {}", exe.display(), text.trim()));
    }
    let out = o.stdout;
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(&out).lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no file.
        let path = match line.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let bytes = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
            files.push((p.to_string(), bytes));
        }
    }
    Ok(files)
}

/// newc cpio writer. Parent directories are emitted before their files
/// (the kernel's unpacker does not create them), each path once.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let hdr = format!(
            "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.out.extend_from_slice(hdr.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        let mut acc = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            if self.dirs.insert(acc.clone()) {
                let a = acc.clone();
                self.entry(&a, 0o040755, &[]);
            }
        }
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, 0o100000 | mode, data);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[test]
fn mod_names_follow_the_kernel() {
    assert_eq!(mod_name("kernel/net/netfilter/nf_nat.ko.xz"), "nf_nat");
    assert_eq!(mod_name("kernel/drivers/net/veth.ko"), "veth");
    assert_eq!(mod_name("kernel/x/nft-reject.ko.zst"), "nft_reject");
}
