//! nftables over the shared netlink client (`state::netlink`): bodies
//! start with an nfgenmsg, and changes go in nfnetlink batches.
use super::*;
use crate::state::netlink::{self, message, NlError, NLMSG_ERROR};
pub use crate::state::netlink::{attrs, messages, nest_end, nest_start, put, put_str};

impl From<NlError> for NftError {
    fn from(e: NlError) -> NftError {
        match e {
            NlError::Io { what, source } => NftError::Io { what, source },
            NlError::Kernel(source) => NftError::Kernel {
                what: "request",
                source,
            },
            NlError::Malformed => NftError::Malformed,
        }
    }
}

/// nfgenmsg (family, version 0, res_id big-endian) then `a`.
fn nfgen(family: u8, res_id: u16, a: &[u8]) -> Vec<u8> {
    let mut b = vec![family, 0];
    b.extend(res_id.to_be_bytes());
    b.extend_from_slice(a);
    b
}

pub struct Socket(netlink::Socket);

impl Socket {
    /// A NETLINK_NETFILTER socket in the calling thread's netns.
    pub fn open() -> Result<Socket, NftError> {
        Ok(Socket(netlink::Socket::open(NETLINK_NETFILTER)?))
    }

    pub fn join(&self, group: u32) -> Result<(), NftError> {
        Ok(self.0.join(group, "join NFNLGRP_NFTRACE")?)
    }

    /// One datagram within `t`, or None on timeout (Some(0): overrun).
    pub fn recv_within(&self, buf: &mut [u8], t: Duration) -> Result<Option<usize>, NftError> {
        Ok(self.0.recv_within(buf, t)?)
    }

    /// Send `msgs` as one nfnetlink batch, each with NLM_F_ACK, and wait
    /// until every one is acknowledged or one fails.
    pub fn batch(&mut self, msgs: &[BatchMsg], what: &'static str) -> Result<(), NftError> {
        let req = netlink::NLM_F_REQUEST;
        let sub = nfgen(0, NFNL_SUBSYS_NFTABLES, &[]);
        let mut out = Vec::new();
        message(&mut out, NFNL_MSG_BATCH_BEGIN, req, self.0.next_seq(), &sub);
        let mut pending = Vec::new();
        for (ty, flags, family, a) in msgs {
            let seq = self.0.next_seq();
            let f = req | netlink::NLM_F_ACK | flags;
            message(&mut out, *ty, f, seq, &nfgen(*family, 0, a));
            pending.push(seq);
        }
        message(&mut out, NFNL_MSG_BATCH_END, req, self.0.next_seq(), &sub);
        self.0.set_timeout(Duration::from_secs(3));
        self.0.send(&out)?;
        let mut buf = vec![0u8; 1 << 16];
        while !pending.is_empty() {
            let n = self.0.recv(&mut buf)?;
            for (ty, _, seq, body) in messages(&buf[..n]) {
                if ty != NLMSG_ERROR {
                    continue;
                }
                let e = i32::from_ne_bytes(
                    body.get(0..4)
                        .ok_or(NftError::Malformed)?
                        .try_into()
                        .expect("4"),
                );
                if e != 0 {
                    return Err(NftError::Kernel {
                        what,
                        source: io::Error::from_raw_os_error(-e),
                    });
                }
                pending.retain(|&s| s != seq);
            }
        }
        Ok(())
    }

    /// A NLM_F_DUMP request; the bodies (nfgenmsg + attributes) of
    /// every answer.
    pub fn dump(&mut self, ty: u16, family: u8, a: &[u8]) -> Result<Vec<Vec<u8>>, NftError> {
        self.0.set_timeout(Duration::from_secs(3));
        self.0.dump(ty, &nfgen(family, 0, a)).map_err(|e| match e {
            NlError::Kernel(source) => NftError::Kernel {
                what: "dump",
                source,
            },
            e => e.into(),
        })
    }
}
