//! The dispute routes: `GET|POST /v1/orders/{id}/dispute` and
//! `POST /v1/orders/{id}/dispute/resolve`.

use axum::extract::State;
use axum::Json;
use serde_json::json;

use super::db;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::evm::escrow::{order_key, resolve_call, DealState};
use crate::orders::{db as orders_db, Order};
use crate::server::AppState;
use sealstream_api::disputes::{
    self, DisputeEvidence, EscrowState, EscrowView, EvidenceError, EvidenceKind, ResolveDispute,
};

fn no_escrow(id: &str) -> ApiError {
    ApiError::conflict(
        Some("orderId"),
        format!("order {id} is not paid into escrow"),
    )
}

/// The escrow of `order`, or a 409.
async fn escrow_of(state: &AppState, order: &Order) -> ApiResult<db::Escrow> {
    let mut tx = state.store.begin().await?;
    let escrow = db::escrow(&mut tx, &order.id).await?;
    tx.commit().await?;
    escrow.ok_or_else(|| no_escrow(&order.id))
}

/// The order for its buyer, its seller, an arbiter or an admin (404
/// otherwise, as for an order that does not exist).
async fn visible_order(state: &AppState, id: &str, caller: &Principal) -> ApiResult<Order> {
    let mut tx = state.store.begin().await?;
    let order = orders_db::order(&mut tx, id).await?;
    tx.commit().await?;
    match order {
        Some(o)
            if caller.has(Role::Arbiter) || caller.has(Role::Admin) || o.is_party(caller)? =>
        {
            Ok(o)
        }
        _ => Err(crate::orders::not_found(id)),
    }
}

/// An escrowed order's escrow: its state, deadline, evidence verdict and
/// split. For the buyer, the seller, arbiters and admins.
#[utoipa::path(get, path = sealstream_api::routes::ORDER_DISPUTE, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The escrow", body = EscrowView),
        (status = 404, description = "No such order for the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not paid into escrow", body = crate::openapi::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EscrowView>> {
    let order = visible_order(&state, &id, &caller).await?;
    Ok(Json(escrow_of(&state, &order).await?.view()))
}

/// The buyer disputes an escrowed payment within its window, with
/// evidence (`sealstream.dispute-evidence.v1`). The evidence is checked at
/// once, offline and against what the market served; the escrow becomes
/// `disputed` with the verdict. A valid fault is refunded in full by the
/// escrow job once the dispute is also on chain (the buyer's
/// `dispute(orderKey, evidenceHash)`); anything else waits for an arbiter
/// or lapses at the arbitration deadline.
#[utoipa::path(post, path = sealstream_api::routes::ORDER_DISPUTE, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = DisputeEvidence,
    security(("session" = [])),
    responses(
        (status = 200, description = "The escrow, disputed, with the checker's verdict", body = EscrowView),
        (status = 400, description = "Malformed evidence (field named)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order bought by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not in escrow, not held, or the window has passed", body = crate::openapi::ErrorBody),
        (status = 502, description = "The chain's node did not answer", body = crate::openapi::ErrorBody)))]
pub async fn dispute(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(evidence): ApiJson<DisputeEvidence>,
) -> ApiResult<Json<EscrowView>> {
    let mut tx = state.store.begin().await?;
    let order = crate::orders::bought_order(&mut tx, &id, &caller).await?;
    tx.commit().await?;
    let escrow = escrow_of(&state, &order).await?;
    if escrow.state != EscrowState::Held {
        return Err(ApiError::conflict(
            Some("state"),
            format!("the escrow of order {id} is {}", escrow.state),
        ));
    }
    if evidence.order_id != order.id {
        return Err(ApiError::bad_request(
            "orderId",
            format!("the evidence is for order {:?}", evidence.order_id),
        ));
    }
    let now = chain_now(&state, &escrow).await?;
    if now >= escrow.release_after {
        return Err(ApiError::conflict(
            Some("state"),
            format!("the dispute window of order {id} has passed"),
        ));
    }
    let (valid, reason) = check_evidence(&state, &order, &evidence).await?;
    let hash = disputes::evidence_hash(&evidence);
    let text = serde_json::to_string(&evidence).map_err(|e| ApiError::internal("evidence", e))?;
    let stamp = sealstream_core::utc::now();
    let mut tx = state.store.begin().await?;
    let decide_by = (escrow.rail == "invoice")
        .then(|| now.saturating_add(state.config.invoice_arbitration_period.as_secs()));
    if !db::dispute(
        &mut tx, &id, &text, &hash, valid, &reason, decide_by, &stamp,
    )
    .await?
    {
        return Err(ApiError::conflict(
            Some("state"),
            format!("the escrow of order {id} is no longer held"),
        ));
    }
    let details = json!({
        "evidenceHash": hash,
        "kind": evidence.kind.as_str(),
        "valid": valid,
        "reason": reason,
    });
    crate::audit::append(
        &mut tx,
        &caller.did,
        "escrow.dispute",
        &id,
        &crate::listings::audit_details(details),
    )
    .await?;
    let escrow = db::escrow(&mut tx, &id)
        .await?
        .ok_or_else(|| no_escrow(&id))?;
    tx.commit().await?;
    tracing::info!(order = %id, valid, "escrow disputed: {reason}");
    crate::wake::send(&state, crate::wake::Signal::Escrow);
    Ok(Json(escrow.view()))
}

/// The chain's clock for an EVM escrow, the server's for an invoice one.
async fn chain_now(state: &AppState, escrow: &db::Escrow) -> ApiResult<u64> {
    if escrow.rail == "invoice" {
        return Ok(super::unix_now());
    }
    let chain_id = escrow
        .chain_id
        .ok_or_else(|| ApiError::internal("escrow", "an EVM escrow without a chain"))?;
    let rpc = state
        .evm
        .get(&chain_id)
        .ok_or_else(|| ApiError::internal("escrow", format!("no endpoint for chain {chain_id}")))?;
    rpc.latest_timestamp().await.map_err(|e| {
        tracing::warn!(chain_id, "escrow: {e}");
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            Some("chain"),
            "the chain's node did not answer; try again later",
        )
    })
}

/// The checker: the offline check (a 400 when the evidence is malformed),
/// then that it is about what the market served for `order`: the order's
/// dataset, the ciphertext the market stores, the access entry of the
/// order's grant, the envelope the market stores at that index.
/// `(valid, reason)`.
pub(crate) async fn check_evidence(
    state: &AppState,
    order: &Order,
    evidence: &DisputeEvidence,
) -> ApiResult<(bool, String)> {
    let fault = match disputes::verify(evidence) {
        Ok(f) => f,
        Err(EvidenceError::Malformed { field, reason }) => {
            return Err(ApiError::bad_request(&field, reason))
        }
        Err(e) => return Ok((false, e.to_string())),
    };
    let no = |why: &str| Ok((false, why.to_string()));
    let dataset = crate::datasets::dataset_by_id(&state.store, &order.dataset_id)
        .await?
        .ok_or_else(|| ApiError::internal("order", "its dataset is missing"))?;
    if !fault.merkle_root.eq_ignore_ascii_case(&dataset.merkle_root) {
        return no("the evidence's dataset is not the order's");
    }
    let chunk = crate::ingest::db::chunk(
        state.store.pool(),
        &dataset.machine_did,
        &dataset.topic,
        fault.chunk_index,
    )
    .await?;
    let Some(chunk) = chunk else {
        return no("the market holds no chunk at that index");
    };
    match evidence.kind {
        EvidenceKind::NotInRoot => {
            if !chunk.chunk_id.eq_ignore_ascii_case(&fault.chunk_id) {
                return no("the market served another chunk at that index");
            }
        }
        EvidenceKind::CiphertextHash | EvidenceKind::DecryptFailure => {
            if !chunk.chunk_id.eq_ignore_ascii_case(&fault.chunk_id) {
                return no("the market served another chunk at that index");
            }
            let served = state
                .objects
                .get(&chunk.object_key)
                .await
                .map_err(|e| ApiError::internal("object store", e))?
                .bytes()
                .await
                .map_err(|e| ApiError::internal("object store", e))?;
            let given = evidence
                .ciphertext_hex
                .as_deref()
                .and_then(|h| hex::decode(h.strip_prefix("0x").unwrap_or(h)).ok())
                .unwrap_or_default();
            if given != served.as_ref() {
                return no("the ciphertext is not the one the market served");
            }
            if evidence.kind == EvidenceKind::DecryptFailure {
                let given = evidence
                    .access
                    .as_ref()
                    .map(disputes::access_entry)
                    .transpose()
                    .map_err(|e| ApiError::bad_request("access", e.to_string()))?;
                let granted = granted_entry(state, order, &fault.chunk_id).await?;
                if given.is_none() || given != granted {
                    return no("the access entry is not the one granted to the order");
                }
            }
        }
    }
    Ok((true, fault.detail))
}

/// The access entry of `chunk_id` in the order's grant, if any.
async fn granted_entry(
    state: &AppState,
    order: &Order,
    chunk_id: &str,
) -> ApiResult<Option<sealstream_core::access::AccessEntry>> {
    let mut tx = state.store.begin().await?;
    let grant = orders_db::grant(&mut tx, &order.id).await?;
    tx.commit().await?;
    let Some(grant) = grant else {
        return Ok(None);
    };
    for name in &grant.files {
        let bytes = state
            .objects
            .get(&format!("{}/{name}", grant.object_prefix))
            .await
            .map_err(|e| ApiError::internal("object store", e))?
            .bytes()
            .await
            .map_err(|e| ApiError::internal("object store", e))?;
        let file: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::internal("grant", e))?;
        let entries = file["entries"].as_array().cloned().unwrap_or_default();
        for entry in entries {
            if entry["chunkId"].as_str() == Some(chunk_id) {
                return Ok(disputes::access_entry(&entry).ok());
            }
        }
    }
    Ok(None)
}

/// An arbiter decides a disputed payment: `toBuyer` back to the buyer,
/// the rest to the seller (on chain: the escrow's `resolve`, sent with the
/// market's arbiter key). Audited.
#[utoipa::path(post, path = sealstream_api::routes::ORDER_DISPUTE_RESOLVE, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = ResolveDispute,
    security(("session" = [])),
    responses(
        (status = 200, description = "The escrow, resolved", body = EscrowView),
        (status = 400, description = "Malformed split", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an arbiter", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not in escrow, or not disputed (on chain too)", body = crate::openapi::ErrorBody),
        (status = 422, description = "More than the amount held", body = crate::openapi::ErrorBody),
        (status = 502, description = "The chain's node did not take the call", body = crate::openapi::ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ResolveDispute>,
) -> ApiResult<Json<EscrowView>> {
    caller.require(Role::Arbiter)?;
    let mut tx = state.store.begin().await?;
    let order = orders_db::order(&mut tx, &id)
        .await?
        .ok_or_else(|| crate::orders::not_found(&id))?;
    tx.commit().await?;
    let escrow = escrow_of(&state, &order).await?;
    if escrow.state != EscrowState::Disputed {
        return Err(ApiError::conflict(
            Some("state"),
            format!("the escrow of order {id} is {}", escrow.state),
        ));
    }
    let (to_buyer, to_seller) = super::parse_split(&req.to_buyer, &escrow.amount)?;
    if escrow.rail == "invoice" {
        // Off chain: the split is recorded; the seller refunds the buyer's
        // part against the invoice.
        super::record_resolution(
            &state,
            &escrow,
            &to_buyer.to_string(),
            &to_seller.to_string(),
            &caller.did,
            None,
        )
        .await
        .map_err(|e| ApiError::internal("escrow", e))?;
        return Ok(Json(escrow_of(&state, &order).await?.view()));
    }
    let chain_id = escrow
        .chain_id
        .ok_or_else(|| ApiError::internal("escrow", "an EVM escrow without a chain"))?;
    let bad_gateway = |e: super::SendError| {
        tracing::warn!(order = %id, "escrow resolve: {e}");
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            Some("chain"),
            format!("the escrow call did not go through: {e}"),
        )
    };
    let deal = state
        .escrow_deal(chain_id, &id)
        .await
        .map_err(bad_gateway)?;
    if deal.state != DealState::Disputed {
        return Err(ApiError::conflict(
            Some("state"),
            format!(
                "the deal of order {id} is {:?} on chain, not disputed",
                deal.state
            ),
        ));
    }
    let decision = super::decision_hash(&escrow, &to_buyer.to_string());
    let hash = state
        .escrow_send(chain_id, resolve_call(&order_key(&id), to_buyer, &decision))
        .await
        .map_err(bad_gateway)?;
    super::record_resolution(
        &state,
        &escrow,
        &to_buyer.to_string(),
        &to_seller.to_string(),
        &caller.did,
        Some(&hash),
    )
    .await
    .map_err(|e| ApiError::internal("escrow", e))?;
    let escrow = escrow_of(&state, &order).await?;
    Ok(Json(escrow.view()))
}
