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

use super::db::{self, ChainRow, ChunkRow};
use super::{chunk_path, parse_index, path_error, topic_path};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::machines::readable_machine;
use crate::objects::Objects;
use crate::server::AppState;

/// Chunks per page when `limit` is not given.
pub const DEFAULT_PAGE: u64 = 100;
/// Most chunks per page.
pub const MAX_PAGE: u64 = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(sealstream_api::routes::TOPICS, get(list_topics))
        .route(sealstream_api::routes::CHUNKS, get(list_chunks))
        .route(sealstream_api::routes::CHUNK_ENVELOPE, get(get_envelope))
        .route(
            sealstream_api::routes::CHUNK_CIPHERTEXT,
            get(get_ciphertext),
        )
}

pub use sealstream_api::ingest::{ChunkList, ChunkPage, ChunkSummary, TopicList, TopicSummary};

fn topic_summary(c: ChainRow) -> TopicSummary {
    TopicSummary {
        topic: c.topic,
        chunk_count: c.chunk_count,
        head_chunk_id: c.head_chunk_id,
        bytes: c.bytes,
        updated_at: c.updated_at,
    }
}

/// The chains of a machine.
#[utoipa::path(get, path = sealstream_api::routes::TOPICS, tag = "ingest",
    params(("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")),
    responses(
        (status = 200, description = "The machine's chains", body = TopicList),
        (status = 404, description = "No such machine visible to the caller", body = crate::openapi::ErrorBody),
    ),
    security(("session" = [])))]
pub(crate) async fn list_topics(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<TopicList>> {
    let Path(did) = path.map_err(path_error)?;
    let machine = readable_machine(&state, &principal, &did).await?;
    let topics = db::chains(&state.store, &machine.did).await?;
    Ok(Json(TopicList {
        machine: machine.did,
        topics: topics.into_iter().map(topic_summary).collect(),
    }))
}

fn chunk_summary(c: ChunkRow) -> ApiResult<ChunkSummary> {
    let envelope = serde_json::from_str(&c.envelope)
        .map_err(|e| ApiError::internal("stored envelope", format!("chunk {}: {e}", c.index)))?;
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

/// A chain's chunks (envelopes and metadata), page by page.
#[utoipa::path(get, path = sealstream_api::routes::CHUNKS, tag = "ingest",
    params(
        ("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded", example = "/sensor/gps"),
        ChunkPage,
    ),
    responses(
        (status = 200, description = "A page of the chain", body = ChunkList),
        (status = 400, description = "Bad `from` or `limit`", body = crate::openapi::ErrorBody),
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
    let machine = readable_machine(&state, &principal, &did).await?;
    let chain = db::chain(&state.store, &machine.did, &topic)
        .await?
        .ok_or_else(|| topic_not_found(&machine.did, &topic))?;
    let rows = db::chunk_rows(
        state.store.pool(),
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
            .map(chunk_summary)
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
    let machine = readable_machine(state, principal, &did).await?;
    db::chunk(state.store.pool(), &machine.did, &topic, index)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "chunk {index} of topic {topic} of machine {} not found",
                machine.did
            ))
        })
}

/// One chunk's envelope, exactly as uploaded.
#[utoipa::path(get, path = sealstream_api::routes::CHUNK_ENVELOPE, tag = "ingest",
    params(
        ("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded", example = "/sensor/gps"),
        ("index" = u64, Path, description = "The chunk's index"),
    ),
    responses(
        (status = 200, description = "The envelope JSON as uploaded", content_type = "application/json"),
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
#[utoipa::path(get, path = sealstream_api::routes::CHUNK_CIPHERTEXT, tag = "ingest",
    params(
        ("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded", example = "/sensor/gps"),
        ("index" = u64, Path, description = "The chunk's index"),
    ),
    responses(
        (status = 200, description = "The encrypted bytes", content_type = "application/octet-stream"),
        (status = 404, description = "No such chunk visible to the caller", body = crate::openapi::ErrorBody),
    ),
    security(("session" = [])))]
pub(crate) async fn get_ciphertext(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let chunk = stored_chunk(&state, &principal, path).await?;
    ciphertext(&state.objects, &chunk.object_key).await
}

/// The ciphertext of a stored chunk (the object `key`), streamed from the
/// object store as `application/octet-stream` with its length: for the
/// chunk routes, sample chunks and release packages alike. A 500 if the
/// object cannot be read.
pub(crate) async fn ciphertext(objects: &Objects, key: &str) -> ApiResult<Response> {
    let object = objects
        .get(key)
        .await
        .map_err(|e| ApiError::internal("object store", format!("{key}: {e}")))?;
    let size = object.meta.size;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(object.into_stream()),
    )
        .into_response())
}
