//! `cargo fuzz run config`: the properties are in `src/config.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skewguard_fuzz::config::check(data));
