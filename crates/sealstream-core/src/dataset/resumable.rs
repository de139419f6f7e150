//! Datasets built by a process that may be killed at any moment: every piece
//! of state (the Merkle frontier, the first and last chunk, and the running
//! SHA-256 of the plaintext) saves to a small JSON object, `O(log n)` in the
//! number of chunks, and restores to a builder that continues exactly where
//! the saved one stopped.

use sha2::digest::generic_array::GenericArray;

use super::check::BUILDER_STATE_KEYS;
use super::check::{hash_hex, refuse_unknown, DatasetBuilder, DatasetInfo, DatasetMismatch};
use super::manifest::DatasetManifest;
use crate::chunk::ChunkEnvelope;
use crate::error::ValidationError;
use crate::json::{Map, Number, Value};
use crate::keys::parse_hex_exact;

/// `schemaVersion` of a saved [`ResumableDataset`].
pub const DATASET_STATE_SCHEMA_VERSION: &str = "sealstream.dataset-state.v1";

/// SHA-256 block size in bytes.
const BLOCK: usize = 64;

/// The SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 whose state can be saved and restored mid-stream: the eight-word
/// midstate after the last full 64-byte block, the number of bytes hashed,
/// and the (under 64) bytes since that block. The digest equals
/// `sha2::Sha256::digest` of everything passed to [`update`](Self::update),
/// however the input was split and however often the state was saved and
/// restored in between.
#[derive(Clone)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far (modulo 2^64); `length % 64` of them are pending.
    length: u64,
    /// The pending bytes are `buffer[..length % 64]`.
    buffer: [u8; BLOCK],
}

fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    sha2::compress256(
        state,
        std::slice::from_ref(GenericArray::from_slice(block.as_slice())),
    );
}

impl ResumableSha256 {
    /// The hash of nothing yet.
    pub fn new() -> Self {
        ResumableSha256 {
            state: H0,
            length: 0,
            buffer: [0; BLOCK],
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buffer[..(self.length % BLOCK as u64) as usize]
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Hash `data` after what was hashed so far.
    pub fn update(&mut self, mut data: &[u8]) {
        let mut fill = (self.length % BLOCK as u64) as usize;
        self.length = self.length.wrapping_add(data.len() as u64);
        if fill > 0 {
            let take = (BLOCK - fill).min(data.len());
            self.buffer[fill..fill + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            fill += take;
            if fill < BLOCK {
                return;
            }
            compress(&mut self.state, &self.buffer);
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            let block: &[u8; BLOCK] = block.try_into().expect("chunks_exact yields full blocks");
            compress(&mut self.state, block);
        }
        let rest = blocks.remainder();
        self.buffer[..rest.len()].copy_from_slice(rest);
    }

    /// The digest of everything hashed so far (the state is left as it is,
    /// so hashing can go on).
    pub fn finish(&self) -> [u8; 32] {
        // Padding (FIPS 180-4 §5.1.1): 0x80, zeros up to 56 mod 64, then the
        // message length in bits as a big-endian u64.
        let pending = self.pending();
        let mut tail = [0u8; 2 * BLOCK];
        tail[..pending.len()].copy_from_slice(pending);
        tail[pending.len()] = 0x80;
        let end = if pending.len() < BLOCK - 8 {
            BLOCK
        } else {
            2 * BLOCK
        };
        tail[end - 8..end].copy_from_slice(&self.length.wrapping_mul(8).to_be_bytes());
        let mut state = self.state;
        for block in tail[..end].chunks_exact(BLOCK) {
            compress(
                &mut state,
                block.try_into().expect("chunks_exact yields full blocks"),
            );
        }
        let mut out = [0u8; 32];
        for (o, word) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The saved state:
    /// `{"midstate": "<64 hex digits>", "length": <bytes>, "pending": "<hex>"}`.
    /// `midstate` is the eight state words, big-endian, after the last full
    /// block; `pending` the `length % 64` bytes after it (`""` when none).
    pub fn to_json(&self) -> Value {
        let mut midstate = [0u8; 32];
        for (o, word) in midstate.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&word.to_be_bytes());
        }
        let mut m = Map::new();
        m.insert("midstate".into(), hex::encode(midstate).into());
        m.insert("length".into(), Value::from(self.length));
        m.insert("pending".into(), hex::encode(self.pending()).into());
        Value::Object(m)
    }

    /// Restore a state saved with [`ResumableSha256::to_json`]. `pending` must
    /// hold exactly `length % 64` bytes; unknown fields are refused.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let o = value
            .as_object()
            .ok_or_else(|| ValidationError::new("sha256 state", "expected a JSON object"))?;
        refuse_unknown(o, &["midstate", "length", "pending"])?;
        let s = |k: &str| -> Result<&str, ValidationError> {
            o.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| ValidationError::new(k, "required string"))
        };
        let midstate = parse_hex_exact::<32>(s("midstate")?, "midstate")?;
        let length = o
            .get("length")
            .and_then(Value::as_number)
            .and_then(Number::as_u64)
            .ok_or_else(|| ValidationError::new("length", "required non-negative integer"))?;
        let pending = hex::decode(s("pending")?)
            .map_err(|_| ValidationError::new("pending", "expected hex (without 0x)"))?;
        if pending.len() as u64 != length % BLOCK as u64 {
            return Err(ValidationError::new(
                "pending",
                "must hold exactly length % 64 bytes",
            ));
        }
        let mut state = [0u32; 8];
        for (word, bytes) in state.iter_mut().zip(midstate.chunks_exact(4)) {
            *word = u32::from_be_bytes(bytes.try_into().expect("4 bytes"));
        }
        let mut buffer = [0u8; BLOCK];
        buffer[..pending.len()].copy_from_slice(&pending);
        Ok(ResumableSha256 {
            state,
            length,
            buffer,
        })
    }
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256::new()
    }
}

impl PartialEq for ResumableSha256 {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
            && self.length == other.length
            && self.pending() == other.pending()
    }
}

impl Eq for ResumableSha256 {}

impl std::fmt::Debug for ResumableSha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pending bytes are plaintext: show how many, not what.
        f.debug_struct("ResumableSha256")
            .field("length", &self.length)
            .field("pending", &self.pending().len())
            .finish_non_exhaustive()
    }
}

/// A [`DatasetBuilder`] that also hashes the plaintext (`sourceHash`) and
/// saves and restores its whole progress in `O(log n)` space: the builder an
/// edge agent keeps across restarts, persisting [`to_json`](Self::to_json)
/// after every chunk it commits.
///
/// Chunks must be pushed in chain order without gaps: each one's index must
/// follow the previous one's, it must link to the previous one
/// (`previousChunkId`), and every chunk must be signed by the first one's
/// machine and chain key. A chunk that does not fit is refused and leaves the
/// builder unchanged, so pushing a chunk again after a restart is an error,
/// not a corrupt dataset.
#[derive(Clone, Debug, Default)]
pub struct ResumableDataset {
    built: DatasetBuilder,
    source: ResumableSha256,
}

impl ResumableDataset {
    /// An empty dataset; the first chunk pushed sets where its range starts.
    pub fn new() -> Self {
        ResumableDataset::default()
    }

    /// Add the next chunk and its plaintext (the bytes that were sealed into
    /// it). Fails, changing nothing, if the chunk id is malformed or the chunk
    /// does not extend the dataset (see the type's documentation).
    pub fn push(
        &mut self,
        envelope: &ChunkEnvelope,
        plaintext: &[u8],
    ) -> Result<(), DatasetMismatch> {
        let index = envelope.index;
        if let Some(first) = self.built.first_index() {
            let expected = first.saturating_add(self.built.count());
            if index != expected {
                return Err(DatasetMismatch::NotNext {
                    expected,
                    found: index,
                });
            }
            if envelope.previous_chunk_id.as_deref() != self.built.head_chunk_id() {
                return Err(DatasetMismatch::PreviousChunkId { index });
            }
            let did = self.built.machine_did().unwrap_or_default();
            if !envelope.signature.machine_did.eq_ignore_ascii_case(did) {
                return Err(DatasetMismatch::MachineDid { index });
            }
            if Some(envelope.signature.public_key_hex.as_str()) != self.built.chain_key() {
                return Err(DatasetMismatch::ChainKey { index });
            }
        }
        self.built.push(envelope)?;
        self.source.update(plaintext);
        Ok(())
    }

    /// Chunks so far.
    pub fn count(&self) -> u64 {
        self.built.count()
    }

    /// Index of the first chunk (`None` before the first push).
    pub fn first_index(&self) -> Option<u64> {
        self.built.first_index()
    }

    /// Index the next chunk must have (`None` before the first push, when
    /// any index may start the range).
    pub fn next_index(&self) -> Option<u64> {
        self.first_index()
            .map(|first| first.saturating_add(self.count()))
    }

    /// Id of the last chunk pushed (`None` before the first).
    pub fn head_chunk_id(&self) -> Option<&str> {
        self.built.head_chunk_id()
    }

    /// Plaintext bytes so far.
    pub fn source_len(&self) -> u64 {
        self.source.len()
    }

    /// `0x` + SHA-256 of the plaintext so far (`sourceHash`).
    pub fn source_hash(&self) -> String {
        hash_hex(&self.source.finish())
    }

    /// The saved state: the fields of [`DatasetBuilder::to_json`] plus
    /// `schemaVersion` ([`DATASET_STATE_SCHEMA_VERSION`]) and `sourceHash`
    /// (the [`ResumableSha256::to_json`] object):
    ///
    /// ```json
    /// {"schemaVersion": "sealstream.dataset-state.v1",
    ///  "chunkCount": 5,
    ///  "frontier": [{"level": 2, "hash": "0x…"}, {"level": 0, "hash": "0x…"}],
    ///  "firstIndex": 3, "firstChunkId": "0x…", "headChunkId": "0x…",
    ///  "machineDid": "did:peaq:0x…", "chainPublicKeyHex": "…",
    ///  "sourceHash": {"midstate": "…", "length": 12345, "pending": "…"}}
    /// ```
    ///
    /// At most 64 frontier entries and 63 pending bytes, whatever the number
    /// of chunks. `pending` is plaintext: store the state as privately as the
    /// data.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), DATASET_STATE_SCHEMA_VERSION.into());
        self.built.write_state(&mut m);
        m.insert("sourceHash".into(), self.source.to_json());
        Value::Object(m)
    }

    /// Restore a dataset saved with [`ResumableDataset::to_json`]; every field
    /// is checked as by [`DatasetBuilder::from_json`] and
    /// [`ResumableSha256::from_json`], and unknown fields are refused.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let o = value
            .as_object()
            .ok_or_else(|| ValidationError::new("dataset state", "expected a JSON object"))?;
        if o.get("schemaVersion").and_then(Value::as_str) != Some(DATASET_STATE_SCHEMA_VERSION) {
            return Err(ValidationError::new(
                "schemaVersion",
                format!("expected {DATASET_STATE_SCHEMA_VERSION}"),
            ));
        }
        let mut known = vec!["schemaVersion", "sourceHash"];
        known.extend(BUILDER_STATE_KEYS);
        refuse_unknown(o, &known)?;
        let built = DatasetBuilder::read_state(o)?;
        let source = ResumableSha256::from_json(
            o.get("sourceHash")
                .ok_or_else(|| ValidationError::new("sourceHash", "required object"))?,
        )
        .map_err(|e| e.within("sourceHash"))?;
        Ok(ResumableDataset { built, source })
    }

    /// The unsigned manifest (`None` if no chunk was pushed): exactly what
    /// [`DatasetBuilder::finish`] makes of the same chunks, with
    /// `info.source_hash` replaced by the hash of the plaintext pushed
    /// (`info.gaps` is the caller's: the gap records it found in that
    /// plaintext, see [`Gap::scan_plaintext`](crate::gap::Gap::scan_plaintext)). The
    /// dataset itself is left as it is (drop it, or persist a new one, once
    /// the manifest is safely written).
    pub fn finish(&self, info: DatasetInfo) -> Option<DatasetManifest> {
        self.built.clone().finish(DatasetInfo {
            source_hash: self.source_hash(),
            ..info
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{sha256_hex, ChainConfig, ChainState, ChainWriter, Recipient, SealedChunk};
    use crate::dataset::DatasetVerifier;
    use crate::identity::Did;
    use crate::json;
    use crate::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// Save and restore through JSON text, as the agent's state file does.
    fn round_trip_sha(h: &ResumableSha256) -> ResumableSha256 {
        let text = json::write::to_python_compact(&h.to_json());
        ResumableSha256::from_json(&json::parse(text.as_bytes()).unwrap()).unwrap()
    }

    fn round_trip_dataset(d: &ResumableDataset) -> ResumableDataset {
        let text = json::write::to_python_compact(&d.to_json());
        ResumableDataset::from_json(&json::parse(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn sha256_known_answers_around_padding_boundaries() {
        for len in [
            0usize, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut h = ResumableSha256::new();
            h.update(&data);
            assert_eq!(
                h.finish(),
                <[u8; 32]>::from(Sha256::digest(&data)),
                "len {len}"
            );
            assert_eq!(h.len(), len as u64);
        }
        assert_eq!(
            hex::encode(ResumableSha256::new().finish()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sha256_state_rejects_inconsistent_json() {
        let mut h = ResumableSha256::new();
        h.update(b"hello");
        let good = h.to_json();
        assert_eq!(ResumableSha256::from_json(&good).unwrap(), h);
        let with = |k: &str, v: Value| {
            let mut o = good.as_object().unwrap().clone();
            o.insert(k.into(), v);
            ResumableSha256::from_json(&Value::Object(o))
                .unwrap_err()
                .field
        };
        assert_eq!(with("length", Value::from(6u64)), "pending");
        assert_eq!(with("pending", "68656c6c6f00".into()), "pending");
        assert_eq!(with("pending", "zz".into()), "pending");
        assert_eq!(with("midstate", "00".into()), "midstate");
        assert_eq!(with("length", "5".into()), "length");
        assert_eq!(with("extra", Value::Null), "extra");
    }

    proptest! {
        #[test]
        fn sha256_split_anywhere_with_json_round_trips_matches_one_shot(
            data in proptest::collection::vec(any::<u8>(), 0..700),
            cuts in proptest::collection::vec(0usize..700, 0..12),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.push(data.len());
            cuts.sort_unstable();
            let mut h = ResumableSha256::new();
            let mut at = 0;
            for cut in cuts {
                h.update(&data[at..cut]);
                h = round_trip_sha(&h);
                at = cut;
            }
            prop_assert_eq!(h.len(), data.len() as u64);
            prop_assert_eq!(h.finish(), <[u8; 32]>::from(Sha256::digest(&data)));
        }
    }

    const CHAIN_KEY: &str = "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f";
    const MACHINE_KEY: &str = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";

    fn machine() -> MachineSigningKey {
        MachineSigningKey::from_hex(MACHINE_KEY, "machine").unwrap()
    }

    fn chain_key() -> ChainSigningKey {
        ChainSigningKey::from_hex(CHAIN_KEY, "chain").unwrap()
    }

    /// A chain written in two sessions (a restart in between), one chunk per
    /// plaintext, with plaintexts of assorted lengths.
    fn build_chain(plaintexts: &[Vec<u8>]) -> Vec<SealedChunk> {
        let did = Did::of_key(&machine()).to_string();
        let config = || {
            let mut c = ChainConfig::new(
                chain_key(),
                &did,
                &format!("{did}#keys-1"),
                vec![Recipient::new(
                    "owner-1",
                    "owner",
                    RecipientSecretKey::generate().public_key(),
                )],
            );
            c.parallelism = 2;
            c
        };
        let mut out = Vec::new();
        let mut state = ChainState::new();
        for session in plaintexts.chunks(plaintexts.len().div_ceil(2)) {
            let mut sealed = Vec::new();
            let mut w = ChainWriter::new(config(), state, |c: SealedChunk| -> Result<(), ()> {
                sealed.push(c);
                Ok(())
            })
            .unwrap();
            for p in session {
                w.seal_chunk(p.clone()).unwrap();
            }
            let (_summary, _sink) = w.finish().unwrap();
            state = ChainState::after(&sealed.last().unwrap().envelope);
            out.extend(sealed);
        }
        out
    }

    fn plaintexts() -> Vec<Vec<u8>> {
        [
            0usize, 1, 63, 64, 65, 200, 7, 128, 55, 56, 300, 3, 64, 0, 90,
        ]
        .iter()
        .enumerate()
        .map(|(i, &len)| (0..len).map(|j| (i * 37 + j * 11) as u8).collect())
        .collect()
    }

    fn info() -> DatasetInfo {
        DatasetInfo {
            topic: Some("/sensors/t".into()),
            data_schema_version: Some("1".into()),
            first_captured_at: Some("2024-01-01T00:00:00Z".into()),
            last_captured_at: Some("2024-01-01T01:00:00Z".into()),
            chunk_size: 0,
            source_hash: "ignored".into(),
            sample_chunk_indexes: vec![4, 6],
            gaps: Vec::new(),
        }
    }

    #[test]
    fn resumed_dataset_equals_one_shot_and_verifies_on_a_range() {
        let plaintexts = plaintexts();
        let chain = build_chain(&plaintexts);
        assert_eq!(chain.len(), plaintexts.len());
        for (c, p) in chain.iter().zip(&plaintexts) {
            assert_eq!(
                c.envelope.plaintext_hash,
                sha256_hex(p),
                "chunk {}",
                c.envelope.index
            );
        }
        for (start, end) in [(3usize, 13usize), (1, 2), (0, plaintexts.len()), (5, 12)] {
            let range = &chain[start..end];
            let data = &plaintexts[start..end];

            // The agent: a restart (JSON round trip) before and after every chunk.
            let mut d = round_trip_dataset(&ResumableDataset::new());
            assert_eq!(d.first_index(), None);
            for (c, p) in range.iter().zip(data) {
                d.push(&c.envelope, p).unwrap();
                d = round_trip_dataset(&d);
                let saved = json::write::to_python_compact(&d.to_json());
                assert!(saved.len() < 3000, "state stays small: {}", saved.len());
            }
            assert_eq!(d.count(), (end - start) as u64);
            assert_eq!(d.first_index(), Some(start as u64));
            assert_eq!(d.next_index(), Some(end as u64));
            assert_eq!(
                d.head_chunk_id(),
                Some(range.last().unwrap().envelope.chunk_id.as_str())
            );

            // The reference: DatasetBuilder + a one-shot SHA-256.
            let mut b = DatasetBuilder::new();
            for c in range {
                b.push(&c.envelope).unwrap();
            }
            let concat: Vec<u8> = data.concat();
            assert_eq!(d.source_len(), concat.len() as u64);
            let expected = b
                .finish(DatasetInfo {
                    source_hash: hash_hex(&Sha256::digest(&concat).into()),
                    ..info()
                })
                .unwrap();
            let mut got = d.finish(info()).unwrap();
            got.created_at = expected.created_at.clone();
            assert_eq!(got, expected, "range {start}..{end}");
            assert_eq!(got.first_index, start as u64);

            // Signed, it verifies against the range's envelopes.
            got.sign_eip191(&machine()).unwrap();
            got.sign_ed25519(&chain_key()).unwrap();
            let mut v = DatasetVerifier::new(&got).unwrap();
            for c in range {
                v.push(&c.envelope).unwrap();
            }
            v.finish().unwrap();
        }
    }

    #[test]
    fn push_refuses_chunks_that_do_not_extend_the_range() {
        let plaintexts = plaintexts();
        let chain = build_chain(&plaintexts);
        let mut d = ResumableDataset::new();
        assert_eq!(d.finish(info()), None);
        d.push(&chain[2].envelope, &plaintexts[2]).unwrap();
        d.push(&chain[3].envelope, &plaintexts[3]).unwrap();
        let before = d.to_json();
        // The same chunk again (a restart from an older state file), a gap.
        assert_eq!(
            d.push(&chain[3].envelope, &plaintexts[3]),
            Err(DatasetMismatch::NotNext {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(
            d.push(&chain[5].envelope, &plaintexts[5]),
            Err(DatasetMismatch::NotNext {
                expected: 4,
                found: 5
            })
        );
        // The right index, but not linked to the head.
        let mut forged = chain[4].envelope.clone();
        forged.previous_chunk_id = Some(chain[2].envelope.chunk_id.clone());
        assert_eq!(
            d.push(&forged, &plaintexts[4]),
            Err(DatasetMismatch::PreviousChunkId { index: 4 })
        );
        let mut other_key = chain[4].envelope.clone();
        other_key.signature.public_key_hex = "00".repeat(32);
        assert_eq!(
            d.push(&other_key, &plaintexts[4]),
            Err(DatasetMismatch::ChainKey { index: 4 })
        );
        let mut other_machine = chain[4].envelope.clone();
        other_machine.signature.machine_did = format!("did:peaq:0x{}", "11".repeat(20));
        assert_eq!(
            d.push(&other_machine, &plaintexts[4]),
            Err(DatasetMismatch::MachineDid { index: 4 })
        );
        let mut bad_id = chain[4].envelope.clone();
        bad_id.chunk_id = "0x12".into();
        assert_eq!(
            d.push(&bad_id, &plaintexts[4]),
            Err(DatasetMismatch::BadChunkId { index: 4 })
        );
        // Refusals change nothing.
        assert_eq!(d.to_json(), before);
        d.push(&chain[4].envelope, &plaintexts[4]).unwrap();
        assert_eq!(d.count(), 3);
    }

    #[test]
    fn state_json_is_checked() {
        let plaintexts = plaintexts();
        let chain = build_chain(&plaintexts);
        let mut d = ResumableDataset::new();
        for i in 4..9 {
            d.push(&chain[i].envelope, &plaintexts[i]).unwrap();
        }
        let good = d.to_json();
        let o = good.as_object().unwrap();
        assert_eq!(
            o["schemaVersion"].as_str(),
            Some(DATASET_STATE_SCHEMA_VERSION)
        );
        assert_eq!(o["frontier"].as_array().unwrap().len(), 2); // 5 = 4 + 1
        let with = |k: &str, v: Value| {
            let mut o = o.clone();
            o.insert(k.into(), v);
            ResumableDataset::from_json(&Value::Object(o))
                .unwrap_err()
                .field
        };
        assert_eq!(with("schemaVersion", "x".into()), "schemaVersion");
        assert_eq!(with("chunkCount", Value::from(6u64)), "frontier");
        assert_eq!(with("chunkCount", Value::from(0u64)), "frontier");
        assert_eq!(
            with("headChunkId", chain[7].envelope.chunk_id.as_str().into()),
            "headChunkId"
        );
        assert_eq!(with("firstChunkId", "0x12".into()), "firstChunkId");
        assert_eq!(with("machineDid", Value::Null), "machineDid");
        assert_eq!(with("unknown", Value::Null), "unknown");
        let mut sha = o["sourceHash"].as_object().unwrap().clone();
        sha.insert("pending".into(), "".into());
        assert_eq!(with("sourceHash", Value::Object(sha)), "sourceHash.pending");

        // An empty dataset has null fields, and they must be null.
        let empty = ResumableDataset::new().to_json();
        assert_eq!(empty.as_object().unwrap()["firstIndex"], Value::Null);
        let mut e = empty.as_object().unwrap().clone();
        e.insert("firstIndex".into(), Value::from(3u64));
        assert_eq!(
            ResumableDataset::from_json(&Value::Object(e))
                .unwrap_err()
                .field,
            "firstIndex"
        );

        // The builder's own state round-trips too.
        let mut b = DatasetBuilder::new();
        for c in &chain[4..9] {
            b.push(&c.envelope).unwrap();
        }
        let restored = DatasetBuilder::from_json(&b.to_json()).unwrap();
        assert_eq!(restored.to_json(), b.to_json());
        assert!(DatasetBuilder::from_json(&good).is_err(), "no extra fields");
    }
}
