//! `cargo fuzz run nts_ke`: the properties are in `src/nts_ke.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skewguard_fuzz::nts_ke::check(data));
