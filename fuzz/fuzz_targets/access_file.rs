//! `access::read_access_file`.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sealstream_core::access::read_access_file;

fuzz_target!(|data: &[u8]| {
    let mut found = HashMap::new();
    if let Ok(n) = read_access_file(data, "did:peaq:0xb0b", &mut found) {
        assert!(found.len() <= n);
    }
});
