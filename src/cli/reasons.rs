//! `netwhy reasons`: the drop reasons this kernel knows, with their values;
//! `netwhy reasons NAME [--at FUNCTION]`: the knowledge base's full text for
//! one reason (as the kernel or `drops` prints it) or diagnosis id — the key
//! behind each one-line hint of the `drops` table.
use std::io::Write;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::diagnose::{kb, lookup, Explanation};
use crate::kernel::reasons::{DropReasons, ReasonSource};
use crate::output::style::{self, Palette, Role};
use crate::output::{json_line, Format};

#[derive(Debug, Clone, clap::Args)]
pub struct ReasonsArgs {
    /// A reason (NO_SOCKET, skb_drop_reason_no_socket) or a diagnosis id
    /// (nat-tuple-mismatch): print what netwhy knows about it.
    pub name: Option<String>,
    /// The dropping function, as the LOCATION column shows it: some reasons
    /// mean something else at different places.
    #[arg(long, value_name = "FUNCTION")]
    pub at: Option<String>,
    /// Output format; json is JSON Lines (docs/json.md).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
}

pub fn run(a: ReasonsArgs) -> Result<()> {
    match a.name {
        None => list(a.output),
        Some(n) => {
            // The running kernel's names only sharpen the text for a reason
            // netwhy has no notes on; reading them may fail without harm.
            let kernel = DropReasons::load().ok().filter(DropReasons::has_reasons);
            crate::log::debug(format_args!(
                "kernel reason names: {}",
                kernel
                    .as_ref()
                    .map_or("none".into(), |r| format!("{:?}", r.source()))
            ));
            let k = Kernel {
                reasons: kernel.as_ref(),
                release: crate::kernel::release(),
            };
            let d = described(&n, a.at.as_deref().unwrap_or(""), &k)?;
            let mut out = std::io::stdout().lock();
            match a.output {
                Format::Text => out.write_all(d.text(style::stdout()).as_bytes())?,
                Format::Json => json_line(&mut out, &d)?,
            }
            crate::output::flush_quietly(&mut out)?;
            Ok(())
        }
    }
}

/// One reason of the running kernel (`reasons -o json`).
#[derive(Debug, Serialize)]
#[serde(remote = "Self")]
struct KernelReason<'a> {
    value: u32,
    name: &'a str,
}

crate::json_record!(KernelReason<'_>, "kernel_reason");

/// The closing line of `reasons -o json`.
#[derive(Debug, Serialize)]
#[serde(remote = "Self")]
struct ReasonsSummary {
    source: ReasonSource,
    /// SKB_CONSUMED's value (not a drop), null when this kernel has none.
    consumed: Option<u32>,
    reasons: usize,
}

crate::json_record!(ReasonsSummary, "reasons_summary");

fn list(fmt: Format) -> Result<()> {
    let t = std::time::Instant::now();
    let r = DropReasons::load()?;
    crate::log::debug(format_args!(
        "{} drop reason names from {:?} in {} us",
        r.iter().count(),
        r.source(),
        t.elapsed().as_micros()
    ));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match write_all_reasons(&mut out, &r, fmt) {
        Err(e) if crate::output::is_broken_pipe(&e) => Ok(()),
        r => Ok(r?),
    }
}

fn write_all_reasons(out: &mut impl Write, r: &DropReasons, fmt: Format) -> std::io::Result<()> {
    match fmt {
        Format::Text => write_list(out, r, style::stdout())?,
        Format::Json => {
            for (value, name) in r.iter() {
                json_line(out, &KernelReason { value, name })?;
            }
            let consumed = Some(r.consumed()).filter(|&c| c != u32::MAX);
            json_line(
                out,
                &ReasonsSummary {
                    source: r.source(),
                    consumed,
                    reasons: r.iter().count(),
                },
            )?;
        }
    }
    out.flush()
}

fn write_list(w: &mut impl Write, r: &DropReasons, pal: Palette) -> std::io::Result<()> {
    writeln!(
        w,
        "# source: {:?}; SKB_CONSUMED = {}",
        r.source(),
        r.consumed()
    )?;
    for (v, name) in r.iter() {
        writeln!(w, "{v:>8}  {}", pal.paint(Role::Reason, name))?;
    }
    Ok(())
}

/// What is known about the running kernel, for reasons without notes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kernel<'a> {
    /// Its reason names, when they could be read.
    pub reasons: Option<&'a DropReasons>,
    /// `uname -r`.
    pub release: Option<&'a str>,
}

/// A diagnosis id is kebab-case; anything else is taken as a reason name
/// (`NO_SOCKET`, `skb_drop_reason_no_socket`, `OPENVSWITCH:0x3`,
/// `UNKNOWN(130)`), which always gets an answer.
fn looks_like_id(name: &str) -> bool {
    name.contains('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The full text for a reason (at a function) or a diagnosis id, plain.
pub fn describe(name: &str, at: &str, kernel: &Kernel<'_>) -> Result<String> {
    Ok(described(name, at, kernel)?.text(Palette::PLAIN))
}

/// What is known about a reason (at a function) or a diagnosis id. Only
/// an unknown diagnosis id is an error: a reason netwhy has no notes on is
/// described from its name and location.
pub fn described(name: &str, at: &str, kernel: &Kernel<'_>) -> Result<Described> {
    let by_id = kb::all()
        .chain(kb::specifics())
        .find(|e| e.id.as_str() == name)
        .map(|e| (e.reason, e))
        .or_else(|| {
            crate::diagnose::refine::all()
                .iter()
                .find(|r| r.id.as_str() == name)
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
            unknown: None,
        },
        Some((reason, _)) => {
            let func = crate::diagnose::refine::all()
                .iter()
                .find(|r| r.id.as_str() == name)
                .and_then(|r| r.functions.first().copied())
                .unwrap_or(at);
            lookup(reason, func)
        }
        None => {
            let x = lookup(name, at);
            if !x.known && looks_like_id(name) {
                bail!("no diagnosis named '{name}' (netwhy reasons lists this kernel's reasons)");
            }
            x
        }
    };
    let mut checks: Vec<String> = x.unknown.iter().flat_map(|u| u.checks()).collect();
    checks.extend(x.checks.iter().map(|c| c.to_string()));
    Ok(Described {
        reason: x.reason.to_string(),
        id: x.id.to_string(),
        function: Some(x.function.to_string()).filter(|f| !f.is_empty()),
        meaning: x.meaning.to_string(),
        seen: x
            .unknown
            .as_ref()
            .map(|u| u.lines(kernel.release))
            .unwrap_or_default(),
        kernel_note: x.unknown.as_ref().and_then(|_| {
            kernel
                .reasons
                .filter(|r| r.value(&x.reason).is_none())
                .map(|r| {
                    format!(
                        "this kernel ({:?} names) has no reason called {} either",
                        r.source(),
                        x.reason
                    )
                })
        }),
        causes: x.causes.iter().map(|c| c.to_string()).collect(),
        checks,
        fixes: x.fixes.iter().map(|c| c.to_string()).collect(),
        caveat: x
            .caveat()
            .filter(|_| x.unknown.is_none())
            .map(str::to_string),
        known: x.known,
    })
}

/// What netwhy knows about one reason or diagnosis id: `reasons NAME`
/// prints it as text, `-o json` as one `reason_explanation` object.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct Described {
    /// The reason, normalized (`NO_SOCKET`).
    pub reason: String,
    /// The diagnosis id (`no-socket`, `unknown-reason`).
    pub id: String,
    /// The dropping function without offset, when one was given or the
    /// diagnosis belongs to one.
    pub function: Option<String>,
    pub meaning: String,
    /// For a reason without notes: what its name and location suggest.
    pub seen: Vec<String>,
    /// Said when the running kernel lacks the name too (a typo shows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_note: Option<String>,
    pub causes: Vec<String>,
    pub checks: Vec<String>,
    pub fixes: Vec<String>,
    /// Why the text is not verified yet, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
    /// False when netwhy has no notes on the reason.
    pub known: bool,
}

crate::json_record!(Described, "reason_explanation");

impl Described {
    /// The text form; `pal` colours the reason name.
    pub fn text(&self, pal: Palette) -> String {
        let mut s = format!("{} ({})\n", pal.paint(Role::Reason, &self.reason), self.id);
        if let Some(f) = &self.function {
            s += &format!("  at:     {f}\n");
        }
        s += &format!("  what:   {}\n", self.meaning);
        for l in &self.seen {
            s += &format!("  seen:   {l}\n");
        }
        if let Some(n) = &self.kernel_note {
            s += &format!("  note:   {n}\n");
        }
        for c in &self.causes {
            s += &format!("  why:    {c}\n");
        }
        for c in &self.checks {
            s += &format!("  check:  {c}\n");
        }
        for f in &self.fixes {
            s += &format!("  fix:    {f}\n");
        }
        if let Some(c) = &self.caveat {
            s += &format!("  note:   {c}\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_KERNEL: Kernel<'static> = Kernel {
        reasons: None,
        release: None,
    };

    #[test]
    fn reasons_ids_and_locations() {
        let s = describe("NO_SOCKET", "", &NO_KERNEL).unwrap();
        assert!(s.starts_with("NO_SOCKET (no-socket)"), "{s}");
        let s = describe(
            "skb_drop_reason_netfilter_drop",
            "nft_do_chain+0x3e8/0x5a0",
            &NO_KERNEL,
        )
        .unwrap();
        assert!(s.contains("(nftables-rule-drop)"), "{s}");
        assert!(s.contains("at:     nft_do_chain"), "{s}");
        let s = describe("nat-tuple-mismatch", "", &NO_KERNEL).unwrap();
        assert!(s.starts_with("NO_SOCKET (nat-tuple-mismatch)"), "{s}");
        assert!(s.contains("fix:"));
        let s = describe("ttl-expired", "", &NO_KERNEL).unwrap();
        assert!(s.contains("at:     ip_forward"), "{s}");
        // A misspelt diagnosis id is the only error.
        assert!(describe("nat-tuple-mismatchh", "", &NO_KERNEL).is_err());
    }

    /// A reason no kernel has: answered from its name and location, with
    /// the honest "not in the knowledge base" line, never an error.
    #[test]
    fn unknown_reason_is_described_not_refused() {
        let k = Kernel {
            reasons: None,
            release: Some("9.9.9-test"),
        };
        let s = describe("NW_TEST_TCP_WINDOW_WOBBLE", "tcp_v4_rcv+0x1c/0x2a0", &k).unwrap();
        assert!(
            s.starts_with("NW_TEST_TCP_WINDOW_WOBBLE (unknown-reason)"),
            "{s}"
        );
        assert!(s.contains("at:     tcp_v4_rcv\n"), "{s}");
        assert!(s.contains("not in netwhy's knowledge base yet"), "{s}");
        assert!(
            s.contains("the name says \"nw test tcp window wobble\""),
            "{s}"
        );
        assert!(s.contains("tcp_v4_rcv, a function of TCP"), "{s}");
        assert!(
            s.contains("include/net/dropreason-core.h of Linux 9.9.9-test"),
            "{s}"
        );
        assert!(
            s.contains("SKB_DROP_REASON_NW_TEST_TCP_WINDOW_WOBBLE"),
            "{s}"
        );
        assert!(
            s.contains("check:  nstat -az | grep -i -E '^Tcp|TcpExt'"),
            "{s}"
        );
        assert!(!s.contains("unverified"), "{s}");
    }

    /// A kernel that lacks the name too is said so (a typo shows).
    #[test]
    fn unknown_reason_absent_from_the_kernel_says_so() {
        let r = DropReasons::from_tracefs_format(include_str!(
            "../../tests/fixtures/kernel/kfree_skb_format_6.18.txt"
        ))
        .unwrap();
        let k = Kernel {
            reasons: Some(&r),
            release: None,
        };
        let s = describe("NO_SOCKETT", "", &k).unwrap();
        assert!(s.contains("has no reason called NO_SOCKETT either"), "{s}");
        let s = describe("NO_SOCKET", "", &k).unwrap();
        assert!(!s.contains("has no reason called"), "{s}");
    }

    /// Every reason of the running kernel (the 6.18 fixture without root)
    /// renders, at a location and without, with non-empty text.
    #[test]
    fn every_live_reason_describes() {
        let r = crate::diagnose::tests::kernel_reason_table();
        let k = Kernel {
            reasons: Some(&r),
            release: Some("live"),
        };
        for (_, name) in r.iter() {
            for at in ["", "skb_release_data+0x12/0x40"] {
                let s = describe(name, at, &k).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(s.starts_with(name), "{name}: {s}");
                assert!(
                    s.contains("  what:   ") && s.lines().count() >= 3,
                    "{name}: {s}"
                );
                assert!(!s.contains("has no reason called"), "{name}: {s}");
            }
        }
    }
}
