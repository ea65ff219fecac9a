//! IP, ICMP, UDP checksum, fragmentation, IPv6 neighbour discovery and
//! neighbour (ARP/NDP) reasons.
use super::Entry;

pub(super) const ENTRIES: &[Entry] = &[
    UDP_CSUM,
    entry!(
        IP_CSUM,
        "ip-bad-checksum",
        false,
        "bad IPv4 header checksum",
        "The IPv4 header checksum was wrong, so the packet was treated as corrupt.",
        ["Corruption on the wire or in a device; a sender or middlebox writing bad headers."],
        ["nstat -az IpExtInCsumErrors", "ethtool -S <dev> | grep -i -E 'crc|err'"],
        ["Find the corrupting link or device; test with offloads off (ethtool -K <dev> rx off tx off)."],
    ),
    entry!(
        IP_INHDR,
        "ip-header-error",
        true,
        "bad IP header, or TTL expired while forwarding",
        "The IP header was invalid (bad version, length or options), or a forwarded packet's \
         TTL/hop limit ran out.",
        [
            "TTL expired in forwarding: a routing loop, or traceroute (drop at ip_forward).",
            "Malformed packets: wrong header length, total length, or options.",
        ],
        [
            "nstat -az IpInHdrErrors Ip6InHdrErrors IcmpOutTimeExcds",
            "mtr -n <dst>  (repeating hops mean a routing loop)",
        ],
        [
            "For a routing loop: fix the route on one side (ip route replace <prefix> via <gw>).",
            "For malformed packets: find the sender (tcpdump -ni <dev> -vv).",
        ],
    ),
    entry!(
        IP_RPFILTER,
        "reverse-path-filter",
        true,
        "reverse-path filter: source not routed back via this iface",
        "Reverse path filtering dropped the packet: the route back to its source address \
         does not go out of the interface it came in on (strict mode), or does not exist \
         at all (loose mode).",
        [
            "Asymmetric routing: replies come back on another interface (multi-homed hosts, \
             VPNs, policy routing, multiple uplinks).",
            "A source address with no route back (spoofed, or a missing route in loose mode).",
        ],
        [
            "sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.<dev>.rp_filter  \
             (the effective value is the max of both: 1 strict, 2 loose)",
            "ip route get <src> from <dst> iif <dev>  (the reverse lookup)",
            "nstat -az TcpExtIPReversePathFilter",
        ],
        [
            "Use loose mode on the interface: sysctl -w net.ipv4.conf.<dev>.rp_filter=2 \
             (and conf.all.rp_filter must not be 1: set it to 0 or 2).",
            "Add the route back to the source via this interface, or make routing symmetric.",
        ],
    ),
    entry!(
        UNICAST_IN_L2_MULTICAST,
        "unicast-in-l2-multicast",
        false,
        "unicast IP inside a multicast/broadcast frame",
        "The frame was sent to a multicast or broadcast MAC but carries a unicast IP \
         destination; the kernel drops such packets when configured to.",
        ["A misconfigured sender or switch; deliberate filtering on wireless/hotspot networks."],
        ["sysctl net.ipv4.conf.<dev>.drop_unicast_in_l2_multicast"],
        ["Fix the sender, or set net.ipv4.conf.<dev>.drop_unicast_in_l2_multicast=0 if they are wanted."],
    ),
    entry!(
        IP_NOPROTO,
        "ip-unknown-protocol",
        false,
        "no handler for this IP protocol number",
        "The packet was for this host but carries an IP protocol (L4) that nothing \
         handles: no kernel module and no raw socket for it.",
        [
            "A protocol this host does not use (GRE, SCTP, ESP...) with the module not loaded.",
            "Scans probing protocol numbers.",
        ],
        ["nstat -az IpInUnknownProtos", "tcpdump -ni <dev> 'not tcp and not udp and not icmp'"],
        ["Load the module (modprobe ip_gre, sctp...) if the host should speak it; else harmless."],
    ),
    entry!(
        IP_OUTNOROUTES,
        "ip-out-no-route",
        false,
        "no route to send this packet",
        "A locally generated or forwarded packet found no route to its destination on the \
         way out.",
        [
            "Missing default route or a route removed by a network manager / VPN.",
            "A source address or policy rule selecting a table without the route.",
        ],
        ["ip route get <dst> from <src>", "ip rule show; ip route show table all", "nstat -az IpOutNoRoutes"],
        ["Add the route: ip route add <prefix> via <gw> dev <dev> (or restore the default route)."],
    ),
    entry!(
        IPV6DISABLED,
        "ipv6-disabled",
        false,
        "IPv6 is disabled on this interface",
        "An IPv6 packet arrived on, or was sent through, an interface where IPv6 is turned off.",
        ["net.ipv6.conf.<dev>.disable_ipv6=1 (or ipv6.disable on the kernel command line)."],
        ["sysctl net.ipv6.conf.all.disable_ipv6 net.ipv6.conf.<dev>.disable_ipv6"],
        ["Enable IPv6 if wanted: sysctl -w net.ipv6.conf.<dev>.disable_ipv6=0; else harmless."],
    ),
    entry!(
        ICMP_CSUM,
        "icmp-bad-checksum",
        false,
        "bad ICMP checksum",
        "An ICMP message failed its checksum and was discarded.",
        ["Corruption on the wire; a sender building ICMP by hand with a wrong checksum."],
        ["nstat -az IcmpInCsumErrors Icmp6InCsumErrors"],
        ["Find the sender or the corrupting link."],
    ),
    entry!(
        INVALID_PROTO,
        "icmp-not-allowed",
        false,
        "ICMP message not allowed here (e.g. broadcast)",
        "An ICMP message broke protocol rules the kernel enforces, such as a timestamp or \
         echo request sent to a broadcast address.",
        [
            "Broadcast/multicast pings or timestamps while icmp_echo_ignore_broadcasts=1.",
            "Malformed or unexpected ICMP types.",
        ],
        ["sysctl net.ipv4.icmp_echo_ignore_broadcasts", "nstat -az IcmpInErrors"],
        ["Usually intended; do not ping broadcast addresses."],
    ),
    entry!(
        IP_INADDRERRORS,
        "ip-address-error",
        true,
        "bad destination address, or forwarding is disabled",
        "The destination address is not valid for this host: the packet is not for us and \
         forwarding is off, or the address is invalid (e.g. class E).",
        [
            "IP forwarding is disabled while this host is expected to route (net.ipv4.ip_forward=0).",
            "A packet sent to this host's MAC but another host's IP (stale ARP, wrong gateway).",
            "Invalid destination addresses.",
        ],
        [
            "sysctl net.ipv4.ip_forward net.ipv4.conf.<dev>.forwarding net.ipv6.conf.all.forwarding",
            "ip route get <dst> from <src> iif <dev>",
            "nstat -az IpInAddrErrors Ip6InAddrErrors",
        ],
        [
            "Enable forwarding on a router: sysctl -w net.ipv4.ip_forward=1 (persist in /etc/sysctl.d/).",
            "Otherwise fix the sender's gateway or ARP entry pointing at this host.",
        ],
    ),
    IP_INNOROUTES,
    entry!(
        IP_LOCAL_SOURCE,
        "ip-martian-local-source",
        false,
        "source address is one of ours: spoofed or a loop",
        "An incoming packet claims a source address that belongs to this host (a martian \
         source), so it is discarded.",
        ["A loop reflecting our own packets back; spoofed traffic; duplicate IPs on the network."],
        [
            "sysctl -w net.ipv4.conf.all.log_martians=1; dmesg | grep martian",
            "arping -D -I <dev> <our-ip>  (duplicate address?)",
        ],
        ["Remove the duplicate address or the loop (bridges, mirrored ports)."],
    ),
    entry!(
        IP_INVALID_SOURCE,
        "ip-martian-invalid-source",
        false,
        "invalid source address (martian)",
        "The packet's source address can never be valid (multicast, broadcast, 0.0.0.0 for \
         non-DHCP traffic...), so it is discarded as a martian.",
        ["Spoofed or malformed traffic; misconfigured hosts."],
        ["sysctl -w net.ipv4.conf.all.log_martians=1; dmesg | grep martian"],
        ["Find and fix the sender; harmless otherwise."],
    ),
    entry!(
        IP_LOCALNET,
        "ip-localnet-outside-loopback",
        true,
        "127.0.0.0/8 address seen outside loopback",
        "A packet with a loopback (127/8) address arrived on a non-loopback interface, which \
         is refused unless route_localnet is enabled.",
        ["DNAT to 127.0.0.1 (port forwarding to a localhost-only service)."],
        ["sysctl net.ipv4.conf.<dev>.route_localnet"],
        [
            "Make the service listen on the interface address instead of 127.0.0.1,",
            "or allow it: sysctl -w net.ipv4.conf.<dev>.route_localnet=1 (understand the risk first).",
        ],
    ),
    entry!(
        IP_INVALID_DEST,
        "ip-martian-invalid-dest",
        false,
        "invalid destination address (e.g. 0.0.0.0)",
        "The destination address can never be valid for routing (such as 0.0.0.0 or a \
         reserved range), so the packet is discarded.",
        ["Malformed or scanning traffic; misconfigured applications."],
        ["sysctl -w net.ipv4.conf.all.log_martians=1; dmesg | grep martian"],
        ["Find and fix the sender."],
    ),
    entry!(
        PKT_TOO_BIG,
        "packet-too-big",
        true,
        "packet bigger than the MTU and cannot fragment",
        "The packet is larger than the MTU of the way out and could not be fragmented (DF \
         set, GSO too large, or IPv6), so it was dropped; an ICMP 'too big' goes back to \
         the sender.",
        [
            "A smaller MTU on the way out (tunnel, VPN, VXLAN, PPPoE).",
            "ICMP filtered on the way back (path MTU discovery black hole).",
        ],
        [
            "ip route get <dst>; ip link show <out-dev>  (mtu)",
            "ping -M do -s <size> <dst>",
            "nstat -az IpFragFails Ip6InTooBigErrors",
        ],
        [
            "Clamp TCP MSS: nft add rule inet filter forward tcp flags syn tcp option maxseg size set rt mtu",
            "Match MTUs: ip link set <dev> mtu <n>",
            "Allow ICMP 'fragmentation needed' / ICMPv6 'packet too big' through firewalls.",
        ],
    ),
    entry!(
        DUP_FRAG,
        "duplicate-fragment",
        false,
        "duplicate IP fragment: harmless",
        "A fragment duplicated one already queued for reassembly and was discarded.",
        ["Retransmissions or duplicated frames on the path."],
        ["nstat -az IpReasmFails Ip6ReasmFails"],
        ["None needed unless reassembly failures also rise."],
    ),
    entry!(
        FRAG_REASM_TIMEOUT,
        "fragment-reassembly-timeout",
        false,
        "fragment reassembly timed out: fragments lost",
        "Not all fragments of a packet arrived in time, so the pieces received were thrown away.",
        [
            "Fragments lost or filtered on the way (firewalls dropping non-first fragments).",
            "Reassembly memory limits too small under load.",
        ],
        [
            "nstat -az IpReasmTimeout IpReasmFails Ip6ReasmTimeout",
            "sysctl net.ipv4.ipfrag_time net.ipv4.ipfrag_high_thresh",
        ],
        ["Avoid fragmentation (smaller datagrams, MSS clamping) or fix the path dropping fragments."],
    ),
    entry!(
        FRAG_TOO_FAR,
        "fragment-too-far",
        false,
        "IPv4 fragment arrived too far out of order",
        "A fragment arrived after too many other packets from the same source \
         (net.ipv4.ipfrag_max_dist), so its incomplete packet was abandoned.",
        ["Heavy reordering on the path; many concurrent fragmented flows from one source."],
        ["sysctl net.ipv4.ipfrag_max_dist", "nstat -az IpReasmFails"],
        ["Raise or disable the limit: sysctl -w net.ipv4.ipfrag_max_dist=0; better, avoid fragmentation."],
    ),
    entry!(
        IPV6_BAD_EXTHDR,
        "ipv6-bad-extension-header",
        false,
        "bad or refused IPv6 extension header",
        "An IPv6 extension header was malformed or not allowed (for example too many or too \
         long options, or a refused routing header).",
        ["Malformed traffic; routing headers rejected by policy (accept_source_route)."],
        ["nstat -az Ip6InHdrErrors", "sysctl net.ipv6.conf.all.accept_source_route"],
        ["Usually intended; fix the sender."],
    ),
    entry!(
        IPV6_NDISC_FRAG,
        "ipv6-ndisc-fragmented",
        false,
        "fragmented neighbour discovery message refused",
        "A neighbour discovery message arrived fragmented, which the kernel refuses by \
         default (suppress_frag_ndisc).",
        ["A sender fragmenting ND messages (often an attack or a broken stack)."],
        ["sysctl net.ipv6.conf.<dev>.suppress_frag_ndisc"],
        ["None needed; fix the sender."],
    ),
    entry!(
        IPV6_NDISC_HOP_LIMIT,
        "ipv6-ndisc-hop-limit",
        false,
        "neighbour discovery with hop limit != 255",
        "A neighbour discovery message did not have hop limit 255, so it may have crossed a \
         router and is refused.",
        ["ND messages forwarded or generated with a wrong hop limit (spoofing or a broken stack)."],
        ["tcpdump -ni <dev> -vv icmp6"],
        ["Fix the sender; none needed otherwise."],
    ),
    entry!(
        IPV6_NDISC_BAD_CODE,
        "ipv6-ndisc-bad-code",
        false,
        "neighbour discovery with a non-zero ICMPv6 code",
        "A neighbour discovery message carried an invalid ICMPv6 code and was refused.",
        ["A broken or malicious sender."],
        ["tcpdump -ni <dev> -vv icmp6"],
        ["Fix the sender."],
    ),
    entry!(
        IPV6_NDISC_BAD_OPTIONS,
        "ipv6-ndisc-bad-options",
        false,
        "neighbour discovery with invalid options",
        "A neighbour discovery message had malformed options and was refused.",
        ["A broken or malicious sender."],
        ["tcpdump -ni <dev> -vv icmp6"],
        ["Fix the sender."],
    ),
    entry!(
        IPV6_NDISC_NS_OTHERHOST,
        "ipv6-ndisc-ns-other-host",
        false,
        "neighbour solicitation for another host: harmless",
        "A neighbour solicitation asked about an address that is not ours. Normal on shared \
         links.",
        ["Normal IPv6 traffic on a shared link."],
        ["ip -6 addr"],
        ["None needed."],
    ),
    entry!(
        NEIGH_CREATEFAIL,
        "neighbour-create-failed",
        false,
        "could not create an ARP/ND entry: neighbour table full?",
        "The kernel could not create a neighbour (ARP/NDP) entry for the next hop, usually \
         because the neighbour table is full.",
        [
            "More neighbours than net.ipv4.neigh.default.gc_thresh3 (large L2 networks, \
             scans of a big subnet, many containers).",
        ],
        [
            "ip -4 neigh | wc -l; sysctl net.ipv4.neigh.default.gc_thresh1 gc_thresh2 gc_thresh3",
            "dmesg | grep 'neighbor table overflow'",
        ],
        [
            "Raise the thresholds: sysctl -w net.ipv4.neigh.default.gc_thresh3=<n> (and gc_thresh2, \
             same for net.ipv6.neigh.default).",
        ],
    ),
    entry!(
        NEIGH_FAILED,
        "neighbour-resolution-failed",
        true,
        "next hop did not answer ARP/NDP: host down?",
        "The next hop's MAC address could not be resolved: ARP or neighbour solicitations \
         went unanswered, so packets waiting for it were dropped.",
        [
            "The next hop or destination host is down or unplugged.",
            "A wrong gateway or on-link route pointing at an address nobody has.",
            "ARP filtered (firewall, arp_ignore/arp_filter on the target, VLAN mismatch).",
        ],
        [
            "ip neigh show  (FAILED / INCOMPLETE entries)",
            "arping -I <dev> <next-hop>",
            "ip route get <dst>  (which next hop is used?)",
        ],
        [
            "Bring the next hop up, or fix the route/gateway: ip route replace <prefix> via <gw>",
            "For a host that moved: ip neigh flush dev <dev>",
        ],
    ),
    entry!(
        NEIGH_QUEUEFULL,
        "neighbour-queue-full",
        true,
        "too many packets waiting for ARP/NDP resolution",
        "Packets were queued while the next hop's MAC was being resolved, and the per-entry \
         queue overflowed.",
        [
            "The next hop does not answer ARP (see NEIGH_FAILED) while traffic keeps coming.",
            "Bursts toward a new neighbour with a small unresolved queue.",
        ],
        [
            "ip neigh show; cat /proc/net/stat/arp_cache  (unresolved_discards)",
            "sysctl net.ipv4.neigh.<dev>.unres_qlen_bytes",
        ],
        [
            "Fix the unreachable next hop first.",
            "Raise the queue: sysctl -w net.ipv4.neigh.<dev>.unres_qlen_bytes=<bytes>",
        ],
    ),
    entry!(
        NEIGH_DEAD,
        "neighbour-dead",
        false,
        "neighbour entry was removed while in use",
        "The neighbour entry for the next hop was being deleted (device down, flush) when \
         the packet tried to use it.",
        ["Interfaces going down or neighbour tables flushed during traffic."],
        ["ip monitor neigh link", "ip link  (flapping devices)"],
        ["Usually transient; fix the flapping link if it repeats."],
    ),
    entry!(
        NEIGH_HH_FILLFAIL,
        "neighbour-header-fill-failed",
        false,
        "could not build the link-layer header",
        "Filling in the cached link-layer header for the next hop failed while sending.",
        ["Races with neighbour updates; unusual device types."],
        ["ip neigh show; dmesg"],
        ["Usually transient; report it if it persists."],
    ),
    entry!(
        ARP_PVLAN_DISABLE,
        "arp-private-vlan-off",
        false,
        "ARP not proxied back out the same port (proxy_arp_pvlan)",
        "An ARP request that would have to be answered back out the interface it came in \
         on was refused because private-VLAN proxy ARP is off.",
        ["Private VLAN / port isolation setups expecting the router to proxy ARP."],
        ["sysctl net.ipv4.conf.<dev>.proxy_arp_pvlan net.ipv4.conf.<dev>.proxy_arp"],
        ["Enable it if that is the design: sysctl -w net.ipv4.conf.<dev>.proxy_arp_pvlan=1"],
    ),
];

/// Named: the lab's routing scenario expects it.
pub const IP_INNOROUTES: Entry = entry!(
    IP_INNOROUTES,
    "no-route",
    true,
    "no route for the incoming packet: ip route get",
    "The packet arrived to be forwarded but no route leads to its destination \
     (network unreachable).",
    [
        "A missing route on this router (no default route, a withdrawn prefix).",
        "Policy routing sending the packet to a table without the route.",
    ],
    [
        "ip route get <dst> from <src> iif <in-dev>",
        "ip rule show; ip route show table all",
        "nstat -az IpExtInNoRoutes Ip6InNoRoutes",
    ],
    ["Add the route: ip route add <prefix> via <gw> dev <dev> (or a default route)."],
);

/// Named: the lab's checksum scenario (without a firewall) expects it.
pub const UDP_CSUM: Entry = entry!(
    UDP_CSUM,
    "udp-csum",
    true,
    "bad UDP checksum: corrupt packet or offload bug",
    "The UDP checksum did not match the data, so the datagram was discarded as corrupt.",
    [
        "Corruption on the wire or in a device (bad cable, NIC, driver).",
        "Checksum offload misbehaving on a virtual device or tunnel.",
        "A sender building packets with a wrong checksum (raw sockets, broken middlebox).",
    ],
    [
        "nstat -az UdpInCsumErrors Udp6InCsumErrors",
        "ethtool -k <dev> | grep checksum; ethtool -S <dev> | grep -i err",
        "tcpdump -ni <dev> -vv udp  (shows `bad udp cksum`)",
    ],
    [
        "Test with offloads off on the sender: ethtool -K <dev> tx off",
        "Replace the faulty link/NIC if hardware errors climb.",
    ],
);
