//! What a chunk envelope must satisfy before anything of the upload is
//! stored: it parses, it is the chunk the path names, it is encrypted for
//! every recipient the machine registered, and it is signed with the
//! machine's registered chain key. The link to the chain held and the
//! ciphertext hash are checked by [`super::upload`], which holds the chain
//! row and the bytes.
//!
//! Every refusal names the envelope field at fault as `envelope.<field>`.

use sealstream_core::chunk::{
    verify_signed, ChunkEnvelope, EnvelopeParseError, VerifyReason, CHUNK_CIPHER,
    SIGNATURE_ALGORITHM, WRAP_ALGORITHM,
};
use sealstream_core::keys::{is_blank, parse_hex_exact, ChainPublicKey, RecipientPublicKey};

use crate::auth::same_did;
use crate::error::{ApiError, ApiResult};
use crate::machines::MachineView;

/// Largest envelope accepted, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;

/// An envelope that passed [`check_envelope`], with its text as uploaded.
#[derive(Clone, Debug)]
pub struct CheckedEnvelope {
    /// The parsed envelope.
    pub envelope: ChunkEnvelope,
    /// The JSON text exactly as uploaded.
    pub text: String,
}

/// Parses `bytes` as the envelope of chunk `index` of `machine` and checks
/// everything that needs neither the chain held nor the ciphertext.
pub fn check_envelope(
    bytes: &[u8],
    machine: &MachineView,
    index: u64,
) -> ApiResult<CheckedEnvelope> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("envelope", "not UTF-8 text"))?
        .to_string();
    let envelope = ChunkEnvelope::parse(bytes).map_err(|e| match e {
        EnvelopeParseError::Json(e) => {
            ApiError::bad_request("envelope", format!("invalid JSON: {e}"))
        }
        EnvelopeParseError::Invalid(v) => {
            let field = if v.field == "envelope" {
                "envelope".to_string()
            } else {
                format!("envelope.{}", v.field)
            };
            ApiError::bad_request(&field, v.constraint)
        }
        other => ApiError::bad_request("envelope", other.to_string()),
    })?;
    if envelope.index != index {
        return Err(ApiError::bad_request(
            "envelope.index",
            format!(
                "the envelope is chunk {}, the path names chunk {index}",
                envelope.index
            ),
        ));
    }
    check_form(&envelope)?;
    check_recipients(&envelope, machine)?;
    check_signature(&envelope, machine)?;
    Ok(CheckedEnvelope { envelope, text })
}

/// Hex fields have their sizes, and the algorithms are those of v1.
fn check_form(envelope: &ChunkEnvelope) -> ApiResult<()> {
    if !is_digest(&envelope.encrypted_data_hash) {
        return Err(ApiError::unprocessable(
            "envelope.encryptedDataHash",
            "expected 0x and 64 lowercase hex digits",
        ));
    }
    let encryption = &envelope.encryption;
    if encryption.algorithm != CHUNK_CIPHER {
        return Err(ApiError::unprocessable(
            "envelope.encryption.algorithm",
            format!("expected {CHUNK_CIPHER}: only encrypted chunks are accepted"),
        ));
    }
    parse_hex_exact::<24>(&encryption.nonce, "envelope.encryption.nonce")
        .map_err(|e| ApiError::unprocessable(&e.field, e.constraint))?;
    if encryption.key_recipients.is_empty() {
        return Err(ApiError::unprocessable(
            "envelope.encryption.keyRecipients",
            "no recipients: the chunk key is wrapped for nobody",
        ));
    }
    for (i, r) in encryption.key_recipients.iter().enumerate() {
        if r.algorithm != WRAP_ALGORITHM {
            return Err(ApiError::unprocessable(
                &format!("envelope.encryption.keyRecipients[{i}].algorithm"),
                format!("expected {WRAP_ALGORITHM}"),
            ));
        }
    }
    if envelope.signature.algorithm != SIGNATURE_ALGORITHM {
        return Err(ApiError::unprocessable(
            "envelope.signature.algorithm",
            format!("expected {SIGNATURE_ALGORITHM}"),
        ));
    }
    Ok(())
}

/// `0x` and 64 lowercase hex digits, as [`sealstream_core::chunk::sha256_hex`] writes.
fn is_digest(text: &str) -> bool {
    text.strip_prefix("0x").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Every registered recipient's key is among the envelope's recipients.
fn check_recipients(envelope: &ChunkEnvelope, machine: &MachineView) -> ApiResult<()> {
    let mut wrapped_for = Vec::with_capacity(envelope.encryption.key_recipients.len());
    for (i, r) in envelope.encryption.key_recipients.iter().enumerate() {
        let field = format!("envelope.encryption.keyRecipients[{i}].publicKeyHex");
        let key = RecipientPublicKey::from_hex(&r.public_key_hex, &field)
            .map_err(|e| ApiError::unprocessable(&field, e.constraint))?;
        wrapped_for.push(key);
    }
    for registered in &machine.recipients {
        let key = RecipientPublicKey::from_hex(&registered.public_key_hex, "publicKeyHex")
            .map_err(|e| {
                ApiError::internal(
                    "registered recipients",
                    format!("machine {}: {e}", machine.did),
                )
            })?;
        if !wrapped_for.contains(&key) {
            return Err(ApiError::unprocessable(
                "envelope.encryption.keyRecipients",
                format!(
                    "the chunk key is not wrapped for the registered recipient {} ({})",
                    registered.recipient_id, registered.recipient_type
                ),
            ));
        }
    }
    Ok(())
}

/// Signed by the machine with its registered chain key, and the chunk id
/// recomputes.
fn check_signature(envelope: &ChunkEnvelope, machine: &MachineView) -> ApiResult<()> {
    let signature = &envelope.signature;
    if !same_did(&signature.machine_did, &machine.did) {
        return Err(ApiError::unprocessable(
            "envelope.signature.machineDid",
            format!("expected {}", machine.did),
        ));
    }
    if is_blank(&signature.key_id) {
        return Err(ApiError::unprocessable(
            "envelope.signature.keyId",
            "must not be blank",
        ));
    }
    let registered = ChainPublicKey::from_hex(&machine.chain_public_key, "chainPublicKey")
        .map_err(|e| {
            ApiError::internal(
                "registered chain key",
                format!("machine {}: {e}", machine.did),
            )
        })?;
    let given = parse_hex_exact::<32>(&signature.public_key_hex, "envelope.signature.publicKeyHex")
        .map_err(|e| ApiError::unprocessable(&e.field, e.constraint))?;
    if &given != registered.as_bytes() {
        return Err(ApiError::unprocessable(
            "envelope.signature.publicKeyHex",
            "not the chain public key registered for the machine",
        ));
    }
    verify_signed(envelope).map_err(|reason| match reason {
        VerifyReason::ChunkIdMismatch => ApiError::unprocessable(
            "envelope.chunkId",
            "does not recompute from previousChunkId, encryptedDataHash and index",
        ),
        _ => ApiError::unprocessable(
            "envelope.signature.value",
            "the Ed25519 signature over encryptedDataHash does not verify with the registered chain key",
        ),
    })
}
