//! Evidence-driven diagnoses for reasons whose name alone says little: the
//! captured packet (TCP flags, Ethernet addresses, a martian destination)
//! and the devices' state (neighbour entries, bridge ports) decide them.
//! Kept apart from `specific.rs` so that file stays readable.
use super::Entry;

pub const TCP_FLAGS_NEVER_VALID: Entry = entry!(
    TCP_FLAGS,
    "tcp-flags-never-valid",
    true,
    "TCP flags no stack sends (scan or crafted)",
    "The segment carries a flag combination no TCP implementation ever sends (SYN+FIN, no \
     flag at all, FIN without ACK, FIN+PSH+URG), so the receiving socket dropped it \
     without an answer. Something crafted it: a port scanner, a fuzzer, a raw-socket tool, \
     or a middlebox or NIC that corrupts TCP headers.",
    [
        "A port scan (nmap -sX/-sN/-sF, masscan) against this host.",
        "A test or fuzzing tool sending hand-made segments.",
        "A middlebox, NIC offload or broken NAT rewriting TCP header bytes.",
    ],
    [
        "tcpdump -eni <dev> tcp and host <dst>  (the flags and the sender's MAC)",
        "ss -w -0 -p  (raw and packet sockets on the sender, with their processes)",
    ],
    ["Stop or fix what crafts the segments on the sender; the receiver needs no change."],
);

pub const TCP_ACK_TO_LISTENER: Entry = entry!(
    TCP_FLAGS,
    "tcp-ack-to-listener",
    false,
    "ACK for a connection this listener does not have",
    "A bare ACK reached a listening socket: the peer believes a connection exists that this \
     host does not know (it restarted, reset it, or never had it). The kernel answers with \
     a reset and drops the segment.",
    [
        "The server restarted or its connection timed out while the client kept sending.",
        "A load balancer or NAT moved an established flow to another backend.",
        "A SYN-cookie ACK that failed validation.",
    ],
    [
        "ss -tan 'sport = :<port>'",
        "conntrack -L -p tcp --dport <port>"
    ],
    ["Make the client reconnect; keep flows pinned to one backend (NAT/LB affinity)."],
);

pub const OTHERHOST_WRONG_NEIGHBOUR: Entry = entry!(
    OTHERHOST,
    "otherhost-wrong-neighbour",
    true,
    "sender's ARP entry for our IP points at another MAC",
    "The packet was addressed to this host's IP, but its frame to another MAC address: the \
     sender's neighbour (ARP/NDP) entry for the address is stale or wrong, so every packet \
     it sends here is dropped before IP as another host's frame.",
    [
        "A static (permanent) neighbour entry left over after a NIC, VM or container changed MAC.",
        "An address moved between hosts (failover, DHCP) and the sender's cache is stale.",
        "Two hosts claim the same IP (duplicate address).",
    ],
    [
        "ip neigh show <addr>  (on the sender: the lladdr and NUD state)",
        "ip link show <dev>  (on the receiver: its MAC)",
        "arping -I <dev> <addr>  (who answers for the address)",
    ],
    [
        "On the sender: ip neigh replace <addr> lladdr <right-mac> dev <dev>, or ip neigh del \
         <addr> dev <dev> to let ARP resolve it again.",
        "From the receiver: arping -U -I <dev> <addr> announces the right MAC (a stale, not \
         a permanent, entry takes it).",
    ],
);

pub const BRIDGE_PORT_STP_WAIT: Entry = entry!(
    BRIDGE_INGRESS_STP_STATE,
    "bridge-port-stp-wait",
    true,
    "bridge port still in STP listening/learning",
    "STP is on for the bridge, and the port the frame came in on is still in the listening \
     or learning state: a port that just came up (or after a topology change) waits \
     forward_delay in each state before it forwards, and drops what arrives meanwhile.",
    [
        "A port (a VM's tap, a container's veth) was just added or brought up on a bridge with \
         STP on: up to 2 x forward_delay (30 s by default) of silence.",
        "A topology change put ports back through listening and learning.",
    ],
    [
        "bridge link show  (each port's state)",
        "ip -d link show <bridge>  (stp_state, forward_delay, hello_time, max_age)",
        "ip -d link show <port>  (forward_delay_timer)",
    ],
    [
        "Wait for the forward-delay timer, or shorten it: ip link set <bridge> type bridge \
         forward_delay 200",
        "If no loop can form through the bridge: ip link set <bridge> type bridge stp_state 0",
    ],
);

pub const MARTIAN_DESTINATION: Entry = entry!(
    IP_INADDRERRORS,
    "martian-destination",
    true,
    "destination is a martian (0/8, class E, 127/8)",
    "The packet is addressed to an IPv4 address no host can own on a wire: 0.0.0.0/8, \
     class E (240.0.0.0/4) or loopback (127.0.0.0/8). The input route lookup refuses it; \
     the kernel reports an address or routing error (or IP_LOCALNET for 127/8), but \
     neither forwarding nor a route on this host is the problem: the sender is.",
    [
        "An application configured with a wrong or placeholder address (0.0.0.0, 240.x used \
         as 'private' space).",
        "A DNAT rule to 127.0.0.1 on another host, or a broken NAT, putting loopback on the wire.",
        "A sender's route sending such a prefix out of an interface.",
    ],
    [
        "tcpdump -eni <dev> dst net 0.0.0.0/8 or dst net 240.0.0.0/4 or dst net 127.0.0.0/8",
        "sysctl -w net.ipv4.conf.<dev>.log_martians=1; dmesg | grep martian",
        "sysctl net.ipv4.conf.<dev>.route_localnet  (for 127/8)",
    ],
    [
        "Fix the sender's configured address or its route/NAT rule.",
        "For 127/8 only if intended (DNAT to a localhost service): sysctl -w \
         net.ipv4.conf.<dev>.route_localnet=1",
    ],
);
