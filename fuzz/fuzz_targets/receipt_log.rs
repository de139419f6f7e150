//! The receipt log's documents (`sealstream_api::receipts::log`): a total
//! proof, a consistency proof, a signed head and a receipt's inclusion.
//! An accepted document writes back to one that parses the same, and
//! `verify` decides without panicking, the same way for both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::receipts::log::{LogConsistency, ReceiptLogs, SignedLogHead, TotalProof};

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = TotalProof::parse(data) {
        let text = proof.to_json_pretty();
        let back = TotalProof::parse(text.as_bytes()).expect("round trip");
        assert_eq!(back, proof);
        assert_eq!(back.verify(None).is_ok(), proof.verify(None).is_ok());
    }
    if let Ok(proof) = LogConsistency::parse(data) {
        let back = LogConsistency::parse(proof.to_json_pretty().as_bytes()).expect("round trip");
        assert_eq!(back, proof);
        assert_eq!(back.verify(None).is_ok(), proof.verify(None).is_ok());
    }
    if let Ok(head) = SignedLogHead::parse(data) {
        let back = SignedLogHead::parse(head.to_json_pretty().as_bytes()).expect("round trip");
        assert_eq!(back, head);
        assert_eq!(back.verify(None).is_ok(), head.verify(None).is_ok());
    }
    let _ = ReceiptLogs::parse(data);
});
