//! Reasons newer than the 6.18 kernels netwhy's lab runs on: names from
//! 7.x and net-next (tests/fixtures/kernel/upstream_drop_reasons.txt dates
//! them), and one vendor reason. Kept apart so it is plain which entries
//! were written from kernel comments alone; an entry moves to its topic's
//! file once a lab scenario reproduces it.
use super::Entry;

pub(super) const ENTRIES: &[Entry] = &[
    entry!(
        QDISC_BURST_DROP,
        "qdisc-burst-limit",
        false,
        "more than net.core.qdisc_max_burst queued at once",
        "The packet was dropped on transmit because one burst handed to the device's qdisc \
         went over the net.core.qdisc_max_burst limit.",
        [
            "A sender (or a GSO/GRO burst) queueing more packets at once than the limit allows.",
            "A limit lowered below what the workload needs.",
        ],
        ["sysctl net.core.qdisc_max_burst", "tc -s qdisc show dev <dev>"],
        ["Raise the limit if the bursts are legitimate: sysctl -w net.core.qdisc_max_burst=<n>"],
    ),
    entry!(
        MACVLAN_BROADCAST_BACKLOG,
        "macvlan-broadcast-backlog-full",
        false,
        "macvlan broadcast queue full",
        "A broadcast or multicast frame for macvlan devices could not be queued: the \
         macvlan port's broadcast backlog was full.",
        [
            "A broadcast/multicast storm on the lower device.",
            "Many macvlan devices on one port with a small broadcast queue.",
        ],
        ["ip -d link show <macvlan>  (bcqueuelen)", "ip -s link show <lower-dev>"],
        ["Raise the queue: ip link set <macvlan> type macvlan bcqueuelen <n>; find the storm's source."],
    ),
    entry!(
        IPVLAN_MULTICAST_BACKLOG,
        "ipvlan-multicast-backlog-full",
        false,
        "ipvlan multicast queue full",
        "A multicast or broadcast packet for ipvlan devices could not be queued: the ipvlan \
         port's multicast backlog was full.",
        ["A multicast/broadcast storm on the lower device; many ipvlan slaves."],
        ["ip -d link show type ipvlan", "ip -s link show <lower-dev>"],
        ["Find and stop the multicast flood; spread the slaves over more lower devices."],
    ),
    entry!(
        SKB_BAD_GSO,
        "bad-gso-packet",
        false,
        "malformed GSO packet refused before the qdisc",
        "A GSO packet handed to the device's transmit path had headers that could not be \
         pulled or no payload beyond them; the kernel calls it malicious and drops it before \
         the qdisc (the device's tx_dropped counts it).",
        [
            "A packet socket, tun/tap or virtio user passing bogus GSO metadata (gso_size, \
             segment count, header lengths).",
            "A buggy driver or BPF program that rewrote headers of a GSO packet.",
        ],
        ["ip -s link show <dev>  (tx dropped)", "ethtool -k <dev> | grep -E 'segmentation|gso'"],
        ["Fix the sender's virtio-net/tap GSO metadata; as a stopgap: ethtool -K <dev> gso off tso off"],
    ),
    entry!(
        IP_TTL_EXCEEDED,
        "ttl-exceeded",
        false,
        "TTL/hop limit ran out while forwarding",
        "A packet to be forwarded arrived with an IPv4 TTL or IPv6 hop limit of 1 or less; the \
         router dropped it and sent ICMP time exceeded (older kernels report IP_INHDR here).",
        [
            "A routing loop between two routers (the packet circles until its TTL runs out).",
            "traceroute/mtr probes: expected.",
            "A sender using a tiny TTL (some VPN or multicast setups).",
        ],
        [
            "nstat -az IpInHdrErrors Ip6InHdrErrors IcmpOutTimeExcds",
            "mtr -n <dst>  (repeating hops mean a routing loop)",
        ],
        ["Break the loop: fix the route that points back (ip route get <dst> on each hop)."],
    ),
    entry!(
        IPV6_TOO_MANY_EXTHDRS,
        "ipv6-too-many-extension-headers",
        false,
        "IPv6 packet with too many extension headers",
        "The IPv6 packet carried more extension headers than the kernel's limit \
         (IP6_MAX_EXT_HDRS_CNT) and was dropped while walking them.",
        ["Crafted or fuzzed packets (a scanner, an attack); a broken encapsulation stacking headers."],
        ["tcpdump -ni <dev> -vv ip6  (the header chain)", "nstat -az Ip6InHdrErrors"],
        ["Nothing to fix locally for hostile traffic; filter the source if it persists."],
    ),
    entry!(
        TUNNEL_INVALID_HDR,
        "tunnel-invalid-header",
        false,
        "invalid tunnel (VXLAN...) header",
        "A tunnel packet had an invalid encapsulation header, e.g. VXLAN reserved bits set or \
         its I flag missing (the newer name of VXLAN_INVALID_HDR).",
        ["A peer speaking another encapsulation or other options (GBP, GPE) on the tunnel port."],
        ["ip -d link show <tunnel-dev>", "tcpdump -ni <dev> udp port 4789 -vv"],
        ["Match the tunnel options (port, gbp, gpe) on both ends."],
    ),
    entry!(
        TUNNEL_NOT_FOUND,
        "tunnel-device-not-found",
        false,
        "no tunnel device for this packet (e.g. VNI)",
        "No local tunnel device accepts the packet, e.g. no VXLAN device for its VNI (the \
         newer name of VXLAN_VNI_NOT_FOUND).",
        ["VNI or key mismatch between the tunnel ends; the tunnel device missing or down."],
        ["ip -d link show type vxlan  (id = VNI, dstport)", "ip -d link show type geneve"],
        ["Create the tunnel device with the peer's id, or fix the remote's VNI."],
    ),
    entry!(
        SKB_RX_HEADROOM,
        "rx-headroom-short",
        false,
        "not enough headroom in a received buffer",
        "Seen only in vendor 6.18.44 builds, with no upstream kernel comment to quote: by its \
         name, a received packet's buffer lacked the headroom (space before the data) a \
         receive path needed, and could not be expanded.",
        [
            "A driver or virtual device (veth, tun, XDP) handing up buffers with less headroom \
             than a later step (encapsulation, XDP, GRO) requires.",
            "Memory pressure: reallocating the head to make room failed.",
        ],
        [
            "The dropping function in LOCATION names the path: netwhy reasons SKB_RX_HEADROOM --at <function>",
            "ip -s link show <dev>; ethtool -S <dev>",
            "grep -n RX_HEADROOM in the vendor kernel's include/net/dropreason-core.h",
        ],
        ["No generic fix: follow the dropping function; ask the kernel's vendor what sets it."],
    ),
];
