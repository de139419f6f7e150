//! Datasets (`sealstream.dataset.v1`): a signed manifest with a Merkle root
//! over the chunk ids of a chain (or a range of it), inclusion proofs for
//! random-access verification of single chunks, and consistency proofs that a
//! growing dataset only ever extends. Additive: v1 readers ignore
//! `dataset.json`; sealstream readers check it. The format, with the exact
//! bytes that are hashed and signed, is in `docs/formats.md`.

mod check;
mod manifest;
mod proof;

pub use check::{
    chunk_leaf, hash_hex, DatasetBuilder, DatasetInfo, DatasetMismatch, DatasetVerifier,
};
pub use manifest::{
    DatasetManifest, DatasetParseError, DatasetSignature, SignatureError, DATASET_SCHEMA_VERSION,
    MERKLE_TREE, SIG_ED25519, SIG_EIP191,
};
pub use proof::{
    verify_chunk, verify_extension, ChunkProofError, ConsistencyProof, ExtensionError,
    InclusionProof, CONSISTENCY_SCHEMA_VERSION, INCLUSION_SCHEMA_VERSION,
};
