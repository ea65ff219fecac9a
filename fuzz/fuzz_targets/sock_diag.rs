//! netwhy::fuzzing::sock_diag (its doc says what the input bytes mean).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netwhy::fuzzing::sock_diag(data));
