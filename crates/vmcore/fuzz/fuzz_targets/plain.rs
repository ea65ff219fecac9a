#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let end = u32::from_le_bytes(data[..4].try_into().unwrap()) as u64;
    let _ = netwhy_vmcore::printk::plain::parse(&data[4..], end);
});
