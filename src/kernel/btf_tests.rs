//! Tests for the BTF reader: a hand-built blob (exact answers, split BTF,
//! hostile bytes) and the running kernel's BTF (real-world scale).
use super::*;

pub(crate) use super::{KIND_ENUM, KIND_ENUM64};

/// Builds BTF blobs type by type, little-endian.
pub(crate) struct Builder {
    types: Vec<u8>,
    pub(crate) strs: Vec<u8>,
    str_base: u32,
    /// (info_sz, elem_sz) per kind: a 32-byte header and a layout section.
    layout: Option<Vec<(u8, u8)>>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            types: Vec::new(),
            strs: vec![0],
            str_base: 0,
            layout: None,
        }
    }

    /// A split builder continuing `base`'s string offsets.
    pub(crate) fn split(base_str_len: u32) -> Self {
        Builder {
            types: Vec::new(),
            strs: Vec::new(),
            str_base: base_str_len,
            layout: None,
        }
    }

    pub(crate) fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.str_base + self.strs.len() as u32;
        self.strs.extend_from_slice(name.as_bytes());
        self.strs.push(0);
        off
    }

    pub(crate) fn ty(
        &mut self,
        name: &str,
        kind: u8,
        vlen: u16,
        kflag: bool,
        st: u32,
        extra: &[u32],
    ) {
        let n = self.s(name);
        let info = (kind as u32) << 24 | vlen as u32 | (kflag as u32) << 31;
        for w in [n, info, st].iter().chain(extra) {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&MAGIC.to_le_bytes());
        v.extend_from_slice(&[1, 0]);
        let tl = self.types.len() as u32;
        let sl = self.strs.len() as u32;
        // As libbpf writes it: types, then the layout, then strings.
        let layout: Vec<u8> = self
            .layout
            .iter()
            .flatten()
            .flat_map(|&(i, e)| [i, e, 0, 0])
            .collect();
        let ll = layout.len() as u32;
        let hdr: Vec<u32> = match self.layout {
            None => vec![24, 0, tl, tl, sl],
            Some(_) => vec![32, 0, tl, tl + ll, sl, tl, ll],
        };
        for w in hdr {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v.extend_from_slice(&self.types);
        v.extend_from_slice(&layout);
        v.extend_from_slice(&self.strs);
        v
    }
}

/// Base with ids: 1 int, 2 struct sk_buff, 3 ptr->2, 4 const->2, 5 ptr->4,
/// 6 typedef skb_t->3, 7 proto(int, skb*), 8 func ip_rcv_like(7),
/// 9 proto(const skb*), 10 func takes_const, 11 proto(skb_t), 12 func
/// takes_typedef, 13 proto(int,int,int,int,int,skb*), 14 func sixth_arg,
/// 15 enum color, 16 enum64 big, 17 ptr->18, 18 ptr->2 (skb**), 19 proto(skb**),
/// 20 func double_ptr, 21 func ip_rcv_like again.
fn base_builder() -> Builder {
    let mut b = Builder::new();
    b.ty("int", KIND_INT, 0, false, 4, &[32]);
    b.ty("sk_buff", KIND_STRUCT, 0, false, 232, &[]);
    b.ty("", KIND_PTR, 0, false, 2, &[]);
    b.ty("", KIND_CONST, 0, false, 2, &[]);
    b.ty("", KIND_PTR, 0, false, 4, &[]);
    b.ty("skb_t", KIND_TYPEDEF, 0, false, 3, &[]);
    let a = b.s("a");
    let skb = b.s("skb");
    b.ty("", KIND_FUNC_PROTO, 2, false, 1, &[a, 1, skb, 3]);
    b.ty("ip_rcv_like", KIND_FUNC, 1, false, 7, &[]);
    b.ty("", KIND_FUNC_PROTO, 1, false, 1, &[skb, 5]);
    b.ty("takes_const", KIND_FUNC, 1, false, 9, &[]);
    b.ty("", KIND_FUNC_PROTO, 1, false, 1, &[skb, 6]);
    b.ty("takes_typedef", KIND_FUNC, 1, false, 11, &[]);
    b.ty(
        "",
        KIND_FUNC_PROTO,
        6,
        false,
        1,
        &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 3],
    );
    b.ty("sixth_arg", KIND_FUNC, 1, false, 13, &[]);
    let (r, g) = (b.s("RED"), b.s("GREEN"));
    b.ty("color", KIND_ENUM, 2, true, 4, &[r, 0, g, (-5i32) as u32]);
    let h = b.s("HUGE");
    b.ty("big", KIND_ENUM64, 1, false, 8, &[h, 1, 0x8000_0000]);
    b.ty("", KIND_PTR, 0, false, 18, &[]);
    b.ty("", KIND_PTR, 0, false, 2, &[]);
    b.ty("", KIND_FUNC_PROTO, 1, false, 1, &[skb, 17]);
    b.ty("double_ptr", KIND_FUNC, 1, false, 19, &[]);
    b.ty("ip_rcv_like", KIND_FUNC, 1, false, 7, &[]);
    b
}

fn base() -> Btf {
    Btf::from_bytes(base_builder().bytes(), None).unwrap()
}

#[test]
fn finds_struct_pointer_params_through_modifiers() {
    let btf = base();
    assert_eq!(btf.type_count(), 21);
    let got = btf.funcs_with_struct_ptr_param("sk_buff");
    let want = [("ip_rcv_like", 1), ("takes_const", 0), ("takes_typedef", 0)];
    let want: Vec<FuncParam> = want
        .iter()
        .map(|&(f, i)| FuncParam {
            func: f.into(),
            arg_index: i,
        })
        .collect();
    // sixth_arg: beyond the first five; double_ptr: skb** is not skb*.
    assert_eq!(got, want);
    assert!(btf.funcs_with_struct_ptr_param("sock").is_empty());
}

#[test]
fn enums_signed_and_64_bit() {
    let btf = base();
    let color = btf.enum_by_name("color").unwrap();
    assert_eq!(color, vec![("RED".into(), 0), ("GREEN".into(), -5)]);
    let big = btf.enum_by_name("big").unwrap();
    assert_eq!(big[0].1 as u64, 0x8000_0000_0000_0001);
    assert!(btf.enum_by_name("nope").is_none());
    let names: Vec<&str> = btf.enums().map(|(n, _)| n).collect();
    assert_eq!(names, ["color", "big"]);
}

#[test]
fn split_btf_continues_ids_and_strings() {
    let base = base();
    let bb = base_builder();
    let mut m = Builder::split(bb.strs.len() as u32);
    let x = m.s("X_DROP");
    // Id 22: enum; id 23: proto using base's skb* (id 3); id 24: func.
    m.ty("mod_drop_reason", KIND_ENUM, 1, false, 4, &[x, 0x30001]);
    m.ty("", KIND_FUNC_PROTO, 1, false, 1, &[0, 3]);
    m.ty("mod_rcv", KIND_FUNC, 1, false, 23, &[]);
    let module = Btf::from_bytes(m.bytes(), Some(&base)).unwrap();
    assert!(module.is_split());
    let enums: Vec<_> = module.enums().collect();
    assert_eq!(enums, vec![("mod_drop_reason", vec![("X_DROP", 0x30001)])]);
    // Base enums are still reachable by name.
    assert!(module.enum_by_name("color").is_some());
    assert_eq!(
        module.funcs_with_struct_ptr_param("sk_buff"),
        vec![FuncParam {
            func: "mod_rcv".into(),
            arg_index: 0
        }]
    );
}

#[test]
fn every_truncation_errors_without_panicking() {
    let good = base_builder().bytes();
    for n in 0..good.len() {
        assert!(
            Btf::from_bytes(good[..n].to_vec(), None).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
}

#[test]
fn hostile_bytes_never_panic() {
    let good = base_builder().bytes();
    // Flip every byte of the header and type section to a few values.
    for i in 0..good.len() {
        for v in [0u8, 0xff, 0x7f, 0x13] {
            let mut bad = good.clone();
            bad[i] = v;
            if let Ok(b) = Btf::from_bytes(bad, None) {
                let _ = b.funcs_with_struct_ptr_param("sk_buff");
                let _ = b.enums().count();
                let _ = b.enum_by_name("color");
            }
        }
    }
    // Pseudo-random garbage with a valid magic.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in [24usize, 40, 100, 1000] {
        let mut v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        v[..3].copy_from_slice(&[0x9f, 0xeb, 1]);
        let _ = Btf::from_bytes(v, None);
    }
    assert!(matches!(
        Btf::from_bytes(vec![0; 30], None),
        Err(BtfError::BadMagic(0))
    ));
}

#[test]
fn cyclic_typedefs_terminate() {
    let mut b = Builder::new();
    b.ty("a", KIND_TYPEDEF, 0, false, 2, &[]);
    b.ty("b", KIND_TYPEDEF, 0, false, 1, &[]);
    b.ty("", KIND_FUNC_PROTO, 1, false, 0, &[0, 1]);
    b.ty("f", KIND_FUNC, 1, false, 3, &[]);
    let btf = Btf::from_bytes(b.bytes(), None).unwrap();
    assert!(btf.funcs_with_struct_ptr_param("sk_buff").is_empty());
}

#[test]
fn big_endian_blob_parses() {
    let le = base_builder().bytes();
    // Swap every u32 after the 4-byte magic/version word, and the magic.
    let mut be = le.clone();
    be[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    let hdr_and_types = 24 + u32::from_le_bytes(le[12..16].try_into().unwrap()) as usize;
    for i in (4..hdr_and_types).step_by(4) {
        be[i..i + 4].reverse();
    }
    let btf = Btf::from_bytes(be, None).unwrap();
    assert_eq!(btf.funcs_with_struct_ptr_param("sk_buff").len(), 3);
}

fn vmlinux() -> Option<Btf> {
    match Btf::load_vmlinux() {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("skipping: no vmlinux BTF: {e}");
            None
        }
    }
}

#[test]
fn vmlinux_drop_reason_enum() {
    let Some(btf) = vmlinux() else { return };
    let e = btf.enum_by_name("skb_drop_reason").unwrap();
    for want in [
        "SKB_DROP_REASON_NO_SOCKET",
        "SKB_DROP_REASON_NETFILTER_DROP",
        "SKB_CONSUMED",
    ] {
        assert!(e.iter().any(|(n, _)| n == want), "{want} missing");
    }
    assert!(btf.enum_by_name("skb_drop_reason_subsys").is_some());
}

#[test]
fn vmlinux_skb_functions() {
    let Some(btf) = vmlinux() else { return };
    let f = btf.funcs_with_struct_ptr_param("sk_buff");
    assert!(f.len() > 1000, "only {} functions", f.len());
    let arg = |name: &str| f.iter().find(|p| p.func == name).map(|p| p.arg_index);
    assert_eq!(arg("ip_rcv"), Some(0));
    assert_eq!(arg("__netif_receive_skb_one_core"), Some(0));
    // `sk_skb_reason_drop(sk, skb, reason)` since 6.12, else kfree_skb_reason.
    assert!(arg("sk_skb_reason_drop") == Some(1) || arg("kfree_skb_reason") == Some(0));
}

#[test]
fn vmlinux_truncated_errors() {
    let data = std::fs::read(VMLINUX_BTF);
    let Ok(data) = data else { return };
    for n in [0, 10, 24, 4096, data.len() / 2, data.len() - 1] {
        assert!(Btf::from_bytes(data[..n].to_vec(), None).is_err(), "{n}");
    }
}

/// Timing on the live kernel: `cargo test --release --lib -- --ignored
/// btf_load_time --nocapture`.
#[test]
#[ignore]
fn btf_load_time() {
    let t = std::time::Instant::now();
    let btf = Btf::load_vmlinux().unwrap();
    let load = t.elapsed();
    let t = std::time::Instant::now();
    let f = btf.funcs_with_struct_ptr_param("sk_buff");
    let funcs = t.elapsed();
    let t = std::time::Instant::now();
    let e = btf.enum_by_name("skb_drop_reason").unwrap();
    let en = t.elapsed();
    let t = std::time::Instant::now();
    let r = crate::kernel::DropReasons::load().unwrap();
    let reasons = t.elapsed();
    eprintln!(
        "{} types: load {load:?}; {} skb funcs in {funcs:?}; {} reasons: enum {en:?}, DropReasons::load {reasons:?} ({} named)",
        btf.type_count(),
        f.len(),
        e.len(),
        r.iter().count()
    );
}

/// Raw tracepoint typedefs: `btf_trace_x` is a pointer to a prototype whose
/// first parameter is the hidden `void *`; the skb index counts after it.
#[test]
fn raw_tracepoints_with_skb_arg() {
    let mut b = base_builder();
    // 22 ptr->void, 23 proto(void*, int, skb*), 24 ptr->23, 25 typedef
    // btf_trace_fake_rx->24, 26 proto(void*, int), 27 ptr->26, 28 typedef
    // btf_trace_no_skb->27, 29 typedef not_a_trace->24.
    b.ty("", KIND_PTR, 0, false, 0, &[]);
    b.ty("", KIND_FUNC_PROTO, 3, false, 0, &[0, 22, 0, 1, 0, 3]);
    b.ty("", KIND_PTR, 0, false, 23, &[]);
    b.ty("btf_trace_fake_rx", KIND_TYPEDEF, 0, false, 24, &[]);
    b.ty("", KIND_FUNC_PROTO, 2, false, 0, &[0, 22, 0, 1]);
    b.ty("", KIND_PTR, 0, false, 26, &[]);
    b.ty("btf_trace_no_skb", KIND_TYPEDEF, 0, false, 27, &[]);
    b.ty("not_a_trace", KIND_TYPEDEF, 0, false, 24, &[]);
    let btf = Btf::from_bytes(b.bytes(), None).unwrap();
    let got = btf.raw_tracepoints_with_struct_ptr_arg("sk_buff");
    assert_eq!(
        got,
        vec![FuncParam {
            func: "fake_rx".into(),
            arg_index: 1
        }]
    );
}

#[test]
fn vmlinux_skb_tracepoints() {
    let Some(btf) = vmlinux() else { return };
    let t = btf.raw_tracepoints_with_struct_ptr_arg("sk_buff");
    let arg = |name: &str| t.iter().find(|p| p.func == name).map(|p| p.arg_index);
    assert_eq!(arg("kfree_skb"), Some(0));
    assert_eq!(arg("netif_receive_skb"), Some(0));
    assert_eq!(arg("net_dev_queue"), Some(0));
    // fib and neighbour tracepoints carry no skb.
    assert_eq!(arg("fib_table_lookup"), None);
}

/// Kernels newer than the reader: layout sections and unknown kinds.
#[path = "btf_layout_tests.rs"]
mod layout;
