//! Kernel text symbols from `/proc/kallsyms`, to turn the `location` address
//! of a drop into `function+0xoff [module]`.
//!
//! The file has ~120k lines on a distro kernel and is read at every start, so
//! the parser keeps the whole text in one `String` and stores small index
//! entries into it instead of one allocation per symbol.
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;

use super::KernelError;

const KALLSYMS: &str = "/proc/kallsyms";

/// One text symbol: an index into `Kallsyms::text`, 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: u64,
    /// Byte offset of the name in `text`.
    name_off: u32,
    name_len: u16,
    /// Index into `Kallsyms::modules`, or `NO_MODULE`.
    module: u16,
}

const NO_MODULE: u16 = u16::MAX;

/// Sorted kernel text symbols (types t, T, w, W).
///
/// Only text symbols are kept because drop locations and traced functions
/// are code addresses; data symbols would only produce wrong matches.
pub struct Kallsyms {
    text: String,
    /// Sorted by address; equal addresses keep file order.
    entries: Vec<Entry>,
    modules: Vec<String>,
    /// Indices into `entries` sorted by name, built on the first by-name
    /// look-up: most runs only resolve addresses and should not pay for it.
    by_name: OnceLock<Vec<u32>>,
    /// By-name look-ups answered by scanning so far.
    scans: AtomicU32,
}

const SCANS_BEFORE_INDEX: u32 = 16;

/// An address resolved to the symbol that contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    /// The `[module]` column: a module name, or `bpf` for BPF programs.
    pub module: Option<&'a str>,
    /// Address of the symbol's start.
    pub start: u64,
    /// Distance of the resolved address from `start`.
    pub offset: u64,
}

impl fmt::Display for Symbol<'_> {
    /// `name+0xoff` or `name+0xoff [mod]`, the kernel's own `%pS` style, so
    /// output can be pasted into `faddr2line`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.name, self.offset)?;
        if let Some(m) = self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Kallsyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kallsyms")
            .field("symbols", &self.entries.len())
            .field("modules", &self.modules.len())
            .finish()
    }
}

impl Kallsyms {
    /// Reads and parses `/proc/kallsyms`.
    ///
    /// Fails with [`KernelError::KallsymsHidden`] when every address is zero:
    /// that is kptr_restrict at work, and continuing would label every drop
    /// with the first symbol in the table.
    pub fn load() -> Result<Self, KernelError> {
        let text = std::fs::read_to_string(KALLSYMS).map_err(|e| KernelError::io(KALLSYMS, e))?;
        Self::parse_owned(text)
    }

    /// Parses text in `/proc/kallsyms` format (used by tests and by callers
    /// that read a saved copy, e.g. from a bug report).
    pub fn parse(text: &str) -> Result<Self, KernelError> {
        Self::parse_owned(text.to_owned())
    }

    fn parse_owned(text: String) -> Result<Self, KernelError> {
        let mut entries = Vec::with_capacity(text.len() / 40);
        let mut modules: Vec<String> = Vec::new();
        let mut any_nonzero = false;
        let mut lines = 0usize;
        let bytes = text.as_bytes();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let end = memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
            let line = &bytes[pos..end];
            let line_start = pos;
            pos = end + 1;
            lines += 1;
            let Some((addr, kind, name_at, name_end, module)) = split_line(line) else {
                continue;
            };
            if addr != 0 {
                any_nonzero = true;
            }
            if !matches!(kind, b't' | b'T' | b'w' | b'W') {
                continue;
            }
            let name_len = name_end - name_at;
            let (Ok(name_off), Ok(name_len)) =
                (u32::try_from(line_start + name_at), u16::try_from(name_len))
            else {
                continue;
            };
            let module = match module {
                None => NO_MODULE,
                Some((a, b)) => {
                    // SAFETY of slicing: a..b lies within `line`, split on
                    // ASCII bytes, so it is on char boundaries of `text`.
                    let m = &text[line_start + a..line_start + b];
                    // Symbols of one module are contiguous: checking the last
                    // interned name first makes this O(1) in practice.
                    match modules.iter().rposition(|x| x == m) {
                        Some(i) => i as u16,
                        None if modules.len() < NO_MODULE as usize => {
                            modules.push(m.to_owned());
                            (modules.len() - 1) as u16
                        }
                        None => NO_MODULE,
                    }
                }
            };
            entries.push(Entry {
                addr,
                name_off,
                name_len,
                module,
            });
        }
        if lines > 0 && !any_nonzero {
            return Err(KernelError::KallsymsHidden);
        }
        if entries.is_empty() {
            return Err(KernelError::NoSymbols(KALLSYMS.into()));
        }
        // The vmlinux part is already sorted, so a stable sort is near O(n)
        // and keeps aliases (same address) in file order.
        entries.sort_by_key(|e| e.addr);
        Ok(Kallsyms {
            text,
            entries,
            modules,
            by_name: OnceLock::new(),
            scans: AtomicU32::new(0),
        })
    }

    /// Number of text symbols kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no text symbols were kept (never for a loaded table).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn name_of(&self, e: &Entry) -> &str {
        let s = e.name_off as usize;
        &self.text[s..s + e.name_len as usize]
    }

    fn module_of(&self, e: &Entry) -> Option<&str> {
        self.modules.get(e.module as usize).map(String::as_str)
    }

    /// The symbol containing `addr`: the highest text symbol starting at or
    /// below it. Among aliases at the same address the first listed wins.
    /// `None` below the lowest symbol.
    pub fn resolve(&self, addr: u64) -> Option<Symbol<'_>> {
        let idx = self.entries.partition_point(|e| e.addr <= addr);
        if idx == 0 {
            return None;
        }
        let start = self.entries[idx - 1].addr;
        // Step back to the first alias at this address.
        let first = self.entries[..idx].partition_point(|e| e.addr < start);
        let e = &self.entries[first];
        Some(Symbol {
            name: self.name_of(e),
            module: self.module_of(e),
            start,
            offset: addr - start,
        })
    }

    /// Address of the lowest text symbol called `name`.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.find(name).map(|i| self.entries[i].addr)
    }

    /// `[start, end)` of the lowest text symbol called `name`, where `end` is
    /// the start of the next higher symbol. Used to tell whether a return
    /// address lies inside a function (kallsyms has no sizes).
    pub fn function_range(&self, name: &str) -> Option<(u64, u64)> {
        let i = self.find(name)?;
        let start = self.entries[i].addr;
        let next = self.entries[i..].partition_point(|e| e.addr <= start) + i;
        let end = self.entries.get(next).map_or(u64::MAX, |e| e.addr);
        Some((start, end))
    }

    /// Index of the lowest-addressed entry with this name.
    ///
    /// The first few look-ups scan (~0.3 ms each); after that a name index
    /// is built once (~12 ms for 120k symbols), which pays off for callers
    /// that map hundreds of BTF functions to addresses.
    fn find(&self, name: &str) -> Option<usize> {
        if self.by_name.get().is_none() && self.scans.fetch_add(1, Relaxed) < SCANS_BEFORE_INDEX {
            return self.entries.iter().position(|e| self.name_of(e) == name);
        }
        let idx = self.by_name.get_or_init(|| {
            let mut v: Vec<u32> = (0..self.entries.len() as u32).collect();
            // Stable: equal names stay in address order.
            v.sort_by(|&a, &b| {
                self.name_of(&self.entries[a as usize])
                    .cmp(self.name_of(&self.entries[b as usize]))
            });
            v
        });
        let p = idx.partition_point(|&i| self.name_of(&self.entries[i as usize]) < name);
        let &i = idx.get(p)?;
        (self.name_of(&self.entries[i as usize]) == name).then_some(i as usize)
    }

    /// All kept symbols in address order, as `(address, name, module)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str, Option<&str>)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.addr, self.name_of(e), self.module_of(e)))
    }
}

/// Splits `addr type name[\t[module]]` into its parts (byte offsets into the
/// line). Malformed lines return `None` and are skipped.
#[allow(clippy::type_complexity)]
fn split_line(line: &[u8]) -> Option<(u64, u8, usize, usize, Option<(usize, usize)>)> {
    let sp = memchr(b' ', line)?;
    let addr = parse_hex(&line[..sp])?;
    let kind = *line.get(sp + 1)?;
    if line.get(sp + 2) != Some(&b' ') {
        return None;
    }
    let name_at = sp + 3;
    let rest = line.get(name_at..)?;
    let (name_end, module) = match memchr(b'\t', rest) {
        None => (line.len(), None),
        Some(t) => {
            let m = &rest[t + 1..];
            let module = if m.len() >= 2 && m[0] == b'[' && m[m.len() - 1] == b']' {
                Some((name_at + t + 2, line.len() - 1))
            } else {
                None
            };
            (name_at + t, module)
        }
    };
    if name_end == name_at {
        return None;
    }
    Some((addr, kind, name_at, name_end, module))
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

#[inline]
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
#[path = "kallsyms_tests.rs"]
mod tests;
