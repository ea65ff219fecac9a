//! `netwhy --version` names everything a bug report needs.
mod common;

use common::*;

#[test]
fn version_names_libbpf_kernel_hook_btf_and_libpcap() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    for want in [
        format!("netwhy {}", env!("CARGO_PKG_VERSION")),
        "libbpf: v1.".into(),
        format!("kernel: {}", release.trim()),
        "BTF: ".into(),
        "drop hook: ".into(),
        "libpcap: ".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    // On this project's machines the kernel has BTF and libpcap is installed.
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(text.contains("drop hook: tp_btf/kfree_skb"), "{text}");
        assert!(text.contains("libpcap: libpcap.so"), "{text}");
    }
}
