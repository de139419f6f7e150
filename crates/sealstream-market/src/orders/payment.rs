//! Payments: the proof a buyer posts after paying on an EVM chain
//! (`peaqos stream pay --confirmation-url`, `peaqos stream payproof`), the
//! confirmation the seller polls (`peaqos stream distribute
//! --confirmation-url`), invoices marked paid by the seller, and the
//! background re-check of claims still waiting for confirmations.
//!
//! The order id is not on chain, so the server checks the transaction
//! itself through the chain's JSON-RPC: mined with success, enough
//! confirmations, sent by the buyer (the address of the DID they signed in
//! with: nobody else can claim a payment they watched go by), to the
//! listing's pay-to (native) or moving the token to it (ERC-20), at least
//! the price, on the configured chain. A transaction pays one order only:
//! the key of `payments` makes a replay a 409.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{Any, Row, Transaction};
use utoipa::{IntoParams, ToSchema};

use super::{links, party_order, sold_order, view, Order, OrderState};
use crate::auth::{MaybePrincipal, Principal};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::evm::{Address, Amount, ExpectedPayment, PaymentError, PaymentStatus, TxHash};
use crate::listings::{audit_details, Rail};
use crate::server::AppState;

/// The payment proof of `peaq.stream` v1 (section 5 of the wire format).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentProof {
    /// The transaction (`0x` + 64 hex).
    pub tx_hash: String,
    /// The order it pays (must be the order of the URL).
    pub order_id: String,
    /// `base` or `peaq` (the reference's chain names).
    pub chain: String,
    /// Who paid: must be the buyer's address.
    pub payer_address: String,
    /// Who was paid: must be the listing's pay-to.
    pub payee_address: String,
    /// Human-readable amount (informative: the chain is checked).
    pub amount: String,
    /// The ERC-20 contract, or null for the native coin.
    pub token_address: Option<String>,
    /// Token symbol (informative).
    pub token: Option<String>,
}

/// What the proof endpoint answers (`accepted` is what the reference reads).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofAnswer {
    /// The payment is verified and the order paid.
    pub accepted: bool,
    /// `confirmed` or `awaiting-confirmations`.
    pub status: String,
    /// Confirmations seen so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// Confirmations required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<u64>,
}

fn from_api(e: ApiError) -> Response {
    let status = e.status;
    let mut body = e.body();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("accepted".into(), Value::Bool(false));
    }
    (status, Json(body)).into_response()
}

/// The chain id the reference's `chain` name stands for.
fn chain_id_of(name: &str) -> Option<u64> {
    super::CHAIN_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, id)| *id)
}

/// The checks of a payment of `order`, ready for the chain.
pub(crate) fn expected(
    state: &AppState,
    order: &Order,
    tx_hash: TxHash,
) -> ApiResult<ExpectedPayment> {
    let Rail::Evm {
        chain_id,
        token,
        pay_to,
        ..
    } = &order.rail
    else {
        return Err(ApiError::conflict(
            Some("rail"),
            format!("order {} is paid by invoice, not on chain", order.id),
        ));
    };
    let corrupt = |what: &str| ApiError::internal("order", format!("stored {what} is malformed"));
    let payer = super::buyer_address(order)
        .and_then(|a| Address::parse(&a, "buyer").ok())
        .ok_or_else(|| corrupt("buyer DID"))?;
    Ok(ExpectedPayment {
        chain_id: *chain_id,
        tx_hash,
        payer,
        pay_to: Address::parse(pay_to, "payTo").map_err(|_| corrupt("pay-to"))?,
        token: match token {
            Some(t) => Some(Address::parse(t, "token").map_err(|_| corrupt("token"))?),
            None => None,
        },
        min_amount: Amount::parse_decimal(&order.amount, "amount")
            .map_err(|_| corrupt("amount"))?,
        confirmations: state.config.confirmations,
    })
}

/// The proof's fields checked against the order, before asking the chain.
fn check_proof(order: &Order, proof: &PaymentProof) -> ApiResult<()> {
    let Rail::Evm {
        chain_id,
        token,
        pay_to,
        ..
    } = &order.rail
    else {
        return Err(ApiError::conflict(
            Some("orderId"),
            format!("order {} is paid by invoice, not on chain", order.id),
        ));
    };
    match chain_id_of(&proof.chain) {
        Some(id) if id == *chain_id => {}
        Some(id) => {
            return Err(ApiError::unprocessable(
                "chain",
                format!(
                    "the order is paid on chain {chain_id}, not {} ({id})",
                    proof.chain
                ),
            ))
        }
        None => {
            return Err(ApiError::unprocessable(
                "chain",
                format!("unsupported chain {:?}: expected base or peaq", proof.chain),
            ))
        }
    }
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    if !same(&proof.payee_address, pay_to) {
        return Err(ApiError::unprocessable(
            "payeeAddress",
            format!("the listing is paid to {pay_to}"),
        ));
    }
    let buyer = super::buyer_address(order).unwrap_or_default();
    if !same(&proof.payer_address, &buyer) {
        return Err(ApiError::unprocessable(
            "payerAddress",
            format!("a payment of this order must come from the buyer's address {buyer}"),
        ));
    }
    match (token, proof.token_address.as_deref().map(str::trim)) {
        (None, None | Some("") | Some("native")) => {}
        (Some(t), Some(given)) if same(t, given) => {}
        (None, Some(given)) => {
            return Err(ApiError::unprocessable(
                "tokenAddress",
                format!("the order is paid in the native coin, not in token {given}"),
            ))
        }
        (Some(t), _) => {
            return Err(ApiError::unprocessable(
                "tokenAddress",
                format!("the order is paid in token {t}"),
            ))
        }
    }
    Ok(())
}

fn payment_field(e: &PaymentError) -> &'static str {
    e.field()
}

/// Records a verified payment of `order` and makes it paid, with its
/// receipt and audit event, in `tx`. `Ok(false)` when this exact payment
/// was already recorded for this order; a 409 when the payment is another
/// order's, or the order has another payment or is cancelled.
pub(crate) async fn record_payment(
    state: &AppState,
    tx: &mut Transaction<'static, Any>,
    order: &Order,
    payment_key: &str,
    payment: &Value,
    actor: &str,
) -> ApiResult<bool> {
    let now = sealstream_core::chunk::utc_now_seconds();
    let inserted = sqlx::query(
        "INSERT INTO payments (payment_key, order_id, rail, details, verified_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(payment_key)
    .bind(&order.id)
    .bind(match order.rail {
        Rail::Evm { .. } => "evm",
        Rail::Invoice { .. } => "invoice",
    })
    .bind(payment.to_string())
    .bind(&now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        let held = sqlx::query(
            "SELECT payment_key, order_id FROM payments WHERE payment_key = $1 OR order_id = $2",
        )
        .bind(payment_key)
        .bind(&order.id)
        .fetch_all(&mut **tx)
        .await?;
        for row in &held {
            let key: String = row.try_get(0)?;
            let order_id: String = row.try_get(1)?;
            if key == payment_key && order_id == order.id {
                return Ok(false);
            }
        }
        let field = if payment_key.starts_with("evm:") {
            "txHash"
        } else {
            "orderId"
        };
        let message = if held
            .iter()
            .any(|r| r.try_get::<String, _>(0).is_ok_and(|k| k == payment_key))
        {
            "this transaction already paid another order".to_string()
        } else {
            format!("order {} is already paid by another payment", order.id)
        };
        return Err(ApiError::conflict(Some(field), message));
    }
    let changed = sqlx::query(
        "UPDATE orders SET state = 'paid', paid_at = $1, claimed_tx = NULL, claim_status = NULL \
         WHERE id = $2 AND state = 'awaiting-payment'",
    )
    .bind(&now)
    .bind(&order.id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if changed != 1 {
        return Err(ApiError::conflict(
            Some("orderId"),
            format!("order {} is {}", order.id, order.state.as_str()),
        ));
    }
    sqlx::query("UPDATE listings SET sales_count = sales_count + 1 WHERE id = $1")
        .bind(&order.listing_id)
        .execute(&mut **tx)
        .await?;
    let mut paid = order.clone();
    paid.state = OrderState::Paid;
    paid.paid_at = Some(now.clone());
    super::receipt::issue(state, tx, &paid, payment).await?;
    let details = audit_details(json!({
        "paymentKey": payment_key,
        "payment": payment,
        "amount": order.amount,
    }));
    crate::audit::append(tx, actor, "payment.confirm", &order.id, &details).await?;
    Ok(true)
}

/// What checking a claimed transaction came to.
pub(crate) enum Checked {
    /// Verified and recorded (or recorded before).
    Paid,
    /// Valid so far; more confirmations needed.
    Pending { confirmations: u64, required: u64 },
}

/// Asks the chain about `tx_hash` for `order` and records the outcome:
/// paid, a pending claim, or (for a refusal) nothing but the reason on the
/// order's claim when `clear_refused_claim`.
pub(crate) async fn check_claim(
    state: &AppState,
    order: &Order,
    tx_hash: TxHash,
    actor: &str,
) -> ApiResult<Checked> {
    let expected = expected(state, order, tx_hash)?;
    let rpc = state.evm.get(&expected.chain_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("chain"),
            format!(
                "this server does not verify payments on chain {}",
                expected.chain_id
            ),
        )
    })?;
    let hash_text = tx_hash.to_string();
    match rpc.check_payment(&expected).await {
        Err(PaymentError::Rpc(e)) => {
            tracing::warn!(order = %order.id, "payment check: {e}");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                Some("chain"),
                "the chain's node did not answer; send the proof again later",
            ))
        }
        Err(e) => {
            // Nothing binds: a refused claim is forgotten (the reason kept).
            let mut tx = state.store.begin().await?;
            sqlx::query(
                "UPDATE orders SET claimed_tx = NULL, claim_status = $1 \
                 WHERE id = $2 AND state = 'awaiting-payment' AND claimed_tx = $3",
            )
            .bind(format!("{hash_text}: {e}"))
            .bind(&order.id)
            .bind(&hash_text)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Err(ApiError::unprocessable(payment_field(&e), e.to_string()))
        }
        Ok(PaymentStatus::Pending {
            confirmations,
            required,
        }) => {
            let mut tx = state.store.begin().await?;
            let status = format!("{hash_text}: {confirmations} of {required} confirmations");
            let changed = sqlx::query(
                "UPDATE orders SET claimed_tx = $1, claim_status = $2 \
                 WHERE id = $3 AND state = 'awaiting-payment'",
            )
            .bind(&hash_text)
            .bind(&status)
            .bind(&order.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 && order.claimed_tx.as_deref() != Some(hash_text.as_str()) {
                let details = audit_details(json!({
                    "txHash": hash_text,
                    "confirmations": confirmations,
                    "required": required,
                }));
                crate::audit::append(&mut tx, actor, "payment.claim", &order.id, &details).await?;
            }
            tx.commit().await?;
            Ok(Checked::Pending {
                confirmations,
                required,
            })
        }
        Ok(PaymentStatus::Confirmed(v)) => {
            let payment = json!({
                "txHash": hash_text,
                "chainId": expected.chain_id,
                "payer": v.from.to_string(),
                "payTo": expected.pay_to.to_string(),
                "token": v.token.map(|t| t.to_string()),
                "amount": v.amount.to_string(),
                "blockNumber": v.block_number,
                "blockHash": v.block_hash,
                "confirmations": v.confirmations,
            });
            let mut tx = state.store.begin().await?;
            let current = Order::load(&mut tx, &order.id)
                .await?
                .ok_or_else(|| super::not_found(&order.id))?;
            let key = format!("evm:{hash_text}");
            record_payment(state, &mut tx, &current, &key, &payment, actor).await?;
            tx.commit().await?;
            state.grant_wake.notify_one();
            Ok(Checked::Paid)
        }
    }
}

/// Takes a payment proof. Anyone may post it (the reference sends no
/// credentials): the transaction must come from the buyer's address.
/// 200 with `accepted: true` once verified with enough confirmations;
/// 200 with `accepted: false` while waiting for confirmations (the server
/// keeps checking; post again or poll the confirmation); 4xx with
/// `accepted: false` and the field at fault otherwise.
#[utoipa::path(post, path = "/v1/orders/{id}/payment-proof", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = PaymentProof,
    responses(
        (status = 200, description = "`accepted`: verified, or waiting for confirmations", body = ProofAnswer),
        (status = 400, description = "Malformed proof", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order", body = crate::openapi::ErrorBody),
        (status = 409, description = "Transaction already used for another order, order paid otherwise or cancelled", body = crate::openapi::ErrorBody),
        (status = 422, description = "The transaction does not pay the order (field named)", body = crate::openapi::ErrorBody),
        (status = 502, description = "The chain's node did not answer", body = crate::openapi::ErrorBody)))]
pub async fn payment_proof(
    State(state): State<AppState>,
    Path(id): Path<String>,
    proof: Result<ApiJson<PaymentProof>, ApiError>,
) -> Response {
    let ApiJson(proof) = match proof {
        Ok(p) => p,
        Err(e) => return from_api(e),
    };
    match take_proof(&state, &id, &proof).await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(e) => from_api(e),
    }
}

async fn take_proof(state: &AppState, id: &str, proof: &PaymentProof) -> ApiResult<ProofAnswer> {
    if proof.order_id.trim() != id {
        return Err(ApiError::bad_request(
            "orderId",
            format!(
                "the proof is for order {:?}, posted to order {id}",
                proof.order_id
            ),
        ));
    }
    let tx_hash = TxHash::parse(&proof.tx_hash, "txHash")
        .map_err(|_| ApiError::bad_request("txHash", "expected 0x and 64 hex digits"))?;
    let hash_text = tx_hash.to_string();
    let mut tx = state.store.begin().await?;
    let order = Order::load(&mut tx, id)
        .await?
        .ok_or_else(|| super::not_found(id))?;
    let held = sqlx::query("SELECT order_id FROM payments WHERE payment_key = $1")
        .bind(format!("evm:{hash_text}"))
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    if let Some(row) = held {
        let paid: String = row.try_get(0)?;
        return if paid == order.id {
            Ok(ProofAnswer {
                accepted: true,
                status: "confirmed".into(),
                confirmations: None,
                required: None,
            })
        } else {
            Err(ApiError::conflict(
                Some("txHash"),
                "this transaction already paid another order",
            ))
        };
    }
    match order.state {
        OrderState::AwaitingPayment => {}
        OrderState::Cancelled => {
            return Err(ApiError::conflict(
                Some("orderId"),
                format!("order {id} is cancelled"),
            ))
        }
        OrderState::Paid | OrderState::Granted => {
            return Err(ApiError::conflict(
                Some("orderId"),
                format!("order {id} is already paid by another payment"),
            ))
        }
    }
    check_proof(&order, proof)?;
    match check_claim(state, &order, tx_hash, "payment-proof").await? {
        Checked::Paid => Ok(ProofAnswer {
            accepted: true,
            status: "confirmed".into(),
            confirmations: None,
            required: None,
        }),
        Checked::Pending {
            confirmations,
            required,
        } => Ok(ProofAnswer {
            accepted: false,
            status: "awaiting-confirmations".into(),
            confirmations: Some(confirmations),
            required: Some(required),
        }),
    }
}

/// `?link=` on routes bearer links open.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// A bearer link's token (`POST /v1/orders/{id}/links`).
    pub link: Option<String>,
}

/// The confirmation the reference's `distribute` polls. 200 with
/// `status: "confirmed"` once paid; `awaiting-payment`,
/// `awaiting-confirmations` or `cancelled` before. For the buyer, the
/// seller, or whoever holds a confirmation link of the order.
#[utoipa::path(get, path = "/v1/orders/{id}/confirmation", tag = "orders",
    params(("id" = String, Path, description = "Order id"), LinkQuery),
    responses(
        (status = 200, description = "`{status, order_id, buyer_id, buyer_public_key_hex, tx_hash, confirmed_at}`"),
        (status = 404, description = "No such order for the caller or link", body = crate::openapi::ErrorBody)))]
pub async fn confirmation(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> ApiResult<Json<Value>> {
    let mut tx = state.store.begin().await?;
    let mut order = match (&caller, &q.link) {
        (_, Some(token)) => links::open(&mut tx, &id, token, links::Purpose::Confirmation).await?,
        (Some(p), None) => party_order(&mut tx, &id, p).await?,
        (None, None) => return Err(super::not_found(&id)),
    };
    tx.commit().await?;
    if order.state == OrderState::AwaitingPayment {
        if let Some(claimed) = order
            .claimed_tx
            .as_deref()
            .and_then(|t| TxHash::parse(t, "txHash").ok())
        {
            // A poll moves a waiting claim forward; the node's silence or a
            // refusal leaves the answer at "not yet".
            if check_claim(&state, &order, claimed, "confirmation-poll")
                .await
                .is_ok()
            {
                let mut tx = state.store.begin().await?;
                order = Order::load(&mut tx, &id)
                    .await?
                    .ok_or_else(|| super::not_found(&id))?;
                tx.commit().await?;
            }
        }
    }
    if !order.state.is_paid() {
        let status = match (order.state, &order.claimed_tx) {
            (OrderState::Cancelled, _) => "cancelled",
            (_, Some(_)) => "awaiting-confirmations",
            _ => "awaiting-payment",
        };
        return Ok(Json(json!({
            "status": status,
            "order_id": order.id,
            "claim_status": order.claim_status,
        })));
    }
    let mut tx = state.store.begin().await?;
    let row = sqlx::query("SELECT payment_key, details FROM payments WHERE order_id = $1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::internal("order", format!("paid order {id} has no payment")))?;
    tx.commit().await?;
    let key: String = row.try_get(0)?;
    let details: Value = serde_json::from_str(&row.try_get::<String, _>(1)?)
        .map_err(|_| ApiError::internal("payment", "stored details are malformed"))?;
    let tx_hash = details["txHash"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            details["reference"]
                .as_str()
                .map(|r| format!("invoice:{r}"))
        })
        .unwrap_or(key);
    Ok(Json(json!({
        "status": "confirmed",
        "order_id": order.id,
        "buyer_id": order.buyer_id,
        "buyer_public_key_hex": order.buyer_public_key_hex,
        "tx_hash": tx_hash,
        "confirmed_at": order.paid_at,
        "state": order.state.as_str(),
    })))
}

/// `POST /v1/orders/{id}/mark-paid`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MarkPaid {
    /// The invoice or bank reference (1 to 200 characters).
    pub reference: String,
}

/// Marks an invoice order paid (its seller only), with the invoice
/// reference; audited, and the receipt issued.
#[utoipa::path(post, path = "/v1/orders/{id}/mark-paid", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = MarkPaid,
    security(("session" = [])),
    responses(
        (status = 200, description = "The paid order", body = super::OrderView),
        (status = 400, description = "Bad reference", body = crate::openapi::ErrorBody),
        (status = 401, description = "No session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order sold by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not an invoice order, or not awaiting payment", body = crate::openapi::ErrorBody)))]
pub async fn mark_paid(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MarkPaid>,
) -> ApiResult<Json<super::OrderView>> {
    let reference = req.reference.trim();
    if reference.is_empty() || reference.len() > 200 || reference.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "reference",
            "1 to 200 characters, no control characters",
        ));
    }
    let mut tx = state.store.begin().await?;
    let order = sold_order(&mut tx, &id, &caller).await?;
    if !matches!(order.rail, Rail::Invoice { .. }) {
        return Err(ApiError::conflict(
            Some("rail"),
            format!("order {id} is paid on chain: the buyer posts a payment proof"),
        ));
    }
    if order.state != OrderState::AwaitingPayment {
        return Err(ApiError::conflict(
            Some("state"),
            format!("order {id} is {}", order.state.as_str()),
        ));
    }
    let payment = json!({"reference": reference, "markedBy": caller.did});
    record_payment(
        &state,
        &mut tx,
        &order,
        &format!("invoice:{id}"),
        &payment,
        &caller.did,
    )
    .await?;
    let order = Order::load(&mut tx, &id)
        .await?
        .ok_or_else(|| super::not_found(&id))?;
    tx.commit().await?;
    state.grant_wake.notify_one();
    Ok(Json(view(&state, &order)))
}

/// Re-checks claimed transactions still waiting for confirmations, every
/// `every`, until the returned task is aborted.
pub fn spawn_claim_watcher(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = watch_once(&state).await {
                tracing::warn!("payment watcher: {e}");
            }
        }
    })
}

/// One pass of the watcher over waiting claims (at most 200).
pub async fn watch_once(state: &AppState) -> ApiResult<usize> {
    let mut tx = state.store.begin().await?;
    let rows = sqlx::query(&format!(
        "SELECT {} FROM orders WHERE state = 'awaiting-payment' AND claimed_tx IS NOT NULL \
         ORDER BY id LIMIT 200",
        super::COLUMNS
    ))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut paid = 0;
    for row in &rows {
        let order = Order::from_row(row)?;
        let Some(hash) = order
            .claimed_tx
            .as_deref()
            .and_then(|t| TxHash::parse(t, "txHash").ok())
        else {
            continue;
        };
        match check_claim(state, &order, hash, "payment-watcher").await {
            Ok(Checked::Paid) => paid += 1,
            Ok(Checked::Pending { .. }) => {}
            Err(e) => tracing::info!(order = %order.id, "claim not (yet) a payment: {}", e.message),
        }
    }
    Ok(paid)
}
