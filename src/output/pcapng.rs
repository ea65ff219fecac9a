//! A minimal pcapng writer: one Section Header, one Interface Description
//! (LINKTYPE_RAW: packets start at the IP header, as our hooks capture
//! them; nanosecond timestamps) and an Enhanced Packet Block per step, whose
//! comment says where the packet was (hook, netns, device, fate).
//! Wireshark and tshark show the comment as `frame.comment`.
use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// LINKTYPE_RAW (101): raw IPv4/IPv6.
pub const LINKTYPE_RAW: u16 = 101;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_TSRESOL: u16 = 9;

/// Writes pcapng to `W`; the header goes out on creation.
pub struct PcapngWriter<W: Write> {
    out: W,
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn option(buf: &mut Vec<u8>, code: u16, val: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(val.len() as u16).to_le_bytes());
    buf.extend_from_slice(val);
    buf.resize(pad4(buf.len()), 0);
}

/// type, total length, body, total length again (little-endian).
fn block(ty: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

impl<W: Write> PcapngWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes()); // major
        shb.extend_from_slice(&0u16.to_le_bytes()); // minor
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        option(&mut shb, OPT_END, &[]);
        out.write_all(&block(SHB, &shb))?;
        let mut idb = Vec::new();
        idb.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes()); // reserved
        idb.extend_from_slice(&0u32.to_le_bytes()); // snaplen: no limit
        option(&mut idb, IF_TSRESOL, &[9]); // 10^-9 s
        option(&mut idb, OPT_END, &[]);
        out.write_all(&block(IDB, &idb))?;
        Ok(PcapngWriter { out })
    }

    /// One packet: `data` captured bytes of a packet `orig_len` long.
    pub fn packet(
        &mut self,
        time_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: &str,
    ) -> io::Result<()> {
        let mut b = Vec::with_capacity(32 + data.len() + comment.len());
        b.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        b.extend_from_slice(&((time_ns >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(time_ns as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b.resize(pad4(b.len()), 0);
        if !comment.is_empty() {
            let c = &comment.as_bytes()[..comment.len().min(u16::MAX as usize - 4)];
            option(&mut b, OPT_COMMENT, c);
            option(&mut b, OPT_END, &[]);
        }
        self.out.write_all(&block(EPB, &b))
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_bytes() {
        let w = PcapngWriter::new(Vec::new()).unwrap();
        let b = w.out;
        // SHB: type, length 32, magic, version 1.0, length -1, end, length.
        assert_eq!(&b[0..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 32);
        assert_eq!(&b[8..12], &[0x4d, 0x3c, 0x2b, 0x1a]);
        assert_eq!(&b[12..16], &[1, 0, 0, 0]);
        assert_eq!(&b[16..24], &[0xff; 8]);
        assert_eq!(&b[24..28], &[0; 4]);
        assert_eq!(&b[28..32], &[32, 0, 0, 0]);
        // IDB at 32: linktype 101, snaplen 0, if_tsresol = 9, end.
        let idb = &b[32..];
        assert_eq!(u32::from_le_bytes(idb[0..4].try_into().unwrap()), 1);
        let len = u32::from_le_bytes(idb[4..8].try_into().unwrap()) as usize;
        assert_eq!(len, 12 + 8 + 8 + 4);
        assert_eq!(&idb[8..10], &[101, 0]);
        assert_eq!(&idb[16..21], &[9, 0, 1, 0, 9]);
        assert_eq!(b.len(), 32 + len);
    }

    #[test]
    fn packet_block_pads_and_carries_the_comment() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        let start = w.out.len();
        let t = 1_700_000_000_123_456_789u64;
        w.packet(t, &[0x45, 0, 0, 20, 9], 60, "hook=kfree_skb")
            .unwrap();
        let b = &w.out[start..];
        let total = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, b.len());
        assert_eq!(total % 4, 0);
        assert_eq!(&b[b.len() - 4..], &(total as u32).to_le_bytes());
        let hi = u32::from_le_bytes(b[12..16].try_into().unwrap()) as u64;
        let lo = u32::from_le_bytes(b[16..20].try_into().unwrap()) as u64;
        assert_eq!(hi << 32 | lo, t);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 5);
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 60);
        // Data padded to 8 bytes, then the comment option.
        assert_eq!(&b[28..36], &[0x45, 0, 0, 20, 9, 0, 0, 0]);
        assert_eq!(&b[36..40], &[1, 0, 14, 0]);
        assert_eq!(&b[40..54], b"hook=kfree_skb");
    }
}
