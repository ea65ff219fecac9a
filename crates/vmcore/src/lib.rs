//! Read the kernel log out of a crash dump using only VMCOREINFO: no debug
//! vmlinux, no `crash`, a few MiB of memory, usable inside a kdump kernel.
//!
//! The path is: open the dump ([`Dump::open`]: ELF core or kdump-compressed)
//! → parse VMCOREINFO → pick the log layout the kernel used
//! ([`printk::LogKind`]) → translate the handful of kernel addresses the log
//! needs ([`kvm`]) → read only those pages → [`record::Record`]s, which
//! [`render`] prints like `dmesg`.

pub mod cli;
pub mod elf;
pub mod error;
pub mod kdump;
pub mod kvm;
pub mod lzo;
pub mod phys;
pub mod printk;
pub mod record;
pub mod render;
pub mod vmcoreinfo;

pub use error::{Error, Result};
/// The flattened-format index, under `phys` (which reads through it) since
/// it reads through `phys::Backing`; here is where it used to be.
pub use phys::flat;
pub use printk::{Log, LogKind};
pub use record::Record;
pub use vmcoreinfo::VmcoreInfo;

use phys::{DumpFile, PhysMem};
use std::sync::Arc;

/// Which container the dump is.
#[derive(Debug)]
pub enum Container {
    Elf(elf::ElfCore),
    Kdump(kdump::KdumpHeader),
}

/// An opened crash dump.
pub struct Dump {
    pub path: String,
    pub file_len: u64,
    pub container: Container,
    /// ELF e_machine (kdump dumps map their utsname machine onto it).
    pub machine: u16,
    pub vmcoreinfo: Option<VmcoreInfo>,
    /// The file is makedumpfile's flattened stream (rebuilt through an index).
    pub flattened: bool,
    phys: PhysMem,
}

impl Dump {
    pub fn open(path: &str) -> Result<Dump> {
        Self::from_file(path, DumpFile::open(path)?)
    }

    /// Opens a dump held in memory; `name` is only used in messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Dump> {
        Self::from_file(name, DumpFile::from_bytes(bytes)?)
    }

    /// Starts recording which physical pages are read (see [`Dump::touched_pages`]).
    pub fn trace_pages(&self) {
        self.phys.clear_cache();
        *self.phys.touched.borrow_mut() = Some(Default::default());
    }

    /// Physical page numbers read since [`Dump::trace_pages`]: what a trimmed
    /// fixture must keep for the log to stay readable.
    pub fn touched_pages(&self) -> Vec<u64> {
        self.phys
            .touched
            .borrow()
            .as_ref()
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Reads physical memory as the dump stores it.
    pub fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<()> {
        self.phys.read(paddr, buf)
    }

    fn from_file(path: &str, file: DumpFile) -> Result<Dump> {
        let file = Arc::new(file);
        let mut head = [0u8; 8];
        file.read_at(0, &mut head, "file header")?;
        if elf::is_elf(&head) {
            let core = elf::ElfCore::parse(&file)?;
            let vmcoreinfo = find_vmcoreinfo(&core.notes).transpose()?;
            let pages = elf::ElfPages::new(file.clone(), &core.loads);
            Ok(Dump {
                path: path.into(),
                file_len: file.len(),
                machine: core.machine,
                vmcoreinfo,
                flattened: file.is_flattened(),
                phys: PhysMem::new(Box::new(pages)),
                container: Container::Elf(core),
            })
        } else if &head == kdump::SIGNATURE {
            let hdr = kdump::KdumpHeader::parse(&file)?;
            let mut vmcoreinfo = None;
            if let Some((off, size)) = hdr.vmcoreinfo {
                let raw = file.read_vec(
                    off,
                    size,
                    vmcoreinfo::MAX_VMCOREINFO as u64,
                    "kdump VMCOREINFO",
                )?;
                vmcoreinfo = Some(VmcoreInfo::parse(&raw)?);
            }
            if vmcoreinfo.is_none() {
                if let Some((off, size)) = hdr.notes {
                    let raw = file.read_vec(off, size, 64 << 20, "kdump ELF notes")?;
                    vmcoreinfo = find_vmcoreinfo(&raw).transpose()?;
                }
            }
            let machine = match hdr.machine.as_str() {
                "aarch64" | "arm64" => elf::EM_AARCH64,
                _ => elf::EM_X86_64,
            };
            let pages = kdump::KdumpPages::new(file.clone(), hdr.clone())?;
            Ok(Dump {
                path: path.into(),
                file_len: file.len(),
                machine,
                vmcoreinfo,
                flattened: file.is_flattened(),
                phys: PhysMem::new(Box::new(pages)),
                container: Container::Kdump(hdr),
            })
        } else {
            Err(Error::NotADump(
                "neither an ELF core nor a kdump-compressed file".into(),
            ))
        }
    }

    pub fn vmcoreinfo(&self) -> Result<&VmcoreInfo> {
        self.vmcoreinfo.as_ref().ok_or(Error::NoVmcoreinfo)
    }

    pub fn format_name(&self) -> String {
        match &self.container {
            Container::Elf(_) => "ELF64 core".into(),
            Container::Kdump(h) => format!(
                "kdump-compressed v{} ({}){}",
                h.version,
                h.compression(),
                if self.flattened { ", flattened" } else { "" }
            ),
        }
    }

    pub fn arch(&self) -> Result<kvm::Arch> {
        let fallback = match &self.container {
            Container::Kdump(h) => Some(h.phys_base),
            Container::Elf(_) => None,
        };
        kvm::Arch::from_vmcoreinfo(self.machine, self.vmcoreinfo()?, fallback)
    }

    pub fn log_kind(&self) -> Result<LogKind> {
        LogKind::detect(self.vmcoreinfo()?)
    }

    /// Reads every record still in the kernel's log buffer, oldest first.
    pub fn read_log(&self) -> Result<Log> {
        self.with_log(printk::read)
    }

    /// Like [`Dump::read_log`] but hands each record to `f` instead of
    /// keeping them all: memory stays flat however long the log. The
    /// `&Record` is only valid during the call. Returns the warnings.
    pub fn walk_log(&self, f: &mut dyn FnMut(&Record)) -> Result<Vec<String>> {
        self.with_log(|kind, vi, mem| printk::walk(kind, vi, mem, f))
    }

    fn with_log<R>(
        &self,
        f: impl FnOnce(LogKind, &VmcoreInfo, &kvm::KernelMem) -> Result<R>,
    ) -> Result<R> {
        let vi = self.vmcoreinfo()?;
        let kind = LogKind::detect(vi)?;
        let lookup = |va: u64| match &self.container {
            Container::Elf(core) => core.vaddr_to_paddr(va),
            Container::Kdump(_) => None,
        };
        let mem = kvm::KernelMem::new(&self.phys, self.arch()?, Some(&lookup));
        f(kind, vi, &mem)
    }
}

/// The first VMCOREINFO note in a notes blob, parsed.
fn find_vmcoreinfo(notes: &[u8]) -> Option<Result<VmcoreInfo>> {
    elf::notes(notes)
        .find(|(name, ntype, _)| *name == b"VMCOREINFO" && *ntype == 0)
        .map(|(_, _, desc)| VmcoreInfo::parse(desc))
}
