//! Building a dataset manifest from a chain, and checking a chain against one.
//! Both stream over envelopes in order with `O(log n)` memory.

use std::fmt;

use super::manifest::{DatasetManifest, SignatureError};
use crate::chunk::ChunkEnvelope;
use crate::error::ValidationError;
use crate::gap::Gap;
use crate::json::{Map, Number, Value};
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
    crate::keys::hex_with_prefix("0x", h)
}

/// Collects what a manifest commits to while a chain is written or read.
///
/// Its whole state is `O(log n)`: the Merkle frontier plus the first and last
/// chunk ids and the signer. [`DatasetBuilder::to_json`] saves it and
/// [`DatasetBuilder::from_json`] restores it, so a builder can outlive the
/// process that started it (see [`ResumableDataset`](super::ResumableDataset)).
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
    /// The gap records in the chunks, in chain order (`gaps`; found in the
    /// plaintext, so only a builder that sees it can fill this in).
    pub gaps: Vec<Gap>,
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

    /// Index of the first chunk pushed (`None` before the first).
    pub fn first_index(&self) -> Option<u64> {
        self.first.as_ref().map(|(index, _)| *index)
    }

    /// Id of the last chunk pushed (`None` before the first).
    pub fn head_chunk_id(&self) -> Option<&str> {
        self.head.as_deref()
    }

    /// `machineDid` of the first chunk (`None` before the first).
    pub(crate) fn machine_did(&self) -> Option<&str> {
        self.machine_did.as_deref()
    }

    /// `publicKeyHex` of the first chunk (`None` before the first).
    pub(crate) fn chain_key(&self) -> Option<&str> {
        self.chain_key.as_deref()
    }

    /// The saved state, a JSON object of `O(log n)` size (never the list of
    /// chunk ids):
    ///
    /// ```json
    /// {"chunkCount": 5,
    ///  "frontier": [{"level": 2, "hash": "0x…"}, {"level": 0, "hash": "0x…"}],
    ///  "firstIndex": 3, "firstChunkId": "0x…", "headChunkId": "0x…",
    ///  "machineDid": "did:peaq:0x…", "chainPublicKeyHex": "…"}
    /// ```
    ///
    /// `frontier` holds the roots of the complete subtrees, largest first
    /// ([`RootBuilder::frontier`]); before the first chunk the other fields
    /// are `null`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        self.write_state(&mut m);
        Value::Object(m)
    }

    /// Restore a builder saved with [`DatasetBuilder::to_json`]. The frontier
    /// must fit `chunkCount`, the ids must be chunk ids, and what can be
    /// cross-checked (the last leaf against `headChunkId`) must agree.
    /// Unknown fields are refused.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let o = value
            .as_object()
            .ok_or_else(|| ValidationError::new("dataset state", "expected a JSON object"))?;
        refuse_unknown(o, &BUILDER_STATE_KEYS)?;
        Self::read_state(o)
    }

    /// Write the state's fields into `m` (shared with `ResumableDataset`).
    pub(crate) fn write_state(&self, m: &mut Map) {
        let (size, frontier) = self.tree.frontier();
        m.insert("chunkCount".into(), Value::from(size));
        m.insert(
            "frontier".into(),
            Value::Array(
                frontier
                    .iter()
                    .map(|(level, hash)| {
                        let mut e = Map::new();
                        e.insert("level".into(), Value::from(u64::from(*level)));
                        e.insert("hash".into(), hash_hex(hash).into());
                        Value::Object(e)
                    })
                    .collect(),
            ),
        );
        let opt = |v: &Option<String>| -> Value { v.clone().into() };
        m.insert(
            "firstIndex".into(),
            self.first_index().map_or(Value::Null, Value::from),
        );
        m.insert(
            "firstChunkId".into(),
            opt(&self.first.as_ref().map(|(_, id)| id.clone())),
        );
        m.insert("headChunkId".into(), opt(&self.head));
        m.insert("machineDid".into(), opt(&self.machine_did));
        m.insert("chainPublicKeyHex".into(), opt(&self.chain_key));
    }

    /// Read the fields written by [`DatasetBuilder::write_state`] from `o`.
    pub(crate) fn read_state(o: &Map) -> Result<Self, ValidationError> {
        let count = o
            .get("chunkCount")
            .and_then(Value::as_number)
            .and_then(Number::as_u64)
            .ok_or_else(|| ValidationError::new("chunkCount", "required non-negative integer"))?;
        let items = o
            .get("frontier")
            .and_then(Value::as_array)
            .ok_or_else(|| ValidationError::new("frontier", "required array"))?;
        let mut frontier = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = |k: &str| format!("frontier[{i}].{k}");
            let e = item.as_object().ok_or_else(|| {
                ValidationError::new(format!("frontier[{i}]"), "expected an object")
            })?;
            let level = e
                .get("level")
                .and_then(Value::as_number)
                .and_then(Number::as_u64)
                .and_then(|l| u32::try_from(l).ok())
                .ok_or_else(|| {
                    ValidationError::new(at("level"), "required non-negative integer")
                })?;
            let hash = e
                .get("hash")
                .and_then(Value::as_str)
                .ok_or_else(|| ValidationError::new(at("hash"), "required string"))
                .and_then(|h| parse_hex_exact::<32>(h, &at("hash")))?;
            if e.len() != 2 {
                return Err(ValidationError::new(
                    format!("frontier[{i}]"),
                    "only level and hash",
                ));
            }
            frontier.push((level, hash));
        }
        let tree = RootBuilder::from_frontier(count, frontier).ok_or_else(|| {
            ValidationError::new(
                "frontier",
                "levels must be the set bits of chunkCount, largest first",
            )
        })?;
        let opt_str = |k: &str| -> Result<Option<String>, ValidationError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) => Ok(Some(v.clone())),
                Some(_) => Err(ValidationError::new(k, "expected a string or null")),
            }
        };
        let first_index = match o.get("firstIndex") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_number().and_then(Number::as_u64).ok_or_else(|| {
                ValidationError::new("firstIndex", "expected a non-negative integer or null")
            })?),
        };
        let first_id = opt_str("firstChunkId")?;
        let head = opt_str("headChunkId")?;
        let machine_did = opt_str("machineDid")?;
        let chain_key = opt_str("chainPublicKeyHex")?;
        let set = [
            ("firstIndex", first_index.is_some()),
            ("firstChunkId", first_id.is_some()),
            ("headChunkId", head.is_some()),
            ("machineDid", machine_did.is_some()),
            ("chainPublicKeyHex", chain_key.is_some()),
        ];
        if let Some((k, present)) = set.iter().find(|(_, present)| *present != (count > 0)) {
            return Err(ValidationError::new(
                *k,
                if *present {
                    "must be null when chunkCount is 0"
                } else {
                    "required when chunkCount is above 0"
                },
            ));
        }
        let first = match (first_index, first_id) {
            (Some(index), Some(id)) => {
                if chunk_leaf(&id).is_none() {
                    return Err(ValidationError::new(
                        "firstChunkId",
                        "expected 0x + 64 hex digits",
                    ));
                }
                // Room for the next chunk too: its index, and the count after it.
                if count == u64::MAX || index.checked_add(count).is_none() {
                    return Err(ValidationError::new(
                        "firstIndex",
                        "firstIndex + chunkCount overflows the chunk index",
                    ));
                }
                Some((index, id))
            }
            _ => None,
        };
        if let Some(h) = &head {
            let leaf = chunk_leaf(h).ok_or_else(|| {
                ValidationError::new("headChunkId", "expected 0x + 64 hex digits")
            })?;
            // With an odd count the last subtree is the head's leaf alone.
            let (_, frontier) = tree.frontier();
            if count % 2 == 1 && frontier.last().map(|(_, hash)| hash) != Some(&leaf) {
                return Err(ValidationError::new(
                    "headChunkId",
                    "is not the last leaf of the frontier",
                ));
            }
            if count == 1 && first.as_ref().map(|(_, id)| id) != Some(h) {
                return Err(ValidationError::new(
                    "headChunkId",
                    "must be firstChunkId when chunkCount is 1",
                ));
            }
        }
        Ok(DatasetBuilder {
            tree,
            first,
            head,
            machine_did,
            chain_key,
        })
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
            gaps: info.gaps,
            created_at: crate::utc::now(),
            signatures: Vec::new(),
        })
    }
}

/// The fields of [`DatasetBuilder::to_json`].
pub(crate) const BUILDER_STATE_KEYS: [&str; 7] = [
    "chunkCount",
    "frontier",
    "firstIndex",
    "firstChunkId",
    "headChunkId",
    "machineDid",
    "chainPublicKeyHex",
];

/// Refuse a field of `o` not in `known`.
pub(crate) fn refuse_unknown(o: &Map, known: &[&str]) -> Result<(), ValidationError> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ValidationError::new(k.as_str(), "unknown field")),
        None => Ok(()),
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
    /// A chunk pushed to a [`ResumableDataset`](super::ResumableDataset) is
    /// not the next one of its range (pushed twice, or one skipped).
    NotNext {
        /// The index the dataset expects next.
        expected: u64,
        /// The chunk's index.
        found: u64,
    },
    /// A chunk pushed to a [`ResumableDataset`](super::ResumableDataset) does
    /// not link to the dataset's head (`previousChunkId`).
    PreviousChunkId {
        /// Chunk index.
        index: u64,
    },
    /// The gap records found in the decrypted chunks are not the `gaps` the
    /// dataset states.
    Gaps {
        /// How many gaps the dataset lists.
        listed: usize,
        /// How many gap records the chunks hold.
        found: usize,
        /// The position (in chain order) of the first that differs.
        first_difference: usize,
    },
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
            DatasetMismatch::NotNext { expected, found } => write!(
                f,
                "chunk {found}: not the next chunk of the dataset, which expects chunk {expected} (a chunk pushed twice or skipped)"
            ),
            DatasetMismatch::PreviousChunkId { index } => {
                write!(f, "chunk {index}: previousChunkId is not the dataset's headChunkId (not the next chunk of this chain)")
            }
            DatasetMismatch::Gaps { listed, found, first_difference } => write!(
                f,
                "gaps: the dataset lists {listed} gap{}, the decrypted chunks hold {found} gap record{} (the first to differ is gap {first_difference}, counted from 0)",
                if *listed == 1 { "" } else { "s" },
                if *found == 1 { "" } else { "s" }
            ),
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
        Self::allowing(manifest, &[])
    }

    /// [`DatasetVerifier::new`], also accepting EIP-191 signatures by the
    /// DIDs of `also_eip191` (an owner who signed its machine's dataset; see
    /// [`DatasetManifest::verify_signatures_allowing`]).
    pub fn allowing(
        manifest: &'a DatasetManifest,
        also_eip191: &[&str],
    ) -> Result<Self, DatasetMismatch> {
        manifest
            .verify_signatures_allowing(also_eip191)
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
