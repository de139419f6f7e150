//! Orders: a buyer orders a published listing with their X25519 public
//! key and buyer id, pays (on an EVM chain, verified by the server through
//! the chain's JSON-RPC, or by invoice, marked paid by the seller), and the
//! seller's grant daemon (or the server, with an operator key) uploads the
//! access files: the chunk keys re-wrapped to the buyer's key, the data
//! never re-encrypted. The buyer then downloads the release package and
//! both parties fetch the signed license receipt.
//!
//! States: `awaiting-payment` → `paid` → `granted`; an unpaid order may be
//! `cancelled` by its buyer. An order is visible to its buyer and its
//! seller only (404 to anyone else, as for an order that does not exist);
//! bearer links ([`links`]) open its confirmation or release package to
//! whoever holds them.

pub mod claims;
pub(crate) mod db;
pub mod grant;
pub mod links;
pub mod payment;
pub mod receipt;
pub mod receipt_pdf;
pub mod release;
pub mod watcher;

pub(crate) use db::{cancel as cancel_unpaid, close_claims, insert_order};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use rand::RngCore;
use serde_json::json;

pub use sealstream_api::orders::{
    CreateOrder, ListQuery, OrderList, OrderSide, OrderState, OrderUrls, OrderView,
};
pub use sealstream_api::payments::PaymentInstructions;
use sealstream_api::routes;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::listings::model::plausible_id;
use crate::listings::{audit_details, ListingState, Rail};
use crate::server::AppState;
use crate::store::Tx;

/// Order ids: `ord_` + 32 hex digits (128 random bits: not guessable).
pub const ID_PREFIX: &str = "ord_";

/// An `orders` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// `ord_…`.
    pub id: String,
    /// The listing ordered.
    pub listing_id: String,
    /// The dataset sold.
    pub dataset_id: String,
    /// The listing's owner.
    pub seller_did: String,
    /// Who ordered (signed in).
    pub buyer_did: String,
    /// The recipient id the access entries carry.
    pub buyer_id: String,
    /// The buyer's X25519 public key, as given (hex).
    pub buyer_public_key_hex: String,
    /// The price at order time, base units.
    pub amount: String,
    /// The rail at order time.
    pub rail: Rail,
    /// Where the order is.
    pub state: OrderState,
    /// Created (UTC).
    pub created_at: String,
    /// Paid (UTC).
    pub paid_at: Option<String>,
    /// Granted (UTC).
    pub granted_at: Option<String>,
    /// The subscription whose period this order pays (such an order has no
    /// dataset, grant or receipt of its own).
    pub subscription_id: Option<String>,
    /// What the buyer accepted of the listing's compliance preset.
    pub compliance: Option<sealstream_api::compliance::Accepted>,
}

impl Order {
    /// Whether `caller` is the buyer, or the seller while an owner (a 403
    /// once the seller's owner role is revoked).
    pub fn is_party(&self, caller: &Principal) -> ApiResult<bool> {
        Ok(self.buyer_did == caller.did || caller.owner_access(&self.seller_did)?)
    }
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("order {id} not found"))
}

/// The order if `caller` is its buyer or seller (404 otherwise).
pub(crate) async fn party_order(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Order> {
    match db::order(tx, id).await? {
        Some(o) if o.is_party(caller)? => Ok(o),
        _ => Err(not_found(id)),
    }
}

/// The order if `caller` is its seller and still an owner (404 otherwise;
/// 403 once the seller's owner role is revoked).
pub(crate) async fn sold_order(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Order> {
    match db::order(tx, id).await? {
        Some(o) if caller.owner_access(&o.seller_did)? => Ok(o),
        _ => Err(not_found(id)),
    }
}

/// The order if `caller` is its buyer (404 otherwise).
pub(crate) async fn bought_order(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Order> {
    match db::order(tx, id).await? {
        Some(o) if o.buyer_did == caller.did => Ok(o),
        _ => Err(not_found(id)),
    }
}

/// A new order id.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{ID_PREFIX}{}", hex::encode(bytes))
}

/// The public chain names the reference CLI uses (`--chain`) and their
/// EIP-155 ids.
pub const CHAIN_NAMES: [(&str, u64); 2] = [("base", 8453), ("peaq", 3338)];

/// Confirmations a payment of `order` needs: the configured number, or its
/// chain's default (1 on a dev chain, 3 elsewhere).
pub(crate) fn confirmations(state: &AppState, order: &Order) -> u64 {
    match &order.rail {
        Rail::Evm { chain_id, .. } => state.config.confirmations_for(*chain_id),
        Rail::Invoice { .. } => 1,
    }
}

/// The reference's name of an EVM chain id, if it has one.
pub fn chain_name(chain_id: u64) -> Option<&'static str> {
    CHAIN_NAMES
        .iter()
        .find(|(_, id)| *id == chain_id)
        .map(|(n, _)| *n)
}

/// The server's base URL, from its configuration ([`crate::public_url`]);
/// request headers never change it.
pub(crate) fn base_url(state: &AppState) -> &str {
    state.public_url.base()
}

/// The buyer's address, from their DID.
pub(crate) fn buyer_address(order: &Order) -> Option<String> {
    order
        .buyer_did
        .strip_prefix("did:peaq:")
        .map(str::to_string)
}

/// How to pay `order`: the payment term a card shows for its rail and
/// price, with the chain's name, the buyer's address (the only payer
/// accepted) and the confirmations awaited on chain.
pub(crate) fn instructions(state: &AppState, order: &Order) -> PaymentInstructions {
    let term = crate::listings::card::payment_term(&order.rail, &order.amount);
    let (symbol, on_chain) = match &order.rail {
        Rail::Evm { symbol, .. } => (symbol.clone(), true),
        Rail::Invoice { .. } => (None, false),
    };
    let escrow = payment::escrow_of(state, order).ok().flatten();
    let escrow = escrow.as_ref();
    let (pay_to, payee) = if on_chain {
        (term.pay_to, None)
    } else {
        (None, term.pay_to)
    };
    PaymentInstructions {
        rail: term.method,
        amount: term.amount_base_units,
        amount_display: term.amount,
        decimals: term.decimals,
        chain: term.chain_id.and_then(chain_name).map(str::to_string),
        chain_id: term.chain_id,
        pay_to,
        token: term.token,
        symbol,
        payer: on_chain.then(|| buyer_address(order)).flatten(),
        confirmations: on_chain.then(|| confirmations(state, order)),
        currency: (!on_chain).then_some(term.currency),
        payee,
        escrow: escrow.map(|e| e.contract.to_string()),
        escrow_order_key: escrow.map(|e| format!("0x{}", hex::encode(e.order_key))),
    }
}

/// `(claimedTx, claimStatus)` of an order with `claims`.
pub(crate) fn claim_summary(
    state: &AppState,
    order: &Order,
    claims: &[claims::Claim],
) -> (Option<String>, Option<String>) {
    if order.state != OrderState::AwaitingPayment {
        return (None, None);
    }
    let required = confirmations(state, order);
    match claims::nearest(claims) {
        Some(c) => (
            Some(c.tx_hash.clone()),
            Some(claims::status_line(c, required)),
        ),
        None => (
            None,
            claims
                .iter()
                .filter(|c| c.last_checked_at.is_some())
                .max_by(|a, b| a.last_checked_at.cmp(&b.last_checked_at))
                .map(|c| claims::status_line(c, required)),
        ),
    }
}

pub(crate) fn view(state: &AppState, order: &Order, claims: &[claims::Claim]) -> OrderView {
    let base = base_url(state);
    let (claimed_tx, claim_status) = claim_summary(state, order, claims);
    OrderView {
        id: order.id.clone(),
        listing_id: order.listing_id.clone(),
        dataset_id: order.dataset_id.clone(),
        seller_did: order.seller_did.clone(),
        buyer_did: order.buyer_did.clone(),
        buyer_id: order.buyer_id.clone(),
        buyer_public_key_hex: order.buyer_public_key_hex.clone(),
        state: order.state,
        claimed_tx,
        claim_status,
        claims: claims.iter().map(claims::Claim::view).collect(),
        payment: instructions(state, order),
        urls: OrderUrls {
            payment_proof: format!("{base}{}", routes::order_payment_proof(&order.id)),
            confirmation: format!("{base}{}", routes::order_confirmation(&order.id)),
            release: format!("{base}{}", routes::order_release(&order.id)),
            receipt: format!("{base}{}", routes::order_receipt(&order.id)),
        },
        created_at: order.created_at.clone(),
        paid_at: order.paid_at.clone(),
        granted_at: order.granted_at.clone(),
        subscription_id: order.subscription_id.clone(),
        compliance: order.compliance.clone(),
    }
}

/// What the buyer of a listing with a compliance preset accepts: the
/// statement in `req` checked against the preset (a refusal is a 422
/// naming `jurisdiction`, `purpose` or `acceptAttestation` and saying
/// why); `None` for a listing without one (whose orders must not state
/// anything).
fn compliance_of(
    fields: &crate::listings::ListingFields,
    req: &CreateOrder,
) -> ApiResult<Option<sealstream_api::compliance::Accepted>> {
    let statement = sealstream_api::compliance::Statement {
        jurisdiction: req.jurisdiction.clone(),
        purpose: req.purpose.clone(),
        accept_attestation: req.accept_attestation.unwrap_or(false),
    };
    match &fields.compliance {
        Some(preset) => sealstream_api::compliance::Accepted::check(preset, &statement)
            .map(Some)
            .map_err(|e| ApiError::unprocessable(&e.field, e.message)),
        None => Ok(None),
    }
}

/// The buyer of a new order or subscription: `buyer_id` (default: the
/// caller's DID) and the X25519 public key the chunk keys are wrapped to,
/// checked as a buyer access file needs them (fields `buyerId`,
/// `buyerPublicKeyHex`).
pub(crate) fn checked_buyer(
    buyer_id: Option<&str>,
    public_key_hex: &str,
    caller: &Principal,
) -> ApiResult<sealstream_core::access::Buyer> {
    let buyer_id = buyer_id.unwrap_or(&caller.did).trim();
    let buyer = sealstream_core::access::Buyer::new(buyer_id, public_key_hex).map_err(|e| {
        let field = if e.field == "buyer_id" {
            "buyerId"
        } else {
            "buyerPublicKeyHex"
        };
        ApiError::bad_request(field, e.to_string())
    })?;
    if buyer.id.len() > 256 || buyer.id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "buyerId",
            "at most 256 characters, no control characters",
        ));
    }
    Ok(buyer)
}

/// Refuses (409, `listingId`) a rail on an EVM chain whose payments this
/// server does not verify.
pub(crate) fn check_payable(state: &AppState, rail: &Rail) -> ApiResult<()> {
    if let Rail::Evm { chain_id, .. } = rail {
        if !state.evm.contains_key(chain_id) {
            return Err(ApiError::conflict(
                Some("listingId"),
                format!("this server does not verify payments on chain {chain_id}"),
            ));
        }
    }
    Ok(())
}

/// Orders a published listing. The response says how to pay and where to
/// send the proof. The price and rail are those of the listing now.
#[utoipa::path(post, path = sealstream_api::routes::ORDERS, tag = "orders",
    request_body = CreateOrder,
    security(("session" = [])),
    responses(
        (status = 201, description = "The order, with payment instructions", body = OrderView),
        (status = 400, description = "Malformed body or key", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not a buyer", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such published listing", body = crate::openapi::ErrorBody),
        (status = 409, description = "Own listing, or payments on its chain are not verified here", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(req): ApiJson<CreateOrder>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    caller.require(Role::Buyer)?;
    let buyer = checked_buyer(req.buyer_id.as_deref(), &req.buyer_public_key_hex, &caller)?;
    let mut tx = state.store.begin().await?;
    let listing = match crate::listings::db::listing(&mut tx, &req.listing_id).await? {
        Some(l) if l.state == ListingState::Published => l,
        _ => return Err(crate::listings::not_found(&req.listing_id)),
    };
    if listing.owner_did == caller.did {
        return Err(ApiError::conflict(
            Some("listingId"),
            "a seller cannot order their own listing",
        ));
    }
    if listing.kind != crate::listings::ListingKind::Dataset {
        return Err(ApiError::conflict(
            Some("listingId"),
            format!(
                "listing {} is a subscription: subscribe with POST {}",
                listing.id,
                routes::SUBSCRIPTIONS
            ),
        ));
    }
    check_payable(&state, &listing.fields.rail)?;
    let compliance = compliance_of(&listing.fields, &req)?;
    let order = Order {
        id: new_id(),
        listing_id: listing.id.clone(),
        dataset_id: listing.dataset_id.clone(),
        seller_did: listing.owner_did.clone(),
        buyer_did: caller.did.clone(),
        buyer_id: buyer.id.clone(),
        buyer_public_key_hex: hex::encode(buyer.public_key.as_bytes()),
        amount: listing.fields.price.clone(),
        rail: listing.fields.rail.clone(),
        state: OrderState::AwaitingPayment,
        created_at: sealstream_core::utc::now(),
        paid_at: None,
        granted_at: None,
        subscription_id: None,
        compliance,
    };
    db::insert_order(&mut tx, &order).await?;
    let details = audit_details(json!({
        "listingId": order.listing_id,
        "datasetId": order.dataset_id,
        "seller": order.seller_did,
        "amount": order.amount,
        "buyerPublicKeyHex": order.buyer_public_key_hex,
        "compliance": order.compliance.as_ref().map(|c| json!({
            "presetHash": c.preset_hash,
            "jurisdiction": c.jurisdiction,
        })),
    }));
    crate::audit::append(&mut tx, &caller.did, "order.create", &order.id, &details).await?;
    tx.commit().await?;
    tracing::info!(
        order = %order.id,
        listing = %order.listing_id,
        buyer = %crate::logs::Pseudonym::of(&order.buyer_did),
        amount = %order.amount,
        rail = order.rail.kind().as_str(),
        "order created"
    );
    Ok((StatusCode::CREATED, Json(view(&state, &order, &[]))))
}

/// One order, to its buyer or seller.
#[utoipa::path(get, path = sealstream_api::routes::ORDER, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "No such order of the caller's", body = crate::openapi::ErrorBody)))]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderView>> {
    let mut tx = state.store.begin().await?;
    let order = party_order(&mut tx, &id, &caller).await?;
    let shown = db::shown_claims(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(view(&state, &order, &shown)))
}

/// The page size (`limit`, 1 to 200, default 50) of a list by id, after
/// checking that `cursor` and `listing` could be ids: a control character
/// (a NUL, which PostgreSQL refuses in text) or an absurd length is a bad
/// query naming the parameter, not a database error. Shared by the order
/// and subscription lists.
pub(crate) fn list_page(
    limit: Option<u32>,
    cursor: Option<&str>,
    listing: Option<&str>,
) -> ApiResult<u32> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit", "expected 1 to 200"));
    }
    for (field, value) in [("cursor", cursor), ("listing", listing)] {
        if value.is_some_and(|v| !plausible_id(v)) {
            return Err(ApiError::bad_request(field, "not an id"));
        }
    }
    Ok(limit)
}

/// The caller's orders, as buyer or as seller, by id.
#[utoipa::path(get, path = sealstream_api::routes::ORDERS, tag = "orders",
    params(ListQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "A page of orders", body = OrderList),
        (status = 400, description = "Bad query", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<OrderList>> {
    let side = OrderSide::parse(q.as_.as_deref().unwrap_or("buyer"))
        .ok_or_else(|| ApiError::bad_request("as", "expected buyer or seller"))?;
    if let Some(s) = &q.state {
        if OrderState::parse(s).is_none() {
            return Err(ApiError::bad_request(
                "state",
                "expected awaiting-payment, paid, granted or cancelled",
            ));
        }
    }
    let limit = list_page(q.limit, q.cursor.as_deref(), q.listing.as_deref())?;
    let filter = db::OrderFilter {
        party: &caller.did,
        side,
        after: q.cursor.as_deref().unwrap_or_default(),
        state: q.state.as_deref(),
        listing: q.listing.as_deref(),
        limit: limit + 1,
    };
    let mut orders = db::orders(&state.store, &filter).await?;
    let next_cursor = if orders.len() > limit as usize {
        orders.truncate(limit as usize);
        orders.last().map(|o| o.id.clone())
    } else {
        None
    };
    let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    let open = db::open_claims_of(state.store.pool(), &ids).await?;
    Ok(Json(OrderList {
        items: orders
            .iter()
            .map(|o| {
                let claims = open.get(&o.id).map(Vec::as_slice).unwrap_or_default();
                view(&state, o, claims)
            })
            .collect(),
        next_cursor,
    }))
}

/// Cancels an unpaid order (its buyer only). A payment that arrives later
/// is refused.
#[utoipa::path(post, path = sealstream_api::routes::ORDER_CANCEL, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The cancelled order", body = OrderView),
        (status = 404, description = "No such order bought by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Already paid", body = crate::openapi::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderView>> {
    let mut tx = state.store.begin().await?;
    let mut order = bought_order(&mut tx, &id, &caller).await?;
    if order.state != OrderState::AwaitingPayment {
        return Err(ApiError::conflict(
            Some("state"),
            format!("order {id} is {}", order.state.as_str()),
        ));
    }
    if !db::cancel(&mut tx, &id).await? {
        return Err(ApiError::conflict(Some("state"), "the order changed"));
    }
    order.state = OrderState::Cancelled;
    db::close_claims(&mut tx, &id, None, "the order was cancelled").await?;
    crate::audit::append(
        &mut tx,
        &caller.did,
        "order.cancel",
        &id,
        &audit_details(json!({})),
    )
    .await?;
    let shown = db::shown_claims(&mut tx, &id).await?;
    tx.commit().await?;
    tracing::info!(order = %id, "order cancelled");
    Ok(Json(view(&state, &order, &shown)))
}

/// The order routes (merged into the router's small-body group, except
/// the grant upload, which takes `grant_limit` bytes).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(sealstream_api::routes::ORDERS, post(create).get(list))
        .route(sealstream_api::routes::ORDER, get(get_order))
        .route(sealstream_api::routes::ORDER_CANCEL, post(cancel))
        .route(
            sealstream_api::routes::ORDER_PAYMENT_PROOF,
            post(payment::payment_proof),
        )
        .route(
            sealstream_api::routes::ORDER_CONFIRMATION,
            get(payment::confirmation),
        )
        .route(
            sealstream_api::routes::ORDER_MARK_PAID,
            post(payment::mark_paid),
        )
        .route(
            sealstream_api::routes::ORDER_RECEIPT,
            get(receipt::get_receipt),
        )
        .route(sealstream_api::routes::ORDER_LINKS, post(links::create))
        .route(sealstream_api::routes::ORDER_LINK, delete(links::revoke))
        .route(
            sealstream_api::routes::ORDER_RELEASE_MANIFEST,
            get(release::manifest),
        )
        .route(
            sealstream_api::routes::ORDER_RELEASE_FILE,
            get(release::file),
        )
        .route(
            sealstream_api::routes::RECEIPTS_KEY,
            get(receipt::server_key),
        )
}

/// The grant routes and the dispute routes (evidence carries a chunk's
/// ciphertext); the server gives them the grant body limit
/// (`grant_limit`) and the upload timeout.
pub fn grant_routes() -> Router<AppState> {
    Router::new()
        .route(
            sealstream_api::routes::ORDER_GRANT,
            put(grant::upload).get(grant::show),
        )
        .route(
            sealstream_api::routes::ORDER_DISPUTE,
            post(crate::escrow::routes::dispute).get(crate::escrow::routes::show),
        )
        .route(
            sealstream_api::routes::ORDER_DISPUTE_RESOLVE,
            post(crate::escrow::routes::resolve),
        )
}
