//! Chain verification without keys, over a stream of envelopes and ciphertexts.
//!
//! Checks, in the reference's order, for each chunk: sequential index,
//! link to the previous chunk, ciphertext present, ciphertext hash, chunk id,
//! signature identity fields, Ed25519 signature over `encryptedDataHash`.
//! The first failure is reported with its index and a [`VerifyReason`].

use std::fmt;

use sha2::{Digest, Sha256};

use super::crypto::compute_chunk_id;
use super::envelope::ChunkEnvelope;
use super::state::ChainState;
use crate::keys::{is_blank, parse_hex_exact, ChainPublicKey};
use crate::pool::OrderedPool;

/// Why a chain does not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyReason {
    /// No chunks at all.
    Empty,
    /// `index` is not the chunk's position.
    IndexNotSequential {
        /// The index the envelope claims.
        found: u64,
    },
    /// The first chunk has a `previousChunkId`.
    FirstHasPrevious,
    /// `previousChunkId` is not the preceding chunk's id.
    BrokenLink,
    /// No ciphertext for the chunk.
    MissingCiphertext,
    /// The ciphertext does not hash to `encryptedDataHash`.
    HashMismatch,
    /// `chunkId` does not recompute from the linkage fields.
    ChunkIdMismatch,
    /// The signature block is incomplete or the signature does not verify.
    InvalidSignature,
}

impl VerifyReason {
    /// The reason string the reference reports for the same failure.
    pub fn reference_reason(&self) -> &'static str {
        match self {
            VerifyReason::Empty => "Chunk chain is empty",
            VerifyReason::IndexNotSequential { .. } => "Chunk index is not sequential",
            VerifyReason::FirstHasPrevious => "First chunk must have null previous_chunk_id",
            VerifyReason::BrokenLink => "previous_chunk_id does not match preceding chunk_id",
            VerifyReason::MissingCiphertext => "encrypted_data sidecar missing for chunk",
            VerifyReason::HashMismatch => "hash_mismatch",
            VerifyReason::ChunkIdMismatch => "chunk_id does not match linkage fields",
            VerifyReason::InvalidSignature => "invalid_signature",
        }
    }
}

impl fmt::Display for VerifyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyReason::Empty => f.write_str("the chain has no chunks"),
            VerifyReason::IndexNotSequential { found } => {
                write!(f, "envelope index is {found}, not its position")
            }
            VerifyReason::FirstHasPrevious => f.write_str("the first chunk has a previousChunkId"),
            VerifyReason::BrokenLink => {
                f.write_str("previousChunkId does not match the preceding chunkId")
            }
            VerifyReason::MissingCiphertext => f.write_str("ciphertext is missing"),
            VerifyReason::HashMismatch => {
                f.write_str("ciphertext does not match encryptedDataHash")
            }
            VerifyReason::ChunkIdMismatch => {
                f.write_str("chunkId does not match its linkage fields")
            }
            VerifyReason::InvalidSignature => f.write_str("signature is invalid"),
        }
    }
}

/// A verification failure at a chunk index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("chain verification failed at chunk {index}: {reason}")]
pub struct VerifyError {
    /// Position of the failing chunk.
    pub index: u64,
    /// What is wrong.
    pub reason: VerifyReason,
}

/// Checks of one chunk that need no other chunk: its ciphertext is present and
/// hashes to `encryptedDataHash`, then [`verify_signed`].
pub fn check_self(envelope: &ChunkEnvelope, ciphertext: Option<&[u8]>) -> Result<(), VerifyReason> {
    let ciphertext = ciphertext.ok_or(VerifyReason::MissingCiphertext)?;
    let digest = Sha256::digest(ciphertext);
    let expected_hash = crate::keys::hex_with_prefix("0x", &digest);
    if envelope.encrypted_data_hash != expected_hash {
        return Err(VerifyReason::HashMismatch);
    }
    verify_signed(envelope)
}

/// The checks of one envelope that need neither its ciphertext nor another
/// chunk: `chunkId` recomputes from the linkage fields, the signature block
/// is complete and its Ed25519 signature over `encryptedDataHash` verifies
/// with `signature.publicKeyHex`.
///
/// With the ciphertext hashed separately (say while it streams in) and
/// compared with `encryptedDataHash`, this is what [`ChainVerifier::push`]
/// checks of a chunk apart from its link. It does not say whose key signed:
/// compare `signature.publicKeyHex` with the key expected.
pub fn verify_signed(envelope: &ChunkEnvelope) -> Result<(), VerifyReason> {
    let id = compute_chunk_id(
        envelope.previous_chunk_id.as_deref(),
        &envelope.encrypted_data_hash,
        envelope.index,
    );
    if envelope.chunk_id != id {
        return Err(VerifyReason::ChunkIdMismatch);
    }
    let sig = &envelope.signature;
    if is_blank(&sig.machine_did) || is_blank(&sig.key_id) {
        return Err(VerifyReason::InvalidSignature);
    }
    // Strict hex, as the reference parses these fields.
    let public = parse_hex_exact::<32>(&sig.public_key_hex, "signature.publicKeyHex")
        .and_then(|bytes| ChainPublicKey::from_bytes(&bytes, "signature.publicKeyHex"))
        .map_err(|_| VerifyReason::InvalidSignature)?;
    let value = parse_hex_exact::<64>(&sig.value, "signature.value")
        .map_err(|_| VerifyReason::InvalidSignature)?;
    if !public.verify(envelope.encrypted_data_hash.as_bytes(), &value) {
        return Err(VerifyReason::InvalidSignature);
    }
    Ok(())
}

/// Whether `envelope` is the next chunk of a chain whose verified part ends
/// at `state`: its `index` is `state.next_index` and its `previousChunkId`
/// is the last chunk's id (none for the first chunk).
pub fn check_link(state: &ChainState, envelope: &ChunkEnvelope) -> Result<(), VerifyReason> {
    if envelope.index != state.next_index {
        return Err(VerifyReason::IndexNotSequential {
            found: envelope.index,
        });
    }
    match (&state.previous_chunk_id, &envelope.previous_chunk_id) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(VerifyReason::FirstHasPrevious),
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(_), _) => Err(VerifyReason::BrokenLink),
    }
}

/// Sequential, streaming verification: feed chunks in order with [`push`](Self::push).
#[derive(Debug)]
pub struct ChainVerifier {
    expected: ChainState,
    count: u64,
}

impl ChainVerifier {
    /// Verify a chain from its first chunk.
    pub fn new() -> Self {
        Self::resuming(ChainState::new())
    }

    /// Verify the continuation of a chain whose verified part ends at `state`.
    pub fn resuming(state: ChainState) -> Self {
        ChainVerifier {
            expected: state,
            count: 0,
        }
    }

    pub(crate) fn check_link(&self, envelope: &ChunkEnvelope) -> Result<(), VerifyReason> {
        check_link(&self.expected, envelope)
    }

    pub(crate) fn fail(&self, reason: VerifyReason) -> VerifyError {
        VerifyError {
            index: self.expected.next_index,
            reason,
        }
    }

    pub(crate) fn advance(&mut self, envelope: &ChunkEnvelope) {
        self.expected = ChainState::after(envelope);
        self.count += 1;
    }

    /// Check the next chunk; `ciphertext` is `None` when it is missing.
    pub fn push(
        &mut self,
        envelope: &ChunkEnvelope,
        ciphertext: Option<&[u8]>,
    ) -> Result<(), VerifyError> {
        self.check_link(envelope).map_err(|r| self.fail(r))?;
        check_self(envelope, ciphertext).map_err(|r| self.fail(r))?;
        self.advance(envelope);
        Ok(())
    }

    /// End of the chain: an empty chain fails, as in the reference.
    pub fn finish(self) -> Result<ChainState, VerifyError> {
        if self.count == 0 && self.expected.next_index == 0 {
            return Err(VerifyError {
                index: 0,
                reason: VerifyReason::Empty,
            });
        }
        Ok(self.expected)
    }
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

/// Verify a whole chain from an iterator of `(envelope, ciphertext)` in index
/// order, hashing and checking signatures on `parallelism` threads with at
/// most `2 × parallelism` chunks in memory. Item errors of the iterator
/// (`E`, such as a file that cannot be read) stop the verification.
pub fn verify_chain<I, E>(
    chunks: I,
    parallelism: usize,
) -> Result<Result<ChainState, VerifyError>, E>
where
    I: IntoIterator<Item = Result<(ChunkEnvelope, Option<Vec<u8>>), E>>,
{
    let parallelism = parallelism.max(1);
    let mut pool = OrderedPool::new(
        parallelism,
        parallelism * 2,
        move |(envelope, ciphertext): (ChunkEnvelope, Option<Vec<u8>>)| {
            let result = check_self(&envelope, ciphertext.as_deref());
            (envelope, result)
        },
    );
    let mut verifier = ChainVerifier::new();
    let mut failure: Option<VerifyError> = None;
    let mut deliver =
        |(envelope, result): (ChunkEnvelope, Result<(), VerifyReason>)| -> Result<(), VerifyError> {
            verifier
                .check_link(&envelope)
                .map_err(|r| verifier.fail(r))?;
            result.map_err(|r| verifier.fail(r))?;
            verifier.advance(&envelope);
            Ok(())
        };
    for item in chunks {
        let item = item?;
        if let Err(e) = pool.submit(item, &mut deliver) {
            failure = Some(e);
            break;
        }
    }
    if failure.is_none() {
        if let Err(e) = pool.drain(&mut deliver) {
            failure = Some(e);
        }
    }
    drop(pool);
    Ok(match failure {
        Some(e) => Err(e),
        None => verifier.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{ChainConfig, ChainWriter, SealedChunk};
    use crate::keys::{ChainSigningKey, RecipientSecretKey};

    fn chain(n: usize) -> Vec<SealedChunk> {
        let recipients = vec![crate::chunk::Recipient::new(
            "owner-1",
            "owner",
            RecipientSecretKey::generate().public_key(),
        )];
        let mut config = ChainConfig::new(
            ChainSigningKey::generate(),
            "did:peaq:0x0000000000000000000000000000000000000001",
            "k",
            recipients,
        );
        config.chunk_size = 10;
        let mut out = Vec::new();
        {
            let mut w = ChainWriter::new(config, ChainState::new(), |c: SealedChunk| {
                out.push(c);
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap();
            w.write(&vec![7u8; 10 * n]).unwrap();
            let _summary = w.finish().unwrap();
        }
        out
    }

    #[test]
    fn verify_signed_checks_id_and_signature_without_the_ciphertext() {
        let c = chain(1).remove(0);
        verify_signed(&c.envelope).unwrap();
        let mut e = c.envelope.clone();
        e.chunk_id = format!("0x{}", "00".repeat(32));
        assert_eq!(verify_signed(&e), Err(VerifyReason::ChunkIdMismatch));
        let mut e = c.envelope.clone();
        e.signature.value = "00".repeat(64);
        assert_eq!(verify_signed(&e), Err(VerifyReason::InvalidSignature));
        let mut e = c.envelope;
        e.signature.public_key_hex = ChainSigningKey::generate().public_key().to_hex();
        assert_eq!(verify_signed(&e), Err(VerifyReason::InvalidSignature));
    }

    #[test]
    fn check_link_follows_the_state() {
        let c = chain(2);
        let start = ChainState::new();
        check_link(&start, &c[0].envelope).unwrap();
        assert_eq!(
            check_link(&start, &c[1].envelope),
            Err(VerifyReason::IndexNotSequential { found: 1 })
        );
        let after = ChainState::after(&c[0].envelope);
        check_link(&after, &c[1].envelope).unwrap();
        let other = chain(2);
        assert_eq!(
            check_link(&after, &other[1].envelope),
            Err(VerifyReason::BrokenLink)
        );
        let mut first = c[0].envelope.clone();
        first.previous_chunk_id = Some("0x01".into());
        assert_eq!(
            check_link(&start, &first),
            Err(VerifyReason::FirstHasPrevious)
        );
    }
}
