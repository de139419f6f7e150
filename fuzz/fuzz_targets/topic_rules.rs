//! `TopicRules::from_json` after `json::parse`; valid rules round-trip and
//! are applied to the document itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_core::json;
use sealstream_core::keys::FieldKey;
use sealstream_core::rules::TopicRules;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = json::parse(data) else { return };
    if let Ok(rules) = TopicRules::from_json(&value) {
        assert_eq!(
            TopicRules::from_json(&rules.to_json()).expect("round trip"),
            rules
        );
        if let Some(fields) = value.as_object() {
            let _ = rules.apply(fields, Some(&FieldKey::from_bytes([1; 32])));
        }
    }
});
