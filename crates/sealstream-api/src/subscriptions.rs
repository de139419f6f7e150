//! Subscriptions (docs/subscriptions.md): a buyer subscribes to a
//! published `subscription` listing with their X25519 public key, pays
//! each period like an order (every period is an order of its own, paid
//! through the order routes: EVM payment proof or invoice marked paid),
//! and is granted every chunk of the listing's topic that the market
//! accepts while the subscription covers it.
//!
//! States: `awaiting-payment` → `active` → `grace` → `lapsed`; `active`
//! or `grace` → `active` again on a renewal; `cancelled` by the buyer,
//! `revoked` by the seller.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::listings::{HistoryPolicy, WrappedKey};
use crate::orders::{ListQuery, ListedState, OrderSide, OrderState};
use crate::payments::PaymentInstructions;

wire_enum! {
    /// The life of a subscription.
    pub enum SubscriptionState refuse "expected awaiting-payment, active, grace, lapsed, cancelled or revoked" {
        /// Made; its first period is not paid yet.
        AwaitingPayment = "awaiting-payment",
        /// Paid through a time still to come.
        Active = "active",
        /// The paid time is over; chunks are still granted until its end.
        Grace = "grace",
        /// The grace window passed without a renewal (final).
        Lapsed = "lapsed",
        /// Cancelled by the buyer (final; access runs to the paid time).
        Cancelled = "cancelled",
        /// Revoked by the seller (final; access ends at the revocation).
        Revoked = "revoked",
    }
}

impl SubscriptionState {
    /// Lapsed, cancelled or revoked: nothing changes it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SubscriptionState::Lapsed | SubscriptionState::Cancelled | SubscriptionState::Revoked
        )
    }
}

/// Which of the caller's subscriptions a list shows: its own (`buyer`) or
/// those of its listings (`seller`), as for orders.
pub type SubscriptionSide = OrderSide;

/// `POST /v1/subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSubscription {
    /// The published `subscription` listing.
    pub listing_id: String,
    /// The X25519 public key the chunk keys are to be wrapped to (hex).
    pub buyer_public_key_hex: String,
    /// The recipient id of the access entries (default: the buyer's DID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_id: Option<String>,
}

/// `POST /v1/subscriptions/{id}/renewals`: one more period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenewSubscription {
    /// A new X25519 public key (hex): chunks accepted from the renewal's
    /// payment on are wrapped to it only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_public_key_hex: Option<String>,
}

/// `POST /v1/subscriptions/{id}/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RevokeSubscription {
    /// Why (1 to 500 characters), shown to the buyer.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 500))]
    pub reason: String,
}

/// One period of a subscription: an order paying it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PeriodView {
    /// 1 for the first period, then one more per renewal.
    pub number: u32,
    /// The order that pays it (`ord_…`): pay it with the order routes.
    pub order_id: String,
    /// The order's state (`awaiting-payment`, `paid`, `cancelled`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: OrderState,
    /// The new buyer key this renewal carries, if any.
    pub new_buyer_public_key_hex: Option<String>,
    /// Asked for (UTC).
    pub created_at: String,
    /// Paid (UTC): the time it took effect.
    pub paid_at: Option<String>,
}

/// A buyer key and the chunk time from which it applies.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BuyerKeyView {
    /// X25519 public key, hex.
    pub public_key_hex: String,
    /// Chunks accepted at or after this time (UTC) are wrapped to it (until
    /// the next key's time); the first key applies from the start.
    pub applies_from: String,
}

/// A subscription as its buyer and seller see it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    /// `sub_…`.
    pub id: String,
    /// The listing.
    pub listing_id: String,
    /// The seller.
    pub seller_did: String,
    /// The buyer.
    pub buyer_did: String,
    /// The access entries' recipient id.
    pub buyer_id: String,
    /// The buyer key in force now.
    pub buyer_public_key_hex: String,
    /// The machine whose topic it covers.
    pub machine_did: String,
    /// The topic.
    pub topic: String,
    /// Seconds per period (fixed at creation).
    pub period_seconds: u64,
    /// Grace seconds (fixed at creation).
    pub grace_seconds: u64,
    /// History policy (fixed at creation): `"none"`, `"all"` or
    /// `{"lastChunks": N}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub history: HistoryPolicy,
    /// Price of a period, base units (fixed at creation).
    pub amount: String,
    /// The state, as of the server's last sweep or change.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: SubscriptionState,
    /// When the first payment was confirmed (UTC).
    pub active_from: Option<String>,
    /// The end of the last paid period, `T` (UTC).
    pub paid_through: Option<String>,
    /// `T + G` (UTC), while it may still be renewed.
    pub grace_until: Option<String>,
    /// `E`: the end of access once it has one (UTC): `T + G` when lapsed,
    /// `T` when cancelled, the revocation time when revoked.
    pub access_ends: Option<String>,
    /// Why it ended (the seller's reason for a revocation).
    pub end_reason: Option<String>,
    /// The buyer keys, oldest first, with the time each applies from.
    pub keys: Vec<BuyerKeyView>,
    /// The periods, oldest first.
    pub periods: Vec<PeriodView>,
    /// How to pay the period awaiting payment, if one does.
    pub payment: Option<PaymentInstructions>,
    /// Created (UTC).
    pub created_at: String,
}

impl SubscriptionView {
    /// The order of the period awaiting payment, if one does.
    pub fn unpaid_order(&self) -> Option<&str> {
        self.periods
            .iter()
            .rev()
            .find(|p| p.state == OrderState::AwaitingPayment)
            .map(|p| p.order_id.as_str())
    }
}

/// A page of subscriptions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionList {
    /// By id.
    pub items: Vec<SubscriptionView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `GET /v1/subscriptions` query, read as text and checked by the server.
pub type SubscriptionQuery = ListQuery<SubscriptionState>;

impl ListedState for SubscriptionState {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// One row of a subscription's history.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// 1, 2, … in order.
    pub seq: u64,
    /// `created`, `activated`, `renewed`, `grace`, `lapsed`, `cancelled`,
    /// `revoked`, `key-rotated`.
    pub event: String,
    /// The state after it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: SubscriptionState,
    /// When it took effect (UTC): for `grace` and `lapsed`, `T` and
    /// `T + G`, not when the server noticed.
    pub effective_at: String,
    /// When the server recorded it (UTC).
    pub recorded_at: String,
    /// Who: a DID, or `server` for time-driven changes.
    pub actor: String,
    /// What it carried (order, key, reason).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
}

/// `GET /v1/subscriptions/{id}/history`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionHistory {
    /// The subscription.
    pub subscription_id: String,
    /// Its history, oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// A chunk a subscription is entitled to and has no key for yet.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PendingGrant {
    /// The subscription.
    pub subscription_id: String,
    /// The chunk's chain index.
    pub index: u64,
    /// The chunk's id.
    pub chunk_id: String,
    /// The access entry's recipient id.
    pub buyer_id: String,
    /// The buyer key in force at the chunk's time: wrap to this one.
    pub buyer_public_key_hex: String,
}

/// `GET /v1/machines/{did}/topics/{topic}/subscription-grants`: what the
/// granter has to wrap.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PendingGrants {
    /// Entitled and not granted pairs, by subscription then index (at
    /// most `limit`).
    pub items: Vec<PendingGrant>,
    /// Whether more remain.
    pub more: bool,
}

/// The query of the pending grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PendingQuery {
    /// At most this many pairs, 1 to 1,000 (default 500).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Long poll: when nothing is pending, wait up to this many seconds (1
    /// to 60) for a chunk of the topic to be ingested or a period to be
    /// paid, then answer.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 60))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<u32>,
}

/// One chunk key wrapped for a subscriber (a `peaq.stream.buyer-access.v1`
/// entry, with the chunk's index).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscriptionGrantEntry {
    /// The chunk's chain index.
    pub index: u64,
    /// The chunk's id.
    pub chunk_id: String,
    /// The buyer entry: `recipientId`, `recipientType` `buyer`,
    /// `algorithm` `x25519-sealedbox`, `publicKeyHex`, `wrappedKeyHex`.
    pub buyer: WrappedKey,
}

impl SubscriptionGrantEntry {
    /// The entry of chunk `index` from a buyer access entry (what
    /// `sealstream_core::access::grant_entry` makes).
    pub fn from_access(index: u64, e: sealstream_core::access::AccessEntry) -> Self {
        SubscriptionGrantEntry {
            index,
            chunk_id: e.chunk_id,
            buyer: WrappedKey {
                recipient_id: e.buyer.recipient_id,
                recipient_type: e.buyer.recipient_type,
                algorithm: e.buyer.algorithm,
                public_key_hex: e.buyer.public_key_hex,
                wrapped_key_hex: e.buyer.wrapped_key_hex,
            },
        }
    }
}

/// `PUT /v1/subscriptions/{id}/grants`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostSubscriptionGrants {
    /// 1 to 1,000 entries.
    pub entries: Vec<SubscriptionGrantEntry>,
}

/// The answer to stored grants.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGrantsStored {
    /// The subscription.
    pub subscription_id: String,
    /// Entries newly stored.
    pub stored: u64,
    /// Entries already held (the same wrapped key; nothing changed).
    pub already: u64,
}

/// The name of the feed's chunk events.
pub const FEED_EVENT_CHUNK: &str = "chunk";
/// The name of the feed's state events.
pub const FEED_EVENT_STATE: &str = "state";

/// `GET /v1/subscriptions/{id}/feed` query, read as text and checked by the
/// server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Only chunks after this index (the last one the follower holds); the
    /// SSE `Last-Event-ID` header says the same, and this wins over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `GET /v1/subscriptions/{id}/datasets` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SubscriptionDatasetsQuery {
    /// Only datasets whose last chunk index is above this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// At most this many, 1 to 100 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A machine-signed dataset (time window) of a subscription's topic.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDataset {
    /// `ds_…`.
    pub dataset_id: String,
    /// Chain index of its first chunk.
    pub first_index: u64,
    /// Chain index of its last chunk.
    pub last_index: u64,
    /// The `sealstream.dataset.v1` manifest as the machine signed it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: crate::JsonDocument,
}

/// `GET /v1/subscriptions/{id}/datasets`: the machine-signed datasets of
/// the topic overlapping the chunks granted to the subscription, by last
/// index.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDatasets {
    /// By last index, then id.
    pub items: Vec<SubscriptionDataset>,
    /// Whether more follow (ask again after the last one's `lastIndex`).
    pub more: bool,
}

/// A `chunk` event of the feed (its SSE id is the index): a chunk granted
/// to the subscription, with everything the buyer needs to open it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FeedChunk {
    /// The chunk's chain index.
    pub index: u64,
    /// The chunk's id.
    pub chunk_id: String,
    /// The previous chunk's id (`None` for the first of the chain).
    pub previous_chunk_id: Option<String>,
    /// When the market accepted it, `t(c)` (UTC).
    pub accepted_at: String,
    /// The envelope, as the machine signed it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub envelope: crate::JsonDocument,
    /// The chunk key wrapped to the buyer key in force at `t(c)`.
    pub buyer: WrappedKey,
    /// The ciphertext's route on this server (relative to its base URL).
    pub ciphertext_path: String,
    /// Ciphertext bytes.
    pub size: u64,
}

wire_enum! {
    /// Whether a subscription gives access now.
    pub enum FeedStatus refuse "expected valid or invalid" {
        /// Active or in grace: chunks accepted now are granted.
        Valid = "valid",
        /// Not yet paid, or ended: chunks accepted now are not granted.
        Invalid = "invalid",
    }
}

/// A `state` event of the feed: sent when the feed opens and on every
/// change.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FeedState {
    /// `valid` or `invalid`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: FeedStatus,
    /// The subscription's state.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: SubscriptionState,
    /// `T` (UTC), once paid.
    pub paid_through: Option<String>,
    /// `T + G` (UTC) while valid.
    pub grace_until: Option<String>,
    /// Seconds until `T + G` while valid (0 once passed).
    pub seconds_left: Option<u64>,
    /// The end of access (UTC), once it has one.
    pub access_ends: Option<String>,
    /// Why it is invalid.
    pub reason: Option<String>,
    /// What the buyer can do about it (pay the period's order, renew, or
    /// subscribe again).
    pub remedy: Option<String>,
    /// Whether the feed ends once the chunks still due are sent (a final
    /// state: lapsed, cancelled, revoked).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The signed cut-off notice (`sealstream.subscription-cutoff.v1`,
    /// [`crate::receipts::SignedCutoff`]) once the subscription is final and
    /// its access has ended: the last `state` event of a feed carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub cutoff: Option<serde_json::Value>,
}

impl FeedState {
    /// The cut-off notice it carries, read strictly (its signature is not
    /// checked here: [`crate::receipts::SignedCutoff::verify`]).
    pub fn cutoff_notice(
        &self,
    ) -> Option<Result<crate::receipts::SignedCutoff, crate::receipts::ReceiptError>> {
        self.cutoff
            .as_ref()
            .map(|v| crate::receipts::SignedCutoff::parse(v.to_string().as_bytes()))
    }
}

/// One event of a feed, as a follower reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedEvent {
    /// A chunk granted to the subscription.
    Chunk(Box<FeedChunk>),
    /// The subscription's state.
    State(FeedState),
}

/// Why a feed could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FeedReadError {
    /// The connection failed or closed mid-event.
    #[error("reading the feed: {0}")]
    Io(#[from] std::io::Error),
    /// An event of a known name whose data is not its JSON.
    #[error("feed event {event}: {message}")]
    Malformed {
        /// The event's name.
        event: String,
        /// What was wrong.
        message: String,
    },
}

/// Longest line of a feed a reader accepts (an envelope is a few kB; the
/// server writes each event's JSON on one line).
pub const MAX_FEED_LINE: usize = 4 << 20;

/// Reads the next event of a feed (`text/event-stream`) from `r`: skips
/// comments (keep-alives) and events of other names; `None` at the end of
/// the stream.
pub fn read_feed_event(r: &mut impl std::io::BufRead) -> Result<Option<FeedEvent>, FeedReadError> {
    let (mut name, mut data) = (String::new(), String::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_until(
            &mut std::io::Read::take(&mut *r, MAX_FEED_LINE as u64 + 1),
            b'\n',
            &mut line,
        )?;
        if n == 0 {
            return Ok(None);
        }
        if line.len() > MAX_FEED_LINE {
            return Err(FeedReadError::Malformed {
                event: name,
                message: format!("a line longer than {MAX_FEED_LINE} bytes"),
            });
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            if data.is_empty() && name.is_empty() {
                continue;
            }
            let malformed = |e: serde_json::Error| FeedReadError::Malformed {
                event: name.clone(),
                message: e.to_string(),
            };
            match name.as_str() {
                FEED_EVENT_CHUNK => {
                    return Ok(Some(FeedEvent::Chunk(Box::new(
                        serde_json::from_str(&data).map_err(malformed)?,
                    ))))
                }
                FEED_EVENT_STATE => {
                    return Ok(Some(FeedEvent::State(
                        serde_json::from_str(&data).map_err(malformed)?,
                    )))
                }
                _ => {
                    name.clear();
                    data.clear();
                    continue;
                }
            }
        }
        if text.starts_with(':') {
            continue;
        }
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text, ""),
        };
        match field {
            "event" => name = value.to_string(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_query_is_text_on_the_wire() {
        let q = SubscriptionQuery::new(SubscriptionSide::Seller)
            .state(SubscriptionState::Grace)
            .page(10, Some("sub_1"));
        let text = crate::errors::encode_query(&q);
        assert_eq!(text, "as=seller&state=grace&cursor=sub_1&limit=10");
        assert_eq!(
            crate::errors::decode_query::<SubscriptionQuery>(&text).unwrap(),
            q
        );
    }

    #[test]
    fn a_feed_reads_events_and_skips_keep_alives() {
        let state = FeedState {
            status: FeedStatus::Invalid,
            state: SubscriptionState::Revoked,
            paid_through: None,
            grace_until: None,
            seconds_left: None,
            access_ends: Some("2026-01-01T00:00:00Z".into()),
            reason: Some("revoked: gone".into()),
            remedy: None,
            is_final: true,
            cutoff: Some(serde_json::json!({"schemaVersion": "sealstream.subscription-cutoff.v1"})),
        };
        let text = format!(
            ":\n\nevent: other\ndata: 1\n\nevent: state\ndata: {}\n\n: keep\n\n",
            serde_json::to_string(&state).unwrap()
        );
        let mut r = std::io::Cursor::new(text.into_bytes());
        assert_eq!(
            read_feed_event(&mut r).unwrap(),
            Some(FeedEvent::State(state))
        );
        assert_eq!(read_feed_event(&mut r).unwrap(), None);
        let mut bad = std::io::Cursor::new(b"event: chunk\ndata: {}\n\n".to_vec());
        assert!(matches!(
            read_feed_event(&mut bad),
            Err(FeedReadError::Malformed { event, .. }) if event == "chunk"
        ));
    }

    #[test]
    fn final_states_are_final() {
        let finals: Vec<_> = SubscriptionState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(finals, ["lapsed", "cancelled", "revoked"]);
    }

    #[test]
    fn a_renewal_without_a_key_is_an_empty_object() {
        assert_eq!(
            serde_json::to_value(RenewSubscription::default()).unwrap(),
            json!({})
        );
        let e = crate::errors::decode_json::<RenewSubscription>(br#"{"key":"00"}"#).unwrap_err();
        assert_eq!(e.field, "key");
    }
}
