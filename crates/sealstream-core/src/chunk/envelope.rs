//! The chunk envelope (`chunk-N.json`) and its JSON codec.

use crate::error::ValidationError;
use crate::json::{self, Map, Value};

/// `schemaVersion` of chunk envelopes and publish manifests.
pub const CHUNK_SCHEMA_VERSION: &str = "peaq.stream.chunks.v1";
/// Chunk cipher name.
pub const CHUNK_CIPHER: &str = "xchacha20-poly1305";
/// Key wrapping algorithm name.
pub const WRAP_ALGORITHM: &str = "x25519-sealedbox";
/// Chunk signature algorithm name.
pub const SIGNATURE_ALGORITHM: &str = "ed25519";

/// Recipient types the reference knows.
pub mod recipient_type {
    /// The data owner.
    pub const OWNER: &str = "owner";
    /// The operator.
    pub const OPERATOR: &str = "operator";
    /// The machine itself.
    pub const MACHINE: &str = "machine";
    /// A buyer (access files only).
    pub const BUYER: &str = "buyer";
}

/// One wrapped copy of a chunk key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecipient {
    /// Recipient id (`owner-1`, a buyer DID, …).
    pub recipient_id: String,
    /// `owner`, `operator`, `machine`, `buyer`, or another type.
    pub recipient_type: String,
    /// Always `x25519-sealedbox` in v1.
    pub algorithm: String,
    /// The recipient's X25519 public key as given (hex).
    pub public_key_hex: String,
    /// The sealed box, hex.
    pub wrapped_key_hex: String,
}

/// The `encryption` object of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEncryption {
    /// `xchacha20-poly1305`.
    pub algorithm: String,
    /// 24-byte nonce, hex without `0x`.
    pub nonce: String,
    /// `sha256:` + hex of SHA-256 of the chunk key.
    pub key_commitment: String,
    /// Wrapped copies of the chunk key.
    pub key_recipients: Vec<KeyRecipient>,
}

/// The `signature` object of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkSignature {
    /// `ed25519`.
    pub algorithm: String,
    /// The machine DID.
    pub machine_did: String,
    /// The key id.
    pub key_id: String,
    /// Ed25519 public key, hex.
    pub public_key_hex: String,
    /// Signature over the UTF-8 text of `encryptedDataHash`, hex.
    pub value: String,
}

/// A chunk envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEnvelope {
    /// `peaq.stream.chunks.v1`.
    pub schema_version: String,
    /// `0x` + SHA-256 of `"{previousChunkId or ''}|{encryptedDataHash}|{index}"`.
    pub chunk_id: String,
    /// The previous chunk's id; `None` for the first chunk.
    pub previous_chunk_id: Option<String>,
    /// Position in the chain, from 0.
    pub index: u64,
    /// `0x` + SHA-256 of the ciphertext.
    pub encrypted_data_hash: String,
    /// `0x` + SHA-256 of the plaintext slice.
    pub plaintext_hash: String,
    /// Where the ciphertext is stored, once uploaded.
    pub storage_ref: Option<String>,
    /// Encryption parameters and wrapped keys.
    pub encryption: ChunkEncryption,
    /// The machine's signature.
    pub signature: ChunkSignature,
}

fn get_str(obj: &Map, name: &str, prefix: &str) -> Result<String, ValidationError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ValidationError::new(name, "expected a string").within(prefix)),
        None => Err(ValidationError::new(name, "required").within(prefix)),
    }
}

fn get_opt_str(obj: &Map, name: &str) -> Result<Option<String>, ValidationError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ValidationError::new(name, "expected a string or null")),
    }
}

fn get_obj<'a>(obj: &'a Map, name: &str, prefix: &str) -> Result<&'a Map, ValidationError> {
    match obj.get(name) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(ValidationError::new(name, "expected an object").within(prefix)),
        None => Err(ValidationError::new(name, "required").within(prefix)),
    }
}

impl KeyRecipient {
    /// Read `{recipientId, recipientType, algorithm, publicKeyHex, wrappedKeyHex}`.
    pub fn from_json(value: &Value, prefix: &str) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new(prefix, "expected an object"))?;
        Ok(KeyRecipient {
            recipient_id: get_str(obj, "recipientId", prefix)?,
            recipient_type: get_str(obj, "recipientType", prefix)?,
            algorithm: get_str(obj, "algorithm", prefix)?,
            public_key_hex: get_str(obj, "publicKeyHex", prefix)?,
            wrapped_key_hex: get_str(obj, "wrappedKeyHex", prefix)?,
        })
    }

    /// Wire JSON, reference key order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::with_capacity(5);
        m.insert(
            "recipientId".into(),
            Value::from(self.recipient_id.as_str()),
        );
        m.insert(
            "recipientType".into(),
            Value::from(self.recipient_type.as_str()),
        );
        m.insert("algorithm".into(), Value::from(self.algorithm.as_str()));
        m.insert(
            "publicKeyHex".into(),
            Value::from(self.public_key_hex.as_str()),
        );
        m.insert(
            "wrappedKeyHex".into(),
            Value::from(self.wrapped_key_hex.as_str()),
        );
        Value::Object(m)
    }
}

impl ChunkEnvelope {
    /// Read an envelope from parsed JSON. Errors name the field
    /// (`encryption.keyRecipients[1].wrappedKeyHex: required`).
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("envelope", "expected a JSON object"))?;
        let schema_version = get_str(obj, "schemaVersion", "")?;
        if schema_version != CHUNK_SCHEMA_VERSION {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("expected {CHUNK_SCHEMA_VERSION}"),
            ));
        }
        let index = match obj.get("index") {
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| ValidationError::new("index", "expected a non-negative integer"))?,
            Some(_) => {
                return Err(ValidationError::new(
                    "index",
                    "expected a non-negative integer",
                ))
            }
            None => return Err(ValidationError::new("index", "required")),
        };
        let enc = get_obj(obj, "encryption", "")?;
        let recipients = match enc.get("keyRecipients") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, r)| KeyRecipient::from_json(r, &format!("encryption.keyRecipients[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(ValidationError::new(
                    "encryption.keyRecipients",
                    "expected an array",
                ))
            }
            None => return Err(ValidationError::new("encryption.keyRecipients", "required")),
        };
        let sig = get_obj(obj, "signature", "")?;
        Ok(ChunkEnvelope {
            schema_version,
            chunk_id: get_str(obj, "chunkId", "")?,
            previous_chunk_id: get_opt_str(obj, "previousChunkId")?,
            index,
            encrypted_data_hash: get_str(obj, "encryptedDataHash", "")?,
            plaintext_hash: get_str(obj, "plaintextHash", "")?,
            storage_ref: get_opt_str(obj, "storageRef")?,
            encryption: ChunkEncryption {
                algorithm: get_str(enc, "algorithm", "encryption")?,
                nonce: get_str(enc, "nonce", "encryption")?,
                key_commitment: get_str(enc, "keyCommitment", "encryption")?,
                key_recipients: recipients,
            },
            signature: ChunkSignature {
                algorithm: get_str(sig, "algorithm", "signature")?,
                machine_did: get_str(sig, "machineDid", "signature")?,
                key_id: get_str(sig, "keyId", "signature")?,
                public_key_hex: get_str(sig, "publicKeyHex", "signature")?,
                value: get_str(sig, "value", "signature")?,
            },
        })
    }

    /// Parse envelope bytes (`chunk-N.json`).
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeParseError> {
        let value = json::parse(bytes)?;
        Ok(Self::from_json(&value)?)
    }

    /// Wire JSON in the reference's key order.
    pub fn to_json(&self) -> Value {
        let mut enc = Map::with_capacity(4);
        enc.insert(
            "algorithm".into(),
            Value::from(self.encryption.algorithm.as_str()),
        );
        enc.insert("nonce".into(), Value::from(self.encryption.nonce.as_str()));
        enc.insert(
            "keyCommitment".into(),
            Value::from(self.encryption.key_commitment.as_str()),
        );
        enc.insert(
            "keyRecipients".into(),
            Value::Array(
                self.encryption
                    .key_recipients
                    .iter()
                    .map(KeyRecipient::to_json)
                    .collect(),
            ),
        );
        let mut sig = Map::with_capacity(5);
        sig.insert(
            "algorithm".into(),
            Value::from(self.signature.algorithm.as_str()),
        );
        sig.insert(
            "machineDid".into(),
            Value::from(self.signature.machine_did.as_str()),
        );
        sig.insert("keyId".into(), Value::from(self.signature.key_id.as_str()));
        sig.insert(
            "publicKeyHex".into(),
            Value::from(self.signature.public_key_hex.as_str()),
        );
        sig.insert("value".into(), Value::from(self.signature.value.as_str()));
        let mut m = Map::with_capacity(9);
        m.insert(
            "schemaVersion".into(),
            Value::from(self.schema_version.as_str()),
        );
        m.insert("chunkId".into(), Value::from(self.chunk_id.as_str()));
        m.insert(
            "previousChunkId".into(),
            self.previous_chunk_id.clone().into(),
        );
        m.insert("index".into(), Value::from(self.index));
        m.insert(
            "encryptedDataHash".into(),
            Value::from(self.encrypted_data_hash.as_str()),
        );
        m.insert(
            "plaintextHash".into(),
            Value::from(self.plaintext_hash.as_str()),
        );
        m.insert("storageRef".into(), self.storage_ref.clone().into());
        m.insert("encryption".into(), Value::Object(enc));
        m.insert("signature".into(), Value::Object(sig));
        Value::Object(m)
    }

    /// `json.dumps(envelope, indent=2) + "\n"`, exactly as `peaqos stream publish` writes it.
    pub fn to_pretty_json(&self) -> String {
        json::write::to_python_pretty(&self.to_json())
    }

    /// The first recipient of a type (the reference uses the first `owner`).
    pub fn recipient_of_type(&self, recipient_type: &str) -> Option<&KeyRecipient> {
        self.encryption
            .key_recipients
            .iter()
            .find(|r| r.recipient_type == recipient_type)
    }
}

/// Why envelope bytes could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeParseError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] json::JsonError),
    /// JSON, but not an envelope.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}
