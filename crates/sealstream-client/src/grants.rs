//! The owner's grant daemon: it runs on the owner's side with the owner's
//! X25519 recipient key, which never leaves it. Each pass lists the paid,
//! not yet granted orders of the owner's listings, and for each one reads
//! the dataset's chunk envelopes from the server, unwraps every chunk key
//! with the owner key (checking it against the envelope's commitment),
//! seals it to the buyer's key, cuts the entries into buyer access files
//! exactly as the reference does, and uploads them.
//!
//! It keeps no state of its own: the server's order states are the state.
//! A crash or restart at any point re-lists what is still paid and not
//! granted; the server stores at most one grant per order, so an upload
//! sent twice grants once, and an order is never skipped.

use sealstream_api::grants::UploadGrant;
use sealstream_api::ingest::ChunkPage;
use sealstream_api::orders::{ListQuery, OrderSide, OrderState};
use sealstream_api::JsonDocument;
use sealstream_core::access::{grant_entries_as, AccessFileBuilder, Buyer, GrantError};
use sealstream_core::chunk::recipient_type;
use sealstream_core::chunk::ChunkEnvelope;
use sealstream_core::keys::RecipientSecretKey;

use crate::market::{ClientError, MarketClient};

/// Chunks read per request.
const PAGE: u64 = 1000;

/// A paid order waiting for its grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOrder {
    /// `ord_…`.
    pub id: String,
    /// The dataset sold.
    pub dataset_id: String,
    /// The access entries' recipient id.
    pub buyer_id: String,
    /// The buyer's X25519 public key (hex).
    pub buyer_public_key_hex: String,
}

/// One order granted (or found granted already).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    /// The order.
    pub order_id: String,
    /// Chunks granted.
    pub entries: u64,
    /// Access files.
    pub files: u64,
    /// `false` when the server already held a grant for the order.
    pub new: bool,
}

/// Why an order could not be granted.
#[derive(Debug, thiserror::Error)]
pub enum GrantDaemonError {
    /// The server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A chunk key could not be re-wrapped (a wrong owner key, a chunk
    /// without an owner entry, a key that does not match its commitment).
    #[error("order {order}: {source}")]
    Grant {
        /// The order.
        order: String,
        /// What failed.
        #[source]
        source: GrantError,
    },
    /// The server's answer about the order or its dataset is unusable.
    #[error("order {order}: {message}")]
    Order {
        /// The order.
        order: String,
        /// What is wrong.
        message: String,
    },
}

impl GrantDaemonError {
    /// Whether trying the same order later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, GrantDaemonError::Client(e) if e.is_transient())
    }
}

/// The daemon: a signed-in owner session and the owner's recipient key.
#[derive(Debug)]
pub struct GrantDaemon {
    client: MarketClient,
    owner_key: RecipientSecretKey,
    max_file_size: usize,
    threads: usize,
}

impl GrantDaemon {
    /// A daemon granting through `client` (signed in as the owner) with
    /// `owner_key`, cutting access files at `max_file_size` bytes.
    pub fn new(client: MarketClient, owner_key: RecipientSecretKey, max_file_size: usize) -> Self {
        GrantDaemon {
            client,
            owner_key,
            max_file_size,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The signed-in owner session (for the subscription granter).
    pub fn client_mut(&mut self) -> &mut MarketClient {
        &mut self.client
    }

    /// The paid, ungranted orders of the owner's listings, every page.
    pub fn pending(&mut self) -> Result<Vec<PendingOrder>, ClientError> {
        let orders = self
            .client
            .all_orders(&ListQuery::new(OrderSide::Seller).state(OrderState::Paid))?;
        Ok(orders
            .into_iter()
            // A subscription's period orders are granted chunk by chunk.
            .filter(|order| order.subscription_id.is_none())
            .map(|order| PendingOrder {
                id: order.id,
                dataset_id: order.dataset_id,
                buyer_id: order.buyer_id,
                buyer_public_key_hex: order.buyer_public_key_hex,
            })
            .collect())
    }

    /// Builds and uploads the access files of one order.
    pub fn grant(&mut self, order: &PendingOrder) -> Result<Granted, GrantDaemonError> {
        let bad = |message: String| GrantDaemonError::Order {
            order: order.id.clone(),
            message,
        };
        let buyer = Buyer::new(&order.buyer_id, &order.buyer_public_key_hex)
            .map_err(|e| bad(format!("buyer: {e}")))?;
        let dataset = self.client.dataset(&order.dataset_id)?;
        let (machine, topic) = (dataset.machine_did, dataset.topic);
        let (first, count) = (dataset.first_index, dataset.chunk_count);
        let end = first + count;
        let mut builder =
            AccessFileBuilder::new(&buyer, self.max_file_size).map_err(|e| bad(e.to_string()))?;
        let mut files = Vec::new();
        let mut next = first;
        while next < end {
            let limit = PAGE.min(end - next);
            let chunks = self
                .client
                .chunks(&machine, &topic, &ChunkPage::new(next, limit))?
                .chunks;
            if chunks.is_empty() {
                return Err(bad(format!(
                    "the server has no chunk {next} of the dataset"
                )));
            }
            let mut envelopes = Vec::with_capacity(chunks.len());
            for chunk in &chunks {
                let envelope = chunk
                    .envelope
                    .to_core()
                    .map_err(|e| bad(format!("chunk {next}: {e}")))?;
                let envelope = ChunkEnvelope::from_json(&envelope)
                    .map_err(|e| bad(format!("chunk {next}: {e}")))?;
                if envelope.index != next {
                    return Err(bad(format!(
                        "the server answered chunk {} for chunk {next}",
                        envelope.index
                    )));
                }
                envelopes.push(envelope);
                next += 1;
                if next == end {
                    break;
                }
            }
            let entries = grant_entries_as(
                &envelopes,
                recipient_type::OWNER,
                &self.owner_key,
                &buyer,
                self.threads,
            )
            .map_err(|source| GrantDaemonError::Grant {
                order: order.id.clone(),
                source,
            })?;
            for entry in entries {
                files.extend(builder.push(entry));
            }
        }
        files.extend(builder.finish());
        let request = UploadGrant {
            files: files
                .iter()
                .map(|f| JsonDocument::from_core(&f.to_json()))
                .collect(),
        };
        let grant = self.client.upload_grant(&order.id, &request)?;
        Ok(Granted {
            order_id: order.id.clone(),
            entries: grant.entries,
            files: grant.files.len() as u64,
            new: grant.granted,
        })
    }

    /// One pass: grants every pending order, reporting each outcome to
    /// `report`. Fails only when the list of orders cannot be read; an
    /// order that fails is reported and tried again on the next pass.
    pub fn run_once(
        &mut self,
        mut report: impl FnMut(&PendingOrder, &Result<Granted, GrantDaemonError>),
    ) -> Result<usize, ClientError> {
        let pending = self.pending()?;
        let mut granted = 0;
        for order in &pending {
            let result = self.grant(order);
            if result.is_ok() {
                granted += 1;
            }
            report(order, &result);
        }
        Ok(granted)
    }
}
