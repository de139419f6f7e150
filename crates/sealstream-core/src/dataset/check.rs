//! Building a dataset manifest from a chain, and checking a chain against one.
//! Both stream over envelopes in order with `O(log n)` memory.

use std::fmt;

use super::manifest::{DatasetManifest, SignatureError};
use crate::chunk::{utc_now_seconds, ChunkEnvelope};
use crate::keys::parse_hex_exact;
use crate::merkle::{leaf_hash, Hash, RootBuilder};

/// The Merkle leaf of a chunk: `SHA-256(0x00 ‖ chunk id bytes)`. `None` if
/// the id is not `0x` + 64 hex digits.
pub fn chunk_leaf(chunk_id: &str) -> Option<Hash> {
    parse_hex_exact::<32>(chunk_id, "chunkId")
        .ok()
        .map(|id| leaf_hash(&id))
}

/// `0x` + hex of a hash.
pub fn hash_hex(h: &Hash) -> String {
    format!("0x{}", hex::encode(h))
}

/// Collects what a manifest commits to while a chain is written or read.
#[derive(Clone, Debug, Default)]
pub struct DatasetBuilder {
    tree: RootBuilder,
    first: Option<(u64, String)>,
    head: Option<String>,
    machine_did: Option<String>,
    chain_key: Option<String>,
}

/// Metadata a chain alone does not carry.
#[derive(Clone, Debug, Default)]
pub struct DatasetInfo {
    /// Topic.
    pub topic: Option<String>,
    /// Schema version of the packages.
    pub data_schema_version: Option<String>,
    /// First capture time.
    pub first_captured_at: Option<String>,
    /// Last capture time.
    pub last_captured_at: Option<String>,
    /// Chunk size (0 for batch chunks).
    pub chunk_size: u64,
    /// `0x` + SHA-256 of all plaintext.
    pub source_hash: String,
    /// Preview chunk indexes.
    pub sample_chunk_indexes: Vec<u64>,
}

impl DatasetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        DatasetBuilder::default()
    }

    /// Add the next chunk. Fails (with the chunk's index) if its id is malformed.
    pub fn push(&mut self, envelope: &ChunkEnvelope) -> Result<(), DatasetMismatch> {
        let leaf = chunk_leaf(&envelope.chunk_id).ok_or(DatasetMismatch::BadChunkId {
            index: envelope.index,
        })?;
        self.tree.push(leaf);
        if self.first.is_none() {
            self.first = Some((envelope.index, envelope.chunk_id.clone()));
            self.machine_did = Some(envelope.signature.machine_did.clone());
            self.chain_key = Some(envelope.signature.public_key_hex.clone());
        }
        self.head = Some(envelope.chunk_id.clone());
        Ok(())
    }

    /// Chunks so far.
    pub fn count(&self) -> u64 {
        self.tree.size()
    }

    /// The unsigned manifest (`None` if no chunk was pushed).
    pub fn finish(self, info: DatasetInfo) -> Option<DatasetManifest> {
        let (first_index, first_chunk_id) = self.first?;
        Some(DatasetManifest {
            machine_did: self.machine_did?,
            topic: info.topic,
            data_schema_version: info.data_schema_version,
            first_captured_at: info.first_captured_at,
            last_captured_at: info.last_captured_at,
            chunk_size: info.chunk_size,
            first_index,
            chunk_count: self.tree.size(),
            first_chunk_id,
            head_chunk_id: self.head?,
            source_hash: info.source_hash,
            merkle_root: hash_hex(&self.tree.root()),
            chain_public_key_hex: self.chain_key?,
            sample_chunk_indexes: info.sample_chunk_indexes,
            created_at: utc_now_seconds(),
            signatures: Vec::new(),
        })
    }
}

/// How a chain differs from its dataset manifest. Each names what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatasetMismatch {
    /// The manifest's signatures do not hold.
    Signature(SignatureError),
    /// A chunk id is not 32 bytes of hex.
    BadChunkId {
        /// Chunk index.
        index: u64,
    },
    /// The chain does not start at `firstIndex`.
    FirstIndex {
        /// The manifest's first index.
        expected: u64,
        /// The chain's.
        found: u64,
    },
    /// A chunk is signed by another machine than the dataset's.
    MachineDid {
        /// Chunk index.
        index: u64,
    },
    /// A chunk is signed with another chain key than the dataset's.
    ChainKey {
        /// Chunk index.
        index: u64,
    },
    /// The number of chunks differs.
    ChunkCount {
        /// The manifest's count.
        expected: u64,
        /// The chain's.
        found: u64,
    },
    /// The Merkle root over the chunk ids differs.
    MerkleRoot,
    /// The first chunk differs.
    FirstChunkId,
    /// The last chunk differs.
    HeadChunkId,
    /// The plaintext does not hash to `sourceHash`.
    SourceHash,
}

impl fmt::Display for DatasetMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetMismatch::Signature(e) => write!(f, "{e}"),
            DatasetMismatch::BadChunkId { index } => write!(f, "chunk {index}: chunkId is not 32 bytes of hex"),
            DatasetMismatch::FirstIndex { expected, found } => {
                write!(f, "firstIndex: the dataset starts at chunk {expected}, the chain at {found}")
            }
            DatasetMismatch::MachineDid { index } => {
                write!(f, "chunk {index}: signature.machineDid is not the dataset's machineDid (a chunk of another machine)")
            }
            DatasetMismatch::ChainKey { index } => {
                write!(f, "chunk {index}: signed with another chain key than the dataset's chainPublicKeyHex")
            }
            DatasetMismatch::ChunkCount { expected, found } if found < expected => write!(
                f,
                "chunkCount: the dataset commits to {expected} chunks, the chain has {found} (chunks dropped or truncated)"
            ),
            DatasetMismatch::ChunkCount { expected, found } => write!(
                f,
                "chunkCount: the dataset commits to {expected} chunks, the chain has {found} (chunks appended)"
            ),
            DatasetMismatch::MerkleRoot => {
                f.write_str("merkleRoot: the chunks, or their order, are not the ones the dataset commits to")
            }
            DatasetMismatch::FirstChunkId => f.write_str("firstChunkId: the chain starts with another chunk"),
            DatasetMismatch::HeadChunkId => f.write_str("headChunkId: the chain ends with another chunk"),
            DatasetMismatch::SourceHash => f.write_str("sourceHash: the decrypted data is not the data the dataset commits to"),
        }
    }
}

impl std::error::Error for DatasetMismatch {}

/// Checks a chain, chunk by chunk in order, against a signed manifest.
#[derive(Debug)]
pub struct DatasetVerifier<'a> {
    manifest: &'a DatasetManifest,
    built: DatasetBuilder,
}

impl<'a> DatasetVerifier<'a> {
    /// Check the manifest's signatures and start a chain check.
    pub fn new(manifest: &'a DatasetManifest) -> Result<Self, DatasetMismatch> {
        manifest
            .verify_signatures()
            .map_err(DatasetMismatch::Signature)?;
        Ok(DatasetVerifier {
            manifest,
            built: DatasetBuilder::new(),
        })
    }

    /// The next chunk of the chain (already checked by v1 verification).
    pub fn push(&mut self, envelope: &ChunkEnvelope) -> Result<(), DatasetMismatch> {
        let m = self.manifest;
        let index = envelope.index;
        if self.built.count() == 0 && index != m.first_index {
            return Err(DatasetMismatch::FirstIndex {
                expected: m.first_index,
                found: index,
            });
        }
        if !envelope
            .signature
            .machine_did
            .eq_ignore_ascii_case(&m.machine_did)
        {
            return Err(DatasetMismatch::MachineDid { index });
        }
        if envelope.signature.public_key_hex != m.chain_public_key_hex {
            return Err(DatasetMismatch::ChainKey { index });
        }
        self.built.push(envelope)?;
        if self.built.count() > m.chunk_count {
            return Err(DatasetMismatch::ChunkCount {
                expected: m.chunk_count,
                found: self.built.count(),
            });
        }
        Ok(())
    }

    /// End of the chain: count, root, first and head must match.
    pub fn finish(self) -> Result<(), DatasetMismatch> {
        let m = self.manifest;
        let found = self.built.count();
        if found != m.chunk_count {
            return Err(DatasetMismatch::ChunkCount {
                expected: m.chunk_count,
                found,
            });
        }
        let first = self.built.first.as_ref().map(|(_, id)| id.clone());
        let head = self.built.head.clone();
        if hash_hex(&self.built.tree.root()) != m.merkle_root {
            return Err(DatasetMismatch::MerkleRoot);
        }
        if first.as_deref() != Some(m.first_chunk_id.as_str()) {
            return Err(DatasetMismatch::FirstChunkId);
        }
        if head.as_deref() != Some(m.head_chunk_id.as_str()) {
            return Err(DatasetMismatch::HeadChunkId);
        }
        Ok(())
    }
}
