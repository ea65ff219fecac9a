//! Live state gathered for a drop group right when its first drop is seen
//! (the client socket of a timed-out query, a neighbour entry, a sysctl may
//! be gone a second later), in the namespace where the packet died: who is
//! bound to the port, where the reverse path points, what the route lookup
//! says. Each collector may pick an evidence-driven diagnosis
//! (`kb::specific`). Best effort: a collector that cannot answer adds a line
//! saying so instead of failing the explanation.
use std::net::{IpAddr, SocketAddr};

use super::clues::{in_ns, Clues, Subject};
use super::kb::specific;
use super::refine;
use crate::event::DropEvent;
use crate::state::conntrack::{self, Tuple};
use crate::state::neigh;
use crate::state::route::{self, Flow, Route, RpVerdict};
use crate::state::sockets::{self, Proto, SockInfo};
use crate::state::sysctl;

/// Receive buffers this close to INT_MAX overflow `rcvbuf + truesize` on
/// kernels without the 2020 fix (and pin memory on every kernel).
pub const RCVBUF_DANGER: u32 = i32::MAX as u32 - (16 << 20);

/// Clues for the group whose first event is `e`.
pub fn gather(e: &DropEvent) -> Clues {
    let mut c = Clues::default();
    match e.reason {
        _ if super::martian::applies(e) => super::martian::gather(e, &mut c),
        "TCP_FLAGS" => super::tcpflags::gather(e, &mut c),
        "OTHERHOST" => super::l2::otherhost(e, &mut c),
        _ if super::l2::stp_drop(e) => super::l2::stp(e, &mut c),
        "NO_SOCKET" => {
            no_socket(e, &mut c);
            super::tcpflags::stray(e, &mut c)
        }
        "SOCKET_RCVBUFF" => rcvbuf(e, &mut c),
        "IP_RPFILTER" => rp_filter(e, &mut c),
        "NEIGH_QUEUEFULL" | "NEIGH_FAILED" => neighbour(e, &mut c),
        "TCP_LISTEN_OVERFLOW" | "TCP_REQQFULLDROP" => listen_queue(e, &mut c),
        "IP_INNOROUTES" | "IP_INADDRERRORS" | "NOT_SPECIFIED"
            if e.location.symbol == "ip_error" || e.reason != "NOT_SPECIFIED" =>
        {
            routing(e, &mut c)
        }
        _ => {}
    }
    super::tcprog::gather(e, &mut c);
    sysctls(e, &mut c);
    c
}

/// Sysctls that bear on `reason`, besides those a collector above already
/// judged; `{dev}` is the drop's device.
pub fn sysctls_for(reason: &str) -> &'static [&'static str] {
    match reason {
        "SOCKET_RCVBUFF" | "PROTO_MEM" => &[
            "net.core.rmem_default",
            "net.core.rmem_max",
            "net.ipv4.udp_mem",
        ],
        "IP_RPFILTER" => &[
            "net.ipv4.conf.{dev}.log_martians",
            "net.ipv4.conf.all.log_martians",
        ],
        "CPU_BACKLOG" => &["net.core.netdev_max_backlog"],
        "TCP_LISTEN_OVERFLOW" | "TCP_REQQFULLDROP" => &[
            "net.core.somaxconn",
            "net.ipv4.tcp_max_syn_backlog",
            "net.ipv4.tcp_syncookies",
        ],
        "NF_CONNTRACK" | "NETFILTER_DROP" => &[
            "net.netfilter.nf_conntrack_count",
            "net.netfilter.nf_conntrack_max",
            "net.netfilter.nf_conntrack_checksum",
        ],
        "IPV6DISABLED" | "IPV6_NDISC_BAD_CODE" | "IPV6_NDISC_NS_OTHERHOST" => &[
            "net.ipv6.conf.{dev}.disable_ipv6",
            "net.ipv6.conf.{dev}.accept_ra",
            "net.ipv6.conf.{dev}.accept_dad",
        ],
        _ => &[],
    }
}

fn sysctls(e: &DropEvent, c: &mut Clues) {
    let dev = e.dev.as_deref().unwrap_or("all");
    let vals: Vec<String> = sysctls_for(e.reason)
        .iter()
        .map(|k| k.replace("{dev}", dev))
        .filter_map(|k| {
            let v = sysctl::read(e.netns, &k).ok()?;
            Some(format!(
                "{k}={}",
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        })
        .collect();
    if !vals.is_empty() {
        c.line(format!("sysctls in this netns: {}", vals.join(", ")));
    }
}

fn proto_of(e: &DropEvent) -> Option<Proto> {
    match e.flow.proto.as_deref() {
        Some("udp") => Some(Proto::Udp),
        Some("tcp") => Some(Proto::Tcp),
        _ => None,
    }
}

fn endpoints(e: &DropEvent) -> Option<(SocketAddr, SocketAddr)> {
    let src = SocketAddr::new(e.flow.src?, e.flow.sport?);
    let dst = SocketAddr::new(e.flow.dst?, e.flow.dport?);
    Some((src, dst))
}

fn no_socket(e: &DropEvent, c: &mut Clues) {
    let (Some(p), Some((src, dst))) = (proto_of(e), endpoints(e)) else {
        return;
    };
    // With syncookies the kernel keeps no request socket: the final ACK
    // must create the connection, and a full accept queue makes that fail
    // as NO_SOCKET in cookie_v4_check. A listener *is* there: the diagnosis
    // is the accept-queue overflow, never "nothing is listening".
    let syncookie = refine::refine("NO_SOCKET", &e.location.symbol)
        .is_some_and(|r| r.id == refine::SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL.id);
    if syncookie && p == Proto::Tcp {
        c.cause = Some(refine::SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL.entry());
        return match sockets::listeners_on(e.netns, Proto::Tcp, dst.port()) {
            Ok(ls) => listener_evidence(e.netns, e.netns_name.as_deref(), &ls, c),
            Err(err) => c.line(format!("socket lookup failed: {err}")),
        };
    }
    let ns = in_ns(e.netns_name.as_deref());
    c.subjects.push(Subject::Port {
        proto: p.to_string(),
        port: dst.port(),
    });
    let on_port = match sockets::listeners_on(e.netns, p, dst.port()) {
        Ok(v) => v,
        Err(err) => {
            c.line(format!("socket lookup failed: {err}"));
            return;
        }
    };
    if on_port.is_empty() {
        c.line(format!(
            "no socket in this netns is bound to {p} port {} on any address (sock_diag, at the first drop)",
            dst.port()
        ));
        c.cause = Some(match p {
            Proto::Udp => specific::NO_SOCKET_UDP,
            Proto::Tcp => specific::NO_SOCKET_TCP,
        });
        let flag = if p == Proto::Udp { "-ulpn" } else { "-ltnp" };
        c.fix(format!(
            "start the service on {p} port {} in this namespace (check: {ns}ss {flag} 'sport = :{}')",
            dst.port(),
            dst.port()
        ));
        return;
    }
    // A socket connected to another peer on exactly this port: the packet
    // is a reply from an address the socket never talked to.
    if let Some(s) = on_port
        .iter()
        .find(|s| s.remote.port() != 0 && s.accepts(dst, Some(s.remote)) && s.remote != src)
    {
        nat_mismatch(p, s, src, dst, c);
        return;
    }
    if let Some(why) = sockets::explain_no_socket_in(&on_port, p, dst) {
        c.line(why);
        c.cause = Some(specific::SOCKET_BOUND_ELSEWHERE);
        for s in &on_port {
            c.subjects.push(socket_subject(s));
        }
    }
}

/// What bears on a listener's accept-queue overflow: each listener with its
/// queue against its backlog, the sysctls that cap the backlog, and the fix
/// sized from them. Shared by the SYN-cookie drop and the counter-only
/// finding (`diagnose::counters`), which are one incident.
pub(super) fn listener_evidence(
    ino: u32,
    netns_name: Option<&str>,
    listeners: &[SockInfo],
    c: &mut Clues,
) {
    let ns = in_ns(netns_name);
    if listeners.is_empty() {
        c.line("no listener with a full accept queue was seen (it drained, or closed)");
    }
    for l in listeners {
        let (q, max) = l.accept_queue().unwrap_or((0, 0));
        let state = if q > max { "full" } else { "not full now" };
        c.line(format!(
            "listener: {l}: {q} connection(s) wait for accept() with a backlog of {max} ({state})"
        ));
        c.subjects.push(socket_subject(l));
    }
    let read = |k: &str| {
        sysctl::read(ino, k)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let keys = [
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_syncookies",
    ];
    let vals: Vec<String> = keys
        .iter()
        .filter_map(|k| read(k).map(|v| format!("{k}={v}")))
        .collect();
    if !vals.is_empty() {
        c.line(format!(
            "sysctls in this netns: {} (listen()'s backlog is capped by somaxconn)",
            vals.join(", ")
        ));
    }
    let somaxconn = read("net.core.somaxconn");
    if let Some(v) = &somaxconn {
        c.subjects.push(Subject::Sysctl {
            name: "net.core.somaxconn".into(),
            value: v.clone(),
        });
    }
    let cap: u64 = somaxconn.and_then(|v| v.parse().ok()).unwrap_or(4096);
    for l in listeners {
        let (_, max) = l.accept_queue().unwrap_or((0, 0));
        let want = (u64::from(max) * 4).clamp(1024, 65535);
        let owner = l
            .owner
            .as_ref()
            .map(|o| format!("{} [{}]", o.comm, o.pid))
            .unwrap_or_else(|| "the server".into());
        let raise = if want > cap {
            format!("{ns}sysctl -w net.core.somaxconn={want}, then ")
        } else {
            String::new()
        };
        c.fix(format!(
            "{raise}give {owner} on {} a listen() backlog of {want} (now {max}) and make it \
             accept() faster",
            l.local
        ));
    }
}

fn socket_subject(s: &SockInfo) -> Subject {
    Subject::Socket {
        proto: s.proto.to_string(),
        local: s.local.to_string(),
        remote: s.remote.to_string(),
        rcvbuf: s.mem.map(|m| m.rcvbuf),
    }
}

fn nat_mismatch(p: Proto, s: &SockInfo, src: SocketAddr, dst: SocketAddr, c: &mut Clues) {
    c.cause = Some(specific::NAT_TUPLE_MISMATCH);
    c.subjects.push(socket_subject(s));
    let owner = s
        .owner
        .as_ref()
        .map(|o| format!(" ({} [{}])", o.comm, o.pid))
        .unwrap_or_default();
    c.line(format!(
        "{p} socket {}{owner} is connected to {}, but this packet comes from {src}: \
         it is a reply from an address the socket never sent to",
        s.local, s.remote
    ));
    // The NAT that should have rewritten the reply lives on some box on
    // the path: look for a conntrack entry of this client endpoint in every
    // namespace netwhy can name.
    let observed = Tuple::new(p.number(), src.ip(), src.port(), dst.ip(), dst.port());
    let mut found = false;
    let names = crate::kernel::netns::NetnsNames::scan();
    for (ino, name) in names.iter() {
        let Ok(entries) = conntrack::entries_touching(ino, p.number(), dst.ip(), dst.port()) else {
            continue;
        };
        for en in entries
            .iter()
            .filter(|en| en.has(conntrack::status::DST_NAT) || en.has(conntrack::status::SRC_NAT))
        {
            if let Some(why) = conntrack::explain_nat_mismatch(en, &observed) {
                found = true;
                c.line(format!("conntrack in {name}: {why}"));
                c.subjects.push(Subject::Conntrack {
                    netns: ino,
                    orig: en.orig.to_string(),
                    reply: en.reply.to_string(),
                });
                c.fix(format!(
                    "make the server answer from {} (the address the client was sent to), or route \
                     the reply back through the NAT in {name}",
                    crate::state::conntrack::endpoint(en.reply.src, en.reply.sport)
                ));
            }
        }
    }
    if !found {
        c.line(format!(
            "no conntrack entry with NAT for {dst} in any named namespace: the entry that should \
             have un-NATed the reply was flushed or expired, or the NAT box is not visible here"
        ));
        c.fix(format!(
            "keep the conntrack entry alive until the reply: no conntrack -F/-D under live \
             traffic (network agents, proxy resyncs), nf_conntrack_max above the entries in use, \
             a UDP timeout longer than the server's answer; then the reply is un-NATed to come \
             from {} (the socket's peer)",
            s.remote
        ));
    }
}

/// The listener's accept queue against its backlog (what `ss -lt` shows).
fn listen_queue(e: &DropEvent, c: &mut Clues) {
    let Some(port) = e.flow.dport else { return };
    match sockets::listeners_on(e.netns, Proto::Tcp, port) {
        Ok(ls) if ls.is_empty() => c.line(format!("no TCP listener on port {port} any more")),
        Ok(ls) => {
            for l in ls {
                c.line(format!("listener: {l}"));
                c.subjects.push(socket_subject(&l));
            }
        }
        Err(err) => c.line(format!("socket lookup failed: {err}")),
    }
}

fn rcvbuf(e: &DropEvent, c: &mut Clues) {
    let (Some(p), Some((src, dst))) = (proto_of(e), endpoints(e)) else {
        return;
    };
    let s = match sockets::socket_for(e.netns, p, dst, src) {
        Ok(Some(s)) => s,
        Ok(None) => return c.line("the receiving socket is gone"),
        Err(err) => return c.line(format!("socket lookup failed: {err}")),
    };
    c.line(format!("receiving socket: {s}"));
    c.subjects.push(socket_subject(&s));
    if let Some(m) = s.mem {
        if m.rcvbuf >= RCVBUF_DANGER {
            c.cause = Some(specific::UDP_RMEM_OVERFLOW);
        } else if p == Proto::Udp {
            c.cause = Some(refine::UDP_RCVBUF_FULL.entry());
            c.fix(format!(
                "give the socket a bigger buffer: raise {}sysctl -w net.core.rmem_max={} and set \
                 SO_RCVBUF in the application (now {} bytes), or read the socket faster",
                in_ns(e.netns_name.as_deref()),
                (m.rcvbuf as u64 * 4).clamp(4 << 20, 64 << 20),
                m.rcvbuf
            ));
        }
    }
}

fn rp_filter(e: &DropEvent, c: &mut Clues) {
    let (Some(s), Some(dev)) = (e.flow.src, e.dev.as_deref()) else {
        return;
    };
    let rp = match route::reverse_path(e.netns, s, dev) {
        Ok(rp) => rp,
        Err(err) => return c.line(format!("reverse-path lookup failed: {err}")),
    };
    c.line(reverse_path_line(
        s,
        dev,
        &rp.route,
        rp.rp_filter,
        rp.verdict,
    ));
    let (all, d, _) = rp.rp_filter;
    let key = sysctl::dev_key("net.ipv4.conf", dev, "rp_filter");
    c.subjects.push(Subject::Sysctl {
        name: key.clone(),
        value: d.to_string(),
    });
    let ns = in_ns(e.netns_name.as_deref());
    match rp.verdict {
        RpVerdict::FailStrict => {
            c.cause = Some(specific::RP_FILTER_STRICT);
            // The effective mode is max(all, dev): loosen both that are strict.
            let mut keys = vec![format!("{key}=2")];
            if all == 1 {
                keys.push("net.ipv4.conf.all.rp_filter=2".into());
            }
            c.fix(format!("{ns}sysctl -w {}", keys.join(" ")));
        }
        RpVerdict::FailLoose => c.cause = Some(specific::RP_FILTER_NO_ROUTE),
        _ => {}
    }
}

fn neighbour(e: &DropEvent, c: &mut Clues) {
    let Some(dst) = e.flow.dst else { return };
    let mut f = Flow::to(dst);
    if let Some(s) = e.flow.src {
        f = f.from(s);
    }
    let (hop, dev) = match route::get(e.netns, &f) {
        Ok(r) => (r.gateway.unwrap_or(dst), r.dev.or_else(|| e.dev.clone())),
        Err(_) => (dst, e.dev.clone()),
    };
    let Some(dev) = dev else { return };
    match neigh::lookup(e.netns, &dev, hop) {
        Ok(Some(n)) => {
            c.line(format!("neighbour {hop} on {dev}: {}", n.state));
            c.subjects.push(Subject::Neighbour {
                addr: hop.to_string(),
                dev: dev.clone(),
                state: n.state.to_string(),
            });
            if n.state.unresolved() {
                c.cause = Some(specific::NEIGH_FAILED);
                c.fix(format!(
                    "{hop} does not answer ARP/NDP on {dev}: bring it up, or fix the route so \
                     {dst} is reached through a gateway that answers ({}ip route get {dst})",
                    in_ns(e.netns_name.as_deref())
                ));
            }
        }
        Ok(None) => c.line(format!(
            "no neighbour entry for {hop} on {dev} (already expired)"
        )),
        Err(err) => c.line(format!("neighbour lookup failed: {err}")),
    }
}

fn routing(e: &DropEvent, c: &mut Clues) {
    if let Some(d) = e.flow.dst {
        c.line(route_line(e.netns, d, e.flow.src, e.dev.as_deref()));
    }
    if e.reason == "IP_INADDRERRORS" {
        let key = if e.flow.l3 == "ipv6" {
            "net.ipv6.conf.all.forwarding"
        } else {
            "net.ipv4.ip_forward"
        };
        if let Ok(v) = sysctl::read(e.netns, key) {
            let v = v.trim().to_string();
            c.line(format!("{key} = {v} in this netns"));
            if v == "0" {
                c.cause = Some(specific::FORWARDING_DISABLED);
                c.fix(format!(
                    "{}sysctl -w {key}=1",
                    in_ns(e.netns_name.as_deref())
                ));
            }
            c.subjects.push(Subject::Sysctl {
                name: key.into(),
                value: v,
            });
        }
    }
}

fn route_line(ino: u32, dst: IpAddr, src: Option<IpAddr>, dev: Option<&str>) -> String {
    let mut f = Flow::to(dst);
    if let Some(s) = src {
        f = f.from(s);
    }
    if let Some(d) = dev {
        f = f.iif(d);
    }
    match route::get(ino, &f) {
        Ok(r) => format!("route lookup for {dst} here: {}", describe(&r)),
        Err(err) => format!("route lookup for {dst} failed: {err}"),
    }
}

fn describe(r: &Route) -> String {
    let mut s = format!("{:?}", r.kind).to_lowercase();
    if let Some((a, len)) = r.prefix {
        s += &format!(" {a}/{len}");
    }
    if let Some(g) = r.gateway {
        s += &format!(" via {g}");
    }
    if let Some(d) = &r.dev {
        s += &format!(" dev {d}");
    }
    if let Some(t) = r.table {
        s += &format!(" table {t}");
    }
    s
}

fn reverse_path_line(
    src: IpAddr,
    dev: &str,
    back: &Route,
    rp: (i64, i64, i64),
    v: RpVerdict,
) -> String {
    let (all, d, eff) = rp;
    let verdict = match v {
        RpVerdict::Off => "rp_filter is off",
        RpVerdict::Pass => "the check passes now (state changed since the drop?)",
        RpVerdict::FailStrict => {
            "strict mode: the reply would leave by another interface, so the packet is dropped"
        }
        RpVerdict::FailLoose => "loose mode: there is no usable route back at all",
    };
    format!(
        "packet from {src} came in on {dev}; a reply would go {}; rp_filter all={all} {dev}={d} effective={eff}: {verdict}",
        describe(back)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_their_sysctls() {
        assert!(sysctls_for("SOCKET_RCVBUFF").contains(&"net.core.rmem_max"));
        assert!(sysctls_for("TCP_LISTEN_OVERFLOW").contains(&"net.core.somaxconn"));
        assert!(sysctls_for("IP_RPFILTER")
            .iter()
            .any(|k| k.contains("{dev}")));
        assert!(sysctls_for("NO_SOCKET").is_empty());
        assert!(RCVBUF_DANGER > (1 << 30) && RCVBUF_DANGER < i32::MAX as u32);
    }
}
