//! Tests for drop-reason tables: the tracefs parser on a saved format file,
//! BTF with subsystem reasons from a hand-built blob, and BTF vs tracefs on
//! the running kernel.
use super::*;
use crate::kernel::btf::tests::{Builder, KIND_ENUM};

const FORMAT_6_18: &str = include_str!("../../tests/fixtures/kernel/kfree_skb_format_6.18.txt");

#[test]
fn tracefs_fixture_parses() {
    let r = DropReasons::from_tracefs_format(FORMAT_6_18).unwrap();
    assert_eq!(r.source(), ReasonSource::Tracefs);
    assert!(r.has_reasons());
    assert_eq!(r.value("NO_SOCKET"), Some(3));
    assert_eq!(r.value("netfilter_drop"), Some(12));
    assert_eq!(r.value("SKB_DROP_REASON_IP_RPFILTER"), Some(16));
    assert_eq!(r.name(3), "NO_SOCKET");
    assert_eq!(r.name(127), "RECURSION_LIMIT");
    // MAX is a sentinel, not a reason.
    assert_eq!(r.value("MAX"), None);
    assert_eq!(r.name(128), "UNKNOWN(128)");
    // CONSUMED is inferred from NOT_SPECIFIED == 2.
    assert_eq!(r.consumed(), 1);
    assert_eq!(r.value("skb_consumed"), Some(1));
    assert!(!r.is_drop(1) && !r.is_drop(0) && r.is_drop(3));
    assert_eq!(r.iter().count(), 128);
}

#[test]
fn tracefs_old_layouts() {
    // 5.17: NOT_SPECIFIED first, no CONSUMED; unevaluated symbols skipped.
    let f = r#"print fmt: "reason: %s", __print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, { SKB_DROP_REASON_X, "X" }, { 0x1, "NO_SOCKET" })"#;
    let r = DropReasons::from_tracefs_format(f).unwrap();
    assert_eq!(r.value("NO_SOCKET"), Some(1));
    assert_eq!(r.value("X"), None);
    assert_eq!(r.consumed(), u32::MAX);
    assert!(r.is_drop(0));
    // Before 5.17 there is no reason field.
    let old = r#"print fmt: "skbaddr=%p protocol=%u location=%p", REC->skbaddr"#;
    assert!(DropReasons::from_tracefs_format(old).is_err());
    assert!(DropReasons::from_tracefs_format("").is_err());
}

#[test]
fn no_reasons_table() {
    let r = DropReasons::none();
    assert!(!r.has_reasons());
    assert_eq!(r.source(), ReasonSource::None);
    assert_eq!(r.name(5), "UNKNOWN(5)");
    assert!(r.is_drop(5));
}

/// vmlinux-like base with both enums, plus a module with subsystem reasons.
fn synthetic() -> (Btf, Btf) {
    let mut b = Builder::new();
    let core = [
        ("SKB_NOT_DROPPED_YET", 0u32),
        ("SKB_CONSUMED", 1),
        ("SKB_DROP_REASON_NOT_SPECIFIED", 2),
        ("SKB_DROP_REASON_NO_SOCKET", 3),
        ("SKB_DROP_REASON_MAX", 4),
        ("SKB_DROP_REASON_SUBSYS_MASK", 0xffff_0000),
    ];
    let subsys = [
        ("SKB_DROP_REASON_SUBSYS_CORE", 0u32),
        ("SKB_DROP_REASON_SUBSYS_MAC80211_UNUSABLE", 1),
        ("SKB_DROP_REASON_SUBSYS_MAC80211_MONITOR", 2),
        ("SKB_DROP_REASON_SUBSYS_OPENVSWITCH", 3),
        ("SKB_DROP_REASON_SUBSYS_NUM", 4),
    ];
    add_enum(&mut b, "skb_drop_reason", &core);
    add_enum(&mut b, "skb_drop_reason_subsys", &subsys);
    let base = Btf::from_bytes(b.bytes(), None).unwrap();
    let mut m = Builder::split(b.strs.len() as u32);
    let ovs = [
        ("OVS_DROP_LAST_ACTION", 0x30000),
        ("OVS_DROP_ACTION_ERROR", 0x30001),
    ];
    add_enum(&mut m, "ovs_drop_reason", &ovs);
    let wifi = [("RX_CONTINUE", 1), ("RX_DROP_U_MIC_FAIL", 0x10000)];
    add_enum(&mut m, "mac80211_drop_reason", &wifi);
    add_enum(&mut m, "unrelated_regs", &[("REG_BIG", 0x30005)]);
    let module = Btf::from_bytes(m.bytes(), Some(&base)).unwrap();
    (base, module)
}

fn add_enum(b: &mut Builder, name: &str, vals: &[(&str, u32)]) {
    let mut words = Vec::new();
    for (n, v) in vals {
        words.push(b.s(n));
        words.push(*v);
    }
    b.ty(name, KIND_ENUM, vals.len() as u16, false, 4, &words);
}

#[test]
fn btf_core_and_subsystem_reasons() {
    let (base, module) = synthetic();
    let r = DropReasons::from_btf(&base, &[module]).unwrap();
    assert_eq!(r.source(), ReasonSource::Btf);
    assert_eq!(r.name(3), "NO_SOCKET");
    assert_eq!(
        r.name(1),
        "CONSUMED",
        "module value in subsystem 0 must not win"
    );
    assert_eq!(r.consumed(), 1);
    assert_eq!(r.name(0x30001), "OVS_DROP_ACTION_ERROR");
    assert_eq!(r.name(0x10000), "RX_DROP_U_MIC_FAIL");
    // Unrelated enums are ignored; unnamed codes show their subsystem.
    assert_eq!(r.name(0x30005), "OPENVSWITCH:0x5");
    assert_eq!(r.value("openvswitch:0x5"), Some(0x30005));
    assert_eq!(r.value("ovs_drop_last_action"), Some(0x30000));
    assert_eq!(r.name(0x90001), "UNKNOWN(589825)");
    assert_eq!(r.name(4), "UNKNOWN(4)", "MAX is not a reason");
    assert_eq!(r.value("SUBSYS_MASK"), None);
    let subs: Vec<_> = r.subsystems().collect();
    assert_eq!(
        subs,
        [
            (1, "MAC80211_UNUSABLE"),
            (2, "MAC80211_MONITOR"),
            (3, "OPENVSWITCH")
        ]
    );
    // Without module BTF the subsystem code still names the subsystem.
    let r = DropReasons::from_btf(&base, &[]).unwrap();
    assert_eq!(r.name(0x30001), "OPENVSWITCH:0x1");
}

/// Newer kernels keep the qdisc reasons in a subsystem enum built into
/// vmlinux (`qdisc_drop_reason`), not in a module: they are named too.
#[test]
fn btf_subsystem_enum_in_vmlinux() {
    let mut b = Builder::new();
    let core = [
        ("SKB_CONSUMED", 1u32),
        ("SKB_DROP_REASON_QDISC_DROP", 2),
        ("SKB_DROP_REASON_SUBSYS_MASK", 0xffff_0000),
    ];
    let subsys = [
        ("SKB_DROP_REASON_SUBSYS_CORE", 0u32),
        ("SKB_DROP_REASON_SUBSYS_QDISC", 5),
    ];
    let qdisc = [
        ("QDISC_DROP_UNSPEC", 0u32),
        ("__QDISC_DROP_REASON", 0x50000),
        ("QDISC_DROP_GENERIC", 0x50001),
        ("QDISC_DROP_OVERLIMIT", 0x50002),
    ];
    add_enum(&mut b, "skb_drop_reason", &core);
    add_enum(&mut b, "skb_drop_reason_subsys", &subsys);
    add_enum(&mut b, "qdisc_drop_reason", &qdisc);
    let btf = Btf::from_bytes(b.bytes(), None).unwrap();
    let r = DropReasons::from_btf(&btf, &[]).unwrap();
    assert_eq!(r.name(0x50002), "QDISC_DROP_OVERLIMIT");
    assert_eq!(r.value("qdisc_drop_generic"), Some(0x50001));
    assert_eq!(r.name(2), "QDISC_DROP", "core names are untouched");
    assert_eq!(r.name(0), "UNKNOWN(0)", "subsystem 0 values are not taken");
    assert_eq!(r.name(0x50009), "QDISC:0x9");
    assert_eq!(
        r.name(0x50000),
        "QDISC:0x0",
        "the subsystem base is no reason"
    );
}

#[test]
fn btf_without_enum_is_an_error() {
    let b = Builder::new();
    let btf = Btf::from_bytes(b.bytes(), None).unwrap();
    assert!(matches!(
        DropReasons::from_btf(&btf, &[]),
        Err(KernelError::MissingEnum(_))
    ));
}

/// BTF and tracefs must agree on this kernel. Needs root for tracefs; when
/// it is unreadable the test is skipped, except under CI=true.
#[test]
fn live_btf_agrees_with_tracefs() {
    let Ok(btf) = Btf::load_vmlinux() else {
        eprintln!("skipping: no vmlinux BTF");
        return;
    };
    let from_btf = DropReasons::from_btf(&btf, &[]).unwrap();
    let text = match FORMAT_PATHS.iter().find_map(|p| fs::read_to_string(p).ok()) {
        Some(t) => t,
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the kfree_skb tracefs format is unreadable (need root + tracefs)")
        }
        None => {
            eprintln!("skipping: tracefs format unreadable (run as root)");
            return;
        }
    };
    let from_fs = DropReasons::from_tracefs_format(&text).unwrap();
    for name in ["NO_SOCKET", "NETFILTER_DROP", "IP_RPFILTER"] {
        let v = from_btf.value(name);
        assert!(v.is_some(), "{name} missing from BTF");
        assert_eq!(v, from_fs.value(name), "{name}");
    }
    for (v, name) in from_fs.iter() {
        assert_eq!(from_btf.name(v), name, "value {v}");
    }
    assert_eq!(from_btf.consumed(), from_fs.consumed());
}

#[test]
fn load_prefers_btf() {
    let r = DropReasons::load().unwrap();
    if std::path::Path::new(crate::kernel::btf::VMLINUX_BTF).exists() {
        assert_eq!(r.source(), ReasonSource::Btf);
        assert!(r.value("NO_SOCKET").is_some());
    }
}
