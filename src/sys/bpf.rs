//! What the kernel says about a loaded BPF program (bpf_prog_get_info_by_fd),
//! by program id: its name and tag for `state::tcbpf`'s listing, and the
//! name of its main function in its BTF, which a program tracing it
//! (`probe::tcverdict`) must attach to.
use std::os::fd::AsRawFd;

use libbpf_rs::libbpf_sys as sys;

/// (name, hex tag) of program `id`, None when it is gone.
pub fn prog_name_tag(id: u32) -> Option<(String, String)> {
    let fd = libbpf_rs::Program::fd_from_id(id).ok()?;
    // SAFETY: bpf_prog_info is plain data; zeroed asks for no arrays.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: valid fd, and `info` of `len` bytes.
    if unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) } != 0 {
        return None;
    }
    let name: Vec<u8> = info.name.iter().map(|&c| c as u8).collect();
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let tag = info.tag.iter().map(|b| format!("{b:02x}")).collect();
    Some((String::from_utf8_lossy(&name[..end]).into_owned(), tag))
}

/// The name of program `id`'s main function in its BTF: what a tracing
/// program attaching to it must name (the kernel keeps only 15 characters
/// of the program name). None without BTF, or when it is gone.
pub fn prog_func_name(id: u32) -> Option<String> {
    let fd = libbpf_rs::Program::fd_from_id(id).ok()?;
    let mut finfo = sys::bpf_func_info::default();
    // SAFETY: bpf_prog_info is plain data.
    let mut info: sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    info.nr_func_info = 1;
    info.func_info_rec_size = std::mem::size_of::<sys::bpf_func_info>() as u32;
    info.func_info = &mut finfo as *mut sys::bpf_func_info as u64;
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: valid fd; `info` points at one func_info record we own.
    if unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) } != 0
        || info.btf_id == 0
        || info.nr_func_info == 0
    {
        return None;
    }
    // SAFETY: plain libbpf calls; the btf is freed before returning.
    unsafe {
        let btf = sys::btf__load_from_kernel_by_id(info.btf_id);
        if btf.is_null() {
            return None;
        }
        let t = sys::btf__type_by_id(btf, finfo.type_id);
        let name = if t.is_null() {
            None
        } else {
            let p = sys::btf__name_by_offset(btf, (*t).name_off);
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        sys::btf__free(btf);
        name.filter(|n| !n.is_empty())
    }
}
