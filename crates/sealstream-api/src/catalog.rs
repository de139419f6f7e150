//! The public catalog, `GET /v1/catalog`: published listings, searched by
//! words in their title, description, tags and schema hint, filtered by
//! domain, machine, topic, price and time span, sorted by relevance,
//! publication time or price, a page at a time (`limit` ≤ 100 items and a
//! `nextCursor`).

use serde::{Deserialize, Serialize};

use crate::listings::{ListingKind, SubscriptionTerms};
use crate::payments::Rail;

/// One listing in the catalog.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CatalogItem {
    /// `ls_…`.
    pub id: String,
    /// `dataset` or `subscription`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: ListingKind,
    /// A subscription listing's terms (its price is per period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionTerms>,
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
    /// The dataset (empty for a subscription).
    pub dataset_id: String,
    /// Chunks in the dataset (0 for a subscription).
    pub chunk_count: i64,
    /// The dataset's Merkle root (empty for a subscription).
    pub merkle_root: String,
    /// When the dataset's first chunk was received (UTC; empty for a
    /// subscription).
    pub from: String,
    /// When its last chunk was received (UTC; empty for a subscription).
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

/// The query of `GET /v1/catalog`: every parameter optional, sent only
/// when given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogQuery {
    /// Words to find in title, description, tags and schema hint (all must
    /// match).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Only this domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Only datasets of this machine DID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Only datasets of this topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Lowest price, base units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_price: Option<String>,
    /// Highest price, base units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price: Option<String>,
    /// Datasets with data at or after this time (UTC or epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Datasets with data at or before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `relevance`, `newest` or `price`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// `asc` or `desc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// 1 to 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only listings of this kind: `dataset` or `subscription`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only listings paid on this rail: `invoice` or `evm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rail: Option<String>,
    /// Only listings carrying this tag (the case of ASCII letters does not
    /// matter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl CatalogQuery {
    /// The names of the parameters, as sent.
    pub const PARAMS: [&'static str; 15] = [
        "q", "domain", "machine", "topic", "minPrice", "maxPrice", "from", "to", "sort", "order",
        "limit", "cursor", "kind", "rail", "tag",
    ];

    /// The query string (without `?`), parameters percent-encoded.
    pub fn to_query(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = Vec::new();
        for name in Self::PARAMS {
            let text = match value.get(name) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            out.push(format!("{name}={}", crate::routes::encode_segment(&text)));
        }
        out.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_every_field_it_sends() {
        let all = CatalogQuery {
            q: Some("gps fix".into()),
            domain: Some("d".into()),
            machine: Some("did:peaq:0x1".into()),
            topic: Some("/gps".into()),
            min_price: Some("1".into()),
            max_price: Some("2".into()),
            from: Some("2026-01-01T00:00:00Z".into()),
            to: Some("3".into()),
            sort: Some("price".into()),
            order: Some("asc".into()),
            limit: Some(5),
            cursor: Some("c".into()),
            kind: Some("subscription".into()),
            rail: Some("invoice".into()),
            tag: Some("lidar".into()),
        };
        let text = all.to_query();
        for name in CatalogQuery::PARAMS {
            assert!(text.contains(&format!("{name}=")), "{name} in {text}");
        }
        assert!(text.starts_with("q=gps%20fix&domain=d&machine=did%3Apeaq%3A0x1&topic=%2Fgps"));
        assert_eq!(CatalogQuery::default().to_query(), "");
    }
}
