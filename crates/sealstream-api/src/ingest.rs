//! Ingest: `PUT /v1/machines/{did}/topics/{topic}/chunks/{index}` (one
//! chunk, as `multipart/form-data`: the part [`ENVELOPE_PART`] first, then
//! [`CIPHERTEXT_PART`]), and reading chains back: a machine's topics, a
//! chain's chunks page by page, one envelope, one ciphertext.

use serde::{Deserialize, Serialize};

use crate::document::JsonDocument;

/// The multipart part holding the chunk envelope JSON (first).
pub const ENVELOPE_PART: &str = "envelope";
/// The multipart part holding the ciphertext (after the envelope).
pub const CIPHERTEXT_PART: &str = "ciphertext";

/// The form of an upload, for the API description.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ChunkUpload {
    /// The chunk envelope JSON (`peaq.stream.chunks.v1`) exactly as the
    /// reference writes it; at most 1 MiB. Must be the first part.
    #[schema(value_type = Object)]
    envelope: String,
    /// The encrypted bytes (ciphertext ‖ tag), after the envelope.
    #[schema(value_type = String, format = Binary)]
    ciphertext: Vec<u8>,
}

/// The answer to an upload.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UploadAnswer {
    /// Whether this request stored the chunk (false: it was already stored).
    pub stored: bool,
    /// The chunk's id.
    pub chunk_id: String,
    /// Its index.
    pub index: u64,
    /// Chunks held in the chain after this request.
    pub chain_length: u64,
}

/// A chain as listed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TopicSummary {
    /// The topic.
    pub topic: String,
    /// Chunks held.
    pub chunk_count: u64,
    /// The last chunk's id.
    pub head_chunk_id: String,
    /// Ciphertext bytes held.
    pub bytes: u64,
    /// When the last chunk arrived.
    pub updated_at: String,
}

/// A machine's chains.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicList {
    /// The machine's DID.
    pub machine: String,
    /// Its chains, by topic.
    pub topics: Vec<TopicSummary>,
}

/// Paging of a chain's chunks (the query of
/// `GET /v1/machines/{did}/topics/{topic}/chunks`). The values are read as
/// text so that a malformed one is refused by its name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ChunkPage {
    /// First index (default 0).
    #[cfg_attr(feature = "openapi", param(value_type = Option<u64>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Chunks at most (default 100, at most 1000).
    #[cfg_attr(feature = "openapi", param(value_type = Option<u64>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl ChunkPage {
    /// At most `limit` chunks from index `from`.
    pub fn new(from: u64, limit: u64) -> ChunkPage {
        ChunkPage {
            from: Some(from.to_string()),
            limit: Some(limit.to_string()),
        }
    }
}

/// A stored chunk as listed.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChunkSummary {
    /// Position in the chain.
    pub index: u64,
    /// Chunk id.
    pub chunk_id: String,
    /// The previous chunk's id.
    pub previous_chunk_id: Option<String>,
    /// Ciphertext size in bytes.
    pub size: u64,
    /// `0x` + hex SHA-256 of the ciphertext.
    pub ciphertext_hash: String,
    /// When it arrived.
    pub received_at: String,
    /// The envelope as uploaded.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub envelope: JsonDocument,
}

/// A page of a chain.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChunkList {
    /// The machine's DID.
    pub machine: String,
    /// The topic.
    pub topic: String,
    /// Chunks held in the chain.
    pub chain_length: u64,
    /// The chunks from `from`, in index order.
    pub chunks: Vec<ChunkSummary>,
    /// `from` of the next page; `null` at the end of the chain.
    pub next: Option<u64>,
}
