//! nftables over nfnetlink, without `nft`: the wire constants of
//! <linux/netfilter/nf_tables.h> and <linux/netfilter.h> once, and what the
//! three readers of it share.
//! - [`rule`] decodes a rule's expressions (what it does, whether it matches
//!   everything) for evidence and for `doctor`;
//! - [`trace`] arms nftrace in a netns and names the rule that dropped;
//! - [`list`] dumps every chain and rule of the caller's netns for `doctor`.
//!
//! `trace` uses `rule` (a traced rule carries its expressions); `rule`
//! needs only the [`Verdict`] defined here, so neither reaches back.
use serde::Serialize;

pub mod list;
pub mod rule;
pub mod trace;

pub const NETLINK_NETFILTER: i32 = 12;
pub const NFNLGRP_NFTRACE: u32 = 9;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_GETTABLE: u16 = 1;
pub const NFT_MSG_DELTABLE: u16 = 2;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_GETRULE: u16 = 7;
pub const NFT_MSG_TRACE: u16 = 17;
pub const NFPROTO_UNSPEC: u8 = 0;
/// Netfilter protocol families (NFPROTO_*).
pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
pub const NF_INET_PRE_ROUTING: u32 = 0;
pub const NF_INET_LOCAL_OUT: u32 = 3;
pub const NF_ACCEPT: u32 = 1;
pub const NFTA_TABLE_NAME: u16 = 1;
pub const NFTA_TABLE_FLAGS: u16 = 2;
pub const NFT_TABLE_F_OWNER: u32 = 2;
pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_NAME: u16 = 3;
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFTA_CHAIN_POLICY: u16 = 5;
pub const NFTA_CHAIN_TYPE: u16 = 7;
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
pub const NFTA_HOOK_PRIORITY: u16 = 2;
pub const NFTA_RULE_TABLE: u16 = 1;
pub const NFTA_RULE_CHAIN: u16 = 2;
pub const NFTA_RULE_HANDLE: u16 = 3;
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub const NFTA_RULE_USERDATA: u16 = 7;
pub const NFTA_LIST_ELEM: u16 = 1;
pub const NFTA_EXPR_NAME: u16 = 1;
pub const NFTA_EXPR_DATA: u16 = 2;
pub const NFTA_META_DREG: u16 = 1;
pub const NFTA_META_KEY: u16 = 2;
pub const NFTA_META_SREG: u16 = 3;
pub const NFT_META_NFTRACE: u32 = 12;
pub const NFT_META_NFPROTO: u32 = 15;
pub const NFT_META_L4PROTO: u32 = 16;
pub const NFTA_CMP_SREG: u16 = 1;
pub const NFTA_CMP_OP: u16 = 2;
pub const NFTA_CMP_DATA: u16 = 3;
pub const NFT_CMP_EQ: u32 = 0;
pub const NFTA_PAYLOAD_DREG: u16 = 1;
pub const NFTA_PAYLOAD_BASE: u16 = 2;
pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub const NFTA_PAYLOAD_LEN: u16 = 4;
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
pub const NFTA_IMMEDIATE_DREG: u16 = 1;
pub const NFTA_IMMEDIATE_DATA: u16 = 2;
pub const NFTA_DATA_VALUE: u16 = 1;
pub const NFTA_VERDICT_CODE: u16 = 1;
pub const NFTA_VERDICT_CHAIN: u16 = 2;
pub const NFT_REG_1: u32 = 1;
pub const NFTA_TRACE_TABLE: u16 = 1;
pub const NFTA_TRACE_CHAIN: u16 = 2;
pub const NFTA_TRACE_RULE_HANDLE: u16 = 3;
pub const NFTA_TRACE_TYPE: u16 = 4;
pub const NFTA_TRACE_VERDICT: u16 = 5;
pub const NFTA_TRACE_ID: u16 = 6;
pub const NFTA_TRACE_IIF: u16 = 10;
pub const NFTA_TRACE_OIF: u16 = 12;
pub const NFTA_TRACE_NFPROTO: u16 = 15;
pub const NFTA_TRACE_POLICY: u16 = 16;
/// NFTNL_UDATA_RULE_COMMENT: the comment TLV in NFTA_RULE_USERDATA.
pub const UDATA_RULE_COMMENT: u8 = 0;
/// `ct state` bit for invalid (NF_CT_STATE_INVALID_BIT).
pub const CT_STATE_INVALID_BIT: u32 = 1;
pub const NFT_CT_STATE: u32 = 0;
pub const NFTA_DATA_VERDICT: u16 = 2;
pub const NFT_MSG_GETCHAIN: u16 = 4;
pub const NFPROTO_ARP: u8 = 3;
pub const NFPROTO_NETDEV: u8 = 5;
pub const NFPROTO_BRIDGE: u8 = 7;
pub const NFPROTO_IPV6: u8 = 10;
/// NF_INET_FORWARD: the forward hook of ip, ip6, inet and bridge.
pub const HOOK_FORWARD: u32 = 2;

/// A verdict as nf_tables reports it (netfilter verdicts and the nft ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Drop,
    Accept,
    Stolen,
    Queue,
    Repeat,
    Continue,
    Break,
    Jump(String),
    Goto(String),
    Return,
    Other(i32),
}

impl Verdict {
    pub(crate) fn from_code(code: i32, chain: Option<String>) -> Verdict {
        match code {
            -1 => Verdict::Continue,
            -2 => Verdict::Break,
            -3 => Verdict::Jump(chain.unwrap_or_default()),
            -4 => Verdict::Goto(chain.unwrap_or_default()),
            -5 => Verdict::Return,
            // NF_DROP_ERR(e) keeps the errno in the upper bits.
            c if c >= 0 => match c & 0xff {
                0 => Verdict::Drop,
                1 => Verdict::Accept,
                2 => Verdict::Stolen,
                3 => Verdict::Queue,
                4 => Verdict::Repeat,
                _ => Verdict::Other(c),
            },
            c => Verdict::Other(c),
        }
    }
}

/// An nfnetlink message type of the nf_tables subsystem.
pub(crate) fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// A NUL-terminated netlink string attribute, lossily.
pub(crate) fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// A big-endian u32 attribute; None when shorter.
pub(crate) fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}
