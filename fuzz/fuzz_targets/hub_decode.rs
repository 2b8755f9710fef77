//! Fuzz target `hub_decode`: the property `fuzz_props::hub_decode` (see its docs).
#![no_main]

#[path = "../../tests/fuzz_props/mod.rs"]
mod fuzz_props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_props::hub_decode(data));
