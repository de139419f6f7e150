//! `siwe::SiweMessage::parse` (EIP-4361 sign-in messages, as the market's
//! `POST /v1/auth/verify` receives them): never panics, and every accepted
//! text formats back to itself, validates, and parses to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealstream_api::siwe::SiweMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = SiweMessage::parse(text) {
        assert_eq!(message.to_string(), text, "parse is lossless");
        message.validate().expect("a parsed message validates");
        let _ = message.did();
        let _ = message.uri_authority();
    }
});
