//! The LZO1X decoder on arbitrary bytes into a page-sized buffer: errors
//! are fine, panics and overruns are the bugs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut out = [0u8; 4096];
    let _ = netwhy_vmcore::lzo::decompress(data, &mut out);
});
