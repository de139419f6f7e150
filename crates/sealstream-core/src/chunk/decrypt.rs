//! Chunk decryption: open the wrapped key, check its commitment, decrypt,
//! check the plaintext hash.

use std::io::Write;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::crypto::{ChunkKey, NONCE_LEN};
use super::envelope::{ChunkEnvelope, KeyRecipient, CHUNK_CIPHER};
use crate::keys::{parse_hex_exact, RecipientSecretKey};
use crate::pool::OrderedPool;

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
    if envelope.encryption.algorithm != CHUNK_CIPHER {
        return Err(DecryptError::UnsupportedCipher);
    }
    let nonce = parse_hex_exact::<NONCE_LEN>(&envelope.encryption.nonce, "nonce")
        .map_err(|_| DecryptError::BadNonce)?;
    let key = ChunkKey::unwrap(&wrapped.wrapped_key_hex, secret).ok_or(DecryptError::Unwrap)?;
    if key.commitment() != envelope.encryption.key_commitment {
        return Err(DecryptError::KeyCommitment);
    }
    if !key.decrypt_in_place(&nonce, &mut ciphertext) {
        return Err(DecryptError::Cipher);
    }
    let hash = format!("0x{}", hex::encode(Sha256::digest(&ciphertext)));
    if hash != envelope.plaintext_hash {
        return Err(DecryptError::PlaintextHash);
    }
    Ok(ciphertext)
}

/// What [`decrypt_chain`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptSummary {
    /// Chunks decrypted.
    pub chunks: u64,
    /// Plaintext bytes written.
    pub bytes: u64,
    /// `0x` + SHA-256 of everything written (compare with the manifest's `sourceHash`).
    pub output_hash: String,
}

/// Errors of [`decrypt_chain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptChainError<E> {
    /// The item source failed (a file could not be read, an entry is missing…).
    #[error(transparent)]
    Source(E),
    /// A chunk did not decrypt.
    #[error("chunk {index}: {error}")]
    Chunk {
        /// The chunk index.
        index: u64,
        /// What went wrong.
        error: DecryptError,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Write(#[source] std::io::Error),
}

/// Decrypt `(envelope, key entry, ciphertext)` items in chain order on
/// `parallelism` threads and write the plaintext to `out` in order, with at
/// most `2 × parallelism` chunks in memory.
pub fn decrypt_chain<I, E, W>(
    items: I,
    secret: Arc<RecipientSecretKey>,
    parallelism: usize,
    mut out: W,
) -> Result<DecryptSummary, DecryptChainError<E>>
where
    I: IntoIterator<Item = Result<(ChunkEnvelope, KeyRecipient, Vec<u8>), E>>,
    W: Write,
{
    let parallelism = parallelism.max(1);
    let mut pool = OrderedPool::new(
        parallelism,
        parallelism * 2,
        move |(env, entry, ct): (ChunkEnvelope, KeyRecipient, Vec<u8>)| {
            let index = env.index;
            (index, decrypt_chunk(&env, &entry, &secret, ct))
        },
    );
    let mut hasher = Sha256::new();
    let mut summary = DecryptSummary {
        chunks: 0,
        bytes: 0,
        output_hash: String::new(),
    };
    let mut deliver = |(index, result): (u64, Result<Vec<u8>, DecryptError>)| -> Result<(), DecryptChainError<E>> {
        let plaintext = result.map_err(|error| DecryptChainError::Chunk { index, error })?;
        out.write_all(&plaintext).map_err(DecryptChainError::Write)?;
        hasher.update(&plaintext);
        summary.chunks += 1;
        summary.bytes += plaintext.len() as u64;
        Ok(())
    };
    for item in items {
        let item = item.map_err(DecryptChainError::Source)?;
        pool.submit(item, &mut deliver)?;
    }
    pool.drain(&mut deliver)?;
    drop(pool);
    out.flush().map_err(DecryptChainError::Write)?;
    summary.output_hash = format!("0x{}", hex::encode(hasher.finalize()));
    Ok(summary)
}
