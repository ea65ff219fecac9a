//! Live state joined with drops: sysctls, routes, neighbours, sockets,
//! conntrack, firewall rules, tc BPF programs and counters, each looked up
//! in the network namespace where the drop happened. Read through netlink,
//! procfs, the iptables getsockopts and the bpf(2) calls those tools make
//! themselves: no shelling out to ip/nft/iptables/conntrack/ss/bpftool.
//!
//! Only [`nft::trace`] and [`route_set`] change anything: the first adds a
//! table of netwhy's own to trace one flow, owned by its netlink socket so
//! the kernel removes it with netwhy; the second writes routes and rules
//! for `netwhy bisect`, under its undo journal. Everything else only reads.
pub mod addr;
pub mod conntrack;
pub mod counters;
pub mod iptables;
pub mod link;
pub mod neigh;
pub mod netlink;
pub mod nft;
pub mod ns;
pub mod route;
pub mod route_set;
pub mod sockets;
pub mod sysctl;
pub mod tcbpf;

/// The paths these modules had before `nft/` gathered them.
pub use nft::{list as nftlist, rule as nft_rule, trace as nftrace};
