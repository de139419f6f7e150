//! Chunk chains in memory, as tests and benchmarks feed them to sealstream's
//! verifiers and readers: deterministic input bytes and the items the
//! verifier and the reader take.

use std::convert::Infallible;

use sealstream_core::chunk::{ChainItem, ChunkEnvelope, KeyRecipient, SealedChunk};

/// `len` deterministic, incompressible-looking bytes (an xorshift64
/// sequence, the low byte of each step).
pub fn xorshift_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// One item `verify_chain` takes: an envelope with its ciphertext.
pub type VerifyItem = Result<(ChunkEnvelope, Option<Vec<u8>>), Infallible>;

/// The items `verify_chain` takes: each envelope with its ciphertext.
pub fn verify_items(chunks: &[SealedChunk]) -> Vec<VerifyItem> {
    chunks
        .iter()
        .map(|c| Ok((c.envelope.clone(), Some(c.ciphertext.clone()))))
        .collect()
}

/// The items a `ChainReader` takes, each with the key recipient entry
/// `pick` chooses of its envelope.
pub fn reader_items(
    chunks: &[SealedChunk],
    pick: impl Fn(&ChunkEnvelope) -> &KeyRecipient,
) -> Vec<Result<ChainItem, Infallible>> {
    chunks
        .iter()
        .map(|c| {
            Ok(ChainItem {
                envelope: c.envelope.clone(),
                key: pick(&c.envelope).clone(),
                ciphertext: c.ciphertext.clone(),
            })
        })
        .collect()
}
