//! `sealstream_api::disputes::parse` and `verify` on arbitrary bytes:
//! neither panics; accepted evidence writes back to JSON that parses to the
//! same evidence, with the same hash and the same verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::disputes::{evidence_hash, parse, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(evidence) = parse(data) else {
        return;
    };
    let verdict = verify(&evidence);
    let text = serde_json::to_vec(&evidence).expect("evidence serialises");
    let back = parse(&text).expect("round trip");
    assert_eq!(back, evidence);
    assert_eq!(evidence_hash(&back), evidence_hash(&evidence));
    assert_eq!(verify(&back), verdict);
});
