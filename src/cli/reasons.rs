//! `netwhy reasons`: the drop reasons this kernel knows, with their values;
//! `netwhy reasons NAME [--at FUNCTION]`: the knowledge base's full text for
//! one reason (as the kernel or `drops` prints it) or diagnosis id — the key
//! behind each one-line hint of the `drops` table.
use anyhow::{bail, Result};

use crate::diagnose::{kb, lookup, Explanation};
use crate::kernel::reasons::DropReasons;

#[derive(Debug, Clone, clap::Args)]
pub struct ReasonsArgs {
    /// A reason (NO_SOCKET, skb_drop_reason_no_socket) or a diagnosis id
    /// (nat-tuple-mismatch): print what netwhy knows about it.
    pub name: Option<String>,
    /// The dropping function, as the LOCATION column shows it: some reasons
    /// mean something else at different places.
    #[arg(long, value_name = "FUNCTION")]
    pub at: Option<String>,
}

pub fn run(a: ReasonsArgs) -> Result<()> {
    match a.name {
        None => list(),
        Some(n) => {
            print!("{}", describe(&n, a.at.as_deref().unwrap_or(""))?);
            Ok(())
        }
    }
}

fn list() -> Result<()> {
    let r = DropReasons::load()?;
    println!(
        "# source: {:?}; SKB_CONSUMED = {}",
        r.source(),
        r.consumed()
    );
    for (v, name) in r.iter() {
        println!("{v:>8}  {name}");
    }
    Ok(())
}

/// The full text for a reason (at a function) or a diagnosis id.
pub fn describe(name: &str, at: &str) -> Result<String> {
    let by_id = kb::all()
        .chain(kb::specifics())
        .find(|e| e.id == name)
        .map(|e| (e.reason, e))
        .or_else(|| {
            crate::diagnose::refine::all()
                .iter()
                .find(|r| r.id == name)
                .map(|r| (r.reason, kb::entry(r.reason)))
        });
    let x: Explanation = match by_id {
        // A specific (evidence-driven) entry is shown as it is.
        Some((_, e)) if kb::specific(name).is_some() => Explanation {
            reason: e.reason.into(),
            function: String::new(),
            id: e.id,
            meaning: e.meaning,
            causes: e.causes,
            checks: e.checks,
            fixes: e.fixes,
            verified: e.verified,
            hint: e.hint,
            known: true,
            refined_by: None,
        },
        Some((reason, _)) => {
            let func = crate::diagnose::refine::all()
                .iter()
                .find(|r| r.id == name)
                .and_then(|r| r.functions.first().copied())
                .unwrap_or(at);
            lookup(reason, func)
        }
        None => {
            let x = lookup(name, at);
            if !x.known {
                bail!(
                    "no reason or diagnosis named '{name}' (netwhy reasons lists this kernel's reasons)"
                );
            }
            x
        }
    };
    let mut s = format!("{} ({})\n", x.reason, x.id);
    if !x.function.is_empty() {
        s += &format!("  at:     {}\n", x.function);
    }
    s += &format!("  what:   {}\n", x.meaning);
    for c in x.causes {
        s += &format!("  why:    {c}\n");
    }
    for c in x.checks {
        s += &format!("  check:  {c}\n");
    }
    for f in x.fixes {
        s += &format!("  fix:    {f}\n");
    }
    if let Some(c) = x.caveat() {
        s += &format!("  note:   {c}\n");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_ids_and_locations() {
        let s = describe("NO_SOCKET", "").unwrap();
        assert!(s.starts_with("NO_SOCKET (no-socket)"), "{s}");
        let s = describe("skb_drop_reason_netfilter_drop", "nft_do_chain+0x3e8/0x5a0").unwrap();
        assert!(s.contains("(nftables-rule-drop)"), "{s}");
        assert!(s.contains("at:     nft_do_chain"), "{s}");
        let s = describe("nat-tuple-mismatch", "").unwrap();
        assert!(s.starts_with("NO_SOCKET (nat-tuple-mismatch)"), "{s}");
        assert!(s.contains("fix:"));
        let s = describe("ttl-expired", "").unwrap();
        assert!(s.contains("at:     ip_forward"), "{s}");
        assert!(describe("NOT_A_REASON_EVER", "").is_err());
    }
}
