//! Disputes of escrowed orders (issue 21 part 5): the buyer's evidence
//! (`sealstream.dispute-evidence.v1`, [`DisputeEvidence`]), its offline
//! check ([`verify`], what `sealstream dispute verify evidence.json` runs
//! and the market's evidence checker runs too), and the bodies of
//! `POST /v1/orders/{id}/dispute` (the evidence itself) and
//! `POST /v1/orders/{id}/dispute/resolve` ([`ResolveDispute`]).
//!
//! Evidence is self-contained: the dataset's signed manifest, the signed
//! chunk envelope and what the kind needs. Three kinds of fault are
//! machine-checkable, each by signatures and hashes alone:
//! - [`EvidenceKind::CiphertextHash`]: the ciphertext's SHA-256 is not the
//!   `encryptedDataHash` of its envelope, signed by the dataset's machine;
//! - [`EvidenceKind::DecryptFailure`]: the ciphertext is the signed one,
//!   but the chunk key granted to the buyer (the access entry, sealed to
//!   the order's X25519 key, whose secret the evidence carries: it opens
//!   only this order's grant) does not decrypt it;
//! - [`EvidenceKind::NotInRoot`]: an envelope of the dataset's range,
//!   signed by its machine, is not the chunk the signed Merkle root commits
//!   to at that index (a valid inclusion proof of that index names another
//!   chunk id): the machine signed two different chunks for one place.
//!
//! Offline, evidence proves a fault of the signed data; that the bytes are
//! what the market served (the ciphertext, the access entry) is checked by
//! the market against its own store (docs/market-design.md, "Escrow").

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use sealstream_core::access::AccessEntry;
use sealstream_core::chunk::{decrypt_chunk, verify_signed, ChunkEnvelope, KeyRecipient};
use sealstream_core::dataset::{chunk_leaf, DatasetManifest, InclusionProof};
use sealstream_core::keys::{parse_hex_exact, RecipientSecretKey};

/// `schemaVersion` of dispute evidence.
pub const DISPUTE_EVIDENCE_SCHEMA: &str = "sealstream.dispute-evidence.v1";

/// Largest ciphertext evidence carries, in bytes (the hex is twice this):
/// one chunk.
pub const MAX_EVIDENCE_CIPHERTEXT: usize = 16 * 1024 * 1024;

crate::wire_enum! {
    /// Which fault the evidence shows.
    pub enum EvidenceKind refuse "expected ciphertext-hash, decrypt-failure or not-in-root" {
        /// The ciphertext does not hash to its signed `encryptedDataHash`.
        CiphertextHash = "ciphertext-hash",
        /// The granted key does not decrypt the signed ciphertext.
        DecryptFailure = "decrypt-failure",
        /// A signed chunk of the range is not the one the root commits to.
        NotInRoot = "not-in-root",
    }
}

/// The buyer's evidence of a fault (`sealstream.dispute-evidence.v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisputeEvidence {
    /// [`DISPUTE_EVIDENCE_SCHEMA`].
    pub schema_version: String,
    /// The order disputed.
    pub order_id: String,
    /// The fault shown.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: EvidenceKind,
    /// The dataset's manifest (`sealstream.dataset.v1`), signed by its
    /// machine.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dataset: Value,
    /// The chunk's envelope (`peaq.stream.chunks.v1`), signed by the
    /// dataset's machine.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub envelope: Value,
    /// The ciphertext as served, hex (`ciphertext-hash`,
    /// `decrypt-failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_hex: Option<String>,
    /// The access entry granted to the order, `{chunkId, buyer}` with
    /// `buyer` the key recipient of type `buyer` (`decrypt-failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub access: Option<Value>,
    /// The order's X25519 secret key, hex (`decrypt-failure`): it opens
    /// only this order's grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_secret_key_hex: Option<String>,
    /// An inclusion proof (`sealstream.dataset-inclusion.v1`) of the
    /// envelope's index against the dataset's root (`not-in-root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub proof: Option<Value>,
    /// The buyer's words, not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
}

/// A fault the evidence proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// The kind of fault.
    pub kind: EvidenceKind,
    /// The dataset's Merkle root.
    pub merkle_root: String,
    /// The chunk at fault.
    pub chunk_id: String,
    /// Its index in the chain.
    pub chunk_index: u64,
    /// What was found, in words.
    pub detail: String,
}

/// Why evidence proves nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// It is not evidence: not JSON of this format, or a field is missing
    /// or malformed (named).
    #[error("malformed evidence: {field}: {reason}")]
    Malformed {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Well-formed, but it shows no fault (or not one of the seller's).
    #[error("the evidence shows no fault: {0}")]
    NotAFault(String),
}

impl EvidenceError {
    fn malformed(field: &str, reason: impl std::fmt::Display) -> Self {
        EvidenceError::Malformed {
            field: field.to_string(),
            reason: reason.to_string(),
        }
    }
}

fn no_fault(reason: impl Into<String>) -> EvidenceError {
    EvidenceError::NotAFault(reason.into())
}

/// `0x` + the SHA-256 of the evidence's compact JSON as this crate
/// writes it (fields in declaration order, absent options left out): the
/// `evidenceHash` the market records and the buyer's CLI sends on chain
/// with `dispute(orderKey, evidenceHash)`, the same for any spacing of the
/// file.
pub fn evidence_hash(evidence: &DisputeEvidence) -> String {
    let bytes = serde_json::to_vec(evidence).unwrap_or_default();
    format!("0x{}", hex::encode(Sha256::digest(&bytes)))
}

/// Parses evidence from its JSON bytes.
pub fn parse(bytes: &[u8]) -> Result<DisputeEvidence, EvidenceError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let evidence: DisputeEvidence = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path == "?" {
            "(document)"
        } else {
            &path
        };
        EvidenceError::malformed(field, e.into_inner())
    })?;
    de.end()
        .map_err(|e| EvidenceError::malformed("(document)", e))?;
    Ok(evidence)
}

/// What every kind checks first: the format, the dataset's signatures,
/// the envelope's signature by the dataset's machine, its index in the
/// dataset's range.
fn signed_parts(e: &DisputeEvidence) -> Result<(DatasetManifest, ChunkEnvelope), EvidenceError> {
    if e.schema_version != DISPUTE_EVIDENCE_SCHEMA {
        return Err(EvidenceError::malformed(
            "schemaVersion",
            format!("expected {DISPUTE_EVIDENCE_SCHEMA}"),
        ));
    }
    if e.order_id.trim().is_empty() {
        return Err(EvidenceError::malformed("orderId", "must not be empty"));
    }
    let dataset = DatasetManifest::from_json(&core_json(&e.dataset, "dataset")?)
        .map_err(|v| EvidenceError::malformed(&format!("dataset.{}", v.field), v.constraint))?;
    let envelope = ChunkEnvelope::from_json(&core_json(&e.envelope, "envelope")?)
        .map_err(|v| EvidenceError::malformed(&format!("envelope.{}", v.field), v.constraint))?;
    dataset
        .verify_signatures()
        .map_err(|s| no_fault(format!("the dataset's signatures do not verify: {s}")))?;
    verify_signed(&envelope).map_err(|r| {
        no_fault(format!(
            "the envelope's signature does not verify ({})",
            r.reference_reason()
        ))
    })?;
    if !envelope
        .signature
        .machine_did
        .eq_ignore_ascii_case(&dataset.machine_did)
        || !envelope
            .signature
            .public_key_hex
            .eq_ignore_ascii_case(&dataset.chain_public_key_hex)
    {
        return Err(no_fault(
            "the envelope is not signed by the dataset's machine chain key",
        ));
    }
    let in_range = envelope
        .index
        .checked_sub(dataset.first_index)
        .is_some_and(|leaf| leaf < dataset.chunk_count);
    if !in_range {
        return Err(no_fault(format!(
            "chunk {} is outside the dataset's range ({} chunks from {})",
            envelope.index, dataset.chunk_count, dataset.first_index
        )));
    }
    Ok((dataset, envelope))
}

fn ciphertext(e: &DisputeEvidence) -> Result<Vec<u8>, EvidenceError> {
    let text = e
        .ciphertext_hex
        .as_deref()
        .ok_or_else(|| EvidenceError::malformed("ciphertextHex", "required for this kind"))?;
    if text.len() > 2 * MAX_EVIDENCE_CIPHERTEXT {
        return Err(EvidenceError::malformed(
            "ciphertextHex",
            format!("longer than {MAX_EVIDENCE_CIPHERTEXT} bytes"),
        ));
    }
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|_| EvidenceError::malformed("ciphertextHex", "expected hex digits"))
}

/// A part of the evidence as the core's order-keeping JSON value (what
/// the signed formats are read from).
fn core_json(value: &Value, field: &str) -> Result<sealstream_core::json::Value, EvidenceError> {
    let text = serde_json::to_vec(value).map_err(|e| EvidenceError::malformed(field, e))?;
    sealstream_core::json::parse(&text).map_err(|e| EvidenceError::malformed(field, e))
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(Sha256::digest(bytes)))
}

/// The access entry `{chunkId, buyer}` of decrypt-failure evidence.
pub fn access_entry(value: &Value) -> Result<AccessEntry, EvidenceError> {
    let obj = value
        .as_object()
        .ok_or_else(|| EvidenceError::malformed("access", "expected an object"))?;
    let chunk_id = obj
        .get("chunkId")
        .and_then(Value::as_str)
        .ok_or_else(|| EvidenceError::malformed("access.chunkId", "expected a string"))?;
    let buyer = obj
        .get("buyer")
        .ok_or_else(|| EvidenceError::malformed("access.buyer", "required"))
        .and_then(|b| core_json(b, "access.buyer"))
        .and_then(|b| {
            KeyRecipient::from_json(&b, "access.buyer").map_err(|v| {
                EvidenceError::malformed(&format!("access.buyer.{}", v.field), v.constraint)
            })
        })?;
    Ok(AccessEntry {
        chunk_id: chunk_id.to_string(),
        buyer,
    })
}

/// Checks `evidence` offline: `Ok` with the fault it proves, or why it
/// proves none ([`EvidenceError::NotAFault`]) or is not evidence
/// ([`EvidenceError::Malformed`]).
pub fn verify(evidence: &DisputeEvidence) -> Result<Fault, EvidenceError> {
    let (dataset, envelope) = signed_parts(evidence)?;
    let fault = |detail: String| Fault {
        kind: evidence.kind,
        merkle_root: dataset.merkle_root.clone(),
        chunk_id: envelope.chunk_id.clone(),
        chunk_index: envelope.index,
        detail,
    };
    match evidence.kind {
        EvidenceKind::CiphertextHash => {
            let data = ciphertext(evidence)?;
            let found = sha256_hex(&data);
            if found.eq_ignore_ascii_case(&envelope.encrypted_data_hash) {
                return Err(no_fault(
                    "the ciphertext hashes to the envelope's encryptedDataHash",
                ));
            }
            Ok(fault(format!(
                "the ciphertext hashes to {found}, the machine signed {}",
                envelope.encrypted_data_hash
            )))
        }
        EvidenceKind::DecryptFailure => {
            let data = ciphertext(evidence)?;
            if !sha256_hex(&data).eq_ignore_ascii_case(&envelope.encrypted_data_hash) {
                return Err(no_fault(
                    "the ciphertext is not the one the envelope signs (that is a ciphertext-hash \
                     dispute)",
                ));
            }
            let entry =
                access_entry(evidence.access.as_ref().ok_or_else(|| {
                    EvidenceError::malformed("access", "required for this kind")
                })?)?;
            let secret_text = evidence.buyer_secret_key_hex.as_deref().ok_or_else(|| {
                EvidenceError::malformed("buyerSecretKeyHex", "required for this kind")
            })?;
            let secret = RecipientSecretKey::from_hex(secret_text, "buyerSecretKeyHex")
                .map_err(|v| EvidenceError::malformed("buyerSecretKeyHex", v.constraint))?;
            if entry.chunk_id != envelope.chunk_id {
                return Err(no_fault("the access entry is for another chunk"));
            }
            if !secret
                .public_key()
                .to_hex()
                .eq_ignore_ascii_case(entry.buyer.public_key_hex.trim_start_matches("0x"))
                && !secret
                    .public_key()
                    .to_hex()
                    .eq_ignore_ascii_case(&entry.buyer.public_key_hex)
            {
                return Err(no_fault(
                    "the secret key is not the one the access entry is sealed to",
                ));
            }
            match decrypt_chunk(&envelope, &entry.buyer, &secret, data) {
                Ok(_) => Err(no_fault("the chunk decrypts with the granted key")),
                Err(e) => Ok(fault(format!("the granted key does not decrypt it: {e}"))),
            }
        }
        EvidenceKind::NotInRoot => {
            let proof = InclusionProof::from_json(&core_json(
                evidence
                    .proof
                    .as_ref()
                    .ok_or_else(|| EvidenceError::malformed("proof", "required for this kind"))?,
                "proof",
            )?)
            .map_err(|v| EvidenceError::malformed(&format!("proof.{}", v.field), v.constraint))?;
            if proof.chunk_index != envelope.index
                || envelope.index.checked_sub(dataset.first_index) != Some(proof.leaf_index)
                || proof.tree_size != dataset.chunk_count
                || !proof.merkle_root.eq_ignore_ascii_case(&dataset.merkle_root)
            {
                return Err(no_fault(
                    "the proof is not of the envelope's index in this dataset",
                ));
            }
            let root = parse_hex_exact::<32>(&dataset.merkle_root, "merkleRoot")
                .map_err(|v| EvidenceError::malformed("dataset.merkleRoot", v.constraint))?;
            let leaf = chunk_leaf(&proof.chunk_id)
                .ok_or_else(|| EvidenceError::malformed("proof.chunkId", "expected 0x + 64 hex"))?;
            if !sealstream_core::merkle::verify_inclusion(
                &leaf,
                proof.leaf_index,
                proof.tree_size,
                &proof.path,
                &root,
            ) {
                return Err(no_fault("the proof does not lead to the dataset's root"));
            }
            if proof.chunk_id.eq_ignore_ascii_case(&envelope.chunk_id) {
                return Err(no_fault("the root commits to this very chunk"));
            }
            Ok(fault(format!(
                "the root commits to chunk {} at index {}, the machine also signed {}",
                proof.chunk_id, envelope.index, envelope.chunk_id
            )))
        }
    }
}

/// The arbiter's split of a disputed payment (`POST
/// /v1/orders/{id}/dispute/resolve`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveDispute {
    /// What goes back to the buyer, in the rail's base units (decimal, at
    /// most the order's amount); the rest goes to the seller.
    pub to_buyer: String,
}

crate::wire_enum! {
    /// Where an escrowed payment is.
    pub enum EscrowState refuse "expected held, disputed, released or resolved" {
        /// Held until the dispute window passes.
        Held = "held",
        /// Disputed by the buyer, waiting for a decision.
        Disputed = "disputed",
        /// Paid to the seller.
        Released = "released",
        /// Split by a decision.
        Resolved = "resolved",
    }
}

/// An order's escrow as the market shows it (`GET`-able with the order,
/// and the answer of the dispute routes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EscrowView {
    /// The order.
    pub order_id: String,
    /// Its state.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: EscrowState,
    /// The amount held, in base units.
    pub amount: String,
    /// The escrow contract (EVM).
    pub contract: Option<String>,
    /// `0x` + keccak256 of the order id: the deal's key on chain.
    pub order_key: String,
    /// Held: the end of the dispute window; disputed: the arbitration
    /// deadline (Unix seconds, the chain's clock for EVM).
    pub release_after: u64,
    /// SHA-256 of the evidence posted, if any.
    pub evidence_hash: Option<String>,
    /// The evidence checker's verdict: `true` a fault is proven, `false`
    /// not, absent before the check.
    pub evidence_valid: Option<bool>,
    /// The checker's words.
    pub evidence_reason: Option<String>,
    /// The decided split, once resolved.
    pub to_buyer: Option<String>,
    /// The seller's part, once resolved or released.
    pub to_seller: Option<String>,
    /// The release or resolve transaction (EVM).
    pub settle_tx: Option<String>,
}
