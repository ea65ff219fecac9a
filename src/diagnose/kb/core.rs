//! Generic and socket-level reasons.
use super::Entry;

pub(super) const ENTRIES: &[Entry] = &[
    entry!(
        NOT_SPECIFIED,
        "not-specified",
        true,
        "no reason given: the drop location tells the story",
        "The kernel code that freed the packet did not set a reason. Only the dropping \
         function says what happened.",
        [
            "A route of type blackhole/unreachable/prohibit (drop at ip_error).",
            "A veth pair with mismatched MTUs (drop at __dev_forward_skb2, sender's netns).",
            "Harmless traffic: IPv6 multicast not joined (ip6_mc_input), local fragmentation \
             (skb_release_data).",
            "An XDP program's XDP_DROP (veth_xdp_rcv_skb, do_xdp_generic).",
            "Any code path not yet converted to drop reasons (drivers, older protocols).",
        ],
        [
            "The `function` column of netwhy's output: it names the code path.",
            "ip route get <dst>; ip -d link show  (routes and MTUs, the usual suspects)",
            "nstat -az | grep -i -E 'err|drop|fail'",
        ],
        [
            "Follow the location: netwhy explains the known ones (ip_error, \
             __dev_forward_skb2, ip6_mc_input...).",
            "For a blackhole/unreachable route: ip route del <type> <prefix>",
            "For a veth MTU mismatch: ip link set <dev> mtu <n> on both ends",
        ],
    ),
    entry!(
        NO_SOCKET,
        "no-socket",
        true,
        "no socket listens on this port: is the service up?",
        "The packet reached this host but no socket matched its destination port (and \
         address): nothing is listening. TCP answers with RST, UDP with ICMP port unreachable.",
        [
            "The service is down, crashed, or not started yet.",
            "The service listens on another address (127.0.0.1 instead of 0.0.0.0, IPv6 only) \
             or another port.",
            "The service runs in another network namespace (container) than the one the \
             packet reached.",
            "Replies arriving after the client socket closed (late DNS answers, conntrack \
             NAT mismatches, reply from another address after DNAT).",
        ],
        [
            "ss -lntup  (is anything bound to the port, on which address?)",
            "ip netns identify; ss -lntup in the container's netns",
            "nstat -az UdpNoPorts Udp6NoPorts TcpOutRsts  (UDP: no port; TCP: RSTs sent)",
            "conntrack -L -p udp --dport <port>  (for replies to NATed requests)",
        ],
        [
            "Start the service, or fix its listen address: bind 0.0.0.0 / :: instead of 127.0.0.1.",
            "Point clients (or the DNAT/port mapping) at the port the service uses.",
            "For late replies to closed sockets: raise client timeouts; none needed if rare.",
        ],
    ),
    entry!(
        SOCKET_CLOSE,
        "socket-closed",
        false,
        "socket was closing or closed when data arrived",
        "The destination socket exists but is closed or shutting down, so the packet could \
         not be delivered.",
        [
            "The application closed the socket while the peer was still sending.",
            "A race between close() and incoming data (short-lived connections).",
        ],
        ["ss -tanp state close-wait; ss -tanp state fin-wait-1", "nstat -az TcpExtTCPAbortOnClose"],
        ["Make the application drain and shut down connections cleanly (shutdown() then read to EOF)."],
    ),
    entry!(
        SOCKET_FILTER,
        "socket-filter",
        false,
        "dropped by a BPF socket filter (SO_ATTACH_FILTER)",
        "A classic or eBPF socket filter attached to the receiving socket rejected the packet.",
        [
            "The application attached a filter (tcpdump/libpcap, DHCP clients, custom BPF) \
             that does not match this packet.",
            "A SO_ATTACH_REUSEPORT / sk_filter program rejecting traffic on purpose.",
        ],
        ["ss -0 -p; ss -tuanp  (which process owns the socket)", "bpftool prog show"],
        ["Fix or detach the filter in the application; usually the drop is intended."],
    ),
    entry!(
        SOCKET_RCVBUFF,
        "socket-receive-buffer-full",
        true,
        "socket receive buffer full: app reads too slowly",
        "The receiving socket's buffer was full, so the packet was thrown away: the \
         application does not read as fast as data arrives.",
        [
            "The application reads too slowly (bursts, a single busy thread, GC pauses).",
            "SO_RCVBUF or net.core.rmem_default is small for the traffic.",
            "On old kernels, a receive buffer near 2^31 bytes overflowed (fixed in 2020).",
        ],
        [
            "ss -uamn / ss -tamn  (skmem: r = queued, rb = buffer size, d = drops)",
            "nstat -az UdpRcvbufErrors Udp6RcvbufErrors TcpExtTCPRcvQDrop",
            "sysctl net.core.rmem_default net.core.rmem_max",
        ],
        [
            "Raise the buffer: sysctl -w net.core.rmem_max=26214400 and set SO_RCVBUF in the app \
             (or sysctl -w net.core.rmem_default=<n>).",
            "Read faster: more reader threads, SO_REUSEPORT, recvmmsg().",
        ],
    ),
    entry!(
        UNIX_DISCONNECT,
        "unix-disconnect",
        false,
        "unix socket disconnected: queued data discarded",
        "A Unix datagram socket was disconnected or re-connected, and data queued for it \
         was thrown away.",
        ["A unix datagram peer closed or called connect() to a new address."],
        ["ss -xp  (unix sockets and their processes)"],
        ["Usually expected; otherwise keep the peer open until its data is read."],
    ),
    entry!(
        UNIX_SKIP_OOB,
        "unix-skip-oob",
        false,
        "unix stream OOB byte skipped by a normal read",
        "A Unix stream socket had an out-of-band byte that a normal read skipped over, so \
         its buffer was freed unread.",
        ["An application sends MSG_OOB on an AF_UNIX stream socket; the reader ignores OOB."],
        ["ss -xp"],
        ["None needed unless the application relies on OOB data: read it with MSG_OOB or SO_OOBINLINE."],
    ),
    entry!(
        PKT_TOO_SMALL,
        "packet-too-small",
        false,
        "packet shorter than its headers claim",
        "The packet is shorter than the protocol headers it should carry (truncated or \
         malformed), so it was discarded.",
        [
            "A malformed or truncated packet (broken device, bad offload, fuzzing, scans).",
            "A length field that does not match the data (buggy sender or middlebox).",
        ],
        [
            "nstat -az IpInHdrErrors IpExtInTruncatedPkts UdpInErrors",
            "ethtool -S <dev> | grep -i -E 'err|crc'",
            "tcpdump -ni <dev> -vv  (look for truncated packets)",
        ],
        ["Find the sender or device producing malformed frames; try disabling offloads: ethtool -K <dev> gro off"],
    ),
    entry!(
        NETFILTER_DROP,
        "netfilter-drop",
        true,
        "firewall rule dropped it: nft list ruleset / iptables",
        "A firewall rule (nftables, iptables-nft or iptables-legacy) or a chain policy \
         dropped or rejected the packet.",
        [
            "A DROP/REJECT rule or a default-drop policy (firewalld, ufw, docker, kube-proxy, libvirt).",
            "A conntrack `ct state invalid drop` rule.",
            "Rules from two backends (iptables-legacy and nftables) both active.",
        ],
        [
            "nft list ruleset",
            "iptables-legacy -L -v -n --line-numbers  (rules nft does not show)",
            "Trace the packet: nft insert rule <family> <table> <chain> <match> meta nftrace set 1; \
             nft monitor trace",
            "conntrack -S",
        ],
        [
            "Insert an accept rule before the drop: nft insert rule <family> <table> <chain> <match> accept",
            "Change the firewall manager's config (firewall-cmd, ufw allow...) instead of its rules.",
        ],
    ),
    entry!(
        OTHERHOST,
        "other-host",
        true,
        "frame for another MAC: stale ARP entry on the sender?",
        "The frame's destination MAC address is not this device's, so the kernel dropped it \
         before IP. Seen on a shared segment or in promiscuous mode it is harmless; when the \
         packet's IP destination is this host, the sender's neighbour entry for it points \
         at a wrong or old MAC and every packet from that sender is lost.",
        [
            "A stale or static neighbour (ARP/NDP) entry on the sender after a MAC change.",
            "Promiscuous mode (tcpdump, bridges, some VM setups) on a shared segment.",
            "A switch flooding unknown-unicast traffic.",
        ],
        [
            "ip neigh show <dst>  (on the sender: does the lladdr match this device?)",
            "ip link show <dev>  (this device's MAC)",
            "ip -d link show <dev>  (promiscuity count)",
        ],
        [
            "If the IP destination is this host: fix the sender's entry (ip neigh replace <dst> \
             lladdr <this-mac> dev <dev>, or ip neigh del) or announce: arping -U -I <dev> <dst>",
            "Otherwise none needed.",
        ],
    ),
    entry!(
        XFRM_POLICY,
        "xfrm-policy",
        false,
        "IPsec (xfrm) policy check failed",
        "An IPsec (xfrm) policy required this packet to be protected (or refused it), and \
         the packet did not satisfy the policy.",
        [
            "A packet arrived in clear text where policy requires IPsec (tunnel down, SA expired).",
            "Mismatched policy selectors between peers (strongSwan, libreswan, WireGuard-like setups).",
        ],
        [
            "ip xfrm policy; ip xfrm state",
            "cat /proc/net/xfrm_stat  (XfrmInNoPols, XfrmInPolBlock, XfrmInTmplMismatch...)",
        ],
        ["Re-establish the SA (ipsec restart / swanctl --initiate) or fix the policy selectors."],
    ),
    entry!(
        PROTO_MEM,
        "protocol-memory-limit",
        false,
        "protocol memory limit hit (udp_mem / tcp_mem)",
        "The protocol as a whole (all UDP or all TCP sockets) used more memory than the \
         system-wide limit allows, so new data was dropped.",
        [
            "Many sockets with large unread queues (slow consumers) on a busy host.",
            "net.ipv4.udp_mem / tcp_mem too small for the workload.",
        ],
        [
            "cat /proc/net/sockstat  (mem in pages vs. udp_mem/tcp_mem)",
            "sysctl net.ipv4.udp_mem net.ipv4.tcp_mem",
            "nstat -az UdpMemErrors TcpExtTCPMemoryPressures",
        ],
        [
            "Find and fix the slow readers (ss -tuamn: sockets with big r= values).",
            "Raise the limits: sysctl -w net.ipv4.udp_mem='<min> <pressure> <max>' (pages).",
        ],
    ),
    entry!(
        SOCKET_BACKLOG,
        "socket-backlog-full",
        false,
        "socket backlog full while the app held the socket",
        "Packets arrived while the application held the socket lock, and the socket's \
         backlog queue overflowed.",
        [
            "A very fast sender and an application that holds the socket for long (large reads/writes).",
            "Small receive buffers (the backlog limit follows rcvbuf + sndbuf).",
        ],
        ["nstat -az TcpExtTCPBacklogDrop", "ss -tmn  (skmem of the socket)"],
        ["Raise socket buffers (net.ipv4.tcp_rmem max, SO_RCVBUF); spread load across more sockets."],
    ),
    entry!(
        BPF_CGROUP_EGRESS,
        "bpf-cgroup-egress",
        false,
        "a cgroup BPF egress program refused the packet",
        "A BPF program attached to the sender's cgroup (cgroup_skb/egress) refused to let \
         the packet out.",
        [
            "systemd IPAddressDeny=/IPAddressAllow= on the unit (implemented with cgroup BPF).",
            "Container network policy (Cilium and similar) or a custom cgroup program.",
        ],
        [
            "bpftool cgroup tree",
            "systemctl show <unit> -p IPAddressDeny -p IPAddressAllow",
        ],
        ["Adjust the unit's IPAddressAllow=/IPAddressDeny= or the network policy that installed the program."],
    ),
    entry!(
        SECURITY_HOOK,
        "security-hook",
        false,
        "an LSM (SELinux, AppArmor, Smack) refused the packet",
        "A Linux security module denied delivery of the packet to the socket (for example \
         SELinux peer labeling or secmark).",
        ["SELinux/Smack network labeling or secmark rules; an AppArmor network rule."],
        [
            "ausearch -m avc -ts recent; dmesg | grep -i -E 'avc|apparmor'",
            "getenforce; aa-status",
        ],
        ["Fix the policy (audit2allow for SELinux, the AppArmor profile) rather than disabling the LSM."],
    ),
    entry!(
        QUEUE_PURGE,
        "queue-purge",
        false,
        "queued packets freed in bulk (socket close): harmless",
        "A whole queue of packets was freed at once, typically when a socket or device was \
         closed with data still queued.",
        [
            "Sockets closing with unread or unsent data (normal on a busy host).",
            "Devices going down or being reconfigured.",
        ],
        ["ss -s", "ip link  (devices flapping?)"],
        ["None needed unless it correlates with application errors."],
    ),
    entry!(
        PACKET_SOCK_ERROR,
        "packet-socket-error",
        false,
        "AF_PACKET socket could not take the packet",
        "A packet socket (tcpdump, DHCP client, custom capture) matched the packet but \
         failed to queue it, usually because its buffer or ring was full.",
        ["A capture tool that reads too slowly; a small PACKET_RX_RING or SO_RCVBUF."],
        ["ss -0 -p  (packet sockets and owners)", "tcpdump's 'dropped by kernel' counter"],
        ["Give the capture a bigger buffer (tcpdump -B 65536) or a narrower filter."],
    ),
    entry!(
        PFMEMALLOC,
        "pfmemalloc",
        false,
        "emergency-reserve packet for a normal socket",
        "The packet was built from emergency memory reserves, which only sockets used for \
         swap (e.g. swap over NFS) may consume; other sockets must drop it.",
        ["The host is under severe memory pressure."],
        ["free -m; cat /proc/pressure/memory", "sysctl vm.min_free_kbytes"],
        ["Relieve memory pressure (fewer workloads, more RAM) or raise vm.min_free_kbytes."],
    ),
    entry!(
        NOMEM,
        "no-memory",
        false,
        "kernel could not allocate memory for the packet",
        "A memory allocation failed while handling the packet (copying, expanding or \
         cloning it).",
        ["Memory pressure or fragmentation; a memory cgroup limit for the socket owner."],
        ["free -m; cat /proc/pressure/memory; dmesg | grep -i 'allocation failure'"],
        ["Free memory or raise the cgroup's memory limit; check for leaks."],
    ),
    entry!(
        SKB_CSUM,
        "skb-checksum-error",
        false,
        "checksum computation on the packet failed",
        "Computing or completing the packet's checksum failed, often with offloads.",
        ["Checksum offload bugs in a driver or a virtual device."],
        ["ethtool -k <dev> | grep checksum", "ethtool -S <dev>"],
        ["Disable the offload to test: ethtool -K <dev> tx off rx off"],
    ),
    entry!(
        SKB_GSO_SEG,
        "gso-segmentation-error",
        false,
        "GSO segmentation failed",
        "A large GSO packet could not be split into wire-sized segments.",
        [
            "A tunnel or virtual device receiving GSO packets it cannot segment.",
            "Driver or offload bugs.",
        ],
        ["ethtool -k <dev> | grep -E 'segmentation|gso'", "dmesg"],
        ["Disable the offload to test: ethtool -K <dev> gso off tso off"],
    ),
    entry!(
        SKB_UCOPY_FAULT,
        "user-copy-fault",
        false,
        "copying data from user space failed",
        "Data could not be copied from the application's memory (bad buffer, zero-copy \
         failure).",
        ["An application passing an invalid buffer; zerocopy send failures."],
        ["strace -e trace=network -p <pid>  (EFAULT returns)"],
        ["Fix the application's buffer handling."],
    ),
    entry!(
        HDR_TRUNC,
        "header-truncated",
        false,
        "could not read a protocol header: truncated packet",
        "The kernel could not pull a protocol header into the packet's linear data: the \
         packet is shorter than its headers.",
        ["Malformed or truncated packets; broken encapsulation."],
        ["tcpdump -ni <dev> -vv", "ethtool -S <dev>"],
        ["Find the source of malformed packets; check tunnels and offloads."],
    ),
    entry!(
        UNHANDLED_PROTO,
        "unhandled-protocol",
        true,
        "protocol not supported here (ethertype/proto)",
        "No handler exists for the packet's protocol (an ethertype or L4 protocol this \
         kernel does not implement or has not loaded).",
        [
            "Traffic for protocols this host does not run (LLDP, STP, vendor protocols...).",
            "A missing kernel module.",
        ],
        ["tcpdump -ni <dev> -e  (ethertype of the dropped frames)"],
        ["Usually harmless; load the module if this host should handle the protocol."],
    ),
    entry!(
        PSP_INPUT,
        "psp-input-policy",
        false,
        "PSP (PSP Security Protocol) input policy check failed",
        "A received packet did not match the PSP encryption policy of its socket (clear \
         text where PSP was required, or a wrong key).",
        ["PSP association missing or rotated on one side; mismatched policy."],
        ["Check the application's PSP association setup and device PSP support (ynl psp)."],
        ["Re-establish the PSP association on both peers."],
    ),
    entry!(
        PSP_OUTPUT,
        "psp-output-policy",
        false,
        "PSP (PSP Security Protocol) output policy check failed",
        "A packet to be sent did not satisfy the socket's PSP policy and was dropped on \
         the way out.",
        ["PSP association missing or rotated; the device lost PSP state."],
        ["Check the application's PSP association and the device's PSP state (ynl psp)."],
        ["Re-establish the PSP association."],
    ),
    entry!(
        RECURSION_LIMIT,
        "xmit-recursion-limit",
        false,
        "transmit recursion limit hit: device/tunnel loop?",
        "Sending the packet nested too deeply through stacked virtual devices, usually a \
         loop (a tunnel whose underlay routes back into itself).",
        [
            "A tunnel routed over itself (the remote endpoint's route points into the tunnel).",
            "Too many stacked devices (vlan on bond on bridge on tunnel...).",
        ],
        ["ip route get <tunnel-remote-address>  (must not go through the tunnel)", "dmesg | grep -i recursion"],
        ["Add a route for the tunnel endpoint via the physical interface: ip route add <remote>/32 via <gw> dev <phys>"],
    ),
    entry!(
        CAN_RX_INVALID_FRAME,
        "can-invalid-frame",
        false,
        "invalid CAN frame received",
        "A CAN (Controller Area Network) frame failed validation (wrong size or flags).",
        ["A misbehaving CAN device or driver; a wrong MTU on a CAN interface."],
        ["ip -d -s link show <can-dev>"],
        ["Check the CAN device and its bitrate/MTU configuration."],
    ),
    entry!(
        CANFD_RX_INVALID_FRAME,
        "canfd-invalid-frame",
        false,
        "invalid CAN FD frame received",
        "A CAN FD frame failed validation (wrong size or flags).",
        ["A misbehaving CAN FD device or driver; CAN FD not enabled on the interface."],
        ["ip -d -s link show <can-dev>"],
        ["Enable CAN FD (ip link set <can-dev> type can fd on) or fix the sender."],
    ),
    entry!(
        CANXL_RX_INVALID_FRAME,
        "canxl-invalid-frame",
        false,
        "invalid CAN XL frame received",
        "A CAN XL frame failed validation (wrong size or flags).",
        ["A misbehaving CAN XL device or driver; CAN XL not enabled on the interface."],
        ["ip -d -s link show <can-dev>"],
        ["Check the interface's CAN XL configuration and the sender."],
    ),
    entry!(
        CONSUMED,
        "not-a-drop-consumed",
        false,
        "normal free, not a drop",
        "The packet was freed after normal processing. netwhy does not count these as drops.",
        ["Normal operation."],
        [],
        [],
    ),
    entry!(
        NOT_DROPPED_YET,
        "not-a-drop-yet",
        false,
        "internal placeholder, not a drop",
        "An internal value meaning no drop decision was made yet. It should not appear in \
         drops.",
        ["Normal operation."],
        [],
        [],
    ),
];
