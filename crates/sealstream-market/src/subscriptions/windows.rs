//! `GET /v1/subscriptions/{id}/datasets`: the machine-signed datasets (the
//! agent's time windows) of a subscription's topic, to its buyer, so that
//! `sealstream follow` can check each window it received whole against the
//! manifest the machine signed (docs/subscriptions.md, "Following").
//!
//! Only manifests signed by the machine itself are listed (an owner's
//! re-signed or a draft range is not the machine's word), and only those
//! overlapping the chunks granted to the subscription: a buyer learns
//! nothing of the topic beyond its own range but the windows' ids, bounds
//! and commitments.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use sealstream_api::subscriptions::{
    SubscriptionDataset, SubscriptionDatasets, SubscriptionDatasetsQuery,
};

use crate::auth::Principal;
use crate::datasets::db::{row_of, COLUMNS};
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::server::AppState;
use crate::store::Store;

/// Most datasets of one answer.
pub const MAX_LIMIT: u32 = 100;
/// Datasets of one answer unless asked otherwise.
pub const DEFAULT_LIMIT: u32 = 50;

/// The lowest and highest index granted to `subscription_id`.
async fn granted_range(store: &Store, subscription_id: &str) -> ApiResult<Option<(i64, i64)>> {
    let row: (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT MIN(chunk_index), MAX(chunk_index) FROM subscription_grants \
         WHERE subscription_id = $1",
    )
    .bind(subscription_id)
    .fetch_one(store.pool())
    .await?;
    Ok(row.0.zip(row.1))
}

/// The machine-signed datasets of the subscription's topic overlapping the
/// chunks granted to it, by last index.
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTION_DATASETS, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id"),
        SubscriptionDatasetsQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The windows, by last index", body = SubscriptionDatasets),
        (status = 400, description = "Bad `after` or `limit`", body = crate::openapi::ErrorBody),
        (status = 403, description = "The seller", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription of the caller's", body = crate::openapi::ErrorBody)))]
pub async fn datasets(
    State(state): State<AppState>,
    caller: Principal,
    path: Result<Path<String>, PathRejection>,
    ApiQuery(q): ApiQuery<SubscriptionDatasetsQuery>,
) -> ApiResult<Json<SubscriptionDatasets>> {
    let Path(id) = path.map_err(crate::ingest::path_error)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("limit", "expected 1 to 100"));
    }
    let after = match q.after {
        None => -1,
        Some(a) => i64::try_from(a).map_err(|_| ApiError::bad_request("after", "too large"))?,
    };
    let s = super::feed::buyers(&state, &id, &caller).await?;
    let Some((low, high)) = granted_range(&state.store, &s.id).await? else {
        return Ok(Json(SubscriptionDatasets {
            items: Vec::new(),
            more: false,
        }));
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM datasets WHERE machine_did = $1 AND topic = $2 \
         AND state = 'signed' AND manifest IS NOT NULL \
         AND LOWER(signer_did) = LOWER(machine_did) \
         AND first_index <= $3 AND first_index + chunk_count - 1 >= $4 \
         AND first_index + chunk_count - 1 > $5 \
         ORDER BY first_index + chunk_count - 1, id LIMIT $6"
    ))
    .bind(&s.machine_did)
    .bind(&s.topic)
    .bind(high)
    .bind(low)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(state.store.pool())
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let d = row_of(r)?;
        let text = d.manifest.as_deref().unwrap_or_default();
        let manifest = serde_json::from_str(text)
            .map_err(|e| ApiError::internal("stored manifest", format!("{}: {e}", d.id)))?;
        items.push(SubscriptionDataset {
            last_index: d.last_index(),
            dataset_id: d.id,
            first_index: d.first_index,
            manifest: sealstream_api::JsonDocument(manifest),
        });
    }
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Json(SubscriptionDatasets { items, more }))
}
