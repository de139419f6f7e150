//! `SignedReceipt::parse`; an accepted receipt writes back to a file that
//! parses to the same receipt, and `verify` decides without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::receipts::SignedReceipt;

fuzz_target!(|data: &[u8]| {
    let Ok(receipt) = SignedReceipt::parse(data) else {
        return;
    };
    let text = receipt.to_json_pretty();
    let back = SignedReceipt::parse(text.as_bytes()).expect("round trip");
    assert_eq!(back, receipt);
    assert_eq!(back.to_json_pretty(), text);
    let verdict = receipt.verify(None);
    assert_eq!(back.verify(None), verdict);
    if let Err(e) = verdict {
        // A parsed receipt is well formed: only the signature can fail.
        assert!(e.is_integrity(), "{e}");
    }
});
