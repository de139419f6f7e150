//! `PUT /v1/machines/{did}/topics/{topic}/chunks/{index}`: one chunk of a
//! chain, as `multipart/form-data` with the part `envelope` (the envelope
//! JSON as the reference writes it, at most 1 MiB) first and the part
//! `ciphertext` after it.
//!
//! The envelope is checked ([`super::checks`]) and linked to the chain held
//! before a byte of ciphertext is read. The ciphertext then streams to the
//! object store while its SHA-256 is computed; it becomes an object only if
//! the hash is the envelope's `encryptedDataHash`. The chunk row, the chain
//! row and the audit event are written in one transaction that re-checks
//! the chain row (`UPDATE … WHERE chunk_count = expected`), so of two
//! uploads racing for an index one wins and the other is a 409 (or a 200
//! when it was the same chunk). A refused upload leaves no object and no row.

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::Router;
use sealstream_core::chunk::{check_link, ChainState, VerifyReason, TAG_LEN};
use sha2::{Digest, Sha256};

use super::checks::{check_envelope, CheckedEnvelope, MAX_ENVELOPE_BYTES};
use super::db::{self, ChunkRow};
use super::{chunk_path, object_key};
use crate::auth::{same_did, Principal};
use crate::error::{ApiError, ApiResult};
use crate::machines::MachineView;
use crate::objects::Upload;
use crate::server::AppState;

/// The upload route; the server gives it its own body limit and timeout
/// (`chunk_limit`, `upload_timeout`: [`crate::server::limited`]).
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(sealstream_api::routes::CHUNK, put(put_chunk))
}

use sealstream_api::ingest::{ChunkUpload, UploadAnswer, CIPHERTEXT_PART, ENVELOPE_PART};

/// Uploads one chunk of a machine's chain.
#[utoipa::path(put, path = sealstream_api::routes::CHUNK, tag = "ingest",
    params(
        ("did" = String, Path, description = "The machine's DID, `did:peaq:0x…`", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded (`%2Fsensor%2Fgps`)", example = "/sensor/gps"),
        ("index" = u64, Path, description = "The chunk's index; must equal the envelope's `index`"),
    ),
    request_body(content = inline(ChunkUpload), content_type = "multipart/form-data",
        description = "Part `envelope` first, then part `ciphertext`"),
    responses(
        (status = 201, description = "Stored", body = UploadAnswer),
        (status = 200, description = "The same chunk was already stored; nothing written", body = UploadAnswer),
        (status = 400, description = "Malformed path, form or envelope", body = crate::openapi::ErrorBody),
        (status = 403, description = "Neither the machine nor its owner", body = crate::openapi::ErrorBody),
        (status = 404, description = "The machine is not registered", body = crate::openapi::ErrorBody),
        (status = 409, description = "The chunk does not link to the chain held, or its index is taken", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body or envelope too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "Signature, chain key, recipients or ciphertext hash do not check out", body = crate::openapi::ErrorBody),
        (status = 507, description = "The owner's quota (`owner-quota-bytes`, `owner-quota-chunks`) or the server's free-disk floor (`min-free-disk`) is reached", body = crate::openapi::ErrorBody),
    ),
    security(("session" = [])))]
pub(crate) async fn put_chunk(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let (did, topic, index) = chunk_path(path)?;
    let machine = crate::machines::db::machine(&state.store, &did)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("machine {did} is not registered")))?;
    if !same_did(&principal.did, &machine.did) && !principal.owner_access(&machine.owner_did)? {
        return Err(ApiError::forbidden(format!(
            "only machine {did} or its owner may upload its chunks"
        )));
    }
    let mut form = multipart.map_err(|e| {
        ApiError::bad_request(
            "Content-Type",
            format!("expected multipart/form-data: {}", e.body_text()),
        )
    })?;
    let target = Target {
        principal: &principal,
        machine: &machine,
        topic: &topic,
        index,
    };
    match receive(&state, &target, &mut form).await {
        Ok(response) => {
            drain(&mut form).await;
            Ok(response)
        }
        Err(Refusal { error, drain: true }) => {
            // Read the rest, so the client sees the answer rather than a
            // reset connection.
            drain(&mut form).await;
            Err(error)
        }
        Err(Refusal { error, .. }) => Err(error),
    }
}

/// Who uploads what.
struct Target<'a> {
    principal: &'a Principal,
    machine: &'a MachineView,
    topic: &'a str,
    index: u64,
}

/// A refusal, and whether the rest of the body can still be read.
struct Refusal {
    error: ApiError,
    drain: bool,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal { error, drain: true }
    }
}

/// The body stream failed (over the limit, malformed form): nothing more
/// can be read from it.
fn broken_body(e: axum::extract::multipart::MultipartError, limit: usize) -> Refusal {
    let error = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(limit)
    } else {
        ApiError::bad_request(
            "body",
            format!("malformed multipart body: {}", e.body_text()),
        )
    };
    Refusal {
        error,
        drain: false,
    }
}

async fn drain(form: &mut Multipart) {
    while let Ok(Some(mut field)) = form.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// Where the chunk goes relative to the chain held.
enum Link {
    /// It is the next chunk: the chain holds `state.next_index` chunks.
    Next(ChainState),
    /// The same chunk is already stored; the chain holds this many.
    AlreadyStored(u64),
}

async fn receive(
    state: &AppState,
    target: &Target<'_>,
    form: &mut Multipart,
) -> Result<Response, Refusal> {
    let limit = state.config.chunk_limit;
    // 1. The envelope, first.
    let envelope_bytes = {
        let mut field = match form.next_field().await {
            Err(e) => return Err(broken_body(e, limit)),
            Ok(None) => {
                return Err(ApiError::bad_request(
                    "envelope",
                    "the envelope part is missing (send it first, then the ciphertext part)",
                )
                .into())
            }
            Ok(Some(field)) => field,
        };
        match field.name() {
            Some(ENVELOPE_PART) => {}
            Some(CIPHERTEXT_PART) => {
                return Err(ApiError::bad_request(
                    "envelope",
                    "the envelope part must come before the ciphertext part",
                )
                .into())
            }
            other => {
                return Err(ApiError::bad_request(
                    other.unwrap_or("body"),
                    "unexpected part: expected envelope, then ciphertext",
                )
                .into())
            }
        }
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Err(e) => return Err(broken_body(e, limit)),
                Ok(None) => break,
                Ok(Some(piece)) => {
                    if bytes.len() + piece.len() > MAX_ENVELOPE_BYTES {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            Some("envelope"),
                            format!("the envelope is larger than {MAX_ENVELOPE_BYTES} bytes"),
                        )
                        .into());
                    }
                    bytes.extend_from_slice(&piece);
                }
            }
        }
        bytes
    };
    // 2. Everything about it that needs no ciphertext.
    let checked = check_envelope(&envelope_bytes, target.machine, target.index)?;
    let expected = match link(state, target, &checked).await? {
        Link::AlreadyStored(length) => {
            return Ok(answer(StatusCode::OK, false, &checked, length));
        }
        Link::Next(expected) => expected,
    };
    // 3. Room for it: the disk floor, and the owner's quotas (the bytes
    //    left bound the streaming).
    crate::quota::check_free_disk(state)?;
    let quotas = crate::quota::Quotas::of(state);
    let owner = target.machine.owner_did.as_str();
    let usage = db::owner_usage(state.store.pool(), owner)
        .await
        .map_err(ApiError::from)?;
    let room = QuotaRoom {
        left: quotas.room(state, owner, usage)?,
        quotas,
        usage,
    };
    // 4. The ciphertext, streamed to the object store and hashed.
    let key = object_key(
        &target.machine.did,
        target.topic,
        target.index,
        &checked.envelope.chunk_id,
    );
    let upload = state
        .objects
        .upload(&key)
        .map_err(|e| ApiError::internal("object store", e))?;
    let size = receive_ciphertext(state, target, form, upload, &checked, &room).await?;
    // 5. The rows, in one transaction with the audit event (and the quota
    //    checked again with the size, under the owner's lock).
    match commit(state, target, &checked, &key, size, &expected).await {
        Ok(length) => Ok(answer(StatusCode::CREATED, true, &checked, length)),
        Err(Commit::Conflict) => {
            // Another upload took the index first. The same chunk has the
            // same object key (and the same bytes): keep the object.
            let winner = db::chunk(
                state.store.pool(),
                &target.machine.did,
                target.topic,
                target.index,
            )
            .await
            .map_err(ApiError::from)?;
            if winner.is_some_and(|r| r.object_key == key) {
                let length = db::chain(&state.store, &target.machine.did, target.topic)
                    .await
                    .map_err(ApiError::from)?
                    .map_or(0, |c| c.chunk_count);
                return Ok(answer(StatusCode::OK, false, &checked, length));
            }
            remove_object(state, &key).await;
            Err(ApiError::conflict(
                Some("envelope.index"),
                format!(
                    "another chunk was stored at index {} while this one was uploaded",
                    target.index
                ),
            )
            .into())
        }
        Err(Commit::Failed(e)) => {
            remove_object(state, &key).await;
            Err(e.into())
        }
    }
}

/// The owner's quota room when the upload started.
struct QuotaRoom {
    quotas: crate::quota::Quotas,
    usage: crate::quota::Usage,
    /// Ciphertext bytes the owner may still store.
    left: u64,
}

/// Streams the `ciphertext` part into `upload`, hashing it; the object is
/// completed only if the hash is the envelope's, nothing follows the part
/// and it fits in the owner's bytes left. Returns the size.
async fn receive_ciphertext(
    state: &AppState,
    target: &Target<'_>,
    form: &mut Multipart,
    mut upload: Upload,
    checked: &CheckedEnvelope,
    room: &QuotaRoom,
) -> Result<u64, Refusal> {
    let limit = state.config.chunk_limit;
    let mut hasher = Sha256::new();
    {
        let mut field = match form.next_field().await {
            Err(e) => {
                upload.abort().await;
                return Err(broken_body(e, limit));
            }
            Ok(None) => {
                upload.abort().await;
                return Err(ApiError::bad_request(
                    "ciphertext",
                    "the ciphertext part is missing (after the envelope part)",
                )
                .into());
            }
            Ok(Some(field)) => field,
        };
        if field.name() != Some(CIPHERTEXT_PART) {
            let name = field.name().unwrap_or("body").to_string();
            upload.abort().await;
            return Err(ApiError::bad_request(
                &name,
                "unexpected part: expected ciphertext after the envelope",
            )
            .into());
        }
        loop {
            match field.chunk().await {
                Err(e) => {
                    upload.abort().await;
                    return Err(broken_body(e, limit));
                }
                Ok(None) => break,
                Ok(Some(piece)) => {
                    if upload.written() + piece.len() as u64 > room.left {
                        upload.abort().await;
                        return Err(room
                            .quotas
                            .bytes_refusal(
                                state,
                                &target.machine.owner_did,
                                room.usage,
                                Some(format!(
                                    "this chunk is larger than the {} bytes left",
                                    room.left
                                )),
                            )
                            .into());
                    }
                    hasher.update(&piece);
                    if let Err(e) = upload.write(piece).await {
                        upload.abort().await;
                        return Err(ApiError::internal("object store", e).into());
                    }
                }
            }
        }
    }
    match form.next_field().await {
        Ok(None) => {}
        Ok(Some(field)) => {
            let name = field.name().unwrap_or("body").to_string();
            upload.abort().await;
            return Err(
                ApiError::bad_request(&name, "unexpected part after the ciphertext").into(),
            );
        }
        Err(e) => {
            upload.abort().await;
            return Err(broken_body(e, limit));
        }
    }
    let hash = format!("0x{}", hex::encode(hasher.finalize()));
    if hash != checked.envelope.encrypted_data_hash {
        upload.abort().await;
        return Err(ApiError::unprocessable(
            "ciphertext",
            "its SHA-256 is not the envelope's encryptedDataHash",
        )
        .into());
    }
    if upload.written() < TAG_LEN as u64 {
        upload.abort().await;
        return Err(ApiError::unprocessable(
            "ciphertext",
            format!("shorter than the {TAG_LEN}-byte authentication tag: not a ciphertext"),
        )
        .into());
    }
    upload
        .finish()
        .await
        .map_err(|e| ApiError::internal("object store", e).into())
}

async fn remove_object(state: &AppState, key: &str) {
    if let Err(e) = state.objects.delete(key).await {
        tracing::error!(key, "cannot remove the object of a refused upload: {e}");
    }
}

/// Checks the envelope against the chain held: the next chunk, or the
/// same chunk again.
async fn link(state: &AppState, target: &Target<'_>, checked: &CheckedEnvelope) -> ApiResult<Link> {
    let envelope = &checked.envelope;
    let chain = db::chain(&state.store, &target.machine.did, target.topic).await?;
    let held = chain.as_ref().map_or(0, |c| c.chunk_count);
    if envelope.index < held {
        let stored = db::chunk(
            state.store.pool(),
            &target.machine.did,
            target.topic,
            envelope.index,
        )
        .await?;
        return match stored {
            Some(row) if row.chunk_id == envelope.chunk_id => Ok(Link::AlreadyStored(held)),
            Some(row) => Err(ApiError::conflict(
                Some("envelope.index"),
                format!(
                    "index {} is taken by chunk {}; the chain holds {held} chunks",
                    envelope.index, row.chunk_id
                ),
            )),
            None => Err(ApiError::internal(
                "chain",
                format!("chunk {} below the head is missing", envelope.index),
            )),
        };
    }
    if db::chunk_id_held(&state.store, &envelope.chunk_id).await? {
        return Err(copied_chunk(target));
    }
    let expected = ChainState {
        next_index: held,
        previous_chunk_id: chain.map(|c| c.head_chunk_id),
    };
    check_link(&expected, envelope).map_err(|reason| match reason {
        VerifyReason::IndexNotSequential { .. } => ApiError::conflict(
            Some("envelope.index"),
            format!(
                "the chain holds {held} chunks: the next chunk has index {held}, not {}",
                envelope.index
            ),
        ),
        VerifyReason::FirstHasPrevious => ApiError::conflict(
            Some("envelope.previousChunkId"),
            "must be null for the first chunk of a chain",
        ),
        _ => ApiError::conflict(
            Some("envelope.previousChunkId"),
            format!(
                "does not link to the chain head {}",
                expected.previous_chunk_id.as_deref().unwrap_or("(none)")
            ),
        ),
    })?;
    Ok(Link::Next(expected))
}

/// A chunk already held elsewhere in the market (another machine's chain,
/// or another topic): a copy, refused.
fn copied_chunk(target: &Target<'_>) -> ApiError {
    tracing::warn!(
        principal = %target.principal.did,
        machine = %target.machine.did,
        "chunk upload refused: the chunk id is already held under another chain"
    );
    ApiError::conflict(
        Some("envelope.chunkId"),
        "this chunk is already held under another machine or topic",
    )
}

enum Commit {
    /// The chain moved since [`link`] looked.
    Conflict,
    /// The database failed.
    Failed(ApiError),
}

impl From<ApiError> for Commit {
    fn from(e: ApiError) -> Self {
        Commit::Failed(e)
    }
}

impl From<crate::store::DbError> for Commit {
    fn from(e: crate::store::DbError) -> Self {
        Commit::Failed(e.into())
    }
}

impl From<sqlx::Error> for Commit {
    fn from(e: sqlx::Error) -> Self {
        Commit::Failed(e.into())
    }
}

impl From<crate::store::StoreError> for Commit {
    fn from(e: crate::store::StoreError) -> Self {
        Commit::Failed(e.into())
    }
}

impl From<crate::audit::AppendError> for Commit {
    fn from(e: crate::audit::AppendError) -> Self {
        Commit::Failed(e.into())
    }
}

/// Inserts the chunk row, moves the chain row on from `expected` (or
/// creates it), and appends `chunk.ingest`, in one transaction. Returns the
/// chain's new length.
async fn commit(
    state: &AppState,
    target: &Target<'_>,
    checked: &CheckedEnvelope,
    key: &str,
    size: u64,
    expected: &ChainState,
) -> Result<u64, Commit> {
    let envelope = &checked.envelope;
    let did = target.machine.did.as_str();
    i64::try_from(size).map_err(|_| ApiError::internal("chunk size", size))?;
    i64::try_from(envelope.index)
        .map_err(|_| ApiError::bad_request("envelope.index", "too large"))?;
    // One reading of the clock for both forms of the chunk's time.
    let received_unix = sealstream_core::utc::now_unix();
    let chunk = ChunkRow {
        index: envelope.index,
        chunk_id: envelope.chunk_id.clone(),
        previous_chunk_id: envelope.previous_chunk_id.clone(),
        envelope: checked.text.clone(),
        object_key: key.to_string(),
        size,
        ciphertext_hash: envelope.encrypted_data_hash.clone(),
        received_at: sealstream_core::utc::format_seconds(received_unix),
        received_unix,
    };
    let mut tx = state.store.begin().await?;
    let owner = target.machine.owner_did.as_str();
    db::lock_owner(&mut tx, state.store.engine(), owner).await?;
    let usage = db::owner_usage(&mut *tx, owner).await?;
    crate::quota::Quotas::of(state).admit(state, owner, usage, size)?;
    let head = expected.previous_chunk_id.as_deref();
    if !db::advance_chain(&mut tx, did, target.topic, head, &chunk).await? {
        return Err(Commit::Conflict);
    }
    // The chain row moved, so the index is ours; a conflict here is the
    // chunk id, stored under another machine meanwhile.
    if !db::insert_chunk(&mut tx, did, target.topic, &chunk).await? {
        return Err(Commit::Failed(copied_chunk(target)));
    }
    let details = serde_json::json!({
        "chunkId": envelope.chunk_id,
        "size": size,
        "ciphertextHash": envelope.encrypted_data_hash,
        // The chunk's time for subscriptions (t(c), docs/subscriptions.md):
        // taken before the transaction, so it may be a second before `at`.
        "acceptedAt": chunk.received_at,
    });
    let details = sealstream_core::json::parse(details.to_string().as_bytes())
        .map_err(|e| ApiError::internal("audit details", e))?;
    crate::audit::append(
        &mut tx,
        &target.principal.did,
        "chunk.ingest",
        &format!("{did} {} {}", target.topic, envelope.index),
        &details,
    )
    .await?;
    tx.commit().await?;
    crate::wake::send(state, crate::wake::Signal::Ingested);
    crate::operator_key::chunk_stored(state, did, target.topic).await;
    tracing::debug!(
        machine = %crate::logs::Pseudonym::of(did),
        topic = target.topic,
        index = envelope.index,
        bytes = size,
        "chunk stored"
    );
    Ok(envelope.index + 1)
}

fn answer(status: StatusCode, stored: bool, checked: &CheckedEnvelope, length: u64) -> Response {
    let body = UploadAnswer {
        stored,
        chunk_id: checked.envelope.chunk_id.clone(),
        index: checked.envelope.index,
        chain_length: length,
    };
    (status, axum::Json(body)).into_response()
}
