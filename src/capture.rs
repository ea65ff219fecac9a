//! Shared start-up of every capturing command: load the kernel facts once,
//! turn filters into a probe configuration, attach.
use std::time::Instant;

use crate::event::Enricher;
use crate::filter::noise;
use crate::filter::KernelFilter;
use crate::kernel::btf::Btf;
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::netns::NetnsNames;
use crate::kernel::reasons::DropReasons;
use crate::kernel::KernelError;
use crate::probe::backend::Hook;
use crate::probe::drop::{DropOptions, DropProbe};
use crate::probe::ProbeError;

/// What a command wants captured.
#[derive(Debug, Clone, Default)]
pub struct CaptureSpec {
    pub filter: KernelFilter,
    /// Report known-harmless drops too.
    pub all: bool,
    pub events: bool,
    pub aggregate: bool,
    /// With `aggregate`: stream each new group's first drop (the exporter).
    pub sample_new: bool,
    pub hook: Option<Hook>,
    /// Ring buffer bytes; 0 = default.
    pub ring_bytes: u32,
    /// Report drops netwhy's own syscalls cause too. Only the lab wants
    /// this: its own traffic is what it watches.
    pub include_own: bool,
}

/// Kernel facts every capture needs to name what it sees.
pub struct Facts {
    pub reasons: DropReasons,
    pub kallsyms: Kallsyms,
    /// kfree_skb passes rx_sk (6.11+), read from the tracepoint's BTF
    /// prototype: a tp_btf program may not read an argument that is not there.
    pub kfree_skb_has_rx_sk: bool,
    /// vmlinux BTF, parsed once here for the reasons, the tracepoint
    /// prototypes and the path probe's hooks (`trace`, `run`), or why not.
    pub btf: Result<Btf, KernelError>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

impl Facts {
    pub fn load() -> Result<Facts, CaptureError> {
        if !crate::probe::have_privilege() {
            return Err(ProbeError::Privilege.into());
        }
        let btf = Btf::load_vmlinux();
        let kfree_skb_has_rx_sk = btf
            .as_ref()
            .ok()
            .and_then(|b| b.raw_tracepoint_arg_count("kfree_skb"))
            .is_some_and(|n| n >= 4);
        Ok(Facts {
            reasons: DropReasons::load_from(btf.as_ref().ok())?,
            kallsyms: Kallsyms::load()?,
            kfree_skb_has_rx_sk,
            btf,
        })
    }
}

pub struct Capture {
    pub probe: DropProbe,
    pub enricher: Enricher,
    /// When start-up began (kernel facts loaded before this are excluded).
    pub started: Instant,
}

impl Capture {
    pub fn start(spec: &CaptureSpec, facts: Facts) -> Result<Capture, CaptureError> {
        let noise = if spec.all {
            Vec::new()
        } else {
            noise::ranges(&facts.reasons, &facts.kallsyms)
        };
        let opts = DropOptions {
            filter: spec.filter.clone(),
            noise,
            aggregate: spec.aggregate,
            events: spec.events,
            sample_new: spec.sample_new,
            has_reason: facts.reasons.has_reasons(),
            has_rx_sk: facts.kfree_skb_has_rx_sk,
            self_tgid: (!spec.include_own).then(std::process::id),
            consumed: facts.reasons.consumed(),
            hook: spec.hook,
            ..DropOptions::default()
        };
        let opts = DropOptions {
            ringbuf_bytes: if spec.ring_bytes == 0 {
                opts.ringbuf_bytes
            } else {
                spec.ring_bytes
            },
            ..opts
        };
        let probe = DropProbe::start(&opts)?;
        let enricher = Enricher::new(facts.reasons, facts.kallsyms, NetnsNames::scan());
        Ok(Capture {
            probe,
            enricher,
            started: Instant::now(),
        })
    }
}
