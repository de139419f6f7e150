//! Reading chains back: a machine's topics, a chain's chunk envelopes page
//! by page, one envelope as uploaded, one ciphertext streamed from the
//! object store. For the machine itself, its owner and admins; to anyone
//! else the machine does not exist (404).

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{chunk_path, parse_index, path_error, topic_path};
use crate::auth::Principal;
use crate::chunks::{self, readable_machine, ChainRow, ChunkRow};
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;

/// Chunks per page when `limit` is not given.
pub const DEFAULT_PAGE: u64 = 100;
/// Most chunks per page.
pub const MAX_PAGE: u64 = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/machines/{did}/topics", get(list_topics))
        .route("/v1/machines/{did}/topics/{topic}/chunks", get(list_chunks))
        .route(
            "/v1/machines/{did}/topics/{topic}/chunks/{index}/envelope",
            get(get_envelope),
        )
        .route(
            "/v1/machines/{did}/topics/{topic}/chunks/{index}/ciphertext",
            get(get_ciphertext),
        )
}

/// A chain as listed.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopicSummary {
    /// The topic.
    topic: String,
    /// Chunks held.
    chunk_count: u64,
    /// The last chunk's id.
    head_chunk_id: String,
    /// Ciphertext bytes held.
    bytes: u64,
    /// When the last chunk arrived.
    updated_at: String,
}

impl From<ChainRow> for TopicSummary {
    fn from(c: ChainRow) -> Self {
        TopicSummary {
            topic: c.topic,
            chunk_count: c.chunk_count,
            head_chunk_id: c.head_chunk_id,
            bytes: c.bytes,
            updated_at: c.updated_at,
        }
    }
}

/// A machine's chains.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TopicList {
    /// The machine's DID.
    machine: String,
    /// Its chains, by topic.
    topics: Vec<TopicSummary>,
}

/// The chains of a machine.
#[utoipa::path(get, path = "/v1/machines/{did}/topics", tag = "ingest",
    params(("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")),
    responses(
        (status = 200, description = "The machine's chains", body = TopicList),
        (status = 401, description = "No session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine visible to the caller", body = crate::openapi::ErrorBody),
    ),
    security(("session" = [])))]
pub(crate) async fn list_topics(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<TopicList>> {
    let Path(did) = path.map_err(path_error)?;
    let machine = readable_machine(&state.store, &principal, &did).await?;
    let topics = chunks::chains(&state.store, &machine.did).await?;
    Ok(Json(TopicList {
        machine: machine.did,
        topics: topics.into_iter().map(TopicSummary::from).collect(),
    }))
}

/// Paging of [`list_chunks`].
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChunkPage {
    /// First index (default 0).
    #[param(value_type = Option<u64>)]
    from: Option<String>,
    /// Chunks at most (default 100, at most 1000).
    #[param(value_type = Option<u64>)]
    limit: Option<String>,
}

/// A stored chunk as listed.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChunkSummary {
    /// Position in the chain.
    index: u64,
    /// Chunk id.
    chunk_id: String,
    /// The previous chunk's id.
    previous_chunk_id: Option<String>,
    /// Ciphertext size in bytes.
    size: u64,
    /// `0x` + hex SHA-256 of the ciphertext.
    ciphertext_hash: String,
    /// When it arrived.
    received_at: String,
    /// The envelope as uploaded.
    #[schema(value_type = Object)]
    envelope: serde_json::Value,
}

impl TryFrom<ChunkRow> for ChunkSummary {
    type Error = ApiError;
    fn try_from(c: ChunkRow) -> ApiResult<Self> {
        let envelope = serde_json::from_str(&c.envelope).map_err(|e| {
            ApiError::internal("stored envelope", format!("chunk {}: {e}", c.index))
        })?;
        Ok(ChunkSummary {
            index: c.index,
            chunk_id: c.chunk_id,
            previous_chunk_id: c.previous_chunk_id,
            size: c.size,
            ciphertext_hash: c.ciphertext_hash,
            received_at: c.received_at,
            envelope,
        })
    }
}

/// A page of a chain.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChunkList {
    /// The machine's DID.
    machine: String,
    /// The topic.
    topic: String,
    /// Chunks held in the chain.
    chain_length: u64,
    /// The chunks from `from`, in index order.
    chunks: Vec<ChunkSummary>,
    /// `from` of the next page; `null` at the end of the chain.
    next: Option<u64>,
}

/// A chain's chunks (envelopes and metadata), page by page.
#[utoipa::path(get, path = "/v1/machines/{did}/topics/{topic}/chunks", tag = "ingest",
    params(
        ("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded", example = "/sensor/gps"),
        ChunkPage,
    ),
    responses(
        (status = 200, description = "A page of the chain", body = ChunkList),
        (status = 400, description = "Bad `from` or `limit`", body = crate::openapi::ErrorBody),
        (status = 401, description = "No session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine or topic visible to the caller", body = crate::openapi::ErrorBody),
    ),
    security(("session" = [])))]
pub(crate) async fn list_chunks(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ChunkPage>, QueryRejection>,
) -> ApiResult<Json<ChunkList>> {
    let (did, topic) = topic_path(path)?;
    let Query(page) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let from = match &page.from {
        Some(text) => parse_index(text, "from")?,
        None => 0,
    };
    let limit = match &page.limit {
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("limit", format!("expected an integer from 1 to {MAX_PAGE}"))
            })?,
        None => DEFAULT_PAGE,
    };
    let machine = readable_machine(&state.store, &principal, &did).await?;
    let chain = chunks::chain(&state.store, &machine.did, &topic)
        .await?
        .ok_or_else(|| topic_not_found(&machine.did, &topic))?;
    let rows = chunks::chunk_rows(
        &state.store,
        &machine.did,
        &topic,
        from..from.saturating_add(limit),
    )
    .await?;
    let end = from.saturating_add(rows.len() as u64);
    let next = (end < chain.chunk_count && !rows.is_empty()).then_some(end);
    Ok(Json(ChunkList {
        machine: machine.did,
        topic,
        chain_length: chain.chunk_count,
        chunks: rows
            .into_iter()
            .map(ChunkSummary::try_from)
            .collect::<ApiResult<_>>()?,
        next,
    }))
}

fn topic_not_found(did: &str, topic: &str) -> ApiError {
    ApiError::not_found(format!("topic {topic} of machine {did} not found"))
}

async fn stored_chunk(
    state: &AppState,
    principal: &Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<ChunkRow> {
    let (did, topic, index) = chunk_path(path)?;
    let machine = readable_machine(&state.store, principal, &did).await?;
    chunks::chunk(&state.store, &machine.did, &topic, index)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "chunk {index} of topic {topic} of machine {} not found",
                machine.did
            ))
        })
}

/// One chunk's envelope, exactly as uploaded.
#[utoipa::path(get, path = "/v1/machines/{did}/topics/{topic}/chunks/{index}/envelope", tag = "ingest",
    params(
        ("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded", example = "/sensor/gps"),
        ("index" = u64, Path, description = "The chunk's index"),
    ),
    responses(
        (status = 200, description = "The envelope JSON as uploaded", content_type = "application/json"),
        (status = 401, description = "No session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such chunk visible to the caller", body = crate::openapi::ErrorBody),
    ),
    security(("session" = [])))]
pub(crate) async fn get_envelope(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let chunk = stored_chunk(&state, &principal, path).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], chunk.envelope).into_response())
}

/// One chunk's ciphertext, streamed from the object store.
#[utoipa::path(get, path = "/v1/machines/{did}/topics/{topic}/chunks/{index}/ciphertext", tag = "ingest",
    params(
        ("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded", example = "/sensor/gps"),
        ("index" = u64, Path, description = "The chunk's index"),
    ),
    responses(
        (status = 200, description = "The encrypted bytes", content_type = "application/octet-stream"),
        (status = 401, description = "No session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such chunk visible to the caller", body = crate::openapi::ErrorBody),
    ),
    security(("session" = [])))]
pub(crate) async fn get_ciphertext(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let chunk = stored_chunk(&state, &principal, path).await?;
    let (size, stream) = chunks::ciphertext(&state.objects, &chunk)
        .await
        .map_err(|e| ApiError::internal("object store", format!("{}: {e}", chunk.object_key)))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
