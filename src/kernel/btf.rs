//! A minimal BTF reader (format: include/uapi/linux/btf.h), std only.
//!
//! netwhy needs two things from BTF: enum values (drop-reason names differ
//! per kernel) and which functions take a `struct sk_buff *` (to choose
//! tracing targets like pwru). A full BTF library (libbpf's) is only reachable
//! through C in a form that does not expose these queries cheaply, so this
//! reads the format directly.
//!
//! Parsing validates the structure (header, section bounds, every type
//! record's length and kind, the string section's terminators); type and
//! string references are checked when followed, so a hostile file yields
//! errors or empty answers, never a panic or an out-of-bounds read.
//!
//! Split BTF (modules, `/sys/kernel/btf/<module>`) continues the base's type
//! ids and string offsets; a module `Btf` keeps a cheap clone of its base.
//!
//! Kernels newer than netwhy may add type kinds. Since 2026 the header may
//! carry a layout section (`layout_off`/`layout_len`: per kind, the size of
//! the record's single trailing element and of each of its vlen elements),
//! and then an unknown kind is skipped by its size. Without one an unknown
//! kind's size cannot be known: parsing stops there, the types before it
//! stay usable, and [`Btf::incomplete`] says so — a warning, not an error,
//! so a new kernel does not push netwhy onto its tracefs fallback. The same
//! UAPI change widened `info`: kind is bits 24-30, vlen bits 0-23 (older
//! kernels rejected BTF with those bits set, so reading them wide is safe).
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::KernelError;

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// Directory holding vmlinux and per-module BTF.
pub const BTF_DIR: &str = "/sys/kernel/btf";

const MAGIC: u16 = 0xeb9f;
const HDR_MIN: usize = 24;
/// Header length from which `layout_off` and `layout_len` are present.
const HDR_LAYOUT: u64 = 32;
/// Bytes per layout entry: info_sz (u8), elem_sz (u8), flags (u16).
const LAYOUT_ENTRY: usize = 4;
/// Modifier/typedef chains longer than this are treated as cycles.
const MAX_CHAIN: usize = 32;
/// pwru-style tracing reads the skb from one of the first five arguments.
const MAX_ARG: usize = 5;

const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
pub(crate) const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
pub(crate) const KIND_ENUM64: u8 = 19;

/// Malformed BTF. Messages say what was wrong and where, for bug reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    #[error("too short for a BTF header ({0} bytes)")]
    TooShort(usize),
    #[error("bad magic {0:#06x} (not BTF)")]
    BadMagic(u16),
    #[error("unsupported BTF version {0}")]
    Version(u8),
    #[error("{what} section [{off}, +{len}) lies outside the {size}-byte file")]
    Section {
        what: &'static str,
        off: u64,
        len: u64,
        size: usize,
    },
    #[error("bad header: {0}")]
    Header(&'static str),
    #[error("bad string section: {0}")]
    Strings(&'static str),
    #[error("type {id}: {detail}")]
    Type { id: u32, detail: String },
}

/// Where parsing stopped on a type kind this reader cannot size (no layout
/// section describes it). Types with smaller ids are all there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incomplete {
    /// Id of the first type not read.
    pub at_id: u32,
    pub kind: u8,
    /// Types left unread (an estimate: bytes left / 12 at most).
    pub bytes_left: usize,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BTF type {} has kind {}, unknown to netwhy and not described by a layout \
             section: the {} bytes of types from there on were not read",
            self.at_id, self.kind, self.bytes_left
        )
    }
}

/// A function that takes a pointer to the wanted struct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncParam {
    pub func: String,
    /// 0-based index of the first such parameter.
    pub arg_index: u8,
}

/// Parsed BTF. Cloning is cheap (shared bytes).
#[derive(Clone)]
pub struct Btf {
    inner: Arc<Inner>,
}

struct Inner {
    data: Vec<u8>,
    big_endian: bool,
    /// Absolute offset of each own type record in `data`; index = id - start_id.
    offsets: Vec<u32>,
    strs: std::ops::Range<usize>,
    /// First own type id: 1 for a base (0 is void), base's end for split BTF.
    start_id: u32,
    /// String offsets below this belong to the base.
    start_str: u32,
    /// The layout section (4 bytes per kind), empty when absent.
    layout: std::ops::Range<usize>,
    incomplete: Option<Incomplete>,
    base: Option<Btf>,
}

/// One type record, borrowed from the data.
#[derive(Clone, Copy)]
struct Ty<'a> {
    name_off: u32,
    kind: u8,
    vlen: usize,
    kflag: bool,
    /// `size` or `type`, depending on kind.
    size_type: u32,
    extra: &'a [u8],
    be: bool,
}

impl Ty<'_> {
    /// The `i`th u32 of the trailing data (bounds were checked at parse).
    fn word(&self, i: usize) -> u32 {
        rd32(self.extra, i * 4, self.be).unwrap_or(0)
    }
}

fn rd32(b: &[u8], off: usize, be: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

/// Kind (bits 24-30) and vlen (bits 0-23) of a record's `info` word.
fn kind_vlen(info: u32) -> (u8, usize) {
    (((info >> 24) & 0x7f) as u8, (info & 0x00ff_ffff) as usize)
}

/// Bytes of trailing data after the 12-byte record, for the kinds this
/// reader knows.
fn extra_len(kind: u8, vlen: usize) -> Option<usize> {
    Some(match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
        KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
        _ => return None,
    })
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("start_id", &self.inner.start_id)
            .field("types", &self.inner.offsets.len())
            .field("split", &self.inner.base.is_some())
            .finish()
    }
}

impl Btf {
    /// Reads the running kernel's BTF (readable without root).
    pub fn load_vmlinux() -> Result<Self, KernelError> {
        Self::load_file(Path::new(VMLINUX_BTF), None)
    }

    /// Reads a module's split BTF, by module name (`openvswitch`, looked up
    /// in /sys/kernel/btf) or by path (anything containing '/').
    pub fn load_module(name_or_path: &str, base: &Btf) -> Result<Self, KernelError> {
        let path = if name_or_path.contains('/') {
            PathBuf::from(name_or_path)
        } else {
            Path::new(BTF_DIR).join(name_or_path)
        };
        Self::load_file(&path, Some(base))
    }

    fn load_file(path: &Path, base: Option<&Btf>) -> Result<Self, KernelError> {
        let data = std::fs::read(path).map_err(|e| KernelError::io(path, e))?;
        Self::from_bytes(data, base).map_err(|source| KernelError::BtfParse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses raw BTF; `base` must be given for split (module) BTF.
    pub fn from_bytes(data: Vec<u8>, base: Option<&Btf>) -> Result<Self, BtfError> {
        if data.len() < HDR_MIN {
            return Err(BtfError::TooShort(data.len()));
        }
        if data.len() > u32::MAX as usize {
            return Err(BtfError::Header("larger than 4 GiB"));
        }
        let big_endian = match u16::from_le_bytes([data[0], data[1]]) {
            MAGIC => false,
            m if m.swap_bytes() == MAGIC => true,
            m => return Err(BtfError::BadMagic(m)),
        };
        if data[2] != 1 {
            return Err(BtfError::Version(data[2]));
        }
        let h = |i| rd32(&data, i, big_endian).unwrap_or(0) as u64;
        let (hdr_len, type_off, type_len, str_off, str_len) = (h(4), h(8), h(12), h(16), h(20));
        if hdr_len < HDR_MIN as u64 || hdr_len > data.len() as u64 {
            return Err(BtfError::Header("header length out of range"));
        }
        let (layout_off, layout_len) = if hdr_len >= HDR_LAYOUT {
            (h(24), h(28))
        } else {
            (0, 0)
        };
        if layout_len % LAYOUT_ENTRY as u64 != 0 || layout_off % 4 != 0 {
            return Err(BtfError::Header(
                "layout section is not a whole number of aligned entries",
            ));
        }
        if type_off % 4 != 0 {
            return Err(BtfError::Header("type section is not 4-byte aligned"));
        }
        let section = |what, off: u64, len: u64| {
            let start = hdr_len + off;
            if start + len > data.len() as u64 {
                return Err(BtfError::Section {
                    what,
                    off: start,
                    len,
                    size: data.len(),
                });
            }
            Ok(start as usize..(start + len) as usize)
        };
        let types = section("type", type_off, type_len)?;
        let strs = section("string", str_off, str_len)?;
        let layout = section("layout", layout_off, layout_len)?;
        let overlap = |a: &std::ops::Range<usize>, b: &std::ops::Range<usize>| {
            !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end
        };
        if overlap(&types, &strs) || overlap(&layout, &types) || overlap(&layout, &strs) {
            return Err(BtfError::Header("type, layout and string sections overlap"));
        }
        let s = &data[strs.clone()];
        match (s.first(), s.last()) {
            (None, _) if base.is_none() => return Err(BtfError::Strings("empty")),
            (Some(&c), _) if c != 0 && base.is_none() => {
                return Err(BtfError::Strings("does not start with NUL"))
            }
            (_, Some(&c)) if c != 0 => return Err(BtfError::Strings("not NUL-terminated")),
            _ => {}
        }
        let (start_id, start_str) = match base {
            Some(b) => (b.type_end(), b.str_end()),
            None => (1, 0),
        };
        let str_end = start_str as u64 + str_len;
        if str_end > u32::MAX as u64 {
            return Err(BtfError::Strings("offsets overflow 32 bits"));
        }

        // Split BTF shares its base's layout when it has none of its own.
        let layout_of = |d: &[u8], r: &std::ops::Range<usize>| d[r.clone()].to_vec();
        let layout_bytes = match (layout.is_empty(), base) {
            (false, _) => layout_of(&data, &layout),
            (true, Some(b)) => layout_of(&b.inner.data, &b.inner.layout),
            (true, None) => Vec::new(),
        };
        let mut offsets = Vec::with_capacity(type_len as usize / 24);
        let mut incomplete = None;
        let mut pos = types.start;
        while pos < types.end {
            let id = start_id.saturating_add(offsets.len() as u32);
            let bad = |detail: String| BtfError::Type { id, detail };
            if pos + 12 > types.end {
                return Err(bad("record truncated".into()));
            }
            let name_off = rd32(&data, pos, big_endian).unwrap_or(0);
            let info = rd32(&data, pos + 4, big_endian).unwrap_or(0);
            let (kind, vlen) = kind_vlen(info);
            let Some(extra) =
                extra_len(kind, vlen).or_else(|| layout_len_of(&layout_bytes, kind, vlen))
            else {
                incomplete = Some(Incomplete {
                    at_id: id,
                    kind,
                    bytes_left: types.end - pos,
                });
                break;
            };
            if pos + 12 + extra > types.end {
                return Err(bad("trailing data runs past the type section".into()));
            }
            if name_off as u64 >= str_end {
                return Err(bad(format!("name offset {name_off} out of range")));
            }
            if offsets.len() as u64 + start_id as u64 >= u32::MAX as u64 {
                return Err(bad("too many types".into()));
            }
            offsets.push(pos as u32);
            pos += 12 + extra;
        }
        Ok(Btf {
            inner: Arc::new(Inner {
                data,
                big_endian,
                offsets,
                strs,
                start_id,
                start_str,
                layout,
                incomplete,
                base: base.cloned(),
            }),
        })
    }

    /// One past the highest type id (own and base).
    fn type_end(&self) -> u32 {
        self.inner.start_id + self.inner.offsets.len() as u32
    }

    /// One past the highest string offset (own and base).
    fn str_end(&self) -> u32 {
        self.inner.start_str + self.inner.strs.len() as u32
    }

    /// Number of types in this object, not counting the base or void.
    pub fn type_count(&self) -> usize {
        self.inner.offsets.len()
    }

    /// True for split (module) BTF.
    pub fn is_split(&self) -> bool {
        self.inner.base.is_some()
    }

    /// `Some` when parsing stopped at a kind it could not size: the types
    /// read are usable, later ones are missing.
    pub fn incomplete(&self) -> Option<Incomplete> {
        self.inner.incomplete
    }

    /// True when the header carries a layout section.
    pub fn has_layout(&self) -> bool {
        !self.inner.layout.is_empty()
    }

    /// The string at `off`, looking in the base for low offsets. `None` when
    /// out of range or not UTF-8.
    fn str_at(&self, off: u32) -> Option<&str> {
        if off < self.inner.start_str {
            return self.inner.base.as_ref()?.str_at(off);
        }
        let s = &self.inner.data[self.inner.strs.clone()];
        let rest = s.get((off - self.inner.start_str) as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// The type record for `id`, from this object or its base.
    fn ty(&self, id: u32) -> Option<Ty<'_>> {
        let inner = &*self.inner;
        if id < inner.start_id {
            return inner.base.as_ref()?.ty(id);
        }
        let pos = *inner.offsets.get((id - inner.start_id) as usize)? as usize;
        let be = inner.big_endian;
        let d = &inner.data;
        let info = rd32(d, pos + 4, be)?;
        let (kind, vlen) = kind_vlen(info);
        // Unknown kinds (sized by the layout at parse) are never followed.
        let extra = extra_len(kind, vlen)?;
        Some(Ty {
            name_off: rd32(d, pos, be)?,
            kind,
            vlen,
            kflag: info >> 31 != 0,
            size_type: rd32(d, pos + 8, be)?,
            extra: d.get(pos + 12..pos + 12 + extra)?,
            be,
        })
    }

    /// Own types with their ids (not the base's).
    fn own_types(&self) -> impl Iterator<Item = (u32, Ty<'_>)> + '_ {
        let start = self.inner.start_id;
        (start..self.type_end()).filter_map(move |id| Some((id, self.ty(id)?)))
    }

    fn enum_variants(&self, t: &Ty<'_>) -> Vec<(&str, i64)> {
        let n = t.vlen;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let (name_off, val) = if t.kind == KIND_ENUM {
                let raw = t.word(i * 2 + 1);
                let val = if t.kflag {
                    raw as i32 as i64
                } else {
                    raw as i64
                };
                (t.word(i * 2), val)
            } else {
                let raw = (t.word(i * 3 + 2) as u64) << 32 | t.word(i * 3 + 1) as u64;
                (t.word(i * 3), raw as i64)
            };
            if let Some(name) = self.str_at(name_off) {
                v.push((name, val));
            }
        }
        v
    }

    /// Variants of the enum called `name` (ENUM or ENUM64), own types first,
    /// then the base's. Unsigned 64-bit values are returned bit-cast to i64.
    pub fn enum_by_name(&self, name: &str) -> Option<Vec<(String, i64)>> {
        let found = self
            .own_types()
            .find(|(_, t)| is_enum(t) && self.str_at(t.name_off) == Some(name));
        match found {
            Some((_, t)) => Some(
                self.enum_variants(&t)
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect(),
            ),
            None => self.inner.base.as_ref()?.enum_by_name(name),
        }
    }

    /// Every enum defined in this object (not its base), as `(name,
    /// variants)`; anonymous enums have the name "". Module BTF yields only
    /// the module's own enums, which is what subsystem drop reasons need.
    pub fn enums(&self) -> impl Iterator<Item = (&str, Vec<(&str, i64)>)> + '_ {
        self.own_types().filter(|(_, t)| is_enum(t)).map(|(_, t)| {
            let name = self.str_at(t.name_off).unwrap_or("");
            (name, self.enum_variants(&t))
        })
    }

    /// Follows typedef/const/volatile/restrict/type_tag to the real type.
    fn skip_mods(&self, mut id: u32) -> Option<(u32, Ty<'_>)> {
        for _ in 0..MAX_CHAIN {
            let t = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_type
                }
                _ => return Some((id, t)),
            }
        }
        None
    }

    /// True if `id` is a pointer (through modifiers on either side) to
    /// `struct <name>` (a definition or a forward declaration).
    fn is_struct_ptr(&self, id: u32, name: &str) -> bool {
        let Some((_, p)) = self.skip_mods(id) else {
            return false;
        };
        if p.kind != KIND_PTR {
            return false;
        }
        let Some((_, s)) = self.skip_mods(p.size_type) else {
            return false;
        };
        let is_struct = s.kind == KIND_STRUCT || (s.kind == KIND_FWD && !s.kflag);
        is_struct && self.str_at(s.name_off) == Some(name)
    }

    /// Every function (BTF_KIND_FUNC, own types only) with a parameter among
    /// the first five that points to `struct <struct_name>`; the first such
    /// parameter is reported. Names are deduplicated (static functions of
    /// the same name in different files trace as one symbol anyway).
    pub fn funcs_with_struct_ptr_param(&self, struct_name: &str) -> Vec<FuncParam> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (_, f) in self.own_types().filter(|(_, t)| t.kind == KIND_FUNC) {
            let Some(proto) = self.ty(f.size_type) else {
                continue;
            };
            if proto.kind != KIND_FUNC_PROTO {
                continue;
            }
            let nargs = proto.vlen.min(MAX_ARG);
            let hit = (0..nargs).find(|&i| self.is_struct_ptr(proto.word(i * 2 + 1), struct_name));
            let (Some(i), Some(name)) = (hit, self.str_at(f.name_off)) else {
                continue;
            };
            if seen.insert(name) {
                out.push(FuncParam {
                    func: name.to_owned(),
                    arg_index: i as u8,
                });
            }
        }
        out
    }
}

impl Btf {
    /// Every raw tracepoint (the `btf_trace_<name>` typedefs tp_btf programs
    /// attach by) with a parameter among its first five that points to
    /// `struct <struct_name>`. `arg_index` counts from the tracepoint's own
    /// first argument, i.e. after the hidden `void *` context, which is how a
    /// tp_btf program indexes its `ctx[]`.
    pub fn raw_tracepoints_with_struct_ptr_arg(&self, struct_name: &str) -> Vec<FuncParam> {
        let mut out = Vec::new();
        for (_, t) in self.own_types().filter(|(_, t)| t.kind == KIND_TYPEDEF) {
            let Some(tp) = self
                .str_at(t.name_off)
                .and_then(|n| n.strip_prefix("btf_trace_"))
            else {
                continue;
            };
            let Some((_, ptr)) = self.skip_mods(t.size_type) else {
                continue;
            };
            if ptr.kind != KIND_PTR {
                continue;
            }
            let Some((_, proto)) = self.skip_mods(ptr.size_type) else {
                continue;
            };
            if proto.kind != KIND_FUNC_PROTO || proto.vlen < 2 {
                continue;
            }
            let nargs = proto.vlen.min(MAX_ARG + 1);
            let hit = (1..nargs).find(|&i| self.is_struct_ptr(proto.word(i * 2 + 1), struct_name));
            if let Some(i) = hit {
                out.push(FuncParam {
                    func: tp.to_owned(),
                    arg_index: (i - 1) as u8,
                });
            }
        }
        out
    }
}

impl Btf {
    /// How many arguments raw tracepoint `tp` passes (without the hidden
    /// context), from its `btf_trace_<tp>` typedef; None if there is none.
    /// Tracepoints gain arguments over releases (consume_skb's location in
    /// 6.3), and a tp_btf program may not read past the last one.
    pub fn raw_tracepoint_arg_count(&self, tp: &str) -> Option<usize> {
        let want = format!("btf_trace_{tp}");
        let (_, t) = self
            .own_types()
            .find(|(_, t)| t.kind == KIND_TYPEDEF && self.str_at(t.name_off) == Some(&want))?;
        let (_, ptr) = self.skip_mods(t.size_type)?;
        if ptr.kind != KIND_PTR {
            return None;
        }
        let (_, proto) = self.skip_mods(ptr.size_type)?;
        (proto.kind == KIND_FUNC_PROTO).then(|| proto.vlen.saturating_sub(1))
    }
}

/// Trailing bytes of an unknown `kind` from a layout section (entries of
/// info_sz, elem_sz, flags); None if the layout does not cover the kind.
fn layout_len_of(layout: &[u8], kind: u8, vlen: usize) -> Option<usize> {
    let e = layout.get(kind as usize * LAYOUT_ENTRY..(kind as usize + 1) * LAYOUT_ENTRY)?;
    let (info_sz, elem_sz) = (e[0] as usize, e[1] as usize);
    // libbpf refuses sizes that would misalign the next record; so do we.
    if info_sz % 4 != 0 || elem_sz % 4 != 0 {
        return None;
    }
    info_sz.checked_add(elem_sz.checked_mul(vlen)?)
}

fn is_enum(t: &Ty<'_>) -> bool {
    t.kind == KIND_ENUM || t.kind == KIND_ENUM64
}

#[cfg(test)]
#[path = "btf_tests.rs"]
pub(crate) mod tests;
