//! Sample chunks: free previews of a listing. **Their keys are disclosed
//! by design.** The server never has chunk keys, so the owner hands over
//! the plaintext keys of the chosen sample chunks (its client unwraps them
//! with its recipient secret); the server checks each against the chunk
//! envelope's `keyCommitment`, keeps it, and seals it to the X25519 key of
//! whoever asks, exactly as an envelope wraps keys for its recipients, so
//! the caller decrypts with the normal chunk path.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::json;

use sealstream_core::chunk::{ChunkEnvelope, ChunkKey, WRAP_ALGORITHM};
use sealstream_core::keys::{parse_hex_array, RecipientPublicKey, RecipientSecretKey};

use super::db::{self, SampleKeyRow};
use super::{
    audit_details, begin_owned, dataset_of, visible, ListedDataset, Listing, ListingState,
};
use crate::auth::{MaybePrincipal, Principal};
use crate::catalog::QueryParams;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::ingest::db::ChunkRow;
use crate::server::AppState;
use crate::store::Tx;

pub use sealstream_api::listings::{
    PostSamples, SampleKey, SampleView, SamplesDisclosed, WrappedKey,
};

/// A chunk key from its 32 bytes, through core's own unwrap path (seal to
/// a throwaway key, open it), so every later use is core's `ChunkKey`.
fn chunk_key(bytes: &[u8; 32]) -> ChunkKey {
    let throwaway = RecipientSecretKey::generate();
    let sealed = sealstream_core::sealed_box::seal(bytes, throwaway.public_key().as_bytes());
    ChunkKey::unwrap(&hex::encode(sealed), &throwaway).expect("a box sealed here opens")
}

/// The stored chunk `index` of a dataset.
async fn chunk_row(
    tx: &mut Tx,
    dataset: &sealstream_api::listings::DatasetSummary,
    index: u64,
) -> ApiResult<Option<ChunkRow>> {
    Ok(crate::ingest::db::chunk(&mut **tx, &dataset.machine_did, &dataset.topic, index).await?)
}

/// Discloses the keys of sample chunks (owner only). Each key must match
/// its chunk's `keyCommitment`; nothing is stored unless all do.
#[utoipa::path(post, path = sealstream_api::routes::LISTING_SAMPLES, tag = "listings",
    params(("id" = String, Path, description = "Listing id")),
    request_body = PostSamples,
    security(("session" = [])),
    responses(
        (status = 200, description = "The sample chunks now available", body = SamplesDisclosed),
        (status = 400, description = "A field is malformed (named in `field`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such listing of the caller's", body = crate::openapi::ErrorBody),
        (status = 409, description = "The listing is withdrawn", body = crate::openapi::ErrorBody),
        (status = 422, description = "A key does not match its chunk (`keys[i].chunkKeyHex`), or an index is not a sample", body = crate::openapi::ErrorBody)))]
pub async fn disclose(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PostSamples>,
) -> ApiResult<Json<SamplesDisclosed>> {
    if req.keys.is_empty() || req.keys.len() > super::model::MAX_SAMPLES {
        return Err(ApiError::bad_request(
            "keys",
            format!("1 to {} keys", super::model::MAX_SAMPLES),
        ));
    }
    let (mut tx, listing) = begin_owned(&state, &id, &caller, |s| {
        (s == ListingState::Withdrawn).then(|| format!("listing {id} is withdrawn"))
    })
    .await?;
    let dataset = dataset_of(&mut tx, &listing).await?;
    let mut checked = Vec::with_capacity(req.keys.len());
    for (i, entry) in req.keys.iter().enumerate() {
        let index_field = format!("keys[{i}].index");
        let key_field = format!("keys[{i}].chunkKeyHex");
        if req.keys[..i].iter().any(|k| k.index == entry.index) {
            return Err(ApiError::bad_request(&index_field, "duplicate index"));
        }
        if !listing.fields.sample_chunk_indexes.contains(&entry.index) {
            return Err(ApiError::unprocessable(
                &index_field,
                format!(
                    "chunk {} is not a sample chunk of listing {id} (samples: {:?})",
                    entry.index, listing.fields.sample_chunk_indexes
                ),
            ));
        }
        let bytes = parse_hex_array::<32>(&entry.chunk_key_hex, &key_field)
            .map_err(|_| ApiError::bad_request(&key_field, "expected 32 bytes of hex"))?;
        let key = chunk_key(&bytes);
        let stored = chunk_row(&mut tx, &dataset, entry.index)
            .await?
            .ok_or_else(|| {
                ApiError::unprocessable(
                    &index_field,
                    format!(
                        "chunk {} of dataset {} is not stored",
                        entry.index, dataset.id
                    ),
                )
            })?;
        let envelope = ChunkEnvelope::parse(stored.envelope.as_bytes())
            .map_err(|e| ApiError::internal("stored envelope", e))?;
        let commitment = key.commitment();
        if commitment != envelope.encryption.key_commitment {
            return Err(ApiError::unprocessable(
                &key_field,
                format!(
                    "not the key of chunk {}: it does not match the envelope's keyCommitment",
                    entry.index
                ),
            ));
        }
        checked.push((entry.index, hex::encode(bytes), commitment));
    }
    let now = sealstream_core::utc::now();
    for (index, key_hex, commitment) in &checked {
        let key = SampleKeyRow {
            index: *index,
            key_hex,
            commitment,
        };
        db::insert_sample(&mut tx, &id, &key, &now).await?;
    }
    let details = audit_details(json!({
        "samples": checked.iter().map(|(i, _, c)| json!({"index": i, "keyCommitment": c})).collect::<Vec<_>>(),
    }));
    crate::audit::append(
        &mut tx,
        &caller.did,
        "listing.samples.disclose",
        &id,
        &details,
    )
    .await?;
    let samples_available = db::disclosed(&mut tx, &id).await?;
    tx.commit().await?;
    tracing::info!(listing = %id, samples = checked.len(), "sample keys disclosed");
    Ok(Json(SamplesDisclosed {
        listing_id: id,
        samples_available,
    }))
}

fn parse_index(text: &str) -> ApiResult<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|i| *i <= i64::MAX as u64)
        .ok_or_else(|| ApiError::bad_request("index", "expected a chunk index (an integer ≥ 0)"))
}

/// The listing, its dataset and the stored key of sample `index`, if the
/// caller may see the listing and the key is disclosed.
async fn sample(
    tx: &mut Tx,
    id: &str,
    index: u64,
    caller: Option<&Principal>,
) -> ApiResult<(Listing, ListedDataset, String)> {
    let listing = visible(tx, id, caller).await?;
    let key_hex = match db::sample_key(tx, id, index).await? {
        Some(key_hex) if listing.fields.sample_chunk_indexes.contains(&index) => key_hex,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                Some("index"),
                format!("sample chunk {index} of listing {id} not found"),
            ))
        }
    };
    let dataset = dataset_of(tx, &listing).await?;
    Ok((listing, dataset, key_hex))
}

/// A sample chunk: its envelope, where its ciphertext is, and its key
/// sealed to `recipientPublicKey`. Anyone may ask (the key is disclosed by
/// design); the listing must be visible to the caller.
#[utoipa::path(get, path = sealstream_api::routes::LISTING_SAMPLE, tag = "listings",
    params(
        ("id" = String, Path, description = "Listing id"),
        ("index" = u64, Path, description = "Chain index of a sample chunk"),
        ("recipientPublicKey" = String, Query, description = "The caller's X25519 public key, 64 hex digits")),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The sample", body = SampleView),
        (status = 400, description = "`recipientPublicKey` missing or not a usable key, or a bad index", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such listing or sample", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath((id, index)): ApiPath<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<SampleView>> {
    let params = QueryParams::new(query, &["recipientPublicKey"])?;
    let index = parse_index(&index)?;
    let field = "recipientPublicKey";
    let text = params.get(field).ok_or_else(|| {
        ApiError::bad_request(
            field,
            "required: your X25519 public key (64 hex digits), to seal the sample key to",
        )
    })?;
    let recipient = RecipientPublicKey::from_hex(text, field).map_err(|_| {
        ApiError::bad_request(field, "expected 32 bytes of hex (an X25519 public key)")
    })?;
    recipient
        .check_usable(field)
        .map_err(|e| ApiError::bad_request(field, e.to_string()))?;
    let mut tx = state.store.begin().await?;
    let (listing, dataset, key_hex) = sample(&mut tx, &id, index, caller.as_ref()).await?;
    let stored = chunk_row(&mut tx, &dataset, index)
        .await?
        .ok_or_else(|| ApiError::internal("sample", format!("chunk {index} of {id} missing")))?;
    tx.commit().await?;
    let bytes = parse_hex_array::<32>(&key_hex, "chunk_key_hex")
        .map_err(|e| ApiError::internal("stored sample key", e))?;
    let envelope = serde_json::from_str(&stored.envelope)
        .map_err(|e| ApiError::internal("stored envelope", e))?;
    Ok(Json(SampleView {
        listing_id: listing.id.clone(),
        dataset_id: dataset.id.clone(),
        merkle_root: dataset.merkle_root.clone(),
        index,
        envelope,
        ciphertext_url: sealstream_api::routes::listing_sample_ciphertext(&listing.id, index),
        wrapped_key: WrappedKey {
            recipient_id: "sample".into(),
            recipient_type: sealstream_core::chunk::recipient_type::BUYER.into(),
            algorithm: WRAP_ALGORITHM.into(),
            public_key_hex: recipient.to_hex(),
            wrapped_key_hex: chunk_key(&bytes).wrap(&recipient),
        },
    }))
}

/// The ciphertext of a sample chunk, streamed from the object store.
#[utoipa::path(get, path = sealstream_api::routes::LISTING_SAMPLE_CIPHERTEXT, tag = "listings",
    params(
        ("id" = String, Path, description = "Listing id"),
        ("index" = u64, Path, description = "Chain index of a sample chunk")),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The ciphertext (ciphertext ‖ tag)", content_type = "application/octet-stream"),
        (status = 400, description = "A bad index", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such listing or sample", body = crate::openapi::ErrorBody)))]
pub async fn ciphertext(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath((id, index)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let index = parse_index(&index)?;
    let mut tx = state.store.begin().await?;
    let (_, dataset, _) = sample(&mut tx, &id, index, caller.as_ref()).await?;
    let stored = chunk_row(&mut tx, &dataset, index)
        .await?
        .ok_or_else(|| ApiError::internal("sample", format!("chunk {index} of {id} missing")))?;
    tx.commit().await?;
    crate::ingest::read::ciphertext(&state.objects, &stored.object_key).await
}
