//! Grants: the seller's access files for a paid order — every chunk key of
//! the dataset re-wrapped to the buyer's X25519 key by the seller's side
//! (the grant daemon) or by the server with an operator key. The server
//! cannot open the wrapped keys; it checks that the files are complete and
//! addressed to this buyer, stores them, and marks the order granted. At
//! most one grant per order: the primary key of `grants` decides, so a
//! daemon restarted mid-upload, or two daemons, never grant twice.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde_json::json;

use sealstream_core::access::{AccessEntry, AccessFile, ACCESS_SCHEMA_VERSION};
use sealstream_core::chunk::{recipient_type, KeyRecipient, WRAP_ALGORITHM};
use sealstream_core::json as cj;

use super::{db, party_order, sold_order, Order, OrderState};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::listings::audit_details;
use crate::server::AppState;

/// Length of a wrapped chunk key: a sealed box of 32 bytes (ephemeral key
/// 32 + tag 16 + key 32), hex.
const WRAPPED_HEX_LEN: usize = 160;

pub use sealstream_api::grants::{GrantView, UploadGrant};

/// The dataset's chunk ids in chain order, with their indexes.
pub(crate) async fn dataset_chunk_ids(
    state: &AppState,
    dataset_id: &str,
) -> ApiResult<(crate::datasets::DatasetRow, Vec<(u64, String)>)> {
    let dataset = crate::datasets::dataset_by_id(&state.store, dataset_id)
        .await?
        .ok_or_else(|| ApiError::internal("order", format!("dataset {dataset_id} missing")))?;
    let ids = crate::datasets::chunk_ids(&state.store, &dataset).await?;
    if ids.len() as u64 != dataset.chunk_count {
        return Err(ApiError::internal(
            "order",
            format!("chunks of dataset {dataset_id} missing"),
        ));
    }
    Ok((dataset, ids))
}

/// Checks uploaded access files against the order and the dataset and
/// returns them as the reference writes them, named `<key>-<n>.json`.
fn check_files(
    order: &Order,
    chunk_ids: &[(u64, String)],
    files: &[sealstream_api::JsonDocument],
) -> ApiResult<Vec<AccessFile>> {
    if files.is_empty() {
        return Err(ApiError::bad_request("files", "at least one access file"));
    }
    let wanted: HashMap<&str, u64> = chunk_ids.iter().map(|(i, id)| (id.as_str(), *i)).collect();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(files.len());
    for (n, file) in files.iter().enumerate() {
        let at = format!("files[{n}]");
        let value = cj::parse(file.as_value().to_string().as_bytes())
            .map_err(|e| ApiError::bad_request(&at, e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::bad_request(&at, "expected an access file object"))?;
        for key in obj.keys() {
            if !["schemaVersion", "buyerPublicKeyHex", "entries"].contains(&key.as_str()) {
                return Err(ApiError::bad_request(
                    &format!("{at}.{key}"),
                    "unknown field",
                ));
            }
        }
        if obj.get("schemaVersion").and_then(cj::Value::as_str) != Some(ACCESS_SCHEMA_VERSION) {
            return Err(ApiError::bad_request(
                &format!("{at}.schemaVersion"),
                format!("expected {ACCESS_SCHEMA_VERSION}"),
            ));
        }
        let key = obj
            .get("buyerPublicKeyHex")
            .and_then(cj::Value::as_str)
            .unwrap_or("");
        if key != order.buyer_public_key_hex {
            return Err(ApiError::unprocessable(
                &format!("{at}.buyerPublicKeyHex"),
                "not the order's buyer key",
            ));
        }
        let entries = obj
            .get("entries")
            .and_then(cj::Value::as_array)
            .ok_or_else(|| ApiError::bad_request(&format!("{at}.entries"), "required array"))?;
        if entries.is_empty() {
            return Err(ApiError::bad_request(
                &format!("{at}.entries"),
                "at least one entry",
            ));
        }
        let mut parsed = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{at}.entries[{i}]");
            let e = entry
                .as_object()
                .ok_or_else(|| ApiError::bad_request(&at, "expected an object"))?;
            if let Some(k) = e.keys().find(|k| *k != "chunkId" && *k != "buyer") {
                return Err(ApiError::bad_request(&format!("{at}.{k}"), "unknown field"));
            }
            let chunk_id = e
                .get("chunkId")
                .and_then(cj::Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request(&format!("{at}.chunkId"), "required string")
                })?;
            let buyer = KeyRecipient::from_json(
                e.get("buyer").unwrap_or(&cj::Value::Null),
                &format!("{at}.buyer"),
            )
            .map_err(|v| ApiError::bad_request(&v.field, v.to_string()))?;
            let Some(index) = wanted.get(chunk_id) else {
                return Err(ApiError::unprocessable(
                    &format!("{at}.chunkId"),
                    format!("chunk {chunk_id} is not in dataset {}", order.dataset_id),
                ));
            };
            if let Some(first) = seen.insert(chunk_id.to_string(), at.clone()) {
                return Err(ApiError::unprocessable(
                    &format!("{at}.chunkId"),
                    format!("chunk {index} is granted twice (also at {first})"),
                ));
            }
            let checks = [
                (
                    buyer.recipient_id == order.buyer_id,
                    "recipientId",
                    "not the order's buyer id",
                ),
                (
                    buyer.recipient_type == recipient_type::BUYER,
                    "recipientType",
                    "expected buyer",
                ),
                (
                    buyer.algorithm == WRAP_ALGORITHM,
                    "algorithm",
                    "expected x25519-sealedbox",
                ),
                (
                    buyer.public_key_hex == order.buyer_public_key_hex,
                    "publicKeyHex",
                    "not the order's buyer key",
                ),
                (
                    buyer.wrapped_key_hex.len() == WRAPPED_HEX_LEN
                        && buyer.wrapped_key_hex.bytes().all(|b| b.is_ascii_hexdigit()),
                    "wrappedKeyHex",
                    "expected a sealed 32-byte key (160 hex digits)",
                ),
            ];
            for (ok, field, message) in checks {
                if !ok {
                    return Err(ApiError::unprocessable(
                        &format!("{at}.buyer.{field}"),
                        message,
                    ));
                }
            }
            parsed.push(AccessEntry {
                chunk_id: chunk_id.to_string(),
                buyer,
            });
        }
        out.push(AccessFile {
            file_name: format!("{}-{}.json", order.buyer_public_key_hex, n + 1),
            buyer_public_key_hex: order.buyer_public_key_hex.clone(),
            entries: parsed,
        });
    }
    if let Some((index, _)) = chunk_ids.iter().find(|(_, id)| !seen.contains_key(id)) {
        return Err(ApiError::unprocessable(
            "files",
            format!(
                "no entry for chunk {index} of dataset {} ({} of {} chunks granted)",
                order.dataset_id,
                seen.len(),
                chunk_ids.len()
            ),
        ));
    }
    Ok(out)
}

/// Stores checked access files for `order` and marks it granted: objects
/// first (under a prefix of their own, so a losing concurrent upload
/// overwrites nothing), then the grant row, the order and the audit event
/// in one transaction. An order granted meanwhile keeps its grant and the
/// new objects are removed.
pub(crate) async fn store_grant(
    state: &AppState,
    order: &Order,
    files: Vec<AccessFile>,
    granted_by: &str,
) -> ApiResult<GrantView> {
    crate::quota::check_free_disk(state)?;
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let prefix = format!("grants/{}/{}", order.id, hex::encode(nonce));
    let mut names = Vec::with_capacity(files.len());
    let mut entries = 0u64;
    for file in &files {
        let key = format!("{prefix}/{}", file.file_name);
        let mut upload = state
            .objects
            .upload(&key)
            .map_err(|e| ApiError::internal("object store", e))?;
        upload
            .write(bytes::Bytes::from(file.to_bytes()))
            .await
            .map_err(|e| ApiError::internal("object store", e))?;
        upload
            .finish()
            .await
            .map_err(|e| ApiError::internal("object store", e))?;
        names.push(file.file_name.clone());
        entries += file.entries.len() as u64;
    }
    let grant = GrantRow {
        order_id: order.id.clone(),
        object_prefix: prefix,
        files: names,
        entries,
        granted_by: granted_by.to_string(),
        granted_at: sealstream_core::utc::now(),
    };
    let mut tx = state.store.begin().await?;
    if !db::insert_grant(&mut tx, &grant).await? {
        tx.rollback().await?;
        remove_objects(state, &grant).await;
        let mut tx = state.store.begin().await?;
        let existing = db::grant(&mut tx, &order.id)
            .await?
            .ok_or_else(|| ApiError::internal("grant", "grant vanished"))?;
        tx.commit().await?;
        return Ok(existing.view(false));
    }
    if !db::mark_granted(&mut tx, &order.id, &grant.granted_at).await? {
        tx.rollback().await?;
        remove_objects(state, &grant).await;
        return Err(ApiError::conflict(
            Some("state"),
            format!("order {} is not paid", order.id),
        ));
    }
    let details = audit_details(json!({
        "files": grant.files.len(),
        "entries": grant.entries,
        "grantedBy": granted_by,
        "buyerPublicKeyHex": order.buyer_public_key_hex,
    }));
    crate::audit::append(&mut tx, granted_by, "grant.issue", &order.id, &details).await?;
    tx.commit().await?;
    tracing::info!(
        order = %order.id,
        entries = grant.entries,
        by = %crate::logs::actor(granted_by),
        "order granted"
    );
    Ok(grant.view(true))
}

/// Removes the objects of a grant that was not stored.
async fn remove_objects(state: &AppState, grant: &GrantRow) {
    for name in &grant.files {
        let _ = state
            .objects
            .delete(&format!("{}/{name}", grant.object_prefix))
            .await;
    }
}

/// A grant as stored: where its access files are and what they hold.
pub(crate) struct GrantRow {
    /// The order granted.
    pub order_id: String,
    /// The objects' key prefix (`grants/<order>/<nonce>`).
    pub object_prefix: String,
    /// The access files' names, under the prefix.
    pub files: Vec<String>,
    /// Access entries, across the files.
    pub entries: u64,
    /// Who granted (the seller's DID, or `operator`).
    pub granted_by: String,
    /// When (UTC).
    pub granted_at: String,
}

impl GrantRow {
    /// The grant as its API view; `granted` says whether this request
    /// stored it.
    pub(crate) fn view(self, granted: bool) -> GrantView {
        GrantView {
            order_id: self.order_id,
            granted,
            files: self.files,
            entries: self.entries,
            granted_by: self.granted_by,
            granted_at: self.granted_at,
        }
    }
}

/// Uploads the access files of a paid order (its seller only). Checked:
/// every file is a `peaq.stream.buyer-access.v1` document for the order's
/// buyer id and key, and together they hold exactly one well-formed entry
/// per chunk of the dataset. The same order again answers the grant held,
/// `granted: false`.
#[utoipa::path(put, path = sealstream_api::routes::ORDER_GRANT, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = UploadGrant,
    security(("session" = [])),
    responses(
        (status = 200, description = "The grant (`granted: false` if it was held already)", body = GrantView),
        (status = 400, description = "Malformed files (field named)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order sold by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not paid", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body larger than `--max-grant-bytes`", body = crate::openapi::ErrorBody),
        (status = 422, description = "Files not for this buyer or not covering the dataset exactly", body = crate::openapi::ErrorBody),
        (status = 507, description = "The server's free-disk floor is reached (`min-free-disk`)", body = crate::openapi::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UploadGrant>,
) -> ApiResult<Json<GrantView>> {
    let mut tx = state.store.begin().await?;
    let order = sold_order(&mut tx, &id, &caller).await?;
    if let Some(sub) = &order.subscription_id {
        return Err(ApiError::conflict(
            Some("orderId"),
            format!(
                "order {id} pays a period of subscription {sub}: its chunk keys are \
                 subscription grants"
            ),
        ));
    }
    if order.state == OrderState::Granted {
        let held = db::grant(&mut tx, &id).await?.ok_or_else(|| {
            ApiError::internal("grant", format!("granted order {id} has no grant"))
        })?;
        tx.commit().await?;
        return Ok(Json(held.view(false)));
    }
    tx.commit().await?;
    if order.state != OrderState::Paid {
        return Err(ApiError::conflict(
            Some("state"),
            format!(
                "order {id} is {}: only paid orders are granted",
                order.state.as_str()
            ),
        ));
    }
    let (_, chunk_ids) = dataset_chunk_ids(&state, &order.dataset_id).await?;
    let files = check_files(&order, &chunk_ids, &req.files)?;
    Ok(Json(store_grant(&state, &order, files, &caller.did).await?))
}

/// The grant of an order, to its buyer or seller.
#[utoipa::path(get, path = sealstream_api::routes::ORDER_GRANT, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The grant", body = GrantView),
        (status = 404, description = "No such order for the caller, or not granted", body = crate::openapi::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<GrantView>> {
    let mut tx = state.store.begin().await?;
    party_order(&mut tx, &id, &caller).await?;
    let held = db::grant(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order {id} is not granted")))?;
    tx.commit().await?;
    Ok(Json(held.view(true)))
}
