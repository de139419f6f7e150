//! License receipts with selective disclosure (`sealstream.receipt.v2`,
//! issue 21): the market signs salted commitments to the receipt's fields
//! instead of the fields, so a holder can show some fields (for example
//! the dataset root, the license and the times, not the price or the
//! payer) with proof that they belong to the signed receipt, and nothing
//! about the others.
//!
//! Each of the 21 fields of a v1 receipt ([`LicenseReceipt`]) becomes a
//! [`Disclosure`] `[salt, name, value]`: `salt` 16 random bytes as 32
//! lowercase hex digits, fresh for every field of every receipt; `name` the
//! field's v1 name; `value` its v1 JSON value (`payment`, `rail` and
//! `license` whole). Its digest is
//! `SHA-256("sealstream.receipt.v2.field\n" ‖ RFC 8785 of the array)`. The
//! signed body is `{"digestAlg": "sha-256", "digests": [...]}` with every
//! digest as lowercase hex, sorted (the order says nothing about the
//! fields); the signature covers `sealstream.receipt.v2\n` followed by the
//! RFC 8785 form of the body, with the market's receipt key, as v1's.
//!
//! The document is `{schemaVersion, receipt: body, signature, disclosures}`:
//! the holder's receipt carries all 21 disclosures; a presentation made
//! with [`ReceiptV2::disclose`] carries the chosen ones. [`ReceiptV2::verify`]
//! checks the signature, that every disclosure's digest is signed, that no
//! field is disclosed twice, and each value: a full receipt is read back as
//! a v1 receipt with every check of [`LicenseReceipt::from_json`]; a partial
//! one checks each value's kind (and a `payment` in full).
//!
//! What a disclosure does not hide: a field correlated with a hidden one
//! (a transaction hash names the payer and the amount on chain); that two
//! presentations of one receipt are the same receipt (same signature and
//! digests); and it is a bearer document, bound to no holder.

use std::collections::BTreeSet;

use rand_core::{CryptoRng, RngCore};
use sealstream_core::json::{canonical, Map, Value};
use sealstream_core::keys::{ReceiptPublicKey, ReceiptSigningKey};
use sealstream_core::ValidationError;
use sha2::{Digest, Sha256};

use super::{
    document_json, parse_document, read_document, signed_bytes_of, verify_signature,
    LicenseReceipt, ReceiptError, ReceiptPayment, ALL_FIELDS, COMPLIANCE_FIELD, RECEIPT_FIELDS,
};

/// `schemaVersion` of receipts with selective disclosure.
pub const RECEIPT_V2_SCHEMA_VERSION: &str = "sealstream.receipt.v2";
/// `receipt.digestAlg`.
pub const DIGEST_ALG: &str = "sha-256";
/// What each field's digest starts with.
const FIELD_TAG: &[u8] = b"sealstream.receipt.v2.field\n";

/// The integer fields of a receipt.
const INTEGER_FIELDS: [&str; 3] = ["firstIndex", "chunkCount", "decimals"];
/// The fields whose value is any JSON (`payment` is checked as a payment).
const JSON_FIELDS: [&str; 4] = ["rail", "payment", "license", COMPLIANCE_FIELD];

/// One field of a receipt with its salt: `[salt, name, value]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Disclosure {
    salt: [u8; 16],
    name: String,
    value: Value,
}

impl Disclosure {
    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field's value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Wire JSON: `["<salt hex>", "<name>", <value>]`.
    pub fn to_json(&self) -> Value {
        Value::Array(vec![
            hex::encode(self.salt).into(),
            self.name.as_str().into(),
            self.value.clone(),
        ])
    }

    /// `SHA-256("sealstream.receipt.v2.field\n" ‖ RFC 8785 of the array)`.
    pub fn digest(&self) -> Result<[u8; 32], ValidationError> {
        let text = canonical::rfc8785(&self.to_json()).map_err(|e| {
            ValidationError::new(format!("disclosures.{}", self.name), e.to_string())
        })?;
        let mut h = Sha256::new();
        h.update(FIELD_TAG);
        h.update(text.as_bytes());
        Ok(h.finalize().into())
    }

    fn from_json(value: &Value, at: usize) -> Result<Disclosure, ValidationError> {
        let path = format!("disclosures[{at}]");
        let items = value
            .as_array()
            .filter(|a| a.len() == 3)
            .ok_or_else(|| ValidationError::new(&path, "expected [salt, name, value]"))?;
        let salt_hex = items[0]
            .as_str()
            .filter(|s| {
                s.len() == 32
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .ok_or_else(|| {
                ValidationError::new(
                    format!("{path}[0]"),
                    "expected a salt of 32 lowercase hex digits",
                )
            })?;
        let mut salt = [0u8; 16];
        hex::decode_to_slice(salt_hex, &mut salt).expect("checked hex");
        let name = items[1]
            .as_str()
            .filter(|n| ALL_FIELDS.contains(n))
            .ok_or_else(|| {
                ValidationError::new(format!("{path}[1]"), "expected the name of a receipt field")
            })?;
        check_kind(name, &items[2])?;
        Ok(Disclosure {
            salt,
            name: name.to_string(),
            value: items[2].clone(),
        })
    }
}

/// `value` as its RFC 8785 form reads back: what the digest commits to.
/// Shown instead of the value as sent, so that two texts with one
/// canonical form (`5.0` and `5`, an integer and the double it rounds to)
/// show what the market signed.
fn canonical_value(value: &Value, path: &str) -> Result<Value, ValidationError> {
    let text = canonical::rfc8785(value).map_err(|e| ValidationError::new(path, e.to_string()))?;
    sealstream_core::json::parse(text.as_bytes())
        .map_err(|e| ValidationError::new(path, e.to_string()))
}

/// A value's kind for its field (the full checks run when every field is
/// disclosed).
fn check_kind(name: &str, value: &Value) -> Result<(), ValidationError> {
    let path = format!("disclosures.{name}");
    if INTEGER_FIELDS.contains(&name) {
        if value.as_u64().is_none() {
            return Err(ValidationError::new(
                path,
                "expected a non-negative integer",
            ));
        }
    } else if name == "payment" {
        ReceiptPayment::from_json(value)?;
    } else if name == COMPLIANCE_FIELD {
        crate::compliance::Accepted::from_value(value, &path)
            .map_err(|e| ValidationError::new(e.field, e.message))?;
    } else if !JSON_FIELDS.contains(&name) && value.as_str().is_none() {
        return Err(ValidationError::new(path, "expected a string"));
    }
    Ok(())
}

/// A v2 receipt, or a presentation of some of its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiptV2 {
    /// Every field's digest, sorted.
    pub digests: Vec<[u8; 32]>,
    /// The key that signed it.
    pub public_key: ReceiptPublicKey,
    /// Ed25519 over the signed bytes.
    pub signature: [u8; 64],
    /// The fields shown, in the receipt's field order.
    pub disclosures: Vec<Disclosure>,
}

/// What a verified receipt or presentation shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Disclosed {
    /// The fields shown, by name, in the receipt's field order.
    pub fields: Vec<(String, Value)>,
    /// The whole receipt, when every field is shown.
    pub receipt: Option<LicenseReceipt>,
}

fn body(digests: &[[u8; 32]]) -> Value {
    let mut m = Map::new();
    m.insert("digestAlg".into(), DIGEST_ALG.into());
    m.insert(
        "digests".into(),
        Value::Array(digests.iter().map(|d| hex::encode(d).into()).collect()),
    );
    Value::Object(m)
}

impl LicenseReceipt {
    /// Signs the receipt as a v2 receipt: each field salted with 16 bytes
    /// of `rng`, the sorted digests signed with `key`. Fails, signing
    /// nothing, if the receipt does not validate.
    pub fn sign_v2<R: RngCore + CryptoRng>(
        &self,
        key: &ReceiptSigningKey,
        rng: &mut R,
    ) -> Result<ReceiptV2, ReceiptError> {
        self.validate()?;
        let fields = self.to_json();
        let mut disclosures = Vec::with_capacity(ALL_FIELDS.len());
        for name in ALL_FIELDS {
            if name == COMPLIANCE_FIELD && self.compliance.is_none() {
                continue;
            }
            let mut salt = [0u8; 16];
            rng.fill_bytes(&mut salt);
            disclosures.push(Disclosure {
                salt,
                name: name.to_string(),
                value: fields.get(name).cloned().unwrap_or(Value::Null),
            });
        }
        let mut digests = disclosures
            .iter()
            .map(Disclosure::digest)
            .collect::<Result<Vec<_>, _>>()?;
        digests.sort_unstable();
        let bytes = signed_bytes_of(RECEIPT_V2_SCHEMA_VERSION, &body(&digests), "receipt")?;
        Ok(ReceiptV2 {
            digests,
            public_key: key.public_key(),
            signature: key.sign(&bytes),
            disclosures,
        })
    }
}

impl ReceiptV2 {
    /// Wire JSON: `{schemaVersion, receipt: {digestAlg, digests},
    /// signature, disclosures}`.
    pub fn to_json(&self) -> Value {
        let mut doc = document_json(
            RECEIPT_V2_SCHEMA_VERSION,
            "receipt",
            body(&self.digests),
            &self.public_key,
            &self.signature,
        );
        if let Value::Object(m) = &mut doc {
            m.insert(
                "disclosures".into(),
                Value::Array(self.disclosures.iter().map(Disclosure::to_json).collect()),
            );
        }
        doc
    }

    /// The file: indented by 2, ASCII escapes, trailing newline.
    pub fn to_json_pretty(&self) -> String {
        sealstream_core::json::write::to_python_pretty(&self.to_json())
    }

    /// Reads a v2 receipt or presentation strictly (duplicate keys, unknown
    /// fields, malformed digests or disclosures are refused, naming the
    /// field). Nothing is verified here: see [`ReceiptV2::verify`].
    pub fn parse(bytes: &[u8]) -> Result<ReceiptV2, ReceiptError> {
        let mut value = parse_document(bytes)?;
        let disclosures = match &mut value {
            Value::Object(m) => m.shift_remove("disclosures"),
            _ => None,
        }
        .ok_or_else(|| ValidationError::new("disclosures", "required"))?;
        let (body, public_key, signature) =
            read_document(&value, RECEIPT_V2_SCHEMA_VERSION, "receipt", "receipt file")?;
        let b = body
            .as_object()
            .ok_or_else(|| ValidationError::new("receipt", "expected a JSON object"))?;
        if let Some(k) = b
            .keys()
            .find(|k| !["digestAlg", "digests"].contains(&k.as_str()))
        {
            return Err(ValidationError::new(format!("receipt.{k}"), "unknown field").into());
        }
        if b.get("digestAlg").and_then(Value::as_str) != Some(DIGEST_ALG) {
            return Err(ValidationError::new(
                "receipt.digestAlg",
                format!("expected {DIGEST_ALG}"),
            )
            .into());
        }
        let list = b
            .get("digests")
            .and_then(Value::as_array)
            .filter(|l| l.len() == RECEIPT_FIELDS.len() || l.len() == ALL_FIELDS.len())
            .ok_or_else(|| {
                ValidationError::new(
                    "receipt.digests",
                    format!(
                        "expected {} digests ({} with a compliance record)",
                        RECEIPT_FIELDS.len(),
                        ALL_FIELDS.len()
                    ),
                )
            })?;
        let mut digests = Vec::with_capacity(list.len());
        for (i, d) in list.iter().enumerate() {
            let text = d
                .as_str()
                .filter(|t| {
                    t.len() == 64
                        && t.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
                .ok_or_else(|| {
                    ValidationError::new(
                        format!("receipt.digests[{i}]"),
                        "expected 64 lowercase hex digits",
                    )
                })?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(text, &mut digest).expect("checked hex");
            digests.push(digest);
        }
        if digests.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ValidationError::new(
                "receipt.digests",
                "expected distinct digests in ascending order",
            )
            .into());
        }
        let disclosures = disclosures
            .as_array()
            .ok_or_else(|| ValidationError::new("disclosures", "expected an array"))?
            .iter()
            .enumerate()
            .map(|(i, d)| Disclosure::from_json(d, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ReceiptV2 {
            digests,
            public_key,
            signature,
            disclosures,
        })
    }

    /// A presentation of the fields `names` only (the same signature and
    /// digests, those disclosures). Every name must be a receipt field this
    /// document shows.
    pub fn disclose(&self, names: &[&str]) -> Result<ReceiptV2, ValidationError> {
        for name in names {
            if !self.disclosures.iter().any(|d| d.name == *name) {
                return Err(ValidationError::new(
                    "fields",
                    if ALL_FIELDS.contains(name) {
                        format!("{name} is not shown by this document")
                    } else {
                        format!(
                            "{name} is not a receipt field (one of {})",
                            ALL_FIELDS.join(", ")
                        )
                    },
                ));
            }
        }
        Ok(ReceiptV2 {
            disclosures: self
                .disclosures
                .iter()
                .filter(|d| names.contains(&d.name.as_str()))
                .cloned()
                .collect(),
            ..self.clone()
        })
    }

    /// Checks the signature (and, with `pinned`, that it is that key's),
    /// that every disclosure is one of the signed digests and no field is
    /// shown twice, and the values; returns what is shown.
    pub fn verify(&self, pinned: Option<&ReceiptPublicKey>) -> Result<Disclosed, ReceiptError> {
        let bytes = signed_bytes_of(RECEIPT_V2_SCHEMA_VERSION, &body(&self.digests), "receipt")?;
        verify_signature(&bytes, &self.public_key, &self.signature, pinned)?;
        let mut seen = BTreeSet::new();
        for d in &self.disclosures {
            if !seen.insert(d.name.as_str()) {
                return Err(
                    ValidationError::new(format!("disclosures.{}", d.name), "shown twice").into(),
                );
            }
            check_kind(&d.name, &d.value)?;
            if self.digests.binary_search(&d.digest()?).is_err() {
                return Err(ReceiptError::NotSigned {
                    field: d.name.clone(),
                });
            }
        }
        let in_order: Vec<&Disclosure> = ALL_FIELDS
            .iter()
            .filter_map(|name| self.disclosures.iter().find(|d| d.name == *name))
            .collect();
        // A full receipt is read as v1 (whose checks refuse inexact
        // integers); what is shown is what the digests commit to.
        let receipt = if in_order.len() == self.digests.len() {
            let mut m = Map::new();
            for d in &in_order {
                m.insert(d.name.clone(), d.value.clone());
            }
            Some(LicenseReceipt::from_json(&Value::Object(m))?)
        } else {
            None
        };
        let fields = in_order
            .iter()
            .map(|d| {
                canonical_value(&d.value, &format!("disclosures.{}", d.name))
                    .map(|v| (d.name.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Disclosed { fields, receipt })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn receipt() -> LicenseReceipt {
        super::super::tests::example()
    }

    #[test]
    fn a_full_receipt_verifies_and_reads_back_as_v1() {
        let key = ReceiptSigningKey::generate();
        let r = receipt();
        let v2 = r.sign_v2(&key, &mut OsRng).unwrap();
        let text = v2.to_json_pretty();
        let back = ReceiptV2::parse(text.as_bytes()).unwrap();
        assert_eq!(back, v2);
        let shown = back.verify(Some(&key.public_key())).unwrap();
        assert_eq!(shown.receipt.as_ref(), Some(&r));
        assert_eq!(shown.fields.len(), 21);
        // Another key is refused when one is pinned.
        let other = ReceiptSigningKey::generate().public_key();
        assert!(back.verify(Some(&other)).unwrap_err().is_integrity());
    }

    #[test]
    fn a_disclosure_of_two_fields_verifies_and_hides_the_rest() {
        let key = ReceiptSigningKey::generate();
        let r = receipt();
        let v2 = r.sign_v2(&key, &mut OsRng).unwrap();
        let shown = v2.disclose(&["datasetRoot", "license"]).unwrap();
        let text = shown.to_json_pretty();
        assert!(
            !text.contains(&r.buyer_did),
            "the buyer stays hidden: {text}"
        );
        assert!(!text.contains(&r.amount) || r.amount.len() < 3);
        let back = ReceiptV2::parse(text.as_bytes()).unwrap();
        let out = back.verify(Some(&key.public_key())).unwrap();
        assert_eq!(out.receipt, None);
        assert_eq!(
            out.fields,
            vec![
                (
                    "datasetRoot".to_string(),
                    Value::from(r.dataset_root.as_str())
                ),
                ("license".to_string(), r.license.clone()),
            ]
        );
        // A changed value, name or salt fails, naming the field.
        let salt = hex::encode(shown.disclosures[0].salt);
        let other_salt = format!(
            "{}{}",
            if salt.starts_with('0') { "1" } else { "0" },
            &salt[1..]
        );
        for (at, replacement) in [
            (2, Value::from("0x00")),
            (1, Value::from("topic")),
            (0, Value::from(other_salt)),
        ] {
            let mut doc = shown.to_json();
            if let Value::Object(m) = &mut doc {
                if let Some(Value::Array(list)) = m.get_mut("disclosures") {
                    if let Value::Array(first) = &mut list[0] {
                        first[at] = replacement;
                    }
                }
            }
            let text = sealstream_core::json::write::to_python_pretty(&doc);
            let parsed = ReceiptV2::parse(text.as_bytes());
            let err = match parsed {
                Ok(p) => p.verify(Some(&key.public_key())).unwrap_err(),
                Err(e) => e,
            };
            assert!(err.to_string().starts_with("disclosures."), "{err}");
            assert!(err.is_integrity(), "{err}");
        }
        // A number sent in another form than the signed one (an integer
        // the signed double rounds to; 5.0 for 5) is refused or shown as
        // signed, never as sent.
        let compact = sealstream_core::json::write::to_python_compact;
        for (sent, signed_license, signed_text) in [
            (
                "{\"n\": 10000000000000001}",
                "{\"n\":1e16}",
                "{\"n\":10000000000000000}",
            ),
            ("{\"n\": 5.0}", "{\"n\":5}", "{\"n\":5}"),
        ] {
            let mut r2 = receipt();
            r2.license = sealstream_core::json::parse(signed_license.as_bytes()).unwrap();
            let signed = r2.sign_v2(&key, &mut OsRng).unwrap();
            let part = signed.disclose(&["license"]).unwrap();
            assert_eq!(
                compact(&part.verify(None).unwrap().fields[0].1),
                signed_text
            );
            let mut doc = part.to_json();
            if let Value::Object(m) = &mut doc {
                if let Some(Value::Array(list)) = m.get_mut("disclosures") {
                    if let Value::Array(first) = &mut list[0] {
                        first[2] = sealstream_core::json::parse(sent.as_bytes()).unwrap();
                    }
                }
            }
            let text = sealstream_core::json::write::to_python_pretty(&doc);
            // Refused, or shown as signed.
            if let Ok(Ok(shown)) = ReceiptV2::parse(text.as_bytes()).map(|p| p.verify(None)) {
                assert_eq!(compact(&shown.fields[0].1), signed_text, "{sent}");
            }
        }
        // Shown twice, or a field that is not one.
        let mut twice = shown.clone();
        twice.disclosures.push(twice.disclosures[0].clone());
        assert!(twice
            .verify(None)
            .unwrap_err()
            .to_string()
            .contains("shown twice"));
        assert!(v2.disclose(&["price"]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_subset_of_fields_verifies_and_shows_exactly_those(mask in 0u32..(1 << 21)) {
            let key = ReceiptSigningKey::generate();
            let v2 = receipt().sign_v2(&key, &mut OsRng).unwrap();
            let names: Vec<&str> = RECEIPT_FIELDS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            let part = v2.disclose(&names).unwrap();
            let back = ReceiptV2::parse(part.to_json_pretty().as_bytes()).unwrap();
            let shown = back.verify(Some(&key.public_key())).unwrap();
            let shown_names: Vec<&str> = shown.fields.iter().map(|(n, _)| n.as_str()).collect();
            proptest::prop_assert_eq!(shown_names, names.clone());
            proptest::prop_assert_eq!(shown.receipt.is_some(), names.len() == RECEIPT_FIELDS.len());
        }
    }

    #[test]
    fn salts_are_fresh_and_digests_sorted() {
        let key = ReceiptSigningKey::generate();
        let r = receipt();
        let a = r.sign_v2(&key, &mut OsRng).unwrap();
        let b = r.sign_v2(&key, &mut OsRng).unwrap();
        assert!(a.digests.windows(2).all(|w| w[0] < w[1]));
        // The same receipt twice shares no digest.
        assert!(a.digests.iter().all(|d| !b.digests.contains(d)));
        // A changed digest list no longer verifies.
        let mut c = a.clone();
        c.digests[0][0] ^= 1;
        c.digests.sort_unstable();
        assert!(c.verify(None).unwrap_err().is_integrity());
    }
}
