//! `cargo fuzz run http_date`: the properties are in `src/http_date.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skewguard_fuzz::http_date::check(data));
