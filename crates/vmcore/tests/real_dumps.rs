//! End-to-end tests on real crash dumps made by qemu (see support/fixtures.rs),
//! checked record for record against vmcore-dmesg and makedumpfile.
//!
//! Outside CI a missing capability (qemu, the kernel .deb, an oracle) skips
//! with a printed reason; with CI=true it fails.

#[path = "support/fixtures.rs"]
mod fixtures;
#[path = "support/oracle.rs"]
mod oracle;

use oracle::{assert_same, parse_oracle, unescape};

use fixtures::{dump_path, BOOTS, MARKERS, WRAP_LINES};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_netwhy-vmcore");

/// Every dump file made for a boot, ours to read.
const VARIANTS: &[&str] = &[
    "elf",
    "phys.elf",
    "kdump-zlib",
    "mdf.elf",
    "mdf-zlib.kdump",
    "mdf-lzo.kdump",
    "mdf-flat.kdump",
    "mdf-E.elf",
];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Builds or finds the fixtures; None (after printing why) when they cannot
/// be made outside CI.
fn fixtures() -> Option<()> {
    match fixtures::ensure_all() {
        Ok(_) => Some(()),
        Err(e) if in_ci() => panic!("CI=true and the vmcore fixtures cannot be built: {e}"),
        Err(e) => {
            eprintln!("SKIP: vmcore fixtures unavailable: {e}");
            None
        }
    }
}

fn tool(name: &str, package: &str) -> Option<String> {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return Some(p);
        }
    }
    if in_ci() {
        panic!("CI=true and the oracle {name} is missing: install the Debian package {package}");
    }
    eprintln!("SKIP: oracle {name} missing (Debian package {package})");
    None
}

fn run(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(BIN)
        .args(args)
        .output()
        .expect("run netwhy-vmcore");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// (microseconds since boot, text bytes) per record, from our JSON output.
fn ours(path: &str) -> Vec<(u64, Vec<u8>)> {
    let (ok, out, err) = run(&["dmesg", "--json", path]);
    assert!(ok, "netwhy-vmcore failed on {path}: {err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["ts_nsec"].as_u64().unwrap() / 1000,
                unescape(v["text"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn every_format_matches_vmcore_dmesg() {
    let Some(()) = fixtures() else { return };
    let Some(vd) = tool("vmcore-dmesg", "kexec-tools") else {
        return;
    };
    for boot in BOOTS {
        // vmcore-dmesg needs virtual addresses in PT_LOAD: the paging dump.
        let elf = dump_path(boot.name, "elf");
        let o = Command::new(&vd).arg(&elf).output().unwrap();
        assert!(
            o.status.success(),
            "vmcore-dmesg failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let theirs = parse_oracle(&o.stdout);
        for v in VARIANTS {
            let p = dump_path(boot.name, v);
            assert_same(
                &format!("{} {v} vs vmcore-dmesg", boot.name),
                &ours(p.to_str().unwrap()),
                &theirs,
            );
        }
    }
}

#[test]
fn matches_makedumpfile_dump_dmesg() {
    let Some(()) = fixtures() else { return };
    let Some(mdf) = tool("makedumpfile", "makedumpfile") else {
        return;
    };
    for boot in BOOTS {
        let src = dump_path(boot.name, "mdf.elf");
        let out = std::env::temp_dir().join(format!(
            "netwhy-vmcore-mdf-{}-{}.txt",
            boot.name,
            std::process::id()
        ));
        let o = Command::new(&mdf)
            .arg("--dump-dmesg")
            .arg(&src)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "makedumpfile failed: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let theirs = parse_oracle(&std::fs::read(&out).unwrap());
        let _ = std::fs::remove_file(&out);
        assert_same(
            &format!("{} vs makedumpfile", boot.name),
            &ours(src.to_str().unwrap()),
            &theirs,
        );
    }
}

fn texts(boot: &str, variant: &str) -> Vec<String> {
    ours(dump_path(boot, variant).to_str().unwrap())
        .into_iter()
        .map(|(_, t)| String::from_utf8(t).unwrap())
        .collect()
}

fn position(texts: &[String], needle: &str) -> usize {
    texts
        .iter()
        .position(|t| t.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the log"))
}

#[test]
fn markers_in_order_and_panic_present() {
    let Some(()) = fixtures() else { return };
    let t = texts("nokaslr-bigbuf", "kdump-zlib");
    assert!(
        t[0].starts_with("Linux version"),
        "an unwrapped log starts at boot: {:?}",
        t[0]
    );
    let at: Vec<usize> = MARKERS.iter().map(|m| position(&t, m)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "markers out of order: {at:?}"
    );
    let fills: Vec<usize> = (0..20)
        .map(|i| position(&t, &format!("netwhy-fill {i}:")))
        .collect();
    assert!(fills.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(
        t.iter().any(|l| l == "netwhy-marker: two\nlines"),
        "multi-line record kept whole"
    );
    assert!(t.iter().any(|l| l == "netwhy-marker: ctl [\u{1}] tab[\t]"));
    let panic = position(&t, "Kernel panic - not syncing: sysrq triggered crash");
    assert!(panic > at[2]);
}

#[test]
fn wrapped_log_keeps_the_newest_records() {
    let Some(()) = fixtures() else { return };
    let t = texts("kaslr-wrap", "elf");
    assert!(
        t.len() < WRAP_LINES,
        "the ring cannot hold all {WRAP_LINES} lines"
    );
    assert!(
        !t.iter().any(|l| l.starts_with("Linux version")),
        "boot lines were overwritten"
    );
    assert!(
        !t.iter().any(|l| l.contains(MARKERS[0])),
        "the first marker was overwritten"
    );
    let fills: Vec<usize> = t
        .iter()
        .filter_map(|l| {
            l.strip_prefix("netwhy-fill ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(fills.len() > 1000, "{} fill lines survive", fills.len());
    assert!(
        fills.windows(2).all(|w| w[1] == w[0] + 1),
        "fill lines are consecutive"
    );
    assert_eq!(*fills.last().unwrap(), WRAP_LINES - 1);
    assert!(position(&t, MARKERS[1]) < position(&t, MARKERS[2]));
    position(&t, "Kernel panic - not syncing");
}

fn vmcoreinfo(path: &str) -> serde_json::Value {
    let (ok, out, err) = run(&["info", "--json", path]);
    assert!(ok, "info failed: {err}");
    serde_json::from_str(&out).unwrap()
}

fn key(info: &serde_json::Value, k: &str) -> Option<String> {
    info["vmcoreinfo"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e[0] == k)
        .map(|e| e[1].as_str().unwrap().to_string())
}

#[test]
fn kaslr_on_and_off_and_paging_levels() {
    let Some(()) = fixtures() else { return };
    let on = vmcoreinfo(dump_path("kaslr-wrap", "phys.elf").to_str().unwrap());
    let off = vmcoreinfo(dump_path("nokaslr-bigbuf", "phys.elf").to_str().unwrap());
    let offset = |i: &serde_json::Value| {
        u64::from_str_radix(&key(i, "KERNELOFFSET").unwrap_or_default(), 16).unwrap_or(0)
    };
    assert_ne!(offset(&on), 0, "KASLR on moves the kernel");
    assert_eq!(offset(&off), 0, "nokaslr keeps it in place");
    assert_eq!(
        key(&on, "NUMBER(pgtable_l5_enabled)").as_deref(),
        Some("1"),
        "-cpu max gives 5-level paging"
    );
    assert_eq!(
        key(&off, "NUMBER(pgtable_l5_enabled)").as_deref(),
        Some("0")
    );
    for i in [&on, &off] {
        assert!(
            i["log"]
                .as_str()
                .unwrap()
                .starts_with("readable: printk_ringbuffer"),
            "{}",
            i["log"]
        );
    }
}

#[test]
fn header_raw_tail_and_levels() {
    let Some(()) = fixtures() else { return };
    let p = dump_path("nokaslr-bigbuf", "elf");
    let p = p.to_str().unwrap();
    let (ok, out, _) = run(&["dmesg", "--color", "never", p]);
    assert!(ok);
    assert!(
        out.contains("# kernel: 6."),
        "{}",
        &out[..300.min(out.len())]
    );
    assert!(out.contains("# crashed: "));
    assert!(out
        .lines()
        .any(|l| l.starts_with("# panic: ") && l.contains("] Kernel panic - not syncing: sysrq")));
    assert!(out.contains("[    0.000000] Linux version"));
    let (_, out, _) = run(&["dmesg", "--no-header", "--raw", p]);
    // /dev/kmsg writes land in facility user (1): <1*8+4> for a <4> line.
    assert!(
        out.lines()
            .any(|l| l.starts_with("<12>[") && l.ends_with(MARKERS[2])),
        "raw prefix"
    );
    let (_, out, _) = run(&["dmesg", "--no-header", "--tail", "3", p]);
    assert_eq!(out.lines().count(), 3);
    let (_, out, _) = run(&["dmesg", "--no-header", "--level", "emerg", p]);
    assert!(out
        .lines()
        .all(|l| l.contains("panic") || l.contains("Kernel Offset") || !l.is_empty()));
    assert!(out.contains("Kernel panic - not syncing"));
    assert!(!out.contains("netwhy-fill"));
}

/// Our LZO1X decoder against liblzo2's compressor: every page makedumpfile
/// -l stored must decompress to the bytes of the ELF it was made from.
#[test]
fn lzo_pages_match_the_elf_pages() {
    let Some(()) = fixtures() else { return };
    for boot in BOOTS {
        let lzo =
            netwhy_vmcore::Dump::open(dump_path(boot.name, "mdf-lzo.kdump").to_str().unwrap())
                .unwrap();
        let elf =
            netwhy_vmcore::Dump::open(dump_path(boot.name, "mdf.elf").to_str().unwrap()).unwrap();
        assert!(lzo.format_name().contains("lzo"), "{}", lzo.format_name());
        let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
        let mut compared = 0;
        for pfn in 0..(256u64 << 20) / 4096 {
            match lzo.read_phys(pfn * 4096, &mut a) {
                Ok(()) => {}
                Err(netwhy_vmcore::Error::PhysNotInDump(_)) => continue,
                Err(e) => panic!("{}: pfn {pfn:#x}: {e}", boot.name),
            }
            elf.read_phys(pfn * 4096, &mut b).unwrap();
            assert!(a == b, "{}: pfn {pfn:#x} differs", boot.name);
            compared += 1;
        }
        // -d 31 drops free, cache and zero pages; thousands remain.
        assert!(compared > 2000, "{}: only {compared} pages", boot.name);
    }
}
