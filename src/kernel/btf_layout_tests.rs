//! BTF from kernels newer than the reader: the layout section that sizes
//! kinds it does not know, and parsing that stops, rather than fails, at a
//! kind nothing sizes. Synthetic blobs only: no kernel has such kinds yet.
use super::super::*;
use super::Builder;

/// libbpf's layout of the 20 kinds it knows (UNKN..ENUM64), plus `extra`.
fn layout_with(extra: &[(u8, u8)]) -> Vec<(u8, u8)> {
    let mut l = vec![
        (0, 0),
        (4, 0),
        (0, 0),
        (12, 0),
        (0, 12),
        (0, 12),
        (0, 8),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 8),
        (4, 0),
        (0, 12),
        (0, 0),
        (4, 0),
        (0, 0),
        (0, 12),
    ];
    l.extend_from_slice(extra);
    l
}

/// ids: 1 enum early, 2 kind 20 with vlen 2 (4 + 2*8 trailing bytes in
/// the layout below), 3 enum late.
fn with_new_kind(layout: Option<Vec<(u8, u8)>>) -> Builder {
    let mut b = Builder::new();
    b.layout = layout;
    let a = b.s("A");
    b.ty("early", KIND_ENUM, 1, false, 4, &[a, 1]);
    b.ty("future", 20, 2, false, 0, &[7, 1, 2, 3, 4]);
    let z = b.s("Z");
    b.ty("late", KIND_ENUM, 1, false, 4, &[z, 26]);
    b
}

#[test]
fn info_word_is_read_wide() {
    // Kind in bits 24-30, vlen in bits 0-23 (extended UAPI); bit 31 is kflag.
    assert_eq!(kind_vlen(0xff12_3456), (0x7f, 0x12_3456));
    assert_eq!(kind_vlen(0x0600_0002), (KIND_ENUM, 2));
}

#[test]
fn unknown_kind_without_layout_keeps_earlier_types() {
    let btf = Btf::from_bytes(with_new_kind(None).bytes(), None).unwrap();
    let i = btf.incomplete().expect("incomplete");
    assert_eq!((i.at_id, i.kind), (2, 20));
    assert_eq!(i.bytes_left, 2 * 12 + 5 * 4 + 8);
    assert!(i.to_string().contains("kind 20"), "{i}");
    assert!(!btf.has_layout());
    assert_eq!(btf.type_count(), 1);
    assert_eq!(btf.enum_by_name("early").unwrap(), vec![("A".into(), 1)]);
    assert!(btf.enum_by_name("late").is_none(), "after the unknown kind");
}

#[test]
fn unknown_kind_is_skipped_by_its_layout_size() {
    let b = with_new_kind(Some(layout_with(&[(4, 8)])));
    let btf = Btf::from_bytes(b.bytes(), None).unwrap();
    assert!(btf.has_layout());
    assert_eq!(btf.incomplete(), None);
    assert_eq!(btf.type_count(), 3);
    assert_eq!(btf.enum_by_name("late").unwrap(), vec![("Z".into(), 26)]);
    let names: Vec<&str> = btf.enums().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["early", "late"],
        "the unknown kind is never followed"
    );
}

#[test]
fn layout_that_does_not_describe_the_kind_stops_there() {
    // Layout ends at kind 19: kind 20 cannot be sized.
    let btf = Btf::from_bytes(with_new_kind(Some(layout_with(&[]))).bytes(), None).unwrap();
    assert_eq!(btf.incomplete().map(|i| i.at_id), Some(2));
    assert!(btf.enum_by_name("early").is_some());
    // A misaligned size is refused like libbpf does, not trusted.
    let b = with_new_kind(Some(layout_with(&[(3, 8)])));
    let btf = Btf::from_bytes(b.bytes(), None).unwrap();
    assert_eq!(btf.incomplete().map(|i| i.kind), Some(20));
}

#[test]
fn kinds_past_31_are_sized_too() {
    let mut l = layout_with(&[]);
    l.resize(40, (0, 0));
    l.push((8, 4)); // kind 40
    let mut b = Builder::new();
    b.layout = Some(l);
    b.ty("wide", 40, 3, false, 0, &[0, 0, 9, 9, 9]);
    let z = b.s("Z");
    b.ty("after", KIND_ENUM, 1, false, 4, &[z, 5]);
    let btf = Btf::from_bytes(b.bytes(), None).unwrap();
    assert_eq!(btf.incomplete(), None);
    assert!(btf.enum_by_name("after").is_some());
}

#[test]
fn split_btf_uses_the_base_layout() {
    let base_b = with_new_kind(Some(layout_with(&[(4, 8)])));
    let base = Btf::from_bytes(base_b.bytes(), None).unwrap();
    let mut m = Builder::split(base_b.strs.len() as u32);
    m.ty("", 20, 1, false, 0, &[0, 1, 2]);
    let x = m.s("X_DROP");
    m.ty("mod_drop_reason", KIND_ENUM, 1, false, 4, &[x, 0x30001]);
    let module = Btf::from_bytes(m.bytes(), Some(&base)).unwrap();
    assert_eq!(module.incomplete(), None);
    assert_eq!(module.enums().count(), 1);
    // Without a layout anywhere the module stops at the new kind.
    let plain = Btf::from_bytes(with_new_kind(None).bytes(), None).unwrap();
    let module = Btf::from_bytes(m.bytes(), Some(&plain)).unwrap();
    assert!(module.incomplete().is_some());
}

#[test]
fn bad_layout_headers_are_errors() {
    let good = with_new_kind(Some(layout_with(&[(4, 8)]))).bytes();
    let set = |off: usize, v: u32| {
        let mut b = good.clone();
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        Btf::from_bytes(b, None)
    };
    assert!(set(28, 6).is_err(), "length not a multiple of 4");
    assert!(set(24, 2).is_err(), "offset not aligned");
    assert!(set(24, 1 << 20).is_err(), "outside the file");
    assert!(set(24, 0).is_err(), "overlaps the types");
    // Every prefix is an error, every flipped byte never panics.
    for n in 0..good.len() {
        assert!(Btf::from_bytes(good[..n].to_vec(), None).is_err(), "{n}");
    }
    for i in 0..good.len() {
        for v in [0u8, 0xff, 0x14, 0x28] {
            let mut bad = good.clone();
            bad[i] = v;
            if let Ok(b) = Btf::from_bytes(bad, None) {
                let _ = b.enums().count();
                let _ = b.enum_by_name("late");
                let _ = b.funcs_with_struct_ptr_param("sk_buff");
            }
        }
    }
}
