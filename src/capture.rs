//! Shared start-up of every capturing command: load the kernel facts once,
//! turn filters into a probe configuration, attach.
use std::time::Instant;

use crate::event::Enricher;
use crate::filter::noise;
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::netns::NetnsNames;
use crate::kernel::reasons::DropReasons;
use crate::probe::backend::Hook;
use crate::probe::drop::{DropOptions, DropProbe, KernelFilter};
use crate::probe::ProbeError;

/// What a command wants captured.
#[derive(Debug, Clone, Default)]
pub struct CaptureSpec {
    pub filter: KernelFilter,
    /// Report known-harmless drops too.
    pub all: bool,
    pub events: bool,
    pub aggregate: bool,
    pub hook: Option<Hook>,
    /// Ring buffer bytes; 0 = default.
    pub ring_bytes: u32,
}

/// Kernel facts every capture needs to name what it sees.
pub struct Facts {
    pub reasons: DropReasons,
    pub kallsyms: Kallsyms,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
}

impl Facts {
    pub fn load() -> Result<Facts, CaptureError> {
        if !crate::probe::have_privilege() {
            return Err(ProbeError::Privilege.into());
        }
        Ok(Facts {
            reasons: DropReasons::load()?,
            kallsyms: Kallsyms::load()?,
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
            has_reason: facts.reasons.has_reasons(),
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
