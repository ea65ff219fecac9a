//! Whole pipeline on arbitrary bytes: ELF or kdump (or flattened) parsing,
//! VMCOREINFO, translation, ring walk. Seed with tests/data/trimmed.elf.gz
//! (gunzipped) for depth.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(d) = netwhy_vmcore::Dump::from_bytes("fuzz", data.to_vec()) {
        let _ = d.read_log();
    }
});
