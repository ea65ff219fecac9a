//! Start-up cost of reading the running kernel's BTF the way netwhy needs
//! it, with netwhy's own reader and with the btf-rs crate (both of its
//! backends): load /sys/kernel/btf/vmlinux, read `enum skb_drop_reason`,
//! find every function taking a `struct sk_buff *` among its first five
//! parameters, and every raw tracepoint (`btf_trace_*`) with one.
//!
//! `cargo run --release --example btfbench [RUNS]` (default 15): each
//! implementation runs RUNS times, interleaved so that machine noise hits
//! all alike; the medians are printed with the answers' sizes, which must
//! agree between implementations (otherwise the comparison is void and the
//! example exits 1).
use std::time::{Duration, Instant};

use btf_rs::{Backend, Btf as BtfRs, Type};
use netwhy::kernel::btf::{Btf, VMLINUX_BTF};

const MAX_ARG: usize = 5;

/// Durations of one run: load, enum, skb functions, skb tracepoints.
#[derive(Default, Clone, Copy)]
struct Run {
    load: Duration,
    reasons: Duration,
    funcs: Duration,
    tps: Duration,
}

impl Run {
    fn total(&self) -> Duration {
        self.load + self.reasons + self.funcs + self.tps
    }
}

/// Sizes of the answers, to check both readers found the same things.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Answer {
    reasons: usize,
    funcs: usize,
    tps: usize,
}

fn ours() -> (Run, Answer) {
    let mut r = Run::default();
    let t = Instant::now();
    let btf = Btf::load_vmlinux().expect("vmlinux BTF");
    r.load = t.elapsed();
    let t = Instant::now();
    let reasons = btf.enum_by_name("skb_drop_reason").expect("enum").len();
    r.reasons = t.elapsed();
    let t = Instant::now();
    let funcs = btf.funcs_with_struct_ptr_param("sk_buff").len();
    r.funcs = t.elapsed();
    let t = Instant::now();
    let tps = btf.raw_tracepoints_with_struct_ptr_arg("sk_buff").len();
    r.tps = t.elapsed();
    (
        r,
        Answer {
            reasons,
            funcs,
            tps,
        },
    )
}

/// Follows typedef/const/volatile/restrict/type_tag, like netwhy's reader.
fn skip_mods(btf: &BtfRs, mut t: Type) -> Option<Type> {
    for _ in 0..32 {
        t = match &t {
            Type::Typedef(x) => btf.resolve_chained_type(x).ok()?,
            Type::Const(x) | Type::Volatile(x) | Type::Restrict(x) => {
                btf.resolve_chained_type(x).ok()?
            }
            Type::TypeTag(x) => btf.resolve_chained_type(x).ok()?,
            _ => return Some(t),
        };
    }
    None
}

fn is_skb_ptr(btf: &BtfRs, t: Type) -> bool {
    let Some(Type::Ptr(p)) = skip_mods(btf, t) else {
        return false;
    };
    let Some(target) = btf
        .resolve_chained_type(&p)
        .ok()
        .and_then(|t| skip_mods(btf, t))
    else {
        return false;
    };
    match &target {
        Type::Struct(s) => btf.resolve_name(s).is_ok_and(|n| n == "sk_buff"),
        Type::Fwd(f) if !f.is_union() => btf.resolve_name(f).is_ok_and(|n| n == "sk_buff"),
        _ => false,
    }
}

fn btf_rs(backend: Backend) -> (Run, Answer) {
    let mut r = Run::default();
    let t = Instant::now();
    let btf = BtfRs::from_file_with_backend(VMLINUX_BTF, backend).expect("btf-rs load");
    r.load = t.elapsed();

    let t = Instant::now();
    let reasons = match btf
        .resolve_types_by_name("skb_drop_reason")
        .expect("enum")
        .pop()
    {
        Some(Type::Enum(e)) => e
            .members
            .iter()
            .filter(|m| btf.resolve_name(*m).is_ok())
            .count(),
        _ => 0,
    };
    r.reasons = t.elapsed();

    let t = Instant::now();
    let mut funcs = std::collections::HashSet::new();
    let mut typedefs = Vec::new();
    let (first, last) = btf.base().type_id_range();
    for id in first..=last {
        let Ok(ty) = btf.resolve_type_by_id(id) else {
            continue;
        };
        match ty {
            Type::Func(f) => {
                let Ok(Type::FuncProto(proto)) = btf.resolve_chained_type(&f) else {
                    continue;
                };
                let hit = proto.parameters.iter().take(MAX_ARG).any(|p| {
                    btf.resolve_chained_type(p)
                        .is_ok_and(|t| is_skb_ptr(&btf, t))
                });
                if hit {
                    if let Ok(n) = btf.resolve_name(&f) {
                        funcs.insert(n);
                    }
                }
            }
            Type::Typedef(td) => typedefs.push(td),
            _ => {}
        }
    }
    r.funcs = t.elapsed();

    let t = Instant::now();
    let mut tps = 0;
    for td in typedefs {
        if !btf
            .resolve_name(&td)
            .is_ok_and(|n| n.starts_with("btf_trace_"))
        {
            continue;
        }
        let Some(Type::Ptr(p)) = btf
            .resolve_chained_type(&td)
            .ok()
            .and_then(|t| skip_mods(&btf, t))
        else {
            continue;
        };
        let Some(Type::FuncProto(proto)) = btf
            .resolve_chained_type(&p)
            .ok()
            .and_then(|t| skip_mods(&btf, t))
        else {
            continue;
        };
        let hit = proto.parameters.iter().skip(1).take(MAX_ARG).any(|p| {
            btf.resolve_chained_type(p)
                .is_ok_and(|t| is_skb_ptr(&btf, t))
        });
        tps += usize::from(hit);
    }
    r.tps = t.elapsed();
    (
        r,
        Answer {
            reasons,
            funcs: funcs.len(),
            tps,
        },
    )
}

/// A BTF blob whose second type has kind 20, which no kernel has yet and
/// no layout section describes: id 1 `int`, id 2 the new kind.
fn new_kind_blob() -> Vec<u8> {
    let words: [u32; 7] = [1, 1 << 24, 4, 32, 0, 20 << 24, 0];
    let strs = b"\0int\0";
    let types: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let tl = types.len() as u32;
    let mut v = vec![0x9f, 0xeb, 1, 0];
    for w in [24u32, 0, tl, tl, strs.len() as u32] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(&types);
    v.extend_from_slice(strs);
    v
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    type Imp = (&'static str, fn() -> (Run, Answer));
    let imps: [Imp; 3] = [
        ("netwhy::kernel::btf", ours),
        ("btf-rs 2.0.0 (Cache)", || btf_rs(Backend::Cache)),
        ("btf-rs 2.0.0 (Mmap)", || btf_rs(Backend::Mmap)),
    ];
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); imps.len()];
    let mut answers = vec![None; imps.len()];
    for _ in 0..runs {
        for (i, (_, f)) in imps.iter().enumerate() {
            let (r, a) = f();
            results[i].push(r);
            answers[i] = Some(a);
        }
    }
    let size = std::fs::metadata(VMLINUX_BTF).map(|m| m.len()).unwrap_or(0);
    println!("{VMLINUX_BTF}: {size} bytes; medians of {runs} interleaved runs, ms");
    println!(
        "{:<22} {:>8} {:>8} {:>10} {:>12} {:>8}   answers (reasons, skb funcs, skb tracepoints)",
        "reader", "load", "enum", "skb funcs", "tracepoints", "total"
    );
    for (i, (name, _)) in imps.iter().enumerate() {
        let rs = &results[i];
        let col = |f: fn(&Run) -> Duration| ms(median(rs.iter().map(f).collect()));
        let a = answers[i].unwrap();
        println!(
            "{name:<22} {:>8} {:>8} {:>10} {:>12} {:>8}   {}, {}, {}",
            col(|r| r.load),
            col(|r| r.reasons),
            col(|r| r.funcs),
            col(|r| r.tps),
            col(Run::total),
            a.reasons,
            a.funcs,
            a.tps
        );
    }
    let blob = new_kind_blob();
    match Btf::from_bytes(blob.clone(), None) {
        Ok(b) => println!(
            "unknown kind, netwhy: {} type(s) kept; {}",
            b.type_count(),
            b.incomplete().map_or("complete".into(), |i| i.to_string())
        ),
        Err(e) => println!("unknown kind, netwhy: error: {e}"),
    }
    match BtfRs::from_bytes(&blob) {
        Ok(_) => println!("unknown kind, btf-rs: parsed"),
        Err(e) => println!("unknown kind, btf-rs: error: {e}"),
    }
    if answers.iter().any(|a| *a != answers[0]) {
        eprintln!("btfbench: the readers disagree: {answers:?}");
        std::process::exit(1);
    }
}
