//! Location refinements: the same reason means different things depending on
//! the kernel function that dropped the packet. A refinement overrides the
//! reason's entry where it says something more precise (`None` keeps the
//! entry's text).

use super::{kb, Entry, Id};

/// A more precise diagnosis for `reason` dropped in one of `functions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Refinement {
    pub reason: &'static str,
    /// Kernel functions (symbol names without offset) this applies to.
    pub functions: &'static [&'static str],
    /// Diagnosis id, kebab-case, unique across entries and refinements.
    pub id: Id,
    pub meaning: Option<&'static str>,
    pub causes: Option<&'static [&'static str]>,
    pub checks: Option<&'static [&'static str]>,
    pub fixes: Option<&'static [&'static str]>,
    pub hint: Option<&'static str>,
    /// Reproduced in netwhy's lab at this location on this kernel.
    pub verified: bool,
}

impl Refinement {
    /// The whole diagnosis: the reason's entry with this refinement's texts
    /// over it, for evidence that points at it wherever the drop was.
    pub fn entry(&self) -> Entry {
        let base = kb::entry(self.reason);
        Entry {
            reason: base.reason,
            id: self.id,
            meaning: self.meaning.unwrap_or(base.meaning),
            causes: self.causes.unwrap_or(base.causes),
            checks: self.checks.unwrap_or(base.checks),
            fixes: self.fixes.unwrap_or(base.fixes),
            verified: self.verified,
            hint: self.hint.unwrap_or(base.hint),
        }
    }
}

/// Strips what symbolizers append to a function name: `+0x1c/0x2a0`,
/// ` [module]`, and compiler suffixes like `.isra.0`, `.constprop.0`, `.cold`.
pub fn normalize_function(function: &str) -> &str {
    let f = function.trim();
    let f = f.split(['+', ' ', '\t']).next().unwrap_or("");
    match f.find('.') {
        Some(i) if i > 0 => &f[..i],
        _ => f,
    }
}

/// The refinement for `reason` (normalized, e.g. `NO_SOCKET`) at `function`.
pub fn refine(reason: &str, function: &str) -> Option<&'static Refinement> {
    let f = normalize_function(function);
    if f.is_empty() {
        return None;
    }
    REFINEMENTS
        .iter()
        .find(|r| r.reason == reason && r.functions.contains(&f))
}

/// All refinements.
pub fn all() -> &'static [Refinement] {
    REFINEMENTS
}

static REFINEMENTS: &[Refinement] = &[
    XDP_PATH_DROP,
    ROUTE_BLACKHOLE_UNREACHABLE_PROHIBIT,
    VETH_MTU_MISMATCH,
    IPV6_MULTICAST_NOT_JOINED,
    LOCAL_FRAGMENTATION_FREE,
    SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL,
    PING_REPLY_NO_PING_SOCKET,
    NFTABLES_RULE_DROP,
    IPTABLES_LEGACY_RULE_DROP,
    UDP_RCVBUF_FULL,
    TTL_EXPIRED,
    PKT_TOO_BIG,
];

pub const XDP_PATH_DROP: Refinement = Refinement {
    reason: "NOT_SPECIFIED",
    functions: &[
        "veth_xdp_rcv_skb",
        "do_xdp_generic",
        "netif_receive_generic_xdp",
    ],
    id: Id::new("xdp-path-drop"),
    meaning: Some(
        "The packet was freed in the XDP receive path of the device (veth's native XDP, \
         or generic XDP): an XDP program returned XDP_DROP or XDP_ABORTED, or the frame \
         could not be prepared for it.",
    ),
    causes: Some(&[
        "An XDP firewall, DDoS filter or load balancer on the device dropped it.",
        "XDP_ABORTED: the program hit an error (see the xdp_exception tracepoint).",
    ]),
    checks: Some(&[
        "ip -d link show <dev>  (xdp mode and prog id)",
        "bpftool net show dev <dev>; bpftool prog dump xlated id <id>",
    ]),
    fixes: Some(&["Fix the XDP program's policy, or detach it: ip link set dev <dev> xdp off"]),
    hint: Some("dropped in the XDP path: an XDP program's verdict"),
    verified: true,
};

pub const ROUTE_BLACKHOLE_UNREACHABLE_PROHIBIT: Refinement = Refinement {
    reason: "NOT_SPECIFIED",
    functions: &["ip_error"],
    id: Id::new("route-blackhole-unreachable-prohibit"),
    meaning: Some(
        "The route lookup for this packet matched a blackhole, unreachable or \
         prohibit route (or found no route while forwarding), and ip_error threw \
         the packet away, sending an ICMP error for unreachable/prohibit routes.",
    ),
    causes: Some(&[
        "A `blackhole`, `unreachable` or `prohibit` route (often added by VPN clients, \
         kill switches, or network managers) covers the destination.",
        "A policy routing rule (`ip rule`) sends the packet to a table whose matching \
         route is of one of those types.",
        "Forwarding a packet to a destination with no route at all.",
    ]),
    checks: Some(&[
        "ip route get <dst> from <src> iif <in-dev>",
        "ip route show table all type blackhole; ip route show table all type unreachable; \
         ip route show table all type prohibit",
        "ip rule show",
        "nstat -az IpExtInNoRoutes IpInAddrErrors",
    ]),
    fixes: Some(&[
        "Delete the route if it is not wanted: ip route del blackhole <prefix> (or \
         unreachable/prohibit), in the right table (`table <id>`).",
        "Add a more specific route for the destination: ip route add <prefix> via <gw> dev <dev>",
        "Fix or remove the policy rule: ip rule del <selector> table <id>",
    ]),
    hint: Some("blackhole/unreachable/prohibit route: ip route get"),
    // Seen on 6.18 while building netwhy (shared FACTS), no lab scenario yet.
    verified: false,
};

pub const VETH_MTU_MISMATCH: Refinement = Refinement {
    reason: "NOT_SPECIFIED",
    functions: &["__dev_forward_skb2", "__dev_forward_skb", "dev_forward_skb"],
    id: Id::new("veth-mtu-mismatch"),
    meaning: Some(
        "A veth (or similar pair device) refused a packet larger than the peer's MTU. \
         The drop is reported in the sender's network namespace, not the receiver's.",
    ),
    causes: Some(&[
        "The two ends of a veth pair have different MTUs (e.g. one 9000, one 1500).",
        "A container's veth has a larger MTU than the host side or the bridge it joins.",
    ]),
    checks: Some(&[
        "ip -d link show <veth>  (on both ends, in both namespaces: compare `mtu`)",
        "ip netns exec <ns> ip link show  (the peer side)",
    ]),
    fixes: Some(&[
        "Give both ends the same MTU: ip link set <veth> mtu <n>; \
         ip netns exec <ns> ip link set <peer> mtu <n>",
        "Set the MTU in the container runtime / CNI config so new pairs match.",
    ]),
    hint: Some("veth MTU mismatch (seen in sender's netns): ip link"),
    // Seen on 6.18 while building netwhy (shared FACTS), no lab scenario yet.
    verified: false,
};

pub const IPV6_MULTICAST_NOT_JOINED: Refinement = Refinement {
    reason: "NOT_SPECIFIED",
    functions: &["ip6_mc_input"],
    id: Id::new("ipv6-multicast-not-joined"),
    meaning: Some(
        "An IPv6 multicast packet arrived for a group this host has not joined (or that \
         nothing consumes). This is normal background noise, not a fault.",
    ),
    causes: Some(&["MLD reports, router/neighbour discovery or mDNS multicast seen on the link."]),
    checks: Some(&["ip -6 maddr show dev <dev>  (the groups this host joined)"]),
    fixes: Some(&[
        "None needed: ignore, or filter it out (netwhy --ignore-harmless if available).",
    ]),
    hint: Some("IPv6 multicast not for us: harmless"),
    // Seen on 6.18 while building netwhy (shared FACTS), no lab scenario yet.
    verified: false,
};

pub const LOCAL_FRAGMENTATION_FREE: Refinement = Refinement {
    reason: "NOT_SPECIFIED",
    functions: &["skb_release_data"],
    id: Id::new("local-fragmentation-free"),
    meaning: Some(
        "A buffer was released while a locally sent packet was being fragmented. This \
         accompanies normal IP fragmentation and is not a lost packet.",
    ),
    causes: Some(&["Sending datagrams larger than the path MTU (the kernel fragments them)."]),
    checks: Some(&["nstat -az IpFragOKs IpFragFails"]),
    fixes: Some(&["None needed; to avoid fragmentation, send datagrams smaller than the MTU."]),
    hint: Some("side effect of local fragmentation: harmless"),
    verified: false,
};

pub const SYNCOOKIE_ACK_ACCEPT_QUEUE_FULL: Refinement = Refinement {
    reason: "NO_SOCKET",
    functions: &["cookie_v4_check", "cookie_v6_check", "tcp_get_cookie_sock"],
    id: Id::new("syncookie-ack-accept-queue-full"),
    meaning: Some(
        "The final ACK of a handshake that used a SYN cookie could not create a \
         connection, usually because the listener's accept queue is full: the \
         application does not accept() fast enough.",
    ),
    causes: Some(&[
        "The application's accept queue (listen backlog) is full: it accepts too \
         slowly or the backlog is too small.",
        "A SYN flood made the kernel send SYN cookies.",
    ]),
    checks: Some(&[
        "ss -ltn  (Recv-Q = queued connections, Send-Q = backlog size)",
        "nstat -az TcpExtListenOverflows TcpExtListenDrops TcpExtSyncookiesSent \
         TcpExtSyncookiesRecv TcpExtSyncookiesFailed",
        "sysctl net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.ipv4.tcp_syncookies",
    ]),
    fixes: Some(&[
        "Raise the backlog: sysctl -w net.core.somaxconn=4096 and pass a larger \
         backlog to listen() (many servers have a `backlog` setting).",
        "Make the application accept faster (more accept threads/workers).",
    ]),
    hint: Some("SYN-cookie ACK, accept queue full: ss -ltn"),
    // Lab scenario tcp-syncookie-accept-queue-full.
    verified: true,
};

pub const PING_REPLY_NO_PING_SOCKET: Refinement = Refinement {
    reason: "NO_SOCKET",
    functions: &["ping_rcv"],
    id: Id::new("ping-reply-no-ping-socket"),
    meaning: Some(
        "An ICMP echo reply found no unprivileged ping socket; raw-socket ping tools \
         still got their copy. Harmless.",
    ),
    causes: Some(&["`ping` running with a raw socket (setuid or CAP_NET_RAW)."]),
    checks: Some(&["sysctl net.ipv4.ping_group_range"]),
    fixes: Some(&["None needed."]),
    hint: Some("ping reply taken by a raw socket: harmless"),
    // Seen on 6.18 while building netwhy (shared FACTS), no lab scenario yet.
    verified: false,
};

pub const NFTABLES_RULE_DROP: Refinement = Refinement {
    reason: "NETFILTER_DROP",
    functions: &["nft_do_chain"],
    id: Id::new("nftables-rule-drop"),
    meaning: Some(
        "An nftables rule (including iptables rules managed through iptables-nft) \
         dropped or rejected the packet. DROP and REJECT look the same here; only the \
         ICMP/RST sent back differs.",
    ),
    causes: Some(&[
        "A `drop` or `reject` rule, or a chain policy `drop`, in an nftables table \
         (firewalld, ufw, docker, kube-proxy, libvirt and iptables-nft all create them).",
        "A `ct state invalid drop` rule catching packets conntrack considers invalid, \
         including packets with a bad checksum (net.netfilter.nf_conntrack_checksum=1).",
    ]),
    checks: Some(&[
        "nft list ruleset  (look for drop/reject and `policy drop`)",
        "Name the rule with tracing: nft insert rule <family> <table> <chain> \
         <match> meta nftrace set 1; then nft monitor trace",
        "iptables-nft -L -v -n --line-numbers  (if rules come from iptables-nft)",
        "conntrack -S  (invalid counts, for ct state rules)",
    ]),
    fixes: Some(&[
        "Add an accept rule before the drop: nft insert rule <family> <table> <chain> \
         <match> accept",
        "Delete the rule: nft -a list chain <family> <table> <chain>; \
         nft delete rule <family> <table> <chain> handle <n>",
        "Change the owning tool's config (firewalld, ufw...) rather than editing its rules.",
    ]),
    hint: Some("nftables/iptables-nft rule: find it with nftrace"),
    verified: true,
};

pub const IPTABLES_LEGACY_RULE_DROP: Refinement = Refinement {
    reason: "NETFILTER_DROP",
    functions: &[
        "nf_hook_slow",
        "ipt_do_table",
        "ip6t_do_table",
        "arpt_do_table",
        "ebt_do_table",
    ],
    id: Id::new("iptables-legacy-rule-drop"),
    meaning: Some(
        "A netfilter hook that is not nftables dropped the packet: usually an \
         iptables-legacy (x_tables) rule or chain policy, or another module's hook.",
    ),
    causes: Some(&[
        "A DROP/REJECT rule or a chain policy DROP in iptables-legacy / ip6tables-legacy.",
        "ebtables or arptables rules, or a module registering its own netfilter hook.",
    ]),
    checks: Some(&[
        "iptables-legacy -L -v -n --line-numbers; iptables-legacy -t raw -L -v -n; \
         iptables-legacy -t mangle -L -v -n  (see which rule's counters rise)",
        "ip6tables-legacy -L -v -n  (for IPv6)",
        "iptables-legacy -Z <chain> then re-test, to see the counter move",
    ]),
    fixes: Some(&[
        "Insert an ACCEPT before the rule: iptables-legacy -I <chain> <n> <match> -j ACCEPT",
        "Delete the rule: iptables-legacy -D <chain> <n>",
        "Move the host to a single backend (iptables-nft) so all rules show in nft.",
    ]),
    hint: Some("iptables-legacy/other hook: check rule counters"),
    verified: true,
};

pub const UDP_RCVBUF_FULL: Refinement = Refinement {
    reason: "SOCKET_RCVBUFF",
    functions: &[
        "udp_queue_rcv_one_skb",
        "__udp_enqueue_schedule_skb",
        "udpv6_queue_rcv_one_skb",
    ],
    id: Id::new("udp-rcvbuf-full"),
    meaning: Some(
        "A UDP socket's receive buffer was full, so the datagram was dropped: the \
         application reads slower than data arrives. On kernels before the 2020 fix, a \
         receive buffer near 2^31 (rmem_default=2147483647) overflowed and dropped everything.",
    ),
    causes: Some(&[
        "The application reads too slowly (bursts, GC pauses, a single busy thread).",
        "SO_RCVBUF / net.core.rmem_default too small for the traffic bursts.",
        "Old kernels only: net.core.rmem_default or SO_RCVBUFFORCE near 2^31 overflowed \
         an int (fixed in 2020; does not reproduce on 6.18).",
    ]),
    checks: Some(&[
        "ss -uamn  (skmem: r = queued bytes, rb = buffer size; d = drops)",
        "nstat -az UdpRcvbufErrors Udp6RcvbufErrors UdpInErrors",
        "sysctl net.core.rmem_default net.core.rmem_max",
    ]),
    fixes: Some(&[
        "Raise the limit and the socket buffer: sysctl -w net.core.rmem_max=26214400; \
         have the app set SO_RCVBUF (or sysctl -w net.core.rmem_default=<n>)",
        "Read faster: more reader threads, SO_REUSEPORT sockets, recvmmsg().",
        "Old kernels: keep rmem_default/SO_RCVBUF well below 2^31 (e.g. 1 GiB at most).",
    ]),
    hint: Some("UDP receive buffer full: ss -uamn, raise rmem"),
    verified: true,
};

pub const TTL_EXPIRED: Refinement = Refinement {
    reason: "IP_INHDR",
    functions: &["ip_forward", "ip6_forward"],
    id: Id::new("ttl-expired"),
    meaning: Some(
        "A packet being forwarded had TTL (hop limit) 1 or 0, so the router dropped it and \
         sent ICMP time exceeded. Normal for traceroute, a sign of a routing loop otherwise.",
    ),
    causes: Some(&[
        "A routing loop between two routers or namespaces (the packet bounced until TTL ran out).",
        "traceroute / mtr probes (expected).",
        "A sender using a very low TTL (e.g. 1 for link-local protocols) across a router.",
    ]),
    checks: Some(&[
        "ip route get <dst>  (on this host and the next hop: do they point at each other?)",
        "mtr -n <dst> or traceroute -n <dst>  (repeating hops = loop)",
        "nstat -az IpInHdrErrors IcmpOutTimeExcds",
    ]),
    fixes: Some(&[
        "Break the routing loop: fix the route on one side (ip route replace <prefix> via <gw>).",
        "None needed for traceroute traffic.",
    ]),
    hint: Some("TTL expired while forwarding: routing loop?"),
    verified: true,
};

pub const PKT_TOO_BIG: Refinement = Refinement {
    reason: "PKT_TOO_BIG",
    functions: &["ip_forward", "ip6_forward", "ip_exceeds_mtu", "ip6_pkt_too_big"],
    id: Id::new("pkt-too-big"),
    meaning: Some(
        "A forwarded packet was larger than the outgoing interface's MTU and could not be \
         fragmented (DF set, or IPv6), so it was dropped with ICMP \"fragmentation needed\" / \
         \"packet too big\" sent back.",
    ),
    causes: Some(&[
        "The outgoing link (tunnel, VPN, VXLAN, PPPoE) has a smaller MTU than the incoming one.",
        "ICMP is filtered on the way back, so the sender never lowers its packet size \
         (PMTU black hole).",
    ]),
    checks: Some(&[
        "ip route get <dst>; ip link show <out-dev>  (mtu)",
        "nstat -az IpFragFails Ip6InTooBigErrors IcmpOutDestUnreachs",
        "ping -M do -s <size> <dst>  (find the largest size that passes)",
    ]),
    fixes: Some(&[
        "Clamp TCP MSS on the router: nft add rule inet filter forward tcp flags syn \
         tcp option maxseg size set rt mtu",
        "Lower the MTU on the sender side, or raise the outgoing link's MTU: ip link set <dev> mtu <n>",
        "Let ICMP type 3 code 4 / ICMPv6 type 2 through firewalls.",
    ]),
    hint: Some("forwarded packet > out MTU: clamp MSS / fix MTU"),
    verified: true,
};
