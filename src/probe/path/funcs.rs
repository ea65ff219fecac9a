//! The path probe with the skb function probe's steps joined in (issue 7):
//! the tracepoints start and end each packet's timeline (filters, fate),
//! and every kernel function a tracked packet enters on the way adds a
//! step, through whichever of kprobe-multi, kprobe and fentry this kernel
//! allows.
use std::sync::Arc;
use std::time::Duration;

use super::{PathBackend, PathCounters, PathProbe, RawStep, Role, CLONE_HOOK_BASE, FUNC_HOOK_BASE};
use crate::probe::skbfunc::{clone, Backend, SkbFuncOptions, SkbFuncProbe};
use crate::probe::ProbeError;

/// Tracepoints plus function steps; the functions detach on drop.
pub struct WithFunctions {
    path: PathProbe,
    funcs: Option<SkbFuncProbe>,
    names: Vec<String>,
    label: &'static str,
}

impl WithFunctions {
    /// Attaches the function probe to `path`'s maps. `opts.backend` None:
    /// the feature probes choose (among `opts.allow`); when they leave only
    /// tracepoints, or the attach fails, the path probe runs alone and the
    /// reason comes back as a notice.
    pub fn start(
        path: PathProbe,
        mut opts: SkbFuncOptions,
    ) -> Result<(WithFunctions, Option<String>), ProbeError> {
        opts.share = Some(Arc::new(path.shared_maps()?));
        let funcs = match SkbFuncProbe::attach(&opts) {
            Ok(f) => f,
            // Asked for nothing in particular: the tracepoints still work.
            Err(e) if opts.backend.is_none() => {
                let notice = format!("netwhy: no skb function steps ({e}); tracepoints only");
                return Ok((Self::alone(path), Some(notice)));
            }
            Err(e) => return Err(e),
        };
        if funcs.report.backend == Backend::Tracepoint {
            let probes = &funcs.report.probes;
            let refused: Vec<String> = probes
                .iter()
                .filter(|p| !p.ok)
                .map(|p| {
                    let why = first_line(p.error.as_deref().unwrap_or(""));
                    format!("{}: {why}", p.backend.as_str())
                })
                .collect();
            let usable: Vec<&str> = probes
                .iter()
                .filter(|p| p.ok)
                .map(|p| p.backend.as_str())
                .collect();
            let hint = if usable.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} work here: --backend B --funcs REGEX)",
                    usable.join(", ")
                )
            };
            let notice = format!(
                "netwhy: no skb function steps ({}); tracepoints only{hint}",
                refused.join("; ")
            );
            funcs.detach();
            return Ok((Self::alone(path), Some(notice)));
        }
        let names = funcs.function_names().to_vec();
        let label = match funcs.report.backend {
            Backend::KprobeMulti => "tp_btf+kprobe-multi",
            Backend::Kprobe => "tp_btf+kprobe",
            Backend::Fentry => "tp_btf+fentry",
            Backend::Tracepoint => "tp_btf",
        };
        let w = WithFunctions {
            path,
            funcs: Some(funcs),
            names,
            label,
        };
        Ok((w, None))
    }

    /// The tracepoints only.
    pub fn alone(path: PathProbe) -> WithFunctions {
        WithFunctions {
            path,
            funcs: None,
            names: Vec::new(),
            label: "tp_btf",
        }
    }

    /// Milliseconds spent finding the functions (BTF, ftrace) and
    /// attaching them; zeros without a function backend.
    pub fn timings(&self) -> (f64, f64) {
        self.funcs
            .as_ref()
            .map_or((0.0, 0.0), |f| (f.report.discovery_ms, f.report.attach_ms))
    }

    /// Functions hooked (0 without a function backend).
    pub fn functions(&self) -> usize {
        self.funcs.as_ref().map_or(0, |f| f.report.functions)
    }

    /// Cloning functions whose copies of tracked packets become packets of
    /// their own (none without a function backend).
    pub fn clone_funcs(&self) -> &[String] {
        self.funcs.as_ref().map_or(&[], |f| &f.report.clones)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

impl PathBackend for WithFunctions {
    fn name(&self) -> &'static str {
        self.label
    }

    fn hooks(&self) -> Vec<&str> {
        self.path.hooks()
    }

    fn hook(&self, id: u16) -> (&str, Role) {
        if let Some(f) = id.checked_sub(FUNC_HOOK_BASE) {
            let name = self.names.get(usize::from(f)).map_or("?", |n| n.as_str());
            return (name, Role::Function);
        }
        match id.checked_sub(CLONE_HOOK_BASE) {
            Some(c) => (
                clone::FUNCS.get(usize::from(c)).unwrap_or(&"?"),
                Role::Function,
            ),
            None => self.path.hook(id),
        }
    }

    fn next_batch(&mut self, timeout: Duration) -> Result<Vec<RawStep>, ProbeError> {
        self.path.next_batch(timeout)
    }

    fn counters(&self) -> Result<PathCounters, ProbeError> {
        self.path.counters()
    }

    fn release_functions(&mut self) -> Option<String> {
        let f = self.funcs.take()?;
        let (n, backend) = (f.report.functions, f.report.backend.as_str());
        let d = f.detach();
        Some(format!(
            "netwhy: detached {n} kernel functions ({backend}) in {} ms",
            d.as_millis()
        ))
    }
}

impl Drop for WithFunctions {
    fn drop(&mut self) {
        if let Some(f) = self.funcs.take() {
            f.detach();
        }
    }
}
