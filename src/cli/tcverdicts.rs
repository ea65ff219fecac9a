//! `trace` and `run` with function steps: TC BPF programs on the devices in
//! scope get an fexit each (where the kernel allows fexit), so their
//! verdicts join the packets' timelines.
use crate::kernel::netns::NetnsNames;
use crate::probe::path::PathBackend;
use crate::probe::skbfunc::SharedMaps;
use crate::probe::tcverdict::{TcVerdictProbe, WithTcVerdicts};
use crate::state::{ns, tcbpf};

/// Wraps `backend` with fexit steps for every TC program in `netns` (every
/// namespace netwhy can enter when empty). Says on stderr what it traces.
pub fn wrap(
    backend: Box<dyn PathBackend>,
    share: &SharedMaps,
    netns: &[u32],
) -> Box<dyn PathBackend> {
    let scope: Vec<u32> = if netns.is_empty() {
        let mut v: Vec<u32> = NetnsNames::scan().iter().map(|(ino, _)| ino).collect();
        let own = crate::kernel::netns::current_netns();
        if !v.contains(&own) {
            v.push(own);
        }
        v
    } else {
        netns.to_vec()
    };
    let mut progs = Vec::new();
    for ino in scope {
        match ns::run_in(ino, tcbpf::tc_programs_here) {
            Ok(Ok(p)) => progs.extend(p),
            Ok(Err(e)) => crate::log::info(format_args!("TC programs of netns {ino}: {e}")),
            Err(e) => crate::log::info(format_args!("TC programs of netns {ino}: {e}")),
        }
    }
    if progs.is_empty() {
        return backend;
    }
    let probe = TcVerdictProbe::attach(&progs, share);
    if probe.labels().is_empty() {
        // Typically a kernel without fentry (this project's host): one line.
        let why = probe.skipped.first().map_or("", String::as_str);
        crate::log::info(format_args!(
            "no TC program verdict steps: fexit refused for all {} ({why})",
            progs.len()
        ));
    } else {
        for s in &probe.skipped {
            crate::log::info(format_args!("not tracing TC program {s}"));
        }
    }
    if !probe.labels().is_empty() {
        crate::log::info(format_args!(
            "fexit on {} TC BPF program(s): {}",
            probe.labels().len(),
            probe.labels().join(", ")
        ));
    }
    Box::new(WithTcVerdicts {
        inner: backend,
        probe,
    })
}
