//! ELF64 core files as written by the kdump kernel (`/proc/vmcore`, `cp`),
//! makedumpfile `-E` and qemu `dump-guest-memory`.
//!
//! Only what the log needs is parsed: the program headers (PT_LOAD gives the
//! physical → file offset map, PT_NOTE holds VMCOREINFO). Every size comes
//! from the file, so each is bounded before it is trusted.

use crate::error::{Error, Result};
use crate::phys::{DumpFile, PageSource, PAGE};
use std::sync::Arc;

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PN_XNUM: u16 = 0xffff;
/// More program headers than this is a lying header, not a machine.
const MAX_PHDRS: u64 = 1 << 20;
/// Notes hold registers per CPU plus VMCOREINFO: a few MiB at the very most.
const MAX_NOTES: u64 = 64 << 20;

/// One PT_LOAD: physical range [paddr, paddr+memsz) whose first `filesz`
/// bytes are in the file at `offset` (the rest reads as zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

#[derive(Debug)]
pub struct ElfCore {
    pub machine: u16,
    pub phoff: u64,
    /// In file order.
    pub loads: Vec<Load>,
    /// Raw bytes of every PT_NOTE segment, concatenated.
    pub notes: Vec<u8>,
}

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64le(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

pub fn is_elf(head: &[u8]) -> bool {
    head.len() >= 4 && &head[..4] == b"\x7fELF"
}

impl ElfCore {
    pub fn parse(file: &DumpFile) -> Result<Self> {
        let mut eh = [0u8; 64];
        file.read_at(0, &mut eh, "ELF header")?;
        if !is_elf(&eh) {
            return Err(Error::NotADump("no ELF magic".into()));
        }
        if eh[4] != 2 {
            return Err(Error::BadElf(
                "not ELF64 (32-bit dumps are not supported)".into(),
            ));
        }
        if eh[5] != 1 {
            return Err(Error::BadElf("big-endian dumps are not supported".into()));
        }
        let e_type = u16le(&eh, 16);
        if e_type != 4 {
            return Err(Error::BadElf(format!("e_type {e_type} is not ET_CORE")));
        }
        let machine = u16le(&eh, 18);
        // qemu 7.2 writes e_phoff=192 (and a wrong e_ehsize): honour e_phoff,
        // never assume the headers follow the 64-byte ELF header.
        let phoff = u64le(&eh, 32);
        let shoff = u64le(&eh, 40);
        let phentsize = u16le(&eh, 54);
        let mut phnum = u64::from(u16le(&eh, 56));
        if phentsize != 56 {
            return Err(Error::BadElf(format!(
                "e_phentsize {phentsize}, expected 56"
            )));
        }
        if phnum == u64::from(PN_XNUM) {
            // More than 65534 segments: the real count is section 0's sh_info.
            let mut sh = [0u8; 64];
            file.read_at(shoff, &mut sh, "ELF section header 0 (PN_XNUM)")?;
            phnum = u64::from(u32le(&sh, 44));
        }
        if phnum > MAX_PHDRS {
            return Err(Error::TooBig {
                what: "program header count",
                value: phnum,
                limit: MAX_PHDRS,
            });
        }
        let table = file.read_vec(phoff, phnum * 56, MAX_PHDRS * 56, "ELF program headers")?;
        let mut loads = Vec::new();
        let mut notes = Vec::new();
        for ph in table.chunks_exact(56) {
            let p_type = u32le(ph, 0);
            let offset = u64le(ph, 8);
            let vaddr = u64le(ph, 16);
            let paddr = u64le(ph, 24);
            let filesz = u64le(ph, 32);
            let memsz = u64le(ph, 40);
            match p_type {
                PT_LOAD => {
                    if filesz > memsz {
                        return Err(Error::BadElf(format!(
                            "PT_LOAD at paddr {paddr:#x}: filesz {filesz:#x} > memsz {memsz:#x}"
                        )));
                    }
                    if paddr.checked_add(memsz).is_none() || offset.checked_add(filesz).is_none() {
                        return Err(Error::BadElf(format!(
                            "PT_LOAD at paddr {paddr:#x} overflows"
                        )));
                    }
                    if memsz > 0 {
                        loads.push(Load {
                            offset,
                            vaddr,
                            paddr,
                            filesz,
                            memsz,
                        });
                    }
                }
                PT_NOTE => {
                    let room = MAX_NOTES.saturating_sub(notes.len() as u64);
                    let n = file.read_vec(offset, filesz, room, "PT_NOTE segment")?;
                    notes.extend_from_slice(&n);
                }
                _ => {}
            }
        }
        Ok(ElfCore {
            machine,
            phoff,
            loads,
            notes,
        })
    }

    /// Physical address of a virtual one through the PT_LOAD vaddr fields, for
    /// dumps that fill them (kdump's /proc/vmcore, qemu with paging=true).
    /// A last resort: the VMCOREINFO-based translation is preferred.
    pub fn vaddr_to_paddr(&self, va: u64) -> Option<u64> {
        self.loads
            .iter()
            .find(|l| l.vaddr != 0 && va >= l.vaddr && va - l.vaddr < l.memsz)
            .map(|l| l.paddr + (va - l.vaddr))
    }
}

/// Iterates ELF notes as (name, type, desc). Stops quietly at the first
/// malformed entry: notes past it cannot be located reliably.
pub fn notes(buf: &[u8]) -> impl Iterator<Item = (&[u8], u32, &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let hdr = buf.get(pos..pos.checked_add(12)?)?;
        let namesz = u32le(hdr, 0) as usize;
        let descsz = u32le(hdr, 4) as usize;
        let ntype = u32le(hdr, 8);
        let name_at = pos + 12;
        let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
        let next = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
        let name = buf.get(name_at..name_at + namesz)?;
        let desc = buf.get(desc_at..desc_at.checked_add(descsz)?)?;
        pos = next;
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        Some((name, ntype, desc))
    })
}

/// Physical pages of an ELF core.
pub struct ElfPages {
    file: Arc<DumpFile>,
    /// Disjoint, sorted by paddr.
    loads: Vec<Load>,
    /// Index of the load that served the last page: a ring walk stays in
    /// one segment, so this usually spares the binary search.
    last: std::cell::Cell<usize>,
}

/// Makes the PT_LOAD list disjoint in physical space. qemu's paging=true
/// dumps describe one physical range several times (once per virtual
/// mapping, all pointing at the same file bytes), and lookups by binary
/// search need non-overlapping ranges: the first description of a byte wins.
pub fn disjoint(loads: &[Load]) -> Vec<Load> {
    let mut sorted = loads.to_vec();
    sorted.sort_by_key(|l| (l.paddr, std::cmp::Reverse(l.memsz)));
    let mut out: Vec<Load> = Vec::with_capacity(sorted.len());
    let mut covered = 0u64;
    for l in sorted {
        let end = l.paddr + l.memsz;
        if !out.is_empty() && end <= covered {
            continue;
        }
        let start = if out.is_empty() {
            l.paddr
        } else {
            l.paddr.max(covered)
        };
        let cut = start - l.paddr;
        out.push(Load {
            offset: l.offset + cut,
            vaddr: if l.vaddr == 0 {
                0
            } else {
                l.vaddr.wrapping_add(cut)
            },
            paddr: start,
            filesz: l.filesz.saturating_sub(cut),
            memsz: l.memsz - cut,
        });
        covered = end;
    }
    out
}

impl ElfPages {
    pub fn new(file: Arc<DumpFile>, loads: &[Load]) -> Self {
        ElfPages {
            file,
            loads: disjoint(loads),
            last: std::cell::Cell::new(0),
        }
    }

    /// Index of the first load whose end is above `paddr`.
    fn first_candidate(&self, paddr: u64) -> usize {
        self.loads.partition_point(|l| l.paddr + l.memsz <= paddr)
    }
}

impl PageSource for ElfPages {
    fn has_page(&self, pfn: u64) -> bool {
        let pa = pfn.saturating_mul(PAGE as u64);
        let i = self.first_candidate(pa);
        self.loads
            .get(i)
            .is_some_and(|l| l.paddr < pa.saturating_add(PAGE as u64))
    }

    fn span_ref(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        let l = self.loads.get(self.first_candidate(paddr))?;
        let end = paddr.checked_add(len as u64)?;
        if paddr < l.paddr || end > l.paddr.checked_add(l.filesz)? {
            return None;
        }
        self.file.slice(l.offset.checked_add(paddr - l.paddr)?, len)
    }

    fn page_ref(&self, pfn: u64) -> Option<&[u8; PAGE]> {
        let start = pfn.checked_mul(PAGE as u64)?;
        let hit = |l: &Load| start >= l.paddr && start - l.paddr < l.memsz;
        let i = match self.loads.get(self.last.get()) {
            Some(l) if hit(l) => self.last.get(),
            _ => {
                let i = self.first_candidate(start);
                self.last.set(i);
                i
            }
        };
        let l = self.loads.get(i)?;
        // Only a page lying wholly in one segment's file bytes.
        if start < l.paddr || start.checked_add(PAGE as u64)? > l.paddr.checked_add(l.filesz)? {
            return None;
        }
        let s = self
            .file
            .slice(l.offset.checked_add(start - l.paddr)?, PAGE)?;
        s.try_into().ok()
    }

    fn read_page(&self, pfn: u64, buf: &mut [u8; PAGE]) -> Result<()> {
        let start = pfn
            .checked_mul(PAGE as u64)
            .ok_or(Error::PhysNotInDump(u64::MAX))?;
        let end = start + PAGE as u64;
        buf.fill(0);
        let mut covered = false;
        let mut i = self.first_candidate(start);
        while let Some(l) = self.loads.get(i) {
            if l.paddr >= end {
                break;
            }
            let lo = start.max(l.paddr);
            let hi = end.min(l.paddr + l.memsz);
            covered = true;
            // Bytes in [filesz, memsz) of the segment stay zero.
            let file_hi = hi.min(l.paddr + l.filesz);
            if lo < file_hi {
                let dst = &mut buf[(lo - start) as usize..(file_hi - start) as usize];
                self.file
                    .read_at(l.offset + (lo - l.paddr), dst, "PT_LOAD data")?;
            }
            i += 1;
        }
        if covered {
            Ok(())
        } else {
            Err(Error::PhysNotInDump(start))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(paddr: u64, memsz: u64, offset: u64) -> Load {
        Load {
            offset,
            vaddr: 0,
            paddr,
            filesz: memsz,
            memsz,
        }
    }

    #[test]
    fn overlapping_loads_become_disjoint() {
        // One big range, then smaller ones inside and across its end.
        let d = disjoint(&[
            load(0x5000, 0x1000, 0x9000),
            load(0, 0x8000, 0x100),
            load(0x7000, 0x3000, 0x20000),
        ]);
        assert_eq!(
            d,
            vec![load(0, 0x8000, 0x100), load(0x8000, 0x2000, 0x21000)]
        );
    }

    #[test]
    fn notes_stop_at_garbage() {
        let mut n = Vec::new();
        n.extend_from_slice(&11u32.to_le_bytes());
        n.extend_from_slice(&3u32.to_le_bytes());
        n.extend_from_slice(&0u32.to_le_bytes());
        n.extend_from_slice(b"VMCOREINFO\0\0");
        n.extend_from_slice(b"A=1\0");
        n.extend_from_slice(&[0xff; 12]);
        let v: Vec<_> = notes(&n).collect();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, b"VMCOREINFO");
        assert_eq!(v[0].2, b"A=1");
    }
}
