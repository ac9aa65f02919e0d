#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| viprouter::fuzzing::fuzz_modular_home(data));
