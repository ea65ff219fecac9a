//! Our LZO1X decoder against an independent compressor (lzokay-native, a
//! dev-dependency only), then a malformed corpus built from its output:
//! every corruption is an error or a wrong page, never a panic.
use netwhy_vmcore::lzo::{decompress, LzoError};

/// xorshift64*: deterministic bytes without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Pages shaped like kernel memory: zeros, text, repeats at every distance
/// class the format has (<1 KiB, 2–3 KiB, up to 48 KiB), noise.
fn pages() -> Vec<Vec<u8>> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut v = vec![vec![0u8; 4096], vec![0xa5; 4096]];
    let text: Vec<u8> = b"[    1.234567] netwhy: marker line with some words\n"
        .iter()
        .copied()
        .cycle()
        .take(4096)
        .collect();
    v.push(text);
    v.push((0..4096).map(|_| r.next() as u8).collect());
    for period in [3usize, 7, 64, 700, 2100, 3000] {
        let seed: Vec<u8> = (0..period).map(|_| r.next() as u8).collect();
        v.push(seed.iter().copied().cycle().take(4096).collect());
    }
    // Mostly zero with sparse values, like a page of structs.
    let mut sparse = vec![0u8; 4096];
    for _ in 0..200 {
        let i = (r.next() % 4096) as usize;
        sparse[i] = r.next() as u8;
    }
    v.push(sparse);
    // Far matches: a 64 KiB buffer whose second half repeats the first.
    let half: Vec<u8> = (0..32 * 1024).map(|_| (r.next() % 16) as u8).collect();
    v.push([half.clone(), half].concat());
    v
}

#[test]
fn round_trips_what_an_independent_compressor_writes() {
    for (i, p) in pages().iter().enumerate() {
        let c = lzokay_native::compress(p).unwrap();
        let mut out = vec![0u8; p.len()];
        assert_eq!(decompress(&c, &mut out), Ok(p.len()), "page {i}");
        assert!(out == *p, "page {i} differs");
        // One byte short of room is an overrun, not a truncated success.
        let mut small = vec![0u8; p.len() - 1];
        assert_eq!(
            decompress(&c, &mut small),
            Err(LzoError::OutputOverrun(p.len() - 1))
        );
    }
}

#[test]
fn malformed_corpus_never_panics() {
    let mut r = Rng(42);
    let mut errors = 0usize;
    for p in pages() {
        let c = lzokay_native::compress(&p).unwrap();
        let mut out = vec![0u8; p.len()];
        // Every truncation fails: the end marker is the last 3 bytes.
        for n in 0..c.len() {
            assert!(
                decompress(&c[..n], &mut out).is_err(),
                "prefix {n} of {}",
                c.len()
            );
            errors += 1;
        }
        // Random byte changes: any result but a panic (some still decode).
        for _ in 0..2000 {
            let mut bad = c.clone();
            for _ in 0..1 + r.next() % 3 {
                let i = (r.next() % bad.len() as u64) as usize;
                bad[i] = r.next() as u8;
            }
            errors += usize::from(decompress(&bad, &mut out).is_err());
        }
    }
    // Pure noise, of many lengths.
    for len in 0..600 {
        let noise: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
        let mut out = vec![0u8; 4096];
        errors += usize::from(decompress(&noise, &mut out).is_err());
    }
    assert!(errors > 10_000, "{errors}");
}
