//! Payments: the proof a buyer posts after paying on an EVM chain
//! (`peaqos stream pay --confirmation-url`, `peaqos stream payproof`), the
//! confirmation the seller polls (`peaqos stream distribute
//! --confirmation-url`) and invoices marked paid by the seller. Claims
//! are kept in [`super::claims`] and checked again in the background by
//! [`super::watcher`].
//!
//! The order id is not on chain, so the server checks the transaction
//! itself through the chain's JSON-RPC: mined with success, enough
//! confirmations, sent by the buyer (the address of the DID they signed in
//! with: nobody else can claim a payment they watched go by), to the
//! listing's pay-to (native) or moving the token to it (ERC-20), at least
//! the price, on the configured chain, mined in a block stamped no earlier
//! than the order's creation less `--payment-skew` (so an earlier transfer
//! from the buyer to the seller, for something else, does not pay it). A
//! transaction pays one order only: the key of `payments` makes a replay a
//! 409.
//!
//! Until then each posted transaction is a claim of its own
//! ([`super::claims`]): a later claim never replaces an earlier one; a
//! hash the node does not know expires; the watcher checks claims
//! oldest-checked first, a bounded number per sweep, known transactions
//! before unknown ones; an order takes a bounded number of unknown claims;
//! anonymous posts are rate-limited per client address and per order
//! ([`crate::limits`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::claims::{self, ClaimState};
use super::db;
use super::watcher::{ask_chain, settle, SettleRules, Settled};
use super::{links, party_order, sold_order, view, Order, OrderState};
use crate::auth::{MaybePrincipal, Principal};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::evm::{Address, Amount, EscrowDeposit, ExpectedPayment, TxHash};
use crate::limits::ClientAddr;
use crate::listings::{audit_details, Rail};
use crate::server::AppState;
use crate::store::Tx;

pub use sealstream_api::orders::{Confirmation, ConfirmationStatus, Confirmed, LinkQuery, Waiting};
pub use sealstream_api::payments::{MarkPaid, PaymentProof, ProofAnswer, ProofStatus};

fn from_api(e: ApiError) -> Response {
    let status = e.status;
    let mut body = e.body();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("accepted".into(), Value::Bool(false));
    }
    (status, Json(body)).into_response()
}

/// The chain id a proof's `chain` names: one of the reference's names
/// (`base`, `peaq`), or the EIP-155 chain id in decimal (`31337`, for the
/// chains the reference has no name for).
fn chain_id_of(name: &str) -> Option<u64> {
    let name = name.trim();
    super::CHAIN_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, id)| *id)
        .or_else(|| {
            (!name.is_empty() && name.len() <= 20 && name.bytes().all(|b| b.is_ascii_digit()))
                .then(|| name.parse().ok())
                .flatten()
        })
}

/// Where an order paid on chain is paid: its chain, its token (`None`:
/// the native coin) and its pay-to address.
struct OnChain<'a> {
    chain_id: u64,
    token: Option<&'a str>,
    pay_to: &'a str,
}

/// The chain terms of `order`; a 409 naming `field` when it is paid by
/// invoice.
fn on_chain<'a>(order: &'a Order, field: &str) -> ApiResult<OnChain<'a>> {
    match &order.rail {
        Rail::Evm {
            chain_id,
            token,
            pay_to,
            ..
        } => Ok(OnChain {
            chain_id: *chain_id,
            token: token.as_deref(),
            pay_to,
        }),
        Rail::Invoice { .. } => Err(ApiError::conflict(
            Some(field),
            format!("order {} is paid by invoice, not on chain", order.id),
        )),
    }
}

/// The checks of a payment of `order`, ready for the chain.
pub(crate) fn expected(
    state: &AppState,
    order: &Order,
    tx_hash: TxHash,
) -> ApiResult<ExpectedPayment> {
    let OnChain {
        chain_id,
        token,
        pay_to,
    } = on_chain(order, "rail")?;
    let corrupt = |what: &str| ApiError::internal("order", format!("stored {what} is malformed"));
    let payer = super::buyer_address(order)
        .and_then(|a| Address::parse(&a, "buyer").ok())
        .ok_or_else(|| corrupt("buyer DID"))?;
    let created = sealstream_core::utc::parse_seconds(&order.created_at)
        .ok_or_else(|| corrupt("creation time"))?;
    let not_before = u64::try_from(created)
        .unwrap_or(0)
        .saturating_sub(state.config.payment_skew.as_secs());
    Ok(ExpectedPayment {
        chain_id,
        tx_hash,
        payer,
        pay_to: Address::parse(pay_to, "payTo").map_err(|_| corrupt("pay-to"))?,
        token: match token {
            Some(t) => Some(Address::parse(t, "token").map_err(|_| corrupt("token"))?),
            None => None,
        },
        min_amount: Amount::parse_decimal(&order.amount, "amount")
            .map_err(|_| corrupt("amount"))?,
        confirmations: super::confirmations(state, order),
        not_before: Some(not_before),
        escrow: escrow_of(state, order)?,
    })
}

/// Where `order` is paid into escrow, if its rail asks for it: the
/// market's contract on its chain (a 409 when the market no longer has
/// one there) under the order's key.
pub(crate) fn escrow_of(state: &AppState, order: &Order) -> ApiResult<Option<EscrowDeposit>> {
    match &order.rail {
        Rail::Evm {
            chain_id,
            escrow: true,
            ..
        } => {
            let contract = state.escrow.contract(*chain_id).ok_or_else(|| {
                ApiError::conflict(
                    Some("rail"),
                    format!("this server has no escrow contract on chain {chain_id} any more"),
                )
            })?;
            Ok(Some(EscrowDeposit {
                contract,
                order_key: crate::evm::escrow::order_key(&order.id),
            }))
        }
        _ => Ok(None),
    }
}

/// The proof's fields checked against the order, before asking the chain.
fn check_proof(order: &Order, proof: &PaymentProof) -> ApiResult<()> {
    let OnChain {
        chain_id,
        token,
        pay_to,
    } = on_chain(order, "orderId")?;
    match chain_id_of(&proof.chain) {
        Some(id) if id == chain_id => {}
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
                format!(
                    "unsupported chain {:?}: expected base, peaq or the chain id in decimal",
                    proof.chain
                ),
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

fn node_silent() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        Some("chain"),
        "the chain's node did not answer; send the proof again later",
    )
}

/// Records a verified payment of `order` and makes it paid, with its
/// receipt and audit event, in `tx`. `Ok(false)` when this exact payment
/// was already recorded for this order; a 409 when the payment is another
/// order's, or the order has another payment or is cancelled.
pub(crate) async fn record_payment(
    state: &AppState,
    tx: &mut Tx,
    order: &Order,
    payment_key: &str,
    payment: &Value,
    actor: &str,
) -> ApiResult<bool> {
    let now = sealstream_core::utc::now();
    if !db::insert_payment(tx, order, payment_key, payment, &now).await? {
        let held = db::payments_of(tx, payment_key, &order.id).await?;
        if held
            .iter()
            .any(|(key, order_id)| key == payment_key && *order_id == order.id)
        {
            return Ok(false);
        }
        let field = if payment_key.starts_with("evm:") {
            "txHash"
        } else {
            "orderId"
        };
        let message = if held.iter().any(|(key, _)| key == payment_key) {
            "this transaction already paid another order".to_string()
        } else {
            format!("order {} is already paid by another payment", order.id)
        };
        return Err(ApiError::conflict(Some(field), message));
    }
    if !db::mark_paid(tx, &order.id, &now).await? {
        return Err(ApiError::conflict(
            Some("orderId"),
            format!("order {} is {}", order.id, order.state.as_str()),
        ));
    }
    db::close_claims(
        tx,
        &order.id,
        payment_key.strip_prefix("evm:"),
        &format!("the order was paid by {payment_key}"),
    )
    .await?;
    crate::listings::db::count_sale(tx, &order.listing_id).await?;
    crate::escrow::record_deposit(tx, order, payment, &now).await?;
    let mut paid = order.clone();
    paid.state = OrderState::Paid;
    paid.paid_at = Some(now.clone());
    // A subscription's period has no dataset, so no license receipt of
    // one: it takes effect on the subscription instead, below.
    if order.subscription_id.is_none() {
        super::receipt::issue(state, tx, &paid, payment).await?;
    }
    let details = audit_details(json!({
        "paymentKey": payment_key,
        "payment": payment,
        "amount": order.amount,
    }));
    crate::audit::append(tx, actor, "payment.confirm", &order.id, &details).await?;
    if order.subscription_id.is_some() {
        crate::subscriptions::period_paid(tx, &paid, &now, actor).await?;
    }
    Ok(true)
}

/// Takes a payment proof. Anyone may post it (the reference sends no
/// credentials): the transaction must come from the buyer's address, and
/// be mined after the order was made (less `--payment-skew`).
///
/// 200 with `accepted: true` once verified with enough confirmations;
/// 200 with `accepted: false`, a `status` and a `reason` saying what is
/// missing while it cannot be confirmed yet (`awaiting-confirmations`: the
/// node knows the transaction, not mined or not deep enough;
/// `awaiting-transaction`: the node does not know it yet). The claim is
/// kept and checked again by the server (post again, or poll the
/// confirmation). 4xx with `accepted: false` and the field at fault
/// otherwise; 429 past a limit: proofs per client address, proofs per
/// order that show no payment of it, or open claims of unknown
/// transactions per order (a proof of the buyer's valid payment is never
/// held by the last two).
#[utoipa::path(post, path = sealstream_api::routes::ORDER_PAYMENT_PROOF, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = PaymentProof,
    responses(
        (status = 200, description = "`accepted`: verified; or not yet, with what is missing", body = ProofAnswer),
        (status = 400, description = "Malformed proof", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order", body = crate::openapi::ErrorBody),
        (status = 409, description = "Transaction already used for another order, order paid otherwise or cancelled", body = crate::openapi::ErrorBody),
        (status = 422, description = "The transaction does not pay the order (field named)", body = crate::openapi::ErrorBody),
        (status = 429, description = "A limit is reached (named in the message)", body = crate::openapi::ErrorBody),
        (status = 502, description = "The chain's node did not answer", body = crate::openapi::ErrorBody)))]
pub async fn payment_proof(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiPath(id): ApiPath<String>,
    proof: Result<ApiJson<PaymentProof>, ApiError>,
) -> Response {
    // The client's limit first: a malformed proof costs a token too.
    if let Err(e) = limit_client(&state, &client, &id).await {
        return from_api(e);
    }
    let ApiJson(proof) = match proof {
        Ok(p) => p,
        Err(e) => return from_api(e),
    };
    match take_proof(&state, &id, &proof).await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(e) => {
            tracing::warn!(order = %id, status = e.status.as_u16(), "payment proof refused: {}", e.message);
            from_api(e)
        }
    }
}

/// Seconds to wait, at least 1.
fn retry_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

async fn limit_client(state: &AppState, client: &ClientAddr, id: &str) -> ApiResult<()> {
    let rate = state.config.proof_rate_per_client;
    let key = client.key();
    state
        .proof_limits
        .per_client
        .check(&state.store, &key)
        .await
        .map_err(|l| {
            tracing::warn!(client = %key, order = %id, "payment proof refused: the limit per client address");
            ApiError::too_many_requests(
                None,
                format!(
                    "rate limit of payment proofs per client address reached ({}): try again in {} s",
                    rate.describe(),
                    retry_secs(l)
                ),
            )
        })
}

async fn limit_order(state: &AppState, id: &str) -> ApiResult<()> {
    let rate = state.config.proof_rate_per_order;
    state
        .proof_limits
        .per_order
        .check(&state.store, &id.to_string())
        .await
        .map_err(|l| {
            tracing::warn!(order = %id, "payment proof refused: the limit per order");
            ApiError::too_many_requests(
                Some("orderId"),
                format!(
                    "rate limit of payment proofs per order that show no payment of it reached \
                     ({}): try again in {} s",
                    rate.describe(),
                    retry_secs(l)
                ),
            )
        })
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
    let order = db::order(&mut tx, id)
        .await?
        .ok_or_else(|| super::not_found(id))?;
    let held = db::paid_order(&mut tx, &format!("evm:{hash_text}")).await?;
    tx.commit().await?;
    if let Some(paid) = held {
        return if paid == order.id {
            Ok(ProofAnswer::confirmed())
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
    let verdict = ask_chain(state, &order, tx_hash).await?;
    if !verdict.shows_payment() {
        limit_order(state, id).await?;
    }
    let rules = SettleRules {
        may_expire: false,
        cap: Some(state.config.max_claims_per_order),
    };
    match settle(state, &order, tx_hash, verdict, "payment-proof", rules).await? {
        Settled::Paid => Ok(ProofAnswer::confirmed()),
        Settled::Waiting {
            claim,
            confirmations,
            required,
        } => Ok(ProofAnswer {
            accepted: false,
            status: if claim.state == ClaimState::Pending {
                ProofStatus::AwaitingConfirmations
            } else {
                ProofStatus::AwaitingTransaction
            },
            confirmations: Some(confirmations),
            required: Some(required),
            reason: claim.reason,
        }),
        Settled::Refused(e) => Err(e),
        Settled::Capped { max } => {
            tracing::warn!(order = %id, tx = %hash_text, "payment proof refused: the limit of unknown claims per order");
            Err(ApiError::too_many_requests(
                Some("txHash"),
                format!(
                    "order {id} already has {max} open claims of transactions the node does not \
                     know (the limit of claims per order): post this proof again once the node \
                     knows the transaction, or after those claims expire"
                ),
            ))
        }
        Settled::Expired(claim) => Ok(ProofAnswer {
            accepted: false,
            status: ProofStatus::Expired,
            confirmations: None,
            required: None,
            reason: claim.reason,
        }),
        Settled::Silent => Err(node_silent()),
    }
}

/// Open claims a confirmation poll checks, at most (nearest to paying
/// first).
const POLL_CHECKS: usize = 3;

/// The confirmation the reference's `distribute` polls. 200 with
/// `status: "confirmed"` once paid; `awaiting-payment`,
/// `awaiting-confirmations` (a claimed transaction the node knows),
/// `awaiting-transaction` (only claims of transactions the node does not
/// know) or `cancelled` before, with `claim_status` saying what the
/// nearest claim waits for. For the buyer, the seller, or whoever holds a
/// confirmation link of the order. A poll checks the order's open claims
/// (at most 3) on chain.
#[utoipa::path(get, path = sealstream_api::routes::ORDER_CONFIRMATION, tag = "orders",
    params(("id" = String, Path, description = "Order id"), LinkQuery),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "`{status, order_id, buyer_id, buyer_public_key_hex, tx_hash, confirmed_at}`"),
        (status = 404, description = "No such order for the caller or link", body = crate::openapi::ErrorBody)))]
pub async fn confirmation(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Json<Confirmation>> {
    let mut tx = state.store.begin().await?;
    let mut order = match (&caller, &q.link) {
        (_, Some(token)) => {
            links::open(&mut tx, &id, token, links::LinkPurpose::Confirmation).await?
        }
        (Some(p), None) => party_order(&mut tx, &id, p).await?,
        (None, None) => return Err(super::not_found(&id)),
    };
    let open = if order.state == OrderState::AwaitingPayment {
        db::open_claims(&mut tx, &id).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    if !open.is_empty() {
        // A poll moves waiting claims forward; the node's silence or a
        // refusal leaves the answer at "not yet".
        for claim in open.iter().take(POLL_CHECKS) {
            let Ok(hash) = TxHash::parse(&claim.tx_hash, "txHash") else {
                continue;
            };
            let Ok(verdict) = ask_chain(&state, &order, hash).await else {
                break;
            };
            let rules = SettleRules::default();
            if let Ok(Settled::Paid) =
                settle(&state, &order, hash, verdict, "confirmation-poll", rules).await
            {
                break;
            }
        }
        let mut tx = state.store.begin().await?;
        order = db::order(&mut tx, &id)
            .await?
            .ok_or_else(|| super::not_found(&id))?;
        tx.commit().await?;
    }
    if !order.state.is_paid() {
        let mut tx = state.store.begin().await?;
        let claims = db::shown_claims(&mut tx, &id).await?;
        tx.commit().await?;
        let nearest = claims::nearest(&claims);
        let status = match (order.state, nearest.map(|c| c.state)) {
            (OrderState::Cancelled, _) => ConfirmationStatus::Cancelled,
            (_, Some(ClaimState::Pending)) => ConfirmationStatus::AwaitingConfirmations,
            (_, Some(_)) => ConfirmationStatus::AwaitingTransaction,
            _ => ConfirmationStatus::AwaitingPayment,
        };
        return Ok(Json(Confirmation::Waiting(Waiting {
            claim_status: super::claim_summary(&state, &order, &claims).1,
            order_id: order.id,
            status,
        })));
    }
    let mut tx = state.store.begin().await?;
    let paid = db::payment(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::internal("order", format!("paid order {id} has no payment")))?;
    tx.commit().await?;
    let tx_hash = paid
        .tx_hash
        .or_else(|| paid.reference.map(|r| format!("invoice:{r}")))
        .unwrap_or(paid.key);
    Ok(Json(Confirmation::Confirmed(Confirmed {
        buyer_id: order.buyer_id,
        buyer_public_key_hex: order.buyer_public_key_hex,
        confirmed_at: order.paid_at,
        order_id: order.id,
        state: order.state,
        status: ConfirmationStatus::Confirmed,
        tx_hash,
    })))
}

/// Marks an invoice order paid (its seller only), with the invoice
/// reference; audited, and the receipt issued.
#[utoipa::path(post, path = sealstream_api::routes::ORDER_MARK_PAID, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = MarkPaid,
    security(("session" = [])),
    responses(
        (status = 200, description = "The paid order", body = super::OrderView),
        (status = 400, description = "Bad reference", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order sold by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not an invoice order, or not awaiting payment", body = crate::openapi::ErrorBody)))]
pub async fn mark_paid(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
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
    let mut payment = json!({"reference": reference, "markedBy": caller.did});
    if let Rail::Invoice { escrow: true, .. } = order.rail {
        // Held by the market until the dispute window passes.
        let release_after =
            crate::escrow::unix_now().saturating_add(state.config.invoice_dispute_window.as_secs());
        payment["escrow"] = json!({ "releaseAfter": release_after });
    }
    record_payment(
        &state,
        &mut tx,
        &order,
        &format!("invoice:{id}"),
        &payment,
        &caller.did,
    )
    .await?;
    let order = db::order(&mut tx, &id)
        .await?
        .ok_or_else(|| super::not_found(&id))?;
    let shown = db::shown_claims(&mut tx, &id).await?;
    tx.commit().await?;
    tracing::info!(order = %id, rail = "invoice", amount = %order.amount, "payment confirmed, receipt issued");
    crate::wake::send(&state, crate::wake::Signal::Grant);
    if let Some(sub) = &order.subscription_id {
        crate::wake::send(&state, crate::wake::Signal::Changed(sub.clone()));
    }
    Ok(Json(view(&state, &order, &shown)))
}
