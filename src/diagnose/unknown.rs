//! What netwhy can still say about a drop reason its knowledge base has
//! never seen (a kernel newer than netwhy, a vendor patch, a subsystem
//! code like `OPENVSWITCH:0x3`): the words of the name, the part of the
//! stack the name and the dropping function point to, and where in the
//! kernel sources the reason is documented. Kernels add reasons every few
//! releases, so this path is a normal one, not an error: it must always
//! produce text and never fail.
use std::borrow::Cow;

use serde::Serialize;

/// The diagnosis id of every finding about an unknown reason (the id of
/// [`super::kb::FALLBACK`], defined there so the table needs nothing of
/// this module). Stable: JSON consumers and the lab match on it.
pub const ID: super::Id = super::kb::UNKNOWN_ID;

/// Longest hint for the `drops` table, like the knowledge base's.
const HINT_MAX: usize = super::HINT_MAX;

/// A part of the network stack, as far as a name can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Tcp,
    Udp,
    Ipv4,
    Ipv6,
    Neighbour,
    Netfilter,
    Bridge,
    Qdisc,
    Tc,
    Xdp,
    Tunnel,
    Device,
    Skb,
    Socket,
    Unix,
    Xfrm,
    Can,
}

impl Area {
    /// Plain words for the area, to complete "in ...".
    pub fn words(self) -> &'static str {
        match self {
            Area::Tcp => "TCP",
            Area::Udp => "UDP",
            Area::Ipv4 => "IPv4 (routing, ICMP)",
            Area::Ipv6 => "IPv6 (routing, ICMPv6, neighbour discovery)",
            Area::Neighbour => "neighbour resolution (ARP/NDP)",
            Area::Netfilter => "netfilter (nftables/iptables)",
            Area::Bridge => "the Linux bridge",
            Area::Qdisc => "queueing disciplines (tc qdisc)",
            Area::Tc => "tc filters and actions",
            Area::Xdp => "XDP",
            Area::Tunnel => "tunnels (VXLAN, GRE, geneve, ip tunnels)",
            Area::Device => "a network device or its driver",
            Area::Skb => "sk_buff handling in the core",
            Area::Socket => "socket receive/queueing",
            Area::Unix => "unix sockets",
            Area::Xfrm => "IPsec (xfrm)",
            Area::Can => "CAN bus",
        }
    }

    /// A first command to look at that part of the stack.
    pub fn check(self) -> &'static str {
        match self {
            Area::Tcp => "nstat -az | grep -i -E '^Tcp|TcpExt'",
            Area::Udp => "nstat -az | grep -i Udp",
            Area::Ipv4 => "nstat -az | grep -E '^Ip|Icmp'; ip route",
            Area::Ipv6 => "nstat -az | grep -E 'Ip6|Icmp6'; ip -6 route",
            Area::Neighbour => "ip neigh show; nstat -az | grep -i -E 'arp|neigh'",
            Area::Netfilter => "nft list ruleset (or iptables-save)",
            Area::Bridge => "bridge link show; bridge fdb show",
            Area::Qdisc => "tc -s qdisc show dev <dev>",
            Area::Tc => "tc -s filter show dev <dev> ingress; tc -s filter show dev <dev> egress",
            Area::Xdp => "ip -d link show <dev>; bpftool net show",
            Area::Tunnel => "ip -d link show <tunnel-dev>",
            Area::Device => "ip -s link show <dev>; ethtool -S <dev>",
            Area::Skb => "ip -s link show <dev>; dmesg",
            Area::Socket => "ss -m -a; nstat -az | grep -i -E 'drop|err|buf'",
            Area::Unix => "ss -x -a -m",
            Area::Xfrm => "ip xfrm state; ip xfrm policy; nstat -az | grep -i xfrm",
            Area::Can => "ip -d -s link show <can-dev>",
        }
    }
}

/// Name prefixes (first words of a reason) and the area they stand for.
/// Longest first where one prefix extends another.
const NAME_PREFIXES: &[(&str, Area)] = &[
    ("IPV6", Area::Ipv6),
    ("IP6", Area::Ipv6),
    ("ICMP", Area::Ipv4),
    ("IP", Area::Ipv4),
    ("TCP", Area::Tcp),
    ("UDP", Area::Udp),
    ("NEIGH", Area::Neighbour),
    ("ARP", Area::Neighbour),
    ("NETFILTER", Area::Netfilter),
    ("NF", Area::Netfilter),
    ("BRIDGE", Area::Bridge),
    ("QDISC", Area::Qdisc),
    ("FQ", Area::Qdisc),
    ("CAKE", Area::Qdisc),
    ("DUALPI2", Area::Qdisc),
    ("TC", Area::Tc),
    ("XDP", Area::Xdp),
    ("VXLAN", Area::Tunnel),
    ("TUNNEL", Area::Tunnel),
    ("TNL", Area::Tunnel),
    ("GRE", Area::Tunnel),
    ("GENEVE", Area::Tunnel),
    ("MACVLAN", Area::Device),
    ("IPVLAN", Area::Device),
    ("DEV", Area::Device),
    ("TAP", Area::Device),
    ("MAC", Area::Device),
    ("SKB", Area::Skb),
    ("SOCKET", Area::Socket),
    ("UNIX", Area::Unix),
    ("XFRM", Area::Xfrm),
    ("CAN", Area::Can),
    ("CANFD", Area::Can),
    ("CANXL", Area::Can),
];

/// Kernel function name prefixes and their area. Checked in order, after
/// leading underscores are removed, so specific prefixes come first.
const FUNCTION_PREFIXES: &[(&str, Area)] = &[
    ("tcp", Area::Tcp),
    ("inet_csk", Area::Tcp),
    ("cookie_v", Area::Tcp),
    ("udp", Area::Udp),
    ("ip6t_", Area::Netfilter),
    ("ipt_", Area::Netfilter),
    ("ebt_", Area::Netfilter),
    ("nf_", Area::Netfilter),
    ("nft_", Area::Netfilter),
    ("ip6_tnl", Area::Tunnel),
    ("ip_tunnel", Area::Tunnel),
    ("iptunnel", Area::Tunnel),
    ("ip6", Area::Ipv6),
    ("ipv6", Area::Ipv6),
    ("icmpv6", Area::Ipv6),
    ("ndisc", Area::Ipv6),
    ("ip_", Area::Ipv4),
    ("ipv4", Area::Ipv4),
    ("icmp", Area::Ipv4),
    ("fib", Area::Ipv4),
    ("neigh", Area::Neighbour),
    ("arp", Area::Neighbour),
    ("br_", Area::Bridge),
    ("qdisc", Area::Qdisc),
    ("sch_", Area::Qdisc),
    ("pfifo", Area::Qdisc),
    ("fq_", Area::Qdisc),
    ("codel", Area::Qdisc),
    ("tcf_", Area::Tc),
    ("tc_", Area::Tc),
    ("cls_", Area::Tc),
    ("xdp", Area::Xdp),
    ("veth_xdp", Area::Xdp),
    ("vxlan", Area::Tunnel),
    ("geneve", Area::Tunnel),
    ("gre", Area::Tunnel),
    ("xfrm", Area::Xfrm),
    ("unix", Area::Unix),
    ("sk_", Area::Socket),
    ("sock_", Area::Socket),
    ("skb_", Area::Skb),
    ("kfree_skb", Area::Skb),
    ("pskb", Area::Skb),
    ("dev_", Area::Device),
    ("netif_", Area::Device),
    ("napi_", Area::Device),
    ("veth", Area::Device),
    ("tun_", Area::Device),
    ("macvlan", Area::Device),
    ("ipvlan", Area::Device),
    ("can_", Area::Can),
];

/// What the name and the location of a reason without an entry suggest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unknown {
    /// The reason as netwhy prints it (`SKB_RX_HEADROOM`, `OPENVSWITCH:0x3`).
    pub reason: String,
    /// The name's own words, without the area prefix: `RX HEADROOM`.
    pub words: String,
    /// The stack area the name's prefix names, if any.
    pub name_area: Option<Area>,
    /// A drop-reason subsystem (`OPENVSWITCH`, `QDISC`) from a subsystem
    /// code or a subsystem enum name (`QDISC_DROP_...`).
    pub subsystem: Option<String>,
    /// The dropping function, normalized (empty when unknown).
    pub function: String,
    /// The stack area the function's name points to, if any.
    pub function_area: Option<Area>,
}

impl Unknown {
    /// Reads a reason name and a dropping function. Pure; any input works.
    pub fn new(reason: &str, function: &str) -> Unknown {
        let reason = reason.trim().to_owned();
        let (subsystem, rest) = split_subsystem(&reason);
        let tokens: Vec<&str> = if is_bare_value(&reason) {
            Vec::new()
        } else {
            rest.split('_').filter(|t| !t.is_empty()).collect()
        };
        let first_area = tokens.first().and_then(|t| area_of_token(t));
        let skip = usize::from(first_area.is_some() && tokens.len() > 1);
        let words = tokens[skip..].join(" ");
        let name_area = first_area.or_else(|| subsystem.as_deref().and_then(area_of_token));
        let function = super::refine::normalize_function(function).to_owned();
        let function_area = area_of_function(&function);
        Unknown {
            reason,
            words,
            name_area,
            subsystem,
            function,
            function_area,
        }
    }

    /// The reason as shown in sentences (never empty).
    fn shown(&self) -> &str {
        if self.reason.is_empty() {
            "(a reason without a name)"
        } else {
            &self.reason
        }
    }

    /// The area to name first: the dropping function is where the drop
    /// happened, so it wins over a prefix of the name.
    pub fn area(&self) -> Option<Area> {
        self.function_area.or(self.name_area)
    }

    /// One line for the `drops` table, at most [`super::HINT_MAX`] chars.
    pub fn hint(&self) -> String {
        let tail = "not in netwhy's notes yet";
        let what = if self.words.is_empty() {
            self.shown().to_owned()
        } else {
            self.words.to_lowercase()
        };
        let full = match self.area() {
            Some(a) => format!("{what} ({}): {tail}", short(a)),
            None => format!("{what}: {tail}"),
        };
        if full.chars().count() <= HINT_MAX {
            return full;
        }
        // Shorten the name's words, keep the honest tail.
        let room = HINT_MAX.saturating_sub(tail.chars().count() + 3);
        let cut: String = what.chars().take(room).collect();
        format!("{cut}…: {tail}")
    }

    /// The finding's evidence lines: what the name and location suggest,
    /// and how to read the kernel's own description. `kernel` is the
    /// running kernel's release (`uname -r`), when known.
    pub fn lines(&self, kernel: Option<&str>) -> Vec<String> {
        let mut v = Vec::new();
        v.push(format!(
            "{} is not in netwhy's knowledge base yet: the rest is read from its name and \
             where it was dropped, not from notes",
            self.shown()
        ));
        let said = match (&self.subsystem, self.name_area, self.words.is_empty()) {
            (Some(s), _, true) => {
                format!("the name is a code of the kernel's {s} drop-reason subsystem")
            }
            (Some(s), _, false) => format!(
                "the name says \"{}\" in the kernel's {s} drop-reason subsystem",
                self.words.to_lowercase()
            ),
            (None, Some(a), false) => {
                format!(
                    "the name says \"{}\" in {}",
                    self.words.to_lowercase(),
                    a.words()
                )
            }
            (None, _, false) => format!("the name says \"{}\"", self.words.to_lowercase()),
            (None, _, true) if is_bare_value(&self.reason) => {
                "the kernel reported a reason value that \
                 neither its BTF nor its tracepoint format names"
                    .to_owned()
            }
            (None, _, true) => "the name carries no words to go by".to_owned(),
        };
        v.push(said);
        match (self.function.is_empty(), self.function_area) {
            (true, _) => {}
            (false, Some(a)) => v.push(format!(
                "it was dropped in {}, a function of {}",
                self.function,
                a.words()
            )),
            (false, None) => v.push(format!(
                "it was dropped in {}: read that function to see which check failed",
                self.function
            )),
        }
        v.push(self.source_hint(kernel));
        v
    }

    /// Where the kernel documents this reason.
    pub fn source_hint(&self, kernel: Option<&str>) -> String {
        let version = kernel.map_or_else(
            || "your kernel's version".to_owned(),
            |k| format!("Linux {k}"),
        );
        let file = match &self.subsystem {
            Some(s) if s == "QDISC" => "include/net/dropreason-qdisc.h".to_owned(),
            Some(s) => {
                format!("the {s} subsystem's drop-reason header (see include/net/dropreason.h)")
            }
            None => "include/net/dropreason-core.h".to_owned(),
        };
        let symbol = if self.subsystem.is_some() {
            self.reason.clone()
        } else {
            format!("SKB_DROP_REASON_{}", self.reason)
        };
        format!("the kernel documents it in {file} of {version}: the comment above {symbol}")
    }

    /// Commands for the areas the location and the name point to (the
    /// generic ones are in [`super::FALLBACK`]); empty when neither does.
    pub fn checks(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .area()
            .map(|a| a.check().to_owned())
            .into_iter()
            .collect();
        if let (Some(n), Some(f)) = (self.name_area, self.function_area) {
            if n != f {
                v.push(n.check().to_owned());
            }
        }
        v
    }
}

/// Short area label for the 60-column hint.
fn short(a: Area) -> &'static str {
    match a {
        Area::Tcp => "tcp",
        Area::Udp => "udp",
        Area::Ipv4 => "ipv4",
        Area::Ipv6 => "ipv6",
        Area::Neighbour => "neigh",
        Area::Netfilter => "netfilter",
        Area::Bridge => "bridge",
        Area::Qdisc => "qdisc",
        Area::Tc => "tc",
        Area::Xdp => "xdp",
        Area::Tunnel => "tunnel",
        Area::Device => "device",
        Area::Skb => "skb",
        Area::Socket => "socket",
        Area::Unix => "unix",
        Area::Xfrm => "xfrm",
        Area::Can => "can",
    }
}

/// `OPENVSWITCH:0x3` → (OPENVSWITCH, "0x3"); `QDISC_DROP_OVERLIMIT` →
/// (QDISC, "OVERLIMIT"); anything else has no subsystem.
fn split_subsystem(reason: &str) -> (Option<String>, Cow<'_, str>) {
    if let Some((sub, code)) = reason.split_once(':') {
        return (Some(sub.to_owned()), Cow::Owned(format!("code {code}")));
    }
    if let Some(i) = reason.find("_DROP_") {
        if i > 0 {
            return (
                Some(reason[..i].to_owned()),
                Cow::Borrowed(&reason[i + 6..]),
            );
        }
    }
    (None, Cow::Borrowed(reason))
}

/// `UNKNOWN(130)`: how [`crate::kernel::reasons::DropReasons::name`]
/// prints a value without a name.
fn is_bare_value(reason: &str) -> bool {
    reason.starts_with("UNKNOWN(") && reason.ends_with(')')
}

fn area_of_token(t: &str) -> Option<Area> {
    NAME_PREFIXES
        .iter()
        .find(|(p, _)| t.eq_ignore_ascii_case(p))
        .map(|&(_, a)| a)
}

fn area_of_function(f: &str) -> Option<Area> {
    let f = f.trim_start_matches('_');
    if f.is_empty() {
        return None;
    }
    FUNCTION_PREFIXES
        .iter()
        .find(|(p, _)| f.starts_with(p))
        .map(|&(_, a)| a)
}

#[cfg(test)]
#[path = "unknown_tests.rs"]
mod tests;
