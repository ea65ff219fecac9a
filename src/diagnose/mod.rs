//! The knowledge base behind `netwhy explain` and the `drops` table hints:
//! what a drop reason means, why it usually happens, what to check and what
//! to change. The knowledge base itself ([`kb`], [`refine`], [`unknown`]) is
//! pure logic over static tables; the evidence collectors ([`evidence`],
//! [`rules`], [`tcprog`], [`watch`], [`session`]) read live kernel state
//! (sockets, conntrack, nftables, sysctls) and [`rules`] arms nftrace with
//! a table of its own while a capture runs.
//!
//! - [`kb`]: one [`kb::Entry`] per drop reason name.
//! - [`refine`]: a more precise story when the reason alone is ambiguous and
//!   the dropping function tells more (NOT_SPECIFIED at `ip_error`...).
//! - [`unknown`]: what can still be said about a reason without an entry
//!   (a kernel newer than netwhy): never an error.
//! - [`lookup`] / [`hint`]: all of these combined.
#![forbid(unsafe_code)]
use std::borrow::Cow;

pub mod checksum;
pub mod clues;
pub mod correlate;
pub mod corroborate;
pub mod counters;
pub mod emsgsize;
pub mod evidence;
pub mod finding;
pub mod kb;
pub mod l2;
pub mod martian;
pub mod refine;
pub mod rules;
pub mod sender;
pub mod session;
pub mod tcpflags;
pub mod tcprog;
pub mod unknown;
pub mod watch;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod upstream;

pub use kb::{Entry, FALLBACK, HINT_MAX};

use crate::event::DropSite;

/// A diagnosis id: `no-socket`, `nft-reject`, `unknown-reason`... Only the
/// knowledge base makes them ([`Entry::id`], [`Refinement::id`],
/// [`unknown::ID`]); code elsewhere names a diagnosis by its constant
/// (`kb::specific::NFT_REJECT.id`), so a misspelt one does not compile
/// instead of falling back to generic text. Serialized as the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Id(&'static str);

impl Id {
    pub(in crate::diagnose) const fn new(id: &'static str) -> Self {
        Id(id)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
pub use refine::Refinement;
pub use unknown::Unknown;

/// Shown next to an entry that was not reproduced in netwhy's lab.
pub const UNVERIFIED_NOTE: &str =
    "unverified: written from the kernel sources, not reproduced in netwhy's lab on this kernel";

impl Entry {
    /// `None` for verified entries, else [`UNVERIFIED_NOTE`].
    pub fn caveat(&self) -> Option<&'static str> {
        (!self.verified).then_some(UNVERIFIED_NOTE)
    }
}

/// The diagnosis for one (reason, function) pair: the reason's entry with a
/// location refinement applied when one matches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explanation {
    /// The reason as asked, normalized (`NO_SOCKET`), even when unknown.
    pub reason: String,
    /// The dropping function as given, without offset (`ip_error`).
    pub function: String,
    pub id: Id,
    pub meaning: &'static str,
    pub causes: &'static [&'static str],
    pub checks: &'static [&'static str],
    pub fixes: &'static [&'static str],
    pub verified: bool,
    pub hint: &'static str,
    /// False when the reason has no specific entry (the fallback was used).
    pub known: bool,
    /// The refinement's id when the location changed the diagnosis.
    pub refined_by: Option<Id>,
    /// For a reason without an entry: what its name and location suggest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<Unknown>,
}

impl Explanation {
    /// `None` for verified diagnoses, else [`UNVERIFIED_NOTE`].
    pub fn caveat(&self) -> Option<&'static str> {
        (!self.verified).then_some(UNVERIFIED_NOTE)
    }
}

/// Explains a drop of `reason` at `function` (a symbol, with or without
/// `+0x1c/0x2a0` or `.isra.0`; empty when unknown).
pub fn lookup(reason: &str, function: &str) -> Explanation {
    let entry = kb::find(reason);
    let base = entry.unwrap_or(&FALLBACK);
    let r = kb::normalize(reason);
    let func = refine::normalize_function(function);
    let mut x = Explanation {
        reason: r.clone(),
        function: func.to_owned(),
        id: base.id,
        meaning: base.meaning,
        causes: base.causes,
        checks: base.checks,
        fixes: base.fixes,
        verified: base.verified,
        hint: base.hint,
        known: entry.is_some(),
        refined_by: None,
        unknown: entry.is_none().then(|| Unknown::new(&r, func)),
    };
    if let Some(rf) = refine::refine(&r, func) {
        x.id = rf.id;
        x.meaning = rf.meaning.unwrap_or(x.meaning);
        x.causes = rf.causes.unwrap_or(x.causes);
        x.checks = rf.checks.unwrap_or(x.checks);
        x.fixes = rf.fixes.unwrap_or(x.fixes);
        x.hint = rf.hint.unwrap_or(x.hint);
        x.verified = rf.verified;
        x.refined_by = Some(rf.id);
    }
    x
}

/// The short text for the `drops` table row of (reason, function); the
/// static [`FALLBACK`] hint for a reason without an entry (see
/// [`hint_text`] for one that names it).
pub fn hint(reason: &str, function: &str) -> &'static str {
    let r = kb::normalize(reason);
    match refine::refine(&r, refine::normalize_function(function)).and_then(|rf| rf.hint) {
        Some(h) => h,
        None => kb::entry(&r).hint,
    }
}

/// Like [`hint`], but a reason without an entry gets a line built from its
/// name and the dropping function (`rx headroom (skb): not in netwhy's
/// notes yet`) instead of the generic fallback.
pub fn hint_text(reason: &str, function: &str) -> Cow<'static, str> {
    let r = kb::normalize(reason);
    if kb::find(&r).is_some() {
        return Cow::Borrowed(hint(&r, function));
    }
    Cow::Owned(Unknown::new(&r, refine::normalize_function(function)).hint())
}

/// The whole diagnosis named `id` as a user or a file spells it (`netwhy
/// reasons nft-reject`): a reason's entry, an evidence-driven one, a
/// refinement over its reason's entry, or the fallback. One map built on
/// first use; code that knows the diagnosis names its constant instead.
pub fn by_id(id: &str) -> Option<Entry> {
    static BY_ID: std::sync::OnceLock<std::collections::HashMap<&'static str, Entry>> =
        std::sync::OnceLock::new();
    let map = BY_ID.get_or_init(|| {
        kb::all()
            .chain(kb::specifics())
            .copied()
            .chain(refine::all().iter().map(Refinement::entry))
            .chain([FALLBACK])
            .map(|e| (e.id.as_str(), e))
            .collect()
    });
    map.get(id).copied()
}

/// The one-line hint for an aggregate row of `netwhy drops` (see
/// [`hint_text`]): what the table renderer and the JSON `group` show.
pub fn hint_for(site: &DropSite) -> Cow<'static, str> {
    hint_text(site.reason, &site.location.symbol)
}
