//! Chunk chains (`peaq.stream.chunks.v1`): envelopes, the streaming writer,
//! verification, decryption and the publish manifest.

mod crypto;
mod decrypt;
mod envelope;
mod manifest;
mod reader;
mod state;
pub(crate) mod verify;
mod writer;

/// Chunks in flight per worker thread in the chain writer and reader: deep
/// enough that the workers do not run dry while the thread that feeds and
/// drains them waits for a scheduler time slice (a few milliseconds, about
/// ten 256 KiB chunks of work on two cores). Measured on two cores: two per
/// worker left 20 % of the cores idle, four left none.
const IN_FLIGHT_PER_WORKER: usize = 4;

pub use crypto::{compute_chunk_id, sha256_hex, ChunkKey, NONCE_LEN, TAG_LEN};
pub use decrypt::{decrypt_chunk, decrypt_chunk_into, DecryptError};
pub use envelope::{
    recipient_type, ChunkEncryption, ChunkEnvelope, ChunkSignature, EnvelopeParseError,
    KeyRecipient, CHUNK_CIPHER, CHUNK_SCHEMA_VERSION, SIGNATURE_ALGORITHM, WRAP_ALGORITHM,
};
pub use manifest::PublishManifest;
pub use reader::{ChainItem, ChainReadError, ChainReadSummary, ChainReader, ChainReaderOptions};
pub use state::ChainState;
pub use verify::{
    check_link, check_self, verify_chain, verify_signed, ChainVerifier, VerifyError, VerifyReason,
};
pub use writer::{
    ChainConfig, ChainSummary, ChainWriter, ChunkSink, Recipient, SealedChunk, WriteError,
    DEFAULT_CHUNK_SIZE,
};
