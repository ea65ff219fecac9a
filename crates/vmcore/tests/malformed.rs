//! Hostile input: every malformed dump must give an error (one line), never a
//! panic, a hang or unbounded memory. A corpus of targeted lies plus a
//! bounded mutation smoke run (the cargo-fuzz targets in fuzz/ go further).

#[path = "support/synth.rs"]
mod synth;

use netwhy_vmcore::Dump;
use std::time::{Duration, Instant};

fn trimmed() -> Vec<u8> {
    synth::gunzip(include_bytes!("data/trimmed.elf.gz"))
}

/// Opens and reads; returns the error line, or None if it read fine.
fn outcome(bytes: Vec<u8>) -> Option<String> {
    let r = Dump::from_bytes("case", bytes).and_then(|d| d.read_log().map(|_| ()));
    r.err().map(|e| {
        let line = e.to_string();
        assert!(!line.contains('\n'), "error is one line: {line:?}");
        assert!(!line.is_empty());
        line
    })
}

fn replace(mut b: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same length keeps the note layout");
    let at = b
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} not in fixture"));
    b[at..at + to.len()].copy_from_slice(to.as_bytes());
    b
}

fn put_u64(mut b: Vec<u8>, at: usize, v: u64) -> Vec<u8> {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    b
}

#[test]
fn corpus_of_lies_each_fails_cleanly() {
    let good = trimmed();
    assert!(outcome(good.clone()).is_none(), "the fixture itself reads");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "truncated"),
        (
            "not a dump",
            b"hello world, not a dump at all".to_vec(),
            "not a crash dump",
        ),
        ("truncated header", good[..40].to_vec(), "truncated"),
        (
            "truncated data",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "phoff beyond EOF",
            put_u64(good.clone(), 32, 1 << 40),
            "truncated",
        ),
        (
            "phnum huge via PN_XNUM",
            {
                let mut b = good.clone();
                b[56] = 0xff;
                b[57] = 0xff;
                b
            },
            "",
        ),
        (
            "32-bit",
            {
                let mut b = good.clone();
                b[4] = 1;
                b
            },
            "ELF64",
        ),
        (
            "big endian",
            {
                let mut b = good.clone();
                b[5] = 2;
                b
            },
            "big-endian",
        ),
        (
            "not a core",
            {
                let mut b = good.clone();
                b[16] = 2;
                b
            },
            "ET_CORE",
        ),
        (
            "note size absurd",
            put_u64(good.clone(), 64 + 32, 1 << 40),
            "",
        ),
        (
            "load filesz > memsz",
            put_u64(good.clone(), 64 + 56 + 32, 1 << 40),
            "filesz",
        ),
        (
            "no VMCOREINFO",
            replace(good.clone(), "VMCOREINFO\0", "VMCOREXXXX\0"),
            "VMCOREINFO",
        ),
        (
            "desc size absurd",
            replace(good.clone(), "SIZE(prb_desc)=24", "SIZE(prb_desc)=99"),
            "",
        ),
        (
            "info size zero",
            replace(good.clone(), "SIZE(printk_info)=88", "SIZE(printk_info)=00"),
            "absurd",
        ),
        (
            "offset not a number",
            replace(
                good.clone(),
                "OFFSET(printk_info.seq)=0",
                "OFFSET(printk_info.seq)=x",
            ),
            "not a number",
        ),
        (
            "prb points nowhere",
            replace(good.clone(), "SYMBOL(prb)=ffffffff", "SYMBOL(prb)=00000000"),
            "",
        ),
        (
            "no page table",
            replace(good.clone(), "SYMBOL(init_top_pgt)", "SYMBOL(init_xxx_pgt)"),
            "",
        ),
        (
            "no known log",
            replace(good.clone(), "SYMBOL(prb)", "SYMBOL(xyz)"),
            "no known log format",
        ),
    ];
    for (name, bytes, want) in cases {
        let start = Instant::now();
        let err = outcome(bytes);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{name}: took {:?}",
            start.elapsed()
        );
        // Some lies are survivable (a wrong desc size may still decode);
        // the rule is no panic and an honest one-line error when it fails.
        if !want.is_empty() {
            let e = err.unwrap_or_else(|| panic!("{name}: expected an error"));
            assert!(
                e.to_lowercase().contains(&want.to_lowercase()),
                "{name}: {e}"
            );
        }
    }
}

#[test]
fn kdump_lies_fail_cleanly() {
    let elf = Dump::from_bytes("t", trimmed()).unwrap();
    let good = synth::write_kdump(&synth::trim(&elf), synth::Method::Zlib);
    assert!(outcome(good.clone()).is_none());
    let at = |mut b: Vec<u8>, off: usize, v: u32| {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    for (name, bytes) in [
        ("block size", at(good.clone(), 428, 12345)),
        ("odd bitmap blocks", at(good.clone(), 436, 3)),
        ("bitmap beyond EOF", at(good.clone(), 436, 0x7fff_fffe)),
        ("sub header huge", at(good.clone(), 432, 0x7fff_ffff)),
        ("truncated", good[..good.len() - 5000].to_vec()),
    ] {
        assert!(outcome(bytes).is_some(), "{name}: expected an error");
    }
    // Corrupt the tail of the page data: a decompression error, not garbage.
    let mut b = good.clone();
    let from = good.len().saturating_sub(20000);
    for x in b[from..].iter_mut() {
        *x ^= 0x5a;
    }
    let _ = outcome(b);
}

/// xorshift64*: deterministic, dependency-free mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn bounded_fuzz_smoke() {
    let elf = trimmed();
    let kdump = synth::write_kdump(
        &synth::trim(&Dump::from_bytes("t", elf.clone()).unwrap()),
        synth::Method::Lzo,
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut runs = 0;
    while runs < 400 && Instant::now() < deadline {
        let mut b = if runs % 2 == 0 {
            elf.clone()
        } else {
            kdump.clone()
        };
        // Headers, notes and page tables are where lies hurt: bias there.
        for _ in 0..1 + rng.next() % 8 {
            let region = if rng.next() % 2 == 0 { 8192 } else { b.len() };
            let i = (rng.next() as usize) % region.min(b.len());
            b[i] = match rng.next() % 4 {
                0 => 0,
                1 => 0xff,
                2 => b[i] ^ (1 << (rng.next() % 8)),
                _ => rng.next() as u8,
            };
        }
        if rng.next() % 10 == 0 {
            let cut = (rng.next() as usize) % b.len();
            b.truncate(cut);
        }
        let _ = outcome(b);
        runs += 1;
    }
    assert!(runs >= 50, "only {runs} fuzz runs");
}
