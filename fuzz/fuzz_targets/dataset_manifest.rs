//! `DatasetManifest::parse` (`dataset.json`, with its `gaps`): an accepted
//! manifest round-trips through `to_pretty_json` with the same signed bytes
//! (nothing it accepted is left out of what the signatures cover), and
//! `verify_signatures` decides without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::dataset::DatasetManifest;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = DatasetManifest::parse(data) else {
        return;
    };
    let back = DatasetManifest::parse(manifest.to_pretty_json().as_bytes()).expect("round trip");
    assert_eq!(back, manifest);
    assert_eq!(back.signed_bytes(), manifest.signed_bytes());
    let _ = manifest.verify_signatures();
    manifest
        .check_gaps(&manifest.gaps)
        .expect("a manifest holds its own gaps");
});
