//! Operator keys: an owner who opts in hands the server the X25519 secret
//! of a machine's `operator` recipient, so paid orders of that machine's
//! datasets are granted on confirmation without the owner's grant daemon.
//! The owner's own key never leaves the owner's side.
//!
//! - `PUT /v1/machines/{did}/operator-key` (the machine's owner) registers
//!   the secret; it must be the secret of the `operator` recipient the
//!   machine registered. It is stored sealed (ChaCha20-Poly1305 under the
//!   server's key-encryption key, a file of its own in the data directory,
//!   bound to the machine's DID) and never answered back.
//! - `GET` shows the public key and since when; `DELETE` revokes: the row
//!   is removed and no order is granted with it afterwards.
//! - The granter ([`spawn_granter`]) grants every paid order whose dataset's
//!   machine has an operator key, and every pending pair of the
//!   subscriptions of such a machine's topics (docs/subscriptions.md): woken
//!   when an order or a subscription period is paid, a key is registered or
//!   a chunk of a topic with live subscriptions is stored, and sweeping
//!   every [`SWEEP_EVERY`] so that what was due just before a crash is
//!   granted after the restart. A grant is stored by the same path as an
//!   uploaded one (`grants` keyed by order, `subscription_grants` keyed by
//!   subscription and index), so the granter and a grant daemon racing
//!   grant once.

mod db;
pub mod opened;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde_json::json;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use sealstream_core::access::{access_entry_for, AccessFileBuilder, Buyer};
use sealstream_core::chunk::{recipient_type, ChunkEnvelope};
use sealstream_core::keys::{parse_hex_array, RecipientSecretKey};
use sealstream_core::pool::{default_parallelism, map_in_order};
use sealstream_core::ValidationError;

pub use sealstream_api::machines::{OperatorKeyView, RegisterOperatorKey};

use crate::auth::{audit_details, canonical_did, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::machines::{may_read, MachineView};
use crate::server::AppState;

/// The file name of the key-encryption key in the data directory.
pub const KEK_FILE: &str = "operator-kek";

/// How often the granter sweeps for paid orders when nothing wakes it.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Who the audit log and the grant name as granter.
pub const OPERATOR: &str = "operator";

/// Orders read per page of a sweep.
const SWEEP_LIMIT: i64 = 100;

/// Chunks read from the store per query while granting.
const CHUNK_PAGE: u64 = 1000;

/// The server's key-encryption key for operator secrets (32 bytes). Wiped
/// on drop; `Debug` shows no key material.
pub struct KeyEncryptionKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

/// Domain separation for the sealed secret's associated data.
const AAD_PREFIX: &[u8] = b"sealstream.operator-key.v1\0";

impl KeyEncryptionKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        KeyEncryptionKey(bytes)
    }

    /// 32 bytes as hex (optional `0x`).
    pub fn from_hex(text: &str, field: &str) -> Result<Self, ValidationError> {
        Ok(KeyEncryptionKey(Zeroizing::new(parse_hex_array::<32>(
            text, field,
        )?)))
    }

    /// The key as lowercase hex (the key file form).
    pub fn to_hex_secret(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()))
    }

    /// Seals `secret` for `machine_did`: hex of nonce (12 bytes) ‖
    /// ciphertext ‖ tag. The DID is authenticated, so a sealed secret moved
    /// to another machine's row does not open.
    pub fn seal(&self, machine_did: &str, secret: &RecipientSecretKey) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let plain = Zeroizing::new(
            hex::decode(secret.to_hex_secret().as_bytes()).expect("a key's own hex decodes"),
        );
        let aad = [AAD_PREFIX, machine_did.as_bytes()].concat();
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_ref(),
                    aad: &aad,
                },
            )
            .expect("ChaCha20-Poly1305 seals 32 bytes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// Opens what [`KeyEncryptionKey::seal`] made for `machine_did`;
    /// `None` if it was sealed under another key or for another machine,
    /// or altered.
    pub fn open(&self, machine_did: &str, sealed_hex: &str) -> Option<RecipientSecretKey> {
        let bytes = hex::decode(sealed_hex).ok()?;
        if bytes.len() != 12 + 32 + 16 {
            return None;
        }
        let aad = [AAD_PREFIX, machine_did.as_bytes()].concat();
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    Nonce::from_slice(&bytes[..12]),
                    Payload {
                        msg: &bytes[12..],
                        aad: &aad,
                    },
                )
                .ok()?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Some(RecipientSecretKey::from_bytes(*key))
    }
}

/// The operator-key routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new().route(
        sealstream_api::routes::OPERATOR_KEY,
        get(show).put(register).delete(revoke),
    )
}

/// The machine `did` if the caller owns it; a 403 for those who may see
/// it otherwise (the machine itself, admins); for anyone else the same 404
/// as for an unknown machine.
async fn owned_machine(state: &AppState, caller: &Principal, did: &str) -> ApiResult<MachineView> {
    let did = canonical_did(did, "did")?;
    match crate::machines::db::machine(&state.store, &did).await? {
        Some(m) if caller.owner_access(&m.owner_did)? => Ok(m),
        Some(m) if may_read(caller, &m)? => Err(ApiError::forbidden(
            "only the machine's owner manages its operator key",
        )),
        _ => Err(ApiError::not_found(format!("machine {did} not found"))),
    }
}

/// Registers (or replaces) the operator key of a machine the caller owns.
/// From then on the server grants paid orders of the machine's datasets
/// itself.
#[utoipa::path(put, path = sealstream_api::routes::OPERATOR_KEY, tag = "machines",
    params(("did" = String, Path, description = "The machine, did:peaq:0x…", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")),
    request_body = RegisterOperatorKey,
    security(("session" = [])),
    responses(
        (status = 200, description = "Registered; the secret is not answered back", body = OperatorKeyView),
        (status = 400, description = "Malformed DID or key (field named)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the machine's owner (an admin, the machine)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine owned by the caller", body = crate::openapi::ErrorBody),
        (status = 422, description = "Not the secret of the machine's registered operator recipient", body = crate::openapi::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(did): ApiPath<String>,
    ApiJson(req): ApiJson<RegisterOperatorKey>,
) -> ApiResult<Json<OperatorKeyView>> {
    let machine = owned_machine(&state, &caller, &did).await?;
    let secret = RecipientSecretKey::from_hex(&req.secret_key_hex, "secretKeyHex")
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?;
    drop(req);
    let public_key_hex = secret.public_key().to_hex();
    let operator = machine
        .recipients
        .iter()
        .find(|r| r.recipient_type == recipient_type::OPERATOR)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "did",
                format!("machine {} registered no operator recipient", machine.did),
            )
        })?;
    if !operator
        .public_key_hex
        .eq_ignore_ascii_case(&public_key_hex)
    {
        return Err(ApiError::unprocessable(
            "secretKeyHex",
            format!(
                "not the secret of the machine's operator recipient {}",
                operator.recipient_id
            ),
        ));
    }
    let sealed = state.operator_kek.seal(&machine.did, &secret);
    let now = sealstream_core::utc::now();
    let mut tx = state.store.begin().await?;
    let key = db::StoredKey {
        machine_did: &machine.did,
        owner_did: &machine.owner_did,
        public_key_hex: &public_key_hex,
        sealed_secret: &sealed,
        created_at: &now,
    };
    db::replace(&mut tx, &key).await?;
    let details = audit_details(&json!({
        "recipientId": operator.recipient_id,
        "publicKeyHex": public_key_hex,
    }));
    crate::audit::append(
        &mut tx,
        &caller.did,
        "operator_key.register",
        &machine.did,
        &details,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(machine = %crate::logs::Pseudonym::of(&machine.did), "operator key registered");
    crate::wake::send(&state, crate::wake::Signal::OperatorKeys);
    crate::wake::send(&state, crate::wake::Signal::Grant);
    Ok(Json(OperatorKeyView {
        machine_did: machine.did,
        recipient_id: operator.recipient_id.clone(),
        public_key_hex,
        registered_at: now,
    }))
}

/// The operator key the server holds for a machine the caller owns.
#[utoipa::path(get, path = sealstream_api::routes::OPERATOR_KEY, tag = "machines",
    params(("did" = String, Path, description = "The machine, did:peaq:0x…", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The key's public half", body = OperatorKeyView),
        (status = 403, description = "Not the machine's owner (an admin, the machine)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine owned by the caller, or no operator key", body = crate::openapi::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(did): ApiPath<String>,
) -> ApiResult<Json<OperatorKeyView>> {
    let machine = owned_machine(&state, &caller, &did).await?;
    let (public_key_hex, registered_at) = db::public_key(&state.store, &machine.did)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("machine {} has no operator key", machine.did))
        })?;
    let recipient_id = machine
        .recipients
        .iter()
        .find(|r| r.recipient_type == recipient_type::OPERATOR)
        .map(|r| r.recipient_id.clone())
        .unwrap_or_default();
    Ok(Json(OperatorKeyView {
        machine_did: machine.did,
        recipient_id,
        public_key_hex,
        registered_at,
    }))
}

/// Revokes a machine's operator key: the server forgets it and grants no
/// order with it afterwards (grants issued before stay).
#[utoipa::path(delete, path = sealstream_api::routes::OPERATOR_KEY, tag = "machines",
    params(("did" = String, Path, description = "The machine, did:peaq:0x…", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not the machine's owner (an admin, the machine)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine owned by the caller, or no operator key", body = crate::openapi::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(did): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let machine = owned_machine(&state, &caller, &did).await?;
    let mut tx = state.store.begin().await?;
    let removed = db::delete(&mut tx, &machine.did).await?;
    if !removed {
        tx.rollback().await?;
        return Err(ApiError::not_found(format!(
            "machine {} has no operator key",
            machine.did
        )));
    }
    let details = audit_details(&json!({}));
    crate::audit::append(
        &mut tx,
        &caller.did,
        "operator_key.revoke",
        &machine.did,
        &details,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(machine = %crate::logs::Pseudonym::of(&machine.did), "operator key removed");
    crate::wake::send(&state, crate::wake::Signal::OperatorKeys);
    Ok(StatusCode::NO_CONTENT)
}

/// The granter: a task that grants paid orders with operator keys, woken
/// by `state.grant_wake` and every `config.grant_sweep` ([`SWEEP_EVERY`]
/// by default). With a
/// `grant_batch_window`, orders are granted only once a window boundary
/// (a multiple of the window in Unix time) has passed since the last
/// batch, all together; live subscriptions' chunk keys are granted at
/// once whatever the window.
pub fn spawn_granter(state: AppState) -> tokio::task::JoinHandle<()> {
    let wake: Arc<Notify> = state.grant_wake.clone();
    tokio::spawn(async move {
        let window = state.config.grant_batch_window.as_secs();
        let boundary_after = |unix: i64| -> i64 {
            let w = window.max(1) as i64;
            (unix.div_euclid(w) + 1) * w
        };
        let mut next_batch = boundary_after(sealstream_core::utc::now_unix());
        loop {
            let now = sealstream_core::utc::now_unix();
            let sweep = state.config.grant_sweep;
            if !state
                .leases
                .leading(&state.store, crate::lease::Job::Granter, sweep)
                .await
            {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(sweep) => {}
                }
                continue;
            }
            let orders_due = window == 0 || now >= next_batch;
            let pass = async {
                let mut n = 0;
                if orders_due {
                    n += grant_orders(&state).await?;
                }
                n += grant_topics(&state).await?;
                Ok::<usize, ApiError>(n)
            };
            if let Err(e) = pass.await {
                tracing::warn!("operator granter: {e}");
            }
            if orders_due && window > 0 {
                next_batch = boundary_after(now);
            }
            let mut sleep = state.config.grant_sweep;
            if window > 0 {
                let until = (next_batch - sealstream_core::utc::now_unix()).max(0) as u64;
                sleep = sleep.min(Duration::from_secs(until).max(Duration::from_millis(200)));
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    })
}

/// One sweep over every paid order whose dataset's machine has an operator
/// key, oldest payment first, read in pages of 100: each is granted. An
/// order that fails is logged and tried again on the next sweep; it never
/// holds up the orders behind it. Then every topic with subscriptions of a
/// machine with an operator key: its pending pairs are granted
/// (`grant_topic`). Returns how many orders and subscription chunk keys
/// were granted.
pub async fn grant_once(state: &AppState) -> ApiResult<usize> {
    Ok(grant_orders(state).await? + grant_topics(state).await?)
}

/// The orders part of [`grant_once`]. Orders are granted as many at a time
/// as there are cores, so that one order's store writes overlap another's
/// key work.
async fn grant_orders(state: &AppState) -> ApiResult<usize> {
    use futures_util::StreamExt;
    let mut granted = 0;
    let mut after = (String::new(), String::new());
    loop {
        let rows = db::grantable(&state.store, &after, SWEEP_LIMIT).await?;
        if let Some(last) = rows.last() {
            after = (
                last.paid_at.clone().unwrap_or_default(),
                last.order_id.clone(),
            );
        }
        let more = rows.len() as i64 >= SWEEP_LIMIT;
        let results = futures_util::stream::iter(rows)
            .map(|row| {
                let state = state.clone();
                async move { grant_row(&state, &row).await }
            })
            .buffer_unordered(default_parallelism())
            .collect::<Vec<bool>>()
            .await;
        granted += results.into_iter().filter(|g| *g).count();
        if !more {
            break;
        }
    }
    Ok(granted)
}

/// Grants the paid order of `row` with its machine's operator key; whether
/// it was granted now (failures are logged, for the next sweep).
async fn grant_row(state: &AppState, row: &db::Grantable) -> bool {
    let (id, machine_did) = (&row.order_id, &row.machine_did);
    let Some(secret) = state
        .operator_kek
        .open(machine_did, &row.sealed_secret)
        .map(Arc::new)
    else {
        tracing::error!(
            order = %id,
            machine = %crate::logs::Pseudonym::of(machine_did),
            "the operator key of the machine does not open with this server's key-encryption key"
        );
        return false;
    };
    match grant_order(state, id, &secret).await {
        Ok(granted) => granted,
        Err(e) => {
            tracing::warn!(order = %id, "operator grant failed: {}", e.message);
            false
        }
    }
}

/// The subscriptions part of [`grant_once`].
async fn grant_topics(state: &AppState) -> ApiResult<usize> {
    let mut granted = 0;
    for topic in db::subscribed_topics(&state.store).await? {
        let Some(secret) = state
            .operator_kek
            .open(&topic.machine_did, &topic.sealed_secret)
            .map(Arc::new)
        else {
            tracing::error!(
                machine = %crate::logs::Pseudonym::of(&topic.machine_did),
                "the operator key of the machine does not open with this server's key-encryption key"
            );
            continue;
        };
        granted += grant_topic(state, &topic.machine_did, &topic.topic, &secret).await?;
    }
    Ok(granted)
}

/// Wakes the granter after a chunk of `topic` was stored, if it has
/// subscriptions of the topic to grant (one active or in grace, the
/// machine with an operator key). A failed look-up is logged: the sweep
/// grants the chunk later.
pub(crate) async fn chunk_stored(state: &AppState, machine_did: &str, topic: &str) {
    match db::grants_live(&state.store, machine_did, topic).await {
        Ok(true) => crate::wake::send(state, crate::wake::Signal::Grant),
        Ok(false) => {}
        Err(e) => tracing::warn!("operator granter: subscriptions of a topic: {e}"),
    }
}

/// Pairs of one topic granted in one pass (and one transaction).
const PAIRS_PER_PASS: usize = 5_000;

/// Grants every pending pair of the subscriptions of one topic with the
/// machine's operator secret: the pairs `GET
/// /v1/machines/{did}/topics/{topic}/subscription-grants` lists (decided
/// by [`crate::subscriptions::entitlement::entitled`]), each subscription's
/// in index order, each chunk key opened from the `operator` recipient,
/// checked against its commitment and sealed to the buyer key in force at
/// the chunk's time (on blocking threads, split across the cores), then
/// stored by the path of uploaded grants
/// ([`crate::subscriptions::store_entries_in`]) for all the topic's
/// subscriptions in one transaction per pass: with a thousand subscribers,
/// a chunk costs one commit, not a thousand. A subscription whose chunk
/// key does not open, or whose entries are refused (it changed meanwhile),
/// is logged and left for the next sweep; the others are stored. Returns
/// how many chunk keys were stored.
async fn grant_topic(
    state: &AppState,
    machine_did: &str,
    topic: &str,
    secret: &Arc<RecipientSecretKey>,
) -> ApiResult<usize> {
    use sealstream_api::subscriptions::SubscriptionGrantEntry;
    let mut granted = 0;
    let mut skip: Vec<String> = Vec::new();
    loop {
        // The pending pairs of every subscription of the topic, read in a
        // snapshot (beside the feeds).
        let mut tx = state.store.begin_read().await?;
        let subscriptions: Vec<_> = crate::subscriptions::db::of_topic(&mut tx, machine_did, topic)
            .await?
            .into_iter()
            .filter(|s| !skip.contains(&s.id))
            .collect();
        let (work, more) = crate::subscriptions::pending_of(
            &mut tx,
            &state.grant_marks,
            &subscriptions,
            PAIRS_PER_PASS,
        )
        .await?;
        tx.commit().await?;
        let (mut first, mut last) = (u64::MAX, None);
        for (_, pairs) in &work {
            for p in pairs {
                first = first.min(p.index);
                last = last.max(Some(p.index));
            }
        }
        let Some(last) = last else {
            return Ok(granted);
        };
        let rows = crate::ingest::db::chunk_rows(
            state.store.pool(),
            machine_did,
            topic,
            first..last.saturating_add(1),
        )
        .await?;
        let secret = secret.clone();
        // Each subscription's entries, up to its first chunk that fails.
        let wrapped = tokio::task::spawn_blocking(move || {
            // Each chunk key opened once, whatever the number of
            // subscribers.
            let keys: std::collections::HashMap<u64, Result<OpenedChunk, String>> = rows
                .into_iter()
                .map(|r| (r.index, open_chunk(r.index, &r.envelope, &secret)))
                .collect();
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let per = work.len().div_ceil(threads).max(1);
            std::thread::scope(|scope| {
                let parts: Vec<_> = work
                    .chunks(per)
                    .map(|part| {
                        let keys = &keys;
                        scope.spawn(move || {
                            part.iter()
                                .map(|(id, pairs)| wrap_pairs(id, pairs, keys))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|p| p.join().expect("a grant thread panicked"))
                    .collect::<Vec<_>>()
            })
        })
        .await
        .map_err(|e| ApiError::internal("grant", e))?;
        // Stored for all subscriptions in one transaction.
        let mut batch = Vec::with_capacity(wrapped.len());
        for (id, entries, failure) in wrapped {
            if let Some(e) = failure {
                tracing::warn!(subscription = %id, "operator grant failed: {e}");
                skip.push(id.clone());
            }
            if !entries.is_empty() {
                let entries: Vec<SubscriptionGrantEntry> = entries
                    .into_iter()
                    .map(|(index, e)| SubscriptionGrantEntry::from_access(index, e))
                    .collect();
                batch.push((id, entries));
            }
        }
        let mut tx = state.store.begin().await?;
        let results = crate::subscriptions::store_operator_entries(
            &mut tx,
            &state.grant_marks,
            machine_did,
            topic,
            &batch,
        )
        .await?;
        tx.commit().await?;
        for (id, result) in results {
            match result {
                Ok(stored) if stored.stored > 0 => {
                    granted += stored.stored as usize;
                    crate::wake::send(state, crate::wake::Signal::Granted(id.clone()));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(subscription = %id, "operator grant refused: {}", e.message);
                    skip.push(id);
                }
            }
        }
        if !more {
            return Ok(granted);
        }
    }
}

/// A chunk's envelope and its key, opened with the operator secret.
struct OpenedChunk {
    envelope: ChunkEnvelope,
    key: sealstream_core::chunk::ChunkKey,
}

/// The stored envelope `text` of chunk `index`, parsed, with its key
/// opened from the `operator` recipient and checked against its
/// commitment (or why not).
fn open_chunk(index: u64, text: &str, secret: &RecipientSecretKey) -> Result<OpenedChunk, String> {
    let value =
        sealstream_core::json::parse(text.as_bytes()).map_err(|e| format!("chunk {index}: {e}"))?;
    let envelope = ChunkEnvelope::from_json(&value).map_err(|e| format!("chunk {index}: {e}"))?;
    let key = sealstream_core::access::open_chunk_key(&envelope, recipient_type::OPERATOR, secret)
        .map_err(|e| e.to_string())?;
    Ok(OpenedChunk { envelope, key })
}

/// The entries of one subscription's pending `pairs`, each chunk's key
/// (opened once for all subscribers, `keys`) sealed to the pair's buyer
/// key, up to the first chunk that fails (and why).
fn wrap_pairs(
    id: &str,
    pairs: &[sealstream_api::subscriptions::PendingGrant],
    keys: &std::collections::HashMap<u64, Result<OpenedChunk, String>>,
) -> (
    String,
    Vec<(u64, sealstream_core::access::AccessEntry)>,
    Option<String>,
) {
    let mut entries = Vec::with_capacity(pairs.len());
    for p in pairs {
        let wrapped = match keys.get(&p.index) {
            None => Err(format!("chunk {} missing", p.index)),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(chunk)) => Buyer::new(&p.buyer_id, &p.buyer_public_key_hex)
                .map_err(|e| format!("buyer key: {e}"))
                .map(|buyer| {
                    sealstream_core::access::access_entry(&chunk.envelope, &chunk.key, &buyer)
                }),
        };
        match wrapped {
            Ok(e) => entries.push((p.index, e)),
            Err(e) => return (id.to_string(), entries, Some(e)),
        }
    }
    (id.to_string(), entries, None)
}

/// Grants one paid order with the operator's secret: every chunk key of
/// the dataset unwrapped from the `operator` recipient, checked against
/// its commitment and sealed to the buyer, cut into access files as the
/// reference does. The key work runs on blocking threads, one page of
/// chunks at a time split across the cores, so a large dataset neither
/// stalls the server's request handling nor waits on one core.
async fn grant_order(
    state: &AppState,
    order_id: &str,
    secret: &Arc<RecipientSecretKey>,
) -> ApiResult<bool> {
    let mut tx = state.store.begin().await?;
    let order = crate::orders::db::order(&mut tx, order_id).await?;
    tx.commit().await?;
    let Some(order) = order else {
        return Ok(false);
    };
    if order.state != crate::orders::OrderState::Paid {
        return Ok(false);
    }
    let buyer = Buyer::new(&order.buyer_id, &order.buyer_public_key_hex)
        .map_err(|e| ApiError::internal("order", format!("buyer key: {e}")))?;
    let dataset = crate::datasets::dataset_by_id(&state.store, &order.dataset_id)
        .await?
        .ok_or_else(|| {
            ApiError::internal("order", format!("dataset {} missing", order.dataset_id))
        })?;
    let mut builder = AccessFileBuilder::new(&buyer, state.config.access_file_size)
        .map_err(|e| ApiError::internal("grant", e))?;
    let mut files = Vec::new();
    let operator_hex = secret.public_key().to_hex();
    let kept = if dataset.chunk_count <= opened::MAX_KEPT_CHUNKS {
        match state.opened_keys.get(&dataset.id, &operator_hex) {
            Some(keys) => Some(keys),
            None => {
                let keys = open_dataset(state, &dataset, secret).await?;
                state
                    .opened_keys
                    .insert(&dataset.id, &operator_hex, keys.clone());
                Some(keys)
            }
        }
    } else {
        None
    };
    if let Some(keys) = kept {
        // The kept keys, sealed to the buyer a page at a time.
        let mut start = 0;
        while start < keys.len() {
            let end = (start + CHUNK_PAGE as usize).min(keys.len());
            for entry in seal_page(&keys, start..end, &buyer).await? {
                files.extend(builder.push(entry));
            }
            start = end;
        }
    } else {
        // A dataset too large to keep: each page opened, sealed, and let go.
        let end = dataset.first_index + dataset.chunk_count;
        let mut next = dataset.first_index;
        while next < end {
            let keys = Arc::new(open_page(state, &dataset, secret, next, end).await?);
            next += keys.len() as u64;
            for entry in seal_page(&keys, 0..keys.len(), &buyer).await? {
                files.extend(builder.push(entry));
            }
        }
    }
    files.extend(builder.finish());
    Ok(
        crate::orders::grant::store_grant(state, &order, files, OPERATOR)
            .await?
            .granted,
    )
}

/// The chunk keys of `dataset` from chunk `next`, up to a page and before
/// `end`, in order: their stored envelopes read, and each key opened with
/// the operator `secret` and checked against its commitment, across the
/// cores; an error if chunk `next` is missing or a key does not open.
async fn open_page(
    state: &AppState,
    dataset: &crate::datasets::DatasetRow,
    secret: &Arc<RecipientSecretKey>,
    next: u64,
    end: u64,
) -> ApiResult<Vec<(String, sealstream_core::chunk::ChunkKey)>> {
    let rows = crate::ingest::db::chunk_rows(
        state.store.pool(),
        &dataset.machine_did,
        &dataset.topic,
        next..end.min(next + CHUNK_PAGE),
    )
    .await?;
    let contiguous = rows
        .iter()
        .enumerate()
        .take_while(|(offset, row)| row.index == next + *offset as u64)
        .count();
    if contiguous == 0 {
        return Err(ApiError::internal(
            "grant",
            format!("chunk {next} of dataset {} missing", dataset.id),
        ));
    }
    let envelopes: Vec<(u64, String)> = rows
        .into_iter()
        .take(contiguous)
        .map(|r| (r.index, r.envelope))
        .collect();
    let secret = secret.clone();
    tokio::task::spawn_blocking(move || {
        map_in_order(envelopes, default_parallelism(), |(index, text)| {
            open_chunk(index, &text, &secret).map(|c| (c.envelope.chunk_id, c.key))
        })
    })
    .await
    .map_err(|e| ApiError::internal("grant", e))?
    .into_iter()
    .map(|opened| opened.map_err(|e| ApiError::internal("grant", e)))
    .collect()
}

/// Every chunk key of `dataset`, opened a page at a time ([`open_page`]),
/// in chain order.
async fn open_dataset(
    state: &AppState,
    dataset: &crate::datasets::DatasetRow,
    secret: &Arc<RecipientSecretKey>,
) -> ApiResult<opened::DatasetKeys> {
    let mut keys = Vec::with_capacity(dataset.chunk_count as usize);
    let end = dataset.first_index + dataset.chunk_count;
    let mut next = dataset.first_index;
    while next < end {
        let page = open_page(state, dataset, secret, next, end).await?;
        next += page.len() as u64;
        keys.extend(page);
    }
    Ok(Arc::new(keys))
}

/// The access entries of `keys[range]` for `buyer`: each key sealed to the
/// buyer's key, across the cores, in order.
async fn seal_page(
    keys: &opened::DatasetKeys,
    range: std::ops::Range<usize>,
    buyer: &Buyer,
) -> ApiResult<Vec<sealstream_core::access::AccessEntry>> {
    let (keys, buyer) = (keys.clone(), buyer.clone());
    tokio::task::spawn_blocking(move || {
        map_in_order(
            keys[range].iter().collect(),
            default_parallelism(),
            |(id, key)| access_entry_for(id, key, &buyer),
        )
    })
    .await
    .map_err(|e| ApiError::internal("grant", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_machine_and_key() {
        let kek = KeyEncryptionKey::generate();
        let secret = RecipientSecretKey::generate();
        let sealed = kek.seal("did:peaq:0xA", &secret);
        assert_eq!(sealed.len(), 2 * (12 + 32 + 16));
        let opened = kek.open("did:peaq:0xA", &sealed).unwrap();
        assert_eq!(opened.public_key(), secret.public_key());
        assert!(kek.open("did:peaq:0xB", &sealed).is_none());
        assert!(KeyEncryptionKey::generate()
            .open("did:peaq:0xA", &sealed)
            .is_none());
        let mut bent = sealed.clone().into_bytes();
        bent[40] = if bent[40] == b'0' { b'1' } else { b'0' };
        assert!(kek
            .open("did:peaq:0xA", &String::from_utf8(bent).unwrap())
            .is_none());
        assert!(kek.open("did:peaq:0xA", "zz").is_none());
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(kek.seal("did:peaq:0xA", &secret), sealed);
    }

    #[test]
    fn nothing_secret_in_debug_output() {
        let kek = KeyEncryptionKey::generate();
        let text = format!("{kek:?}");
        assert!(!text.contains(&kek.to_hex_secret()[..16]), "{text}");
        let req = RegisterOperatorKey {
            secret_key_hex: "ab".repeat(32),
        };
        assert!(!format!("{req:?}").contains("abab"));
    }
}
