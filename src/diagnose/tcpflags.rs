//! TCP_FLAGS: the segment's flags, decoded from the captured header, judged
//! against the socket they hit. Some combinations no TCP stack ever sends
//! (SYN+FIN, no flag at all, FIN without ACK): a scanner, a fuzzer or a
//! device that rewrites headers made them. A plain ACK that reaches a
//! listener belongs to a connection this host does not have (any more).
use std::net::SocketAddr;

use super::clues::{in_ns, Clues, Subject};
use super::kb::specific;
use crate::event::DropEvent;
use crate::state::sockets::{self, Proto};

/// What the flags are, by the rules every TCP stack follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A combination no stack sends, with the rule it breaks.
    NeverValid(&'static str),
    /// An ACK (no SYN, RST or FIN) that needs a connection.
    NeedsConnection,
    /// Valid by itself: the state made it wrong.
    StateDependent,
}

/// Judges `flags` as the packet parser prints them ("FS", "A", "none").
pub fn judge(flags: &str) -> Verdict {
    let has = |c: char| flags.contains(c);
    let (fin, syn, rst, ack) = (has('F'), has('S'), has('R'), has('A'));
    if flags == "none" {
        Verdict::NeverValid("no flag at all (a null scan)")
    } else if syn && fin {
        Verdict::NeverValid("SYN and FIN together: open and close in one segment")
    } else if syn && rst {
        Verdict::NeverValid("SYN and RST together")
    } else if fin && has('P') && has('U') && !ack {
        Verdict::NeverValid("FIN+PSH+URG without ACK (an Xmas scan)")
    } else if fin && !ack {
        Verdict::NeverValid("FIN without ACK: every segment after the SYN carries ACK")
    } else if ack && !syn && !rst && !fin {
        Verdict::NeedsConnection
    } else {
        Verdict::StateDependent
    }
}

pub(super) fn gather(e: &DropEvent, c: &mut Clues) {
    let Some(flags) = e.flow.tcp_flags.clone() else {
        return c.line("the segment's TCP header was not captured: its flags are unknown");
    };
    let (Some(s), Some(d), Some(sp), Some(dp)) =
        (e.flow.src, e.flow.dst, e.flow.sport, e.flow.dport)
    else {
        return;
    };
    let (src, dst) = (SocketAddr::new(s, sp), SocketAddr::new(d, dp));
    let hit = match sockets::socket_for(e.netns, Proto::Tcp, dst, src) {
        Ok(s) => s,
        Err(err) => {
            c.line(format!("socket lookup failed: {err}"));
            None
        }
    };
    let state = hit.as_ref().map_or("none", |s| s.state_name());
    match &hit {
        Some(s) => c.line(format!("it hit {s} (state {state})")),
        None => c.line(format!("no socket matches {dst} now")),
    }
    let verdict = judge(&flags);
    let why = match verdict {
        Verdict::NeverValid(rule) => format!("invalid in any state: {rule}"),
        Verdict::NeedsConnection => {
            "a bare ACK: only a connection in progress can take it".to_string()
        }
        Verdict::StateDependent => format!("not acceptable in state {state}"),
    };
    c.line(format!("segment {src} -> {dst} flags [{flags}]: {why}"));
    c.subjects.push(Subject::TcpSegment {
        flags: flags.clone(),
        src: src.to_string(),
        dst: dst.to_string(),
        socket: state.to_string(),
    });
    if let Some(s) = &hit {
        c.subjects.push(Subject::Socket {
            proto: s.proto.to_string(),
            local: s.local.to_string(),
            remote: s.remote.to_string(),
            rcvbuf: s.mem.map(|m| m.rcvbuf),
        });
    }
    let sender = super::sender::describe(e, c);
    let from = sender
        .as_ref()
        .map(|o| format!("{} in netns {}", o.dev, o.netns_name))
        .unwrap_or_else(|| s.to_string());
    let listener = hit.as_ref().is_some_and(|h| h.is_listener());
    match verdict {
        Verdict::NeverValid(_) => {
            c.cause = Some(specific::TCP_FLAGS_NEVER_VALID);
            c.fix(format!(
                "nothing to change on the receiver (the kernel drops such segments by design): \
                 find what crafts them behind {from} (a port scanner, a fuzzer, a raw-socket \
                 tool, a middlebox or NIC rewriting TCP headers) and stop or fix it"
            ));
            if let Some(o) = &sender {
                c.fix(format!(
                    "to name the program: {ns}ss -w -0 -p  (raw and packet sockets with their \
                     processes); {ns}tcpdump -eni {} tcp and host {d}",
                    o.dev,
                    ns = in_ns(Some(&o.netns_name)),
                ));
            }
        }
        Verdict::NeedsConnection if listener => {
            c.cause = Some(specific::TCP_ACK_TO_LISTENER);
            c.fix(format!(
                "{from} believes it has a connection {src} -> {dst} that this listener does \
                 not: the server restarted or its connection was reset; make the client \
                 reconnect (it gets a reset), and look for a NAT/conntrack entry or a load \
                 balancer that moved the flow to this host"
            ));
        }
        _ => {}
    }
}

/// NO_SOCKET for a TCP segment that is no connection attempt (a FIN, an
/// ACK, data): says so, since "nothing listens" then is only half the story.
pub(super) fn stray(e: &DropEvent, c: &mut Clues) {
    let lookup = matches!(e.location.symbol.as_str(), "tcp_v4_rcv" | "tcp_v6_rcv");
    let Some(flags) = e.flow.tcp_flags.as_deref().filter(|_| lookup) else {
        return;
    };
    if flags.contains('S') {
        return;
    }
    let what = if flags.contains('R') {
        "a reset for a connection this host does not have (never answered: harmless)"
    } else {
        "no connection attempt: the peer still sends on a connection this host does not \
         have (closed, timed out, restarted), or a scanner probes"
    };
    c.line(format!("segment flags [{flags}]: {what}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_combinations() {
        assert!(matches!(judge("FS"), Verdict::NeverValid(r) if r.contains("SYN and FIN")));
        assert!(matches!(judge("none"), Verdict::NeverValid(_)));
        assert!(matches!(judge("FPU"), Verdict::NeverValid(r) if r.contains("Xmas")));
        assert!(matches!(judge("F"), Verdict::NeverValid(_)));
        assert!(matches!(judge("SR"), Verdict::NeverValid(_)));
        assert_eq!(judge("A"), Verdict::NeedsConnection);
        assert_eq!(judge("PA"), Verdict::NeedsConnection);
        assert_eq!(judge("S"), Verdict::StateDependent);
        assert_eq!(judge("FA"), Verdict::StateDependent);
        assert_eq!(judge("SA"), Verdict::StateDependent);
    }
}
