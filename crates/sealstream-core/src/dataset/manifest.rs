//! `dataset.json` (`sealstream.dataset.v1`): what a chain (or a range of it)
//! commits to, signed by the machine.

use std::fmt;

use crate::error::ValidationError;
use crate::gap::Gap;
use crate::identity::{eip191_recover, eip191_sign, Did, Eip191Signature};
use crate::json::{self, canonical, Map, Value};
use crate::keys::{parse_hex_exact, ChainPublicKey, ChainSigningKey, MachineSigningKey};

/// `schemaVersion` of dataset manifests.
pub const DATASET_SCHEMA_VERSION: &str = "sealstream.dataset.v1";
/// The tree: RFC 6962 over SHA-256, leaves are the 32-byte chunk ids in order.
pub const MERKLE_TREE: &str = "rfc6962-sha256";
/// Signature algorithm names.
pub const SIG_EIP191: &str = "eip191-secp256k1";
/// Ed25519 by the chain key.
pub const SIG_ED25519: &str = "ed25519";

/// One signature over the manifest's signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSignature {
    /// EIP-191 personal signature by the machine's secp256k1 key; verifiable
    /// from the DID alone.
    Eip191 {
        /// The signer's DID (must be the manifest's `machineDid`).
        signer: String,
        /// `0x` + r‖s‖v.
        value: String,
    },
    /// Ed25519 by the chain key (`chainPublicKeyHex`).
    Ed25519 {
        /// Hex of the public key.
        public_key_hex: String,
        /// Hex of the signature.
        value: String,
    },
}

/// A dataset manifest. See `docs/formats.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetManifest {
    /// The machine whose chain this is.
    pub machine_did: String,
    /// The topic, when the chain carries one topic.
    pub topic: Option<String>,
    /// Schema version of the data packages, when known.
    pub data_schema_version: Option<String>,
    /// Capture time of the first package, when known.
    pub first_captured_at: Option<String>,
    /// Capture time of the last package, when known.
    pub last_captured_at: Option<String>,
    /// Chunk size the chain was cut with (0 when chunks are batches).
    pub chunk_size: u64,
    /// Index of the first chunk (0 for a whole chain).
    pub first_index: u64,
    /// Number of chunks.
    pub chunk_count: u64,
    /// Id of the first chunk.
    pub first_chunk_id: String,
    /// Id of the last chunk (the head).
    pub head_chunk_id: String,
    /// `0x` + SHA-256 of the plaintext of all chunks, in order.
    pub source_hash: String,
    /// `0x` + root of the RFC 6962 tree over the chunk ids.
    pub merkle_root: String,
    /// The chain's Ed25519 public key.
    pub chain_public_key_hex: String,
    /// Chunk indexes offered for preview before purchase.
    pub sample_chunk_indexes: Vec<u64>,
    /// The gap records (`sealstream.gap.v1`, see [`crate::gap`]) in the
    /// chunks covered, in chain order. Written (`gaps`) only when not empty,
    /// so a manifest without gaps has the same bytes as before the member
    /// existed.
    pub gaps: Vec<Gap>,
    /// Creation time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
    /// Signatures over [`DatasetManifest::signed_bytes`].
    pub signatures: Vec<DatasetSignature>,
}

/// Why a manifest's signatures do not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No signature at all.
    #[error("signatures: the manifest is not signed")]
    Unsigned,
    /// `machineDid` is not a peaq DID.
    #[error("machineDid: not a did:peaq:0x… DID")]
    BadDid,
    /// An EIP-191 signature is malformed or recovers another address.
    #[error("signatures[{position}]: EIP-191 signature is not by {did} (the manifest was changed, or signed by another key)")]
    Eip191 {
        /// Position in `signatures`.
        position: usize,
        /// The machine DID.
        did: String,
    },
    /// An EIP-191 signature names a signer that is neither `machineDid`
    /// nor one of the DIDs the caller accepts
    /// ([`DatasetManifest::verify_signatures_allowing`]).
    #[error("signatures[{position}]: EIP-191 signer {signer} is neither machineDid nor an accepted signer")]
    Eip191Signer {
        /// Position in `signatures`.
        position: usize,
        /// The `signer` the signature names.
        signer: String,
    },
    /// An Ed25519 signature is malformed, by another key than `chainPublicKeyHex`, or does not verify.
    #[error("signatures[{position}]: Ed25519 signature does not verify with chainPublicKeyHex (the manifest was changed, or signed by another key)")]
    Ed25519 {
        /// Position in `signatures`.
        position: usize,
    },
}

fn opt_str(v: &Option<String>) -> Value {
    v.clone().into()
}

/// One entry of `gaps`: a gap object exactly as [`Gap::to_fields`] writes
/// it. Every key is required (`null` when unknown), none other is allowed
/// and `missing` must follow from the sequences: the signatures cover the
/// entry as written again from the parsed gap, so anything the parse would
/// drop or recompute would be unsigned.
fn gap_entry(v: &Value) -> Result<Gap, ValidationError> {
    let fields = v
        .as_object()
        .ok_or_else(|| ValidationError::new("gap", "expected a gap object"))?;
    let gap = Gap::from_fields(fields)?;
    let written = gap.to_fields();
    if let Some(k) = fields.keys().find(|k| !written.contains_key(k.as_str())) {
        return Err(ValidationError::new(
            k.as_str(),
            "unknown field (it would not be covered by the signatures)",
        ));
    }
    for (k, want) in &written {
        match fields.get(k) {
            None => {
                return Err(ValidationError::new(
                    k.as_str(),
                    "required (null when unknown)",
                ))
            }
            Some(got) if got != want => {
                return Err(ValidationError::new(
                    k.as_str(),
                    if k == "missing" {
                        "must be lastSequence - firstSequence + 1 (null without sequences)"
                    } else {
                        "not as a gap record writes it"
                    },
                ))
            }
            Some(_) => {}
        }
    }
    Ok(gap)
}

impl DatasetManifest {
    /// The manifest without signatures, in document order.
    fn body(&self) -> Map {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), DATASET_SCHEMA_VERSION.into());
        m.insert("machineDid".into(), self.machine_did.as_str().into());
        m.insert("topic".into(), opt_str(&self.topic));
        m.insert(
            "dataSchemaVersion".into(),
            opt_str(&self.data_schema_version),
        );
        m.insert("firstCapturedAt".into(), opt_str(&self.first_captured_at));
        m.insert("lastCapturedAt".into(), opt_str(&self.last_captured_at));
        m.insert("chunkSize".into(), Value::from(self.chunk_size));
        m.insert("firstIndex".into(), Value::from(self.first_index));
        m.insert("chunkCount".into(), Value::from(self.chunk_count));
        m.insert("firstChunkId".into(), self.first_chunk_id.as_str().into());
        m.insert("headChunkId".into(), self.head_chunk_id.as_str().into());
        m.insert("sourceHash".into(), self.source_hash.as_str().into());
        m.insert("merkleTree".into(), MERKLE_TREE.into());
        m.insert("merkleRoot".into(), self.merkle_root.as_str().into());
        m.insert(
            "chainPublicKeyHex".into(),
            self.chain_public_key_hex.as_str().into(),
        );
        m.insert(
            "sampleChunkIndexes".into(),
            Value::Array(
                self.sample_chunk_indexes
                    .iter()
                    .map(|i| Value::from(*i))
                    .collect(),
            ),
        );
        if !self.gaps.is_empty() {
            m.insert(
                "gaps".into(),
                Value::Array(
                    self.gaps
                        .iter()
                        .map(|g| Value::Object(g.to_fields()))
                        .collect(),
                ),
            );
        }
        m.insert("createdAt".into(), self.created_at.as_str().into());
        m
    }

    /// The exact bytes every signature covers: the canonical JSON (Python
    /// form, keys sorted, no whitespace) of the manifest without `signatures`.
    pub fn signed_bytes(&self) -> String {
        canonical::python(&Value::Object(self.body()))
    }

    /// Add an EIP-191 signature by the machine key (which must be `machineDid`'s).
    pub fn sign_eip191(&mut self, key: &MachineSigningKey) -> Result<(), ValidationError> {
        let did = Did::parse(&self.machine_did, "machineDid")?;
        if did.address() != key.address() {
            return Err(ValidationError::new(
                "dataset key",
                "is not the key of the manifest's machineDid",
            ));
        }
        let value = eip191_sign(key, self.signed_bytes().as_bytes()).to_hex();
        self.signatures.push(DatasetSignature::Eip191 {
            signer: self.machine_did.clone(),
            value,
        });
        Ok(())
    }

    /// Add an Ed25519 signature by the chain key (which must be `chainPublicKeyHex`).
    pub fn sign_ed25519(&mut self, key: &ChainSigningKey) -> Result<(), ValidationError> {
        let public = key.public_key().to_hex();
        if public != self.chain_public_key_hex {
            return Err(ValidationError::new(
                "chain key",
                "is not the chain key the chunks are signed with",
            ));
        }
        let value = hex::encode(key.sign(self.signed_bytes().as_bytes()));
        self.signatures.push(DatasetSignature::Ed25519 {
            public_key_hex: public,
            value,
        });
        Ok(())
    }

    /// Add an EIP-191 signature by any secp256k1 key, naming that key's DID
    /// as `signer` (an owner's signature over its machine's dataset). Only
    /// [`DatasetManifest::verify_signatures_allowing`] with that DID accepts
    /// it; [`DatasetManifest::verify_signatures`] accepts the machine alone.
    pub fn sign_eip191_as(&mut self, key: &MachineSigningKey) {
        let value = eip191_sign(key, self.signed_bytes().as_bytes()).to_hex();
        self.signatures.push(DatasetSignature::Eip191 {
            signer: Did::of_key(key).to_string(),
            value,
        });
    }

    /// The `signer` of every EIP-191 signature, in order (not verified).
    pub fn eip191_signers(&self) -> Vec<&str> {
        self.signatures
            .iter()
            .filter_map(|s| match s {
                DatasetSignature::Eip191 { signer, .. } => Some(signer.as_str()),
                DatasetSignature::Ed25519 { .. } => None,
            })
            .collect()
    }

    /// Check every signature; at least one is required. EIP-191 signatures
    /// are checked from the DID alone; Ed25519 ones against `chainPublicKeyHex`.
    pub fn verify_signatures(&self) -> Result<(), SignatureError> {
        self.verify_signatures_allowing(&[])
    }

    /// [`DatasetManifest::verify_signatures`], except that an EIP-191
    /// signature may also be by one of `also_eip191` (DIDs the caller trusts
    /// to speak for the machine, such as its registered owner): its `signer`
    /// must name that DID and the signature must recover that DID's address.
    /// Every signature present must still verify, at least one is required,
    /// and Ed25519 signatures are still only by `chainPublicKeyHex`.
    pub fn verify_signatures_allowing(&self, also_eip191: &[&str]) -> Result<(), SignatureError> {
        if self.signatures.is_empty() {
            return Err(SignatureError::Unsigned);
        }
        let bytes = self.signed_bytes();
        for (position, sig) in self.signatures.iter().enumerate() {
            match sig {
                DatasetSignature::Eip191 { signer, value } => {
                    let machine = Did::parse(&self.machine_did, "machineDid")
                        .map_err(|_| SignatureError::BadDid)?;
                    let expected = if signer.eq_ignore_ascii_case(&self.machine_did) {
                        machine
                    } else if let Some(other) =
                        also_eip191.iter().find(|d| d.eq_ignore_ascii_case(signer))
                    {
                        Did::parse(other, "signer").map_err(|_| SignatureError::Eip191 {
                            position,
                            did: (*other).to_string(),
                        })?
                    } else {
                        return Err(SignatureError::Eip191Signer {
                            position,
                            signer: signer.clone(),
                        });
                    };
                    let bad = || SignatureError::Eip191 {
                        position,
                        did: expected.to_string(),
                    };
                    let sig = Eip191Signature::from_hex(value, "value").map_err(|_| bad())?;
                    let recovered = eip191_recover(bytes.as_bytes(), &sig).map_err(|_| bad())?;
                    if recovered != expected.address() {
                        return Err(bad());
                    }
                }
                DatasetSignature::Ed25519 {
                    public_key_hex,
                    value,
                } => {
                    let bad = || SignatureError::Ed25519 { position };
                    if *public_key_hex != self.chain_public_key_hex {
                        return Err(bad());
                    }
                    let public = parse_hex_exact::<32>(public_key_hex, "publicKeyHex")
                        .and_then(|b| ChainPublicKey::from_bytes(&b, "publicKeyHex"))
                        .map_err(|_| bad())?;
                    let sig = parse_hex_exact::<64>(value, "value").map_err(|_| bad())?;
                    if !public.verify(bytes.as_bytes(), &sig) {
                        return Err(bad());
                    }
                }
            }
        }
        Ok(())
    }

    /// Wire JSON.
    pub fn to_json(&self) -> Value {
        let mut m = self.body();
        let sigs = self
            .signatures
            .iter()
            .map(|s| {
                let mut o = Map::new();
                match s {
                    DatasetSignature::Eip191 { signer, value } => {
                        o.insert("algorithm".into(), SIG_EIP191.into());
                        o.insert("signer".into(), signer.as_str().into());
                        o.insert("value".into(), value.as_str().into());
                    }
                    DatasetSignature::Ed25519 {
                        public_key_hex,
                        value,
                    } => {
                        o.insert("algorithm".into(), SIG_ED25519.into());
                        o.insert("publicKeyHex".into(), public_key_hex.as_str().into());
                        o.insert("value".into(), value.as_str().into());
                    }
                }
                Value::Object(o)
            })
            .collect();
        m.insert("signatures".into(), Value::Array(sigs));
        Value::Object(m)
    }

    /// `dataset.json` as written (indent 2, trailing newline).
    pub fn to_pretty_json(&self) -> String {
        json::write::to_python_pretty(&self.to_json())
    }

    /// Read `dataset.json`; every field is checked and named in errors.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let o = value
            .as_object()
            .ok_or_else(|| ValidationError::new("dataset", "expected a JSON object"))?;
        let s = |k: &str| -> Result<String, ValidationError> {
            o.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ValidationError::new(k, "required string"))
        };
        let os = |k: &str| -> Result<Option<String>, ValidationError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) => Ok(Some(v.clone())),
                Some(_) => Err(ValidationError::new(k, "expected a string or null")),
            }
        };
        let n = |k: &str| -> Result<u64, ValidationError> {
            o.get(k)
                .and_then(Value::as_number)
                .and_then(json::Number::as_u64)
                .ok_or_else(|| ValidationError::new(k, "required non-negative integer"))
        };
        if s("schemaVersion")? != DATASET_SCHEMA_VERSION {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("expected {DATASET_SCHEMA_VERSION}"),
            ));
        }
        if s("merkleTree")? != MERKLE_TREE {
            return Err(ValidationError::new(
                "merkleTree",
                format!("expected {MERKLE_TREE}"),
            ));
        }
        let samples = match o.get("sampleChunkIndexes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_number().and_then(json::Number::as_u64).ok_or_else(|| {
                        ValidationError::new(
                            format!("sampleChunkIndexes[{i}]"),
                            "non-negative integer",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ValidationError::new(
                    "sampleChunkIndexes",
                    "expected an array",
                ))
            }
        };
        let gaps = match o.get("gaps") {
            None => Vec::new(),
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| gap_entry(v).map_err(|e| e.within(&format!("gaps[{i}]"))))
                .collect::<Result<_, _>>()?,
            // Written only when not empty: an empty list would be signed
            // bytes no writer makes.
            Some(Value::Array(_)) => {
                return Err(ValidationError::new(
                    "gaps",
                    "must not be empty (left out when there are no gaps)",
                ))
            }
            Some(_) => return Err(ValidationError::new("gaps", "expected an array")),
        };
        let sig_items = o
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| ValidationError::new("signatures", "required array"))?;
        let mut signatures = Vec::with_capacity(sig_items.len());
        for (i, item) in sig_items.iter().enumerate() {
            let at = |k: &str| format!("signatures[{i}].{k}");
            let so = item.as_object().ok_or_else(|| {
                ValidationError::new(format!("signatures[{i}]"), "expected an object")
            })?;
            let field = |k: &str| -> Result<String, ValidationError> {
                so.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| ValidationError::new(at(k), "required string"))
            };
            signatures.push(match field("algorithm")?.as_str() {
                SIG_EIP191 => DatasetSignature::Eip191 {
                    signer: field("signer")?,
                    value: field("value")?,
                },
                SIG_ED25519 => DatasetSignature::Ed25519 {
                    public_key_hex: field("publicKeyHex")?,
                    value: field("value")?,
                },
                _ => {
                    return Err(ValidationError::new(
                        at("algorithm"),
                        format!("one of {SIG_EIP191}, {SIG_ED25519}"),
                    ))
                }
            });
        }
        let manifest = DatasetManifest {
            machine_did: s("machineDid")?,
            topic: os("topic")?,
            data_schema_version: os("dataSchemaVersion")?,
            first_captured_at: os("firstCapturedAt")?,
            last_captured_at: os("lastCapturedAt")?,
            chunk_size: n("chunkSize")?,
            first_index: n("firstIndex")?,
            chunk_count: n("chunkCount")?,
            first_chunk_id: s("firstChunkId")?,
            head_chunk_id: s("headChunkId")?,
            source_hash: s("sourceHash")?,
            merkle_root: s("merkleRoot")?,
            chain_public_key_hex: s("chainPublicKeyHex")?,
            sample_chunk_indexes: samples,
            gaps,
            created_at: s("createdAt")?,
            signatures,
        };
        if manifest.chunk_count == 0 {
            return Err(ValidationError::new("chunkCount", "at least 1"));
        }
        // Unknown fields would be unsigned: refuse them rather than ignore them.
        let known = [
            "schemaVersion",
            "machineDid",
            "topic",
            "dataSchemaVersion",
            "firstCapturedAt",
            "lastCapturedAt",
            "chunkSize",
            "firstIndex",
            "chunkCount",
            "firstChunkId",
            "headChunkId",
            "sourceHash",
            "merkleTree",
            "merkleRoot",
            "chainPublicKeyHex",
            "sampleChunkIndexes",
            "gaps",
            "createdAt",
            "signatures",
        ];
        if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ValidationError::new(
                k.as_str(),
                "unknown field (it would not be covered by the signatures)",
            ));
        }
        Ok(manifest)
    }

    /// Check that `found`, the gap records found in the decrypted chunks in
    /// chain order, are exactly the `gaps` the manifest states.
    pub fn check_gaps(&self, found: &[Gap]) -> Result<(), super::DatasetMismatch> {
        if self.gaps == found {
            return Ok(());
        }
        let first_difference = self
            .gaps
            .iter()
            .zip(found)
            .position(|(a, b)| a != b)
            .unwrap_or(self.gaps.len().min(found.len()));
        Err(super::DatasetMismatch::Gaps {
            listed: self.gaps.len(),
            found: found.len(),
            first_difference,
        })
    }

    /// Parse `dataset.json` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, DatasetParseError> {
        Ok(Self::from_json(&json::parse(bytes)?)?)
    }
}

/// Why `dataset.json` could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetParseError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] json::JsonError),
    /// Not a dataset manifest.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl fmt::Display for DatasetSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSignature::Eip191 { signer, .. } => write!(f, "{SIG_EIP191} by {signer}"),
            DatasetSignature::Ed25519 { public_key_hex, .. } => {
                write!(f, "{SIG_ED25519} by {public_key_hex}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(machine: &MachineSigningKey, chain: &ChainSigningKey) -> DatasetManifest {
        DatasetManifest {
            machine_did: Did::of_key(machine).to_string(),
            topic: Some("/t".into()),
            data_schema_version: None,
            first_captured_at: None,
            last_captured_at: None,
            chunk_size: 0,
            first_index: 0,
            chunk_count: 1,
            first_chunk_id: format!("0x{}", "11".repeat(32)),
            head_chunk_id: format!("0x{}", "11".repeat(32)),
            source_hash: format!("0x{}", "22".repeat(32)),
            merkle_root: format!("0x{}", "33".repeat(32)),
            chain_public_key_hex: chain.public_key().to_hex(),
            sample_chunk_indexes: vec![0],
            gaps: Vec::new(),
            created_at: "2026-01-02T03:04:05Z".into(),
            signatures: Vec::new(),
        }
    }

    /// Fresh machine, chain and owner keys, and the owner's DID.
    fn parties() -> (
        MachineSigningKey,
        ChainSigningKey,
        MachineSigningKey,
        String,
    ) {
        let owner = MachineSigningKey::generate();
        let owner_did = Did::of_key(&owner).to_string();
        (
            MachineSigningKey::generate(),
            ChainSigningKey::generate(),
            owner,
            owner_did,
        )
    }

    /// The refusal of the first EIP-191 signature, which names `did`.
    fn bad_first_eip191(did: &str) -> Result<(), SignatureError> {
        Err(SignatureError::Eip191 {
            position: 0,
            did: did.to_string(),
        })
    }

    #[test]
    fn an_accepted_owner_signature_verifies_only_when_allowed() {
        let (machine, chain, owner, owner_did) = parties();
        let mut m = manifest(&machine, &chain);
        m.sign_eip191_as(&owner);
        assert_eq!(m.eip191_signers(), vec![owner_did.as_str()]);
        // The machine alone is accepted by default: the owner's signer is
        // refused, and named.
        assert_eq!(
            m.verify_signatures(),
            Err(SignatureError::Eip191Signer {
                position: 0,
                signer: owner_did.clone()
            })
        );
        m.verify_signatures_allowing(&[&owner_did]).unwrap();
        // DIDs compare case-insensitively, as machineDid does.
        m.verify_signatures_allowing(&[&owner_did.to_lowercase()])
            .unwrap();
        // Another accepted DID does not make the owner's signature acceptable.
        let stranger = Did::of_key(&MachineSigningKey::generate()).to_string();
        assert_eq!(
            m.verify_signatures_allowing(&[&stranger]),
            Err(SignatureError::Eip191Signer {
                position: 0,
                signer: owner_did.clone()
            })
        );
        // Machine and chain signatures still verify beside it.
        m.sign_eip191(&machine).unwrap();
        m.sign_ed25519(&chain).unwrap();
        m.verify_signatures_allowing(&[&owner_did]).unwrap();
        // Any change to the signed bytes breaks the owner's signature first.
        let mut changed = m.clone();
        changed.chunk_count = 2;
        assert_eq!(
            changed.verify_signatures_allowing(&[&owner_did]),
            bad_first_eip191(&owner_did)
        );
    }

    #[test]
    fn a_signature_naming_an_accepted_signer_but_made_by_another_key_fails() {
        let (machine, chain, _, owner_did) = parties();
        let mut m = manifest(&machine, &chain);
        // A stranger's signature relabelled as the owner's.
        m.sign_eip191_as(&MachineSigningKey::generate());
        if let DatasetSignature::Eip191 { signer, .. } = &mut m.signatures[0] {
            *signer = owner_did.clone();
        }
        assert_eq!(
            m.verify_signatures_allowing(&[&owner_did]),
            bad_first_eip191(&owner_did)
        );
        // A malformed accepted DID is refused, not trusted.
        let mut n = manifest(&machine, &chain);
        n.signatures.push(DatasetSignature::Eip191 {
            signer: "not-a-did".into(),
            value: "0x00".into(),
        });
        assert!(matches!(
            n.verify_signatures_allowing(&["not-a-did"]),
            Err(SignatureError::Eip191 { position: 0, .. })
        ));
        // Still at least one signature.
        assert_eq!(
            manifest(&machine, &chain).verify_signatures_allowing(&[&owner_did]),
            Err(SignatureError::Unsigned)
        );
    }

    #[test]
    fn the_machine_signature_round_trips_through_json_with_or_without_extras() {
        let (machine, chain) = (MachineSigningKey::generate(), ChainSigningKey::generate());
        let mut m = manifest(&machine, &chain);
        m.sign_eip191(&machine).unwrap();
        let read = DatasetManifest::parse(m.to_pretty_json().as_bytes()).unwrap();
        read.verify_signatures().unwrap();
        read.verify_signatures_allowing(&["did:peaq:0x0000000000000000000000000000000000000001"])
            .unwrap();
        assert_eq!(read.eip191_signers(), vec![m.machine_did.as_str()]);
    }
    fn gaps() -> Vec<Gap> {
        use crate::gap::GapReason;
        vec![
            Gap {
                reason: GapReason::AgentOffline,
                source_topic: "/gps/fix".into(),
                after: Some("2026-12-05T10:00:01Z".into()),
                before: Some("2026-12-05T10:00:04Z".into()),
                publisher: Some("21d98a1fa3fec7d01427854f7bea31e3".into()),
                sequences: Some((126, 401)),
                chunks: None,
            },
            Gap {
                reason: GapReason::SpoolDropped,
                source_topic: "/gps/fix".into(),
                after: None,
                before: None,
                publisher: None,
                sequences: None,
                chunks: Some((7, 9)),
            },
        ]
    }

    #[test]
    fn gaps_are_signed_round_trip_and_are_left_out_when_there_are_none() {
        let (machine, chain) = (MachineSigningKey::generate(), ChainSigningKey::generate());
        let plain = manifest(&machine, &chain);
        assert!(!plain.signed_bytes().contains("gaps"));
        assert!(!plain.to_pretty_json().contains("gaps"));
        let mut m = manifest(&machine, &chain);
        m.gaps = gaps();
        assert!(m.signed_bytes().contains(r#""gaps":[{"#));
        m.sign_eip191(&machine).unwrap();
        m.sign_ed25519(&chain).unwrap();
        let text = m.to_pretty_json();
        let read = DatasetManifest::parse(text.as_bytes()).unwrap();
        assert_eq!(read, m);
        read.verify_signatures().unwrap();
        read.check_gaps(&gaps()).unwrap();
        assert_eq!(
            read.check_gaps(&gaps()[..1]),
            Err(super::super::DatasetMismatch::Gaps {
                listed: 2,
                found: 1,
                first_difference: 1
            })
        );
        // Any change to a gap breaks the signatures.
        let tampered = text.replace("\"lastSequence\": 401", "\"lastSequence\": 400");
        assert_ne!(tampered, text);
        let tampered = tampered.replace("\"missing\": 276", "\"missing\": 275");
        let read = DatasetManifest::parse(tampered.as_bytes()).unwrap();
        assert_eq!(read.gaps[0].sequences, Some((126, 400)));
        assert!(matches!(
            read.verify_signatures(),
            Err(SignatureError::Eip191 { position: 0, .. })
        ));
        // Dropping the gaps (the whole member) breaks them too.
        let mut dropped = DatasetManifest::parse(text.as_bytes()).unwrap();
        dropped.gaps.clear();
        assert!(dropped.verify_signatures().is_err());
    }

    #[test]
    fn a_bad_gap_entry_is_named() {
        let (machine, chain) = (MachineSigningKey::generate(), ChainSigningKey::generate());
        let mut m = manifest(&machine, &chain);
        m.gaps = gaps();
        let field_of = |edit: &dyn Fn(&mut Map)| {
            let mut v = m.to_json();
            if let Value::Object(o) = &mut v {
                edit(o);
            }
            DatasetManifest::from_json(&v).unwrap_err().field
        };
        let gap_at = |o: &mut Map, i: usize| -> Map {
            o["gaps"].as_array().unwrap()[i]
                .as_object()
                .unwrap()
                .clone()
        };
        let set_gap = |o: &mut Map, i: usize, g: Map| {
            if let Value::Array(a) = &mut o["gaps"] {
                a[i] = Value::Object(g);
            }
        };
        assert_eq!(
            field_of(&|o| {
                let mut g = gap_at(o, 0);
                g.insert("lastSequence".into(), Value::from(3u64));
                set_gap(o, 0, g);
            }),
            "gaps[0].lastSequence"
        );
        assert_eq!(
            field_of(&|o| {
                let mut g = gap_at(o, 1);
                g.insert("missing".into(), Value::from(3u64));
                set_gap(o, 1, g);
            }),
            "gaps[1].missing"
        );
        assert_eq!(
            field_of(&|o| {
                let mut g = gap_at(o, 1);
                g.shift_remove("publisher");
                set_gap(o, 1, g);
            }),
            "gaps[1].publisher"
        );
        assert_eq!(
            field_of(&|o| {
                let mut g = gap_at(o, 1);
                g.insert("note".into(), Value::from("unsigned"));
                set_gap(o, 1, g);
            }),
            "gaps[1].note"
        );
        assert_eq!(field_of(&|o| set_gap(o, 0, Map::new())), "gaps[0].reason");
        assert_eq!(
            field_of(&|o| {
                o.insert("gaps".into(), Value::Array(Vec::new()));
            }),
            "gaps"
        );
        assert_eq!(
            field_of(&|o| {
                o.insert("gaps".into(), Value::from("none"));
            }),
            "gaps"
        );
    }
    fn arb_gap() -> impl proptest::strategy::Strategy<Value = Gap> {
        use crate::gap::GapReason;
        use proptest::prelude::*;
        let text = proptest::option::of("[ -~é\\\"\n]{0,12}");
        let range =
            proptest::option::of((0u64..u64::MAX / 2, 0u64..1000).prop_map(|(a, n)| (a, a + n)));
        (
            0usize..4,
            "/[a-z_/]{0,10}",
            text.clone(),
            text.clone(),
            text,
            range.clone(),
            range,
        )
            .prop_map(
                |(r, topic, after, before, publisher, sequences, chunks)| Gap {
                    reason: [
                        GapReason::AgentOffline,
                        GapReason::AgentOverloaded,
                        GapReason::NotReceived,
                        GapReason::SpoolDropped,
                    ][r],
                    source_topic: topic,
                    after,
                    before,
                    publisher,
                    sequences,
                    chunks,
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        #[test]
        fn any_gaps_round_trip_and_any_change_to_them_breaks_the_signature(
            gaps in proptest::collection::vec(arb_gap(), 0..4),
            other in arb_gap(),
        ) {
            let (machine, chain) = (MachineSigningKey::generate(), ChainSigningKey::generate());
            let mut m = manifest(&machine, &chain);
            m.gaps = gaps.clone();
            m.sign_eip191(&machine).unwrap();
            m.sign_ed25519(&chain).unwrap();
            let read = DatasetManifest::parse(m.to_pretty_json().as_bytes()).unwrap();
            proptest::prop_assert_eq!(&read, &m);
            proptest::prop_assert!(read.verify_signatures().is_ok());
            proptest::prop_assert_eq!(read.signed_bytes().contains("\"gaps\""), !gaps.is_empty());
            let mut changed = read.clone();
            changed.gaps.push(other.clone());
            proptest::prop_assert!(changed.verify_signatures().is_err());
            proptest::prop_assert!(read.check_gaps(&changed.gaps).is_err());
            if let Some(first) = changed.gaps.first_mut() {
                if *first != other {
                    *first = other;
                    changed.gaps.pop();
                    proptest::prop_assert!(changed.verify_signatures().is_err());
                }
            }
        }
    }
}
