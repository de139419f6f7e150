//! The release package of a granted order, as `consume --download-url`
//! (ours and the reference's) fetches it: `…/release/manifest.json` lists
//! flat file names — the chunk envelopes `chunk-N.json`, the ciphertexts
//! `chunk-N.bin` and the buyer access files `<key>-<n>.json` — each served
//! at `…/release/<name>`. The manifest is also a publish manifest
//! (`sourceHash`, `totalChunks`) so that both consumers check the
//! reassembled bytes; `sealstreamDataset` names the signed dataset
//! manifest, which sealstream's consumer verifies too (the reference would
//! take any other listed `*.json` for an access file, so it is not listed).
//!
//! For the order's buyer (session) or whoever holds a release link
//! (`?link=`, kept by the reference on every file it fetches).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use sealstream_core::chunk::CHUNK_SCHEMA_VERSION;
use sealstream_core::json::{Map, Value};

use super::db;
use super::grant::dataset_chunk_ids;
use super::links::{self, LinkPurpose};
use super::payment::LinkQuery;
use super::{bought_order, Order, OrderState};
use crate::auth::MaybePrincipal;
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::server::AppState;

/// The name of the dataset manifest in a release package.
pub const DATASET_FILE: &str = "dataset.json";
/// The name of the machine's signed registration in a release package
/// (`sealstream_api::machines::SignedRegistration`): the machine's own
/// signature naming its owner, which lets the buyer's consumer accept the
/// owner's signature of the dataset (docs/security.md).
pub const REGISTRATION_FILE: &str = "registration.json";

async fn granted_order(
    state: &AppState,
    caller: Option<&crate::auth::Principal>,
    id: &str,
    link: Option<&str>,
) -> ApiResult<Order> {
    let mut tx = state.store.begin().await?;
    let order = match (caller, link) {
        (_, Some(token)) => links::open(&mut tx, id, token, LinkPurpose::Release).await?,
        (Some(p), None) => bought_order(&mut tx, id, p).await?,
        (None, None) => return Err(super::not_found(id)),
    };
    tx.commit().await?;
    if order.state != OrderState::Granted {
        return Err(ApiError::conflict(
            Some("state"),
            format!(
                "order {id} is {}: the release package exists once it is granted",
                order.state.as_str()
            ),
        ));
    }
    Ok(order)
}

fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// The release manifest: a publish manifest plus `files` and the order.
#[utoipa::path(get, path = sealstream_api::routes::ORDER_RELEASE_MANIFEST, tag = "orders",
    params(("id" = String, Path, description = "Order id"), LinkQuery),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "`{schemaVersion, sourceHash, totalChunks, chunkSize, machineDid, createdAt, orderId, datasetId, merkleRoot, firstIndex, sealstreamDataset, sealstreamRegistration, files}`"),
        (status = 404, description = "No such order for the caller or link", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not granted yet", body = crate::openapi::ErrorBody)))]
pub async fn manifest(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Response> {
    let order = granted_order(&state, caller.as_ref(), &id, q.link.as_deref()).await?;
    let (dataset, chunk_ids) = dataset_chunk_ids(&state, &order.dataset_id).await?;
    let signed = dataset
        .manifest
        .as_deref()
        .and_then(|m| sealstream_core::dataset::DatasetManifest::parse(m.as_bytes()).ok())
        .ok_or_else(|| {
            ApiError::internal(
                "dataset",
                format!("dataset {} has no signed manifest", dataset.id),
            )
        })?;
    let mut tx = state.store.begin().await?;
    let grant = db::grant(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::internal("grant", format!("granted order {id} has no grant")))?;
    tx.commit().await?;
    let mut files = Vec::with_capacity(chunk_ids.len() * 2 + grant.files.len());
    for (index, _) in &chunk_ids {
        files.push(Value::from(format!("chunk-{index}.json")));
        files.push(Value::from(format!("chunk-{index}.bin")));
    }
    files.extend(grant.files.iter().map(|f| Value::from(f.as_str())));
    let mut m = Map::new();
    m.insert("schemaVersion".into(), Value::from(CHUNK_SCHEMA_VERSION));
    m.insert(
        "sourceHash".into(),
        Value::from(signed.source_hash.as_str()),
    );
    m.insert("totalChunks".into(), Value::from(dataset.chunk_count));
    m.insert("chunkSize".into(), Value::from(signed.chunk_size));
    m.insert(
        "machineDid".into(),
        Value::from(dataset.machine_did.as_str()),
    );
    m.insert("createdAt".into(), Value::from(dataset.created_at.as_str()));
    m.insert("orderId".into(), Value::from(order.id.as_str()));
    m.insert("datasetId".into(), Value::from(dataset.id.as_str()));
    m.insert(
        "merkleRoot".into(),
        Value::from(dataset.merkle_root.as_str()),
    );
    m.insert("firstIndex".into(), Value::from(dataset.first_index));
    m.insert("sealstreamDataset".into(), Value::from(DATASET_FILE));
    m.insert(
        "sealstreamRegistration".into(),
        Value::from(REGISTRATION_FILE),
    );
    m.insert("files".into(), Value::Array(files));
    Ok(json_text(sealstream_core::json::write::to_python_pretty(
        &Value::Object(m),
    )))
}

/// One file of the release package.
#[utoipa::path(get, path = sealstream_api::routes::ORDER_RELEASE_FILE, tag = "orders",
    params(("id" = String, Path, description = "Order id"), ("name" = String, Path, description = "A name the manifest lists, dataset.json or registration.json"), LinkQuery),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The file (JSON, or the ciphertext as application/octet-stream)"),
        (status = 404, description = "No such order, link or file", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not granted yet", body = crate::openapi::ErrorBody)))]
pub async fn file(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath((id, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Response> {
    let order = granted_order(&state, caller.as_ref(), &id, q.link.as_deref()).await?;
    let missing = || ApiError::not_found(format!("no file {name:?} in the release of order {id}"));
    let dataset = crate::datasets::dataset_by_id(&state.store, &order.dataset_id)
        .await?
        .ok_or_else(|| ApiError::internal("order", "dataset missing"))?;
    if name == DATASET_FILE {
        let text = dataset
            .manifest
            .clone()
            .ok_or_else(|| ApiError::internal("dataset", "no signed manifest"))?;
        return Ok(json_text(text));
    }
    if name == REGISTRATION_FILE {
        let registration =
            crate::machines::db::signed_registration(&state.store, &dataset.machine_did)
                .await?
                .ok_or_else(|| ApiError::internal("dataset", "its machine is not registered"))?;
        let text = serde_json::to_string_pretty(&registration)
            .map_err(|e| ApiError::internal("registration", e))?;
        return Ok(json_text(text));
    }
    if let Some(rest) = name.strip_prefix("chunk-") {
        let (number, ext) = rest.split_once('.').ok_or_else(missing)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || number.len() > 19 {
            return Err(missing());
        }
        let index: u64 = number.parse().map_err(|_| missing())?;
        if !dataset.covers(index) || (number.len() > 1 && number.starts_with('0')) {
            return Err(missing());
        }
        let chunk = crate::ingest::db::chunk(
            state.store.pool(),
            &dataset.machine_did,
            &dataset.topic,
            index,
        )
        .await?
        .ok_or_else(|| ApiError::internal("dataset", format!("chunk {index} missing")))?;
        return match ext {
            "json" => Ok(json_text(chunk.envelope)),
            "bin" => crate::ingest::read::ciphertext(&state.objects, &chunk.object_key).await,
            _ => Err(missing()),
        };
    }
    let mut tx = state.store.begin().await?;
    let grant = db::grant(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::internal("grant", "no grant"))?;
    tx.commit().await?;
    if !grant.files.contains(&name) {
        return Err(missing());
    }
    let key = format!("{}/{name}", grant.object_prefix);
    let object = state
        .objects
        .get(&key)
        .await
        .map_err(|e| ApiError::internal("object store", e))?;
    let bytes = object
        .bytes()
        .await
        .map_err(|e| ApiError::internal("object store", e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
