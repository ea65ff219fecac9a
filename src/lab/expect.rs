//! What a scenario expects the kernel to report, and the check against
//! what was captured. Assertions are on stable fields (reason name,
//! location symbol, namespace, device, flow), never on free text.
use std::fmt;

use crate::event::DropEvent;

/// One expected drop.
#[derive(Debug, Clone)]
pub struct ExpectDrop {
    pub reason: &'static str,
    /// Function the kernel reports as the drop location.
    pub function: &'static str,
    /// Role of the namespace the drop happens in.
    pub netns: &'static str,
    /// Device on the skb, when the scenario knows it.
    pub dev: Option<&'static str>,
    pub proto: Option<&'static str>,
    pub dst: Option<&'static str>,
    pub dport: Option<u16>,
    /// At least this many matching events.
    pub min: u64,
}

impl ExpectDrop {
    pub const fn new(reason: &'static str, function: &'static str, netns: &'static str) -> Self {
        ExpectDrop {
            reason,
            function,
            netns,
            dev: None,
            proto: None,
            dst: None,
            dport: None,
            min: 1,
        }
    }
    pub const fn dev(mut self, d: &'static str) -> Self {
        self.dev = Some(d);
        self
    }
    pub const fn flow(mut self, proto: &'static str, dst: &'static str, dport: Option<u16>) -> Self {
        self.proto = Some(proto);
        self.dst = Some(dst);
        self.dport = dport;
        self
    }

    /// Does `e`, seen in the namespace with inode `ns_inode`, match?
    pub fn matches(&self, e: &DropEvent, ns_inode: u32) -> bool {
        e.reason == self.reason
            && e.location.symbol == self.function
            && e.netns == ns_inode
            && self.dev.is_none_or(|d| e.dev.as_deref() == Some(d))
            && self.proto.is_none_or(|p| e.flow.proto.as_deref() == Some(p))
            && self
                .dst
                .is_none_or(|d| e.flow.dst.map(|a| a.to_string()).as_deref() == Some(d))
            && self.dport.is_none_or(|p| e.flow.dport == Some(p))
    }
}

impl fmt::Display for ExpectDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {} in {}", self.reason, self.function, self.netns)?;
        if let Some(d) = self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(p) = self.proto {
            write!(f, " {p}")?;
        }
        if let Some(d) = self.dst {
            write!(f, " to {d}")?;
        }
        if let Some(p) = self.dport {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}
