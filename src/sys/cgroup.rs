//! The cgroup v2 hierarchy, wherever this process can reach it.
//!
//! `netwhy run` puts its command in a cgroup of its own, and the BPF side
//! matches sockets by that cgroup's id; `netwhy trace --pid` needs the id
//! of a process's cgroup. Both need the v2 hierarchy, which is not always
//! mounted where netwhy runs:
//! - hybrid hosts mount it at /sys/fs/cgroup/unified, unified ones at
//!   /sys/fs/cgroup;
//! - `ip netns exec` gives its command a mount namespace with a fresh /sys
//!   in which no cgroup hierarchy is mounted;
//! - in a container there may be none, a read-only one, or the host's mount
//!   seen from a cgroup namespace: its root then lies above the namespace's
//!   root (mountinfo shows `/..`), and paths of the namespace, the ones
//!   /proc/PID/cgroup gives, cannot be resolved under it.
//!
//! So [`Hierarchy::find`] takes (1) a cgroup2 mount of our mount namespace
//! whose root lies inside our cgroup namespace, else (2) a private mount:
//! `fsopen` + `fsmount` make a mount attached to no directory, seen by no
//! other process and released by the kernel when its fd is closed, even on
//! SIGKILL, so it needs no undo record. In a cgroup namespace it shows the
//! namespace's subtree, which is what /proc/PID/cgroup paths are relative
//! to. Everything else goes through directory fds (`*at` calls), so a
//! mounted and a private hierarchy are used the same way.
//!
//! Not through PID 1's mount namespace (/proc/1/root): that needs ptrace
//! access to PID 1, which root lacks when PID 1 holds a capability it does
//! not (the case on this project's CI machines), and in a container PID 1
//! is the container's init, with nothing more mounted than we have.
//!
//! A cgroup2 mount made from the initial cgroup namespace applies its mount
//! options (nsdelegate, memory_recursiveprot...) to the whole hierarchy
//! (`apply_cgroup_root_flags` in kernel/cgroup/cgroup.c): a bare mount
//! would clear the host's. The private mount therefore restates the options
//! of a cgroup2 mount it can see (ours, or PID 1's: /proc/1/mountinfo is
//! world-readable), and refuses when it sees none.
//!
//! A cgroup's id, the one `bpf_get_current_cgroup_id()` and
//! `sk->sk_cgrp_data.cgroup->kn->id` give, is its kernfs node id, which is
//! the inode number of its directory on 64-bit kernels.
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// The initial cgroup namespace's inode (`PROC_CGROUP_INIT_INO`,
/// include/linux/proc_ns.h): fixed by the kernel.
const INIT_CGROUP_NS: u64 = 0xEFFF_FFFB;

// <linux/mount.h>
const FSOPEN_CLOEXEC: libc::c_long = 1;
const FSCONFIG_SET_FLAG: libc::c_long = 0;
const FSCONFIG_CMD_CREATE: libc::c_long = 6;
const FSMOUNT_CLOEXEC: libc::c_long = 1;

/// One cgroup2 line of a mountinfo file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// The mount's root in the hierarchy, relative to the *reader's* cgroup
    /// namespace: `/` for the whole (namespace's) hierarchy, `/a/b` for a
    /// bind-mounted subtree, `/..` for a mount made outside the namespace.
    pub root: String,
    pub mountpoint: PathBuf,
    /// Super options, e.g. `rw,nsdelegate,memory_recursiveprot`: the
    /// hierarchy-wide flags, the same on every cgroup2 mount.
    pub super_opts: String,
}

impl Cgroup2Mount {
    /// Whether paths of our cgroup namespace resolve under this mount.
    fn inside_namespace(&self) -> bool {
        self.root.starts_with('/') && !self.root.split('/').any(|c| c == "..")
    }
}

/// The cgroup2 mounts listed in a mountinfo file (proc(5)).
pub fn parse_mountinfo(text: &str) -> Vec<Cgroup2Mount> {
    text.lines()
        .filter_map(|l| {
            // Paths have their spaces escaped (\040): " - " only separates.
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split(' ');
            if post.next()? != "cgroup2" {
                return None;
            }
            let super_opts = post.nth(1)?.to_string();
            let mut pre = pre.split(' ');
            let root = String::from_utf8_lossy(&unescape(pre.nth(3)?)).into_owned();
            let mountpoint = PathBuf::from(OsStr::from_bytes(&unescape(pre.next()?)));
            Some(Cgroup2Mount {
                root,
                mountpoint,
                super_opts,
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// The options a new cgroup2 mount must restate to leave the hierarchy's
/// flags as they are: the super options but the read-only state, which is
/// not a hierarchy flag.
fn hierarchy_flags(super_opts: &str) -> Vec<String> {
    super_opts
        .split(',')
        .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
        .map(String::from)
        .collect()
}

/// The inode of this process's cgroup namespace (0 if it cannot be read).
pub fn namespace() -> u64 {
    fs::metadata("/proc/self/ns/cgroup").map_or(0, |m| m.ino())
}

/// The cgroup v2 hierarchy, reached through a directory fd.
pub struct Hierarchy {
    /// The directory at the top of what we can reach (`O_PATH`). For a
    /// private mount, the only reference keeping the mount alive.
    root: OwnedFd,
    /// `root`'s path in the hierarchy as /proc/PID/cgroup writes paths
    /// (relative to our cgroup namespace's root): `/` but for a mounted
    /// subtree.
    base: String,
    /// Where it is mounted; None for a private mount.
    mountpoint: Option<PathBuf>,
}

impl Hierarchy {
    /// The hierarchy, mounted here or else privately mounted; `writable`
    /// skips read-only mounts (containers often get one) for a private
    /// mount, which is read-write.
    pub fn find(writable: bool) -> Result<Hierarchy> {
        let own = fs::read_to_string("/proc/self/mountinfo")
            .map(|t| parse_mountinfo(&t))
            .unwrap_or_default();
        let mut mounted: Vec<&Cgroup2Mount> = own.iter().filter(|m| m.inside_namespace()).collect();
        // The whole namespace's hierarchy first, then bind-mounted subtrees.
        mounted.sort_by_key(|m| m.root != "/");
        for m in mounted {
            let Ok(root) = open_at(
                libc::AT_FDCWD,
                &path_c(&m.mountpoint)?,
                libc::O_PATH | libc::O_DIRECTORY,
            ) else {
                continue;
            };
            if writable && read_only(&root) {
                continue;
            }
            return Ok(Hierarchy {
                root,
                base: m.root.clone(),
                mountpoint: Some(m.mountpoint.clone()),
            });
        }
        Self::private(&own)
    }

    /// A private mount of the hierarchy (see the module comment).
    fn private(own: &[Cgroup2Mount]) -> Result<Hierarchy> {
        let flags = if namespace() == INIT_CGROUP_NS {
            let pid1 = fs::read_to_string("/proc/1/mountinfo")
                .map(|t| parse_mountinfo(&t))
                .unwrap_or_default();
            let Some(seen) = own.iter().chain(&pid1).next() else {
                return Err(anyhow!(
                    "no cgroup2 mount here or in PID 1's mount namespace to copy the hierarchy's \
                     options from (a new mount without them would reset them): mount it: \
                     mount -t cgroup2 none /sys/fs/cgroup"
                ));
            };
            hierarchy_flags(&seen.super_opts)
        } else {
            // Outside the initial cgroup namespace the kernel ignores a
            // mount's hierarchy flags.
            Vec::new()
        };
        let root = mount_private(&flags).map_err(|e| {
            let mount = if flags.is_empty() {
                "mount -t cgroup2 none /sys/fs/cgroup".to_string()
            } else {
                format!("mount -t cgroup2 -o {} none /sys/fs/cgroup", flags.join(","))
            };
            let fix = match e.raw_os_error() {
                Some(libc::EPERM) => "mounting needs CAP_SYS_ADMIN: give netwhy that capability, \
                    or run it where the hierarchy is mounted (`netwhy run -- ip netns exec NS CMD` \
                    rather than `ip netns exec NS netwhy run -- CMD`)"
                    .to_string(),
                Some(libc::ENODEV) => "this kernel has no cgroup v2: boot one with CONFIG_CGROUPS=y".into(),
                _ => format!("mount it: {mount}"),
            };
            anyhow!("not mounted in this mount namespace, and mounting it privately failed ({e}): {fix}")
        })?;
        Ok(Hierarchy {
            root,
            base: "/".into(),
            mountpoint: None,
        })
    }

    /// Where the hierarchy is mounted (None when privately mounted).
    pub fn mountpoint(&self) -> Option<&Path> {
        self.mountpoint.as_deref()
    }

    /// The path in the hierarchy of a new cgroup `name` at the top of what
    /// we can reach.
    pub fn child(&self, name: &str) -> String {
        format!("{}/{name}", self.base.trim_end_matches('/'))
    }

    /// `cg` (a hierarchy path) relative to `root` ("" for `root` itself);
    /// None when it lies outside what `root` reaches.
    fn inner<'a>(&self, cg: &'a str) -> Option<&'a str> {
        let r = if self.base == "/" {
            cg.strip_prefix('/')
        } else {
            cg.strip_prefix(self.base.as_str()).and_then(|r| {
                if r.is_empty() {
                    Some(r)
                } else {
                    r.strip_prefix('/')
                }
            })
        }?;
        (!r.split('/').any(|c| c == "..")).then(|| r.trim_end_matches('/'))
    }

    /// [`Hierarchy::inner`] for the `*at` calls.
    fn rel(&self, cg: &str) -> io::Result<CString> {
        let Some(inner) = self.inner(cg) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cgroup {cg} is outside the reachable hierarchy ({})",
                    self.show(&self.base)
                ),
            ));
        };
        CString::new(if inner.is_empty() { "." } else { inner }).map_err(io::Error::other)
    }

    /// `cg` for messages: its directory, or its hierarchy path when the
    /// hierarchy is privately mounted.
    pub fn show(&self, cg: &str) -> String {
        match (&self.mountpoint, self.inner(cg)) {
            (Some(mp), Some("")) => mp.display().to_string(),
            (Some(mp), Some(r)) => mp.join(r).display().to_string(),
            (Some(_), None) => cg.to_string(),
            (None, _) => format!("{cg} (cgroup v2, mounted privately)"),
        }
    }

    /// The id of cgroup `cg` (a path as /proc/PID/cgroup gives it).
    pub fn id(&self, cg: &str) -> io::Result<u64> {
        Ok(stat_at(self.root.as_raw_fd(), &self.rel(cg)?)?.st_ino)
    }

    /// Creates cgroup `name` (at [`Hierarchy::child`]).
    pub fn create(&self, name: &str) -> io::Result<Cgroup> {
        let path = self.child(name);
        let rel = self.rel(&path)?;
        // SAFETY: a directory fd we own and a NUL-terminated path.
        check(unsafe { libc::mkdirat(self.root.as_raw_fd(), rel.as_ptr(), 0o755) })?;
        let dir = open_at(
            self.root.as_raw_fd(),
            &rel,
            libc::O_PATH | libc::O_DIRECTORY,
        )?;
        let id = stat_at(dir.as_raw_fd(), c".")?.st_ino;
        Ok(Cgroup { path, id, dir })
    }

    /// Removes cgroup `cg`, killing what is still inside first (an empty
    /// cgroup is the only removable one). Gone already is success.
    pub fn remove(&self, cg: &str) -> io::Result<()> {
        let rel = self.rel(cg)?;
        let fd = self.root.as_raw_fd();
        match stat_at(fd, &rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        // cgroup.kill (5.14+) ends every process inside at once.
        if let Ok(dir) = open_at(fd, &rel, libc::O_PATH | libc::O_DIRECTORY) {
            let _ = write_at(dir.as_raw_fd(), c"cgroup.kill", b"1");
        }
        let mut last = Ok(());
        for _ in 0..50 {
            // SAFETY: a directory fd we own and a NUL-terminated path.
            last = check(unsafe { libc::unlinkat(fd, rel.as_ptr(), libc::AT_REMOVEDIR) });
            match &last {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        last
    }
}

/// A cgroup netwhy created, held open so processes can join it without a
/// path (a private mount has none).
pub struct Cgroup {
    /// Its path in the hierarchy, as /proc/PID/cgroup shows it.
    pub path: String,
    /// Its id, as the BPF side sees it.
    pub id: u64,
    dir: OwnedFd,
}

impl Cgroup {
    /// A closure that moves the calling process into this cgroup, for
    /// `CommandExt::pre_exec`: between fork and exec it only calls openat,
    /// write and close on this cgroup's directory fd, which must stay open
    /// (this Cgroup alive) until the child is spawned.
    pub fn joiner(&self) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
        let dir = self.dir.as_raw_fd();
        move || write_at(dir, c"cgroup.procs", b"0")
    }
}

/// Starts `cmd` already inside `cg`: the child joins it between fork and
/// exec, so not one of its packets predates whatever watches the cgroup.
pub fn spawn_in(cmd: &[String], cg: &Cgroup) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command"))?;
    let mut c = std::process::Command::new(prog);
    c.args(args);
    // SAFETY: the joiner makes only async-signal-safe calls (openat, write,
    // close) on the cgroup's directory fd, open until `cg` is dropped.
    unsafe { c.pre_exec(cg.joiner()) };
    c.spawn()
}

/// A name for a cgroup of `prefix`'s own: `PREFIX-PID-RANDOM`. The pid
/// alone is not unique where processes of several pid namespaces share a
/// cgroup namespace (containers with the host's), and a killed run's
/// journal must not remove another run's cgroup.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:08x}",
        std::process::id(),
        super::random_u32()
    )
}

/// The cgroup v2 path of process `pid`, as /proc/PID/cgroup gives it:
/// relative to our cgroup namespace's root (`/..` above it).
pub fn path_of(pid: u32) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("no process {pid}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(String::from)
        .with_context(|| format!("process {pid} has no cgroup v2 membership"))
}

/// The cgroup id of process `pid`.
pub fn id_of(pid: u32) -> Result<u64> {
    let path = path_of(pid)?;
    let h = Hierarchy::find(false).context("finding the cgroup v2 hierarchy")?;
    h.id(&path)
        .with_context(|| format!("reading cgroup {}", h.show(&path)))
}

/// `fsopen("cgroup2")`, restate `flags`, `fsmount`: the hierarchy's root as
/// a detached mount (see the module comment).
fn mount_private(flags: &[String]) -> io::Result<OwnedFd> {
    // SAFETY: fsopen with a NUL-terminated name; the fd is owned at once.
    let fs =
        owned(unsafe { libc::syscall(libc::SYS_fsopen, c"cgroup2".as_ptr(), FSOPEN_CLOEXEC) })?;
    let null = std::ptr::null::<libc::c_char>();
    for f in flags {
        let key = CString::new(f.as_str()).map_err(io::Error::other)?;
        // SAFETY: fsconfig on our fs context fd with a NUL-terminated key.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                key.as_ptr(),
                null,
                0,
            )
        };
        owned_or_zero(r)?;
    }
    // SAFETY: as above; CMD_CREATE takes no key or value.
    owned_or_zero(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            null,
            null,
            0,
        )
    })?;
    // SAFETY: fsmount on our configured context; the fd is owned at once.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })
}

fn owned(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd the kernel just returned; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

fn owned_or_zero(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn check(r: libc::c_int) -> io::Result<()> {
    owned_or_zero(r.into())
}

fn path_c(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("bad path {}", p.display()))
}

fn open_at(dir: RawFd, rel: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: openat on a NUL-terminated path; the fd is owned at once.
    owned(unsafe { libc::openat(dir, rel.as_ptr(), flags | libc::O_CLOEXEC) }.into())
}

fn stat_at(dir: RawFd, rel: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is valid; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a stat buffer we own.
    check(unsafe { libc::fstatat(dir, rel.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// Writes `data` to file `rel` under directory fd `dir` with raw syscalls
/// only (openat, write, close): async-signal-safe, for use after fork.
fn write_at(dir: RawFd, rel: &CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: raw syscalls on a NUL-terminated path and a buffer we own;
    // the fd is closed on every path.
    unsafe {
        let fd = libc::openat(dir, rel.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

fn read_only(fd: &OwnedFd) -> bool {
    // SAFETY: an all-zero statvfs is valid; fstatvfs fills it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: an fd we own and a buffer we own.
    let r = unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) };
    r == 0 && st.f_flag & libc::ST_RDONLY != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hybrid host's lines, a bind-mounted subtree with a space in its
    /// mount point, and the host's mount seen from a cgroup namespace.
    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
77 23 0:38 /k8s.io/abc /run/my\\040cg rw - cgroup2 none rw,nsdelegate,memory_recursiveprot
62 52 0:38 /.. /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 ro
";

    #[test]
    fn parses_cgroup2_lines_only_with_escapes_and_super_options() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].root, "/");
        assert_eq!(m[0].mountpoint, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[0].super_opts, "rw,nsdelegate,memory_recursiveprot");
        assert_eq!(m[1].root, "/k8s.io/abc");
        assert_eq!(m[1].mountpoint, Path::new("/run/my cg"));
        assert_eq!(m[2].root, "/..");
        assert_eq!(unescape("a\\134b\\011c\\12"), b"a\\b\tc\\12");
    }

    #[test]
    fn a_mount_above_the_cgroup_namespace_root_is_not_used() {
        let m = parse_mountinfo(MOUNTINFO);
        let inside: Vec<bool> = m.iter().map(|m| m.inside_namespace()).collect();
        assert_eq!(inside, [true, true, false]);
    }

    #[test]
    fn a_new_mount_restates_the_hierarchy_flags_but_not_rw() {
        assert_eq!(
            hierarchy_flags("rw,nsdelegate,memory_recursiveprot"),
            ["nsdelegate", "memory_recursiveprot"]
        );
        assert!(hierarchy_flags("rw").is_empty());
        assert!(hierarchy_flags("ro").is_empty());
    }

    fn hierarchy(base: &str, mountpoint: Option<&str>) -> Hierarchy {
        Hierarchy {
            root: open_at(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY).unwrap(),
            base: base.into(),
            mountpoint: mountpoint.map(PathBuf::from),
        }
    }

    #[test]
    fn paths_resolve_only_inside_the_mounted_subtree() {
        let whole = hierarchy("/", Some("/sys/fs/cgroup/unified"));
        assert_eq!(whole.rel("/").unwrap().as_bytes(), b".");
        assert_eq!(whole.rel("/a/b").unwrap().as_bytes(), b"a/b");
        assert!(whole.rel("/../x").is_err(), "outside the namespace");
        assert_eq!(whole.child("netwhy-run-1"), "/netwhy-run-1");
        assert_eq!(whole.show("/a"), "/sys/fs/cgroup/unified/a");
        assert_eq!(whole.show("/"), "/sys/fs/cgroup/unified");
        let sub = hierarchy("/k8s.io/abc", Some("/sys/fs/cgroup"));
        assert_eq!(sub.rel("/k8s.io/abc").unwrap().as_bytes(), b".");
        assert_eq!(sub.rel("/k8s.io/abc/x").unwrap().as_bytes(), b"x");
        assert!(sub.rel("/k8s.io/abcd").is_err());
        assert!(sub.rel("/other").is_err());
        assert_eq!(sub.child("n"), "/k8s.io/abc/n");
        assert_eq!(sub.show("/k8s.io/abc/n"), "/sys/fs/cgroup/n");
        let private = hierarchy("/", None);
        assert_eq!(private.show("/n"), "/n (cgroup v2, mounted privately)");
    }
}
