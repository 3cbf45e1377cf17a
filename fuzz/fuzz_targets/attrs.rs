//! Fuzz target: see `passim_core::fuzz::attrs` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| passim_core::fuzz::attrs(data));
