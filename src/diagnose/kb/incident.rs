//! Evidence-driven diagnoses of incidents that one drop does not tell: a
//! PMTU black hole (a too-big drop and the drop of the ICMP sent for it,
//! joined by `diagnose::correlate`) and sends that fail before any packet
//! exists (`diagnose::emsgsize`). Named through `kb::specific` like the
//! other evidence-driven entries.
use super::Entry;

pub const PMTU_BLACKHOLE: Entry = entry!(
    NETFILTER_DROP,
    "pmtu-blackhole",
    true,
    "PMTU black hole: a firewall eats ICMP frag-needed",
    "A packet too big for a link on the path was dropped with ICMP \"fragmentation needed\" \
     (IPv6: \"packet too big\") sent back to its sender, and a firewall rule dropped that ICMP \
     on its way (on the router's own output, a router on the way back, or the sender's \
     input). The sender never learns the path MTU: large packets vanish, small ones pass \
     (TLS handshakes and bulk transfers hang, pings and SYNs work).",
    [
        "A rule that drops all ICMP (\"block ping\") or all but echo, on the way back or on the \
         router's output.",
        "A tunnel, VPN or overlay link with a smaller MTU than the sender's on the path.",
    ],
    [
        "nft -a list ruleset  (the rule that drops ICMP type destination-unreachable / \
         packet-too-big; the handle is in the evidence)",
        "ip route get <dst>  (on the sender: no learnt 'mtu' while the black hole lasts)",
        "ping -M do -s <size> <dst>  (the largest size that passes)",
    ],
    [
        "Clamp TCP MSS to the route MTU on the router: nft add rule inet filter forward tcp \
         flags syn tcp option maxseg size set rt mtu",
        "Lower the sender's MTU to the path's (ip link set <dev> mtu <n>, or a route mtu).",
    ],
);

pub const UDP_EMSGSIZE: Entry = entry!(@none,
    "udp-emsgsize",
    true,
    "sends failed: datagram larger than the MTU (EMSGSIZE)",
    "A socket's sends failed with EMSGSIZE before a packet existed: the datagram plus its \
     headers is larger than the route's MTU (or the path MTU the kernel learnt) and the \
     socket forbids fragmentation (IP_PMTUDISC_DO, IPV6_DONTFRAG, and IPv6 never fragments \
     in transit), or it is larger than a UDP datagram can be (65507 bytes over IPv4). No skb \
     is built and no counter moves: only the application sees the error.",
    [
        "An application that sets DF (IP_PMTUDISC_DO: QUIC, DNS over UDP with large EDNS \
         buffers, games, tunnels) sends datagrams sized for a bigger MTU than the route's.",
        "A tunnel, VPN or container interface with a smaller MTU than the application expects.",
        "A message larger than 65507 bytes sent as one UDP datagram.",
    ],
    [
        "ip route get <dst>  (the device, and a learnt 'mtu' if ICMP lowered it)",
        "ip link show <dev>  (mtu)",
        "ss -uap  (the socket; strace -e sendto,sendmsg the sender for EMSGSIZE)",
    ],
    [
        "Send smaller datagrams: at most the route MTU minus 28 bytes (IPv4 + UDP headers; 48 \
         over IPv6).",
        "Let the kernel fragment (IP_MTU_DISCOVER=IP_PMTUDISC_WANT), or raise the device's MTU \
         if the whole path carries it: ip link set <dev> mtu <n>.",
    ],
);
