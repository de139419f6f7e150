//! Signed data packages: field rules, then EIP-191 over the canonical envelope.
//!
//! Wire JSON (camelCase): `did`, `timestamp`, `schemaVersion`,
//! `sequenceNumber`, `payload`, `signature`, `signingKeyId`. The signed bytes
//! are the canonical JSON of `{did, timestamp, schemaVersion, sequenceNumber,
//! payload}`.

use std::fmt;

use crate::error::ValidationError;
use crate::identity::{eip191_recover, eip191_sign, Did, Eip191Signature};
use crate::json::{self, canonical, Map, Number, Value};
use crate::keys::{FieldKey, MachineSigningKey};
use crate::rules::{RulesError, TopicRules};

/// A raw topic payload before field rules.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsignedPayload {
    /// The topic the payload came from.
    pub topic: String,
    /// The raw fields.
    pub fields: Map,
    /// ISO 8601 capture time; becomes the package `timestamp`.
    pub captured_at: String,
}

/// A signed data package.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPackage {
    /// The signing machine's DID.
    pub did: String,
    /// Capture time (ISO 8601).
    pub timestamp: String,
    /// Schema version of the payload.
    pub schema_version: String,
    /// Monotonic sequence number of the machine's stream (any size).
    pub sequence_number: Number,
    /// The payload after field rules.
    pub payload: Map,
    /// `0x` + r‖s‖v hex.
    pub signature: String,
    /// The signing key's id (`did:peaq:0x…#keys-1`).
    pub signing_key_id: String,
}

/// Everything needed to sign packages for one machine.
pub struct PackageSigner {
    key: MachineSigningKey,
    did: String,
    key_id: String,
    field_key: Option<FieldKey>,
}

impl fmt::Debug for PackageSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackageSigner")
            .field("did", &self.did)
            .field("key_id", &self.key_id)
            .field("field_key", &self.field_key.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Caller input breaks a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The field rules could not be applied.
    #[error(transparent)]
    Rules(#[from] RulesError),
}

impl PackageSigner {
    /// A signer for `did` (which must be the DID of `key`; any letter case).
    /// `key_id` defaults to `did#keys-1`.
    pub fn new(
        key: MachineSigningKey,
        did: &str,
        key_id: Option<String>,
        field_key: Option<FieldKey>,
    ) -> Result<Self, ValidationError> {
        let parsed = Did::parse(did, "did")?;
        if parsed.address() != key.address() {
            return Err(ValidationError::new(
                "did",
                "must be the DID of the signing key",
            ));
        }
        let key_id = key_id.unwrap_or_else(|| format!("{did}#keys-1"));
        if key_id.trim().is_empty() {
            return Err(ValidationError::new("key_id", "non-empty string"));
        }
        Ok(PackageSigner {
            key,
            did: did.to_string(),
            key_id,
            field_key,
        })
    }

    /// The DID packages are signed as.
    pub fn did(&self) -> &str {
        &self.did
    }

    /// Apply `rules` to `payload` and sign the result.
    pub fn build(
        &self,
        payload: &UnsignedPayload,
        rules: &TopicRules,
        schema_version: &str,
        sequence_number: u64,
    ) -> Result<DataPackage, BuildError> {
        if schema_version.trim().is_empty() {
            return Err(ValidationError::new("schema_version", "required").into());
        }
        let processed = self.apply_rules(payload, rules)?;
        Ok(self.sign_processed(
            processed,
            &payload.captured_at,
            schema_version,
            sequence_number,
        ))
    }

    /// The first half of [`PackageSigner::build`]: the payload after `rules`
    /// (with this signer's field key for `encrypt`). Lets a caller apply rules,
    /// number only the packages that pass, and sign them in parallel.
    pub fn apply_rules(
        &self,
        payload: &UnsignedPayload,
        rules: &TopicRules,
    ) -> Result<Map, RulesError> {
        rules.apply(&payload.fields, self.field_key.as_ref())
    }

    /// [`PackageSigner::apply_rules`] on fields of one's own, changed in
    /// place rather than copied.
    pub fn apply_rules_owned(&self, fields: Map, rules: &TopicRules) -> Result<Map, RulesError> {
        rules.apply_owned(fields, self.field_key.as_ref())
    }

    /// The second half of [`PackageSigner::build`]: sign an already processed
    /// payload. `schema_version` must not be blank (as `build` checks).
    pub fn sign_processed(
        &self,
        processed: Map,
        captured_at: &str,
        schema_version: &str,
        sequence_number: u64,
    ) -> DataPackage {
        sign_as(
            &self.key,
            &self.did,
            &self.key_id,
            processed,
            captured_at,
            schema_version,
            Number::from(sequence_number),
        )
    }

    /// The JSON line of `package` numbered `sequence_number` and signed by
    /// this signer, without copying or changing the package: what
    /// `sign_processed` of its payload, capture time and schema version
    /// would give, as [`DataPackage::to_json_line`]. The package's `did` and
    /// `signingKeyId` must be this signer's (its number and signature are
    /// not read).
    pub fn signed_line(&self, package: &DataPackage, sequence_number: u64) -> String {
        debug_assert_eq!(package.did, self.did);
        debug_assert_eq!(package.signing_key_id, self.key_id);
        let number = Number::from(sequence_number).to_python_text();
        let bytes = package.signed_bytes_numbered(&number);
        let signature = eip191_sign(&self.key, bytes.as_bytes()).to_hex();
        package.json_line_as(&number, &signature)
    }
}

/// Sign an already processed payload as the reference's
/// `build_signed_data_package` does: `did` is written as given (the reference
/// does not check that it is `key`'s; such a package then fails
/// verification) and `sequence_number` is any integer. [`PackageSigner`] is
/// the checked way; this is for drop-in callers that must match the
/// reference's outputs on every input.
pub fn sign_as(
    key: &MachineSigningKey,
    did: &str,
    key_id: &str,
    processed: Map,
    captured_at: &str,
    schema_version: &str,
    sequence_number: Number,
) -> DataPackage {
    let mut package = DataPackage {
        did: did.to_string(),
        timestamp: captured_at.to_string(),
        schema_version: schema_version.to_string(),
        sequence_number,
        payload: processed,
        signature: String::new(),
        signing_key_id: key_id.to_string(),
    };
    let bytes = package.signed_bytes();
    package.signature = eip191_sign(key, bytes.as_bytes()).to_hex();
    package
}

/// Which canonical form a signature was made over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanonicalForm {
    /// The reference's Python form.
    Python,
    /// RFC 8785 (a JavaScript signer).
    Rfc8785,
}

/// Why a package does not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidReason {
    /// The DID is not `did:peaq:0x` + 40 hex digits.
    InvalidDid,
    /// The signature is not 65 bytes of hex, or `v` is not 0/1/27/28, or no key recovers.
    InvalidSignature,
    /// A key recovers, but it is not the DID's.
    SignerMismatch {
        /// The address recovered from the Python-form bytes.
        recovered: String,
    },
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidReason::InvalidDid => f.write_str("Invalid package DID format"),
            InvalidReason::InvalidSignature => f.write_str("Invalid signature"),
            InvalidReason::SignerMismatch { recovered } => {
                write!(f, "Recovered signer {recovered} does not match package DID")
            }
        }
    }
}

/// The outcome of [`DataPackage::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The DID the package claims.
    pub signer_did: String,
    /// `Ok(form)` with the canonical form that verified, or the reason it failed.
    pub outcome: Result<CanonicalForm, InvalidReason>,
}

impl Verification {
    /// Whether the package verified.
    pub fn is_valid(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl DataPackage {
    /// The signable envelope `{did, timestamp, schemaVersion, sequenceNumber, payload}`.
    pub fn signable(&self) -> Value {
        Value::Object(self.signable_members(5))
    }

    /// The signable members in the reference's key order, in a map with
    /// room for `capacity` members.
    fn signable_members(&self, capacity: usize) -> Map {
        let mut m = Map::with_capacity(capacity);
        m.insert("did".into(), Value::from(self.did.as_str()));
        m.insert("timestamp".into(), Value::from(self.timestamp.as_str()));
        m.insert(
            "schemaVersion".into(),
            Value::from(self.schema_version.as_str()),
        );
        m.insert(
            "sequenceNumber".into(),
            Value::Number(self.sequence_number.clone()),
        );
        m.insert("payload".into(), Value::Object(self.payload.clone()));
        m
    }

    /// The exact bytes the reference signs (Python canonical form).
    pub fn signed_bytes(&self) -> String {
        self.signed_bytes_numbered(&self.sequence_number.to_python_text())
    }

    /// [`DataPackage::signed_bytes`] with `sequence_number` (its Python text)
    /// for the package's own.
    fn signed_bytes_numbered(&self, sequence_number: &str) -> String {
        // `canonical::python(&self.signable())`, written from the fields
        // without copying the payload into a new value: the members in
        // sorted key order (did, payload, schemaVersion, sequenceNumber,
        // timestamp).
        let mut out = String::with_capacity(256);
        out.push_str("{\"did\":");
        json::write::push_python_string(&mut out, &self.did);
        out.push_str(",\"payload\":");
        canonical::push_python_object(&mut out, &self.payload);
        out.push_str(",\"schemaVersion\":");
        json::write::push_python_string(&mut out, &self.schema_version);
        out.push_str(",\"sequenceNumber\":");
        out.push_str(sequence_number);
        out.push_str(",\"timestamp\":");
        json::write::push_python_string(&mut out, &self.timestamp);
        out.push('}');
        out
    }

    /// Recover the signer and compare it with the DID. Tries the Python form,
    /// then the RFC 8785 form a JavaScript signer would produce.
    pub fn verify(&self) -> Verification {
        let outcome = self.verify_inner();
        Verification {
            signer_did: self.did.clone(),
            outcome,
        }
    }

    /// Verify as the reference's `verify_data_package` does: the Python
    /// canonical form only (no RFC 8785 fallback).
    pub fn verify_python_form(&self) -> Result<(), InvalidReason> {
        let did = Did::parse(&self.did, "did").map_err(|_| InvalidReason::InvalidDid)?;
        let signature = Eip191Signature::from_hex(&self.signature, "signature")
            .map_err(|_| InvalidReason::InvalidSignature)?;
        let address = eip191_recover(self.signed_bytes().as_bytes(), &signature)
            .map_err(|_| InvalidReason::InvalidSignature)?;
        if address == did.address() {
            Ok(())
        } else {
            Err(InvalidReason::SignerMismatch {
                recovered: address.to_checksum(),
            })
        }
    }

    fn verify_inner(&self) -> Result<CanonicalForm, InvalidReason> {
        let did = Did::parse(&self.did, "did").map_err(|_| InvalidReason::InvalidDid)?;
        let signature = Eip191Signature::from_hex(&self.signature, "signature")
            .map_err(|_| InvalidReason::InvalidSignature)?;
        let signable = self.signable();
        let python_bytes = canonical::python(&signable);
        let first = eip191_recover(python_bytes.as_bytes(), &signature);
        if let Ok(address) = first {
            if address == did.address() {
                return Ok(CanonicalForm::Python);
            }
        }
        if let Ok(jcs) = canonical::rfc8785(&signable) {
            if jcs != python_bytes {
                if let Ok(address) = eip191_recover(jcs.as_bytes(), &signature) {
                    if address == did.address() {
                        return Ok(CanonicalForm::Rfc8785);
                    }
                }
            }
        }
        match first {
            Ok(address) => Err(InvalidReason::SignerMismatch {
                recovered: address.to_checksum(),
            }),
            Err(_) => Err(InvalidReason::InvalidSignature),
        }
    }

    /// Wire JSON in the reference's key order.
    pub fn to_json(&self) -> Value {
        let mut m = self.signable_members(7);
        m.insert("signature".into(), Value::from(self.signature.as_str()));
        m.insert(
            "signingKeyId".into(),
            Value::from(self.signing_key_id.as_str()),
        );
        Value::Object(m)
    }

    /// One line of JSON (compact, reference key order).
    pub fn to_json_line(&self) -> String {
        self.json_line_as(&self.sequence_number.to_python_text(), &self.signature)
    }

    /// [`DataPackage::to_json_line`] with `sequence_number` (its Python text)
    /// and `signature` for the package's own.
    fn json_line_as(&self, sequence_number: &str, signature: &str) -> String {
        let mut out = String::with_capacity(384);
        self.write_json_line_as(&mut out, sequence_number, signature);
        out
    }

    /// [`DataPackage::to_json_line`] appended to `out`.
    pub fn write_json_line(&self, out: &mut String) {
        self.write_json_line_as(out, &self.sequence_number.to_python_text(), &self.signature);
    }

    fn write_json_line_as(&self, out: &mut String, sequence_number: &str, signature: &str) {
        // `to_python_compact(&self.to_json())`, written from the fields
        // without copying the payload into a new value.
        out.push_str("{\"did\":");
        json::write::push_python_string(out, &self.did);
        out.push_str(",\"timestamp\":");
        json::write::push_python_string(out, &self.timestamp);
        out.push_str(",\"schemaVersion\":");
        json::write::push_python_string(out, &self.schema_version);
        out.push_str(",\"sequenceNumber\":");
        out.push_str(sequence_number);
        out.push_str(",\"payload\":");
        json::write::push_python_compact_object(out, &self.payload);
        out.push_str(",\"signature\":");
        json::write::push_python_string(out, signature);
        out.push_str(",\"signingKeyId\":");
        json::write::push_python_string(out, &self.signing_key_id);
        out.push('}');
    }

    /// Read wire JSON; every field is required and typed.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("package", "expected a JSON object"))?;
        let string = |name: &str| -> Result<String, ValidationError> {
            obj.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ValidationError::new(name, "required string"))
        };
        let sequence_number = obj
            .get("sequenceNumber")
            .and_then(Value::as_number)
            .filter(|n| n.is_int())
            .cloned()
            .ok_or_else(|| ValidationError::new("sequenceNumber", "required integer"))?;
        let payload = obj
            .get("payload")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| ValidationError::new("payload", "required object"))?;
        Ok(DataPackage {
            did: string("did")?,
            timestamp: string("timestamp")?,
            schema_version: string("schemaVersion")?,
            sequence_number,
            payload,
            signature: string("signature")?,
            signing_key_id: string("signingKeyId")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";
    const DID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1";

    fn signer() -> PackageSigner {
        PackageSigner::new(
            MachineSigningKey::from_hex(KEY, "key").unwrap(),
            DID,
            None,
            None,
        )
        .unwrap()
    }

    fn payload(fields: &str) -> UnsignedPayload {
        UnsignedPayload {
            topic: "/t".into(),
            fields: json::parse(fields.as_bytes())
                .unwrap()
                .as_object()
                .unwrap()
                .clone(),
            captured_at: "2026-11-21T10:00:00Z".into(),
        }
    }

    #[test]
    fn build_then_verify() {
        let p = signer()
            .build(
                &payload(r#"{"a":1.5}"#),
                &TopicRules::new("/t", vec![]),
                "1.0.0",
                7,
            )
            .unwrap();
        assert_eq!(p.verify().outcome, Ok(CanonicalForm::Python));
        let back =
            DataPackage::from_json(&json::parse(p.to_json_line().as_bytes()).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_signed_line_is_the_line_of_the_signed_package() {
        let s = signer();
        let processed = payload(r#"{"a":1.5,"b":"x","c":[1,2]}"#).fields;
        let expected = s.sign_processed(processed.clone(), "2026-11-21T10:00:00Z", "1.0.0", 42);
        // A package numbered and signed otherwise (or with placeholders)
        // gives the line it would have numbered and signed so.
        let mut p = s.sign_processed(processed, "2026-11-21T10:00:00Z", "1.0.0", 9);
        p.signature = "0".repeat(132);
        let line = s.signed_line(&p, 42);
        assert_eq!(line, expected.to_json_line());
        let back = DataPackage::from_json(&json::parse(line.as_bytes()).unwrap()).unwrap();
        assert_eq!(back.verify().outcome, Ok(CanonicalForm::Python));
    }

    #[test]
    fn tampering_is_a_signer_mismatch() {
        let mut p = signer()
            .build(
                &payload(r#"{"a":1}"#),
                &TopicRules::new("/t", vec![]),
                "1.0.0",
                1,
            )
            .unwrap();
        p.payload.insert("a".into(), Value::from(2u64));
        assert!(matches!(
            p.verify().outcome,
            Err(InvalidReason::SignerMismatch { .. })
        ));
        p.did = "did:peaq:nope".into();
        assert_eq!(p.verify().outcome, Err(InvalidReason::InvalidDid));
    }

    #[test]
    fn rfc8785_signatures_are_accepted() {
        let mut p = signer()
            .build(
                &payload(r#"{"f":1.0,"s":"ü"}"#),
                &TopicRules::new("/t", vec![]),
                "1.0.0",
                1,
            )
            .unwrap();
        let jcs = canonical::rfc8785(&p.signable()).unwrap();
        let key = MachineSigningKey::from_hex(KEY, "key").unwrap();
        p.signature = eip191_sign(&key, jcs.as_bytes()).to_hex();
        assert_eq!(p.verify().outcome, Ok(CanonicalForm::Rfc8785));
    }

    #[test]
    fn did_must_match_key() {
        let other = MachineSigningKey::generate();
        assert!(PackageSigner::new(other, DID, None, None).is_err());
    }
}
