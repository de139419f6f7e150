//! Live subscriptions (docs/subscriptions.md), both sides:
//!
//! - the owner's [`SubscriptionGranter`]: lists the chunks the
//!   subscriptions of the owner's listings are entitled to and hold no key
//!   of, opens each chunk key with the owner's X25519 key (checked against
//!   the envelope's commitment), seals it to the subscriber's key and
//!   stores it. It keeps no state: the server's pending list is the state,
//!   and the server refuses pairs not entitled and counts duplicates.
//! - the buyer's [`Follower`]: reads the subscription's feed and opens each
//!   chunk after checking it (envelope id and signature, the link to the
//!   chunk before it, the ciphertext's hash, the key's commitment, the
//!   plaintext's hash).
//!
//! The granter uses part A's typed client (`pending_subscription_grants`,
//! `store_subscription_grants` in [`crate::subscriptions`]).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::BufReader;

use sealstream_api::listings::ListingKind;
use sealstream_api::routes;
use sealstream_api::subscriptions::{
    read_feed_event, FeedChunk, FeedEvent, FeedReadError, PendingGrant, PostSubscriptionGrants,
    SubscriptionGrantEntry,
};
use sealstream_core::access::{grant_entry_as, Buyer, GrantError};
use sealstream_core::chunk::{
    decrypt_chunk, recipient_type, verify_signed, ChunkEnvelope, DecryptError, KeyRecipient,
};
use sealstream_core::keys::RecipientSecretKey;

use crate::market::{ClientError, MarketClient};

/// Largest envelope read (bytes).
const MAX_ENVELOPE: u64 = 4 << 20;
/// Largest ciphertext read (bytes): the server's largest chunk upload.
pub const MAX_CIPHERTEXT: u64 = 256 << 20;
/// Pairs asked for per page of the pending list.
const PENDING_PAGE: u32 = 500;

impl MarketClient {
    /// Opens the feed of subscription `id` (its buyer), after chunk
    /// `after` if given.
    pub fn subscription_feed(
        &mut self,
        id: &str,
        after: Option<u64>,
    ) -> Result<FeedStream, ClientError> {
        let response = self.get_stream(&routes::subscription_feed(id, after))?;
        Ok(FeedStream {
            reader: BufReader::new(response),
        })
    }

    /// The envelope of chunk `index` of the subscription's topic (up to
    /// the last one granted to it).
    pub fn subscription_chunk_envelope(
        &mut self,
        id: &str,
        index: u64,
    ) -> Result<ChunkEnvelope, ClientError> {
        let path = routes::subscription_chunk_envelope(id, index);
        let bytes = self.get_bytes(&path, MAX_ENVELOPE)?;
        ChunkEnvelope::parse(&bytes).map_err(|e| self.protocol(format!("{path}: {e}")))
    }

    /// The ciphertext of a chunk granted to the subscription (`path` as a
    /// chunk event names it), at most `limit` bytes.
    pub fn subscription_ciphertext(
        &mut self,
        path: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let under_subscriptions = path
            .strip_prefix(routes::SUBSCRIPTIONS)
            .is_some_and(|rest| rest.starts_with('/'));
        if !under_subscriptions {
            return Err(self.protocol(format!(
                "a ciphertext path outside the subscription routes: {path}"
            )));
        }
        self.get_bytes(path, limit)
    }
}

/// An open feed.
pub struct FeedStream {
    reader: BufReader<reqwest::blocking::Response>,
}

impl std::fmt::Debug for FeedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedStream").finish_non_exhaustive()
    }
}

impl FeedStream {
    /// The next event; `None` when the server ended the feed.
    pub fn next_event(&mut self) -> Result<Option<FeedEvent>, FeedReadError> {
        read_feed_event(&mut self.reader)
    }
}

/// What one pass of the granter did for one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionGranted {
    /// The subscription.
    pub subscription_id: String,
    /// The chunk indexes sent.
    pub indexes: Vec<u64>,
    /// Newly stored.
    pub stored: u64,
    /// Already held.
    pub already: u64,
}

/// Why a subscription's chunks could not be granted.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionGrantError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A chunk key could not be re-wrapped (a wrong owner key, no owner
    /// entry, a key that does not match its commitment).
    #[error("subscription {subscription}: {source}")]
    Grant {
        /// The subscription.
        subscription: String,
        /// What failed.
        #[source]
        source: GrantError,
    },
    /// The server's answer is unusable.
    #[error("subscription {subscription}: {message}")]
    Answer {
        /// The subscription.
        subscription: String,
        /// What is wrong.
        message: String,
    },
}

impl SubscriptionGrantError {
    /// Whether the server refused the batch because a chunk of it is
    /// already granted with another wrapping: another granter (the server
    /// with an operator key) stored it first, which is no failure.
    pub fn granted_elsewhere(&self) -> bool {
        matches!(
            self,
            SubscriptionGrantError::Client(ClientError::Refused { status: 409, field: Some(f), .. })
                if f.ends_with(".buyer.wrappedKeyHex")
        )
    }
}

/// Times one pass of [`SubscriptionGranter::run_once`] lists a topic's
/// pending pairs again after another granter stored some first.
const MAX_RACES: usize = 8;

/// The (machine, topic) pairs of the caller's subscription listings,
/// sorted, each once.
pub(crate) fn subscription_topics(
    client: &mut MarketClient,
) -> Result<Vec<(String, String)>, ClientError> {
    let mut topics: Vec<(String, String)> = client
        .all_my_listings()?
        .into_iter()
        .filter(|l| l.kind == ListingKind::Subscription)
        .filter_map(|l| l.subscription.map(|t| (t.machine_did, t.topic)))
        .collect();
    topics.sort();
    topics.dedup();
    Ok(topics)
}

/// The owner's granter of subscription chunks.
#[derive(Debug)]
pub struct SubscriptionGranter {
    owner_key: RecipientSecretKey,
}

impl SubscriptionGranter {
    /// A granter opening chunk keys with `owner_key`.
    pub fn new(owner_key: RecipientSecretKey) -> Self {
        SubscriptionGranter { owner_key }
    }

    /// One pass through `client` (signed in as the owner): every topic of
    /// the owner's subscription listings, every pending pair, stored by
    /// subscription in index order; each subscription's outcome reported.
    /// Fails only when the listings or a pending list cannot be read.
    pub fn run_once(
        &self,
        client: &mut MarketClient,
        mut report: impl FnMut(&str, &Result<SubscriptionGranted, SubscriptionGrantError>),
    ) -> Result<usize, ClientError> {
        let topics = subscription_topics(client)?;
        let mut granted = 0;
        for (machine, topic) in &topics {
            // A subscription that failed is left for the next pass, so one
            // page may list it again: stop when nothing else moves.
            let mut failed: Vec<String> = Vec::new();
            let mut raced = 0;
            loop {
                let page =
                    client.pending_subscription_grants(machine, topic, Some(PENDING_PAGE))?;
                let mut by_sub: BTreeMap<String, Vec<PendingGrant>> = BTreeMap::new();
                for p in page.items {
                    if !failed.contains(&p.subscription_id) {
                        by_sub.entry(p.subscription_id.clone()).or_default().push(p);
                    }
                }
                if by_sub.is_empty() {
                    break;
                }
                let mut envelopes = BTreeMap::new();
                let mut again = false;
                for (sub, pairs) in by_sub {
                    let result = self.grant(client, machine, topic, &sub, &pairs, &mut envelopes);
                    match &result {
                        Ok(_) => granted += 1,
                        // Another granter (the server with an operator key)
                        // stored a chunk of the batch first: nothing of the
                        // batch was stored, and the pairs still pending are
                        // listed again (at most a few times).
                        Err(e) if e.granted_elsewhere() && raced < MAX_RACES => {
                            raced += 1;
                            again = true;
                            continue;
                        }
                        Err(_) => failed.push(sub.clone()),
                    }
                    report(&sub, &result);
                }
                if !page.more && !again {
                    break;
                }
            }
        }
        Ok(granted)
    }

    /// Wraps and stores the `pairs` of subscription `sub` (in index order).
    fn grant(
        &self,
        client: &mut MarketClient,
        machine: &str,
        topic: &str,
        sub: &str,
        pairs: &[PendingGrant],
        envelopes: &mut BTreeMap<u64, ChunkEnvelope>,
    ) -> Result<SubscriptionGranted, SubscriptionGrantError> {
        let answer = |message: String| SubscriptionGrantError::Answer {
            subscription: sub.to_string(),
            message,
        };
        let mut entries = Vec::with_capacity(pairs.len());
        for p in pairs {
            let envelope = match envelopes.entry(p.index) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let path = routes::chunk_envelope(machine, topic, p.index);
                    let bytes = client.get_bytes(&path, MAX_ENVELOPE)?;
                    e.insert(
                        ChunkEnvelope::parse(&bytes)
                            .map_err(|e| answer(format!("chunk {}: {e}", p.index)))?,
                    )
                }
            };
            if envelope.index != p.index || envelope.chunk_id != p.chunk_id {
                return Err(answer(format!(
                    "chunk {} is {} in its envelope, {} in the pending list",
                    p.index, envelope.chunk_id, p.chunk_id
                )));
            }
            let buyer = Buyer::new(&p.buyer_id, &p.buyer_public_key_hex)
                .map_err(|e| answer(format!("buyer key: {e}")))?;
            let e = grant_entry_as(envelope, recipient_type::OWNER, &self.owner_key, &buyer)
                .map_err(|source| SubscriptionGrantError::Grant {
                    subscription: sub.to_string(),
                    source,
                })?;
            entries.push(SubscriptionGrantEntry::from_access(p.index, e));
        }
        let stored = client.store_subscription_grants(
            sub,
            &PostSubscriptionGrants {
                entries: entries.clone(),
            },
        )?;
        Ok(SubscriptionGranted {
            subscription_id: sub.to_string(),
            indexes: entries.iter().map(|e| e.index).collect(),
            stored: stored.stored,
            already: stored.already,
        })
    }
}

/// Why a chunk of the feed was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The chunk does not check out (named, with the index).
    #[error("chunk {index}: {message}")]
    Chunk {
        /// The chunk's index.
        index: u64,
        /// What failed.
        message: String,
    },
    /// It does not decrypt with the buyer key.
    #[error("chunk {index}: {source}")]
    Decrypt {
        /// The chunk's index.
        index: u64,
        /// What failed.
        #[source]
        source: DecryptError,
    },
}

impl FollowError {
    /// Whether reconnecting may help (the network, a 5xx), rather than a
    /// chunk that fails its checks.
    pub fn is_transient(&self) -> bool {
        matches!(self, FollowError::Client(e) if e.is_transient())
    }
}

/// The last chunk a follower accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// Its index.
    pub index: u64,
    /// Its id (the next chunk must link to it).
    pub chunk_id: String,
}

/// The buyer's side of a feed: checks and opens its chunks.
#[derive(Debug)]
pub struct Follower {
    subscription_id: String,
    /// The buyer keys (more than one after a renewal with a new key).
    secrets: Vec<RecipientSecretKey>,
    /// The last chunk accepted.
    pub last: Option<Position>,
    machine_did: Option<String>,
}

impl Follower {
    /// A follower of subscription `id` with the buyer's X25519 `secret`,
    /// resuming after `last` if given.
    pub fn new(id: &str, secret: RecipientSecretKey, last: Option<Position>) -> Self {
        Follower::with_keys(id, vec![secret], last)
    }

    /// A follower holding every buyer key of the subscription (the first
    /// one and those of renewals with a new key): each chunk is opened with
    /// the one it is wrapped to.
    pub fn with_keys(id: &str, secrets: Vec<RecipientSecretKey>, last: Option<Position>) -> Self {
        Follower {
            subscription_id: id.to_string(),
            secrets,
            last,
            machine_did: None,
        }
    }

    /// Checks chunk event `c` and returns its plaintext: the envelope's id
    /// and signature, the same machine as the chunks before, the link to
    /// the previous chunk (the one it accepted last, or the envelope of
    /// `index - 1` read from the server), the ciphertext's hash, the
    /// wrapped key opened with the buyer key and checked against the key
    /// commitment, the plaintext's hash. On success it is the last chunk.
    pub fn open(
        &mut self,
        client: &mut MarketClient,
        c: &FeedChunk,
    ) -> Result<Vec<u8>, FollowError> {
        let index = c.index;
        let bad = |message: String| FollowError::Chunk { index, message };
        if let Some(last) = &self.last {
            if index <= last.index {
                return Err(bad(format!("sent again after chunk {}", last.index)));
            }
        }
        let core = c.envelope.to_core().map_err(|e| bad(e.to_string()))?;
        let envelope = ChunkEnvelope::from_json(&core).map_err(|e| bad(e.to_string()))?;
        if envelope.index != index || envelope.chunk_id != c.chunk_id {
            return Err(bad(format!(
                "the envelope is chunk {} ({}), the event chunk {index} ({})",
                envelope.index, envelope.chunk_id, c.chunk_id
            )));
        }
        verify_signed(&envelope).map_err(|e| bad(format!("envelope: {e:?}")))?;
        let signer = &envelope.signature.machine_did;
        match &self.machine_did {
            Some(m) if m != signer => {
                return Err(bad(format!("signed by {signer}, the chain by {m}")))
            }
            _ => {}
        }
        // The link to the chunk before it.
        let expected_previous = match (&self.last, index) {
            (_, 0) => None,
            (Some(last), _) if last.index + 1 == index => Some(last.chunk_id.clone()),
            _ => {
                let before =
                    client.subscription_chunk_envelope(&self.subscription_id, index - 1)?;
                verify_signed(&before)
                    .map_err(|e| bad(format!("the envelope of chunk {}: {e:?}", index - 1)))?;
                if before.index != index - 1 || &before.signature.machine_did != signer {
                    return Err(bad(format!(
                        "the server's chunk {} is not of this chain",
                        index - 1
                    )));
                }
                Some(before.chunk_id)
            }
        };
        if envelope.previous_chunk_id != expected_previous {
            return Err(bad(format!(
                "links to {:?}, the chunk before it is {:?}",
                envelope.previous_chunk_id, expected_previous
            )));
        }
        let Some(secret) = self.secrets.iter().find(|k| {
            c.buyer
                .public_key_hex
                .eq_ignore_ascii_case(&k.public_key().to_hex())
        }) else {
            return Err(bad(format!(
                "wrapped to the key {}, not this buyer key",
                c.buyer.public_key_hex
            )));
        };
        let ciphertext = client.subscription_ciphertext(&c.ciphertext_path, MAX_CIPHERTEXT)?;
        if sealstream_core::chunk::sha256_hex(&ciphertext) != envelope.encrypted_data_hash {
            return Err(bad("the ciphertext does not match encryptedDataHash".into()));
        }
        let wrapped = KeyRecipient {
            recipient_id: c.buyer.recipient_id.clone(),
            recipient_type: c.buyer.recipient_type.clone(),
            algorithm: c.buyer.algorithm.clone(),
            public_key_hex: c.buyer.public_key_hex.clone(),
            wrapped_key_hex: c.buyer.wrapped_key_hex.clone(),
        };
        let plaintext = decrypt_chunk(&envelope, &wrapped, secret, ciphertext)
            .map_err(|source| FollowError::Decrypt { index, source })?;
        self.machine_did = Some(signer.clone());
        self.last = Some(Position {
            index,
            chunk_id: envelope.chunk_id,
        });
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, field: Option<&str>) -> SubscriptionGrantError {
        SubscriptionGrantError::Client(ClientError::Refused {
            url: "http://127.0.0.1:1".into(),
            status,
            field: field.map(str::to_string),
            message: "chunk 3 is already granted with another wrapped key".into(),
        })
    }

    #[test]
    fn a_chunk_granted_by_another_granter_is_no_failure() {
        assert!(refused(409, Some("entries[3].buyer.wrappedKeyHex")).granted_elsewhere());
        for other in [
            refused(409, Some("entries[3].buyer.publicKeyHex")),
            refused(409, Some("entries[0]")),
            refused(400, Some("entries[3].buyer.wrappedKeyHex")),
            refused(409, None),
        ] {
            assert!(!other.granted_elsewhere(), "{other}");
        }
    }
}
