//! The send-failure probe as `diagnose::emsgsize`'s source. The diagnosis
//! takes the probe's record type but must not drive a probe (it also runs
//! on fixtures), so the pipeline, which wires probes to diagnoses, joins them.
use crate::diagnose::emsgsize::{SendFailure, SendFailures};
use crate::probe::sendfail::SendFailProbe;

impl SendFailures for SendFailProbe {
    fn read(&mut self) -> Vec<SendFailure> {
        self.failures()
    }
}
