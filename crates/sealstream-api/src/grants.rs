//! Grants: `PUT /v1/orders/{id}/grant` (the seller's grant daemon uploads
//! the buyer access files of a paid order) and `GET /v1/orders/{id}/grant`.

use serde::{Deserialize, Serialize};

use crate::document::JsonDocument;

/// `PUT /v1/orders/{id}/grant`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UploadGrant {
    /// The buyer access files (`peaq.stream.buyer-access.v1` documents), in
    /// order; together they hold exactly one entry per chunk of the dataset.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub files: Vec<JsonDocument>,
}

/// A stored grant.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    /// The order.
    pub order_id: String,
    /// `false` when the order was already granted (nothing changed).
    pub granted: bool,
    /// The access files' names in the release package.
    pub files: Vec<String>,
    /// Entries (chunks) granted.
    pub entries: u64,
    /// Who granted: the seller's DID or `operator`.
    pub granted_by: String,
    /// When (UTC).
    pub granted_at: String,
}
