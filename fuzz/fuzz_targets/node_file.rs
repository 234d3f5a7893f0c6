//! `cargo fuzz run node_file`: the properties are in `src/node_file.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skewguard_fuzz::node_file::check(data));
