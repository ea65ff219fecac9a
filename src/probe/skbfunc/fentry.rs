//! fentry on many functions: a tracing program is verified against one
//! target, so each function needs its own load. libbpf offers no way to
//! clone a loaded program, and re-opening the object per function would
//! parse vmlinux BTF each time; instead the instructions libbpf finalised
//! for one target (relocated, map fds embedded) are loaded again through
//! `bpf_prog_load` for every other function with the same skb position,
//! and linked with the function id as the cookie.
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys as sys;

/// A loaded and linked copy. Dropping it detaches (link first, then prog).
pub struct Clone {
    link: Option<OwnedFd>,
    _prog: OwnedFd,
}

impl Drop for Clone {
    fn drop(&mut self) {
        self.link.take();
    }
}

/// vmlinux BTF as libbpf sees it, for function type ids.
pub struct VmlinuxBtf(*mut sys::btf);

impl VmlinuxBtf {
    pub fn load() -> Result<Self, String> {
        // SAFETY: plain libbpf call; errors come back as NULL + errno.
        let p = unsafe { sys::btf__load_vmlinux_btf() };
        if p.is_null() {
            return Err(format!(
                "reading vmlinux BTF: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(VmlinuxBtf(p))
    }

    /// The BTF id of function `name` (BTF_KIND_FUNC).
    pub fn func_id(&self, name: &str) -> Option<u32> {
        let c = CString::new(name).ok()?;
        // SAFETY: self.0 is a live btf; c is NUL-terminated.
        let id = unsafe { sys::btf__find_by_name_kind(self.0, c.as_ptr(), sys::BTF_KIND_FUNC) };
        (id > 0).then_some(id as u32)
    }
}

/// A module's split BTF (type ids) and the kernel's BTF object fd for it,
/// which a program attaching to one of the module's functions must name.
pub struct ModuleBtf {
    btf: *mut sys::btf,
    pub fd: OwnedFd,
}

// SAFETY: only read after construction (btf__find_by_name_kind).
unsafe impl Sync for ModuleBtf {}
unsafe impl Sync for VmlinuxBtf {}

impl ModuleBtf {
    pub fn load(vmlinux: &VmlinuxBtf, module: &str) -> Result<Self, String> {
        let c = CString::new(module).map_err(|e| e.to_string())?;
        // SAFETY: vmlinux.0 is live; c is NUL-terminated.
        let btf = unsafe { sys::btf__load_module_btf(c.as_ptr(), vmlinux.0) };
        if btf.is_null() {
            return Err(format!("no BTF for module {module}"));
        }
        let this = |fd| ModuleBtf { btf, fd };
        let mut id = 0u32;
        // Walk the kernel's BTF objects for the one named after the module.
        loop {
            // SAFETY: plain syscall wrappers on valid pointers.
            if unsafe { sys::bpf_btf_get_next_id(id, &mut id) } != 0 {
                unsafe { sys::btf__free(btf) };
                return Err(format!("no kernel BTF object for module {module}"));
            }
            let fd = unsafe { sys::bpf_btf_get_fd_by_id(id) };
            if fd < 0 {
                continue;
            }
            // SAFETY: a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let mut name = [0u8; 64];
            let mut info = sys::bpf_btf_info {
                name: name.as_mut_ptr() as u64,
                name_len: name.len() as u32,
                ..Default::default()
            };
            let mut len = std::mem::size_of::<sys::bpf_btf_info>() as u32;
            // SAFETY: info and name outlive the call.
            let rc = unsafe { sys::bpf_btf_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
            let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            if rc == 0 && info.kernel_btf != 0 && &name[..n] == module.as_bytes() {
                return Ok(this(fd));
            }
        }
    }

    pub fn func_id(&self, name: &str) -> Option<u32> {
        let c = CString::new(name).ok()?;
        // SAFETY: self.btf is live; c is NUL-terminated.
        let id = unsafe { sys::btf__find_by_name_kind(self.btf, c.as_ptr(), sys::BTF_KIND_FUNC) };
        (id > 0).then_some(id as u32)
    }
}

impl Drop for ModuleBtf {
    fn drop(&mut self) {
        // SAFETY: allocated by btf__load_module_btf, freed once.
        unsafe { sys::btf__free(self.btf) };
    }
}

impl Drop for VmlinuxBtf {
    fn drop(&mut self) {
        // SAFETY: allocated by btf__load_vmlinux_btf, freed once.
        unsafe { sys::btf__free(self.0) };
    }
}

fn errno(what: &str, rc: i32) -> String {
    let e = if rc < 0 && rc != -1 {
        std::io::Error::from_raw_os_error(-rc)
    } else {
        std::io::Error::last_os_error()
    };
    format!("{what}: {e}")
}

/// Where a tracing program runs: on entry, or on return (fexit, which
/// also sees the return value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fentry,
    Fexit,
}

impl Kind {
    fn attach_type(self) -> sys::bpf_attach_type {
        match self {
            Kind::Fentry => sys::BPF_TRACE_FENTRY,
            Kind::Fexit => sys::BPF_TRACE_FEXIT,
        }
    }
}

/// Loads `insns` as a `kind` program on BTF function `btf_id` (of the
/// module BTF object `module`, else vmlinux) and links it with `cookie`.
/// Fails for that one function only.
pub fn attach(
    insns: &[sys::bpf_insn],
    btf_id: u32,
    module: Option<BorrowedFd<'_>>,
    cookie: u64,
    kind: Kind,
) -> Result<Clone, String> {
    let opts = sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as _,
        expected_attach_type: kind.attach_type(),
        attach_btf_id: btf_id,
        attach_btf_obj_fd: module.map_or(0, |f| f.as_raw_fd() as u32),
        ..Default::default()
    };
    let mut opts = opts;
    // SAFETY: insns is a valid slice; names are NUL-terminated literals;
    // opts lives across the call.
    let fd = unsafe {
        sys::bpf_prog_load(
            sys::BPF_PROG_TYPE_TRACING,
            match kind {
                Kind::Fentry => c"nw_skb_fentry".as_ptr(),
                Kind::Fexit => c"nw_clone_fexit".as_ptr(),
            },
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            &mut opts,
        )
    };
    if fd < 0 {
        return Err(errno("load", fd));
    }
    // SAFETY: a fresh fd we own.
    let prog = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut lopts = sys::bpf_link_create_opts {
        sz: std::mem::size_of::<sys::bpf_link_create_opts>() as _,
        ..Default::default()
    };
    lopts.__bindgen_anon_1.tracing =
        sys::bpf_link_create_opts__bindgen_ty_1__bindgen_ty_4 { cookie };
    // SAFETY: prog is a loaded tracing program; lopts is initialised.
    let lfd = unsafe { sys::bpf_link_create(fd, 0, kind.attach_type(), &lopts) };
    if lfd < 0 {
        return Err(errno("link", lfd));
    }
    Ok(Clone {
        // SAFETY: a fresh fd we own.
        link: Some(unsafe { OwnedFd::from_raw_fd(lfd) }),
        _prog: prog,
    })
}
