//! Kernel virtual → physical translation using only VMCOREINFO facts.
//!
//! In order of preference, because each needs less of the dump to be intact:
//! 1. the kernel image mapping (x86_64: `va - __START_KERNEL_map + phys_base`,
//!    arm64: `va - kimage_voffset`): static log buffers live there;
//! 2. the direct (linear) map when its base is known (arm64 from VA_BITS and
//!    PHYS_OFFSET; x86_64 from a `page_offset` key when a kernel exports one);
//! 3. a 4- or 5-level page-table walk from `init_top_pgt` (x86_64): needed for
//!    buffers allocated at boot (`log_buf_len=`), whose direct-map base is
//!    randomized by KASLR and not in VMCOREINFO;
//! 4. the PT_LOAD vaddr fields of an ELF dump, when the writer filled them.

use crate::error::{Error, Result};
use crate::phys::{PhysMem, PAGE};
use crate::vmcoreinfo::VmcoreInfo;
use std::cell::Cell;

/// Upper bound for any single buffer we copy out of the dump: the kernel caps
/// log_buf_len at 2 GiB, but a real log beyond 256 MiB means a lying header.
pub const MAX_LOG_BYTES: u64 = 256 << 20;

const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
const PTE_PFN_MASK: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64 {
        phys_base: u64,
        image_size: u64,
        /// Physical address of the top-level page table, if known.
        pgd: Option<u64>,
        five_level: bool,
        /// Memory-encryption bit to strip from table entries.
        sme_mask: u64,
        page_offset: Option<u64>,
    },
    Aarch64 {
        kimage_voffset: u64,
        phys_offset: u64,
        va_bits: u32,
    },
}

impl Arch {
    /// Builds the translation facts from VMCOREINFO. `fallback_phys_base`
    /// comes from a kdump sub header when VMCOREINFO lacks NUMBER(phys_base).
    pub fn from_vmcoreinfo(
        machine: u16,
        vi: &VmcoreInfo,
        fallback_phys_base: Option<u64>,
    ) -> Result<Arch> {
        match machine {
            crate::elf::EM_AARCH64 => {
                let need = |k: &str| -> Result<i64> {
                    vi.number(k)?
                        .ok_or_else(|| Error::MissingKey(format!("NUMBER({k})")))
                };
                Ok(Arch::Aarch64 {
                    kimage_voffset: need("kimage_voffset")? as u64,
                    phys_offset: need("PHYS_OFFSET")? as u64,
                    va_bits: need("VA_BITS")?.clamp(36, 52) as u32,
                })
            }
            _ => {
                let phys_base = match vi.number("phys_base")? {
                    Some(v) => v as u64,
                    None => fallback_phys_base.unwrap_or(0),
                };
                let image_size = vi
                    .number("KERNEL_IMAGE_SIZE")?
                    .map(|v| v as u64)
                    .unwrap_or(1 << 30);
                let mut arch = Arch::X86_64 {
                    phys_base,
                    image_size,
                    pgd: None,
                    five_level: vi.number("pgtable_l5_enabled")?.unwrap_or(0) == 1,
                    sme_mask: vi.number("sme_mask")?.unwrap_or(0) as u64,
                    page_offset: vi.number("page_offset_base")?.map(|v| v as u64),
                };
                let top = vi
                    .symbol("init_top_pgt")
                    .or_else(|| vi.symbol("init_level4_pgt"));
                if let (Arch::X86_64 { pgd, .. }, Some(t)) = (&mut arch, top) {
                    *pgd = arch_text(phys_base, image_size, t);
                }
                Ok(arch)
            }
        }
    }
}

fn arch_text(phys_base: u64, image_size: u64, va: u64) -> Option<u64> {
    (va >= START_KERNEL_MAP && va - START_KERNEL_MAP < image_size)
        .then(|| (va - START_KERNEL_MAP).wrapping_add(phys_base))
}

/// Walked translations remembered, by virtual page (direct-mapped). A ring
/// walk reads three interleaved streams (descriptors, infos, text) page by
/// page; without this every small read of a buffer in the direct map
/// (`log_buf_len=`) cost a four-level page-table walk.
const TLB_SLOTS: usize = 64;

/// Kernel virtual memory: physical memory plus the translation facts.
pub struct KernelMem<'a> {
    pub phys: &'a PhysMem,
    pub arch: Arch,
    /// Last-resort vaddr → paddr (ELF PT_LOAD vaddr fields).
    pub loads_vaddr: Option<&'a dyn Fn(u64) -> Option<u64>>,
    /// (virtual page, physical page) of recent page-table walks; a virtual
    /// page of u64::MAX marks an empty slot (no `va >> 12` is that large).
    tlb: [Cell<(u64, u64)>; TLB_SLOTS],
}

impl<'a> KernelMem<'a> {
    pub fn new(
        phys: &'a PhysMem,
        arch: Arch,
        loads_vaddr: Option<&'a dyn Fn(u64) -> Option<u64>>,
    ) -> Self {
        KernelMem {
            phys,
            arch,
            loads_vaddr,
            tlb: std::array::from_fn(|_| Cell::new((u64::MAX, 0))),
        }
    }

    pub fn translate(&self, va: u64) -> Result<u64> {
        match &self.arch {
            Arch::X86_64 {
                phys_base,
                image_size,
                pgd,
                five_level,
                sme_mask,
                page_offset,
            } => {
                if let Some(pa) = arch_text(*phys_base, *image_size, va) {
                    return Ok(pa);
                }
                if let Some(po) = page_offset {
                    if va >= *po && va - po < (1u64 << 46) {
                        return Ok(va - po);
                    }
                }
                let vpage = va >> 12;
                let slot = &self.tlb[vpage as usize % TLB_SLOTS];
                let (cached_v, cached_p) = slot.get();
                if cached_v == vpage {
                    return Ok(cached_p | (va & 0xfff));
                }
                let walked = match pgd {
                    Some(pgd) => self.walk_x86(*pgd, va, *five_level, *sme_mask),
                    None => Err(Error::Translate(va, "no init_top_pgt in VMCOREINFO".into())),
                };
                let pa = match walked {
                    Ok(pa) => pa,
                    Err(e) => self.loads_vaddr.and_then(|f| f(va)).ok_or(e)?,
                };
                slot.set((vpage, pa & !0xfff));
                Ok(pa)
            }
            Arch::Aarch64 {
                kimage_voffset,
                phys_offset,
                va_bits,
            } => {
                // Since 5.4 the linear map is the bottom half of the kernel
                // range: [-(1 << VA_BITS), -(1 << (VA_BITS - 1))).
                let page_offset = 0u64.wrapping_sub(1u64 << va_bits);
                let linear_end = 0u64.wrapping_sub(1u64 << (va_bits - 1));
                if va >= page_offset && va < linear_end {
                    return Ok(va - page_offset + phys_offset);
                }
                let pa = va.wrapping_sub(*kimage_voffset);
                if self.phys.has(pa) {
                    return Ok(pa);
                }
                self.loads_vaddr.and_then(|f| f(va)).ok_or_else(|| {
                    Error::Translate(va, "outside the arm64 linear map and image".into())
                })
            }
        }
    }

    fn entry(&self, table: u64, index: u64, mask: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.phys
            .read((table & PTE_PFN_MASK & !mask) + index * 8, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// x86_64 page-table walk. Large pages end the walk early (1 GiB at the
    /// PUD, 2 MiB at the PMD); a non-present entry is a translation error.
    fn walk_x86(&self, pgd: u64, va: u64, five: bool, sme: u64) -> Result<u64> {
        let shifts: &[u32] = if five {
            &[48, 39, 30, 21, 12]
        } else {
            &[39, 30, 21, 12]
        };
        let mut table = pgd;
        for (level, &shift) in shifts.iter().enumerate() {
            let e = self.entry(table, (va >> shift) & 0x1ff, sme)?;
            if e & PRESENT == 0 {
                return Err(Error::Translate(
                    va,
                    format!("not present at page-table level {}", shifts.len() - level),
                ));
            }
            let addr = e & PTE_PFN_MASK & !sme;
            let is_last = shift == 12;
            if is_last || ((shift == 30 || shift == 21) && e & HUGE != 0) {
                let page_mask = (1u64 << shift) - 1;
                return Ok((addr & !page_mask) | (va & page_mask));
            }
            table = addr;
        }
        unreachable!("the walk returns at the PTE level")
    }

    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<()> {
        // Translate page by page: contiguous virtual is not contiguous physical.
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let n = (4096 - (a % 4096) as usize).min(buf.len() - done);
            let pa = self.translate(a)?;
            self.phys.read(pa, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// [va, va + len) in place when it is one run of bytes in the dump:
    /// every page translates to the next physical page and the source can
    /// lend the whole range. Lets a reader index a kernel array directly
    /// instead of translating and copying each element. None otherwise
    /// (the caller falls back to element reads, which report errors).
    pub fn contiguous(&self, va: u64, len: u64) -> Option<&[u8]> {
        if len == 0 || len > MAX_LOG_BYTES {
            return None;
        }
        let pa = self.translate(va).ok()?;
        let mut page = (va | (PAGE as u64 - 1)).checked_add(1)?;
        while page < va.checked_add(len)? {
            if self.translate(page).ok()? != pa + (page - va) {
                return None;
            }
            page += PAGE as u64;
        }
        self.phys.span(pa, len as usize)
    }

    /// The `len` bytes at `va`: borrowed in place when they lie in one page
    /// the dump can lend (a mapped ELF), else copied into `scratch`
    /// (which must hold `len` bytes).
    pub fn view<'s>(&'s self, va: u64, len: usize, scratch: &'s mut [u8]) -> Result<&'s [u8]> {
        let off = (va % PAGE as u64) as usize;
        if off + len <= PAGE {
            let pa = self.translate(va)?;
            return self.phys.view(pa, len, scratch);
        }
        let buf = &mut scratch[..len];
        self.read(va, buf)?;
        Ok(buf)
    }

    pub fn u64(&self, va: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn u32(&self, va: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::PageSource;

    /// Physical memory as one buffer of 512 pages, with the pfns present.
    struct Pages {
        mem: Vec<u8>,
        present: std::collections::HashSet<u64>,
    }

    impl PageSource for Pages {
        fn read_page(&self, pfn: u64, buf: &mut [u8; PAGE]) -> Result<()> {
            let p = self
                .span_ref(pfn * 4096, PAGE)
                .ok_or(Error::PhysNotInDump(pfn * 4096))?;
            buf.copy_from_slice(p);
            Ok(())
        }
        fn has_page(&self, pfn: u64) -> bool {
            self.present.contains(&pfn)
        }
        fn span_ref(&self, paddr: u64, len: usize) -> Option<&[u8]> {
            let first = paddr / 4096;
            let last = (paddr + len as u64 - 1) / 4096;
            (first..=last).all(|p| self.has_page(p)).then_some(())?;
            self.mem.get(paddr as usize..paddr as usize + len)
        }
    }

    /// A 4-level table at pfns 1..=4 mapping `n` consecutive virtual pages
    /// from `va` to pfns 100, 101, ... (page k filled with byte k), except
    /// page `hole`, left not present, and page 2, moved to pfn 400.
    fn tables(va: u64, n: u64, hole: u64) -> Pages {
        let pfn = |k: u64| if k == 2 { 400 } else { 100 + k };
        let mut pages = Pages {
            mem: vec![0; 512 * PAGE],
            present: (1..=4).collect(),
        };
        let mut set = |pfn: u64, index: u64, entry: u64| {
            let at = (pfn * 4096 + index * 8) as usize;
            pages.mem[at..at + 8].copy_from_slice(&entry.to_le_bytes());
        };
        set(1, (va >> 39) & 0x1ff, 2 << 12 | PRESENT);
        set(2, (va >> 30) & 0x1ff, 3 << 12 | PRESENT);
        set(3, (va >> 21) & 0x1ff, 4 << 12 | PRESENT);
        for k in (0..n).filter(|&k| k != hole) {
            set(4, ((va >> 12) + k) & 0x1ff, pfn(k) << 12 | PRESENT);
        }
        for k in 0..n {
            let at = (pfn(k) * 4096) as usize;
            pages.mem[at..at + PAGE].fill(k as u8);
            pages.present.insert(pfn(k));
        }
        pages
    }

    #[test]
    fn walked_translations_are_cached_per_page_and_never_mixed_up() {
        // Direct-map address (no page_offset known): only the walk finds it.
        let va = 0xffff_8880_0000_0000u64;
        let n = 200; // more pages than TLB slots: slots are reused
        let phys = PhysMem::new(Box::new(tables(va, n, 150)));
        let arch = Arch::X86_64 {
            phys_base: 0,
            image_size: 1 << 30,
            pgd: Some(1 << 12),
            five_level: false,
            sme_mask: 0,
            page_offset: None,
        };
        let mem = KernelMem::new(&phys, arch, None);
        for round in 0..3 {
            // Pages 0, 64, 128 share a slot; interleave them with others.
            for k in [0u64, 64, 128, 1, 65, 0, 199, 128] {
                let a = va + k * 4096 + 8 * round;
                assert_eq!(
                    mem.translate(a).unwrap(),
                    (100 + k) << 12 | (8 * round),
                    "page {k}"
                );
                let mut b = [0u8; 2];
                mem.read(a, &mut b).unwrap();
                assert_eq!(b, [k as u8; 2]);
            }
        }
        // A read across a page boundary takes each page's own translation.
        let mut b = [0u8; 16];
        mem.read(va + 4096 - 8, &mut b).unwrap();
        assert_eq!(b, [[0u8; 8], [1u8; 8]].concat()[..]);
        // A page that is not present is an error, every time (not cached).
        for _ in 0..2 {
            assert!(matches!(
                mem.translate(va + 150 * 4096),
                Err(Error::Translate(..))
            ));
        }
        // The contiguous view refuses a range whose pages are scattered
        // (page 2 lives elsewhere) or missing, before asking the source.
        assert!(mem.contiguous(va + 4096, 2 * 4096).is_none());
        assert!(mem.contiguous(va + 149 * 4096, 2 * 4096).is_none());
        // ...and lends one that is contiguous, across a page boundary.
        let run = mem.contiguous(va + 3 * 4096 + 100, 4096).unwrap();
        assert_eq!(
            (run[0], run[4095 - 100], run[4096 - 100], run.len()),
            (3, 3, 4, 4096)
        );
    }
}
