//! Fuzz target `names`: the property `fuzz_props::names` (see its docs).
#![no_main]

#[path = "../../tests/fuzz_props/mod.rs"]
mod fuzz_props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_props::names(data));
