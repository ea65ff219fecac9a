//! One entry per kernel drop reason (`enum skb_drop_reason` without the
//! `SKB_DROP_REASON_` prefix), written from the kernel sources and netwhy's
//! lab. Entries are static data, no I/O; a lookup by reason or id goes
//! through a map built once per process, not a scan of the tables.
//!
//! Code that means one diagnosis names its constant
//! (`specific::NFT_REJECT`, `ip::IP_INNOROUTES`) rather than its id
//! string, so a misspelt diagnosis does not compile.
//!
//! `verified` is true only for reasons reproduced in netwhy's lab on kernel
//! 6.18; everything else is read from the kernel sources and marked
//! unverified when shown.
/// `entry!(NAME, "id", verified, "hint", "meaning", [causes], [checks], [fixes])`;
/// `entry!(@none, "id", ...)` for a diagnosis no drop reason carries (a loss
/// seen only in counters, or a send that failed before a packet existed).
macro_rules! entry {
    (@none, $($rest:tt)*) => {
        entry!(@reason "", $($rest)*)
    };
    ($reason:ident, $($rest:tt)*) => {
        entry!(@reason stringify!($reason), $($rest)*)
    };
    (@reason $reason:expr, $id:literal, $verified:literal, $hint:literal, $meaning:literal,
     [$($c:literal),* $(,)?], [$($k:literal),* $(,)?], [$($f:literal),* $(,)?] $(,)?) => {
        super::Entry {
            reason: $reason,
            id: $crate::diagnose::Id::new($id),
            meaning: $meaning,
            causes: &[$($c),*],
            checks: &[$($k),*],
            fixes: &[$($f),*],
            verified: $verified,
            hint: $hint,
        }
    };
}

mod core;
mod dev;
mod incident;
pub mod ip;
mod next;
pub mod specific;
mod tcp;

use std::collections::HashMap;
use std::sync::OnceLock;

use super::Id;

/// What netwhy knows about one drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The reason name as netwhy prints it, e.g. `NO_SOCKET`.
    pub reason: &'static str,
    /// A stable diagnosis id, kebab-case, e.g. `no-socket`.
    pub id: Id,
    /// Plain words, one or two sentences.
    pub meaning: &'static str,
    /// Usual causes, most likely first.
    pub causes: &'static [&'static str],
    /// What to look at: sysctls, counters, commands.
    pub checks: &'static [&'static str],
    /// What to change, as commands where possible.
    pub fixes: &'static [&'static str],
    /// Reproduced in netwhy's lab on this kernel.
    pub verified: bool,
    /// Short text for one row of the `drops` table (at most 60 chars).
    pub hint: &'static str,
}

/// Longest allowed `hint`, in characters.
pub const HINT_MAX: usize = 60;

/// The diagnosis id of [`FALLBACK`] (re-exported as `diagnose::unknown::ID`).
pub const UNKNOWN_ID: super::Id = super::Id::new("unknown-reason");

/// The entry used for a reason the table does not know (a newer kernel, a
/// vendor patch, a subsystem reason such as `OPENVSWITCH:0x3`, or
/// `UNKNOWN(n)`). Its texts are the part that holds for any such reason;
/// `diagnose::unknown` adds what the name and the location suggest.
pub static FALLBACK: Entry = Entry {
    reason: "",
    id: UNKNOWN_ID,
    meaning: "This drop reason is not in netwhy's knowledge base yet: it is newer than \
              netwhy, comes from a vendor kernel, or belongs to a subsystem (driver, module) \
              netwhy does not describe. The kernel still said where it dropped the packet.",
    causes: &[
        "A reason added by a newer kernel, a vendor patch, or a module's own reason subsystem.",
    ],
    checks: &[
        "Read the reason's comment in the kernel's include/net/dropreason-core.h (or the \
         subsystem's drop-reason header) for your kernel version (uname -r).",
        "Read the dropping function (the LOCATION column) in the same kernel's sources.",
        "nstat -az | grep -i -E 'drop|err'",
    ],
    fixes: &["No generic fix: follow the kernel function that dropped the packet."],
    verified: false,
    hint: "not in netwhy's notes yet: netwhy reasons <REASON>",
};

/// Every table, in kernel enum order within each file.
const TABLES: [&[Entry]; 5] = [
    core::ENTRIES,
    ip::ENTRIES,
    tcp::ENTRIES,
    dev::ENTRIES,
    next::ENTRIES,
];

/// All specific entries (not the fallback).
pub fn all() -> impl Iterator<Item = &'static Entry> {
    TABLES.iter().flat_map(|t| t.iter())
}

/// Normalizes a reason as the user or the kernel may spell it:
/// `skb_drop_reason_no_socket` → `NO_SOCKET`, `SKB_CONSUMED` → `CONSUMED`.
/// `SKB_CSUM` stays: it is a reason name of its own.
pub fn normalize(reason: &str) -> String {
    let up = reason.trim().to_ascii_uppercase();
    let s = match up.strip_prefix("SKB_DROP_REASON_") {
        Some(s) => s,
        None if matches!(up.as_str(), "SKB_CONSUMED" | "SKB_NOT_DROPPED_YET") => &up[4..],
        None => &up,
    };
    s.to_owned()
}

/// The specific entry for `reason`, or None.
pub fn find(reason: &str) -> Option<&'static Entry> {
    static BY_REASON: OnceLock<HashMap<&'static str, &'static Entry>> = OnceLock::new();
    let by_reason = BY_REASON.get_or_init(|| all().map(|e| (e.reason, e)).collect());
    by_reason.get(normalize(reason).as_str()).copied()
}

/// The specific entry for `reason`, else [`FALLBACK`].
pub fn entry(reason: &str) -> &'static Entry {
    find(reason).unwrap_or(&FALLBACK)
}

/// Evidence-driven diagnoses (see `specific.rs`): not found by reason;
/// code names them as constants (`kb::specific::NFT_REJECT`).
pub fn specifics() -> &'static [Entry] {
    specific::ENTRIES
}

/// The evidence-driven diagnosis with id `id` as a user typed it
/// (`netwhy reasons nft-reject`), if there is one.
pub fn specific(id: &str) -> Option<&'static Entry> {
    static BY_ID: OnceLock<HashMap<&'static str, &'static Entry>> = OnceLock::new();
    let by_id = BY_ID.get_or_init(|| {
        specific::ENTRIES
            .iter()
            .map(|e| (e.id.as_str(), e))
            .collect()
    });
    by_id.get(id).copied()
}
