//! The public catalog, `GET /v1/catalog`: published listings, searched by
//! words in their title, description, tags and schema hint, filtered by
//! domain, machine, topic, price and time span, sorted by relevance,
//! publication time or price, a page at a time (`limit` ≤ 100 items and a
//! `nextCursor`).

use serde::{Deserialize, Serialize};

use crate::payments::Rail;

/// One listing in the catalog.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CatalogItem {
    /// `ls_…`.
    pub id: String,
    /// Title.
    pub title: String,
    /// The start of the description.
    pub description_excerpt: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Domain.
    pub domain: Option<String>,
    /// The machine whose chain is on sale.
    pub machine_did: String,
    /// Its topic.
    pub topic: String,
    /// Price in the rail's base units.
    pub price: String,
    /// Payment rail.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rail: Rail,
    /// The dataset.
    pub dataset_id: String,
    /// Chunks in the dataset.
    pub chunk_count: i64,
    /// The dataset's Merkle root.
    pub merkle_root: String,
    /// When the dataset's first chunk was received (UTC).
    pub from: String,
    /// When its last chunk was received (UTC).
    pub to: String,
    /// Sales as a bucket (`0`, `1-10`, …).
    pub sales_bucket: String,
    /// When published (UTC).
    pub published_at: Option<String>,
}

/// A page of the catalog.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CatalogPage {
    /// The listings.
    pub items: Vec<CatalogItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}
