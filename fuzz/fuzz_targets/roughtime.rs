//! `cargo fuzz run roughtime`: the properties are in `src/roughtime.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skewguard_fuzz::roughtime::check(data));
