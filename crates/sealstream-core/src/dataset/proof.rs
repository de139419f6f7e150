//! Inclusion proofs (one chunk against a signed root, no other chunk needed)
//! and consistency proofs (a newer manifest extends an older one).

use std::fmt;

use super::check::{chunk_leaf, hash_hex};
use super::manifest::{DatasetManifest, SignatureError, MERKLE_TREE};
use crate::chunk::verify::check_self;
use crate::chunk::{ChunkEnvelope, VerifyReason};
use crate::error::ValidationError;
use crate::json::{self, Map, Value};
use crate::keys::parse_hex_exact;
use crate::merkle::{self, Hash};

/// `schemaVersion` of inclusion proofs.
pub const INCLUSION_SCHEMA_VERSION: &str = "sealstream.inclusion-proof.v1";
/// `schemaVersion` of consistency proofs.
pub const CONSISTENCY_SCHEMA_VERSION: &str = "sealstream.consistency-proof.v1";

fn hashes_json(path: &[Hash]) -> Value {
    Value::Array(path.iter().map(|h| Value::from(hash_hex(h))).collect())
}

fn hashes_from(v: Option<&Value>, field: &str) -> Result<Vec<Hash>, ValidationError> {
    let items = v
        .and_then(Value::as_array)
        .ok_or_else(|| ValidationError::new(field, "required array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, h)| {
            h.as_str()
                .and_then(|s| parse_hex_exact::<32>(s, field).ok())
                .ok_or_else(|| {
                    ValidationError::new(format!("{field}[{i}]"), "0x + 32 bytes of hex")
                })
        })
        .collect()
}

fn get_u64(o: &Map, k: &str) -> Result<u64, ValidationError> {
    o.get(k)
        .and_then(Value::as_number)
        .and_then(json::Number::as_u64)
        .ok_or_else(|| ValidationError::new(k, "required non-negative integer"))
}

fn get_str<'a>(o: &'a Map, k: &str) -> Result<&'a str, ValidationError> {
    o.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| ValidationError::new(k, "required string"))
}

/// The audit path of one chunk in a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Chunks in the tree (the dataset's `chunkCount`).
    pub tree_size: u64,
    /// The chunk's index in the chain.
    pub chunk_index: u64,
    /// The chunk's position in the tree (`chunk_index - firstIndex`).
    pub leaf_index: u64,
    /// The chunk id the proof is for.
    pub chunk_id: String,
    /// The root it leads to.
    pub merkle_root: String,
    /// Sibling hashes, bottom up.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// The proof for position `leaf_index` of the tree over `chunk_ids` (chunk
    /// ids of the dataset in order, starting at chain index `first_index`).
    pub fn build(
        chunk_ids: &[String],
        first_index: u64,
        leaf_index: u64,
    ) -> Result<Self, ValidationError> {
        let leaves = leaves_of(chunk_ids)?;
        let i = usize::try_from(leaf_index)
            .map_err(|_| ValidationError::new("index", "out of range"))?;
        let path = merkle::inclusion_proof(&leaves, i).ok_or_else(|| {
            ValidationError::new(
                "index",
                format!(
                    "the dataset has chunks {first_index}..{}",
                    first_index + chunk_ids.len() as u64
                ),
            )
        })?;
        Ok(InclusionProof {
            tree_size: leaves.len() as u64,
            chunk_index: first_index + leaf_index,
            leaf_index,
            chunk_id: chunk_ids[i].clone(),
            merkle_root: hash_hex(&merkle::root(&leaves)),
            path,
        })
    }

    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        let mut m = proof_header(INCLUSION_SCHEMA_VERSION);
        m.insert("treeSize".into(), Value::from(self.tree_size));
        m.insert("chunkIndex".into(), Value::from(self.chunk_index));
        m.insert("leafIndex".into(), Value::from(self.leaf_index));
        m.insert("chunkId".into(), self.chunk_id.as_str().into());
        m.insert("merkleRoot".into(), self.merkle_root.as_str().into());
        m.insert("path".into(), hashes_json(&self.path));
        Value::Object(m)
    }

    /// Read the form [`InclusionProof::to_json`] writes.
    pub fn from_json(v: &Value) -> Result<Self, ValidationError> {
        let o = proof_object(v, INCLUSION_SCHEMA_VERSION)?;
        if get_str(o, "merkleTree")? != MERKLE_TREE {
            return Err(ValidationError::new(
                "merkleTree",
                format!("expected {MERKLE_TREE}"),
            ));
        }
        Ok(InclusionProof {
            tree_size: get_u64(o, "treeSize")?,
            chunk_index: get_u64(o, "chunkIndex")?,
            leaf_index: get_u64(o, "leafIndex")?,
            chunk_id: get_str(o, "chunkId")?.to_string(),
            merkle_root: get_str(o, "merkleRoot")?.to_string(),
            path: hashes_from(o.get("path"), "path")?,
        })
    }
}

/// The first members of a proof's wire JSON: its schema and tree kind.
fn proof_header(schema_version: &str) -> Map {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), schema_version.into());
    m.insert("merkleTree".into(), MERKLE_TREE.into());
    m
}

/// The object of a proof's wire JSON, once its `schemaVersion` is checked.
fn proof_object<'a>(v: &'a Value, schema_version: &str) -> Result<&'a Map, ValidationError> {
    let o = v
        .as_object()
        .ok_or_else(|| ValidationError::new("proof", "expected a JSON object"))?;
    if get_str(o, "schemaVersion")? != schema_version {
        return Err(ValidationError::new(
            "schemaVersion",
            format!("expected {schema_version}"),
        ));
    }
    Ok(o)
}

fn leaves_of(chunk_ids: &[String]) -> Result<Vec<Hash>, ValidationError> {
    chunk_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            chunk_leaf(id).ok_or_else(|| {
                ValidationError::new(format!("chunk {i}: chunkId"), "0x + 32 bytes of hex")
            })
        })
        .collect()
}

/// Why one chunk does not check out against a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkProofError {
    /// The dataset's signatures do not hold.
    Signature(SignatureError),
    /// The envelope or ciphertext fails v1 checks.
    Chunk(VerifyReason),
    /// The envelope is by another machine or chain key than the dataset's.
    Signer,
    /// The proof is for another chunk index than the envelope's.
    Index,
    /// The proof is for a tree of another size than the dataset's.
    TreeSize,
    /// The path does not lead from this chunk to the dataset's root.
    Root,
}

impl fmt::Display for ChunkProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkProofError::Signature(e) => write!(f, "dataset: {e}"),
            ChunkProofError::Chunk(r) => write!(f, "chunk: {r}"),
            ChunkProofError::Signer => {
                f.write_str("envelope: signed by another machine or chain key than the dataset's")
            }
            ChunkProofError::Index => {
                f.write_str("proof: for another chunk index than the envelope's")
            }
            ChunkProofError::TreeSize => {
                f.write_str("proof: treeSize is not the dataset's chunkCount")
            }
            ChunkProofError::Root => f.write_str(
                "proof: the path does not lead from this chunk to the dataset's merkleRoot",
            ),
        }
    }
}

impl std::error::Error for ChunkProofError {}

/// Check one chunk (envelope and ciphertext) against a signed dataset with
/// its inclusion proof, without any other chunk.
pub fn verify_chunk(
    dataset: &DatasetManifest,
    proof: &InclusionProof,
    envelope: &ChunkEnvelope,
    ciphertext: &[u8],
) -> Result<(), ChunkProofError> {
    verify_chunk_allowing(dataset, proof, envelope, ciphertext, &[])
}

/// [`verify_chunk`], except that the dataset's EIP-191 signatures may also
/// be by one of `also_eip191` (DIDs the verifier trusts to speak for the
/// machine, such as the owner a market lists as the dataset's provider);
/// see [`DatasetManifest::verify_signatures_allowing`].
pub fn verify_chunk_allowing(
    dataset: &DatasetManifest,
    proof: &InclusionProof,
    envelope: &ChunkEnvelope,
    ciphertext: &[u8],
    also_eip191: &[&str],
) -> Result<(), ChunkProofError> {
    dataset
        .verify_signatures_allowing(also_eip191)
        .map_err(ChunkProofError::Signature)?;
    check_self(envelope, Some(ciphertext)).map_err(ChunkProofError::Chunk)?;
    if !envelope
        .signature
        .machine_did
        .eq_ignore_ascii_case(&dataset.machine_did)
        || envelope.signature.public_key_hex != dataset.chain_public_key_hex
    {
        return Err(ChunkProofError::Signer);
    }
    if envelope.index != proof.chunk_index
        || envelope.index.checked_sub(dataset.first_index) != Some(proof.leaf_index)
    {
        return Err(ChunkProofError::Index);
    }
    if proof.tree_size != dataset.chunk_count {
        return Err(ChunkProofError::TreeSize);
    }
    let leaf = chunk_leaf(&envelope.chunk_id)
        .ok_or(ChunkProofError::Chunk(VerifyReason::ChunkIdMismatch))?;
    let root = parse_hex_exact::<32>(&dataset.merkle_root, "merkleRoot")
        .map_err(|_| ChunkProofError::Root)?;
    if !merkle::verify_inclusion(&leaf, proof.leaf_index, proof.tree_size, &proof.path, &root) {
        return Err(ChunkProofError::Root);
    }
    Ok(())
}

/// Proof that a tree of `new_size` leaves extends its first `old_size` leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Size of the older tree.
    pub old_size: u64,
    /// Size of the newer tree.
    pub new_size: u64,
    /// Root of the older tree.
    pub old_root: String,
    /// Root of the newer tree.
    pub new_root: String,
    /// The proof hashes.
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// The proof from the first `old_size` of `chunk_ids` to all of them.
    pub fn build(chunk_ids: &[String], old_size: u64) -> Result<Self, ValidationError> {
        let leaves = leaves_of(chunk_ids)?;
        let m = usize::try_from(old_size)
            .map_err(|_| ValidationError::new("old size", "out of range"))?;
        let path = merkle::consistency_proof(&leaves, m).ok_or_else(|| {
            ValidationError::new("old size", format!("between 1 and {}", leaves.len()))
        })?;
        Ok(ConsistencyProof {
            old_size,
            new_size: leaves.len() as u64,
            old_root: hash_hex(&merkle::root(&leaves[..m])),
            new_root: hash_hex(&merkle::root(&leaves)),
            path,
        })
    }

    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        let mut m = proof_header(CONSISTENCY_SCHEMA_VERSION);
        m.insert("oldSize".into(), Value::from(self.old_size));
        m.insert("newSize".into(), Value::from(self.new_size));
        m.insert("oldRoot".into(), self.old_root.as_str().into());
        m.insert("newRoot".into(), self.new_root.as_str().into());
        m.insert("path".into(), hashes_json(&self.path));
        Value::Object(m)
    }

    /// Read the form [`ConsistencyProof::to_json`] writes.
    pub fn from_json(v: &Value) -> Result<Self, ValidationError> {
        let o = proof_object(v, CONSISTENCY_SCHEMA_VERSION)?;
        Ok(ConsistencyProof {
            old_size: get_u64(o, "oldSize")?,
            new_size: get_u64(o, "newSize")?,
            old_root: get_str(o, "oldRoot")?.to_string(),
            new_root: get_str(o, "newRoot")?.to_string(),
            path: hashes_from(o.get("path"), "path")?,
        })
    }
}

/// Why a newer manifest does not provably extend an older one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The older manifest's signatures do not hold.
    OldSignature(SignatureError),
    /// The newer manifest's signatures do not hold.
    NewSignature(SignatureError),
    /// Different machine, chain key, or starting chunk.
    DifferentChain,
    /// The proof's sizes or roots are not the manifests'.
    ProofMismatch,
    /// The proof does not show the newer tree extends the older one.
    NotAnExtension,
    /// The older manifest's `gaps` are not the first of the newer one's:
    /// the chunks they share hold the same gap records, so a newer dataset
    /// states at least the gaps the older one stated, in the same order.
    Gaps,
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionError::OldSignature(e) => write!(f, "old manifest: {e}"),
            ExtensionError::NewSignature(e) => write!(f, "new manifest: {e}"),
            ExtensionError::DifferentChain => f.write_str(
                "the manifests are of different chains (machineDid, chainPublicKeyHex, firstIndex or firstChunkId differ)",
            ),
            ExtensionError::ProofMismatch => f.write_str("proof: its sizes or roots are not the manifests' chunkCount and merkleRoot"),
            ExtensionError::NotAnExtension => f.write_str("proof: the newer dataset does not extend the older one (history rewritten)"),
            ExtensionError::Gaps => f.write_str("gaps: the newer dataset does not state the gaps the older one states, first and in order"),
        }
    }
}

impl std::error::Error for ExtensionError {}

/// Check that `new` extends `old` (same chain, and its first `old.chunkCount`
/// chunks are exactly `old`'s), using a consistency proof; `old`'s `gaps`
/// must be the first of `new`'s.
pub fn verify_extension(
    old: &DatasetManifest,
    new: &DatasetManifest,
    proof: &ConsistencyProof,
) -> Result<(), ExtensionError> {
    old.verify_signatures()
        .map_err(ExtensionError::OldSignature)?;
    new.verify_signatures()
        .map_err(ExtensionError::NewSignature)?;
    if !old.machine_did.eq_ignore_ascii_case(&new.machine_did)
        || old.chain_public_key_hex != new.chain_public_key_hex
        || old.first_index != new.first_index
        || old.first_chunk_id != new.first_chunk_id
    {
        return Err(ExtensionError::DifferentChain);
    }
    if proof.old_size != old.chunk_count
        || proof.new_size != new.chunk_count
        || proof.old_root != old.merkle_root
        || proof.new_root != new.merkle_root
    {
        return Err(ExtensionError::ProofMismatch);
    }
    let old_root = parse_hex_exact::<32>(&old.merkle_root, "merkleRoot")
        .map_err(|_| ExtensionError::ProofMismatch)?;
    let new_root = parse_hex_exact::<32>(&new.merkle_root, "merkleRoot")
        .map_err(|_| ExtensionError::ProofMismatch)?;
    if !merkle::verify_consistency(
        proof.old_size,
        proof.new_size,
        &old_root,
        &new_root,
        &proof.path,
    ) {
        return Err(ExtensionError::NotAnExtension);
    }
    if !new.gaps.starts_with(&old.gaps) {
        return Err(ExtensionError::Gaps);
    }
    Ok(())
}
