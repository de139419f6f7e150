//! `SignedAuditHead::parse` (a market's signed audit-log head, as `market
//! audit verify --anchor` reads it); an accepted head writes back to a file
//! that parses to the same head, and `verify` decides without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::audit::SignedAuditHead;

fuzz_target!(|data: &[u8]| {
    let Ok(head) = SignedAuditHead::parse(data) else {
        return;
    };
    let text = head.to_pretty_json();
    let back = SignedAuditHead::parse(text.as_bytes()).expect("round trip");
    assert_eq!(back, head);
    assert_eq!(back.to_pretty_json(), text);
    assert_eq!(back.verify(None).is_ok(), head.verify(None).is_ok());
});
