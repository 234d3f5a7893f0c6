//! `cargo fuzz run ntp_packet`: the properties are in `src/ntp_packet.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skewguard_fuzz::ntp_packet::check(data));
