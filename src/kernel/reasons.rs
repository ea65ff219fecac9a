//! Drop-reason names for the RUNNING kernel.
//!
//! `enum skb_drop_reason` is renumbered between kernels (NO_SOCKET is 2 on
//! 6.1 and 3 on 6.12), so a table compiled into netwhy would mislabel drops.
//! Names come from, in order: vmlinux BTF (plus module BTF for subsystem
//! reasons), the kfree_skb tracepoint's format file, or nothing (kernels
//! before 5.17 have no reasons at all).
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::btf::{Btf, BTF_DIR};
use super::KernelError;

/// The high 16 bits of a reason are a subsystem id (include/net/dropreason.h,
/// `SKB_DROP_REASON_SUBSYS_SHIFT`). A #define, so BTF cannot tell us; it has
/// not changed since subsystems were introduced (6.6).
pub const SUBSYS_SHIFT: u32 = 16;
const PREFIX: &str = "SKB_DROP_REASON_";
const SUBSYS_PREFIX: &str = "SKB_DROP_REASON_SUBSYS_";
const FORMAT_PATHS: [&str; 2] = [
    "/sys/kernel/tracing/events/skb/kfree_skb/format",
    "/sys/kernel/debug/tracing/events/skb/kfree_skb/format",
];

/// Where the names came from, shown by `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonSource {
    Btf,
    Tracefs,
    None,
}

/// Drop reason value ↔ name for this kernel.
#[derive(Debug, Clone)]
pub struct DropReasons {
    source: ReasonSource,
    /// Core and subsystem reasons with names.
    by_value: BTreeMap<u32, String>,
    /// Subsystem id → name ("OPENVSWITCH"), for reasons no module names.
    subsystems: BTreeMap<u16, String>,
    consumed: Option<u32>,
}

impl DropReasons {
    /// Builds the table from BTF, else tracefs, else an empty table. Only an
    /// unexpected I/O failure is an error: a kernel without reasons is a
    /// normal case (`has_reasons() == false`).
    pub fn load() -> Result<Self, KernelError> {
        Self::load_from(Btf::load_vmlinux().ok().as_ref())
    }

    /// [`DropReasons::load`] with vmlinux BTF the caller already parsed
    /// (`None`: unreadable), so a capture's start-up parses it once.
    pub fn load_from(btf: Option<&Btf>) -> Result<Self, KernelError> {
        if let Some(btf) = btf {
            if let Some(i) = btf.incomplete() {
                // A kind from a kernel newer than netwhy: the enum may still
                // be before it; if not, tracefs below names the reasons.
                eprintln!("netwhy: warning: {i}");
            }
            let modules = load_modules(btf);
            if let Ok(r) = Self::from_btf(btf, &modules) {
                return Ok(r);
            }
        }
        match read_format() {
            Some(text) => Self::from_tracefs_format(&text).or_else(|_| Ok(Self::none())),
            None => Ok(Self::none()),
        }
    }

    /// The table of a kernel without drop reasons.
    pub fn none() -> Self {
        DropReasons {
            source: ReasonSource::None,
            by_value: BTreeMap::new(),
            subsystems: BTreeMap::new(),
            consumed: None,
        }
    }

    /// From `enum skb_drop_reason` in `btf` and, for subsystem reasons,
    /// enums named `*drop_reason*` in `btf` itself and in `modules` whose
    /// values carry a known subsystem id in the high bits (`ovs_drop_reason`,
    /// `mac80211_drop_reason`, and `qdisc_drop_reason`, which newer kernels
    /// build into vmlinux). The name filter keeps unrelated enums with large
    /// values from posing as reasons.
    pub fn from_btf(btf: &Btf, modules: &[Btf]) -> Result<Self, KernelError> {
        let core = btf
            .enum_by_name("skb_drop_reason")
            .ok_or_else(|| KernelError::MissingEnum("skb_drop_reason".into()))?;
        let mut r = Self::none();
        r.source = ReasonSource::Btf;
        for (name, val) in &core {
            let Ok(v) = u32::try_from(*val) else { continue };
            if v >> SUBSYS_SHIFT != 0 || name == "SKB_DROP_REASON_MAX" {
                continue; // SUBSYS_MASK and the MAX sentinel are not reasons
            }
            if name == "SKB_CONSUMED" {
                r.consumed = Some(v);
            }
            r.by_value
                .entry(v)
                .or_insert_with(|| strip(name).to_owned());
        }
        for (name, val) in btf
            .enum_by_name("skb_drop_reason_subsys")
            .unwrap_or_default()
        {
            let Some(short) = name.strip_prefix(SUBSYS_PREFIX) else {
                continue;
            };
            match u16::try_from(val) {
                Ok(id) if id != 0 && short != "NUM" => {
                    r.subsystems.insert(id, short.to_owned());
                }
                _ => {}
            }
        }
        for m in std::iter::once(btf).chain(modules) {
            for (ename, variants) in m.enums() {
                let core = matches!(ename, "skb_drop_reason" | "skb_drop_reason_subsys");
                if core || !ename.contains("drop_reason") {
                    continue;
                }
                for (vname, val) in variants {
                    // `__QDISC_DROP_REASON` (the subsystem base) and
                    // `OVS_DROP_MAX` mark ranges; no drop carries them.
                    if vname.starts_with("__") || vname.ends_with("_MAX") {
                        continue;
                    }
                    let Ok(v) = u32::try_from(val) else { continue };
                    let sub = (v >> SUBSYS_SHIFT) as u16;
                    if sub != 0 && r.subsystems.contains_key(&sub) {
                        r.by_value.entry(v).or_insert_with(|| vname.to_owned());
                    }
                }
            }
        }
        Ok(r)
    }

    /// From the text of `events/skb/kfree_skb/format`, whose print fmt has
    /// `__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, ...)`.
    ///
    /// The format omits NOT_DROPPED_YET and CONSUMED. They are the first
    /// members of the enum, so they are inferred from NOT_SPECIFIED's value:
    /// 2 means both exist (6.3+), 1 means only NOT_DROPPED_YET.
    pub fn from_tracefs_format(text: &str) -> Result<Self, KernelError> {
        let bad = |m: &str| KernelError::TracefsFormat(m.to_owned());
        let at = text
            .find("__print_symbolic(REC->reason")
            .ok_or_else(|| bad("no __print_symbolic(REC->reason, ...): kernel older than 5.17?"))?;
        let mut r = Self::none();
        r.source = ReasonSource::Tracefs;
        let mut rest = &text[at..];
        // Each entry is `{ NUMBER, "NAME" }`; stop at the closing paren.
        while let Some(open) = rest.find(['{', ')']) {
            if rest.as_bytes()[open] == b')' {
                break;
            }
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let entry = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let Some((num, name)) = entry.split_once(',') else {
                continue;
            };
            let name = name.trim().trim_matches('"');
            let Some(v) = parse_num(num.trim()) else {
                continue; // an unevaluated enum symbol: skip, not guess
            };
            if name != "MAX" && !name.is_empty() {
                r.by_value.entry(v).or_insert_with(|| name.to_owned());
            }
        }
        if r.by_value.is_empty() {
            return Err(bad("no numeric entries in the reason table"));
        }
        match r.value("NOT_SPECIFIED") {
            Some(2) if !r.by_value.contains_key(&1) => {
                r.by_value.insert(1, "CONSUMED".into());
                r.by_value.entry(0).or_insert("NOT_DROPPED_YET".into());
            }
            Some(1) => {
                r.by_value.entry(0).or_insert("NOT_DROPPED_YET".into());
            }
            _ => {}
        }
        r.consumed = r.value("CONSUMED");
        Ok(r)
    }

    /// The name of `value`: `NO_SOCKET`, a subsystem reason's enum name, a
    /// subsystem code like `OPENVSWITCH:0x3`, or `UNKNOWN(123)`.
    pub fn name(&self, value: u32) -> String {
        if let Some(n) = self.by_value.get(&value) {
            return n.clone();
        }
        let sub = (value >> SUBSYS_SHIFT) as u16;
        match self.subsystems.get(&sub) {
            Some(s) if sub != 0 => format!("{s}:{:#x}", value & 0xffff),
            _ => format!("UNKNOWN({value})"),
        }
    }

    /// The name of `value` without allocating, if it has one.
    pub fn name_ref(&self, value: u32) -> Option<&str> {
        self.by_value.get(&value).map(String::as_str)
    }

    /// The value of a reason name, case-insensitive, with or without the
    /// `SKB_DROP_REASON_` prefix; also accepts `OPENVSWITCH:0x3`.
    pub fn value(&self, name: &str) -> Option<u32> {
        let up = name.trim().to_ascii_uppercase();
        let short = strip(&up);
        if let Some((&v, _)) = self
            .by_value
            .iter()
            .find(|(_, n)| **n == short || **n == up)
        {
            return Some(v);
        }
        let (sub, code) = up.split_once(':')?;
        let (&id, _) = self.subsystems.iter().find(|(_, n)| **n == sub)?;
        let code = parse_num(code.trim().to_ascii_lowercase().as_str())?;
        (code <= 0xffff).then_some((id as u32) << SUBSYS_SHIFT | code)
    }

    /// The value of SKB_CONSUMED (a normal free, not a drop), or `u32::MAX`
    /// on kernels without it, which no reason ever equals.
    pub fn consumed(&self) -> u32 {
        self.consumed.unwrap_or(u32::MAX)
    }

    /// False on kernels without drop reasons (before 5.17).
    pub fn has_reasons(&self) -> bool {
        !self.by_value.is_empty()
    }

    /// True unless `value` is CONSUMED or NOT_DROPPED_YET: the kfree_skb
    /// tracepoint also fires for skbs freed normally.
    pub fn is_drop(&self, value: u32) -> bool {
        !matches!(self.name_ref(value), Some("CONSUMED" | "NOT_DROPPED_YET"))
    }

    pub fn source(&self) -> ReasonSource {
        self.source
    }

    /// Subsystem id → name, e.g. `(3, "OPENVSWITCH")`.
    pub fn subsystems(&self) -> impl Iterator<Item = (u16, &str)> + '_ {
        self.subsystems.iter().map(|(&k, v)| (k, v.as_str()))
    }

    /// All named reasons in value order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        self.by_value.iter().map(|(&k, v)| (k, v.as_str()))
    }
}

/// `SKB_DROP_REASON_NO_SOCKET` → `NO_SOCKET`, `SKB_CONSUMED` → `CONSUMED`.
fn strip(name: &str) -> &str {
    name.strip_prefix(PREFIX)
        .or_else(|| name.strip_prefix("SKB_"))
        .unwrap_or(name)
}

fn parse_num(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Module BTFs that may define subsystem reasons. Files without the bytes
/// "drop_reason" are not parsed: most modules have none.
fn load_modules(base: &Btf) -> Vec<Btf> {
    let Ok(dir) = fs::read_dir(BTF_DIR) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        if e.file_name() == "vmlinux" {
            continue;
        }
        let Ok(data) = fs::read(e.path()) else {
            continue;
        };
        if data.windows(11).any(|w| w == b"drop_reason") {
            if let Ok(b) = Btf::from_bytes(data, Some(base)) {
                out.push(b);
            }
        }
    }
    out
}

/// The kfree_skb format text, mounting tracefs first if needed and allowed.
/// A mount made here is undone right after reading (netwhy leaves no
/// changes behind), and journalled like the probes' mount, so a run killed
/// while reading still has it undone by the next one.
fn read_format() -> Option<String> {
    if let Some(t) = FORMAT_PATHS.iter().find_map(|p| fs::read_to_string(p).ok()) {
        return Some(t);
    }
    if !crate::sys::is_root() || !Path::new(crate::sys::tracefs::TRACEFS).is_dir() {
        return None;
    }
    let (_, mount) = crate::undo::tracefs::ensure_tracefs();
    let text = fs::read_to_string(FORMAT_PATHS[0]).ok();
    drop(mount);
    text
}

#[cfg(test)]
#[path = "reasons_tests.rs"]
mod tests;
