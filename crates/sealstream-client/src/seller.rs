//! The seller's side of the market, beside the grant daemon: registering a
//! machine (the machine signs, the owner sends), making an owner-signed
//! dataset from a range of a chain the server holds, and listing a dataset
//! with its sample chunk keys disclosed. `sealstream market machine`,
//! `market dataset` and `market listing` call these.
//!
//! Everything secret stays here: the machine key signs the registration on
//! the machine, the owner's X25519 key opens chunk keys on the owner's side
//! (to hash the plaintext for a dataset's `sourceHash`, and to disclose the
//! keys of sample chunks, which the owner publishes on purpose).

use std::sync::Arc;

use sealstream_api::datasets::{CreateDataset, DatasetState, DatasetView, SignDataset};
use sealstream_api::ingest::ChunkPage;
use sealstream_api::listings::{CreateListing, ListingView, PatchListing, PostSamples, SampleKey};
use sealstream_api::machines::{MachineRecipient, MachineView, SignedRegistration};
use sealstream_api::registration::{MachineRegistration, RegistrationRecipient};
use sealstream_api::JsonDocument;
use sealstream_core::chunk::{
    ChainItem, ChainReadError, ChainReader, ChainReaderOptions, ChunkEnvelope, ChunkKey,
    KeyRecipient,
};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo};
use sealstream_core::gap::GapScanner;
use sealstream_core::identity::{Did, Eip191Signature};
use sealstream_core::json::Value;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_core::ValidationError;

use crate::market::{ClientError, MarketClient};

/// Envelopes read per request while making a dataset.
const PAGE: u64 = 500;

/// Largest chunk ciphertext read back from the server (the server's own
/// upload limit is 256 MiB by default).
const MAX_CIPHERTEXT: u64 = 1 << 30;

/// The recipient ids `sealstream keys generate`, `publish` and the agent
/// write into envelopes, by recipient type.
pub const DEFAULT_RECIPIENTS: [(&str, &str); 3] = [
    ("owner-1", "owner"),
    ("operator-1", "operator"),
    ("machine-1", "machine"),
];

/// Why a seller's request could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum SellerError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An input document is wrong; `field` names the part.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault (`chainPublicKeyHex` of keys.json, `sampleChunkIndexes`
        /// of a listing, `registration: signature`…).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A chunk the server served could not be used.
    #[error("dataset {dataset}: chunk {index}: {message}")]
    Chunk {
        /// The dataset being made.
        dataset: String,
        /// The chunk's chain index.
        index: u64,
        /// What went wrong.
        message: String,
    },
    /// The server's answer disagrees with what the chunks say.
    #[error("dataset {dataset}: {message}")]
    Mismatch {
        /// The dataset.
        dataset: String,
        /// The disagreement.
        message: String,
    },
}

impl SellerError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SellerError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Whether the server refused (as opposed to local input or the
    /// network failing).
    pub fn is_refusal(&self) -> bool {
        matches!(self, SellerError::Client(ClientError::Refused { .. }))
    }
}

impl From<ValidationError> for SellerError {
    fn from(e: ValidationError) -> Self {
        SellerError::invalid(e.field.clone(), e.constraint.clone())
    }
}

fn text<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn required<'a>(v: &'a Value, name: &str) -> Result<&'a str, SellerError> {
    text(v, name).ok_or_else(|| SellerError::invalid(name, "missing"))
}

/// The registration a machine signs for `owner`, from the public parts in
/// `keys.json` as `sealstream keys generate` writes it (`machineDid`,
/// `chainPublicKeyHex`, `ownerPublicKeyHex`, `operatorPublicKeyHex`,
/// `machinePublicKeyHex`; recipient ids `owner-1`, `operator-1`,
/// `machine-1`), signed by the machine's key and by its chain key (proof of
/// possession; `chain_key` must be the key of `chainPublicKeyHex`). The
/// result is the document `market machine register` sends:
/// `{ownerDid, machineDid, chainPublicKey, recipients, signature,
/// chainKeySignature}`.
pub fn sign_registration(
    machine_key: &MachineSigningKey,
    chain_key: &ChainSigningKey,
    owner: &Did,
    keys: &Value,
) -> Result<SignedRegistration, SellerError> {
    let machine = Did::of_key(machine_key);
    if let Some(listed) = text(keys, "machineDid") {
        let listed = Did::parse(listed, "machineDid")?;
        if listed != machine {
            return Err(SellerError::invalid(
                "machineDid",
                format!("{listed} is not the DID of the machine key ({machine})"),
            ));
        }
    }
    let chain = required(keys, "chainPublicKeyHex")?;
    let mut recipients = Vec::new();
    for (id, kind) in DEFAULT_RECIPIENTS {
        let field = format!("{kind}PublicKeyHex");
        let hex = required(keys, &field)?;
        recipients.push((id.to_string(), kind.to_string(), hex.to_string()));
    }
    let registration = MachineRegistration {
        machine,
        owner: *owner,
        chain_public_key: sealstream_core::keys::ChainPublicKey::from_hex(
            chain,
            "chainPublicKeyHex",
        )?,
        recipients: recipients
            .iter()
            .map(|(id, kind, hex)| {
                Ok(RegistrationRecipient {
                    recipient_id: id.clone(),
                    recipient_type: kind.clone(),
                    public_key: sealstream_core::keys::RecipientPublicKey::from_hex(
                        hex,
                        &format!("{kind}PublicKeyHex"),
                    )?,
                })
            })
            .collect::<Result<Vec<_>, ValidationError>>()?,
    };
    registration.validate()?;
    let signature = registration.sign(machine_key);
    let chain_key_signature = registration.sign_chain_key(chain_key).map_err(|_| {
        SellerError::invalid(
            "chain key",
            format!("is not the chain key of keys.json ({chain})"),
        )
    })?;
    Ok(SignedRegistration {
        owner_did: owner.to_string(),
        machine_did: machine.to_string(),
        chain_public_key: chain.to_ascii_lowercase(),
        recipients: recipients
            .into_iter()
            .map(|(recipient_id, recipient_type, hex)| MachineRecipient {
                recipient_id,
                recipient_type,
                public_key_hex: hex.to_ascii_lowercase(),
            })
            .collect(),
        signature: signature.to_hex(),
        chain_key_signature,
    })
}

/// Registers the machine of a signed `registration` (as
/// [`sign_registration`] writes it) under the signed-in owner. The
/// signature is checked here first, so a registration signed for another
/// owner or with other keys is named before anything is sent. Returns the
/// server's view of the machine.
pub fn register_machine(
    client: &mut MarketClient,
    registration: &SignedRegistration,
) -> Result<MachineView, SellerError> {
    let owner = *client.did();
    let named = Did::parse(&registration.owner_did, "registration: ownerDid")?;
    if named != owner {
        return Err(SellerError::invalid(
            "registration: ownerDid",
            format!("the machine signed it for {named}, but the key signing in is {owner}'s"),
        ));
    }
    let parsed = MachineRegistration::from_request(
        &owner.to_string(),
        &registration.machine_did,
        &registration.chain_public_key,
        &registration.recipients,
    )
    .map_err(|e| SellerError::invalid(format!("registration: {}", e.field), e.constraint))?;
    let sig = Eip191Signature::from_hex(&registration.signature, "registration: signature")?;
    parsed.verify(&sig).map_err(|e| {
        SellerError::invalid(
            "registration: signature",
            format!(
                "{} (owner {owner}: a registration is signed for one owner)",
                e.constraint
            ),
        )
    })?;
    parsed
        .verify_chain_key(&registration.chain_key_signature)
        .map_err(|e| SellerError::invalid("registration: chainKeySignature", e.constraint))?;
    Ok(client.register_machine(&registration.request())?)
}

/// A range of a machine's chain on the server, as `POST /v1/datasets`
/// takes it: by chain index (both inclusive) or by receive time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetRange {
    /// The machine (`did:peaq:0x…`).
    pub machine_did: String,
    /// The chain's topic.
    pub topic: String,
    /// First chain index, with `to_index`.
    pub from_index: Option<u64>,
    /// Last chain index (inclusive), with `from_index`.
    pub to_index: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SSZ`, with `to_time`.
    pub from_time: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ` (exclusive), with `from_time`.
    pub to_time: Option<String>,
}

impl DatasetRange {
    /// The request making a draft of this range.
    pub fn request(&self) -> CreateDataset {
        CreateDataset {
            machine_did: Some(self.machine_did.clone()),
            topic: Some(self.topic.clone()),
            from_index: self.from_index,
            to_index: self.to_index,
            from_time: self.from_time.clone(),
            to_time: self.to_time.clone(),
            manifest: None,
        }
    }
}

/// An owner-signed dataset, as [`create_dataset`] left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnDataset {
    /// `ds_…`.
    pub id: String,
    /// `0x` + the Merkle root over the chunk ids.
    pub merkle_root: String,
    /// First chain index covered.
    pub first_index: u64,
    /// Chunks covered.
    pub chunk_count: u64,
    /// `0x` + SHA-256 of the plaintext of the chunks, in order (`None` when
    /// the server already held this dataset signed and nothing was read).
    pub source_hash: Option<String>,
    /// Plaintext bytes hashed.
    pub bytes: u64,
    /// `false` when the server already held it signed.
    pub signed_now: bool,
}

/// Makes a dataset of `range` and signs it as the owner: the server
/// computes the draft (root, first and head chunk ids); this reads every
/// covered chunk back (envelope and ciphertext, a page of envelopes at a
/// time, one ciphertext at a time per thread), decrypts it with the
/// owner's recipient key on `threads` threads for the `sourceHash` and the
/// gap records (`gaps`) the server cannot compute, rebuilds the Merkle root from the envelopes and
/// checks it against the server's, signs the manifest with the key the
/// client signs in with (EIP-191), and completes the draft. At most
/// `2 × threads` chunks are in memory. For an index range, a dataset of
/// the same range the owner already signed is returned as it is, and a
/// draft of it is completed instead of making another.
pub fn create_dataset(
    client: &mut MarketClient,
    owner_key: &RecipientSecretKey,
    range: &DatasetRange,
    threads: usize,
) -> Result<OwnDataset, SellerError> {
    let draft = match same_range(client, range)? {
        Some(held) => held,
        None => client.create_dataset(&range.request())?,
    };
    let id = draft.id.clone();
    let root = draft.merkle_root.clone();
    let (first, count) = (draft.first_index, draft.chunk_count);
    if draft.state == DatasetState::Signed {
        return Ok(OwnDataset {
            id,
            merkle_root: root,
            first_index: first,
            chunk_count: count,
            source_hash: None,
            bytes: 0,
            signed_now: false,
        });
    }
    let owner_public = owner_key.public_key().to_hex();
    let chunk_error = |index: u64, message: String| SellerError::Chunk {
        dataset: id.clone(),
        index,
        message,
    };
    let mut builder = DatasetBuilder::new();
    let end = first + count;
    let items = ChunkReader {
        client: &mut *client,
        dataset: &id,
        machine: &range.machine_did,
        topic: &range.topic,
        owner_public: &owner_public,
        next: first,
        end,
        page: Vec::new(),
        builder: &mut builder,
        failed: false,
    };
    let items = items.map(|item| {
        item.map(|(envelope, key, ciphertext)| ChainItem {
            envelope,
            key,
            ciphertext,
        })
    });
    // Decrypted to hash the plaintext (sourceHash); the server checked the
    // chain at upload and the root is compared below.
    let options = ChainReaderOptions {
        verify: false,
        parallelism: threads,
        ..ChainReaderOptions::default()
    };
    let mut reader = ChainReader::new(items, Arc::new(clone_secret(owner_key)), options);
    let read_error = |e: ChainReadError<SellerError>| match e {
        ChainReadError::Source(e) => e,
        ChainReadError::Decrypt { index, error } => chunk_error(index, error.to_string()),
        other => chunk_error(first, other.to_string()),
    };
    // The gap records in the plaintext: the dataset states them (`gaps`).
    let mut scanner = GapScanner::new();
    let mut gaps = Vec::new();
    let mut index = first;
    while let Some(plaintext) = reader.next_chunk().map_err(read_error)? {
        for found in scanner.push(&plaintext) {
            gaps.push(found.map_err(|e| chunk_error(index, e))?);
        }
        index += 1;
    }
    if let Some(found) = scanner.finish() {
        gaps.push(found.map_err(|e| chunk_error(index.saturating_sub(1), e))?);
    }
    let summary = reader.finish().map_err(read_error)?;
    if summary.chunks != count {
        return Err(SellerError::Mismatch {
            dataset: id.clone(),
            message: format!("the server served {} of {count} chunks", summary.chunks),
        });
    }
    let mut manifest = builder
        .finish(DatasetInfo {
            topic: Some(range.topic.clone()),
            source_hash: summary.output_hash.clone(),
            gaps,
            ..DatasetInfo::default()
        })
        .ok_or_else(|| SellerError::Mismatch {
            dataset: id.clone(),
            message: "no chunks".into(),
        })?;
    let manifest_json = manifest.to_json();
    let ours = text(&manifest_json, "merkleRoot").unwrap_or_default();
    if !ours.eq_ignore_ascii_case(&root) {
        return Err(SellerError::Mismatch {
            dataset: id.clone(),
            message: format!(
                "the server's root {root} is not the root {ours} of the chunks it served"
            ),
        });
    }
    manifest.sign_eip191_as(client.key());
    client.sign_dataset(
        &id,
        &SignDataset {
            manifest: JsonDocument::from_core(&manifest.to_json()),
        },
    )?;
    Ok(OwnDataset {
        id,
        merkle_root: root,
        first_index: first,
        chunk_count: count,
        source_hash: Some(summary.output_hash),
        bytes: summary.bytes,
        signed_now: true,
    })
}

/// The owner's dataset of exactly this index range, if the server holds
/// one: a signed one first, else a draft (a run that stopped before
/// signing), so that running the same command again makes no second
/// dataset. Time ranges are resolved by the server and always make a new
/// draft.
fn same_range(
    client: &mut MarketClient,
    range: &DatasetRange,
) -> Result<Option<DatasetView>, ClientError> {
    let (Some(from), Some(to)) = (range.from_index, range.to_index) else {
        return Ok(None);
    };
    let me = client.did().to_string();
    let mut draft = None;
    for d in client.all_datasets()? {
        let same = d.machine_did.eq_ignore_ascii_case(&range.machine_did)
            && d.topic == range.topic
            && d.first_index == from
            && d.last_index == to;
        if !same {
            continue;
        }
        match d.state {
            DatasetState::Signed
                if d.signer_did
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&me)) =>
            {
                return Ok(Some(d))
            }
            DatasetState::Draft if draft.is_none() => draft = Some(d),
            _ => {}
        }
    }
    Ok(draft)
}

fn clone_secret(key: &RecipientSecretKey) -> RecipientSecretKey {
    RecipientSecretKey::from_hex(&key.to_hex_secret(), "owner key").expect("a key's own hex")
}

/// The covered chunks in order, read from the server as
/// the [`ChainReader`] asks for them; every envelope also goes into the
/// Merkle builder.
struct ChunkReader<'a> {
    client: &'a mut MarketClient,
    dataset: &'a str,
    machine: &'a str,
    topic: &'a str,
    owner_public: &'a str,
    next: u64,
    end: u64,
    /// Envelopes read ahead, in order.
    page: Vec<ChunkEnvelope>,
    builder: &'a mut DatasetBuilder,
    failed: bool,
}

impl ChunkReader<'_> {
    fn chunk_error(&self, index: u64, message: impl Into<String>) -> SellerError {
        SellerError::Chunk {
            dataset: self.dataset.to_string(),
            index,
            message: message.into(),
        }
    }

    fn read(&mut self) -> Result<(ChunkEnvelope, KeyRecipient, Vec<u8>), SellerError> {
        let index = self.next;
        if self.page.is_empty() {
            let limit = PAGE.min(self.end - index);
            let chunks = self
                .client
                .chunks(self.machine, self.topic, &ChunkPage::new(index, limit))?
                .chunks;
            for chunk in chunks.into_iter().rev() {
                let envelope = chunk
                    .envelope
                    .to_core()
                    .map_err(|e| self.chunk_error(index, format!("envelope: {e}")))?;
                let envelope = ChunkEnvelope::from_json(&envelope)
                    .map_err(|e| self.chunk_error(index, format!("envelope: {e}")))?;
                self.page.push(envelope);
            }
            if self.page.is_empty() {
                return Err(self.chunk_error(index, "the server has no such chunk"));
            }
        }
        let envelope = self.page.pop().expect("a page was read");
        if envelope.index != index {
            return Err(self.chunk_error(
                index,
                format!("the server sent chunk {} in its place", envelope.index),
            ));
        }
        let entry = envelope
            .encryption
            .key_recipients
            .iter()
            .find(|r| r.public_key_hex.eq_ignore_ascii_case(self.owner_public))
            .cloned()
            .ok_or_else(|| {
                self.chunk_error(
                    index,
                    format!(
                        "its key is not wrapped for the owner key given (public key {})",
                        self.owner_public
                    ),
                )
            })?;
        self.builder
            .push(&envelope)
            .map_err(|e| self.chunk_error(index, e.to_string()))?;
        let ciphertext =
            self.client
                .chunk_ciphertext(self.machine, self.topic, index, MAX_CIPHERTEXT)?;
        self.next += 1;
        Ok((envelope, entry, ciphertext))
    }
}

impl Iterator for ChunkReader<'_> {
    type Item = Result<(ChunkEnvelope, KeyRecipient, Vec<u8>), SellerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.end {
            return None;
        }
        let item = self.read();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Creates a listing from `listing`. When it names sample chunks
/// (`sampleChunkIndexes`), their chunk keys are opened with `owner_key`
/// (each checked against its envelope's commitment) and disclosed
/// (`POST /v1/listings/{id}/samples`), so that anyone may preview them;
/// with `publish`, the listing is then published. Returns the listing as
/// the server shows it at the end.
pub fn create_listing(
    client: &mut MarketClient,
    listing: &CreateListing,
    owner_key: Option<&RecipientSecretKey>,
    publish: bool,
) -> Result<ListingView, SellerError> {
    let samples = &listing.sample_chunk_indexes;
    if !samples.is_empty() && owner_key.is_none() {
        return Err(SellerError::invalid(
            "sampleChunkIndexes",
            "disclosing the sample chunks' keys needs the owner's X25519 key (--owner-private-key-file)",
        ));
    }
    let id = client.create_listing(listing)?.id;
    if let Some(owner_key) = owner_key {
        disclose_sample_keys(client, &id, &listing.dataset_id, samples, owner_key)?;
    }
    if publish {
        client.publish_listing(&id)?;
    }
    Ok(client.listing(&id)?)
}

/// Changes the fields `patch` gives of listing `id` (a draft or a
/// published one). When the patch names sample chunks whose keys are not
/// disclosed yet, their keys are opened with `owner_key` and disclosed as
/// [`create_listing`] does (without it, they are refused before anything is
/// sent). Returns the listing as the server shows it at the end.
pub fn edit_listing(
    client: &mut MarketClient,
    id: &str,
    patch: &PatchListing,
    owner_key: Option<&RecipientSecretKey>,
) -> Result<ListingView, SellerError> {
    if patch.given().is_empty() {
        return Err(SellerError::invalid("body", "the patch changes no field"));
    }
    let Some(samples) = &patch.sample_chunk_indexes else {
        return Ok(client.patch_listing(id, patch)?);
    };
    let before = client.listing(id)?;
    let new: Vec<u64> = samples
        .iter()
        .copied()
        .filter(|i| !before.samples_available.contains(i))
        .collect();
    if !new.is_empty() && owner_key.is_none() {
        return Err(SellerError::invalid(
            "sampleChunkIndexes",
            format!(
                "disclosing the keys of sample chunks {new:?} needs the owner's X25519 key \
                 (--owner-private-key-file)"
            ),
        ));
    }
    client.patch_listing(id, patch)?;
    if let (false, Some(owner_key)) = (new.is_empty(), owner_key) {
        disclose_sample_keys(client, id, &before.dataset_id, &new, owner_key)?;
    }
    Ok(client.listing(id)?)
}

/// Opens the keys of chunks `samples` of dataset `dataset` with
/// `owner_key`, checks each against its envelope's commitment and
/// discloses them for listing `id` (`POST /v1/listings/{id}/samples`).
/// Nothing is sent when `samples` is empty.
fn disclose_sample_keys(
    client: &mut MarketClient,
    id: &str,
    dataset: &str,
    samples: &[u64],
    owner_key: &RecipientSecretKey,
) -> Result<(), SellerError> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(samples.len());
    let owner_public = owner_key.public_key().to_hex();
    for &index in samples {
        let bad = |message: String| SellerError::Chunk {
            dataset: dataset.to_string(),
            index,
            message,
        };
        let envelope = client.dataset_envelope(dataset, index)?;
        let entry = envelope
            .encryption
            .key_recipients
            .iter()
            .find(|r| r.public_key_hex.eq_ignore_ascii_case(&owner_public))
            .ok_or_else(|| {
                bad(format!(
                    "its key is not wrapped for the owner key given (public key {owner_public})"
                ))
            })?;
        let key = ChunkKey::unwrap(&entry.wrapped_key_hex, owner_key)
            .ok_or_else(|| bad("the owner key does not open its wrapped key".into()))?;
        if key.commitment() != envelope.encryption.key_commitment {
            return Err(bad(
                "its key does not match the envelope's keyCommitment".into()
            ));
        }
        keys.push(SampleKey {
            index,
            chunk_key_hex: key.to_hex_secret().as_str().to_string(),
        });
    }
    client.disclose_samples(id, &PostSamples { keys })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::json::Map;

    fn keys_json(machine: &MachineSigningKey, chain: &ChainSigningKey) -> Value {
        let mut m = Map::new();
        m.insert("machineDid".into(), Did::of_key(machine).to_string().into());
        m.insert(
            "chainPublicKeyHex".into(),
            chain.public_key().to_hex().into(),
        );
        for who in ["owner", "operator", "machine"] {
            m.insert(
                format!("{who}PublicKeyHex"),
                RecipientSecretKey::generate().public_key().to_hex().into(),
            );
        }
        Value::Object(m)
    }

    #[test]
    fn a_signed_registration_verifies_for_its_owner_only() {
        let machine = MachineSigningKey::generate();
        let owner = Did::of_key(&MachineSigningKey::generate());
        let chain = ChainSigningKey::generate();
        let doc =
            sign_registration(&machine, &chain, &owner, &keys_json(&machine, &chain)).unwrap();
        let list: Vec<(String, String, String)> = doc
            .recipients
            .iter()
            .map(|r| {
                (
                    r.recipient_id.clone(),
                    r.recipient_type.clone(),
                    r.public_key_hex.clone(),
                )
            })
            .collect();
        let borrowed: Vec<(&str, &str, &str)> = list
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        let sig = Eip191Signature::from_hex(&doc.signature, "s").unwrap();
        let as_for = |owner: &Did| {
            MachineRegistration::from_text(
                &owner.to_string(),
                &doc.machine_did,
                &doc.chain_public_key,
                &borrowed,
            )
            .unwrap()
        };
        as_for(&owner).verify(&sig).unwrap();
        let proof = &doc.chain_key_signature;
        as_for(&owner).verify_chain_key(proof).unwrap();
        let other = Did::of_key(&MachineSigningKey::generate());
        assert!(as_for(&other).verify(&sig).is_err());
        assert!(as_for(&other).verify_chain_key(proof).is_err());
        assert_eq!(list[0].0, "owner-1");
        assert_eq!(list[2].1, "machine");
    }

    #[test]
    fn keys_of_another_machine_or_missing_parts_are_named() {
        let machine = MachineSigningKey::generate();
        let owner = Did::of_key(&MachineSigningKey::generate());
        let chain = ChainSigningKey::generate();
        let other = keys_json(&MachineSigningKey::generate(), &chain);
        let e = sign_registration(&machine, &chain, &owner, &other).unwrap_err();
        assert!(e.to_string().starts_with("machineDid:"), "{e}");
        let mut partial = keys_json(&machine, &chain);
        if let Value::Object(m) = &mut partial {
            m.shift_remove("operatorPublicKeyHex");
        }
        let e = sign_registration(&machine, &chain, &owner, &partial).unwrap_err();
        assert_eq!(e.to_string(), "operatorPublicKeyHex: missing");
        let mine = keys_json(&machine, &chain);
        let e =
            sign_registration(&machine, &ChainSigningKey::generate(), &owner, &mine).unwrap_err();
        assert!(e.to_string().starts_with("chain key:"), "{e}");
    }

    #[test]
    fn samples_without_an_owner_key_are_refused_before_sending() {
        let mut client = MarketClient::new("http://127.0.0.1:9", MachineSigningKey::generate());
        let listing: CreateListing = serde_json::from_str(
            r#"{"datasetId":"ds_1","title":"t","price":"1","rail":{},"sampleChunkIndexes":[0]}"#,
        )
        .unwrap();
        let e = create_listing(&mut client, &listing, None, false).unwrap_err();
        assert!(e.to_string().contains("--owner-private-key-file"), "{e}");
    }
}
