//! `sealstream_api::receipts::pdf::extract_receipt` (the signed receipt
//! attached to a receipt PDF, as `sealstream receipt verify FILE.pdf` reads
//! it): never panics on any PDF; what it returns is bounded, and the JSON
//! reader decides on it without panicking. Inputs are made to start with
//! `%PDF-` so every run reaches the PDF parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::receipts::pdf::{extract_receipt, MAX_RECEIPT_ATTACHMENT_BYTES};
use sealstream_api::receipts::SignedDocument;

fuzz_target!(|data: &[u8]| {
    let owned;
    let bytes = if data.starts_with(b"%PDF-") {
        data
    } else {
        owned = [&b"%PDF-1.7\n"[..], data].concat();
        &owned
    };
    if let Ok(json) = extract_receipt(bytes) {
        assert!(json.len() <= MAX_RECEIPT_ATTACHMENT_BYTES);
        if let Ok(doc) = SignedDocument::parse(&json) {
            let _ = doc.verify(None);
        }
    }
});
