//! Subscriptions (docs/subscriptions.md): a buyer subscribes to a
//! published `subscription` listing with their X25519 key; each period is
//! paid by an order of its own (`orders.subscription_id`), so the order
//! routes, payment claims, watcher and invoice marking serve it unchanged,
//! and `period_paid` makes the payment take effect here in the same
//! transaction.
//!
//! States: `awaiting-payment` → `active` (first period paid) → `grace`
//! (at `T`) → `lapsed` (at `T + G`); a renewal paid while active or in
//! grace moves `T` by one period; the buyer cancels (access to `T`), the
//! seller revokes (access ends now). Time-driven changes are made by
//! `settle`, from the background [`sweep`] or before any change of a
//! subscription, and recorded with the time they took effect. Every change
//! is an audit event (`subscription.*`) and a row of the history.
//!
//! A subscription is visible to its buyer and its seller only (404 to
//! anyone else, as for one that does not exist).

pub(crate) mod db;
pub mod entitlement;
pub mod feed;
pub mod feed_reads;
pub mod long_poll;
pub mod windows;

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::RngCore;
use serde_json::{json, Value};

pub use sealstream_api::subscriptions::{
    BuyerKeyView, CreateSubscription, HistoryEntry, PendingGrant, PendingGrants, PendingQuery,
    PeriodView, PostSubscriptionGrants, RenewSubscription, RevokeSubscription,
    SubscriptionGrantsStored, SubscriptionHistory, SubscriptionList, SubscriptionQuery,
    SubscriptionSide, SubscriptionState, SubscriptionView,
};

use self::entitlement::{Chunk, KeyFrom, Window};
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::listings::model::plausible_id;
use crate::listings::{audit_details, HistoryPolicy, ListingKind, ListingState, Rail};
use crate::orders::{Order, OrderState};
use crate::server::AppState;
use crate::store::Tx;

/// Subscription ids: `sub_` + 32 hex digits (128 random bits).
pub const ID_PREFIX: &str = "sub_";
/// Longest revocation reason, in characters.
pub const MAX_REASON: usize = 500;
/// Most entries of one grant upload.
pub const MAX_GRANT_ENTRIES: usize = 1_000;
/// Subscriptions settled per sweep pass.
const SWEEP_BATCH: i64 = 200;
/// The actor of time-driven changes.
pub const SERVER_ACTOR: &str = "server";

/// A `subscriptions` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// The listing.
    pub listing_id: String,
    /// The listing's owner.
    pub seller_did: String,
    /// Who subscribed.
    pub buyer_did: String,
    /// The access entries' recipient id.
    pub buyer_id: String,
    /// The machine.
    pub machine_did: String,
    /// Its topic.
    pub topic: String,
    /// `P`, seconds.
    pub period_seconds: i64,
    /// `G`, seconds.
    pub grace_seconds: i64,
    /// History policy.
    pub history: HistoryPolicy,
    /// Price per period, base units.
    pub amount: String,
    /// The rail.
    pub rail: Rail,
    /// The state as of the last change or sweep.
    pub state: SubscriptionState,
    /// When the first payment was confirmed.
    pub active_from: Option<i64>,
    /// `T`.
    pub paid_through: Option<i64>,
    /// `E`, once final.
    pub access_end: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Created (UTC).
    pub created_at: String,
    /// Last changed (UTC).
    pub updated_at: String,
}

impl Subscription {
    /// The entitlement window: `E` is the stored end once final, `T + G`
    /// before (see [`Window::access_end`]).
    pub fn window(&self, first_live_index: u64) -> Window {
        let end = match (self.access_end, self.paid_through) {
            (Some(e), _) => e,
            (None, Some(t)) => t.saturating_add(self.grace_seconds),
            (None, None) => i64::MIN,
        };
        Window {
            active_from: self.active_from,
            access_end: end,
            history: self.history,
            first_live_index,
        }
    }

    /// Whether `caller` is the buyer, or the seller while an owner.
    fn is_party(&self, caller: &Principal) -> ApiResult<bool> {
        Ok(self.buyer_did == caller.did || caller.owner_access(&self.seller_did)?)
    }
}

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{ID_PREFIX}{}", hex::encode(bytes))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("subscription {id} not found"))
}

fn utc(t: i64) -> String {
    sealstream_core::utc::format_seconds(t.max(0))
}

/// A change to record: its event name, when it took effect and what it
/// carried.
struct Change {
    event: &'static str,
    effective: i64,
    details: Value,
}

/// Records `changes` of `s` (already applied to it; it was `was`): the
/// row, a history row and an audit event (`subscription.<event>`) each.
async fn record(
    tx: &mut Tx,
    s: &mut Subscription,
    was: db::Was,
    actor: &str,
    changes: &[Change],
) -> ApiResult<()> {
    let now = sealstream_core::utc::now();
    s.updated_at = now.clone();
    if !db::update(tx, s, was).await? {
        return Err(ApiError::conflict(
            Some("state"),
            format!("subscription {} changed meanwhile; try again", s.id),
        ));
    }
    for c in changes {
        db::append_history(
            tx,
            &s.id,
            &db::HistoryRow {
                event: c.event,
                state: s.state,
                effective: c.effective,
                recorded_at: &now,
                actor,
                details: &c.details,
            },
        )
        .await?;
        let mut details = c.details.clone();
        if let Some(obj) = details.as_object_mut() {
            obj.insert("state".into(), json!(s.state.as_str()));
            obj.insert("effectiveAt".into(), json!(utc(c.effective)));
        }
        crate::audit::append(
            tx,
            actor,
            &format!("subscription.{}", c.event),
            &s.id,
            &audit_details(details),
        )
        .await?;
    }
    Ok(())
}

/// The time-driven changes of `s` due at `now`, applied to it: `grace` at
/// `T`, `lapsed` at `T + G` (with `E = T + G`).
fn due_changes(s: &mut Subscription, now: i64) -> Vec<Change> {
    let mut out = Vec::new();
    let Some(t) = s.paid_through else {
        return out;
    };
    let end = t.saturating_add(s.grace_seconds);
    if s.state == SubscriptionState::Active && now >= t {
        s.state = SubscriptionState::Grace;
        out.push(Change {
            event: "grace",
            effective: t,
            details: json!({ "paidThrough": utc(t), "graceUntil": utc(end) }),
        });
    }
    if s.state == SubscriptionState::Grace && now >= end {
        s.state = SubscriptionState::Lapsed;
        s.access_end = Some(end);
        s.end_reason = Some("not renewed within the grace window".into());
        out.push(Change {
            event: "lapsed",
            effective: end,
            details: json!({ "accessEnds": utc(end) }),
        });
    }
    out
}

/// Cancels the unpaid period orders of a subscription that ended, so a
/// later payment of one is refused.
async fn close_unpaid(tx: &mut Tx, id: &str, why: &str) -> ApiResult<()> {
    for p in db::periods(tx, id).await? {
        if p.order_state == OrderState::AwaitingPayment
            && crate::orders::cancel_unpaid(tx, &p.order_id).await?
        {
            crate::orders::close_claims(tx, &p.order_id, None, why).await?;
        }
    }
    Ok(())
}

/// Whether `s` has a time-driven change due at `now` ([`settle`] would
/// record one).
fn changes_due(s: &Subscription, now: i64) -> bool {
    !due_changes(&mut s.clone(), now).is_empty()
}

/// Applies the time-driven changes of `s` due at `now` and records them.
pub(crate) async fn settle(tx: &mut Tx, s: &mut Subscription, now: i64) -> ApiResult<()> {
    let was = db::Was::of(s);
    let changes = due_changes(s, now);
    if changes.is_empty() {
        return Ok(());
    }
    record(tx, s, was, SERVER_ACTOR, &changes).await?;
    if s.state == SubscriptionState::Lapsed {
        close_unpaid(tx, &s.id, "the subscription lapsed").await?;
    }
    tracing::info!(subscription = %s.id, state = s.state.as_str(), "subscription settled");
    Ok(())
}

/// Whether reading `s` at `now` has something to write: a time-driven
/// change ([`settle`]) or a cut-off notice to issue ([`issue_cutoff`]).
/// Readers that find nothing due read in a snapshot without the write
/// lock; the others read again in a writing transaction.
pub(crate) async fn writes_due(tx: &mut Tx, s: &Subscription, now: i64) -> ApiResult<bool> {
    if changes_due(s, now) {
        return Ok(true);
    }
    let cutoff_due = s.state.is_final() && s.access_end.is_some_and(|e| e <= now);
    Ok(cutoff_due && db::cutoff(tx, &s.id).await?.is_none())
}

/// The cut-off notice of `s` as of `now`, issued first if it is due: `s`
/// is final (lapsed, cancelled, revoked) and its access end `E` has passed
/// (`E ≤ now`; a cancellation's `E` is `T`, which may lie ahead). The
/// notice names the highest chunk index the subscription is entitled to
/// (every chunk accepted before `E` that [`entitlement::entitled`] grants
/// it, and any granted to it before the end; `null` for none), why it
/// ended and `E`; it is signed with the
/// receipt key, stored once (a second issuer stores nothing) and a
/// `subscription.cutoff` audit event. `None` while not due.
pub(crate) async fn issue_cutoff(
    state: &AppState,
    tx: &mut Tx,
    s: &Subscription,
    now: i64,
) -> ApiResult<Option<String>> {
    use sealstream_api::receipts::{CutoffReason, SubscriptionCutoff};
    let reason = match s.state {
        SubscriptionState::Lapsed => CutoffReason::Lapsed,
        SubscriptionState::Cancelled => CutoffReason::Cancelled,
        SubscriptionState::Revoked => CutoffReason::Revoked,
        _ => return Ok(None),
    };
    if let Some(held) = db::cutoff(tx, &s.id).await? {
        return Ok(Some(held));
    }
    let Some(end) = s.access_end.filter(|e| *e <= now) else {
        return Ok(None);
    };
    let (w, _) = window_of(tx, s).await?;
    // The entitled indexes are one range ending at the last chunk accepted
    // before E, if that one is entitled at all.
    let last = db::last_index_before(tx, &s.machine_did, &s.topic, end)
        .await?
        .map(|(index, _, accepted)| Chunk {
            index: index.max(0) as u64,
            accepted,
        })
        .filter(|c| entitlement::entitled(&w, *c))
        .map(|c| c.index);
    // A chunk granted before the end stays the subscription's, even if it
    // was accepted in the second the access ended (a revocation in the
    // second of the chunk's grant): its key was delivered.
    let granted = db::last_granted(&mut **tx, &s.id)
        .await?
        .and_then(|i| u64::try_from(i).ok());
    let last = last.max(granted);
    // Issued at the time it was decided at (the sweep's, in tests an
    // injected one), so never before `E`.
    let issued_at = utc(now);
    let cutoff = SubscriptionCutoff {
        subscription_id: s.id.clone(),
        listing_id: s.listing_id.clone(),
        seller_did: s.seller_did.clone(),
        buyer_did: s.buyer_did.clone(),
        buyer_id: s.buyer_id.clone(),
        machine_did: s.machine_did.clone(),
        topic: s.topic.clone(),
        last_index_entitled: last,
        reason,
        detail: s
            .end_reason
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| reason.to_string()),
        effective_at: utc(end),
        issued_at: issued_at.clone(),
    };
    let document = cutoff
        .sign(&state.receipt_key)
        .map_err(|e| ApiError::internal("cut-off notice", e))?
        .to_json_pretty();
    if !db::insert_cutoff(tx, &s.id, &document, &issued_at).await? {
        return Ok(db::cutoff(tx, &s.id).await?);
    }
    crate::audit::append(
        tx,
        SERVER_ACTOR,
        "subscription.cutoff",
        &s.id,
        &audit_details(json!({
            "reason": reason.as_str(),
            "lastIndexEntitled": last,
            "effectiveAt": utc(end),
        })),
    )
    .await?;
    tracing::info!(subscription = %s.id, reason = reason.as_str(), "cut-off notice issued");
    Ok(Some(document))
}

/// One pass of the sweep at `now` (Unix seconds; the system clock in the
/// background task, any time in tests): every subscription whose grace or
/// lapse is due is settled, and every final one whose access ended gets
/// its cut-off notice (`issue_cutoff`). Returns how many changed.
///
/// A subscription that changed while it was being settled (a renewal or an
/// end committed meanwhile, by this process or another) is left for the
/// next pass, which reads it again; the others still go through.
pub async fn sweep(state: &AppState, now: i64) -> ApiResult<usize> {
    let mut n = 0;
    loop {
        let ids = db::due(&state.store, now, SWEEP_BATCH).await?;
        if ids.is_empty() {
            return Ok(n);
        }
        let mut changed_meanwhile = 0;
        for id in &ids {
            let mut tx = state.store.begin().await?;
            let Some(mut s) = db::subscription(&mut tx, id).await? else {
                continue;
            };
            let settled = async {
                settle(&mut tx, &mut s, now).await?;
                issue_cutoff(state, &mut tx, &s, now).await
            }
            .await;
            match settled {
                Ok(_) => {
                    tx.commit().await?;
                    n += 1;
                    crate::wake::send(state, crate::wake::Signal::Changed(id.clone()));
                }
                Err(e) if e.status == StatusCode::CONFLICT => {
                    // Rolled back as `tx` drops.
                    tracing::info!(subscription = %id, "changed meanwhile; settled on the next pass");
                    changed_meanwhile += 1;
                }
                Err(e) => return Err(e),
            }
        }
        if (ids.len() as i64) < SWEEP_BATCH || changed_meanwhile == ids.len() {
            return Ok(n);
        }
    }
}

/// Sweeps every `every` with the system clock.
pub fn spawn_sweeper(state: AppState, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let job = crate::lease::Job::SubscriptionSweep;
            if !state.leases.leading(&state.store, job, every).await {
                continue;
            }
            if let Err(e) = sweep(&state, sealstream_core::utc::now_unix()).await {
                tracing::error!("subscription sweep failed: {}", e.message);
            }
        }
    })
}

/// Makes the payment of the period `order` pays take effect at `now`
/// (UTC), in the payment's transaction: the first period activates the
/// subscription (`activeFrom` = now, `T` = now + P), a renewal moves `T`
/// by P (without a gap when paid in grace) and brings its new key into
/// force from now. A 409 when the subscription ended meanwhile (the
/// payment is then not recorded).
pub(crate) async fn period_paid(
    tx: &mut Tx,
    order: &Order,
    now: &str,
    actor: &str,
) -> ApiResult<()> {
    let (id, number, new_key) = db::period_of_order(tx, &order.id)
        .await?
        .ok_or_else(|| ApiError::internal("order", "a subscription order without its period"))?;
    let mut s = db::subscription(tx, &id)
        .await?
        .ok_or_else(|| ApiError::internal("order", "the order's subscription is missing"))?;
    let at = sealstream_core::utc::parse_seconds(now)
        .ok_or_else(|| ApiError::internal("order", "payment time"))?;
    settle(tx, &mut s, at).await?;
    if s.state.is_final() {
        return Err(ApiError::conflict(
            Some("orderId"),
            format!(
                "subscription {id} is {}: its period can no longer be paid",
                s.state
            ),
        ));
    }
    db::mark_period_paid(tx, &order.id, now).await?;
    let was = db::Was::of(&s);
    let mut changes = Vec::new();
    if s.active_from.is_none() {
        let t = at.saturating_add(s.period_seconds);
        s.active_from = Some(at);
        s.paid_through = Some(t);
        s.state = SubscriptionState::Active;
        changes.push(Change {
            event: "activated",
            effective: at,
            details: json!({ "orderId": order.id, "period": number, "paidThrough": utc(t) }),
        });
    } else {
        let t = s
            .paid_through
            .unwrap_or(at)
            .saturating_add(s.period_seconds);
        s.paid_through = Some(t);
        s.state = if at < t {
            SubscriptionState::Active
        } else {
            SubscriptionState::Grace
        };
        changes.push(Change {
            event: "renewed",
            effective: at,
            details: json!({ "orderId": order.id, "period": number, "paidThrough": utc(t) }),
        });
        if let Some(key) = &new_key {
            let seq = db::keys(tx, &id).await?.len() as i64 + 1;
            db::insert_key(tx, &id, seq, key, at).await?;
            changes.push(Change {
                event: "key-rotated",
                effective: at,
                details: json!({ "orderId": order.id, "buyerPublicKeyHex": key }),
            });
        }
    }
    record(tx, &mut s, was, actor, &changes).await?;
    tracing::info!(subscription = %id, period = number, state = s.state.as_str(), "subscription period paid");
    Ok(())
}

/// The subscription if `caller` is its buyer or seller (404 otherwise).
async fn party(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Subscription> {
    match db::subscription(tx, id).await? {
        Some(s) if s.is_party(caller)? => Ok(s),
        _ => Err(not_found(id)),
    }
}

/// The subscription if `caller` is its buyer, its seller, or the machine
/// whose topic it covers (404 otherwise): a machine serving its own topics
/// peer to peer reads the entitlements it serves (docs/p2p.md); it reads
/// nothing else of the subscription (history, cut-off) and changes nothing.
async fn readable(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Subscription> {
    match db::subscription(tx, id).await? {
        Some(s)
            if s.is_party(caller)?
                || (caller.has(sealstream_api::auth::Role::Machine)
                    && crate::auth::same_did(&caller.did, &s.machine_did)) =>
        {
            Ok(s)
        }
        _ => Err(not_found(id)),
    }
}

/// The subscription if `caller` is its buyer (404 otherwise: the seller
/// revokes, it does not cancel or renew).
async fn bought(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Subscription> {
    match db::subscription(tx, id).await? {
        Some(s) if s.buyer_did == caller.did => Ok(s),
        _ => Err(not_found(id)),
    }
}

/// The subscription if `caller` is its seller and still an owner (404
/// otherwise; 403 once the seller's owner role is revoked).
async fn sold(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Subscription> {
    match db::subscription(tx, id).await? {
        Some(s) if caller.owner_access(&s.seller_did)? => Ok(s),
        _ => Err(not_found(id)),
    }
}

/// The view of `s`, read in `tx`.
async fn view(state: &AppState, tx: &mut Tx, s: &Subscription) -> ApiResult<SubscriptionView> {
    let periods = db::periods(tx, &s.id).await?;
    let keys = db::keys(tx, &s.id).await?;
    let unpaid = periods
        .iter()
        .rev()
        .find(|p| p.order_state == OrderState::AwaitingPayment);
    let payment = match unpaid {
        Some(p) => crate::orders::db::order(tx, &p.order_id)
            .await?
            .map(|o| crate::orders::instructions(state, &o)),
        None => None,
    };
    let current = keys
        .last()
        .map(|k| k.public_key_hex.clone())
        .unwrap_or_default();
    Ok(SubscriptionView {
        id: s.id.clone(),
        listing_id: s.listing_id.clone(),
        seller_did: s.seller_did.clone(),
        buyer_did: s.buyer_did.clone(),
        buyer_id: s.buyer_id.clone(),
        buyer_public_key_hex: current,
        machine_did: s.machine_did.clone(),
        topic: s.topic.clone(),
        period_seconds: s.period_seconds.max(0) as u64,
        grace_seconds: s.grace_seconds.max(0) as u64,
        history: s.history,
        amount: s.amount.clone(),
        state: s.state,
        active_from: s.active_from.map(utc),
        paid_through: s.paid_through.map(utc),
        grace_until: match s.state {
            SubscriptionState::Active | SubscriptionState::Grace => s
                .paid_through
                .map(|t| utc(t.saturating_add(s.grace_seconds))),
            _ => None,
        },
        access_ends: s.access_end.map(utc),
        end_reason: s.end_reason.clone(),
        keys: keys
            .iter()
            .map(|k| BuyerKeyView {
                public_key_hex: k.public_key_hex.clone(),
                applies_from: utc(k.applies_from),
            })
            .collect(),
        periods: periods
            .iter()
            .map(|p| PeriodView {
                number: p.number.clamp(0, u32::MAX as i64) as u32,
                order_id: p.order_id.clone(),
                state: p.order_state,
                new_buyer_public_key_hex: p.new_public_key_hex.clone(),
                created_at: p.created_at.clone(),
                paid_at: p.paid_at.clone(),
            })
            .collect(),
        payment,
        created_at: s.created_at.clone(),
    })
}

/// Makes the order paying period `number` of `s` (with its new key, if
/// any) and its period row, and records its creation in the audit log.
async fn new_period(
    tx: &mut Tx,
    s: &Subscription,
    number: i64,
    buyer_key: &str,
    new_key: Option<&str>,
    caller: &Principal,
) -> ApiResult<String> {
    let order = Order {
        id: crate::orders::new_id(),
        listing_id: s.listing_id.clone(),
        dataset_id: String::new(),
        seller_did: s.seller_did.clone(),
        buyer_did: s.buyer_did.clone(),
        buyer_id: s.buyer_id.clone(),
        buyer_public_key_hex: buyer_key.to_string(),
        amount: s.amount.clone(),
        rail: s.rail.clone(),
        state: OrderState::AwaitingPayment,
        created_at: sealstream_core::utc::now(),
        paid_at: None,
        granted_at: None,
        subscription_id: Some(s.id.clone()),
        compliance: None,
    };
    crate::orders::insert_order(tx, &order).await?;
    db::insert_period(tx, &s.id, number, &order.id, new_key, &order.created_at).await?;
    let details = audit_details(json!({
        "listingId": order.listing_id,
        "subscriptionId": s.id,
        "period": number,
        "seller": order.seller_did,
        "amount": order.amount,
        "buyerPublicKeyHex": order.buyer_public_key_hex,
    }));
    crate::audit::append(tx, &caller.did, "order.create", &order.id, &details).await?;
    Ok(order.id)
}

/// Subscribes to a published subscription listing: the subscription awaits
/// the payment of its first period, an order of its own (`periods[0]`,
/// paid with the order routes).
#[utoipa::path(post, path = sealstream_api::routes::SUBSCRIPTIONS, tag = "subscriptions",
    request_body = CreateSubscription,
    security(("session" = [])),
    responses(
        (status = 201, description = "The subscription, with how to pay its first period", body = SubscriptionView),
        (status = 400, description = "Malformed body or key (field named)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not a buyer", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such published listing", body = crate::openapi::ErrorBody),
        (status = 409, description = "A dataset listing, the caller's own listing, or payments on its chain are not verified here", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(req): ApiJson<CreateSubscription>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    caller.require(Role::Buyer)?;
    let buyer =
        crate::orders::checked_buyer(req.buyer_id.as_deref(), &req.buyer_public_key_hex, &caller)?;
    let mut tx = state.store.begin().await?;
    let listing = match crate::listings::db::listing(&mut tx, &req.listing_id).await? {
        Some(l) if l.state == ListingState::Published => l,
        _ => return Err(crate::listings::not_found(&req.listing_id)),
    };
    let terms = match (&listing.kind, &listing.subscription) {
        (ListingKind::Subscription, Some(t)) => t.clone(),
        _ => {
            return Err(ApiError::conflict(
                Some("listingId"),
                format!(
                    "listing {} sells a dataset: order it with POST {}",
                    listing.id,
                    sealstream_api::routes::ORDERS
                ),
            ))
        }
    };
    if listing.owner_did == caller.did {
        return Err(ApiError::conflict(
            Some("listingId"),
            "a seller cannot subscribe to their own listing",
        ));
    }
    crate::orders::check_payable(&state, &listing.fields.rail)?;
    let now = sealstream_core::utc::now();
    let key = hex::encode(buyer.public_key.as_bytes());
    let s = Subscription {
        id: new_id(),
        listing_id: listing.id.clone(),
        seller_did: listing.owner_did.clone(),
        buyer_did: caller.did.clone(),
        buyer_id: buyer.id.clone(),
        machine_did: terms.machine_did.clone(),
        topic: terms.topic.clone(),
        period_seconds: terms.period_seconds.min(i64::MAX as u64) as i64,
        grace_seconds: terms.grace_seconds.min(i64::MAX as u64) as i64,
        history: terms.history,
        amount: listing.fields.price.clone(),
        rail: listing.fields.rail.clone(),
        state: SubscriptionState::AwaitingPayment,
        active_from: None,
        paid_through: None,
        access_end: None,
        end_reason: None,
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    db::insert(&mut tx, &s).await?;
    // The first key applies from the start of time (history chunks use it).
    db::insert_key(&mut tx, &s.id, 1, &key, 0).await?;
    let order_id = new_period(&mut tx, &s, 1, &key, None, &caller).await?;
    let at = sealstream_core::utc::now_unix();
    let details = json!({
        "listingId": s.listing_id,
        "seller": s.seller_did,
        "machineDid": s.machine_did,
        "topic": s.topic,
        "periodSeconds": s.period_seconds,
        "graceSeconds": s.grace_seconds,
        "history": s.history,
        "amount": s.amount,
        "orderId": order_id,
        "buyerPublicKeyHex": key,
    });
    db::append_history(
        &mut tx,
        &s.id,
        &db::HistoryRow {
            event: "created",
            state: s.state,
            effective: at,
            recorded_at: &now,
            actor: &caller.did,
            details: &details,
        },
    )
    .await?;
    crate::audit::append(
        &mut tx,
        &caller.did,
        "subscription.created",
        &s.id,
        &audit_details(details),
    )
    .await?;
    let view = view(&state, &mut tx, &s).await?;
    tx.commit().await?;
    tracing::info!(subscription = %s.id, listing = %s.listing_id, "subscription created");
    Ok((StatusCode::CREATED, Json(view)))
}

/// One subscription, to its buyer or seller, or to the machine whose topic
/// it covers (its time-driven state brought up to date first).
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTION, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription of the caller's", body = crate::openapi::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let mut tx = state.store.begin().await?;
    let mut s = readable(&mut tx, &id, &caller).await?;
    settle(&mut tx, &mut s, sealstream_core::utc::now_unix()).await?;
    let view = view(&state, &mut tx, &s).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// The caller's subscriptions, as buyer or as seller, by id.
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTIONS, tag = "subscriptions",
    params(SubscriptionQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "A page of subscriptions", body = SubscriptionList),
        (status = 400, description = "Bad query (parameter named)", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(q): ApiQuery<SubscriptionQuery>,
) -> ApiResult<Json<SubscriptionList>> {
    let side = SubscriptionSide::parse(q.as_.as_deref().unwrap_or("buyer"))
        .ok_or_else(|| ApiError::bad_request("as", "expected buyer or seller"))?;
    if let Some(s) = &q.state {
        if SubscriptionState::parse(s).is_none() {
            return Err(ApiError::bad_request(
                "state",
                "expected awaiting-payment, active, grace, lapsed, cancelled or revoked",
            ));
        }
    }
    let limit = crate::orders::list_page(q.limit, q.cursor.as_deref(), q.listing.as_deref())?;
    let filter = db::Filter {
        party: &caller.did,
        column: match side {
            SubscriptionSide::Buyer => "buyer_did",
            SubscriptionSide::Seller => "seller_did",
        },
        after: q.cursor.as_deref().unwrap_or_default(),
        state: q.state.as_deref(),
        listing: q.listing.as_deref(),
        limit: limit + 1,
    };
    let mut subs = db::list(&state.store, &filter).await?;
    let next_cursor = if subs.len() > limit as usize {
        subs.truncate(limit as usize);
        subs.last().map(|s| s.id.clone())
    } else {
        None
    };
    let mut tx = state.store.begin().await?;
    let mut items = Vec::with_capacity(subs.len());
    for s in &subs {
        items.push(view(&state, &mut tx, s).await?);
    }
    tx.commit().await?;
    Ok(Json(SubscriptionList { items, next_cursor }))
}

/// Cancels a subscription (its buyer only): access runs to the end of the
/// paid time, without grace; before the first payment, it ends with no
/// access. Unpaid periods are cancelled with it.
#[utoipa::path(post, path = sealstream_api::routes::SUBSCRIPTION_CANCEL, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The cancelled subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription bought by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Already ended (`state`)", body = crate::openapi::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SubscriptionView>> {
    let mut tx = state.store.begin().await?;
    let s = bought(&mut tx, &id, &caller).await?;
    // Access runs to T (no grace), or ends now when T has passed (in
    // grace: the chunks granted in grace stay granted), or ends unstarted.
    let ending = Ending {
        to: SubscriptionState::Cancelled,
        access_end: |s: &Subscription, now: i64| s.paid_through.map_or(now, |t| t.max(now)),
        reason: "cancelled by the buyer",
        details: json!({}),
    };
    end(&state, tx, s, &caller, ending).await
}

/// Revokes a subscription (its seller only), with a reason: access ends
/// now; chunks accepted from now on are not granted to it.
#[utoipa::path(post, path = sealstream_api::routes::SUBSCRIPTION_REVOKE, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    request_body = RevokeSubscription,
    security(("session" = [])),
    responses(
        (status = 200, description = "The revoked subscription", body = SubscriptionView),
        (status = 400, description = "No reason, or too long (`reason`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription sold by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Already ended (`state`)", body = crate::openapi::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RevokeSubscription>,
) -> ApiResult<Json<SubscriptionView>> {
    let reason = req.reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON
        || reason.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "reason",
            format!("1 to {MAX_REASON} characters, no control characters"),
        ));
    }
    let mut tx = state.store.begin().await?;
    let s = sold(&mut tx, &id, &caller).await?;
    let ending = Ending {
        to: SubscriptionState::Revoked,
        access_end: |_: &Subscription, now: i64| now,
        reason,
        details: json!({ "reason": reason }),
    };
    end(&state, tx, s, &caller, ending).await
}

/// How [`end`] ends a subscription: cancelled by its buyer or revoked by
/// its seller.
struct Ending<'a, F> {
    /// The final state it moves to.
    to: SubscriptionState,
    /// When its access ends, from the settled subscription and now.
    access_end: F,
    /// Why it ended, kept with it.
    reason: &'a str,
    /// The event's details (an object), to which `accessEnds` is added.
    details: Value,
}

/// Ends a subscription that is not final yet (cancel, revoke): settles it
/// now (409 on `state` if it has ended already), moves it to the final
/// state with the event of that name, cancels its unpaid periods, issues
/// the cutoff, commits and wakes its feeds.
async fn end<F>(
    state: &AppState,
    mut tx: Tx,
    mut s: Subscription,
    caller: &Principal,
    ending: Ending<'_, F>,
) -> ApiResult<Json<SubscriptionView>>
where
    F: FnOnce(&Subscription, i64) -> i64,
{
    let now = sealstream_core::utc::now_unix();
    settle(&mut tx, &mut s, now).await?;
    let id = s.id.clone();
    if s.state.is_final() {
        return Err(ApiError::conflict(
            Some("state"),
            format!("subscription {id} is {}", s.state),
        ));
    }
    let was = db::Was::of(&s);
    let end = (ending.access_end)(&s, now);
    let mut details = ending.details;
    details["accessEnds"] = json!(utc(end));
    s.state = ending.to;
    s.access_end = Some(end);
    s.end_reason = Some(ending.reason.to_string());
    record(
        &mut tx,
        &mut s,
        was,
        &caller.did,
        &[Change {
            event: ending.to.as_str(),
            effective: now,
            details,
        }],
    )
    .await?;
    close_unpaid(&mut tx, &id, &format!("the subscription was {}", ending.to)).await?;
    issue_cutoff(state, &mut tx, &s, now).await?;
    let view = view(state, &mut tx, &s).await?;
    tx.commit().await?;
    crate::wake::send(state, crate::wake::Signal::Changed(id.clone()));
    tracing::info!(subscription = %id, "subscription {}", ending.to);
    Ok(Json(view))
}

/// Asks for one more period (its buyer only, while active or in grace),
/// optionally with a new X25519 key: the new period's order is in
/// `periods` and `payment`; it takes effect when paid.
#[utoipa::path(post, path = sealstream_api::routes::SUBSCRIPTION_RENEWALS, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    request_body = RenewSubscription,
    security(("session" = [])),
    responses(
        (status = 201, description = "The subscription with its new, unpaid period", body = SubscriptionView),
        (status = 400, description = "Malformed key (`buyerPublicKeyHex`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription bought by the caller", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not active or in grace, or a period already awaits payment (`state`)", body = crate::openapi::ErrorBody)))]
pub async fn renew(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RenewSubscription>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let mut tx = state.store.begin().await?;
    let mut s = bought(&mut tx, &id, &caller).await?;
    let new_key = match &req.buyer_public_key_hex {
        Some(k) => {
            let b = crate::orders::checked_buyer(Some(&s.buyer_id), k, &caller)?;
            Some(hex::encode(b.public_key.as_bytes()))
        }
        None => None,
    };
    settle(&mut tx, &mut s, sealstream_core::utc::now_unix()).await?;
    if !matches!(
        s.state,
        SubscriptionState::Active | SubscriptionState::Grace
    ) {
        return Err(ApiError::conflict(
            Some("state"),
            format!(
                "subscription {id} is {}: only an active subscription or one in grace is renewed",
                s.state
            ),
        ));
    }
    let periods = db::periods(&mut tx, &id).await?;
    if let Some(p) = periods
        .iter()
        .find(|p| p.order_state == OrderState::AwaitingPayment)
    {
        return Err(ApiError::conflict(
            Some("state"),
            format!(
                "period {} (order {}) awaits payment: pay or wait for it first",
                p.number, p.order_id
            ),
        ));
    }
    let number = periods.last().map_or(1, |p| p.number) + 1;
    let current = db::keys(&mut tx, &id)
        .await?
        .last()
        .map(|k| k.public_key_hex.clone())
        .unwrap_or_default();
    let order_key = new_key.clone().unwrap_or(current);
    new_period(&mut tx, &s, number, &order_key, new_key.as_deref(), &caller).await?;
    let view = view(&state, &mut tx, &s).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A subscription's history, to its buyer or seller.
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTION_HISTORY, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Its history, oldest first", body = SubscriptionHistory),
        (status = 404, description = "No such subscription of the caller's", body = crate::openapi::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SubscriptionHistory>> {
    let mut tx = state.store.begin().await?;
    let mut s = party(&mut tx, &id, &caller).await?;
    settle(&mut tx, &mut s, sealstream_core::utc::now_unix()).await?;
    let entries = db::history(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(SubscriptionHistory {
        subscription_id: id,
        entries,
    }))
}

/// The signed cut-off notice of a final subscription, to its buyer or
/// seller (issued first if it is due).
#[utoipa::path(get, path = sealstream_api::routes::SUBSCRIPTION_CUTOFF, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The `sealstream.subscription-cutoff.v1` document", content_type = "application/json"),
        (status = 404, description = "No such subscription of the caller's, or it has not ended (its access end has not passed)", body = crate::openapi::ErrorBody)))]
pub async fn cutoff(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let mut tx = state.store.begin().await?;
    let mut s = party(&mut tx, &id, &caller).await?;
    let now = sealstream_core::utc::now_unix();
    settle(&mut tx, &mut s, now).await?;
    let document = issue_cutoff(&state, &mut tx, &s, now).await?;
    tx.commit().await?;
    let document = document.ok_or_else(|| {
        ApiError::not_found(format!(
            "subscription {id} has no cut-off notice: it is {} and its access has not ended",
            s.state
        ))
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document,
    )
        .into_response())
}

/// The entitlement window of `s` in `tx`, with its keys.
async fn window_of(tx: &mut Tx, s: &Subscription) -> ApiResult<(Window, Vec<KeyFrom>)> {
    windows_of(tx, std::slice::from_ref(s), None)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("subscription window", "none read".to_string()))
}

/// The entitlement windows of `subs` (subscriptions of one topic), with
/// their keys, in `subs` order: two statements whatever their number. With
/// `marks`, the counts of chunks before each activation kept there are
/// brought up to date (the chunks since counted) rather than counted
/// whole, and kept again ([`GrantMarks::keep_first_live`]).
async fn windows_of(
    tx: &mut Tx,
    subs: &[Subscription],
    marks: Option<&GrantMarks>,
) -> ApiResult<Vec<(Window, Vec<KeyFrom>)>> {
    let Some(first) = subs.first() else {
        return Ok(Vec::new());
    };
    debug_assert!(subs
        .iter()
        .all(|s| s.machine_did == first.machine_did && s.topic == first.topic));
    let starts: Vec<(&str, i64, Option<db::FirstLive>)> = subs
        .iter()
        .filter_map(|s| {
            let at = s.active_from?;
            Some((
                s.id.as_str(),
                at,
                marks.and_then(|m| m.first_live(&s.id, at)),
            ))
        })
        .collect();
    let first_live = if starts.is_empty() {
        HashMap::new()
    } else {
        db::first_live(tx, &first.machine_did, &first.topic, &starts).await?
    };
    if let Some(marks) = marks {
        for (id, at, _) in &starts {
            if let Some(n) = first_live.get(*id) {
                marks.keep_first_live(id, *at, *n);
            }
        }
    }
    let ids: Vec<&str> = subs.iter().map(|s| s.id.as_str()).collect();
    let mut keys = db::keys_of(tx, &ids).await?;
    Ok(subs
        .iter()
        .map(|s| {
            let first_live = first_live.get(&s.id).map_or(0, |n| n.count);
            (s.window(first_live), keys.remove(&s.id).unwrap_or_default())
        })
        .collect())
}

/// The (subscription, chunk, buyer key) pairs of a topic that are entitled
/// and not granted yet: what the granter wraps. For the machine's owner or
/// an admin (the server's operator).
#[utoipa::path(get, path = sealstream_api::routes::TOPIC_PENDING_GRANTS, tag = "subscriptions",
    params(
        ("did" = String, Path, description = "The machine's DID", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
        ("topic" = String, Path, description = "The topic, percent-encoded", example = "/sensor/gps"),
        PendingQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "Pairs to wrap, by subscription then index", body = PendingGrants),
        (status = 400, description = "Bad path or `limit`", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such machine of the caller's", body = crate::openapi::ErrorBody)))]
pub async fn pending(
    State(state): State<AppState>,
    caller: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiQuery(q): ApiQuery<PendingQuery>,
) -> ApiResult<Json<PendingGrants>> {
    let (did, topic) = crate::ingest::topic_path(path)?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "expected 1 to 1000"));
    }
    if q.wait
        .is_some_and(|w| !(1..=long_poll::MAX_WAIT).contains(&w))
    {
        return Err(ApiError::bad_request("wait", "expected 1 to 60 (seconds)"));
    }
    long_poll::waiting(&state, q.wait, || {
        pending_page(&state, &caller, &did, &topic, limit)
    })
    .await
    .map(Json)
}

/// One answer of the pending list of (`did`, `topic`).
async fn pending_page(
    state: &AppState,
    caller: &Principal,
    did: &str,
    topic: &str,
    limit: u32,
) -> ApiResult<PendingGrants> {
    let (did, topic) = (did.to_string(), topic.to_string());
    let machine = crate::machines::db::machine(&state.store, &did).await?;
    match &machine {
        Some(m) if caller.owner_access(&m.owner_did)? || caller.has(Role::Admin) => {}
        _ => return Err(ApiError::not_found(format!("machine {did} not found"))),
    }
    let now = sealstream_core::utc::now_unix();
    // Read in a snapshot, beside the feeds and the granter; when a
    // subscription has a change due, read again in a writing transaction
    // and record it first.
    let mut tx = state.store.begin_read().await?;
    let mut subs = db::of_topic(&mut tx, &did, &topic).await?;
    if subs.iter().any(|s| changes_due(s, now)) {
        tx.rollback().await?;
        tx = state.store.begin().await?;
        subs = db::of_topic(&mut tx, &did, &topic).await?;
        for s in &mut subs {
            settle(&mut tx, s, now).await?;
        }
    }
    let (found, more) = pending_of(&mut tx, &state.grant_marks, &subs, limit as usize).await?;
    tx.commit().await?;
    Ok(PendingGrants {
        items: found.into_iter().flat_map(|(_, pairs)| pairs).collect(),
        more,
    })
}

/// For each subscription, the index from which a search for its pending
/// pairs starts: every chunk below it that the subscription may be
/// entitled to holds its grant. Learned by the searches themselves
/// (`pending_of`) and held in memory: grants are never removed, so a mark
/// stays true, and a restart searches each subscription from its window's
/// lowest index once. Without it a pass over a topic would probe every
/// chunk since each subscription's start, and its cost would grow with the
/// topic's history.
///
/// It also keeps each subscription's count of the chunks before its
/// activation ([`GrantMarks::first_live`]), so that a pass counts only the
/// chunks stored since the last.
#[derive(Debug, Default)]
pub struct GrantMarks {
    marks: std::sync::Mutex<HashMap<String, u64>>,
    /// (subscription, activation time) → its chunks before it, as counted.
    first_live: std::sync::Mutex<HashMap<(String, i64), db::FirstLive>>,
}

/// Counts of chunks before an activation kept at most; the memory is
/// emptied when full (each is counted whole again once).
const FIRST_LIVE_KEPT: usize = 100_000;

impl GrantMarks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The count kept of the chunks before subscription `id`'s activation
    /// at `at`.
    fn first_live(&self, id: &str, at: i64) -> Option<db::FirstLive> {
        let kept = self.first_live.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(&(id.to_string(), at)).copied()
    }

    /// Keeps the count `n` of the chunks before `id`'s activation at `at`:
    /// the next pass counts from its head on ([`db::first_live`]).
    /// Without it each granter pass counted every chunk before each
    /// subscription's start, a cost growing with the topic's history.
    fn keep_first_live(&self, id: &str, at: i64, n: db::FirstLive) {
        let mut kept = self.first_live.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= FIRST_LIVE_KEPT && !kept.contains_key(&(id.to_string(), at)) {
            kept.clear();
        }
        kept.insert((id.to_string(), at), n);
    }

    /// Where the search of subscription `id` starts, at `lowest` or above.
    fn from(&self, id: &str, lowest: u64) -> u64 {
        self.lock().get(id).map_or(lowest, |m| (*m).max(lowest))
    }

    /// Every chunk of `id` below `next` that it may be entitled to is
    /// granted.
    fn advance(&self, id: &str, next: u64) {
        let mut marks = self.lock();
        let m = marks.entry(id.to_string()).or_insert(next);
        *m = (*m).max(next);
    }
}

/// The chunks each of `subs` (subscriptions of one topic) is entitled to
/// and holds no key of, each subscription's by index: at most `room` in
/// all and [`MAX_GRANT_ENTRIES`] per subscription, with whether more
/// remain. A few statements whatever the number of subscriptions, each
/// searching from the subscription's [`GrantMarks`] on (which it moves on).
pub(crate) async fn pending_of(
    tx: &mut Tx,
    marks: &GrantMarks,
    subs: &[Subscription],
    room: usize,
) -> ApiResult<(Vec<(String, Vec<PendingGrant>)>, bool)> {
    let Some(first) = subs.first() else {
        return Ok((Vec::new(), false));
    };
    let windows = windows_of(tx, subs, Some(marks)).await?;
    // Read before the search: a chunk stored after it is searched anyway.
    let head = db::last_chunk(tx, &first.machine_did, &first.topic).await?;
    let per = room.min(MAX_GRANT_ENTRIES);
    let bounds: Vec<db::Bounds> = subs
        .iter()
        .zip(&windows)
        .map(|(s, (w, _))| db::Bounds {
            id: &s.id,
            from: marks.from(&s.id, entitlement::lowest_index(w)),
            before: w.access_end,
        })
        .collect();
    let mut by_subscription: HashMap<String, Vec<db::ChunkRow>> = HashMap::new();
    for (id, row) in db::ungranted(
        tx,
        &first.machine_did,
        &first.topic,
        &bounds,
        per as i64 + 1,
    )
    .await?
    {
        by_subscription.entry(id).or_default().push(row);
    }
    // Below a subscription's first ungranted chunk every chunk it may be
    // entitled to is granted (chunks are accepted in chain order, so all
    // below it were accepted before its end too). With none, so is every
    // chunk up to the head, if the head was accepted before its end (a
    // chunk after the end could still become its own by a renewal).
    for b in &bounds {
        match (
            by_subscription.get(b.id).and_then(|rows| rows.first()),
            head,
        ) {
            (Some((index, _, _)), _) => marks.advance(b.id, (*index).max(0) as u64),
            (None, Some((last, accepted))) if accepted < b.before => {
                marks.advance(b.id, last.saturating_add(1));
            }
            (None, _) => {}
        }
    }
    let (mut out, mut left, mut more) = (Vec::new(), room, false);
    for (s, (w, keys)) in subs.iter().zip(&windows) {
        let Some(rows) = by_subscription.remove(&s.id) else {
            continue;
        };
        if left == 0 {
            more = true;
            break;
        }
        let cap = left.min(per);
        let mut items = Vec::new();
        for (index, chunk_id, accepted) in rows {
            let chunk = Chunk {
                index: index.max(0) as u64,
                accepted,
            };
            if !entitlement::entitled(w, chunk) {
                continue;
            }
            if items.len() >= cap {
                more = true;
                break;
            }
            let Some(key) = entitlement::key_for(keys, accepted) else {
                continue;
            };
            items.push(PendingGrant {
                subscription_id: s.id.clone(),
                index: chunk.index,
                chunk_id,
                buyer_id: s.buyer_id.clone(),
                buyer_public_key_hex: key.public_key_hex.clone(),
            });
        }
        left -= items.len();
        if !items.is_empty() {
            out.push((s.id.clone(), items));
        }
    }
    Ok((out, more))
}

/// Stores chunk keys wrapped for a subscriber (the seller, or an admin for
/// the server's granter): every entry must be one the subscription is
/// entitled to, wrapped to the buyer key in force at the chunk's time,
/// else nothing is stored (409 naming the entry). An entry already held
/// with the same wrapped key is counted, not stored twice.
#[utoipa::path(put, path = sealstream_api::routes::SUBSCRIPTION_GRANTS, tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    request_body = PostSubscriptionGrants,
    security(("session" = [])),
    responses(
        (status = 200, description = "Stored", body = SubscriptionGrantsStored),
        (status = 400, description = "Malformed entry (named)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription of the caller's", body = crate::openapi::ErrorBody),
        (status = 409, description = "An entry the subscription is not entitled to, the wrong key, a chunk named twice, or another wrapped key already held (`entries[i]…`)", body = crate::openapi::ErrorBody)))]
pub async fn store_grants(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PostSubscriptionGrants>,
) -> ApiResult<Json<SubscriptionGrantsStored>> {
    if req.entries.is_empty() || req.entries.len() > MAX_GRANT_ENTRIES {
        return Err(ApiError::bad_request(
            "entries",
            format!("1 to {MAX_GRANT_ENTRIES} entries"),
        ));
    }
    for (i, e) in req.entries.iter().enumerate() {
        check_entry(i, e)?;
    }
    let stored = store_entries(&state, &id, &req.entries, Granter::Caller(&caller)).await?;
    Ok(Json(stored))
}

/// Who stores subscription grants.
#[derive(Clone, Copy)]
pub(crate) enum Granter<'a> {
    /// A request's caller: the subscription's seller (while an owner), or
    /// an admin; anyone else gets the 404 of a subscription that does not
    /// exist. Another wrapping of a chunk already granted is a 409.
    Caller(&'a Principal),
    /// The server's own granter, with a machine's operator key
    /// ([`crate::operator_key::OPERATOR`]). Another wrapping of a chunk
    /// already granted (a grant daemon was first) counts as held.
    Operator,
}

/// Stores `entries` (checked as [`check_entry`] checks them) for
/// subscription `id`, all or nothing: the one path every grant of a
/// subscription takes, from the grant route or the server's granter, so
/// two granters racing store each chunk once. Each entry must be one the
/// subscription is entitled to, wrapped to the buyer key in force at the
/// chunk's time (409 naming `entries[i]…` otherwise). What it stores is a
/// `subscription.grant` audit event, and wakes the subscription's feeds.
pub(crate) async fn store_entries(
    state: &AppState,
    id: &str,
    entries: &[sealstream_api::subscriptions::SubscriptionGrantEntry],
    granter: Granter<'_>,
) -> ApiResult<SubscriptionGrantsStored> {
    let mut tx = state.store.begin().await?;
    let stored = store_entries_in(&mut tx, id, entries, granter).await?;
    tx.commit().await?;
    if stored.stored > 0 {
        crate::wake::send(state, crate::wake::Signal::Granted(id.to_string()));
    }
    Ok(stored)
}

/// [`store_entries`] inside `tx` (the caller commits, then wakes the
/// feeds of what was stored): every entry is checked before any is
/// stored, so a refusal leaves nothing of this subscription's entries in
/// `tx` (the server's granter stores many subscriptions in one
/// transaction).
pub(crate) async fn store_entries_in(
    tx: &mut Tx,
    id: &str,
    entries: &[sealstream_api::subscriptions::SubscriptionGrantEntry],
    granter: Granter<'_>,
) -> ApiResult<SubscriptionGrantsStored> {
    let s = match (db::subscription(tx, id).await?, granter) {
        (Some(s), Granter::Operator) => s,
        (Some(s), Granter::Caller(caller))
            if caller.owner_access(&s.seller_did)? || caller.has(Role::Admin) =>
        {
            s
        }
        _ => return Err(not_found(id)),
    };
    store_checked(tx, vec![s], &[entries], granter, None)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("subscription grants", "no result".to_string()))?
}

/// [`store_entries_in`] for the server's granter: the entries of many
/// subscriptions of one topic (`batch`: subscription id and entries) in
/// `tx`, in a few statements whatever their number. Each subscription's
/// entries are checked apart: one refused (its `Err`) stores nothing of
/// its own and the others are stored. A subscription not found is
/// refused.
pub(crate) async fn store_operator_entries(
    tx: &mut Tx,
    marks: &GrantMarks,
    machine_did: &str,
    topic: &str,
    batch: &[(
        String,
        Vec<sealstream_api::subscriptions::SubscriptionGrantEntry>,
    )],
) -> ApiResult<Vec<(String, ApiResult<SubscriptionGrantsStored>)>> {
    let mut found: HashMap<String, Subscription> = db::of_topic(tx, machine_did, topic)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let (mut subs, mut entries, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for (id, e) in batch {
        match found.remove(id) {
            Some(s) => {
                subs.push(s);
                entries.push(e.as_slice());
            }
            None => missing.push((id.clone(), Err(not_found(id)))),
        }
    }
    let ids: Vec<String> = subs.iter().map(|s| s.id.clone()).collect();
    let results = store_checked(tx, subs, &entries, Granter::Operator, Some(marks)).await?;
    Ok(ids.into_iter().zip(results).chain(missing).collect())
}

/// Stores `entries[i]` for `subs[i]` (subscriptions of one topic, read in
/// `tx` and allowed to the granter): each settled at now, each entry
/// checked against its window and keys ([`check_entries`]), then every
/// accepted entry inserted and one `subscription.grant` audit event per
/// subscription that stored any, in a few statements. The results are in
/// `subs` order. An entry of a caller that conflicts with another wrapped
/// key already held is a 409 for its subscription, after the others were
/// inserted: a caller storing one subscription drops `tx` on it. `marks`
/// as for [`windows_of`].
async fn store_checked(
    tx: &mut Tx,
    mut subs: Vec<Subscription>,
    entries: &[&[sealstream_api::subscriptions::SubscriptionGrantEntry]],
    granter: Granter<'_>,
    marks: Option<&GrantMarks>,
) -> ApiResult<Vec<ApiResult<SubscriptionGrantsStored>>> {
    let Some(first) = subs.first() else {
        return Ok(Vec::new());
    };
    let (machine_did, topic) = (first.machine_did.clone(), first.topic.clone());
    let actor = match granter {
        Granter::Caller(caller) => caller.did.as_str(),
        Granter::Operator => crate::operator_key::OPERATOR,
    };
    let now_unix = sealstream_core::utc::now_unix();
    for s in &mut subs {
        settle(tx, s, now_unix).await?;
    }
    let windows = windows_of(tx, &subs, marks).await?;
    let mut indexes: Vec<u64> = entries
        .iter()
        .flat_map(|e| e.iter().map(|e| e.index))
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    let chunks = db::chunk_ids(tx, &machine_did, &topic, &indexes).await?;
    let mut checked = Vec::with_capacity(subs.len());
    let mut rows = Vec::new();
    for ((s, (w, keys)), entries) in subs.iter().zip(&windows).zip(entries) {
        match check_entries(s, w, keys, entries, &chunks) {
            Ok(accepted) => {
                checked.push(Ok(accepted.len()));
                rows.extend(accepted.into_iter().map(|row| (s.id.as_str(), row)));
            }
            Err(e) => checked.push(Err(e)),
        }
    }
    let now = sealstream_core::utc::now();
    let inserted = db::insert_grants(tx, &rows, actor, &now).await?;
    let mut rows = rows.into_iter();
    let mut results = Vec::with_capacity(subs.len());
    let mut details = Vec::new();
    for (s, check) in subs.iter().zip(checked) {
        let count = match check {
            Ok(n) => n,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        let (mut stored, mut already, mut stored_indexes) = (0u64, 0u64, Vec::new());
        let mut refused = None;
        for i in 0..count {
            let Some((_, row)) = rows.next() else { break };
            if inserted.contains(&(s.id.clone(), row.index)) {
                stored += 1;
                stored_indexes.push(row.index);
                continue;
            }
            if matches!(granter, Granter::Operator) {
                already += 1;
                continue;
            }
            match db::held_grant(tx, &s.id, row.index).await? {
                Some(held) if held.eq_ignore_ascii_case(row.wrapped_key_hex) => already += 1,
                _ if refused.is_none() => {
                    refused = Some(ApiError::conflict(
                        Some(&format!("entries[{i}].buyer.wrappedKeyHex")),
                        format!(
                            "chunk {} is already granted with another wrapped key",
                            row.index
                        ),
                    ));
                }
                _ => {}
            }
        }
        if let Some(e) = refused {
            results.push(Err(e));
            continue;
        }
        if stored > 0 {
            details.push((
                s.id.as_str(),
                audit_details(json!({ "stored": stored, "indexes": stored_indexes })),
            ));
        }
        results.push(Ok(SubscriptionGrantsStored {
            subscription_id: s.id.clone(),
            stored,
            already,
        }));
    }
    let events: Vec<crate::audit::NewEvent> = details
        .iter()
        .map(|(id, details)| crate::audit::NewEvent {
            actor,
            action: "subscription.grant",
            subject: id,
            details,
        })
        .collect();
    crate::audit::append_all(tx, &events).await?;
    Ok(results)
}

/// The rows to store for `entries` of `s` (window `w`, keys `keys`; the
/// topic's `chunks` by index): every entry must name a chunk of the topic
/// by its id, one `s` is entitled to, wrapped to the buyer key in force at
/// the chunk's time for the subscription's recipient id, each index once,
/// else a 409 naming the entry (`entries[i]…`).
fn check_entries<'a>(
    s: &Subscription,
    w: &Window,
    keys: &'a [KeyFrom],
    entries: &'a [sealstream_api::subscriptions::SubscriptionGrantEntry],
    chunks: &HashMap<u64, (String, i64)>,
) -> ApiResult<Vec<db::GrantRow<'a>>> {
    let mut rows = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let field = format!("entries[{i}]");
        let refuse = |what: &str, m: String| ApiError::conflict(Some(&format!("{field}{what}")), m);
        if !seen.insert(e.index) {
            return Err(refuse(
                ".index",
                format!("chunk {} is named twice", e.index),
            ));
        }
        let Some((chunk_id, accepted)) = chunks.get(&e.index) else {
            return Err(refuse(
                ".index",
                format!("no chunk {} in the topic", e.index),
            ));
        };
        if *chunk_id != e.chunk_id {
            return Err(refuse(
                ".chunkId",
                format!("chunk {} is {chunk_id}", e.index),
            ));
        }
        let chunk = Chunk {
            index: e.index,
            accepted: *accepted,
        };
        if !entitlement::entitled(w, chunk) {
            return Err(refuse(
                "",
                format!("subscription {} is not entitled to chunk {}", s.id, e.index),
            ));
        }
        let want = entitlement::key_for(keys, *accepted)
            .map(|k| k.public_key_hex.as_str())
            .unwrap_or_default();
        if !e.buyer.public_key_hex.eq_ignore_ascii_case(want) {
            return Err(refuse(
                ".buyer.publicKeyHex",
                format!("chunk {} is wrapped to the buyer key {want}", e.index),
            ));
        }
        if e.buyer.recipient_id != s.buyer_id {
            return Err(refuse(
                ".buyer.recipientId",
                format!("the subscription's recipient id is {}", s.buyer_id),
            ));
        }
        rows.push(db::GrantRow {
            index: e.index,
            chunk_id: &e.chunk_id,
            recipient_id: &e.buyer.recipient_id,
            public_key_hex: want,
            wrapped_key_hex: &e.buyer.wrapped_key_hex,
        });
    }
    Ok(rows)
}

/// The fixed fields of a grant entry, as a buyer access entry has them.
pub(crate) fn check_entry(
    i: usize,
    e: &sealstream_api::subscriptions::SubscriptionGrantEntry,
) -> ApiResult<()> {
    let field = |f: &str| format!("entries[{i}].{f}");
    let b = &e.buyer;
    if b.recipient_type != sealstream_core::chunk::recipient_type::BUYER {
        return Err(ApiError::bad_request(
            &field("buyer.recipientType"),
            "expected buyer",
        ));
    }
    if b.algorithm != sealstream_core::chunk::WRAP_ALGORITHM {
        return Err(ApiError::bad_request(
            &field("buyer.algorithm"),
            format!("expected {}", sealstream_core::chunk::WRAP_ALGORITHM),
        ));
    }
    let hex_of =
        |text: &str, len: usize| text.len() == len && text.bytes().all(|c| c.is_ascii_hexdigit());
    if !hex_of(&b.public_key_hex, 64) {
        return Err(ApiError::bad_request(
            &field("buyer.publicKeyHex"),
            "expected 64 hex digits",
        ));
    }
    // A sealed box of a 32-byte key: 32 + 48 bytes.
    if !hex_of(&b.wrapped_key_hex, 160) {
        return Err(ApiError::bad_request(
            &field("buyer.wrappedKeyHex"),
            "expected 160 hex digits (a sealed 32-byte key)",
        ));
    }
    if !plausible_id(&e.chunk_id) || !plausible_id(&b.recipient_id) {
        return Err(ApiError::bad_request(&field("chunkId"), "not an id"));
    }
    Ok(())
}

/// The routes that may wait (long polls), under a timeout above their
/// longest wait ([`long_poll::TIMEOUT`]).
pub fn long_poll_routes() -> Router<AppState> {
    Router::new().route(sealstream_api::routes::TOPIC_PENDING_GRANTS, get(pending))
}

/// The subscription routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            sealstream_api::routes::SUBSCRIPTIONS,
            post(create).get(list),
        )
        .route(sealstream_api::routes::SUBSCRIPTION, get(show))
        .route(sealstream_api::routes::SUBSCRIPTION_CANCEL, post(cancel))
        .route(sealstream_api::routes::SUBSCRIPTION_REVOKE, post(revoke))
        .route(sealstream_api::routes::SUBSCRIPTION_RENEWALS, post(renew))
        .route(sealstream_api::routes::SUBSCRIPTION_HISTORY, get(history))
        .route(sealstream_api::routes::SUBSCRIPTION_CUTOFF, get(cutoff))
        .route(
            sealstream_api::routes::SUBSCRIPTION_GRANTS,
            put(store_grants),
        )
        .route(sealstream_api::routes::SUBSCRIPTION_FEED, get(feed::feed))
        .route(
            sealstream_api::routes::SUBSCRIPTION_CHUNK_CIPHERTEXT,
            get(feed::chunk_ciphertext),
        )
        .route(
            sealstream_api::routes::SUBSCRIPTION_CHUNK_ENVELOPE,
            get(feed::chunk_envelope),
        )
        .route(
            sealstream_api::routes::SUBSCRIPTION_DATASETS,
            get(windows::datasets),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts are kept by (subscription, activation): another activation
    /// is counted apart.
    #[test]
    fn first_live_counts_are_kept_by_activation() {
        let marks = GrantMarks::default();
        let n = |count, head| db::FirstLive { count, head };
        marks.keep_first_live("sub_1", 100, n(7, Some(9)));
        assert_eq!(marks.first_live("sub_1", 100), Some(n(7, Some(9))));
        assert_eq!(marks.first_live("sub_1", 200), None, "another activation");
        assert_eq!(marks.first_live("sub_2", 100), None);
        marks.keep_first_live("sub_1", 100, n(8, Some(12)));
        assert_eq!(marks.first_live("sub_1", 100), Some(n(8, Some(12))));
    }

    /// The memory of counts is bounded: full, it is emptied (a count
    /// brought up to date does not empty it).
    #[test]
    fn first_live_memory_is_bounded() {
        let marks = GrantMarks::default();
        let n = db::FirstLive {
            count: 1,
            head: Some(1),
        };
        for i in 0..FIRST_LIVE_KEPT {
            marks.keep_first_live(&format!("sub_{i}"), 0, n);
        }
        marks.keep_first_live("sub_0", 0, n);
        assert_eq!(marks.first_live("sub_1", 0), Some(n));
        marks.keep_first_live("sub_new", 0, n);
        assert_eq!(marks.first_live("sub_1", 0), None);
        assert_eq!(marks.first_live("sub_new", 0), Some(n));
        assert_eq!(marks.first_live.lock().unwrap().len(), 1);
    }

    fn sub(state: SubscriptionState, t: Option<i64>) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            listing_id: "ls_1".into(),
            seller_did: "s".into(),
            buyer_did: "b".into(),
            buyer_id: "b".into(),
            machine_did: "m".into(),
            topic: "/t".into(),
            period_seconds: 100,
            grace_seconds: 10,
            history: HistoryPolicy::None,
            amount: "1".into(),
            rail: Rail::parse(&json!({"kind": "invoice", "currency": "EUR"})).unwrap(),
            state,
            active_from: t.map(|t| t - 100),
            paid_through: t,
            access_end: None,
            end_reason: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    /// A sweep that read "active until T" and a renewal that committed
    /// meanwhile: the sweep's "grace from T" is refused, not written over
    /// the renewal (a PostgreSQL transaction reads the row without locking
    /// it, so this is the order of events there; here it is played in
    /// that order, one transaction after another).
    #[tokio::test]
    async fn a_change_computed_from_a_stale_read_is_refused() {
        let store = crate::store::Store::open("sqlite::memory:").await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let read = sub(SubscriptionState::Active, Some(1000));
        db::insert(&mut tx, &read).await.unwrap();
        tx.commit().await.unwrap();

        // The sweep read it, and computes grace at T.
        let mut swept = read.clone();
        let was = db::Was::of(&swept);
        assert_eq!(due_changes(&mut swept, 1000).len(), 1);

        // Meanwhile a renewal, from the same read, commits T + P.
        let mut renewed = read.clone();
        renewed.paid_through = Some(1100);
        let mut tx = store.begin().await.unwrap();
        assert!(db::update(&mut tx, &renewed, db::Was::of(&read))
            .await
            .unwrap());
        tx.commit().await.unwrap();

        // The sweep's write finds the state unchanged but T moved on.
        let mut tx = store.begin().await.unwrap();
        assert!(!db::update(&mut tx, &swept, was).await.unwrap());
        let now = db::subscription(&mut tx, "sub_1").await.unwrap().unwrap();
        assert_eq!(
            (now.state, now.paid_through),
            (SubscriptionState::Active, Some(1100))
        );
        // From a fresh read it goes through.
        let mut swept = now.clone();
        let was = db::Was::of(&swept);
        assert!(due_changes(&mut swept, 1000).is_empty(), "not due any more");
        assert_eq!(due_changes(&mut swept, 1100).len(), 1);
        assert!(db::update(&mut tx, &swept, was).await.unwrap());
    }

    #[test]
    fn time_moves_active_to_grace_at_t_and_to_lapsed_at_t_plus_g() {
        let mut s = sub(SubscriptionState::Active, Some(1000));
        assert!(due_changes(&mut s, 999).is_empty());
        let c = due_changes(&mut s, 1000);
        assert_eq!((c.len(), c[0].event, c[0].effective), (1, "grace", 1000));
        assert_eq!(s.state, SubscriptionState::Grace);
        assert!(due_changes(&mut s, 1009).is_empty());
        let c = due_changes(&mut s, 5000);
        assert_eq!((c[0].event, c[0].effective), ("lapsed", 1010));
        assert_eq!(
            (s.state, s.access_end),
            (SubscriptionState::Lapsed, Some(1010))
        );
        // Both at once, each with its own time.
        let mut s = sub(SubscriptionState::Active, Some(1000));
        let c = due_changes(&mut s, 2000);
        let got: Vec<_> = c.iter().map(|c| (c.event, c.effective)).collect();
        assert_eq!(got, [("grace", 1000), ("lapsed", 1010)]);
        // Final or unpaid states do not move.
        for state in [
            SubscriptionState::AwaitingPayment,
            SubscriptionState::Revoked,
        ] {
            let mut s = sub(state, None);
            assert!(due_changes(&mut s, i64::MAX).is_empty());
        }
    }

    #[test]
    fn the_window_ends_at_t_plus_g_until_final() {
        let s = sub(SubscriptionState::Active, Some(1000));
        assert_eq!(s.window(0).access_end, 1010);
        let mut s = sub(SubscriptionState::Revoked, Some(1000));
        s.access_end = Some(950);
        assert_eq!(s.window(0).access_end, 950);
        let s = sub(SubscriptionState::AwaitingPayment, None);
        assert_eq!(s.window(0).active_from, None);
    }
}
