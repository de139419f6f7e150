//! Listings: what an owner offers for one of its datasets, their lifecycle
//! (draft → published → withdrawn), the public listing page, its
//! Dazaar-style card, and sample chunks whose keys anyone may have.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::document::JsonDocument;
use crate::payments::{Rail, RailInput, RailKind};

pub use crate::datasets::DatasetState;

wire_enum! {
    /// What a listing sells.
    #[derive(Default)]
    pub enum ListingKind refuse "expected dataset or subscription" {
        /// A fixed, signed dataset (`datasetId`).
        #[default]
        Dataset = "dataset",
        /// A machine's topic as it is recorded, paid per period
        /// (`subscription`; docs/subscriptions.md).
        Subscription = "subscription",
    }
}

impl ListingKind {
    /// Whether this is the default kind (`dataset`), left off the wire.
    pub fn is_dataset(&self) -> bool {
        *self == ListingKind::Dataset
    }
}

/// Shortest subscription period by default, seconds (1 hour): the
/// server's operator may allow shorter ones (`market serve
/// --min-subscription-period`, down to 1 s).
pub const MIN_PERIOD_SECONDS: u64 = 3_600;
/// Longest subscription period, seconds (365 days).
pub const MAX_PERIOD_SECONDS: u64 = 31_536_000;
/// Longest grace window, seconds (30 days).
pub const MAX_GRACE_SECONDS: u64 = 2_592_000;

/// How much of the topic recorded before a subscription starts its buyer
/// receives: `"none"`, `"all"` or `{"lastChunks": N}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HistoryPolicy {
    /// Nothing before the subscription's start.
    #[default]
    None,
    /// Every chunk of the topic accepted before the start.
    All,
    /// The `N` last chunks accepted before the start.
    LastChunks(u64),
}

impl Serialize for HistoryPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HistoryPolicy::None => s.serialize_str("none"),
            HistoryPolicy::All => s.serialize_str("all"),
            HistoryPolicy::LastChunks(n) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("lastChunks", n)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for HistoryPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HistoryPolicy, D::Error> {
        const EXPECTED: &str = "expected \"none\", \"all\" or {\"lastChunks\": N}";
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Last {
            last_chunks: u64,
        }
        let v = Value::deserialize(d)?;
        match &v {
            Value::String(s) if s == "none" => Ok(HistoryPolicy::None),
            Value::String(s) if s == "all" => Ok(HistoryPolicy::All),
            Value::Object(_) => serde_json::from_value::<Last>(v)
                .map(|l| HistoryPolicy::LastChunks(l.last_chunks))
                .map_err(|_| serde::de::Error::custom(EXPECTED)),
            _ => Err(serde::de::Error::custom(EXPECTED)),
        }
    }
}

/// The terms of a subscription listing: which machine's topic, the period
/// paid for at a time, the grace window after it and the history a new
/// subscriber receives. Fixed for a subscription's life once made.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscriptionTerms {
    /// The machine (one of the owner's, registered).
    pub machine_did: String,
    /// Its topic (need not have chunks yet).
    pub topic: String,
    /// Seconds paid for at a time: the server's shortest period (3,600 by
    /// default, `market serve --min-subscription-period`) to 31,536,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 31536000))]
    pub period_seconds: u64,
    /// Seconds after the paid time during which chunks are still granted:
    /// 0 to 2,592,000 (default 0).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 2592000))]
    pub grace_seconds: u64,
    /// `"none"` (default), `"all"` or `{"lastChunks": N}`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub history: HistoryPolicy,
}

wire_enum! {
    /// Lifecycle of a listing.
    pub enum ListingState refuse "expected draft, published or withdrawn" {
        /// Visible to its owner only; editable.
        Draft = "draft",
        /// In the catalog; editable.
        Published = "published",
        /// Out of the catalog for good.
        Withdrawn = "withdrawn",
    }
}

/// `POST /v1/listings`: a new listing (a draft) for one of the caller's
/// datasets.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateListing {
    /// `dataset` (the default) or `subscription`.
    #[serde(default, skip_serializing_if = "ListingKind::is_dataset")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub kind: ListingKind,
    /// The dataset on sale (`ds_…`), one of the caller's: for a `dataset`
    /// listing only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dataset_id: String,
    /// The terms of a `subscription` listing (and only of one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionTerms>,
    /// 1 to 200 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub title: String,
    /// Up to 20,000 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Up to 20 tags of 1 to 40 characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A domain such as `mobility` or `energy` (up to 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// What a decrypted chunk looks like (free text, up to 4,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hint: Option<String>,
    /// Chain indexes of up to 5 chunks of the dataset offered as free
    /// previews (their keys are disclosed to anyone, by design).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample_chunk_indexes: Vec<u64>,
    /// License terms: a text or a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub license: Option<Value>,
    /// Price in the rail's base units (wei, cents) as a decimal integer string.
    #[cfg_attr(feature = "openapi", schema(example = "1500000000000000000"))]
    pub price: String,
    /// How to pay: `{"kind":"evm","chainId":1,"token":"native"|"0x…","decimals":18,"payTo":"0x…","symbol"?:"ETH"}`
    /// or `{"kind":"invoice","currency":"EUR","decimals"?:2,"payee"?:"…","terms"?:"…"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rail: RailInput,
    /// Delivery options among `api`, `object-store`, `p2p` (default `["api"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Vec<String>>,
    /// The compliance preset buyers must meet (dataset listings): allowed
    /// jurisdictions, data classes, retention notice, attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<crate::compliance::CompliancePreset>,
}

/// `PATCH /v1/listings/{id}`: only the fields given change; `null` clears
/// an optional field.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchListing {
    /// New title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New tags (replace the old ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// New domain; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub domain: Option<Option<String>>,
    /// New schema hint; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub schema_hint: Option<Option<String>>,
    /// New sample chunk indexes (keys of chunks no longer listed are dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_chunk_indexes: Option<Vec<u64>>,
    /// New license; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub license: Option<Option<Value>>,
    /// New price (base units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// New rail.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rail: Option<RailInput>,
    /// New delivery options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Vec<String>>,
    /// New compliance preset; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub compliance: Option<Option<crate::compliance::CompliancePreset>>,
}

/// A field that is present (possibly `null`) is `Some(…)`; an absent one
/// stays `None` through `#[serde(default)]`.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

impl PatchListing {
    /// The camelCase names of the fields given.
    pub fn given(&self) -> Vec<&'static str> {
        let flags = [
            (self.title.is_some(), "title"),
            (self.description.is_some(), "description"),
            (self.tags.is_some(), "tags"),
            (self.domain.is_some(), "domain"),
            (self.schema_hint.is_some(), "schemaHint"),
            (self.sample_chunk_indexes.is_some(), "sampleChunkIndexes"),
            (self.license.is_some(), "license"),
            (self.price.is_some(), "price"),
            (self.rail.is_some(), "rail"),
            (self.delivery.is_some(), "delivery"),
            (self.compliance.is_some(), "compliance"),
        ];
        flags
            .into_iter()
            .filter(|(given, _)| *given)
            .map(|(_, name)| name)
            .collect()
    }
}

/// A dataset as far as listings need it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DatasetSummary {
    /// `ds_…`.
    pub id: String,
    /// The machine whose chain it is taken from.
    pub machine_did: String,
    /// The topic.
    pub topic: String,
    /// Chain index of its first chunk.
    pub first_index: i64,
    /// Number of chunks.
    pub chunk_count: i64,
    /// Merkle root over its chunk ids.
    pub merkle_root: String,
    /// When its first chunk was received (UTC text).
    pub from: String,
    /// When its last chunk was received (UTC text).
    pub to: String,
    /// `draft` or `signed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: DatasetState,
}

impl DatasetSummary {
    /// Whether chain index `index` is one of this dataset's chunks.
    pub fn contains(&self, index: u64) -> bool {
        let first = self.first_index.max(0) as u64;
        index >= first && index - first < self.chunk_count.max(0) as u64
    }
}

/// A listing as its page shows it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ListingView {
    /// `ls_…`.
    pub id: String,
    /// The owner's DID (the provider).
    pub owner_did: String,
    /// `dataset` or `subscription`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: ListingKind,
    /// The dataset on sale (empty for a subscription listing).
    pub dataset_id: String,
    /// A subscription listing's terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionTerms>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Domain.
    pub domain: Option<String>,
    /// Schema hint.
    pub schema_hint: Option<String>,
    /// Chain indexes of the sample chunks.
    pub sample_chunk_indexes: Vec<u64>,
    /// The sample chunks whose keys the owner has disclosed (fetchable).
    pub samples_available: Vec<u64>,
    /// License terms (text or object).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub license: Option<Value>,
    /// Price in the rail's base units.
    pub price: String,
    /// Payment rail.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rail: Rail,
    /// Delivery options.
    pub delivery: Vec<String>,
    /// The compliance preset buyers must meet, with its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<crate::compliance::CompliancePreset>,
    /// `0x` + SHA-256 of the preset (what a receipt records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_hash: Option<String>,
    /// `draft`, `published` or `withdrawn`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: ListingState,
    /// Sales as a bucket: `0`, `1-10`, `11-100`, … (never a count of buyers).
    pub sales: String,
    /// Created (UTC).
    pub created_at: String,
    /// Last changed (UTC).
    pub updated_at: String,
    /// Published (UTC), once published.
    pub published_at: Option<String>,
    /// The dataset: root, counts, time span (absent for a subscription
    /// listing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetSummary>,
}

/// `GET /v1/listings?mine=true`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ListingList {
    /// The caller's listings, by id.
    pub items: Vec<ListingView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/listings`: the caller's own listings, a page.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct MyListings {
    /// Must be `true` (the public list is the catalog).
    pub mine: bool,
    /// 1 to 100, default 20.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A Dazaar-style card.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Card {
    /// The listing title.
    pub name: String,
    /// The listing description.
    pub description: String,
    /// The listing id.
    pub id: String,
    /// The owner's DID: who sells.
    pub provider: String,
    /// The Ed25519 public key (hex) that signs every chunk of the chain on
    /// sale: what a buyer checks the data against (Dazaar's seller key).
    pub seller_key: Option<String>,
    /// The machine DID whose chain it is.
    pub machine_did: String,
    /// How to pay, one entry per accepted rail.
    pub payment: Vec<PaymentTerm>,
    /// License terms (text or object), the contract of the sale.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub license: Option<Value>,
    /// Delivery options.
    pub delivery: Vec<String>,
    /// Tags (Dazaar search keywords).
    pub keywords: Vec<String>,
    /// What is sold: the dataset of a `dataset` listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<CardDataset>,
    /// What is sold: the terms of a `subscription` listing (its payment
    /// entries carry `unit`, `interval` and `amount` per period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionTerms>,
    /// The listing page, relative to the server.
    pub url: String,
}

/// One payment entry of a card.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PaymentTerm {
    /// `evm` or `invoice`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub method: RailKind,
    /// The currency: the rail's symbol (or `native`, or the token address)
    /// on EVM; the ISO code for an invoice.
    pub currency: String,
    /// The price in whole units (`1.5`).
    pub amount: String,
    /// The price in base units (`1500000000000000000`).
    pub amount_base_units: String,
    /// Decimals between the two.
    pub decimals: u8,
    /// Where to pay: the EVM address, or the invoicing party.
    pub pay_to: Option<String>,
    /// EVM: the chain id.
    pub chain_id: Option<u64>,
    /// EVM: `native` or the token contract.
    pub token: Option<String>,
    /// Invoice: payment terms.
    pub terms: Option<String>,
    /// A subscription's unit of time (`seconds`), Dazaar's `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// A subscription's period in `unit`s, Dazaar's `interval`: `amount`
    /// pays for this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

/// The dataset commitment a card carries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CardDataset {
    /// `ds_…`.
    pub id: String,
    /// Merkle root over its chunk ids.
    pub merkle_root: String,
    /// Number of chunks.
    pub chunk_count: i64,
    /// The topic.
    pub topic: String,
}

/// `POST /v1/listings/{id}/samples`: plaintext keys of sample chunks.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostSamples {
    /// One entry per sample chunk (1 to 5).
    pub keys: Vec<SampleKey>,
}

/// The key of one sample chunk.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SampleKey {
    /// Chain index of the chunk (one of the listing's `sampleChunkIndexes`).
    pub index: u64,
    /// The 32-byte chunk key, hex.
    pub chunk_key_hex: String,
}

impl std::fmt::Debug for SampleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleKey")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The sample chunks whose keys are disclosed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SamplesDisclosed {
    /// The listing.
    pub listing_id: String,
    /// Chain indexes of the sample chunks whose keys anyone may now have.
    pub samples_available: Vec<u64>,
}

/// The chunk key wrapped for the caller, in the envelope's recipient form.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WrappedKey {
    /// `sample`.
    pub recipient_id: String,
    /// `buyer`.
    pub recipient_type: String,
    /// `x25519-sealedbox`.
    pub algorithm: String,
    /// The caller's X25519 public key, hex.
    pub public_key_hex: String,
    /// The chunk key sealed to it, hex.
    pub wrapped_key_hex: String,
}

/// A sample chunk, ready to decrypt.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SampleView {
    /// The listing.
    pub listing_id: String,
    /// The dataset the chunk belongs to.
    pub dataset_id: String,
    /// The dataset's Merkle root (check the chunk's inclusion proof against it).
    pub merkle_root: String,
    /// Chain index of the chunk.
    pub index: u64,
    /// The chunk envelope as uploaded (`peaq.stream.chunks.v1`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub envelope: JsonDocument,
    /// Where to fetch the ciphertext, relative to the server.
    pub ciphertext_url: String,
    /// The chunk key sealed to `recipientPublicKey`.
    pub wrapped_key: WrappedKey,
}

/// The query of `GET /v1/listings/{id}/samples/{index}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleQuery {
    /// The caller's X25519 public key, 64 hex digits: the chunk key comes
    /// sealed to it.
    pub recipient_public_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_says_which_fields_it_changes() {
        let patch: PatchListing =
            serde_json::from_value(json!({"title": "New", "domain": null})).unwrap();
        assert_eq!(patch.given(), vec!["title", "domain"]);
        assert_eq!(patch.domain, Some(None));
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"title": "New", "domain": null})
        );
        let empty: PatchListing = serde_json::from_value(json!({})).unwrap();
        assert!(empty.given().is_empty());
        assert_eq!(serde_json::to_value(&empty).unwrap(), json!({}));
    }

    #[test]
    fn subscription_listings_name_their_terms() {
        let req: CreateListing = serde_json::from_value(json!({
            "kind": "subscription", "title": "T", "price": "5",
            "rail": {"kind": "invoice", "currency": "EUR"},
            "subscription": {"machineDid": "did:peaq:0x1", "topic": "/gps",
                             "periodSeconds": 86400, "graceSeconds": 3600,
                             "history": {"lastChunks": 100}}
        }))
        .unwrap();
        assert_eq!(req.kind, ListingKind::Subscription);
        let terms = req.subscription.clone().unwrap();
        assert_eq!(terms.history, HistoryPolicy::LastChunks(100));
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["subscription"]["history"], json!({"lastChunks": 100}));
        assert!(back.get("datasetId").is_none());
        for (text, policy) in [("none", HistoryPolicy::None), ("all", HistoryPolicy::All)] {
            let h: HistoryPolicy = serde_json::from_value(json!(text)).unwrap();
            assert_eq!(h, policy);
            assert_eq!(serde_json::to_value(h).unwrap(), json!(text));
        }
        for bad in [
            json!("some"),
            json!({"lastChunks": -1}),
            json!({"last": 1}),
            json!(3),
        ] {
            let e = crate::errors::decode_json::<SubscriptionTerms>(
                json!({"machineDid": "m", "topic": "t", "periodSeconds": 3600, "history": bad})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap_err();
            assert_eq!(e.field, "history", "{bad}");
        }
        let terms: SubscriptionTerms =
            serde_json::from_value(json!({"machineDid": "m", "topic": "t", "periodSeconds": 3600}))
                .unwrap();
        assert_eq!(
            (terms.grace_seconds, terms.history),
            (0, HistoryPolicy::None)
        );
    }

    #[test]
    fn a_listing_request_sends_what_it_names() {
        let req: CreateListing = serde_json::from_value(json!({
            "datasetId": "ds_1", "title": "T", "price": "5",
            "rail": {"kind": "invoice", "currency": "EUR"}
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"datasetId": "ds_1", "title": "T", "price": "5",
                   "rail": {"kind": "invoice", "currency": "EUR"}})
        );
        assert!(serde_json::from_value::<CreateListing>(json!({
            "datasetId": "ds_1", "title": "T", "price": "5", "rail": {}, "colour": 1
        }))
        .is_err());
    }
}
