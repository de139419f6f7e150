//! Buyer access (`peaq.stream.buyer-access.v1`): chunk keys re-wrapped to a
//! buyer's X25519 key, without touching the chunks.
//!
//! Files are named `<buyerPublicKeyHex>-<n>.json` (n from 1) and cut so each
//! stays within a maximum size. The cut follows the reference exactly: the
//! size that counts is that of the SDK's internal snake_case rendering of the
//! file (with `file_name` and a per-entry `schema_version`), not of the
//! camelCase file that is written, so both sides shard identically.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chunk::{recipient_type, ChunkEnvelope, ChunkKey, KeyRecipient, WRAP_ALGORITHM};
use crate::error::ValidationError;
use crate::json::write::push_python_string;
use crate::json::{self, Map, Value};
use crate::keys::{RecipientPublicKey, RecipientSecretKey};
use crate::pool::{map_in_order, OrderedPool};

/// `schemaVersion` of buyer access files.
pub const ACCESS_SCHEMA_VERSION: &str = "peaq.stream.buyer-access.v1";
/// The reference's default maximum access file size (500 KiB).
pub const DEFAULT_MAX_ACCESS_FILE_SIZE: usize = 512_000;

/// One chunk key re-wrapped to a buyer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    /// The chunk's id.
    pub chunk_id: String,
    /// The buyer's key entry (type `buyer`).
    pub buyer: KeyRecipient,
}

/// A buyer: id and X25519 public key (text kept as given, as the reference does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buyer {
    /// Recipient id (usually the buyer's DID).
    pub id: String,
    /// The public key.
    pub public_key: RecipientPublicKey,
    /// The key text as given (file names and `publicKeyHex` use it verbatim).
    pub public_key_text: String,
}

impl Buyer {
    /// A buyer from an id and key text (hex, optional `0x`; surrounding whitespace trimmed).
    pub fn new(id: &str, public_key_text: &str) -> Result<Self, ValidationError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(ValidationError::new("buyer_id", "non-empty string"));
        }
        let text = public_key_text.trim();
        let public_key = RecipientPublicKey::from_hex(text, "buyer_public_key")?;
        public_key.check_usable("buyer_public_key")?;
        Ok(Buyer {
            id: id.to_string(),
            public_key,
            public_key_text: text.to_string(),
        })
    }
}

/// Why an access entry could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The chunk has no key recipient of the granting type.
    #[error("chunk {index} has no {recipient_type} key recipient")]
    NoRecipient {
        /// Chunk index.
        index: u64,
        /// `owner` or `operator`.
        recipient_type: &'static str,
    },
    /// The granting recipient's wrapped key does not open with the given key.
    #[error(
        "chunk {index}: the {recipient_type} key does not open the chunk key (wrong {recipient_type} key?)"
    )]
    Unwrap {
        /// Chunk index.
        index: u64,
        /// `owner` or `operator`.
        recipient_type: &'static str,
    },
    /// The opened key does not match the chunk's commitment.
    #[error("chunk {index}: the chunk key does not match its keyCommitment")]
    KeyCommitment {
        /// Chunk index.
        index: u64,
    },
}

/// Re-wrap one chunk's key from the owner to `buyer`: unwrap with the owner
/// key, check the key commitment, seal to the buyer.
pub fn grant_entry(
    envelope: &ChunkEnvelope,
    owner: &RecipientSecretKey,
    buyer: &Buyer,
) -> Result<AccessEntry, GrantError> {
    grant_entry_as(envelope, recipient_type::OWNER, owner, buyer)
}

/// [`grant_entry`] from the chunk's recipient of `granting_type` (`owner`,
/// or `operator` for a market granting with an operator key): unwrap that
/// recipient's key with `secret`, check the key commitment, seal to the
/// buyer.
pub fn grant_entry_as(
    envelope: &ChunkEnvelope,
    granting_type: &'static str,
    secret: &RecipientSecretKey,
    buyer: &Buyer,
) -> Result<AccessEntry, GrantError> {
    let key = open_chunk_key(envelope, granting_type, secret)?;
    Ok(access_entry(envelope, &key, buyer))
}

/// The chunk key of `envelope`, unwrapped from its recipient of
/// `granting_type` with `secret` and checked against the key commitment:
/// the first half of [`grant_entry_as`], for a granter that seals one
/// chunk's key to many buyers (open it once, then [`access_entry`] each).
pub fn open_chunk_key(
    envelope: &ChunkEnvelope,
    granting_type: &'static str,
    secret: &RecipientSecretKey,
) -> Result<ChunkKey, GrantError> {
    let index = envelope.index;
    let entry = envelope
        .recipient_of_type(granting_type)
        .ok_or(GrantError::NoRecipient {
            index,
            recipient_type: granting_type,
        })?;
    let key = ChunkKey::unwrap(&entry.wrapped_key_hex, secret).ok_or(GrantError::Unwrap {
        index,
        recipient_type: granting_type,
    })?;
    if key.commitment() != envelope.encryption.key_commitment {
        return Err(GrantError::KeyCommitment { index });
    }
    Ok(key)
}

/// The access entry of `envelope`'s chunk for `buyer`: its opened chunk
/// `key` (from [`open_chunk_key`]) sealed to the buyer's key.
pub fn access_entry(envelope: &ChunkEnvelope, key: &ChunkKey, buyer: &Buyer) -> AccessEntry {
    access_entry_for(&envelope.chunk_id, key, buyer)
}

/// The access entry of chunk `chunk_id` for `buyer`: its opened chunk `key`
/// sealed to the buyer's key (for keys opened earlier and kept, without
/// their envelopes).
pub fn access_entry_for(chunk_id: &str, key: &ChunkKey, buyer: &Buyer) -> AccessEntry {
    AccessEntry {
        chunk_id: chunk_id.to_string(),
        buyer: KeyRecipient {
            recipient_id: buyer.id.clone(),
            recipient_type: recipient_type::BUYER.into(),
            algorithm: WRAP_ALGORITHM.into(),
            public_key_hex: buyer.public_key_text.clone(),
            wrapped_key_hex: key.wrap(&buyer.public_key),
        },
    }
}

/// [`grant_entry_as`] for each of `envelopes`, in order, the work split
/// across `threads` threads (chunk keys are independent; each costs two
/// X25519 operations and a key generation). The first failure, in chain
/// order, is returned.
pub fn grant_entries_as(
    envelopes: &[ChunkEnvelope],
    granting_type: &'static str,
    secret: &RecipientSecretKey,
    buyer: &Buyer,
    threads: usize,
) -> Result<Vec<AccessEntry>, GrantError> {
    let one = |e: &ChunkEnvelope| grant_entry_as(e, granting_type, secret, buyer);
    let threads = if envelopes.len() < 16 { 1 } else { threads };
    map_in_order(envelopes.iter().collect(), threads, one)
        .into_iter()
        .collect()
}

/// One buyer access file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessFile {
    /// `<buyerPublicKeyHex>-<n>.json`.
    pub file_name: String,
    /// The buyer key text.
    pub buyer_public_key_hex: String,
    /// Entries, in chain order.
    pub entries: Vec<AccessEntry>,
}

impl AccessFile {
    /// Wire JSON `{schemaVersion, buyerPublicKeyHex, entries:[{chunkId, buyer}]}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), Value::from(ACCESS_SCHEMA_VERSION));
        m.insert(
            "buyerPublicKeyHex".into(),
            Value::from(self.buyer_public_key_hex.as_str()),
        );
        let entries = self
            .entries
            .iter()
            .map(|e| {
                let mut em = Map::new();
                em.insert("chunkId".into(), Value::from(e.chunk_id.as_str()));
                em.insert("buyer".into(), e.buyer.to_json());
                Value::Object(em)
            })
            .collect();
        m.insert("entries".into(), Value::Array(entries));
        Value::Object(m)
    }

    /// The file's bytes as `peaqos stream grant` writes them (compact JSON, no newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        json::write::to_python_compact(&self.to_json()).into_bytes()
    }
}

/// The SDK's size of one entry: `json.dumps(asdict(entry), separators=(",",":"))`.
fn sdk_entry_len(entry: &AccessEntry) -> usize {
    let mut s = String::with_capacity(400);
    s.push_str("{\"chunk_id\":");
    push_python_string(&mut s, &entry.chunk_id);
    s.push_str(",\"buyer\":{\"recipient_id\":");
    push_python_string(&mut s, &entry.buyer.recipient_id);
    s.push_str(",\"recipient_type\":");
    push_python_string(&mut s, &entry.buyer.recipient_type);
    s.push_str(",\"algorithm\":");
    push_python_string(&mut s, &entry.buyer.algorithm);
    s.push_str(",\"public_key_hex\":");
    push_python_string(&mut s, &entry.buyer.public_key_hex);
    s.push_str(",\"wrapped_key_hex\":");
    push_python_string(&mut s, &entry.buyer.wrapped_key_hex);
    s.push_str("},\"schema_version\":");
    push_python_string(&mut s, ACCESS_SCHEMA_VERSION);
    s.push('}');
    s.len()
}

/// The SDK's size of a file's frame (everything but the entries and their commas).
fn sdk_frame_len(buyer_key_text: &str, file_index: usize) -> usize {
    let mut s = String::with_capacity(256);
    s.push_str("{\"schema_version\":");
    push_python_string(&mut s, ACCESS_SCHEMA_VERSION);
    s.push_str(",\"file_name\":");
    push_python_string(&mut s, &format!("{buyer_key_text}-{file_index}.json"));
    s.push_str(",\"buyer_public_key_hex\":");
    push_python_string(&mut s, buyer_key_text);
    s.push_str(",\"entries\":[]}");
    s.len()
}

/// Cuts a stream of entries into access files as the reference does:
/// an entry starts a new file when adding it would make the current
/// (non-empty) file larger than the maximum. Memory: one file's entries.
#[derive(Debug)]
pub struct AccessFileBuilder {
    buyer_public_key_hex: String,
    max_file_size: usize,
    files_done: usize,
    current: Vec<AccessEntry>,
    current_entries_len: usize,
}

impl AccessFileBuilder {
    /// A builder for `buyer`'s files of at most `max_file_size` bytes (as the SDK measures them).
    pub fn new(buyer: &Buyer, max_file_size: usize) -> Result<Self, ValidationError> {
        if max_file_size == 0 {
            return Err(ValidationError::new("max_file_size", "greater than 0"));
        }
        Ok(AccessFileBuilder {
            buyer_public_key_hex: buyer.public_key_text.clone(),
            max_file_size,
            files_done: 0,
            current: Vec::new(),
            current_entries_len: 0,
        })
    }

    fn take_file(&mut self) -> AccessFile {
        self.files_done += 1;
        self.current_entries_len = 0;
        AccessFile {
            file_name: format!("{}-{}.json", self.buyer_public_key_hex, self.files_done),
            buyer_public_key_hex: self.buyer_public_key_hex.clone(),
            entries: std::mem::take(&mut self.current),
        }
    }

    /// Add the next entry; returns a finished file when this entry starts a new one.
    pub fn push(&mut self, entry: AccessEntry) -> Option<AccessFile> {
        let entry_len = sdk_entry_len(&entry);
        let frame = sdk_frame_len(&self.buyer_public_key_hex, self.files_done + 1);
        let next_size = frame + self.current_entries_len + entry_len + self.current.len();
        let mut finished = None;
        if !self.current.is_empty() && next_size > self.max_file_size {
            finished = Some(self.take_file());
        }
        self.current_entries_len += entry_len;
        self.current.push(entry);
        finished
    }

    /// The last file, if any entries remain.
    pub fn finish(mut self) -> Option<AccessFile> {
        (!self.current.is_empty()).then(|| self.take_file())
    }
}

/// Why access files could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessReadError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] json::JsonError),
    /// Not an access file.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// The entries of one access file that belong to `buyer_id`, by chunk id.
/// Validation follows the reference's reader (every entry must be complete,
/// whoever it is for).
///
/// Besides the wire form (camelCase, as `peaqos stream grant` writes it),
/// the snake_case form that the reference's `peaqos stream distribute
/// --delivery s3` uploads (its dataclasses as they are: `schema_version`,
/// `buyer_public_key_hex`, `chunk_id`, `wrapped_key_hex`…) is read too:
/// a file whose top level has `schema_version` and no `schemaVersion` has
/// its keys renamed to camelCase first. The reference's own reader refuses
/// those files, so without this its S3 deliveries cannot be consumed.
pub fn read_access_file(
    bytes: &[u8],
    buyer_id: &str,
    into: &mut HashMap<String, KeyRecipient>,
) -> Result<usize, AccessReadError> {
    let mut value = json::parse(bytes)?;
    let snake = value
        .as_object()
        .is_some_and(|o| o.contains_key("schema_version") && !o.contains_key("schemaVersion"));
    if snake {
        value = camel_case_keys(value, "")?;
    }
    let obj = value
        .as_object()
        .ok_or_else(|| ValidationError::new("access file", "expected a JSON object"))?;
    if obj.get("schemaVersion").and_then(Value::as_str) != Some(ACCESS_SCHEMA_VERSION) {
        return Err(ValidationError::new(
            "schemaVersion",
            format!("expected {ACCESS_SCHEMA_VERSION}"),
        )
        .into());
    }
    if obj
        .get("buyerPublicKeyHex")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(ValidationError::new("buyerPublicKeyHex", "required string").into());
    }
    let entries = obj
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| ValidationError::new("entries", "required array"))?;
    let mut found = 0;
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("entries[{i}]");
        let e = entry
            .as_object()
            .ok_or_else(|| ValidationError::new(&at, "expected an object"))?;
        let chunk_id = e
            .get("chunkId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ValidationError::new(format!("{at}.chunkId"), "required string"))?;
        let buyer = KeyRecipient::from_json(
            e.get("buyer")
                .ok_or_else(|| ValidationError::new(format!("{at}.buyer"), "required object"))?,
            &format!("{at}.buyer"),
        )?;
        for (field, value) in [
            ("recipientId", &buyer.recipient_id),
            ("recipientType", &buyer.recipient_type),
            ("algorithm", &buyer.algorithm),
            ("publicKeyHex", &buyer.public_key_hex),
            ("wrappedKeyHex", &buyer.wrapped_key_hex),
        ] {
            if value.is_empty() {
                return Err(ValidationError::new(
                    format!("{at}.buyer.{field}"),
                    "non-empty string",
                )
                .into());
            }
        }
        if buyer.recipient_id == buyer_id {
            into.insert(chunk_id.to_string(), buyer);
            found += 1;
        }
    }
    Ok(found)
}

/// `value` with every object key in snake_case renamed to camelCase
/// (`wrapped_key_hex` → `wrappedKeyHex`); a key that is there in both forms
/// is an error naming it.
fn camel_case_keys(value: Value, at: &str) -> Result<Value, ValidationError> {
    Ok(match value {
        Value::Object(map) => {
            let mut out = json::Map::with_capacity(map.len());
            for (key, v) in map {
                let camel = snake_to_camel(&key);
                let path = if at.is_empty() {
                    camel.clone()
                } else {
                    format!("{at}.{camel}")
                };
                let v = camel_case_keys(v, &path)?;
                if out.insert(camel, v).is_some() {
                    return Err(ValidationError::new(
                        path,
                        format!("given twice (as {key} and in another form)"),
                    ));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| camel_case_keys(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        other => other,
    })
}

fn snake_to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Re-wraps every chunk key of a chain from the owner to one buyer and cuts
/// the entries into access files as the reference does (`peaqos stream
/// grant`), whatever the envelopes are read from: the keys are re-wrapped
/// on worker threads, in chain order, with at most 4 × `parallelism`
/// envelopes in flight.
#[derive(Debug)]
pub struct GrantStream {
    owner: Arc<RecipientSecretKey>,
    buyer: Buyer,
    files: AccessFileBuilder,
    parallelism: usize,
}

impl GrantStream {
    /// A grant to `buyer` with the owner's key, in files of at most
    /// `max_file_size` bytes (as the SDK measures them), on `parallelism`
    /// threads. Nothing runs until [`GrantStream::run`].
    pub fn new(
        owner: Arc<RecipientSecretKey>,
        buyer: &Buyer,
        max_file_size: usize,
        parallelism: usize,
    ) -> Result<Self, ValidationError> {
        Ok(GrantStream {
            owner,
            files: AccessFileBuilder::new(buyer, max_file_size)?,
            buyer: buyer.clone(),
            parallelism: parallelism.max(1),
        })
    }

    /// [`GrantStream::run`] over items the workers turn into envelopes with
    /// `load` (such as paths of `chunk-N.json`: reading and parsing each one
    /// then runs on the workers beside the re-wraps, not on the caller's
    /// thread). The first failure in chain order, of `load`, of a re-wrap or
    /// of `file`, stops it.
    pub fn run_loading<T, E>(
        self,
        items: impl IntoIterator<Item = T>,
        load: impl Fn(T) -> Result<ChunkEnvelope, E> + Send + Sync + 'static,
        file: &mut dyn FnMut(AccessFile) -> Result<(), E>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, E>
    where
        T: Send + 'static,
        E: From<GrantError> + Send + 'static,
    {
        let GrantStream {
            owner,
            buyer,
            mut files,
            parallelism,
        } = self;
        let mut pool = OrderedPool::new(parallelism, parallelism * 4, move |item: T| {
            let envelope = load(item)?;
            grant_entry(&envelope, &owner, &buyer).map_err(E::from)
        });
        let mut chunks = 0u64;
        let mut deliver = |entry: Result<AccessEntry, E>| -> Result<(), E> {
            if let Some(done) = files.push(entry?) {
                file(done)?;
            }
            chunks += 1;
            progress(1);
            Ok(())
        };
        for item in items {
            pool.submit(item, &mut deliver)?;
        }
        pool.drain(&mut deliver)?;
        drop(pool);
        if let Some(last) = files.finish() {
            file(last)?;
        }
        Ok(chunks)
    }

    /// Grant every chunk of `envelopes` (in chain order), giving each access
    /// file to `file` as soon as it is complete and calling `progress` with 1
    /// per chunk granted. Stops at the first error: of `envelopes`, of a
    /// re-wrap (in chain order) or of `file`. Returns the chunks granted.
    pub fn run<E>(
        self,
        envelopes: impl IntoIterator<Item = Result<ChunkEnvelope, E>>,
        file: &mut dyn FnMut(AccessFile) -> Result<(), E>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, E>
    where
        E: From<GrantError> + Send + 'static,
    {
        self.run_loading(envelopes, |envelope| envelope, file, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snake_case_form_of_distribute_reads_like_the_wire_form() {
        let wire = br#"{"schemaVersion":"peaq.stream.buyer-access.v1","fileName":"k-1.json",
            "buyerPublicKeyHex":"aa","entries":[{"chunkId":"0x01","buyer":{"recipientId":"b",
            "recipientType":"buyer","algorithm":"x25519-sealedbox","publicKeyHex":"aa",
            "wrappedKeyHex":"bb"}}]}"#;
        let snake = br#"{"schema_version":"peaq.stream.buyer-access.v1","file_name":"k-1.json",
            "buyer_public_key_hex":"aa","entries":[{"chunk_id":"0x01","buyer":{"recipient_id":"b",
            "recipient_type":"buyer","algorithm":"x25519-sealedbox","public_key_hex":"aa",
            "wrapped_key_hex":"bb"},"schema_version":"peaq.stream.buyer-access.v1"}]}"#;
        let (mut a, mut b) = (HashMap::new(), HashMap::new());
        assert_eq!(read_access_file(wire, "b", &mut a).unwrap(), 1);
        assert_eq!(read_access_file(snake, "b", &mut b).unwrap(), 1);
        assert_eq!(a, b);
        // Both forms of one key are refused, naming it.
        let twice =
            br#"{"schema_version":"peaq.stream.buyer-access.v1","buyer_public_key_hex":"aa",
            "buyerPublicKeyHex":"aa","entries":[]}"#;
        let e = read_access_file(twice, "b", &mut HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("buyerPublicKeyHex"), "{e}");
        // A snake_case entry in a wire-form file is still incomplete.
        let mixed = br#"{"schemaVersion":"peaq.stream.buyer-access.v1","buyerPublicKeyHex":"aa",
            "entries":[{"chunk_id":"0x01"}]}"#;
        let e = read_access_file(mixed, "b", &mut HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("entries[0].chunkId"), "{e}");
    }

    #[test]
    fn sdk_sizes_match_a_rendering() {
        let buyer = Buyer::new("did:peaq:0xb0b", &"ab".repeat(32)).unwrap();
        let entry = AccessEntry {
            chunk_id: "0x01".into(),
            buyer: KeyRecipient {
                recipient_id: buyer.id.clone(),
                recipient_type: "buyer".into(),
                algorithm: WRAP_ALGORITHM.into(),
                public_key_hex: buyer.public_key_text.clone(),
                wrapped_key_hex: "cd".repeat(80),
            },
        };
        let frame = sdk_frame_len(&buyer.public_key_text, 1);
        let one = frame + sdk_entry_len(&entry);
        let mut b = AccessFileBuilder::new(&buyer, one).unwrap();
        assert!(b.push(entry.clone()).is_none());
        // A second entry (plus comma) exceeds the limit: the first file is done.
        let done = b.push(entry.clone()).unwrap();
        assert_eq!(done.entries.len(), 1);
        assert_eq!(done.file_name, format!("{}-1.json", "ab".repeat(32)));
        let last = b.finish().unwrap();
        assert_eq!(last.file_name, format!("{}-2.json", "ab".repeat(32)));
    }
}
