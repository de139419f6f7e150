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
