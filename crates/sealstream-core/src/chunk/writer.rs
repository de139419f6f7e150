//! The streaming chain writer.
//!
//! Input (from any `Read`, from `write` calls, or as explicit chunks) is cut
//! into slices; each slice is encrypted under its own key on a worker thread,
//! the key is wrapped for every recipient, and the ciphertext hash is signed.
//! The caller's thread links the chunks in order (index, previous id, chunk id)
//! and hands `(envelope, ciphertext)` pairs to the sink in order. At most
//! `4 × parallelism` slices are in flight, so memory stays near
//! `4 × parallelism × chunk_size` whatever the input size.

use std::io::Read;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::crypto::{compute_chunk_id, random_nonce, sha256_hex, ChunkKey};
use super::envelope::{
    ChunkEncryption, ChunkEnvelope, ChunkSignature, KeyRecipient, CHUNK_CIPHER,
    CHUNK_SCHEMA_VERSION, SIGNATURE_ALGORITHM, WRAP_ALGORITHM,
};
use super::state::ChainState;
use crate::error::ValidationError;
use crate::keys::{ChainSigningKey, RecipientPublicKey};
use crate::pool::{default_parallelism, OrderedPool};

/// The reference's default chunk size, 256 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 262_144;

/// One recipient of every chunk key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Id written into the envelope (`owner-1`).
    pub id: String,
    /// Type written into the envelope (`owner`, `operator`, `machine`, or another).
    pub recipient_type: String,
    /// The X25519 public key.
    pub public_key: RecipientPublicKey,
    /// The public key text as the caller gave it (the reference writes it back unchanged).
    pub public_key_text: String,
}

impl Recipient {
    /// A recipient whose key text is its lowercase hex.
    pub fn new(
        id: impl Into<String>,
        recipient_type: impl Into<String>,
        public_key: RecipientPublicKey,
    ) -> Self {
        Recipient {
            id: id.into(),
            recipient_type: recipient_type.into(),
            public_key_text: public_key.to_hex(),
            public_key,
        }
    }

    /// A recipient from key text as given on a command line (kept verbatim).
    pub fn from_text(
        id: impl Into<String>,
        recipient_type: impl Into<String>,
        text: &str,
        field: &str,
    ) -> Result<Self, ValidationError> {
        Ok(Recipient {
            id: id.into(),
            recipient_type: recipient_type.into(),
            public_key: RecipientPublicKey::from_hex(text, field)?,
            public_key_text: text.to_string(),
        })
    }
}

/// Who signs the chain and how it is cut.
pub struct ChainConfig {
    /// Chain signing key.
    pub signing_key: ChainSigningKey,
    /// Machine DID written into every signature block.
    pub machine_did: String,
    /// Key id written into every signature block.
    pub key_id: String,
    /// Recipients of every chunk key, in envelope order.
    pub recipients: Vec<Recipient>,
    /// Bytes per slice when cutting a stream.
    pub chunk_size: usize,
    /// Worker threads (default: the machine's cores).
    pub parallelism: usize,
}

impl std::fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainConfig")
            .field("machine_did", &self.machine_did)
            .field("key_id", &self.key_id)
            .field("recipients", &self.recipients)
            .field("chunk_size", &self.chunk_size)
            .field("parallelism", &self.parallelism)
            .finish_non_exhaustive()
    }
}

impl ChainConfig {
    /// A configuration with the reference's defaults (256 KiB chunks) and
    /// one worker per core.
    pub fn new(
        signing_key: ChainSigningKey,
        machine_did: &str,
        key_id: &str,
        recipients: Vec<Recipient>,
    ) -> Self {
        ChainConfig {
            signing_key,
            machine_did: machine_did.to_string(),
            key_id: key_id.to_string(),
            recipients,
            chunk_size: DEFAULT_CHUNK_SIZE,
            parallelism: default_parallelism(),
        }
    }

    /// The owner/operator/machine recipients the reference writes, with ids
    /// `owner-1`, `operator-1`, `machine-1`.
    pub fn default_recipients(
        owner: RecipientPublicKey,
        operator: RecipientPublicKey,
        machine: RecipientPublicKey,
    ) -> Vec<Recipient> {
        vec![
            Recipient::new("owner-1", "owner", owner),
            Recipient::new("operator-1", "operator", operator),
            Recipient::new("machine-1", "machine", machine),
        ]
    }

    fn validate(&self) -> Result<(), ValidationError> {
        if self.chunk_size == 0 {
            return Err(ValidationError::new("chunk_size", "positive integer"));
        }
        if crate::keys::is_blank(&self.machine_did) {
            return Err(ValidationError::new("machine_did", "non-empty string"));
        }
        if crate::keys::is_blank(&self.key_id) {
            return Err(ValidationError::new("machine_key_id", "non-empty string"));
        }
        if self.recipients.is_empty() {
            return Err(ValidationError::new("recipients", "at least one recipient"));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            if crate::keys::is_blank(&r.id) {
                return Err(ValidationError::new(
                    format!("recipients[{i}].id"),
                    "non-empty string",
                ));
            }
        }
        Ok(())
    }
}

/// A finished chunk: its envelope and ciphertext (ciphertext ‖ tag).
#[derive(Clone, Debug)]
pub struct SealedChunk {
    /// The envelope (`chunk-N.json`).
    pub envelope: ChunkEnvelope,
    /// The ciphertext (`chunk-N.bin`).
    pub ciphertext: Vec<u8>,
}

/// Where sealed chunks go, in chain order.
pub trait ChunkSink {
    /// The sink's error.
    type Error;
    /// Accept the next chunk of the chain.
    fn put(&mut self, chunk: SealedChunk) -> Result<(), Self::Error>;

    /// Called once after the last chunk: complete any outstanding work
    /// (such as background writes) and report its failure.
    fn finish(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<F, E> ChunkSink for F
where
    F: FnMut(SealedChunk) -> Result<(), E>,
{
    type Error = E;
    fn put(&mut self, chunk: SealedChunk) -> Result<(), E> {
        self(chunk)
    }
}

/// The part of a chunk that does not depend on its position.
struct SealedPart {
    ciphertext: Vec<u8>,
    encrypted_data_hash: String,
    plaintext_hash: String,
    nonce: String,
    key_commitment: String,
    recipients: Vec<KeyRecipient>,
    signature: String,
}

struct Sealer {
    signing_key: ChainSigningKey,
    recipients: Vec<Recipient>,
}

impl Sealer {
    fn seal(&self, mut data: Vec<u8>) -> SealedPart {
        let key = ChunkKey::generate();
        let nonce = random_nonce();
        let plaintext_hash = sha256_hex(&data);
        key.encrypt_in_place(&nonce, &mut data);
        let encrypted_data_hash = sha256_hex(&data);
        let signature = hex::encode(self.signing_key.sign(encrypted_data_hash.as_bytes()));
        let recipients = self
            .recipients
            .iter()
            .map(|r| KeyRecipient {
                recipient_id: r.id.clone(),
                recipient_type: r.recipient_type.clone(),
                algorithm: WRAP_ALGORITHM.into(),
                public_key_hex: r.public_key_text.clone(),
                wrapped_key_hex: key.wrap(&r.public_key),
            })
            .collect();
        SealedPart {
            ciphertext: data,
            encrypted_data_hash,
            plaintext_hash,
            nonce: hex::encode(nonce),
            key_commitment: key.commitment(),
            recipients,
            signature,
        }
    }
}

/// What a writer did, returned by [`ChainWriter::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// The chain state after the last chunk (save it to continue the chain).
    pub state: ChainState,
    /// `0x` + SHA-256 of all bytes given to this writer.
    pub source_hash: String,
    /// Chunks this writer produced.
    pub chunks: u64,
    /// Plaintext bytes this writer consumed.
    pub bytes: u64,
}

/// Errors of a chain write: reading input, or the sink refusing a chunk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError<E> {
    /// Reading the input failed.
    #[error("reading input: {0}")]
    Read(#[source] std::io::Error),
    /// The sink failed.
    #[error("{0}")]
    Sink(E),
}

/// The streaming chain writer. See the module documentation.
pub struct ChainWriter<S: ChunkSink> {
    pool: OrderedPool<Vec<u8>, SealedPart>,
    sink: S,
    state: ChainState,
    machine_did: String,
    key_id: String,
    public_key_hex: String,
    chunk_size: usize,
    buffer: Vec<u8>,
    source: Sha256,
    chunks: u64,
    bytes: u64,
}

impl<S: ChunkSink> ChainWriter<S> {
    /// A writer that continues the chain at `state` (use [`ChainState::new`]
    /// for a new chain) and delivers chunks to `sink`.
    pub fn new(config: ChainConfig, state: ChainState, sink: S) -> Result<Self, ValidationError> {
        config.validate()?;
        let public_key_hex = config.signing_key.public_key().to_hex();
        let parallelism = config.parallelism.max(1);
        let sealer = Arc::new(Sealer {
            signing_key: config.signing_key,
            recipients: config.recipients,
        });
        let pool = OrderedPool::new(
            parallelism,
            parallelism * super::IN_FLIGHT_PER_WORKER,
            move |data: Vec<u8>| sealer.seal(data),
        );
        Ok(ChainWriter {
            pool,
            sink,
            state,
            machine_did: config.machine_did,
            key_id: config.key_id,
            public_key_hex,
            chunk_size: config.chunk_size,
            buffer: Vec::new(),
            source: Sha256::new(),
            chunks: 0,
            bytes: 0,
        })
    }

    /// The chain state after the chunks delivered so far.
    pub fn state(&self) -> &ChainState {
        &self.state
    }

    fn submit(&mut self, data: Vec<u8>) -> Result<(), S::Error> {
        self.with_delivery(|pool, mut deliver| pool.submit(data, &mut deliver))?;
        self.chunks += 1;
        Ok(())
    }

    /// Run `op` on the pool with the delivery that links each sealed part
    /// into the chain and hands it to the sink.
    fn with_delivery(
        &mut self,
        op: impl FnOnce(
            &mut OrderedPool<Vec<u8>, SealedPart>,
            &mut dyn FnMut(SealedPart) -> Result<(), S::Error>,
        ) -> Result<(), S::Error>,
    ) -> Result<(), S::Error> {
        let ChainWriter {
            pool,
            sink,
            state,
            machine_did,
            key_id,
            public_key_hex,
            ..
        } = self;
        op(pool, &mut |part: SealedPart| {
            link(part, state, machine_did, key_id, public_key_hex, sink)
        })
    }

    /// Append bytes to the stream; full slices are sealed as they fill.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), S::Error> {
        self.source.update(data);
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer
                    .reserve_exact(self.chunk_size + super::crypto::TAG_LEN);
            }
            let take = (self.chunk_size - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == self.chunk_size {
                let full = std::mem::take(&mut self.buffer);
                self.submit(full)?;
            }
        }
        Ok(())
    }

    /// Read `reader` to its end into the stream. Returns the bytes read.
    pub fn copy_from<R: Read>(&mut self, mut reader: R) -> Result<u64, WriteError<S::Error>> {
        let mut total = 0u64;
        loop {
            if self.buffer.capacity() == 0 {
                self.buffer
                    .reserve_exact(self.chunk_size + super::crypto::TAG_LEN);
            }
            let start = self.buffer.len();
            self.buffer.resize(self.chunk_size, 0);
            let n = loop {
                match reader.read(&mut self.buffer[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buffer.truncate(start);
                        return Err(WriteError::Read(e));
                    }
                }
            };
            self.buffer.truncate(start + n);
            if n == 0 {
                return Ok(total);
            }
            self.source.update(&self.buffer[start..start + n]);
            self.bytes += n as u64;
            total += n as u64;
            if self.buffer.len() == self.chunk_size {
                let full = std::mem::take(&mut self.buffer);
                self.submit(full).map_err(WriteError::Sink)?;
            }
        }
    }

    /// Deliver every chunk submitted so far to the sink (without sealing a
    /// partial slice): after this, [`ChainWriter::state`] covers every chunk
    /// sealed, which is the moment to persist it.
    pub fn flush(&mut self) -> Result<(), S::Error> {
        self.with_delivery(|pool, mut deliver| pool.drain(&mut deliver))
    }

    /// Seal `data` as exactly one chunk (after sealing any partial slice
    /// already buffered). This is how batches of packages become chunks.
    pub fn seal_chunk(&mut self, data: Vec<u8>) -> Result<(), S::Error> {
        self.flush_partial()?;
        self.source.update(&data);
        self.bytes += data.len() as u64;
        self.submit(data)
    }

    fn flush_partial(&mut self) -> Result<(), S::Error> {
        if !self.buffer.is_empty() {
            let partial = std::mem::take(&mut self.buffer);
            self.submit(partial)?;
        }
        Ok(())
    }

    /// Seal the last partial slice, deliver every chunk and return the
    /// summary. A new chain (starting at index 0) that received no bytes gets
    /// one empty chunk, as in the reference.
    pub fn finish(mut self) -> Result<(ChainSummary, S), S::Error> {
        self.flush_partial()?;
        if self.chunks == 0 && self.state.next_index == 0 {
            self.submit(Vec::new())?;
        }
        let ChainWriter {
            mut pool,
            mut sink,
            mut state,
            machine_did,
            key_id,
            public_key_hex,
            ..
        } = self;
        {
            let mut deliver = |part: SealedPart| {
                link(
                    part,
                    &mut state,
                    &machine_did,
                    &key_id,
                    &public_key_hex,
                    &mut sink,
                )
            };
            pool.drain(&mut deliver)?;
        }
        drop(pool);
        sink.finish()?;
        let summary = ChainSummary {
            state,
            source_hash: crate::keys::hex_with_prefix("0x", &self.source.finalize()),
            chunks: self.chunks,
            bytes: self.bytes,
        };
        Ok((summary, sink))
    }
}

/// Give a sealed part its position and hand it to the sink.
fn link<S: ChunkSink>(
    part: SealedPart,
    state: &mut ChainState,
    machine_did: &str,
    key_id: &str,
    public_key_hex: &str,
    sink: &mut S,
) -> Result<(), S::Error> {
    let index = state.next_index;
    let chunk_id = compute_chunk_id(
        state.previous_chunk_id.as_deref(),
        &part.encrypted_data_hash,
        index,
    );
    let envelope = ChunkEnvelope {
        schema_version: CHUNK_SCHEMA_VERSION.into(),
        chunk_id: chunk_id.clone(),
        previous_chunk_id: state.previous_chunk_id.clone(),
        index,
        encrypted_data_hash: part.encrypted_data_hash,
        plaintext_hash: part.plaintext_hash,
        storage_ref: None,
        encryption: ChunkEncryption {
            algorithm: CHUNK_CIPHER.into(),
            nonce: part.nonce,
            key_commitment: part.key_commitment,
            key_recipients: part.recipients,
        },
        signature: ChunkSignature {
            algorithm: SIGNATURE_ALGORITHM.into(),
            machine_did: machine_did.to_string(),
            key_id: key_id.to_string(),
            public_key_hex: public_key_hex.to_string(),
            value: part.signature,
        },
    };
    sink.put(SealedChunk {
        envelope,
        ciphertext: part.ciphertext,
    })?;
    state.next_index = index + 1;
    state.previous_chunk_id = Some(chunk_id);
    Ok(())
}
