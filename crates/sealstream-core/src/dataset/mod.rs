//! Datasets (`sealstream.dataset.v1`): a signed manifest with a Merkle root
//! over the chunk ids of a chain (or a range of it), inclusion proofs for
//! random-access verification of single chunks, and consistency proofs that a
//! growing dataset only ever extends. Additive: v1 readers ignore
//! `dataset.json`; sealstream readers check it. The format, with the exact
//! bytes that are hashed and signed, is in `docs/formats.md`.
//!
//! [`ResumableDataset`] builds a manifest in a process that may be killed at
//! any moment: its whole progress, including the running `sourceHash`, saves
//! to JSON of `O(log n)` size and restores to continue where it stopped.

mod check;
mod manifest;
mod proof;
mod resumable;

pub use check::{
    chunk_leaf, hash_hex, DatasetBuilder, DatasetInfo, DatasetMismatch, DatasetVerifier,
};
pub use manifest::{
    DatasetManifest, DatasetParseError, DatasetSignature, SignatureError, DATASET_SCHEMA_VERSION,
    MERKLE_TREE, SIG_ED25519, SIG_EIP191,
};
pub use proof::{
    verify_chunk, verify_chunk_allowing, verify_extension, ChunkProofError, ConsistencyProof,
    ExtensionError, InclusionProof, CONSISTENCY_SCHEMA_VERSION, INCLUSION_SCHEMA_VERSION,
};
pub use resumable::{ResumableDataset, ResumableSha256, DATASET_STATE_SCHEMA_VERSION};
