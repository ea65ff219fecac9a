//! `netwhy --version`: what a bug report needs in one paste — netwhy's
//! version, the libbpf it carries, the running kernel, which drop hook this
//! kernel gives, where drop reason names come from, and whether libpcap
//! (tcpdump filters for `trace`) can be loaded.
use crate::kernel::reasons::DropReasons;
use crate::probe::backend::drop_hooks;

pub fn text() -> String {
    let mut s = format!("netwhy {}\n", env!("CARGO_PKG_VERSION"));
    // SAFETY: libbpf returns a static NUL-terminated string.
    let libbpf =
        unsafe { std::ffi::CStr::from_ptr(libbpf_rs::libbpf_sys::libbpf_version_string()) };
    s += &format!("libbpf: {}\n", libbpf.to_string_lossy());
    s += &format!("kernel: {}\n", crate::kernel::release().unwrap_or_default());
    let btf = std::path::Path::new(crate::kernel::btf::VMLINUX_BTF).exists();
    s += &format!(
        "BTF: {}\n",
        if btf {
            crate::kernel::btf::VMLINUX_BTF
        } else {
            "missing (boot a kernel with CONFIG_DEBUG_INFO_BTF=y)"
        }
    );
    let hooks: Vec<&str> = drop_hooks().iter().map(|h| h.as_str()).collect();
    s += &format!(
        "drop hook: {}\n",
        match hooks.first() {
            Some(h) => format!("{h}/kfree_skb (available: {})", hooks.join(", ")),
            None => "none (needs BTF or tracefs)".into(),
        }
    );
    s += &match DropReasons::load() {
        Ok(r) => format!(
            "drop reasons: {} names from {:?}\n",
            r.iter().count(),
            r.source()
        ),
        Err(e) => format!("drop reasons: unreadable ({e})\n"),
    };
    s += &format!(
        "libpcap: {}\n",
        crate::filter::libpcap::library_name()
            .unwrap_or("not found (apt-get install libpcap0.8): trace takes no tcpdump filter")
    );
    s
}
