//! Tests for kallsyms on a hand-written fixture with aliases, duplicates,
//! data symbols and module/BPF symbols; plus the live file when visible.
use super::*;

const FIXTURE: &str = include_str!("../../tests/fixtures/kernel/kallsyms.txt");

fn table() -> Kallsyms {
    Kallsyms::parse(FIXTURE).unwrap()
}

#[test]
fn keeps_only_text_symbols() {
    let k = table();
    assert!(k.address("init_net").is_none(), "data symbol kept");
    assert!(k.address("jiffies").is_none(), "data symbol kept");
    assert!(k.address("kfree_skb_reason").is_some());
    assert!(k.address("weak_fn_alias").is_some(), "weak symbol dropped");
    let addrs: Vec<u64> = k.iter().map(|(a, _, _)| a).collect();
    assert!(addrs.windows(2).all(|w| w[0] <= w[1]), "not sorted");
}

#[test]
fn resolves_with_offset_and_display() {
    let k = table();
    let s = k.resolve(0xffffffff81a00010 + 0x2c).unwrap();
    assert_eq!(s.name, "kfree_skb_reason");
    assert_eq!(s.offset, 0x2c);
    assert_eq!(s.module, None);
    assert_eq!(s.to_string(), "kfree_skb_reason+0x2c");
    let s = k.resolve(0xffffffffc0a01234).unwrap();
    assert_eq!(s.name, "nft_do_chain");
    assert_eq!(s.module, Some("nf_tables"));
    assert_eq!(s.to_string(), "nft_do_chain+0x234 [nf_tables]");
    assert!(k.resolve(0x1000).is_none());
}

#[test]
fn aliases_resolve_to_first_listed() {
    let k = table();
    assert_eq!(k.resolve(0xffffffff81000000).unwrap().name, "_stext");
}

#[test]
fn duplicates_take_lowest_address() {
    let k = table();
    // `cleanup` is a static function in two places.
    assert_eq!(k.address("cleanup"), Some(0xffffffff81200000));
    assert_eq!(
        k.function_range("cleanup"),
        Some((0xffffffff81200000, 0xffffffff81200080))
    );
}

#[test]
fn scan_and_index_agree() {
    let k = table();
    let names: Vec<&str> = k.iter().map(|(_, n, _)| n).collect();
    let scanned: Vec<_> = names.iter().map(|n| k.function_range(n)).collect();
    for _ in 0..SCANS_BEFORE_INDEX {
        k.address("x");
    }
    assert!(k.by_name.get().is_some());
    let indexed: Vec<_> = names.iter().map(|n| k.function_range(n)).collect();
    assert_eq!(scanned, indexed);
}

#[test]
fn function_range_ends_at_next_symbol() {
    let k = table();
    assert_eq!(
        k.function_range("kfree_skb_reason"),
        Some((0xffffffff81a00010, 0xffffffff81a00200))
    );
    // The last symbol has no upper neighbour.
    let (_, end) = k.function_range("nft_do_chain_last").unwrap();
    assert_eq!(end, u64::MAX);
    assert!(k.function_range("no_such_function").is_none());
}

#[test]
fn hidden_addresses_are_an_error_with_the_fix() {
    let text = "0000000000000000 T _stext\n0000000000000000 t foo\n";
    let err = Kallsyms::parse(text).unwrap_err();
    assert!(matches!(err, KernelError::KallsymsHidden));
    assert!(err.to_string().contains("kptr_restrict=0"));
}

#[test]
fn garbage_lines_are_skipped() {
    let text = "zz T bad\nffffffff81000000 T\n\nffffffff81000010 T good\nffffffff81000020 TT x\n";
    let k = Kallsyms::parse(text).unwrap();
    assert_eq!(k.len(), 1);
    assert!(Kallsyms::parse("").is_err());
}

/// Timing of the live file: `cargo test --release --lib -- --ignored
/// kallsyms_parse_time --nocapture`.
#[test]
#[ignore]
fn kallsyms_parse_time() {
    let t = std::time::Instant::now();
    let text = std::fs::read_to_string(KALLSYMS).unwrap();
    let read = t.elapsed();
    let t = std::time::Instant::now();
    let k = Kallsyms::parse_owned(text).unwrap();
    let parse = t.elapsed();
    let t = std::time::Instant::now();
    let r = k.function_range("ip_rcv");
    let first_by_name = t.elapsed();
    for _ in 0..SCANS_BEFORE_INDEX {
        k.function_range("ip_rcv");
    }
    let t = std::time::Instant::now();
    assert_eq!(k.function_range("ip_rcv"), r);
    let indexed = t.elapsed();
    eprintln!(
        "{} symbols: read {read:?}, parse {parse:?}, scan look-up {first_by_name:?}, indexed {indexed:?} ({r:x?})",
        k.len()
    );
}

/// Parses the live file when it is readable with addresses (root).
#[test]
fn live_kallsyms_if_visible() {
    match Kallsyms::load() {
        Ok(k) => {
            assert!(k.len() > 1000);
            let a = k.address("_stext").unwrap();
            assert_eq!(k.resolve(a + 1).unwrap().offset, 1);
        }
        Err(e) => eprintln!("skipping live kallsyms: {e}"),
    }
}
