//! `PublishManifest::from_json` after `json::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::chunk::PublishManifest;
use sealstream_core::json;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = json::parse(data) else { return };
    if let Ok(manifest) = PublishManifest::from_json(&value) {
        let back = PublishManifest::from_json(&manifest.to_json()).expect("round trip");
        assert_eq!(back.to_pretty_json(), manifest.to_pretty_json());
    }
});
