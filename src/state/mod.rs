//! Live state joined with drops: sysctls, routes, neighbours, sockets,
//! conntrack, firewall rules and counters, each looked up in the network
//! namespace where the drop happened. Netlink and procfs only: no shelling
//! out to ip/nft/conntrack/ss.
pub mod addr;
pub mod conntrack;
pub mod counters;
pub mod iptables;
pub mod neigh;
pub mod netlink;
pub mod nft;
pub mod ns;
pub mod route;
pub mod sockets;
pub mod sysctl;
pub mod tcbpf;

/// The paths these modules had before `nft/` gathered them.
pub use nft::{list as nftlist, rule as nft_rule, trace as nftrace};
