//! Fast tests on the committed trimmed fixture (real pages cut out of a qemu
//! dump of Debian's 6.1 kernel, KASLR and 5-level paging on, wrapped log):
//! no qemu needed. The same pages are rewritten as kdump-compressed files with
//! every compression method, and all must give vmcore-dmesg's records.

#[path = "support/oracle.rs"]
mod oracle;
#[path = "support/synth.rs"]
mod synth;

use netwhy_vmcore::Dump;
use synth::Method;

fn trimmed() -> Vec<u8> {
    synth::gunzip(include_bytes!("data/trimmed.elf.gz"))
}

fn records(d: &Dump) -> Vec<(u64, Vec<u8>)> {
    d.read_log()
        .unwrap()
        .records
        .into_iter()
        .map(|r| (r.ts_nsec / 1000, r.text))
        .collect()
}

#[test]
fn trimmed_elf_matches_vmcore_dmesg() {
    let theirs = oracle::parse_oracle(&synth::gunzip(include_bytes!(
        "data/trimmed.vmcore-dmesg.txt.gz"
    )));
    let d = Dump::from_bytes("trimmed", trimmed()).unwrap();
    oracle::assert_same("trimmed ELF", &records(&d), &theirs);
}

#[test]
fn every_compression_method_reads_the_same() {
    let elf = Dump::from_bytes("trimmed", trimmed()).unwrap();
    let want = records(&elf);
    let t = synth::trim(&elf);
    for m in [
        Method::Raw,
        Method::Zlib,
        Method::Lzo,
        Method::Snappy,
        Method::Zstd,
    ] {
        let k = Dump::from_bytes("kdump", synth::write_kdump(&t, m)).unwrap();
        assert!(
            k.format_name().starts_with("kdump-compressed v6"),
            "{}",
            k.format_name()
        );
        assert_eq!(records(&k), want, "{m:?}");
    }
}

#[test]
fn flattened_stream_reads_the_same() {
    let elf = Dump::from_bytes("trimmed", trimmed()).unwrap();
    let want = records(&elf);
    let kdump = synth::write_kdump(&synth::trim(&elf), Method::Zlib);
    // makedumpfile -F layout: 4 KiB header, then {offset, size, data} records
    // (big-endian); write the file in two out-of-order halves plus an
    // overwritten region to exercise "later records win".
    let mut flat = vec![0u8; 4096];
    flat[..12].copy_from_slice(b"makedumpfile");
    flat[16..24].copy_from_slice(&1i64.to_be_bytes());
    flat[24..32].copy_from_slice(&1i64.to_be_bytes());
    let mut push = |off: usize, data: &[u8]| {
        flat.extend_from_slice(&(off as i64).to_be_bytes());
        flat.extend_from_slice(&(data.len() as i64).to_be_bytes());
        flat.extend_from_slice(data);
    };
    let half = kdump.len() / 2;
    push(half, &kdump[half..]);
    push(0, &vec![0xee; half]);
    push(0, &kdump[..half]);
    flat.extend_from_slice(&(-1i64).to_be_bytes());
    flat.extend_from_slice(&(-1i64).to_be_bytes());
    let d = Dump::from_bytes("flat", flat).unwrap();
    assert!(d.flattened);
    assert_eq!(records(&d), want);
}

#[test]
fn info_reports_translation_and_log() {
    let d = Dump::from_bytes("trimmed", trimmed()).unwrap();
    let vi = d.vmcoreinfo().unwrap();
    assert_eq!(vi.osrelease(), Some("6.1.0-56-cloud-amd64"));
    assert!(vi.kernel_offset().unwrap() != 0);
    match d.arch().unwrap() {
        netwhy_vmcore::kvm::Arch::X86_64 {
            five_level, pgd, ..
        } => {
            assert!(five_level);
            assert!(pgd.is_some());
        }
        a => panic!("unexpected arch {a:?}"),
    }
    assert_eq!(d.log_kind().unwrap(), netwhy_vmcore::LogKind::RingBuffer);
}

#[test]
fn streaming_walk_gives_the_records_read_log_keeps() {
    let elf = Dump::from_bytes("trimmed", trimmed()).unwrap();
    let kdump =
        Dump::from_bytes("kdump", synth::write_kdump(&synth::trim(&elf), Method::Lzo)).unwrap();
    for d in [&elf, &kdump] {
        let kept = d.read_log().unwrap();
        let mut walked = Vec::new();
        let warnings = d.walk_log(&mut |r| walked.push(r.clone())).unwrap();
        assert!(walked.len() > 1000, "{}", walked.len());
        assert_eq!(walked, kept.records);
        assert_eq!(warnings, kept.warnings);
    }
}

/// Pages scattered over eight bitmap blocks, on both sides of rank-sample
/// (256 bytes = 2048 pfns) and block (4096 bytes = 32768 pfns) boundaries:
/// each must come back from its own descriptor.
#[test]
fn kdump_pages_found_across_bitmap_blocks() {
    let pfns = [
        0u64, 7, 8, 2047, 2048, 2049, 32767, 32768, 40000, 100_000, 262_143,
    ];
    let page = |pfn: u64| -> Vec<u8> {
        (0..synth::PAGE)
            .map(|i| (pfn.wrapping_mul(31) as usize + i / 64) as u8)
            .collect()
    };
    let t = synth::Trimmed {
        vmcoreinfo: "OSRELEASE=6.1.0-synthetic\n".into(),
        pages: pfns.iter().map(|&p| (p, page(p))).collect(),
    };
    for m in [Method::Raw, Method::Zlib] {
        let d = Dump::from_bytes("scattered", synth::write_kdump(&t, m)).unwrap();
        let mut b = vec![0u8; synth::PAGE];
        for &p in &pfns {
            d.read_phys(p * 4096, &mut b).unwrap();
            assert!(b == page(p), "{m:?} pfn {p}");
        }
        for p in [1u64, 2046, 2050, 32766, 32769, 262_142] {
            assert!(
                matches!(
                    d.read_phys(p * 4096, &mut b),
                    Err(netwhy_vmcore::Error::PhysNotInDump(_))
                ),
                "{m:?} pfn {p} should be absent"
            );
        }
    }
}
