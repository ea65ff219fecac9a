//! Compiles every probe's BPF C (src/probe/<name>/<name>.bpf.c) into a
//! libbpf-rs skeleton, so plain `cargo build` builds the BPF side too.
use std::env;
use std::path::PathBuf;
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

/// One line per probe: adding a probe is one folder plus one entry here.
const PROBES: &[&str] = &["drop", "path", "skbfunc", "tcverdict", "sendfail"];

/// Programs the lab plants in its namespaces (src/lab/bpf/<name>.bpf.c):
/// the breakage of a scenario, not a probe of netwhy's.
const LAB_PROGS: &[&str] = &["tc_block"];

fn main() {
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    if Command::new(&clang).arg("--version").output().is_err() {
        panic!(
            "netwhy needs clang to compile its BPF programs: run `apt-get install clang` \
             (or set CLANG=/path/to/clang)"
        );
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR set by cargo"));
    println!("cargo:rerun-if-changed=src/probe/include");
    let probes = PROBES
        .iter()
        .map(|p| (*p, format!("src/probe/{p}/{p}.bpf.c")));
    let lab = LAB_PROGS
        .iter()
        .map(|p| (*p, format!("src/lab/bpf/{p}.bpf.c")));
    for (probe, src) in probes.chain(lab) {
        println!("cargo:rerun-if-changed={src}");
        SkeletonBuilder::new()
            .source(&src)
            .clang(&clang)
            .clang_args(["-Wall", "-Wno-unused-function", "-O2"])
            .build_and_generate(out.join(format!("{probe}.skel.rs")))
            .unwrap_or_else(|e| panic!("building {src}: {e:#}"));
    }
}
