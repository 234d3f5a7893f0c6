//! `cargo fuzz run nts_ext`: the properties are in `src/nts_ext.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skewguard_fuzz::nts_ext::check(data));
