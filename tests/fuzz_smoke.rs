//! The fuzz targets, bounded, on every test run: each committed input
//! (fuzz/seeds/TARGET/: real captures; fuzz/regressions/TARGET/: inputs
//! that once crashed a parser) and a fixed number of deterministic mutations
//! of them go through the same bodies the cargo-fuzz targets call
//! (`netwhy::fuzzing`). No cargo-fuzz or nightly needed, so CI runs it; the
//! long runs are `scripts/fuzz`.
//!
//! The mutations are byte-level and biased towards what breaks binary
//! parsers: lengths (u16 fields set to small, boundary and huge values),
//! truncation, and splices between inputs of one target.
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use netwhy::fuzzing::{Target, TARGETS};

/// Mutated inputs per target: about a second in total in a release build.
const MUTATIONS: usize = 10_000;

/// xorshift64*: deterministic, so a failure reproduces with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Files of `fuzz/<kind>/<target>/`, sorted by name for a stable order.
fn committed(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .map(|e| e.expect("read_dir entry").path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), bytes)
        })
        .collect();
    v.sort();
    v
}

/// 1 to 8 edits of `b`; `other` is another input of the same target.
fn mutate(rng: &mut Rng, mut b: Vec<u8>, other: &[u8]) -> Vec<u8> {
    const LENGTHS: [u16; 8] = [0, 1, 3, 4, 8, 0x7fff, 0xfffc, 0xffff];
    for _ in 0..1 + rng.below(8) {
        let i = rng.below(b.len());
        match rng.below(8) {
            0 if !b.is_empty() => b[i] ^= 1 << rng.below(8),
            1 if !b.is_empty() => b[i] = [0, 0xff, 0x7f, 0x80][rng.below(4)],
            2 if b.len() >= 2 => {
                let at = i.min(b.len() - 2);
                let v = LENGTHS[rng.below(LENGTHS.len())];
                b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
            }
            3 => b.insert(i.min(b.len()), rng.next() as u8),
            4 if !b.is_empty() => {
                let end = (i + 1 + rng.below(16)).min(b.len());
                b.drain(i..end);
            }
            5 => b.truncate(i),
            6 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                let at = i.min(b.len());
                b.splice(at..at, other[from..end].iter().copied());
            }
            _ if !b.is_empty() => b[i] = rng.next() as u8,
            _ => b.push(rng.next() as u8),
        }
    }
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `f` on `input`; a panic becomes a message naming the input.
fn survive(target: &str, what: &str, f: Target, input: &[u8]) -> Result<(), String> {
    panic::catch_unwind(AssertUnwindSafe(|| f(input))).map_err(|_| {
        format!(
            "fuzz target {target} panicked on {what} ({} bytes): {}\n\
             save it as fuzz/regressions/{target}/NAME, fix the parser, and rerun",
            input.len(),
            hex(input)
        )
    })
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    let mut failures = Vec::new();
    for (i, &(target, f)) in TARGETS.iter().enumerate() {
        let seeds = committed("seeds", target);
        assert!(
            !seeds.is_empty(),
            "fuzz target {target} has no committed seeds in fuzz/seeds/{target}/"
        );
        let mut inputs = seeds;
        inputs.extend(committed("regressions", target));
        let run = || -> Result<(), String> {
            for (name, bytes) in &inputs {
                survive(target, name, f, bytes)?;
            }
            let seed = 0x9e37_79b9_7f4a_7c15 ^ i as u64;
            let mut rng = Rng(seed);
            for n in 0..MUTATIONS {
                let base = &inputs[rng.below(inputs.len())].1;
                let other = &inputs[rng.below(inputs.len())].1;
                let m = mutate(&mut rng, base.clone(), other);
                survive(target, &format!("mutation {n} (rng seed {seed:#x})"), f, &m)?;
            }
            Ok(())
        };
        if let Err(e) = run() {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_panicking_target_fails_the_smoke_run() {
    // The harness itself: a body that panics must be reported, not swallowed.
    fn boom(b: &[u8]) {
        assert!(b.len() < 3, "boom");
    }
    assert!(survive("boom", "short", boom, b"ab").is_ok());
    let e = survive("boom", "long", boom, b"abcd").unwrap_err();
    assert!(
        e.contains("fuzz target boom panicked on long (4 bytes): 61626364"),
        "{e}"
    );
}

#[test]
fn seeds_are_real_kernel_answers() {
    // The seeds only teach the fuzzer layouts if they decode to what
    // examples/fuzz_seeds planted; a bad capture would not be noticed.
    use netwhy::state::{conntrack, iptables, netlink, nftrace, sockets};
    let seed = |name: &str| {
        let (t, f) = name.split_once('/').expect("TARGET/NAME");
        let all = committed("seeds", t);
        let found = all.into_iter().find(|(p, _)| p.ends_with(&format!("/{f}")));
        found.unwrap_or_else(|| panic!("no seed {name}")).1
    };
    let ct = seed("conntrack/dump");
    let dnat = netlink::messages(&ct)
        .filter_map(|(_, _, _, b)| conntrack::parse_ct_msg(b))
        .find(|e| e.has(conntrack::status::DST_NAT))
        .expect("a DNAT entry");
    assert_eq!(dnat.orig.dport, 5353, "{dnat}");

    let ipt = seed("iptables/ip-filter");
    let info = iptables::parse::TableInfo::parse(&ipt[1..]).expect("getinfo");
    let rules =
        iptables::parse::rules(iptables::Family::Ipv4, "filter", &info, &ipt[85..]).expect("rules");
    assert!(
        rules
            .iter()
            .any(|r| r.target == "REJECT" && r.summary.contains("dpt:22")),
        "{rules:#?}"
    );

    let nft = seed("nftables/rules");
    let actions: Vec<_> = netlink::messages(&nft)
        .filter_map(|(_, _, _, b)| nftrace::parse_rule(b[0], &b[4..]))
        .map(|r| r.action())
        .collect();
    assert!(
        actions.contains(&netwhy::state::nft_rule::Action::Reject),
        "{actions:?}"
    );

    let diag = seed("sock_diag/tcp4");
    let listening = netlink::messages(&diag[1..])
        .filter_map(|(_, _, _, b)| sockets::parse_diag_msg(b, sockets::Proto::Tcp))
        .any(|s| s.is_listener() && s.local.port() == 80);
    assert!(listening, "no tcp listener on :80 in the sock_diag seed");
}
