//! Datasets: a contiguous range of one machine's topic chain, committed to by
//! an RFC 6962 Merkle root over its chunk ids (`sealstream.dataset.v1`,
//! docs/formats.md).
//!
//! - `POST /v1/datasets` by the machine's owner, with a chunk range
//!   (`fromIndex`/`toIndex`, inclusive) or a receive-time range
//!   (`fromTime`/`toTime`: the chunks the *server received* at or after
//!   `fromTime` and before `toTime`, by `chunks.received_unix`) makes a
//!   **draft**: the server computes what a manifest commits to and can
//!   compute (root, first and head ids, count, chain key), never
//!   `sourceHash`, which is over plaintext it never sees. With `{manifest}`
//!   instead, a signed manifest is checked against the chain and stored as
//!   **signed** at once.
//! - `PUT /v1/datasets/{id}/manifest` completes a draft with a signed
//!   manifest. Signatures accepted: EIP-191 by the machine or by its
//!   registered owner, Ed25519 by the chain key; every one present must hold.
//! - `GET /v1/datasets`, `GET /v1/datasets/{id}`, and per chunk
//!   `GET /v1/datasets/{id}/proofs/{index}` (`sealstream.inclusion-proof.v1`)
//!   and `GET /v1/datasets/{id}/chunks/{index}/envelope`: for the owner and
//!   admins, and for anyone once the dataset is public (a listing of it is
//!   published, [`set_public`]).

mod check;
pub(crate) mod db;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use rand::RngCore;
use sealstream_core::dataset::{hash_hex, DatasetManifest, InclusionProof, MERKLE_TREE};
use sealstream_core::identity::Did;
use sealstream_core::{merkle, utc};
use serde::{Deserialize, Serialize};

pub use check::{check_manifest, parse_manifest, Expected};
pub use db::{
    chain_length, chunk_ids, dataset_by_id, index_range_received, leaves, list, set_public,
    summarize_range, DatasetRow, DatasetState, DatasetStoreError, RangeSummary, PAGE,
};

pub use sealstream_api::datasets::{
    CreateDataset, DatasetPage, DatasetView, ListParams, SignDataset,
};

use crate::auth::{MaybePrincipal, Principal, Role};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::ingest::db::chunk;
use crate::machines::db::machine;
use crate::machines::MachineView;
use crate::server::AppState;

/// Datasets listed per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 50;
/// The largest `limit` accepted.
pub const MAX_PAGE: u32 = 500;

/// The dataset routes (merged into the router's small-body group).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            sealstream_api::routes::DATASETS,
            post(create_dataset).get(list_datasets),
        )
        .route(sealstream_api::routes::DATASET, get(get_dataset))
        .route(sealstream_api::routes::DATASET_MANIFEST, put(put_manifest))
        .route(sealstream_api::routes::DATASET_PROOF, get(get_proof))
        .route(sealstream_api::routes::DATASET_ENVELOPE, get(get_envelope))
}

impl From<DatasetStoreError> for ApiError {
    fn from(e: DatasetStoreError) -> Self {
        ApiError::internal("datasets", e)
    }
}

/// The view of a row.
pub fn view_of(row: &DatasetRow) -> ApiResult<DatasetView> {
    let manifest = match &row.manifest {
        Some(text) => {
            Some(serde_json::from_str(text).map_err(|e| ApiError::internal("stored manifest", e))?)
        }
        None => None,
    };
    Ok(DatasetView {
        id: row.id.clone(),
        state: row.state,
        owner_did: row.owner_did.clone(),
        machine_did: row.machine_did.clone(),
        topic: row.topic.clone(),
        first_index: row.first_index,
        last_index: row.last_index(),
        chunk_count: row.chunk_count,
        first_chunk_id: row.first_chunk_id.clone(),
        head_chunk_id: row.head_chunk_id.clone(),
        merkle_tree: MERKLE_TREE.into(),
        merkle_root: row.merkle_root.clone(),
        chain_public_key_hex: row.chain_public_key_hex.clone(),
        first_received_at: utc::format_seconds(row.first_received_unix),
        last_received_at: utc::format_seconds(row.last_received_unix),
        public: row.public,
        signer_did: row.signer_did.clone(),
        created_at: row.created_at.clone(),
        manifest,
    })
}

fn json_reply<T: Serialize>(status: StatusCode, value: &T) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::internal("response", e))?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn json_text_reply(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

/// Audit details from serde_json.
fn details(value: serde_json::Value) -> ApiResult<sealstream_core::json::Value> {
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::internal("audit details", e))?;
    sealstream_core::json::parse(&bytes).map_err(|e| ApiError::internal("audit details", e))
}

fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("ds_{}", hex::encode(bytes))
}

/// A path or body text shown back in a message, cut short.
fn shown(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn dataset_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("dataset {} not found", shown(id)))
}

/// The machine `did` when `principal` owns it; 400 for a malformed DID
/// (naming `field`), 404 for a machine that is not there or not theirs.
async fn owned_machine(
    state: &AppState,
    principal: &Principal,
    did: &str,
    field: &str,
) -> ApiResult<MachineView> {
    let parsed = Did::parse(did, field).map_err(|_| {
        ApiError::bad_request(field, "expected did:peaq:0x followed by 40 hex digits")
    })?;
    let found = match machine(&state.store, &parsed.to_string()).await? {
        Some(m) => Some(m),
        None if parsed.to_string() != did => machine(&state.store, did).await?,
        None => None,
    };
    match found {
        Some(m) if principal.owner_access(&m.owner_did)? => Ok(m),
        _ => Err(ApiError::not_found(format!(
            "machine {} not found",
            shown(did)
        ))),
    }
}

/// Whether `caller` may read `row`: a public dataset anyone, others their
/// owner (while an owner) and admins.
fn visible(row: &DatasetRow, caller: Option<&Principal>) -> ApiResult<bool> {
    Ok(row.public
        || match caller {
            Some(p) => p.has(Role::Admin) || p.owner_access(&row.owner_did)?,
            None => false,
        })
}

/// The dataset `id` if `caller` may read it; 404 otherwise.
async fn readable(state: &AppState, id: &str, caller: Option<&Principal>) -> ApiResult<DatasetRow> {
    match dataset_by_id(&state.store, id).await? {
        Some(row) if visible(&row, caller)? => Ok(row),
        _ => Err(dataset_not_found(id)),
    }
}

/// Refuses range fields beside `manifest`.
fn only_manifest(req: &CreateDataset) -> ApiResult<()> {
    let extra = [
        ("machineDid", req.machine_did.is_some()),
        ("topic", req.topic.is_some()),
        ("fromIndex", req.from_index.is_some()),
        ("toIndex", req.to_index.is_some()),
        ("fromTime", req.from_time.is_some()),
        ("toTime", req.to_time.is_some()),
    ];
    match extra.iter().find(|(_, present)| *present) {
        Some((field, _)) => Err(ApiError::bad_request(
            field,
            "not allowed beside manifest (the manifest names its range)",
        )),
        None => Ok(()),
    }
}

fn range_refusal(field: &str, length: u64) -> ApiError {
    ApiError::unprocessable(
        field,
        format!(
            "beyond the chain: it has {length} chunks (indexes 0 to {})",
            length.saturating_sub(1)
        ),
    )
}

/// The inclusive chain index range a range request selects.
async fn requested_range(
    state: &AppState,
    machine: &MachineView,
    topic: &str,
    req: &CreateDataset,
) -> ApiResult<(u64, u64)> {
    let by_index = req.from_index.is_some() || req.to_index.is_some();
    let by_time = req.from_time.is_some() || req.to_time.is_some();
    if by_index && by_time {
        let field = if req.from_time.is_some() {
            "fromTime"
        } else {
            "toTime"
        };
        return Err(ApiError::bad_request(
            field,
            "give fromIndex and toIndex, or fromTime and toTime, not both",
        ));
    }
    let no_chunks = || {
        ApiError::unprocessable(
            "topic",
            format!(
                "machine {} has no chunks on topic {:?}",
                machine.did,
                shown(topic)
            ),
        )
    };
    if by_index {
        let from = req
            .from_index
            .ok_or_else(|| ApiError::bad_request("fromIndex", "required with toIndex"))?;
        let to = req
            .to_index
            .ok_or_else(|| ApiError::bad_request("toIndex", "required with fromIndex"))?;
        if to < from {
            return Err(ApiError::unprocessable(
                "toIndex",
                format!("is before fromIndex {from}: the range is empty"),
            ));
        }
        let length = chain_length(&state.store, &machine.did, topic)
            .await?
            .ok_or_else(no_chunks)?;
        if from >= length {
            return Err(range_refusal("fromIndex", length));
        }
        if to >= length {
            return Err(range_refusal("toIndex", length));
        }
        return Ok((from, to));
    }
    if by_time {
        let time = |field: &str, value: &Option<String>, other: &str| -> ApiResult<i64> {
            let text = value
                .as_deref()
                .ok_or_else(|| ApiError::bad_request(field, format!("required with {other}")))?;
            utc::parse_seconds(text).ok_or_else(|| {
                ApiError::bad_request(field, "expected a UTC time YYYY-MM-DDTHH:MM:SSZ")
            })
        };
        let from = time("fromTime", &req.from_time, "toTime")?;
        let to = time("toTime", &req.to_time, "fromTime")?;
        if to <= from {
            return Err(ApiError::unprocessable(
                "toTime",
                "is not after fromTime: the range is empty",
            ));
        }
        chain_length(&state.store, &machine.did, topic)
            .await?
            .ok_or_else(no_chunks)?;
        return index_range_received(&state.store, &machine.did, topic, from, to)
            .await?
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "toTime",
                    "no chunk of this chain was received at or after fromTime and before toTime: the range is empty",
                )
            });
    }
    Err(ApiError::bad_request(
        "fromIndex",
        "required: fromIndex and toIndex (chain indexes, inclusive), or fromTime and toTime (server receive times), or a signed manifest",
    ))
}

/// A new dataset row over `summary`.
fn new_row(machine: &MachineView, topic: &str, summary: RangeSummary) -> DatasetRow {
    DatasetRow {
        id: new_id(),
        owner_did: machine.owner_did.clone(),
        machine_did: machine.did.clone(),
        topic: topic.to_string(),
        first_index: summary.first_index,
        chunk_count: summary.chunk_count,
        first_chunk_id: summary.first_chunk_id,
        head_chunk_id: summary.head_chunk_id,
        merkle_root: summary.merkle_root,
        chain_public_key_hex: machine.chain_public_key.clone(),
        first_received_unix: summary.first_received_unix,
        last_received_unix: summary.last_received_unix,
        state: DatasetState::Draft,
        manifest: None,
        signer_did: None,
        created_at: sealstream_core::utc::now(),
        public: false,
    }
}

fn expected_of(row: &DatasetRow) -> Expected<'_> {
    Expected {
        machine_did: &row.machine_did,
        owner_did: &row.owner_did,
        topic: &row.topic,
        first_index: row.first_index,
        chunk_count: row.chunk_count,
        first_chunk_id: &row.first_chunk_id,
        head_chunk_id: &row.head_chunk_id,
        merkle_root: &row.merkle_root,
        chain_public_key_hex: &row.chain_public_key_hex,
    }
}

fn create_details(row: &DatasetRow) -> ApiResult<sealstream_core::json::Value> {
    details(serde_json::json!({
        "machineDid": row.machine_did,
        "topic": row.topic,
        "firstIndex": row.first_index,
        "chunkCount": row.chunk_count,
        "merkleRoot": row.merkle_root,
        "state": row.state.as_str(),
    }))
}

fn sign_details(row: &DatasetRow, signer: &str) -> ApiResult<sealstream_core::json::Value> {
    details(serde_json::json!({
        "signerDid": signer,
        "merkleRoot": row.merkle_root,
    }))
}

/// The range of a signed manifest, checked against the chain: the manifest
/// row to store, signed.
async fn signed_from_manifest(
    state: &AppState,
    principal: &Principal,
    value: &serde_json::Value,
) -> ApiResult<DatasetRow> {
    let m: DatasetManifest = parse_manifest(value)?;
    // The owner, or the machine itself (the agent delivers the manifests
    // it signs per window).
    let machine = match Did::parse(&m.machine_did, "manifest.machineDid") {
        Ok(did) if did.to_string() == principal.did && principal.has(Role::Machine) => {
            machine(&state.store, &principal.did)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("machine {} not found", shown(&principal.did)))
                })?
        }
        _ => owned_machine(state, principal, &m.machine_did, "manifest.machineDid").await?,
    };
    let topic = m.topic.clone().ok_or_else(|| {
        ApiError::unprocessable(
            "manifest.topic",
            "required: a dataset is of one topic's chain",
        )
    })?;
    let length = chain_length(&state.store, &machine.did, &topic)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable(
                "manifest.topic",
                format!(
                    "machine {} has no chunks on topic {:?}",
                    machine.did,
                    shown(&topic)
                ),
            )
        })?;
    if m.first_index >= length {
        return Err(range_refusal("manifest.firstIndex", length));
    }
    if m.chunk_count > length - m.first_index {
        return Err(ApiError::unprocessable(
            "manifest.chunkCount",
            format!(
                "beyond the chain: it has {length} chunks, so at most {} from firstIndex {}",
                length - m.first_index,
                m.first_index
            ),
        ));
    }
    let summary = summarize_range(
        &state.store,
        &machine.did,
        &topic,
        m.first_index,
        m.first_index + m.chunk_count - 1,
    )
    .await?;
    let mut row = new_row(&machine, &topic, summary);
    let signer = check_manifest(&m, &expected_of(&row))?;
    row.state = DatasetState::Signed;
    row.manifest = Some(m.to_pretty_json());
    row.signer_did = Some(signer);
    Ok(row)
}

/// Create a dataset: a draft over a chunk or receive-time range, or a
/// signed dataset from a manifest.
#[utoipa::path(post, path = sealstream_api::routes::DATASETS, tag = "datasets",
    request_body = CreateDataset,
    security(("session" = [])),
    responses(
        (status = 201, description = "The dataset: a draft (to complete with PUT …/manifest) or signed", body = DatasetView),
        (status = 400, description = "Malformed request or manifest", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine of the caller's", body = crate::openapi::ErrorBody),
        (status = 422, description = "Empty range, range beyond the chain, or a manifest that does not match the chain (the field is named)", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn create_dataset(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<CreateDataset>,
) -> ApiResult<Response> {
    let row = match &req.manifest {
        Some(value) => {
            only_manifest(&req)?;
            signed_from_manifest(&state, &principal, value.as_value()).await?
        }
        None => {
            let did = req
                .machine_did
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("machineDid", "required"))?;
            let topic = req
                .topic
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("topic", "required"))?;
            let machine = owned_machine(&state, &principal, did, "machineDid").await?;
            let (first, last) = requested_range(&state, &machine, topic, &req).await?;
            let summary = summarize_range(&state.store, &machine.did, topic, first, last).await?;
            new_row(&machine, topic, summary)
        }
    };
    if row.signer_did.is_some() {
        // The same signed dataset again (a redelivery): answer with the one held.
        if let Some(held) = db::signed_twin(&state.store, &row).await? {
            return json_reply(StatusCode::OK, &view_of(&held)?);
        }
    }
    let mut tx = state.store.begin().await?;
    db::insert(&mut tx, &row).await?;
    crate::audit::append(
        &mut tx,
        &principal.did,
        "dataset.create",
        &row.id,
        &create_details(&row)?,
    )
    .await?;
    if let Some(signer) = &row.signer_did {
        crate::audit::append(
            &mut tx,
            &principal.did,
            "dataset.sign",
            &row.id,
            &sign_details(&row, signer)?,
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(
        dataset = %row.id,
        machine = %crate::logs::Pseudonym::of(&row.machine_did),
        topic = %row.topic,
        first_index = row.first_index,
        chunks = row.chunk_count,
        signed = row.signer_did.is_some(),
        "dataset created"
    );
    json_reply(StatusCode::CREATED, &view_of(&row)?)
}

/// Complete a draft with a signed manifest (by the machine, its chain key,
/// or its owner).
#[utoipa::path(put, path = sealstream_api::routes::DATASET_MANIFEST, tag = "datasets",
    params(("id" = String, Path, description = "Dataset id, `ds_…`")),
    request_body = SignDataset,
    security(("session" = [])),
    responses(
        (status = 200, description = "The signed dataset", body = DatasetView),
        (status = 400, description = "Malformed manifest", body = crate::openapi::ErrorBody),
        (status = 403, description = "An admin who is not the owner", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such dataset of the caller's", body = crate::openapi::ErrorBody),
        (status = 409, description = "Already signed", body = crate::openapi::ErrorBody),
        (status = 422, description = "The manifest does not match the draft (the field is named)", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn put_manifest(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SignDataset>,
) -> ApiResult<Response> {
    let mut row = readable(&state, &id, Some(&principal))
        .await
        .and_then(|row| {
            if principal.owns(&row.owner_did) {
                Ok(row)
            } else if principal.has(Role::Admin) {
                Err(ApiError::forbidden(format!(
                    "only the owner of dataset {id} signs its manifest"
                )))
            } else {
                Err(dataset_not_found(&id))
            }
        })?;
    if row.state != DatasetState::Draft {
        return Err(ApiError::conflict(
            Some("manifest"),
            format!("dataset {id} is already signed"),
        ));
    }
    let m = parse_manifest(req.manifest.as_value())?;
    let signer = check_manifest(&m, &expected_of(&row))?;
    let text = m.to_pretty_json();
    let mut tx = state.store.begin().await?;
    if !db::sign_draft(&mut tx, &row.id, &text, &signer).await? {
        return Err(ApiError::conflict(
            Some("manifest"),
            format!("dataset {id} is already signed"),
        ));
    }
    crate::audit::append(
        &mut tx,
        &principal.did,
        "dataset.sign",
        &row.id,
        &sign_details(&row, &signer)?,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(dataset = %row.id, signer = %crate::logs::actor(&signer), "dataset signed");
    row.state = DatasetState::Signed;
    row.manifest = Some(text);
    row.signer_did = Some(signer);
    json_reply(StatusCode::OK, &view_of(&row)?)
}

/// The caller's datasets (every dataset for an admin), newest first.
#[utoipa::path(get, path = sealstream_api::routes::DATASETS, tag = "datasets",
    params(ListParams),
    security(("session" = [])),
    responses(
        (status = 200, description = "A page of datasets", body = DatasetPage),
        (status = 400, description = "Bad paging parameters", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn list_datasets(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "limit",
            format!("between 1 and {MAX_PAGE}"),
        ));
    }
    let offset = params.offset.unwrap_or(0);
    let offset_i64 =
        i64::try_from(offset).map_err(|_| ApiError::bad_request("offset", "too large"))?;
    let owner = if principal.has(Role::Admin) {
        None
    } else {
        Some(principal.did.as_str())
    };
    let mut rows = list(&state.store, owner, i64::from(limit) + 1, offset_i64).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let page = DatasetPage {
        datasets: rows.iter().map(view_of).collect::<ApiResult<_>>()?,
        next_offset: more.then(|| offset + u64::from(limit)),
    };
    json_reply(StatusCode::OK, &page)
}

/// One dataset, with its manifest once signed. The owner and admins see it;
/// anyone does once it is public.
#[utoipa::path(get, path = sealstream_api::routes::DATASET, tag = "datasets",
    params(("id" = String, Path, description = "Dataset id, `ds_…`")),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The dataset", body = DatasetView),
        (status = 401, description = "A session token that is unknown or expired", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such dataset visible to the caller", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn get_dataset(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let row = readable(&state, &id, caller.as_ref()).await?;
    json_reply(StatusCode::OK, &view_of(&row)?)
}

/// The path of a chunk of a dataset (its proof, its envelope).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ChunkPath {
    /// Dataset id, `ds_…`
    id: String,
    /// Chain index of the chunk (firstIndex ≤ index ≤ lastIndex)
    #[param(value_type = u64)]
    index: String,
}

/// The dataset and the chain index `path` names, if `caller` may read the
/// dataset (404 otherwise) and it covers the chunk: 400 naming `index` if
/// it is not a chain index; 404 naming it if the dataset does not cover it.
async fn covered_chunk(
    state: &AppState,
    caller: Option<&Principal>,
    path: &ChunkPath,
) -> ApiResult<(DatasetRow, u64)> {
    let row = readable(state, &path.id, caller).await?;
    let index: u64 = path.index.parse().map_err(|_| {
        ApiError::bad_request("index", "expected a chain index (a non-negative integer)")
    })?;
    if !row.covers(index) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("index"),
            format!(
                "dataset {} has no chunk {index}: it covers chunks {} to {}",
                row.id,
                row.first_index,
                row.last_index()
            ),
        ));
    }
    Ok((row, index))
}

/// The `sealstream.inclusion-proof.v1` proof of one chunk (by chain index)
/// against the dataset's root.
#[utoipa::path(get, path = sealstream_api::routes::DATASET_PROOF, tag = "datasets",
    params(ChunkPath),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "A `sealstream.inclusion-proof.v1` document (docs/formats.md)", content_type = "application/json"),
        (status = 400, description = "`index` is not a number", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such dataset visible to the caller, or a chunk outside it", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn get_proof(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath(path): ApiPath<ChunkPath>,
) -> ApiResult<Response> {
    let (row, index) = covered_chunk(&state, caller.as_ref(), &path).await?;
    let proof = inclusion_proof(&state.store, &row, index).await?;
    let text = sealstream_core::json::canonical::rfc8785(&proof.to_json())
        .map_err(|e| ApiError::internal("proof", e))?;
    Ok(json_text_reply(text))
}

/// The inclusion proof of chain index `index` of `dataset` against its
/// stored root (for other parts: sample chunks, the end-to-end test).
/// `index` must be covered by the dataset.
pub async fn inclusion_proof(
    store: &crate::store::Store,
    dataset: &DatasetRow,
    index: u64,
) -> Result<InclusionProof, DatasetStoreError> {
    let leaves = leaves(store, dataset).await?;
    let leaf_index = index.checked_sub(dataset.first_index).ok_or_else(|| {
        DatasetStoreError::Inconsistent(format!("chunk {index} is not in {}", dataset.id))
    })?;
    let at = usize::try_from(leaf_index)
        .map_err(|_| DatasetStoreError::Inconsistent("index out of range".into()))?;
    let path = merkle::inclusion_proof(&leaves, at).ok_or_else(|| {
        DatasetStoreError::Inconsistent(format!("chunk {index} is not in {}", dataset.id))
    })?;
    let root = hash_hex(&merkle::root(&leaves));
    if !root.eq_ignore_ascii_case(&dataset.merkle_root) {
        return Err(DatasetStoreError::Inconsistent(format!(
            "dataset {}: the chunks held no longer lead to its root",
            dataset.id
        )));
    }
    let chunk_id = chunk(store.pool(), &dataset.machine_did, &dataset.topic, index)
        .await?
        .ok_or_else(|| DatasetStoreError::Inconsistent(format!("chunk {index} is missing")))?
        .chunk_id;
    Ok(InclusionProof {
        tree_size: dataset.chunk_count,
        chunk_index: index,
        leaf_index,
        chunk_id,
        merkle_root: root,
        path,
    })
}

/// The envelope of one chunk of the dataset, so that a verifier can
/// recompute chunk id → leaf → root: as uploaded for the dataset's owner and
/// admins; for anyone else (a public dataset, before purchase) with
/// `plaintextHash` withheld as `""` — the SHA-256 of a chunk's plaintext
/// would let anyone confirm a guessed low-entropy plaintext offline. It is
/// covered by neither the chunk id nor the signature, so the proof still
/// checks; buyers get it in their release package, and listing samples
/// keep it.
#[utoipa::path(get, path = sealstream_api::routes::DATASET_ENVELOPE, tag = "datasets",
    params(ChunkPath),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The chunk's `peaq.stream.chunks.v1` envelope (`plaintextHash` withheld as `\"\"` unless the caller owns the dataset or is an admin)", content_type = "application/json"),
        (status = 400, description = "`index` is not a number", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such dataset visible to the caller, or a chunk outside it", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn get_envelope(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath(path): ApiPath<ChunkPath>,
) -> ApiResult<Response> {
    let (row, index) = covered_chunk(&state, caller.as_ref(), &path).await?;
    let text = chunk(state.store.pool(), &row.machine_did, &row.topic, index)
        .await?
        .map(|chunk| chunk.envelope)
        .ok_or_else(|| {
            ApiError::internal(
                "datasets",
                format!("dataset {}: chunk {index} is missing", row.id),
            )
        })?;
    let full_view = caller
        .as_ref()
        .is_some_and(|p| p.has(Role::Admin) || p.owns(&row.owner_did));
    if full_view {
        return Ok(json_text_reply(text));
    }
    Ok(json_text_reply(withhold_plaintext_hash(&text)?))
}

/// `envelope` (JSON text) with `plaintextHash` set to `""`.
pub(crate) fn withhold_plaintext_hash(envelope: &str) -> ApiResult<String> {
    let mut parsed = sealstream_core::chunk::ChunkEnvelope::parse(envelope.as_bytes())
        .map_err(|e| ApiError::internal("chunks.envelope", e))?;
    parsed.plaintext_hash = String::new();
    Ok(parsed.to_pretty_json())
}
