//! `forward::parse_delivery` (the forwarder's `delivery.json`); a parsed map
//! written with `delivery_json_bytes` (what the forwarder saves) parses back
//! to an equal map.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sealstream_agent::forward::{delivery_json_bytes, parse_delivery};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/fuzz/delivery.json");
    if let Ok(delivery) = parse_delivery(data, path) {
        let bytes = delivery_json_bytes(&delivery);
        let back = parse_delivery(&bytes, path).expect("round trip parses");
        assert_eq!(back, delivery);
    }
});
