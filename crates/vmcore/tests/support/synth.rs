//! Writers for small dumps: a trimmed ELF core holding only the pages the log
//! needs (cut out of a real qemu dump) and kdump-compressed files made from
//! the same pages with each compression method. Used to keep fast offline
//! tests on real data, and as the seed corpus of the malformed-input tests.
#![allow(dead_code)]

use netwhy_vmcore::Dump;

pub const PAGE: usize = 4096;

/// VMCOREINFO text and the pages the log reader touched.
pub struct Trimmed {
    pub vmcoreinfo: String,
    pub pages: Vec<(u64, Vec<u8>)>,
}

pub fn trim(dump: &Dump) -> Trimmed {
    dump.trace_pages();
    dump.read_log().expect("source dump readable");
    let pages = dump
        .touched_pages()
        .into_iter()
        .map(|pfn| {
            let mut b = vec![0u8; PAGE];
            dump.read_phys(pfn * PAGE as u64, &mut b).unwrap();
            (pfn, b)
        })
        .collect();
    let vi = dump.vmcoreinfo().unwrap();
    let vmcoreinfo = vi
        .entries
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    Trimmed { vmcoreinfo, pages }
}

fn note(name: &str, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&0u32.to_le_bytes());
    n.extend_from_slice(name.as_bytes());
    n.push(0);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

/// Runs of consecutive pfns: (first pfn, page count, index of first page).
fn runs(pages: &[(u64, Vec<u8>)]) -> Vec<(u64, usize, usize)> {
    let mut out: Vec<(u64, usize, usize)> = Vec::new();
    for (i, (pfn, _)) in pages.iter().enumerate() {
        match out.last_mut() {
            Some((start, n, _)) if *start + *n as u64 == *pfn => *n += 1,
            _ => out.push((*pfn, 1, i)),
        }
    }
    out
}

/// An ELF64 x86_64 core: PT_NOTE (VMCOREINFO) + one PT_LOAD per run.
pub fn write_elf(t: &Trimmed) -> Vec<u8> {
    let notes = note("VMCOREINFO", t.vmcoreinfo.as_bytes());
    let runs = runs(&t.pages);
    let phnum = 1 + runs.len();
    let notes_at = 64 + 56 * phnum;
    let mut data_at = (notes_at + notes.len()).div_ceil(PAGE) * PAGE;
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&4u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let ph = |t: u32, off: u64, paddr: u64, size: u64| {
        let mut p = vec![0u8; 56];
        p[0..4].copy_from_slice(&t.to_le_bytes());
        p[8..16].copy_from_slice(&off.to_le_bytes());
        p[24..32].copy_from_slice(&paddr.to_le_bytes());
        p[32..40].copy_from_slice(&size.to_le_bytes());
        p[40..48].copy_from_slice(&size.to_le_bytes());
        p
    };
    out.extend(ph(4, notes_at as u64, 0, notes.len() as u64));
    for (pfn, n, _) in &runs {
        out.extend(ph(1, data_at as u64, pfn * PAGE as u64, (n * PAGE) as u64));
        data_at += n * PAGE;
    }
    out.extend_from_slice(&notes);
    out.resize(out.len().div_ceil(PAGE) * PAGE, 0);
    for (_, p) in &t.pages {
        out.extend_from_slice(p);
    }
    out
}

#[derive(Clone, Copy, Debug)]
pub enum Method {
    Raw,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl Method {
    fn flag(self) -> u32 {
        match self {
            Method::Raw => 0,
            Method::Zlib => 1,
            Method::Lzo => 2,
            Method::Snappy => 4,
            Method::Zstd => 0x20,
        }
    }

    fn compress(self, page: &[u8]) -> Vec<u8> {
        match self {
            Method::Raw => page.to_vec(),
            Method::Zlib => {
                use std::io::Write;
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(page).unwrap();
                e.finish().unwrap()
            }
            Method::Lzo => lzokay_native::compress(page).unwrap(),
            Method::Snappy => snap::raw::Encoder::new().compress_vec(page).unwrap(),
            Method::Zstd => {
                ruzstd::encoding::compress_to_vec(page, ruzstd::encoding::CompressionLevel::Fastest)
            }
        }
    }
}

/// A kdump-compressed (diskdump v6) file of the trimmed pages.
pub fn write_kdump(t: &Trimmed, method: Method) -> Vec<u8> {
    let max_pfn = t.pages.last().map(|p| p.0 + 1).unwrap_or(1);
    let sub_len = 104 + t.vmcoreinfo.len();
    let sub_blocks = sub_len.div_ceil(PAGE);
    let bitmap_len = (max_pfn as usize).div_ceil(8).div_ceil(PAGE) * PAGE;
    let bitmap_blocks = 2 * bitmap_len / PAGE;
    let mut out = vec![0u8; PAGE * (1 + sub_blocks) + 2 * bitmap_len];
    out[..8].copy_from_slice(b"KDUMP   ");
    out[8..12].copy_from_slice(&6i32.to_le_bytes());
    let release = b"6.1.0-trimmed";
    out[12 + 130..12 + 130 + release.len()].copy_from_slice(release);
    out[12 + 260..12 + 266].copy_from_slice(b"x86_64");
    out[424..428].copy_from_slice(&method.flag().to_le_bytes());
    out[428..432].copy_from_slice(&(PAGE as u32).to_le_bytes());
    out[432..436].copy_from_slice(&(sub_blocks as u32).to_le_bytes());
    out[436..440].copy_from_slice(&(bitmap_blocks as u32).to_le_bytes());
    out[440..444].copy_from_slice(&(max_pfn as u32).to_le_bytes());
    let sub = PAGE;
    let vi_at = (sub + 104) as u64;
    out[sub + 32..sub + 40].copy_from_slice(&vi_at.to_le_bytes());
    out[sub + 40..sub + 48].copy_from_slice(&(t.vmcoreinfo.len() as u64).to_le_bytes());
    out[sub + 96..sub + 104].copy_from_slice(&max_pfn.to_le_bytes());
    out[sub + 104..sub + 104 + t.vmcoreinfo.len()].copy_from_slice(t.vmcoreinfo.as_bytes());
    let bm1 = PAGE * (1 + sub_blocks);
    for (pfn, _) in &t.pages {
        let (byte, bit) = (*pfn as usize / 8, pfn % 8);
        out[bm1 + byte] |= 1 << bit;
        out[bm1 + bitmap_len + byte] |= 1 << bit;
    }
    let descs_at = out.len();
    let mut data_at = descs_at + 24 * t.pages.len();
    let mut descs = Vec::new();
    let mut data = Vec::new();
    for (_, page) in &t.pages {
        let mut c = method.compress(page);
        let mut flags = method.flag();
        if c.len() >= PAGE {
            c = page.clone();
            flags = 0;
        }
        descs.extend_from_slice(&(data_at as u64).to_le_bytes());
        descs.extend_from_slice(&(c.len() as u32).to_le_bytes());
        descs.extend_from_slice(&flags.to_le_bytes());
        descs.extend_from_slice(&0u64.to_le_bytes());
        data_at += c.len();
        data.extend(c);
    }
    out.extend(descs);
    out.extend(data);
    out
}

/// gzip helpers for the committed fixture.
pub fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}
