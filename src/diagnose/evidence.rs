//! Live state gathered for a finding, in the namespace where the packet
//! died: who is bound to the port, where the reverse path points, what the
//! route lookup says. Best effort: a collector that cannot answer adds a
//! line saying so instead of failing the explanation.
use std::net::{IpAddr, SocketAddr};

use crate::event::DropEvent;
use crate::state::route::{self, Flow, Route, RpVerdict};
use crate::state::sockets::{self, Proto};
use crate::state::sysctl;

/// Evidence lines for the group whose sample event is `e`.
pub fn gather(e: &DropEvent) -> Vec<String> {
    let ino = e.netns;
    let proto = match e.flow.proto.as_deref() {
        Some("udp") => Some(Proto::Udp),
        Some("tcp") => Some(Proto::Tcp),
        _ => None,
    };
    let dst = e
        .flow
        .dst
        .zip(e.flow.dport)
        .map(|(a, p)| SocketAddr::new(a, p));
    let src = e
        .flow
        .src
        .zip(e.flow.sport)
        .map(|(a, p)| SocketAddr::new(a, p));
    let mut out = Vec::new();
    match e.reason.as_str() {
        "NO_SOCKET" => {
            if let (Some(p), Some(d)) = (proto, dst) {
                match sockets::explain_no_socket(ino, p, d) {
                    Ok(Some(why)) => out.push(why),
                    Ok(None) => out.push(format!(
                        "no socket in this netns is bound to {p} port {} on any address (sock_diag)",
                        d.port()
                    )),
                    Err(err) => out.push(format!("socket lookup failed: {err}")),
                }
            }
        }
        "SOCKET_RCVBUFF" => {
            if let (Some(p), Some(d), Some(s)) = (proto, dst, src) {
                match sockets::socket_for(ino, p, d, s) {
                    Ok(Some(sock)) => out.push(format!("receiving socket: {sock}")),
                    Ok(None) => out.push("the receiving socket is gone".into()),
                    Err(err) => out.push(format!("socket lookup failed: {err}")),
                }
            }
        }
        "IP_RPFILTER" => {
            if let (Some(s), Some(dev)) = (e.flow.src, e.dev.as_deref()) {
                match route::reverse_path(ino, s, dev) {
                    Ok(rp) => out.push(reverse_path_line(
                        s,
                        dev,
                        &rp.route,
                        rp.rp_filter,
                        rp.verdict,
                    )),
                    Err(err) => out.push(format!("reverse-path lookup failed: {err}")),
                }
            }
        }
        "IP_INNOROUTES" | "IP_INADDRERRORS" | "NOT_SPECIFIED"
            if e.location.symbol == "ip_error" || e.reason != "NOT_SPECIFIED" =>
        {
            if let Some(d) = e.flow.dst {
                out.push(route_line(ino, d, e.flow.src, e.dev.as_deref()));
            }
            if e.reason == "IP_INADDRERRORS" {
                let key = if e.flow.l3 == "ipv6" {
                    "net.ipv6.conf.all.forwarding"
                } else {
                    "net.ipv4.ip_forward"
                };
                if let Ok(v) = sysctl::read(ino, key) {
                    out.push(format!("{key} = {} in this netns", v.trim()));
                }
            }
        }
        _ => {}
    }
    out
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
