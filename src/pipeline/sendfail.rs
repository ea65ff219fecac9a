//! The send-failure probe as `diagnose::emsgsize`'s source: neither module
//! knows the other (the probe sits below the diagnosis), so the pipeline,
//! which wires probes to diagnoses, joins them.
use crate::diagnose::emsgsize::{SendFailure, SendFailures};
use crate::probe::sendfail::SendFailProbe;

impl SendFailures for SendFailProbe {
    fn read(&mut self) -> Vec<SendFailure> {
        self.failures()
            .into_iter()
            .map(|f| SendFailure {
                netns: f.netns,
                tgid: f.tgid,
                pid: f.pid,
                comm: f.comm,
                fd: f.fd,
                len: f.len,
                count: f.count,
                dst: f.dst,
            })
            .collect()
    }
}
