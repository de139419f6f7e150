//! Sign-In with Ethereum (EIP-4361) against a market: ask for a nonce,
//! write the message, sign it (EIP-191) and exchange it for a session
//! token.

use sealstream_api::siwe::{sign_in_message, SiweMessage, Timestamp};
use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::keys::MachineSigningKey;
use serde_json::{json, Value};

use crate::http;

/// The statement of the tests' sign-in messages.
pub const STATEMENT: &str = "Sign in to the sealstream market.";

/// `POST /v1/auth/nonce` of the market at `base`: `{nonce, domain, uri,
/// issuedAt, expiresAt, chainId}`.
pub fn nonce(base: &str) -> Value {
    let (status, text) = http::call(
        base,
        "POST",
        sealstream_api::routes::AUTH_NONCE,
        None,
        Some(("text/plain", &[][..])),
    );
    assert_eq!(status, 200, "nonce: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("nonce: {e}: {text}"))
}

/// The sign-in message of `key` answering `nonce` (its domain, URI, nonce
/// and chain id), issued now and valid for ten minutes.
pub fn message(nonce: &Value, key: &MachineSigningKey) -> SiweMessage {
    let now = crate::unix_now();
    let field = |name: &str| {
        nonce[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in the nonce {nonce}"))
    };
    let mut message = sign_in_message(
        field("domain"),
        field("uri"),
        &Did::of_key(key),
        field("nonce"),
        Timestamp::from_unix(now),
        Some(Timestamp::from_unix(now + 600)),
        Some(STATEMENT),
    )
    .expect("a valid sign-in message");
    if let Some(chain_id) = nonce["chainId"].as_u64() {
        message.chain_id = chain_id;
    }
    message
}

/// The body of `POST /v1/auth/verify`: `message` and `key`'s EIP-191
/// signature of it.
pub fn verify_body(message: &str, key: &MachineSigningKey) -> Value {
    let signature = eip191_sign(key, message.as_bytes()).to_hex();
    json!({ "message": message, "signature": signature })
}

/// Signs in to the market at `base` as `key`'s DID through the real
/// nonce and verify routes; the session token.
pub fn sign_in(base: &str, key: &MachineSigningKey) -> String {
    let message = message(&nonce(base), key).to_string();
    let (status, answer) = http::json(
        base,
        "POST",
        sealstream_api::routes::AUTH_VERIFY,
        None,
        &verify_body(&message, key),
    );
    assert_eq!(status, 200, "sign-in: {answer}");
    answer["token"]
        .as_str()
        .expect("a session token")
        .to_string()
}
