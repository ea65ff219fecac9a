//! Kernel function steps for `netwhy trace` and `netwhy run`: the flags
//! that choose them and the one place that attaches them beside the path
//! probe's tracepoints, so both commands behave and report the same way.
use anyhow::{Context, Result};

use super::skbfuncs::{parse_funcs, BackendArg};
use crate::probe::path::funcs::WithFunctions;
use crate::probe::path::{PathBackend, PathProbe};
use crate::probe::skbfunc::{Backend, SkbFuncOptions};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct StepArgs {
    /// How kernel functions add steps to the timelines: kprobe-multi,
    /// kprobe or fentry (default: kprobe-multi where the kernel allows it;
    /// on kernels refusing it, tracepoints only, said in one line);
    /// `tracepoint`: no function steps.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Only kernel functions whose name matches this regular expression
    /// add steps (fentry attaches per function: keep the set small).
    #[arg(long, value_name = "REGEX")]
    pub funcs: Option<String>,
    /// Also add steps from the skb functions of these loaded modules
    /// (nf_tables, ...): the firewall's own functions in the timeline.
    #[arg(long, value_delimiter = ',', value_name = "MOD,...")]
    pub kmods: Vec<String>,
}

/// `probe` alone, or with the function steps `args` ask for; prints the
/// backend chosen, the discovery and attach times, or why there are none.
/// Unless function steps are off, the TC BPF programs of `netns` (every
/// namespace when empty) also get an fexit each where the kernel allows
/// it, so their verdicts join the timelines whatever backend was chosen.
pub fn attach(probe: PathProbe, args: &StepArgs, netns: &[u32]) -> Result<Box<dyn PathBackend>> {
    let funcs = parse_funcs(args.funcs.as_deref())?;
    if let Some(BackendArg::Tracepoint) = args.backend {
        return Ok(Box::new(WithFunctions::alone(probe)));
    }
    let share = probe.shared_maps()?;
    // Nothing asked for: kprobe-multi or nothing. Per-function kprobes and
    // fentry take seconds to minutes for the ~1.5k skb functions
    // (BENCHMARKS.md): only with --backend or --funcs.
    let auto = args.backend.is_none() && funcs.is_none();
    let fopts = SkbFuncOptions {
        backend: args.backend.map(Into::into),
        funcs,
        allow: auto.then(|| vec![Backend::KprobeMulti]),
        kmods: args.kmods.clone(),
        ..Default::default()
    };
    let (w, notice) = WithFunctions::start(probe, fopts)
        .context("attaching the skb function steps (--backend tracepoint: without)")?;
    match notice {
        Some(n) => crate::log::info_line(format_args!(
            "{n}; copies of a packet (skb_clone...) are not followed"
        )),
        None => {
            let (discovery_ms, attach_ms) = w.timings();
            let copies = match w.clone_funcs() {
                [] => {
                    "copies of a packet are not followed (no cloning function hooked)".to_string()
                }
                f => format!("copies followed through {}", f.join(" ")),
            };
            crate::log::info(format_args!(
                "{} kernel functions add steps via {} (found in {discovery_ms:.0} ms, attached in {attach_ms:.0} ms); {copies}",
                w.functions(),
                w.name()
            ));
        }
    }
    Ok(super::tcverdicts::wrap(Box::new(w), &share, netns))
}
