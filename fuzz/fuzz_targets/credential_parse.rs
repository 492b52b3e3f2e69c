//! libFuzzer target for `tokengate::credential::Credential::parse` (the properties are in
//! `src/lib.rs`). Run with `cargo +nightly fuzz run credential_parse` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tokengate_fuzz::check_bytes(data);
});
