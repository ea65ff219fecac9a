//! The 3.5–5.9 record walker on an arbitrary log_buf image; the first 4 bytes
//! pick first/next indices.
#![no_main]
use netwhy_vmcore::printk::structured::{parse, Offsets};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let first = u16::from_le_bytes([data[0], data[1]]) as u64;
    let next = u16::from_le_bytes([data[2], data[3]]) as u64;
    let buf = &data[4..];
    let o = Offsets { hdr_size: 16, off_ts: 0, off_len: 8, off_text_len: 10, off_dict_len: 12, off_caller: None };
    if (first as usize) < buf.len() && (next as usize) < buf.len() {
        let _ = parse(buf, first, next, &o);
    }
});
