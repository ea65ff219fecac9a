//! Diagnoses that need live evidence, not just (reason, location): the same
//! NO_SOCKET is a closed port, a service bound to the wrong address, or a
//! reply NAT failed to reverse, and only sock_diag / conntrack / nftrace /
//! counters tell which. `diagnose::clues` picks one of these ids from what
//! it saw; the texts here replace the reason's generic entry.
//!
//! `reason` is the drop reason the diagnosis refines ("" for findings about
//! live state with no drop, such as a receive buffer near INT_MAX).
use super::Entry;

mod thin;
pub use thin::*;
// Diagnoses of incidents told by more than one drop, or by no drop at all.
pub use super::incident::{PMTU_BLACKHOLE, UDP_EMSGSIZE};

pub const NO_SOCKET_UDP: Entry = entry!(
    NO_SOCKET,
    "no-socket-udp",
    true,
    "nothing bound to this UDP port",
    "A UDP datagram arrived for a port no socket in this network namespace is bound to, \
     so the kernel dropped it (and answered with ICMP port unreachable unless rate-limited).",
    [
        "The service is not running, crashed, or has not started yet.",
        "The service runs in another network namespace (container) than the traffic reaches.",
        "The client uses the wrong port.",
    ],
    ["ss -ulpn 'sport = :<port>'  (in the drop's netns)", "nstat -az UdpNoPorts"],
    ["Start the service or bind it to the port; or point the client at the right port or namespace."],
);

pub const NO_SOCKET_TCP: Entry =
    entry!(
    NO_SOCKET,
    "no-socket-tcp",
    true,
    "no TCP listener on this port",
    "A TCP segment arrived for a port with no listening or matching connected socket, so \
     the kernel dropped it and answered with a reset (connection refused).",
    [
        "The service is not running or listens on another port.",
        "The service runs in another network namespace than the traffic reaches.",
        "A stale connection: the socket was closed and the peer still sends.",
    ],
    ["ss -ltnp 'sport = :<port>'  (in the drop's netns)", "nstat -az TcpOutRsts"],
    ["Start the service listening on the port, or send the client to the right port/namespace."],
);

pub const SOCKET_BOUND_ELSEWHERE: Entry = entry!(
    NO_SOCKET,
    "socket-bound-elsewhere",
    false,
    "port in use, but bound to another address",
    "A socket uses this port, but it is bound to another address (often 127.0.0.1), to an \
     IPv6-only wildcard, or to another device, so it does not accept this packet.",
    [
        "The service listens on localhost only (a default of many daemons).",
        "An IPv6-only socket (IPV6_V6ONLY) while clients use IPv4.",
        "SO_BINDTODEVICE on another interface.",
    ],
    ["ss -lnp 'sport = :<port>'  (look at the local address column)"],
    ["Bind the service to 0.0.0.0/:: or to the address clients use (its listen/bind setting)."],
);

pub const NAT_TUPLE_MISMATCH: Entry = entry!(
    NO_SOCKET,
    "nat-tuple-mismatch",
    true,
    "reply from an address the socket never talked to (NAT)",
    "A socket is connected to this port, but the packet comes from another address or port \
     than its peer. Typically the request was DNATed (a service VIP, docker port mapping) \
     and the reply did not pass back through the same conntrack entry, so NAT was not \
     reversed and the reply arrives with the real server's address.",
    [
        "The server answers from another address than the DNAT target (multi-homed server \
         bound to 0.0.0.0).",
        "The conntrack entry was flushed or expired between request and reply (conntrack -F, \
         table full, short UDP timeout).",
        "Asymmetric routing: the reply bypasses the box that did the NAT.",
    ],
    [
        "conntrack -L -p udp --dport <port>  (on the NAT box: is there an entry, and which reply tuple?)",
        "ss -uanp 'dport = :<port>'  (on the client: which peer is the socket connected to?)",
    ],
    [
        "Make the server answer from the DNAT target address (bind it to that address).",
        "Route replies back through the NAT box; do not flush conntrack under live traffic.",
    ],
);

pub const NFT_RULE_DROP: Entry = entry!(
    NETFILTER_DROP,
    "nft-rule-drop",
    true,
    "an nftables rule drops this flow",
    "A rule in an nftables chain matched the packet and its verdict was drop.",
    ["A firewall rule that is broader than meant, or a service that should be allowed."],
    ["nft -a list chain <family> <table> <chain>  (the handle is in the evidence)"],
    ["Delete or narrow the rule: nft delete rule <family> <table> <chain> handle <handle>"],
);

pub const NFT_POLICY_DROP: Entry = entry!(
    NETFILTER_DROP,
    "nft-policy-drop",
    false,
    "an nftables chain's drop policy",
    "No rule of an nftables base chain accepted the packet, and the chain's policy is drop.",
    ["A default-deny chain without an accept rule for this flow."],
    ["nft list chain <family> <table> <chain>"],
    ["Add an accept rule for the flow before the end of the chain: nft add rule <family> <table> <chain> <match> accept"],
);

pub const NFT_REJECT: Entry = entry!(
    NETFILTER_DROP,
    "nft-reject",
    true,
    "an nftables reject rule",
    "A rule in an nftables chain matched the packet and rejected it: the sender got an ICMP \
     error or a TCP reset (\"connection refused\" or \"port unreachable\"), then the packet \
     was dropped.",
    ["A firewall rule that rejects the port: the service is reachable only once it is allowed."],
    ["nft -a list chain <family> <table> <chain>"],
    ["Delete or narrow the rule: nft delete rule <family> <table> <chain> handle <handle>"],
);

pub const IPTABLES_REJECT: Entry = entry!(
    NETFILTER_DROP,
    "iptables-reject",
    true,
    "an iptables (nft backend) REJECT rule",
    "An iptables rule (iptables-nft: stored as an nftables rule with an xt REJECT target) \
     matched the packet: the sender got an ICMP error or a reset, then the packet was dropped.",
    ["A libvirt/docker/firewalld-managed chain rejecting the traffic; a catch-all REJECT."],
    ["iptables -L -v -n --line-numbers  (the chain is in the evidence)"],
    ["Allow the flow before the REJECT: iptables -I <chain> <n> <match> -j ACCEPT; or fix the manager's config."],
);

pub const IPTABLES_DROP: Entry = entry!(
    NETFILTER_DROP,
    "iptables-drop",
    false,
    "an iptables (nft backend) DROP rule",
    "An iptables rule (iptables-nft backend) matched the packet with target DROP.",
    ["A firewall rule broader than meant."],
    ["iptables -L -v -n --line-numbers"],
    ["Delete or narrow the rule: iptables -D <chain> <n>"],
);

pub const IPTABLES_LEGACY_REJECT: Entry = entry!(
    NETFILTER_DROP,
    "iptables-legacy-reject",
    true,
    "an iptables-legacy REJECT rule",
    "A rule of the legacy iptables (x_tables) matched the packet and rejected it: the sender \
     got an ICMP error or a reset, then the packet was dropped. Its packet counter moved \
     while netwhy watched.",
    ["A libvirt/docker-managed chain or a hand-written catch-all REJECT."],
    ["iptables-legacy -L -v -n --line-numbers"],
    ["Allow the flow before it: iptables-legacy -I <chain> <n> <match> -j ACCEPT; or delete the rule."],
);

pub const IPTABLES_LEGACY_DROP: Entry = entry!(
    NETFILTER_DROP,
    "iptables-legacy-drop",
    false,
    "an iptables-legacy DROP rule",
    "A rule of the legacy iptables (x_tables) matched the packet with target DROP (or a \
     chain policy of DROP); its counter moved while netwhy watched.",
    ["A firewall rule or policy broader than meant."],
    ["iptables-legacy -L -v -n --line-numbers"],
    ["Delete or narrow the rule: iptables-legacy -D <chain> <n>; or change the policy."],
);

pub const CT_INVALID_CHECKSUM: Entry = entry!(
    NETFILTER_DROP,
    "ct-invalid-checksum",
    true,
    "firewall drops `ct state invalid`: bad checksum",
    "The packet has a bad layer-4 checksum. Conntrack (net.netfilter.nf_conntrack_checksum=1) \
     marks such packets invalid, and a `ct state invalid drop` rule drops them before the \
     protocol would count a checksum error, so the real cause is hidden behind a firewall drop.",
    [
        "Broken checksum offload on a NIC, virtual device or tunnel on the sending side.",
        "A middlebox rewriting headers without fixing the checksum.",
    ],
    [
        "ethtool -k <dev> | grep checksum  (on the sender)",
        "tcpdump -vv shows `bad udp cksum`"
    ],
    [
        "Fix the sender's checksum (e.g. ethtool -K <dev> tx off on the faulty device).",
        "Only if the traffic is trusted: sysctl -w net.netfilter.nf_conntrack_checksum=0",
    ],
);

pub const CT_INVALID_DROP: Entry = entry!(
    NETFILTER_DROP,
    "ct-invalid-drop",
    false,
    "firewall drops `ct state invalid`",
    "Conntrack classed the packet invalid (it fits no known connection state: out of window, \
     bad checksum, unexpected flags) and a `ct state invalid drop` rule dropped it.",
    ["Asymmetric routing; a conntrack entry that expired; a bad checksum; TCP window tracking."],
    ["sysctl net.netfilter.nf_conntrack_log_invalid=255 then dmesg", "conntrack -S  (invalid column)"],
    ["Find why conntrack misses the flow (routing, timeouts); nf_conntrack_tcp_be_liberal=1 for window issues."],
);

pub const RP_FILTER_STRICT: Entry = entry!(
    IP_RPFILTER,
    "rp-filter-strict",
    true,
    "strict rp_filter: reply would leave by another interface",
    "Reverse-path filtering in strict mode (rp_filter=1): the route back to the packet's \
     source goes out of a different interface than the one it arrived on, so the kernel \
     treats the source as spoofed (a martian) and drops the packet.",
    [
        "Asymmetric or multi-homed routing: two uplinks, policy routing, a VPN.",
        "A source address that is routed via another interface (or only via lo).",
    ],
    ["ip route get <src> iif <dev> from <dst>", "nstat -az IpExtInRPFilter"],
    ["Use loose mode on that interface (and all): sysctl -w net.ipv4.conf.<dev>.rp_filter=2 net.ipv4.conf.all.rp_filter=2"],
);

pub const RP_FILTER_NO_ROUTE: Entry = entry!(
    IP_RPFILTER,
    "rp-filter-no-route",
    false,
    "rp_filter: no route back to the source",
    "Reverse-path filtering (loose mode) found no usable route back to the packet's source at \
     all, so it was dropped as a martian.",
    ["The source network is not routed on this host (missing route or default route)."],
    ["ip route get <src>"],
    ["Add a route back to the source: ip route add <prefix> via <gw> dev <dev>; or rp_filter=0 on that interface."],
);

pub const FORWARDING_DISABLED: Entry = entry!(
    IP_INADDRERRORS,
    "forwarding-disabled",
    true,
    "IP forwarding is off on this router",
    "The packet was addressed to another host and had to be forwarded, but forwarding is \
     disabled in this network namespace (net.ipv4.ip_forward=0 / ipv6 forwarding=0).",
    ["A router or container host where ip_forward was never enabled or was reset (e.g. by a network manager)."],
    ["sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding"],
    ["sysctl -w net.ipv4.ip_forward=1  (persist it in /etc/sysctl.d/)"],
);

pub const NEIGH_FAILED: Entry = entry!(
    NEIGH_QUEUEFULL,
    "neigh-failed",
    true,
    "next hop does not answer ARP/NDP",
    "The next hop's link-layer address could not be resolved (neighbour entry FAILED or \
     still INCOMPLETE): packets waiting for it were dropped when its small queue overflowed \
     or resolution failed.",
    [
        "The next hop or destination is down, or the address is not on this link.",
        "A wrong on-link route (the prefix is not really on that interface).",
        "ARP filtered (arp_ignore/arp_filter, a firewall, rp_filter on the peer).",
    ],
    ["ip neigh show <addr>", "ip route get <dst>", "arping -I <dev> <addr>"],
    ["Bring the next hop up or fix the route so the address is reached via a gateway that answers."],
);

pub const UDP_RMEM_OVERFLOW: Entry = entry!(
    SOCKET_RCVBUFF,
    "udp-rmem-overflow",
    true,
    "UDP receive buffer near INT_MAX",
    "A UDP socket's receive buffer is within a few MiB of 2^31. Kernels before the 2020 fix \
     add the packet size to sk_rcvbuf in a signed int: the sum wraps negative and every \
     datagram is dropped as SOCKET_RCVBUFF (DNS over UDP fails while TCP works). Fixed \
     kernels accept the datagrams, but the value still lets one socket pin unbounded memory.",
    [
        "net.core.rmem_default (or rmem_max plus SO_RCVBUF) set to 2147483647 by a tuning guide.",
        "An application calling SO_RCVBUFFORCE with a huge value.",
    ],
    ["sysctl net.core.rmem_default net.core.rmem_max", "ss -uamp  (skmem rb column)"],
    ["sysctl -w net.core.rmem_default=212992 net.core.rmem_max=16777216  (then restart the service)"],
);

pub const TC_BPF_DROP: Entry = entry!(
    TC_INGRESS,
    "tc-bpf-drop",
    true,
    "a TC BPF program on the device returned TC_ACT_SHOT",
    "A BPF program attached to the device's tc hook (tcx, or a cls_bpf filter on clsact) \
     returned a drop verdict for this packet. The kernel reports only TC_INGRESS or \
     TC_EGRESS; the programs listed in the evidence are the ones on that hook, run in \
     the order shown until one drops.",
    [
        "A CNI's policy program (Cilium, Calico eBPF) denies the flow: a network policy, \
         a missing identity or endpoint, or the agent's maps not yet synced.",
        "A custom or leftover TC program (DDoS filter, rate limiter, a debugging hook \
         someone forgot) matches the traffic.",
    ],
    [
        "bpftool prog show id <id>  (who loaded it, when, its maps)",
        "bpftool prog dump xlated id <id>  (what it checks)",
        "bpftool net show dev <dev>",
    ],
    [
        "Fix the policy in whatever manages the program (CNI network policy, the agent's \
         config); detaching it by hand is a stop-gap the agent may undo.",
    ],
);

pub const XDP_BPF_DROP: Entry = entry!(
    XDP,
    "xdp-bpf-drop",
    true,
    "an XDP program on the device dropped the packet",
    "The XDP program attached to the receiving device returned XDP_DROP (or XDP_ABORTED) \
     for this packet before the kernel built its usual socket-buffer path.",
    [
        "An XDP firewall, DDoS filter or load balancer (Cilium, Katran, a custom one) \
         decided to drop.",
        "XDP_ABORTED from a program error (bounds check failed, helper error).",
    ],
    [
        "bpftool prog show id <id>",
        "bpftool prog dump xlated id <id>",
        "ip -d link show <dev>  (xdp mode and prog id)",
    ],
    ["Fix the XDP program's policy, or detach it: ip link set dev <dev> xdp off"],
);

pub const ACCEPT_QUEUE_FULL: Entry = entry!(@none,
    "accept-queue-full",
    true,
    "listen overflow: SYNs refused, accept queue full",
    "A listener's accept queue was full while netwhy watched: the kernel refused new \
     connections (TcpExt:ListenOverflows/ListenDrops moved). The refused SYNs are freed \
     with consume_skb, so no drop event exists; the client retransmits its SYN and sees \
     a slow or timed-out connect.",
    [
        "The application accepts connections too slowly (blocked workers, GC pause, too \
         few accept threads).",
        "The listen backlog is too small for the connection rate: listen()'s backlog, \
         capped by net.core.somaxconn.",
    ],
    [
        "ss -ltn  (Recv-Q = queued connections, Send-Q = backlog)",
        "nstat -az TcpExtListenOverflows TcpExtListenDrops",
        "sysctl net.core.somaxconn net.ipv4.tcp_max_syn_backlog",
    ],
    [
        "Make the application accept faster (more workers or accept threads).",
        "Raise the backlog: sysctl -w net.core.somaxconn=4096 and pass a larger backlog \
         to listen() (the server's backlog setting), then restart it.",
    ],
);

pub const SEND_NO_ROUTE: Entry = entry!(@none,
    "send-no-route",
    true,
    "sends failed: no route to the destination",
    "Local sends failed before a packet existed: the route lookup found no route, so the \
     syscall returned ENETUNREACH (Ip:OutNoRoutes / Ip6:OutNoRoutes moved). No skb was \
     built, so no drop event exists.",
    [
        "No default route in the namespace (DHCP lost, a container without a gateway).",
        "A missing route for the destination's prefix (VPN down, policy routing table empty).",
    ],
    ["ip route show; ip route get <dst>", "ip rule show", "nstat -az IpOutNoRoutes Ip6OutNoRoutes"],
    ["Add the missing route: ip route add default via <gw> (or <prefix> via <gw> dev <dev>)."],
);

pub const UDP_SNDBUF_FULL: Entry = entry!(@none,
    "udp-sndbuf-full",
    true,
    "UDP sends failed: socket send buffer full",
    "UDP sends failed because the socket's send buffer was full (Udp:SndbufErrors moved): \
     the datagram was never queued, the application got ENOBUFS/EAGAIN.",
    [
        "The application sends faster than the device drains (a burst, a slow qdisc).",
        "A small SO_SNDBUF or net.core.wmem_default.",
    ],
    [
        "ss -uamp  (skmem tb column)",
        "sysctl net.core.wmem_default net.core.wmem_max"
    ],
    [
        "Raise the send buffer: sysctl -w net.core.wmem_max=16777216 and SO_SNDBUF in the \
      application; or pace the sender."
    ],
);

pub const SOFTNET_BACKLOG_FULL: Entry = entry!(@none,
    "softnet-backlog-full",
    false,
    "per-CPU input backlog full (softnet_stat dropped)",
    "The per-CPU input queue (netdev_max_backlog) overflowed while netwhy watched: the \
     `dropped` column of /proc/net/softnet_stat moved. This file is host-wide.",
    [
        "A burst larger than net.core.netdev_max_backlog on one CPU (RPS/RSS steering all \
         traffic to few CPUs).",
    ],
    [
        "cat /proc/net/softnet_stat  (2nd column per CPU)",
        "sysctl net.core.netdev_max_backlog"
    ],
    ["sysctl -w net.core.netdev_max_backlog=4096; spread the load (RPS/RSS)."],
);

pub const DEV_RX_DROPPED: Entry = entry!(@none,
    "dev-rx-dropped",
    false,
    "device rx_dropped moved without a drop event",
    "A device's rx_dropped counter moved while netwhy saw no drop on it: the driver or the \
     core dropped frames before a drop event could name them (ring full, no buffer).",
    [
        "The NIC's receive ring is too small for bursts, or the CPU does not drain it in time.",
        "Frames of a protocol nothing handles (counted here by some drivers).",
    ],
    [
        "ip -s -s link show <dev>",
        "ethtool -S <dev> | grep -i drop",
        "ethtool -g <dev>"
    ],
    ["Enlarge the ring: ethtool -G <dev> rx <n>; spread interrupts (irqbalance, RSS)."],
);

/// Every evidence-driven entry.
pub(super) const ENTRIES: &[Entry] = &[
    NO_SOCKET_UDP,
    NO_SOCKET_TCP,
    SOCKET_BOUND_ELSEWHERE,
    NAT_TUPLE_MISMATCH,
    NFT_RULE_DROP,
    NFT_POLICY_DROP,
    NFT_REJECT,
    IPTABLES_REJECT,
    IPTABLES_DROP,
    IPTABLES_LEGACY_REJECT,
    IPTABLES_LEGACY_DROP,
    CT_INVALID_CHECKSUM,
    CT_INVALID_DROP,
    RP_FILTER_STRICT,
    RP_FILTER_NO_ROUTE,
    FORWARDING_DISABLED,
    NEIGH_FAILED,
    UDP_RMEM_OVERFLOW,
    TC_BPF_DROP,
    XDP_BPF_DROP,
    ACCEPT_QUEUE_FULL,
    SEND_NO_ROUTE,
    UDP_SNDBUF_FULL,
    SOFTNET_BACKLOG_FULL,
    DEV_RX_DROPPED,
    TCP_FLAGS_NEVER_VALID,
    TCP_ACK_TO_LISTENER,
    OTHERHOST_WRONG_NEIGHBOUR,
    BRIDGE_PORT_STP_WAIT,
    MARTIAN_DESTINATION,
    PMTU_BLACKHOLE,
    UDP_EMSGSIZE,
];
