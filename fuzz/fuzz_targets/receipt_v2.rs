//! `ReceiptV2::parse`; an accepted document writes back to a file that
//! parses to the same document, `verify` decides without panicking, and a
//! presentation of any of its fields decides the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::receipts::ReceiptV2;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = ReceiptV2::parse(data) else {
        return;
    };
    let text = doc.to_json_pretty();
    let back = ReceiptV2::parse(text.as_bytes()).expect("round trip");
    assert_eq!(back, doc);
    assert_eq!(back.to_json_pretty(), text);
    let verdict = doc.verify(None);
    assert_eq!(back.verify(None), verdict);
    let names: Vec<&str> = doc.disclosures.iter().map(|d| d.name()).take(2).collect();
    if let (Ok(_), Ok(part)) = (&verdict, doc.disclose(&names)) {
        assert!(part.verify(None).is_ok(), "a subset of a verified document verifies");
    }
});
