//! Datasets: a contiguous range of one machine's topic chain, committed to
//! by a Merkle root over its chunk ids (`sealstream.dataset.v1`).
//! `POST /v1/datasets` (a draft of a range, or a signed manifest),
//! `PUT /v1/datasets/{id}/manifest`, `GET /v1/datasets`,
//! `GET /v1/datasets/{id}`, and per chunk its inclusion proof and envelope
//! (format documents: `sealstream_core::dataset::InclusionProof`,
//! `sealstream_core::chunk::ChunkEnvelope`).

use serde::{Deserialize, Serialize};

use crate::document::JsonDocument;

wire_enum! {
    /// Where a dataset is in its life.
    pub enum DatasetState refuse "expected draft or signed" {
        /// Computed by the server; nobody has signed a manifest for it yet.
        Draft = "draft",
        /// A signed `sealstream.dataset.v1` manifest is stored.
        Signed = "signed",
    }
}

/// `POST /v1/datasets`: a range of a chain (a draft the server computes), or
/// a signed manifest (checked and stored as signed).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateDataset {
    /// The machine (`did:peaq:0x…`), one of the caller's. With a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_did: Option<String>,
    /// The chain's topic. With a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Chain index of the first chunk (inclusive), with `toIndex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_index: Option<u64>,
    /// Chain index of the last chunk (inclusive), with `fromIndex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_index: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SSZ`: the first chunk the server received at or
    /// after this time (server receive time, not capture time), with `toTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_time: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ`: up to the last chunk the server received
    /// before this time (exclusive), with `fromTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_time: Option<String>,
    /// A signed `sealstream.dataset.v1` manifest, alone: its `machineDid`,
    /// `topic`, `firstIndex` and `chunkCount` name the range.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<JsonDocument>,
}

/// `PUT /v1/datasets/{id}/manifest`: the signed manifest of a draft.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignDataset {
    /// A signed `sealstream.dataset.v1` manifest committing to exactly the
    /// draft's range.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: JsonDocument,
}

/// A dataset, as the API shows it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DatasetView {
    /// `ds_` + 16 hex digits.
    pub id: String,
    /// `draft` (computed, unsigned) or `signed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: DatasetState,
    /// The machine's owner.
    pub owner_did: String,
    /// The machine.
    pub machine_did: String,
    /// The chain's topic.
    pub topic: String,
    /// Chain index of the first chunk.
    pub first_index: u64,
    /// Chain index of the last chunk.
    pub last_index: u64,
    /// Chunks covered.
    pub chunk_count: u64,
    /// Id of the first chunk.
    pub first_chunk_id: String,
    /// Id of the last chunk (the manifest's `headChunkId`).
    pub head_chunk_id: String,
    /// `rfc6962-sha256`.
    pub merkle_tree: String,
    /// `0x` + root over the chunk ids.
    pub merkle_root: String,
    /// The chain's Ed25519 public key.
    pub chain_public_key_hex: String,
    /// When the server received the first chunk.
    pub first_received_at: String,
    /// When the server received the last chunk.
    pub last_received_at: String,
    /// Readable by anyone (a listing of it is published).
    pub public: bool,
    /// Who signed the manifest: the owner if the owner signed, else the machine.
    pub signer_did: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// The signed `sealstream.dataset.v1` manifest (absent for a draft).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub manifest: Option<JsonDocument>,
}

/// A page of datasets.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DatasetPage {
    /// Newest first.
    pub datasets: Vec<DatasetView>,
    /// `offset` of the next page, absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

/// Paging of `GET /v1/datasets`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Datasets per page (1 to 500, default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Datasets to skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}
