//! Link-layer drops: a frame addressed to another MAC (OTHERHOST) and a
//! bridge port that STP keeps from forwarding. Both are named from the
//! captured Ethernet header and the devices' live state: the receiving
//! device's address, the sender's neighbour entry, the port's STP state
//! and the bridge timer it waits for.
use super::clues::{in_ns, Clues, Subject};
use super::kb::specific;
use crate::event::DropEvent;
use crate::state::link::{self, mac_string, port_state_name};
use crate::state::{addr, neigh, ns};

/// OTHERHOST: the frame's destination MAC against the device's, and, when
/// the IP destination is ours, the sender's neighbour entry that sent it to
/// the wrong MAC.
pub(super) fn otherhost(e: &DropEvent, c: &mut Clues) {
    let Some(dev) = e.dev.as_deref() else { return };
    let Some(to) = e.flow.eth_dst else {
        return c
            .line("the frame's Ethernet header was not captured: its destination MAC is unknown");
    };
    let dev_mac = match link::with_master(e.netns, dev) {
        Ok(Some((l, _))) => l.mac,
        Ok(None) => return c.line(format!("{dev} is gone from the namespace")),
        Err(err) => return c.line(format!("link lookup failed: {err}")),
    };
    let Some(dev_mac) = dev_mac else { return };
    let (to_s, dev_s) = (mac_string(&to), mac_string(&dev_mac));
    c.line(format!(
        "the frame was sent to MAC {to_s}, but {dev} is {dev_s}: the kernel treats it as \
         another host's frame and drops it before IP"
    ));
    let Some(dst) = e.flow.dst else { return };
    let ours = ns::run_in(e.netns, || addr::addrs_here(libc::AF_UNSPEC))
        .ok()
        .and_then(Result::ok)
        .is_some_and(|v| v.iter().any(|a| a.addr == dst));
    if !ours {
        c.line(format!(
            "{dst} is not an address of this namespace: a frame for someone else (a flooding \
             switch, a shared segment)"
        ));
        return;
    }
    c.line(format!(
        "{dst} is this namespace's address: the sender resolved it to the wrong MAC"
    ));
    let Some(sender) = super::sender::describe(e, c) else {
        c.fix(format!(
            "on the sender of {}: ip neigh del {dst} dev <dev> (or ip neigh replace {dst} lladdr \
             {dev_s} dev <dev>); from here announce the right MAC: {}arping -U -c 2 -I {dev} {dst}",
            e.flow.src.map(|s| s.to_string()).unwrap_or_default(),
            in_ns(e.netns_name.as_deref())
        ));
        return;
    };
    let entry = neigh::lookup(sender.netns, &sender.dev, dst);
    let n = match entry {
        Ok(Some(n)) => n,
        Ok(None) => {
            return c.line(format!(
                "no neighbour entry for {dst} on {} in {} any more",
                sender.dev, sender.netns_name
            ))
        }
        Err(err) => return c.line(format!("neighbour lookup in the sender failed: {err}")),
    };
    let Some(ll) = n.lladdr.as_deref().map(mac_string) else {
        return;
    };
    let permanent = n.state.has(neigh::NudState::PERMANENT);
    c.line(format!(
        "the sender's neighbour entry: {dst} lladdr {ll} dev {} {} in netns {}{}",
        sender.dev,
        n.state,
        sender.netns_name,
        if permanent {
            " (static: ARP never corrects it)"
        } else {
            ""
        }
    ));
    if n.lladdr.as_deref() == Some(&dev_mac[..]) {
        c.line("it points at this device now: the entry was corrected since the drop");
        return;
    }
    c.subjects.push(Subject::WrongNeighbour {
        netns: sender.netns_name.clone(),
        dev: sender.dev.clone(),
        addr: dst.to_string(),
        lladdr: ll.clone(),
        state: n.state.to_string(),
        want: dev_s.clone(),
    });
    c.cause = Some(specific::OTHERHOST_WRONG_NEIGHBOUR);
    let sns = in_ns(Some(&sender.netns_name));
    let sdev = &sender.dev;
    let keep = if permanent {
        format!(
            " nud permanent  (or delete the static entry and let ARP resolve it: {sns}ip neigh \
             del {dst} dev {sdev})"
        )
    } else {
        String::new()
    };
    c.fix(format!(
        "{sns}ip neigh replace {dst} lladdr {dev_s} dev {sdev}{keep}"
    ));
    if !permanent {
        c.fix(format!(
            "{sns}ip neigh flush to {dst} dev {sdev}; or announce the new MAC from here: {}arping -U -c 2 -I {dev} {dst}",
            in_ns(e.netns_name.as_deref())
        ));
    }
}

/// A bridge's ingress drop that the port's STP state may explain: the
/// reason itself, or NOT_SPECIFIED at br_handle_frame on kernels before
/// the reason existed (6.12); the port's live state decides either way.
pub fn stp_drop(e: &DropEvent) -> bool {
    e.reason == "BRIDGE_INGRESS_STP_STATE"
        || (e.reason == "NOT_SPECIFIED"
            && super::refine::normalize_function(&e.location.symbol) == "br_handle_frame")
}

/// BRIDGE_INGRESS_STP_STATE: the port the frame came in on, its STP state
/// and the timer it waits for.
pub(super) fn stp(e: &DropEvent, c: &mut Clues) {
    let Some(dev) = e.dev.as_deref() else { return };
    let (port, bridge) = match link::with_master(e.netns, dev) {
        Ok(Some((p, Some(b)))) => (p, b),
        Ok(_) => return c.line(format!("{dev} is no bridge port any more")),
        Err(err) => return c.line(format!("link lookup failed: {err}")),
    };
    let (Some(p), Some(b)) = (port.port, bridge.bridge) else {
        return c.line(format!("{dev}: the kernel did not report its STP state"));
    };
    let state = port_state_name(p.state);
    let ns = in_ns(e.netns_name.as_deref());
    let br = &bridge.name;
    let stp = match b.stp_state {
        0 => "off",
        1 => "kernel STP",
        _ => "user-space STP",
    };
    let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    c.line(format!(
        "bridge port {dev} of {br} is {state} ({stp}; forward_delay {}, hello_time {}, max_age \
         {}): frames arriving on it are dropped until it forwards",
        secs(b.forward_delay_ms),
        secs(b.hello_time_ms),
        secs(b.max_age_ms)
    ));
    let left = p.forward_delay_timer_ms.unwrap_or(0);
    // Listening waits forward_delay, then learning waits it again.
    let wait = match p.state {
        1 => Some(left + b.forward_delay_ms),
        2 => Some(left),
        _ => None,
    };
    if let Some(w) = wait {
        c.line(format!(
            "{dev}'s forward-delay timer has {} left; it forwards in about {} (listening and \
             learning each last forward_delay)",
            secs(left),
            secs(w)
        ));
    }
    c.subjects.push(Subject::BridgePort {
        bridge: br.clone(),
        port: dev.to_string(),
        state: state.to_string(),
        forward_delay_ms: b.forward_delay_ms,
        timer_ms: p.forward_delay_timer_ms,
    });
    match p.state {
        1 | 2 => {
            c.cause = Some(specific::BRIDGE_PORT_STP_WAIT);
            c.fix(format!(
                "wait about {} ms: {dev} forwards once its forward-delay timer runs out",
                wait.unwrap_or(0)
            ));
            c.fix(format!(
                "no loop is possible through {br}? turn STP off: {ns}ip link set {br} type bridge stp_state 0"
            ));
            c.fix(format!(
                "keep STP, wait less: {ns}ip link set {br} type bridge forward_delay 200  (2 s, the minimum; in 1/100 s)"
            ));
        }
        4 => {
            c.fix(format!(
                "STP blocks {dev} because {br} has another path to the root bridge (a loop): \
                 remove the redundant link, or raise the other port's cost \
                 ({ns}bridge link set dev <port> cost <n>) if {dev} should be the one forwarding"
            ));
        }
        0 => c.fix(format!(
            "{dev} is disabled: bring it up ({ns}ip link set {dev} up) and check its carrier"
        )),
        _ => {}
    }
}
