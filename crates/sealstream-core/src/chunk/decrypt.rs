//! Chunk decryption: open the wrapped key, check its commitment, decrypt,
//! check the plaintext hash.

use sha2::{Digest, Sha256};

use super::crypto::{ChunkKey, NONCE_LEN};
use super::envelope::{ChunkEnvelope, KeyRecipient, CHUNK_CIPHER};
use crate::keys::{parse_hex_exact, RecipientSecretKey};

/// Why a chunk did not decrypt. Cryptographic failures are deliberately coarse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The envelope names another cipher.
    #[error("unsupported chunk cipher")]
    UnsupportedCipher,
    /// The nonce is not 24 bytes of hex.
    #[error("encryption.nonce is not 24 bytes of hex")]
    BadNonce,
    /// The wrapped key does not open with this private key.
    #[error("the chunk key does not open with this private key (access not granted to it)")]
    Unwrap,
    /// The opened key does not match `keyCommitment`.
    #[error("the chunk key does not match its keyCommitment")]
    KeyCommitment,
    /// Authenticated decryption failed (altered or truncated ciphertext).
    #[error("the ciphertext does not decrypt (altered or truncated)")]
    Cipher,
    /// The plaintext does not hash to `plaintextHash`.
    #[error("the plaintext does not match plaintextHash")]
    PlaintextHash,
}

/// Decrypt one chunk with the recipient entry `wrapped` and its secret key.
pub fn decrypt_chunk(
    envelope: &ChunkEnvelope,
    wrapped: &KeyRecipient,
    secret: &RecipientSecretKey,
    mut ciphertext: Vec<u8>,
) -> Result<Vec<u8>, DecryptError> {
    let (key, nonce) = open_key(envelope, wrapped, secret)?;
    if !key.decrypt_in_place(&nonce, &mut ciphertext) {
        return Err(DecryptError::Cipher);
    }
    check_plaintext(envelope, &ciphertext)?;
    Ok(ciphertext)
}

/// [`decrypt_chunk`] into `out` (exactly `ciphertext.len() - TAG_LEN`
/// bytes; a chunk shorter than its tag does not decrypt): for a caller whose
/// plaintext buffer already exists, without a copy of the ciphertext.
pub fn decrypt_chunk_into(
    envelope: &ChunkEnvelope,
    wrapped: &KeyRecipient,
    secret: &RecipientSecretKey,
    ciphertext: &[u8],
    out: &mut [u8],
) -> Result<(), DecryptError> {
    let (key, nonce) = open_key(envelope, wrapped, secret)?;
    if !key.decrypt_into(&nonce, ciphertext, out) {
        return Err(DecryptError::Cipher);
    }
    check_plaintext(envelope, out)
}

/// The chunk key (unwrapped, checked against its commitment) and nonce.
fn open_key(
    envelope: &ChunkEnvelope,
    wrapped: &KeyRecipient,
    secret: &RecipientSecretKey,
) -> Result<(ChunkKey, [u8; NONCE_LEN]), DecryptError> {
    if envelope.encryption.algorithm != CHUNK_CIPHER {
        return Err(DecryptError::UnsupportedCipher);
    }
    let nonce = parse_hex_exact::<NONCE_LEN>(&envelope.encryption.nonce, "nonce")
        .map_err(|_| DecryptError::BadNonce)?;
    let key = ChunkKey::unwrap(&wrapped.wrapped_key_hex, secret).ok_or(DecryptError::Unwrap)?;
    if key.commitment() != envelope.encryption.key_commitment {
        return Err(DecryptError::KeyCommitment);
    }
    Ok((key, nonce))
}

fn check_plaintext(envelope: &ChunkEnvelope, plaintext: &[u8]) -> Result<(), DecryptError> {
    let hash = crate::keys::hex_with_prefix("0x", &Sha256::digest(plaintext));
    if hash != envelope.plaintext_hash {
        return Err(DecryptError::PlaintextHash);
    }
    Ok(())
}
