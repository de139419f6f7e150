//! Signed heads of a market's audit log (`sealstream.audit-head.v1`).
//!
//! The audit log is a hash chain: each event carries the hash of the one
//! before. A chain alone cannot show that events were cut off its end, or
//! that the whole log was rewritten with recomputed hashes. A *signed head*
//! fixes the log at a point: the market's Ed25519 key (the one that signs
//! receipts) signs "event number `events` has hash `head`". A log that no
//! longer holds that event with that hash was truncated or rewritten, and
//! nobody without the market's key can sign a head for the forgery.
//!
//! ```json
//! {
//!   "schemaVersion": "sealstream.audit-head.v1",
//!   "events": 42,
//!   "head": "0x…64 hex digits…",
//!   "signedAt": "2026-12-04T18:00:00Z",
//!   "serverPublicKeyHex": "…64 hex digits…",
//!   "signature": "…128 hex digits…"
//! }
//! ```
//!
//! The signature covers `sealstream.audit-head.v1\n` followed by the RFC 8785
//! form of `{"events", "head", "signedAt"}`.
//!
//! `GET /v1/audit/head` (admins and auditors) answers with a fresh signed
//! head, [`SignedAuditHead::parse`] reads it.

use sealstream_core::json::{self, canonical, Map, Number, Value};
use sealstream_core::keys::{parse_hex_array, ReceiptPublicKey, ReceiptSigningKey};
use sealstream_core::ValidationError;

/// The schema version, also the first line of the signed bytes.
pub const AUDIT_HEAD_SCHEMA_VERSION: &str = "sealstream.audit-head.v1";

/// A signed audit-log head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAuditHead {
    /// Number of events in the log when it was signed.
    pub events: u64,
    /// `0x` + hex SHA-256 of event number `events` (the all-zero genesis
    /// value for an empty log).
    pub head: String,
    /// When it was signed (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub signed_at: String,
    /// The market's key.
    pub public_key: ReceiptPublicKey,
    /// Ed25519 over [`signed_bytes`](Self::signed_bytes).
    pub signature: [u8; 64],
}

/// Why a signed head is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditHeadError {
    /// A field is missing or malformed (named).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Signed by another key than the one expected.
    #[error("signed by {found}, not by the market key {expected}")]
    WrongKey {
        /// The key expected (hex).
        expected: String,
        /// The key named in the head (hex).
        found: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
}

fn signed_bytes_of(events: u64, head: &str, signed_at: &str) -> Vec<u8> {
    let mut m = Map::new();
    m.insert(
        "events".into(),
        Value::Number(Number::from_int_text(&events.to_string()).expect("a u64 is an integer")),
    );
    m.insert("head".into(), Value::String(head.into()));
    m.insert("signedAt".into(), Value::String(signed_at.into()));
    let canonical = canonical::rfc8785(&Value::Object(m)).expect("strings and an integer");
    let mut bytes = Vec::with_capacity(AUDIT_HEAD_SCHEMA_VERSION.len() + 1 + canonical.len());
    bytes.extend_from_slice(AUDIT_HEAD_SCHEMA_VERSION.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(canonical.as_bytes());
    bytes
}

fn check_head(head: &str) -> Result<(), ValidationError> {
    let ok = head.len() == 66
        && head.starts_with("0x")
        && head[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "head",
            "0x followed by 64 lowercase hex digits",
        ))
    }
}

impl SignedAuditHead {
    /// Signs "event `events` has hash `head`" now, with the market's key.
    pub fn sign(
        events: u64,
        head: &str,
        key: &ReceiptSigningKey,
    ) -> Result<SignedAuditHead, ValidationError> {
        Self::sign_at(events, head, &sealstream_core::utc::now(), key)
    }

    /// [`sign`](Self::sign) with a given time (for tests and replays).
    pub fn sign_at(
        events: u64,
        head: &str,
        signed_at: &str,
        key: &ReceiptSigningKey,
    ) -> Result<SignedAuditHead, ValidationError> {
        check_head(head)?;
        let signature = key.sign(&signed_bytes_of(events, head, signed_at));
        Ok(SignedAuditHead {
            events,
            head: head.to_string(),
            signed_at: signed_at.to_string(),
            public_key: key.public_key(),
            signature,
        })
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes_of(self.events, &self.head, &self.signed_at)
    }

    /// Checks the signature, and that it is `expected`'s when given (a head
    /// read from an untrusted place must be checked against the market's
    /// key obtained elsewhere).
    pub fn verify(&self, expected: Option<&ReceiptPublicKey>) -> Result<(), AuditHeadError> {
        if let Some(expected) = expected {
            if expected != &self.public_key {
                return Err(AuditHeadError::WrongKey {
                    expected: expected.to_hex(),
                    found: self.public_key.to_hex(),
                });
            }
        }
        if self
            .public_key
            .verify(&self.signed_bytes(), &self.signature)
        {
            Ok(())
        } else {
            Err(AuditHeadError::BadSignature)
        }
    }

    /// The JSON document.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "schemaVersion".into(),
            Value::String(AUDIT_HEAD_SCHEMA_VERSION.into()),
        );
        m.insert(
            "events".into(),
            Value::Number(
                Number::from_int_text(&self.events.to_string()).expect("a u64 is an integer"),
            ),
        );
        m.insert("head".into(), Value::String(self.head.clone()));
        m.insert("signedAt".into(), Value::String(self.signed_at.clone()));
        m.insert(
            "serverPublicKeyHex".into(),
            Value::String(self.public_key.to_hex()),
        );
        m.insert(
            "signature".into(),
            Value::String(hex::encode(self.signature)),
        );
        Value::Object(m)
    }

    /// The JSON document as pretty text (with a final newline).
    pub fn to_pretty_json(&self) -> String {
        let mut text = json::write::to_python_pretty(&self.to_json());
        text.push('\n');
        text
    }

    /// Reads a document written by [`to_json`](Self::to_json); errors name
    /// the field. The signature is not checked here ([`verify`](Self::verify)).
    pub fn from_json(value: &Value) -> Result<SignedAuditHead, ValidationError> {
        let obj = match value {
            Value::Object(m) => m,
            _ => return Err(ValidationError::new("auditHead", "expected an object")),
        };
        let text = |name: &str| -> Result<&str, ValidationError> {
            match obj.get(name) {
                Some(Value::String(s)) => Ok(s.as_str()),
                Some(_) => Err(ValidationError::new(name, "expected a string")),
                None => Err(ValidationError::new(name, "required")),
            }
        };
        if text("schemaVersion")? != AUDIT_HEAD_SCHEMA_VERSION {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("expected {AUDIT_HEAD_SCHEMA_VERSION}"),
            ));
        }
        let events = obj
            .get("events")
            .and_then(Value::as_u64)
            .ok_or_else(|| ValidationError::new("events", "expected a non-negative integer"))?;
        let head = text("head")?.to_string();
        check_head(&head)?;
        let signed_at = text("signedAt")?.to_string();
        crate::siwe::Timestamp::parse(&signed_at, "signedAt")?;
        let public_key =
            ReceiptPublicKey::from_hex(text("serverPublicKeyHex")?, "serverPublicKeyHex")?;
        let signature = parse_hex_array::<64>(text("signature")?, "signature")?;
        Ok(SignedAuditHead {
            events,
            head,
            signed_at,
            public_key,
            signature,
        })
    }

    /// Parses the JSON text of [`to_pretty_json`](Self::to_pretty_json).
    pub fn parse(bytes: &[u8]) -> Result<SignedAuditHead, ValidationError> {
        let value =
            json::parse(bytes).map_err(|e| ValidationError::new("auditHead", e.to_string()))?;
        Self::from_json(&value)
    }

    /// A one-line description, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} events, head {}, signed {}",
            self.events, self.head, self.signed_at
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> String {
        format!("0x{}", "ab".repeat(32))
    }

    #[test]
    fn signs_verifies_and_round_trips() {
        let key = ReceiptSigningKey::from_bytes(&[5; 32]);
        let signed = SignedAuditHead::sign_at(42, &head(), "2026-12-04T18:00:00Z", &key).unwrap();
        signed.verify(Some(&key.public_key())).unwrap();
        let text = signed.to_pretty_json();
        assert!(
            text.contains("\"schemaVersion\": \"sealstream.audit-head.v1\""),
            "{text}"
        );
        let back = SignedAuditHead::parse(text.as_bytes()).unwrap();
        assert_eq!(back, signed);
        assert_eq!(
            String::from_utf8(signed.signed_bytes()).unwrap(),
            format!(
                "sealstream.audit-head.v1\n{{\"events\":42,\"head\":\"{}\",\"signedAt\":\"2026-12-04T18:00:00Z\"}}",
                head()
            )
        );
    }

    #[test]
    fn a_changed_head_or_another_key_does_not_verify() {
        let key = ReceiptSigningKey::from_bytes(&[5; 32]);
        let signed = SignedAuditHead::sign(3, &head(), &key).unwrap();
        let mut fewer = signed.clone();
        fewer.events = 2;
        assert_eq!(fewer.verify(None), Err(AuditHeadError::BadSignature));
        let other = ReceiptSigningKey::from_bytes(&[6; 32]);
        let forged = SignedAuditHead::sign(2, &head(), &other).unwrap();
        forged.verify(None).unwrap();
        assert!(matches!(
            forged.verify(Some(&key.public_key())),
            Err(AuditHeadError::WrongKey { .. })
        ));
    }

    #[test]
    fn malformed_documents_name_the_field() {
        let key = ReceiptSigningKey::from_bytes(&[5; 32]);
        let good = SignedAuditHead::sign(1, &head(), &key).unwrap().to_json();
        for (field, value) in [
            ("events", Value::String("1".into())),
            ("head", Value::String("0x12".into())),
            ("signedAt", Value::String("yesterday".into())),
            ("signature", Value::String("00".into())),
            ("schemaVersion", Value::String("v2".into())),
        ] {
            let mut doc = good.clone();
            if let Value::Object(m) = &mut doc {
                m.insert(field.into(), value);
            }
            let e = SignedAuditHead::from_json(&doc).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
