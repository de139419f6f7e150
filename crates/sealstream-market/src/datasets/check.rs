//! Checking a signed `sealstream.dataset.v1` manifest against what the
//! server holds for the range it covers. Every refusal names the manifest
//! field at fault (`manifest.merkleRoot`).

use sealstream_core::dataset::{DatasetManifest, SignatureError};
use sealstream_core::identity::Did;

use crate::error::{ApiError, ApiResult};

/// What the server computed for a range, which a manifest must commit to.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The machine (as registered).
    pub machine_did: &'a str,
    /// Its registered owner, accepted as an EIP-191 signer beside it.
    pub owner_did: &'a str,
    /// The chain's topic.
    pub topic: &'a str,
    /// Chain index of the first chunk.
    pub first_index: u64,
    /// Chunks covered.
    pub chunk_count: u64,
    /// Id of the first chunk.
    pub first_chunk_id: &'a str,
    /// Id of the last chunk.
    pub head_chunk_id: &'a str,
    /// `0x` + Merkle root over the chunk ids.
    pub merkle_root: &'a str,
    /// The chain's registered Ed25519 key.
    pub chain_public_key_hex: &'a str,
}

/// Reads the `manifest` member of a request: a `sealstream.dataset.v1`
/// document. A malformed one is a 400 naming `manifest.<field>`.
pub fn parse_manifest(value: &serde_json::Value) -> ApiResult<DatasetManifest> {
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "manifest",
            "expected a sealstream.dataset.v1 JSON object",
        ));
    }
    let bytes = serde_json::to_vec(value).map_err(|e| ApiError::internal("manifest", e))?;
    let parsed = sealstream_core::json::parse(&bytes)
        .map_err(|e| ApiError::bad_request("manifest", e.to_string()))?;
    DatasetManifest::from_json(&parsed)
        .map_err(|e| ApiError::bad_request(&format!("manifest.{}", e.field), e.constraint.clone()))
}

fn mismatch(field: &str, message: String) -> ApiError {
    ApiError::unprocessable(&format!("manifest.{field}"), message)
}

fn is_hash(text: &str) -> bool {
    text.strip_prefix("0x")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Checks `m` against `e`, field by field (what it covers first, then its
/// signatures: the machine's EIP-191, the chain key's Ed25519, or the
/// owner's EIP-191). Returns the DID to record as signer: the owner when
/// the owner signed, otherwise the machine.
pub fn check_manifest(m: &DatasetManifest, e: &Expected<'_>) -> ApiResult<String> {
    let same_did = Did::parse(&m.machine_did, "machineDid")
        .ok()
        .zip(Did::parse(e.machine_did, "machineDid").ok())
        .is_some_and(|(a, b)| a == b);
    if !same_did {
        return Err(mismatch(
            "machineDid",
            format!("the dataset is of machine {}", e.machine_did),
        ));
    }
    if m.topic.as_deref() != Some(e.topic) {
        return Err(mismatch(
            "topic",
            format!("the dataset is of topic {:?}", e.topic),
        ));
    }
    if m.first_index != e.first_index {
        return Err(mismatch(
            "firstIndex",
            format!("the dataset starts at chunk {}", e.first_index),
        ));
    }
    if m.chunk_count != e.chunk_count {
        return Err(mismatch(
            "chunkCount",
            format!("the dataset has {} chunks", e.chunk_count),
        ));
    }
    let fields = [
        (
            "firstChunkId",
            &m.first_chunk_id,
            e.first_chunk_id,
            "the id of the first chunk held",
        ),
        (
            "headChunkId",
            &m.head_chunk_id,
            e.head_chunk_id,
            "the id of the last chunk held",
        ),
        (
            "merkleRoot",
            &m.merkle_root,
            e.merkle_root,
            "the root of the chunk ids held",
        ),
        (
            "chainPublicKeyHex",
            &m.chain_public_key_hex,
            e.chain_public_key_hex,
            "the machine's registered chain key",
        ),
    ];
    for (field, got, want, what) in fields {
        if !got.eq_ignore_ascii_case(want) {
            return Err(mismatch(field, format!("is not {what}, {want}")));
        }
    }
    for (i, index) in m.sample_chunk_indexes.iter().enumerate() {
        if *index < e.first_index || *index - e.first_index >= e.chunk_count {
            return Err(mismatch(
                &format!("sampleChunkIndexes[{i}]"),
                format!(
                    "chunk {index} is not in the dataset (chunks {} to {})",
                    e.first_index,
                    e.first_index + e.chunk_count - 1
                ),
            ));
        }
    }
    if !is_hash(&m.source_hash) {
        return Err(mismatch("sourceHash", "expected 0x + 64 hex digits".into()));
    }
    if sealstream_core::utc::parse_seconds(&m.created_at).is_none() {
        return Err(mismatch(
            "createdAt",
            "expected YYYY-MM-DDTHH:MM:SSZ".into(),
        ));
    }
    m.verify_signatures_allowing(&[e.owner_did])
        .map_err(|err| signature_refusal(&err, e))?;
    let owner_signed = m
        .eip191_signers()
        .iter()
        .any(|s| s.eq_ignore_ascii_case(e.owner_did));
    Ok(if owner_signed {
        e.owner_did.to_string()
    } else {
        e.machine_did.to_string()
    })
}

fn signature_refusal(err: &SignatureError, e: &Expected<'_>) -> ApiError {
    let at = |position: usize| format!("signatures[{position}]");
    match err {
        SignatureError::Unsigned => mismatch(
            "signatures",
            "at least one signature is required (EIP-191 by the machine or its owner, or Ed25519 by the chain key)".into(),
        ),
        SignatureError::BadDid => mismatch("machineDid", "not a did:peaq:0x… DID".into()),
        SignatureError::Eip191 { position, did } => mismatch(
            &at(*position),
            format!("EIP-191 signature is not by {did} (the manifest was changed after signing, or signed by another key)"),
        ),
        SignatureError::Eip191Signer { position, signer } => mismatch(
            &at(*position),
            format!(
                "EIP-191 signer {signer} is neither the machine {} nor its registered owner {}",
                e.machine_did, e.owner_did
            ),
        ),
        SignatureError::Ed25519 { position } => mismatch(
            &at(*position),
            "Ed25519 signature does not verify with the chain key (the manifest was changed after signing, or signed by another key)".into(),
        ),
        other => mismatch("signatures", other.to_string()),
    }
}
