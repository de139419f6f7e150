//! Disclosure requests ([`sealstream_api::disclosures`], issue 21): an
//! auditor files one with a legal basis; two distinct approvers (the
//! compliance or admin role, neither the requester) make it take effect;
//! the requester then reads exactly what was approved until the access
//! ends — a period's total proof, or a case's orders with who took part
//! and the receipt fields asked for (v2 disclosures the market signed).
//! The parties a case concerns see that a disclosure happened and when,
//! unless both approvers sealed it. Every step is audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde_json::json;
use sqlx::Row;

use sealstream_api::disclosures::{
    ApprovalView, Approve, CaseOrder, CaseScope, CreateRequest, DisclosureView, NoticeList,
    NoticeView, PeriodScope, Reject, RequestKind, RequestList, RequestState, RequestView,
    MAX_ACCESS_SECONDS, MAX_CASE_ORDERS, MAX_TEXT,
};
use sealstream_api::receipts::ReceiptV2;
use sealstream_api::routes;

use crate::auth::{audit_details, Principal, Role};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::server::AppState;
use crate::store::{changed, Tx};

/// Ids: `dr_` + 128 random bits.
const ID_PREFIX: &str = "dr_";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::DISCLOSURE_REQUESTS, post(create).get(list))
        .route(routes::DISCLOSURE_REQUEST, get(show))
        .route(routes::DISCLOSURE_APPROVE, post(approve))
        .route(routes::DISCLOSURE_REJECT, post(reject))
        .route(routes::DISCLOSURE, get(disclosure))
        .route(routes::DISCLOSURE_NOTICES, get(notices))
}

fn approver(caller: &Principal) -> bool {
    caller.has(Role::Compliance) || caller.has(Role::Admin)
}

fn text(value: &str, field: &str) -> ApiResult<String> {
    let t = value.trim();
    if t.is_empty()
        || t.chars().count() > MAX_TEXT
        || t.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ApiError::bad_request(
            field,
            format!("expected 1 to {MAX_TEXT} characters without control characters"),
        ));
    }
    Ok(t.to_string())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("disclosure request {id} not found"))
}

/// A stored request.
struct Stored {
    view: RequestView,
    /// The case's orders, fixed at approval.
    orders: Vec<(String, String, String)>,
    access_until_unix: Option<i64>,
}

async fn load(tx: &mut Tx, id: &str) -> ApiResult<Option<Stored>> {
    if !id.starts_with(ID_PREFIX) || id.len() != ID_PREFIX.len() + 32 {
        return Ok(None);
    }
    let Some(row) = sqlx::query(
        "SELECT id, kind, requester, legal_basis, scope, fields, access_seconds, state, \
         created_at, access_until_unix, sealed, orders, rejection \
         FROM disclosure_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let bad = |what: &str| ApiError::internal("disclosure request", format!("stored {what}"));
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let scope: serde_json::Value =
        serde_json::from_str(&row.try_get::<String, _>("scope")?).map_err(|_| bad("scope"))?;
    let fields: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("fields")?).map_err(|_| bad("fields"))?;
    let orders: Vec<(String, String, String)> = match row.try_get::<Option<String>, _>("orders")? {
        Some(t) => serde_json::from_str(&t).map_err(|_| bad("orders"))?,
        None => Vec::new(),
    };
    let rejection = match row.try_get::<Option<String>, _>("rejection")? {
        Some(t) => Some(serde_json::from_str(&t).map_err(|_| bad("rejection"))?),
        None => None,
    };
    let access_until_unix: Option<i64> = row.try_get("access_until_unix")?;
    let mut state = RequestState::parse(&state).ok_or_else(|| bad("state"))?;
    if state == RequestState::Approved
        && access_until_unix.is_some_and(|u| sealstream_core::utc::now_unix() >= u)
    {
        state = RequestState::Expired;
    }
    let approvals = sqlx::query(
        "SELECT approver, at, seal FROM disclosure_approvals WHERE request_id = $1 ORDER BY at, approver",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(ApprovalView {
            did: r.try_get("approver")?,
            at: r.try_get("at")?,
            seal: r.try_get::<i64, _>("seal")? != 0,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let view = RequestView {
        id: row.try_get("id")?,
        kind: RequestKind::parse(&kind).ok_or_else(|| bad("kind"))?,
        state,
        requester: row.try_get("requester")?,
        legal_basis: row.try_get("legal_basis")?,
        period: serde_json::from_value(scope["period"].clone()).ok(),
        case: serde_json::from_value(scope["case"].clone()).ok(),
        fields,
        access_seconds: row.try_get::<i64, _>("access_seconds")?.max(0) as u64,
        created_at: row.try_get("created_at")?,
        approvals,
        sealed: row.try_get::<i64, _>("sealed")? != 0,
        access_until: access_until_unix.map(sealstream_core::utc::format_seconds),
        rejection,
    };
    Ok(Some(Stored {
        view,
        orders,
        access_until_unix,
    }))
}

/// 409 unless the request still waits for its approvals.
fn pending(s: &Stored, id: &str) -> ApiResult<()> {
    if s.view.state != RequestState::Pending {
        return Err(ApiError::conflict(
            None,
            format!("request {id} is {}", s.view.state.as_str()),
        ));
    }
    Ok(())
}

/// The request if `caller` may see it: its requester, or an approver.
async fn visible(tx: &mut Tx, id: &str, caller: &Principal) -> ApiResult<Stored> {
    match load(tx, id).await? {
        Some(s) if s.view.requester == caller.did || approver(caller) => Ok(s),
        _ => Err(not_found(id)),
    }
}

/// The paid orders a case covers, at most [`MAX_CASE_ORDERS`]: `(order,
/// buyer, seller)`.
async fn case_orders(tx: &mut Tx, case: &CaseScope) -> ApiResult<Vec<(String, String, String)>> {
    let (sql, key) = match (&case.order_id, &case.listing_id, &case.party) {
        (Some(o), None, None) => ("o.id = $1", o),
        (None, Some(l), None) => ("o.listing_id = $1", l),
        (None, None, Some(p)) => ("(o.buyer_did = $1 OR o.seller_did = $1)", p),
        _ => {
            return Err(ApiError::bad_request(
                "case",
                "name exactly one of orderId, listingId, party",
            ))
        }
    };
    let rows = sqlx::query(&format!(
        "SELECT o.id, o.buyer_did, o.seller_did FROM orders o \
         WHERE {sql} AND o.paid_at IS NOT NULL AND o.subscription_id IS NULL \
         ORDER BY o.paid_at, o.id LIMIT {}",
        MAX_CASE_ORDERS
    ))
    .bind(key)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Into::into)
}

/// `POST /v1/disclosure-requests`: an auditor files a request.
#[utoipa::path(post, path = sealstream_api::routes::DISCLOSURE_REQUESTS, tag = "disclosures",
    request_body = CreateRequest,
    security(("session" = [])),
    responses(
        (status = 201, description = "Filed, pending two approvals", body = RequestView),
        (status = 400, description = "A field is malformed (named)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an auditor", body = crate::openapi::ErrorBody),
        (status = 422, description = "The case names nothing paid", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(req): ApiJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    caller.require(Role::Auditor)?;
    let legal_basis = text(&req.legal_basis, "legalBasis")?;
    if !(1..=MAX_ACCESS_SECONDS).contains(&req.access_seconds) {
        return Err(ApiError::bad_request(
            "accessSeconds",
            format!("expected 1 to {MAX_ACCESS_SECONDS}"),
        ));
    }
    let mut tx = state.store.begin().await?;
    let scope = match req.kind {
        RequestKind::PeriodTotal => {
            let Some(p) = &req.period else {
                return Err(ApiError::bad_request("period", "required for period-total"));
            };
            if req.case.is_some() || !req.fields.is_empty() {
                return Err(ApiError::bad_request(
                    "case",
                    "a period-total request names a period only",
                ));
            }
            check_period(p)?;
            json!({ "period": p })
        }
        RequestKind::Case => {
            let Some(c) = &req.case else {
                return Err(ApiError::bad_request("case", "required for case"));
            };
            if req.period.is_some() {
                return Err(ApiError::bad_request("period", "a case names no period"));
            }
            let names = sealstream_api::receipts::field_names();
            if let Some(bad) = req.fields.iter().find(|f| !names.contains(&f.as_str())) {
                return Err(ApiError::bad_request(
                    "fields",
                    format!(
                        "{bad:?} is not a receipt field (one of {})",
                        names.join(", ")
                    ),
                ));
            }
            if case_orders(&mut tx, c).await?.is_empty() {
                return Err(ApiError::unprocessable(
                    "case",
                    "it names no paid order (an order, a listing or a party with a paid order)",
                ));
            }
            json!({ "case": c })
        }
    };
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let id = format!("{ID_PREFIX}{}", hex::encode(bytes));
    let now = sealstream_core::utc::now();
    let mut fields = req.fields.clone();
    fields.dedup();
    changed(
        &mut tx,
        sqlx::query(
            "INSERT INTO disclosure_requests (id, kind, requester, legal_basis, scope, fields, \
             access_seconds, state, created_at, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
        )
        .bind(&id)
        .bind(req.kind.as_str())
        .bind(&caller.did)
        .bind(&legal_basis)
        .bind(scope.to_string())
        .bind(json!(fields).to_string())
        .bind(req.access_seconds as i64)
        .bind(RequestState::Pending.as_str())
        .bind(&now),
    )
    .await?;
    let details = audit_details(&json!({
        "kind": req.kind.as_str(),
        "legalBasis": legal_basis,
        "scope": scope,
        "fields": fields,
        "accessSeconds": req.access_seconds,
    }));
    crate::audit::append(&mut tx, &caller.did, "disclosure.request", &id, &details).await?;
    let view = load(&mut tx, &id)
        .await?
        .ok_or_else(|| not_found(&id))?
        .view;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

fn check_period(p: &PeriodScope) -> ApiResult<()> {
    if !sealstream_api::receipts::log::is_log_name(&p.log) {
        return Err(ApiError::bad_request(
            "period.log",
            "expected market or seller:<did>",
        ));
    }
    for (t, f) in [(&p.from, "period.from"), (&p.to, "period.to")] {
        if sealstream_core::utc::parse_seconds(t).is_none() {
            return Err(ApiError::bad_request(
                f,
                "expected a UTC time YYYY-MM-DDTHH:MM:SSZ",
            ));
        }
    }
    Ok(())
}

/// `GET /v1/disclosure-requests`: an auditor's own; an approver's, all.
#[utoipa::path(get, path = sealstream_api::routes::DISCLOSURE_REQUESTS, tag = "disclosures",
    security(("session" = [])),
    responses(
        (status = 200, description = "Newest first, at most 200", body = RequestList),
        (status = 403, description = "Neither auditor, compliance nor admin", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Principal,
) -> ApiResult<Json<RequestList>> {
    caller.require_any(&[Role::Auditor, Role::Compliance, Role::Admin])?;
    let mut tx = state.store.begin_read().await?;
    let ids: Vec<String> = if approver(&caller) {
        sqlx::query_scalar(
            "SELECT id FROM disclosure_requests ORDER BY created_at DESC, id LIMIT 200",
        )
        .fetch_all(&mut *tx)
        .await?
    } else {
        sqlx::query_scalar(
            "SELECT id FROM disclosure_requests WHERE requester = $1 \
             ORDER BY created_at DESC, id LIMIT 200",
        )
        .bind(&caller.did)
        .fetch_all(&mut *tx)
        .await?
    };
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(s) = load(&mut tx, &id).await? {
            items.push(s.view);
        }
    }
    tx.commit().await?;
    Ok(Json(RequestList { items }))
}

/// `GET /v1/disclosure-requests/{id}`.
#[utoipa::path(get, path = sealstream_api::routes::DISCLOSURE_REQUEST, tag = "disclosures",
    params(("id" = String, Path, description = "Request id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The request", body = RequestView),
        (status = 404, description = "No such request the caller may see", body = crate::openapi::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RequestView>> {
    let mut tx = state.store.begin_read().await?;
    let s = visible(&mut tx, &id, &caller).await?;
    tx.commit().await?;
    Ok(Json(s.view))
}

/// `POST /v1/disclosure-requests/{id}/approve`: one approval; the second
/// distinct one makes the request take effect for `accessSeconds`.
#[utoipa::path(post, path = sealstream_api::routes::DISCLOSURE_APPROVE, tag = "disclosures",
    params(("id" = String, Path, description = "Request id")),
    request_body = Approve,
    security(("session" = [])),
    responses(
        (status = 200, description = "Approved by the caller (in effect after two)", body = RequestView),
        (status = 403, description = "Not compliance or admin, or the requester", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such request", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not pending, or approved by the caller already", body = crate::openapi::ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Approve>,
) -> ApiResult<Json<RequestView>> {
    caller.require_any(&[Role::Compliance, Role::Admin])?;
    let mut tx = state.store.begin().await?;
    let s = visible(&mut tx, &id, &caller).await?;
    if s.view.requester == caller.did {
        return Err(ApiError::forbidden(
            "the requester cannot approve their own request",
        ));
    }
    pending(&s, &id)?;
    if s.view.approvals.iter().any(|a| a.did == caller.did) {
        return Err(ApiError::conflict(
            None,
            format!(
                "{} approved request {id} already: a second approver must",
                caller.did
            ),
        ));
    }
    let now_unix = sealstream_core::utc::now_unix();
    let now = sealstream_core::utc::format_seconds(now_unix);
    changed(
        &mut tx,
        sqlx::query(
            "INSERT INTO disclosure_approvals (request_id, approver, at, seal) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&caller.did)
        .bind(&now)
        .bind(i64::from(req.seal)),
    )
    .await?;
    crate::audit::append(
        &mut tx,
        &caller.did,
        "disclosure.approve",
        &id,
        &audit_details(&json!({"seal": req.seal, "approval": s.view.approvals.len() + 1})),
    )
    .await?;
    if s.view.approvals.len() + 1 >= 2 {
        let sealed = req.seal && s.view.approvals.iter().all(|a| a.seal);
        let until = now_unix + s.view.access_seconds as i64;
        let (orders, subjects) = match (&s.view.case, &s.view.period) {
            (Some(c), _) => {
                let orders = case_orders(&mut tx, c).await?;
                let mut subjects: Vec<String> = orders
                    .iter()
                    .flat_map(|(_, b, sel)| [b.clone(), sel.clone()])
                    .collect();
                subjects.extend(c.party.clone());
                (orders, subjects)
            }
            (None, Some(p)) => (
                Vec::new(),
                p.log
                    .strip_prefix("seller:")
                    .map(str::to_string)
                    .into_iter()
                    .collect(),
            ),
            (None, None) => (Vec::new(), Vec::new()),
        };
        let mut subjects = subjects;
        subjects.sort();
        subjects.dedup();
        changed(
            &mut tx,
            sqlx::query(
                "UPDATE disclosure_requests SET state = $1, approved_at = $2, access_until_unix = $3, \
                 sealed = $4, orders = $5 WHERE id = $6 AND state = $7",
            )
            .bind(RequestState::Approved.as_str())
            .bind(&now)
            .bind(until)
            .bind(i64::from(sealed))
            .bind(json!(orders).to_string())
            .bind(&id)
            .bind(RequestState::Pending.as_str()),
        )
        .await?;
        for did in &subjects {
            changed(
                &mut tx,
                sqlx::query(
                    "INSERT INTO disclosure_subjects (request_id, did) VALUES ($1, $2) \
                     ON CONFLICT (request_id, did) DO NOTHING",
                )
                .bind(&id)
                .bind(did),
            )
            .await?;
        }
        crate::audit::append(
            &mut tx,
            &caller.did,
            "disclosure.grant",
            &id,
            &audit_details(&json!({
                "accessUntil": sealstream_core::utc::format_seconds(until),
                "sealed": sealed,
                "orders": orders.len(),
                "subjects": subjects.len(),
            })),
        )
        .await?;
    }
    let view = load(&mut tx, &id)
        .await?
        .ok_or_else(|| not_found(&id))?
        .view;
    tx.commit().await?;
    Ok(Json(view))
}

/// `POST /v1/disclosure-requests/{id}/reject`.
#[utoipa::path(post, path = sealstream_api::routes::DISCLOSURE_REJECT, tag = "disclosures",
    params(("id" = String, Path, description = "Request id")),
    request_body = Reject,
    security(("session" = [])),
    responses(
        (status = 200, description = "Rejected", body = RequestView),
        (status = 403, description = "Not compliance or admin", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such request", body = crate::openapi::ErrorBody),
        (status = 409, description = "Not pending", body = crate::openapi::ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Reject>,
) -> ApiResult<Json<RequestView>> {
    caller.require_any(&[Role::Compliance, Role::Admin])?;
    let reason = text(&req.reason, "reason")?;
    let mut tx = state.store.begin().await?;
    let s = visible(&mut tx, &id, &caller).await?;
    pending(&s, &id)?;
    let now = sealstream_core::utc::now();
    let rejection = json!({"by": caller.did, "at": now, "reason": reason});
    changed(
        &mut tx,
        sqlx::query("UPDATE disclosure_requests SET state = $1, rejection = $2 WHERE id = $3")
            .bind(RequestState::Rejected.as_str())
            .bind(rejection.to_string())
            .bind(&id),
    )
    .await?;
    crate::audit::append(
        &mut tx,
        &caller.did,
        "disclosure.reject",
        &id,
        &audit_details(&json!({"reason": reason})),
    )
    .await?;
    let view = load(&mut tx, &id)
        .await?
        .ok_or_else(|| not_found(&id))?
        .view;
    tx.commit().await?;
    Ok(Json(view))
}

/// `GET /v1/disclosure-requests/{id}/disclosure`: to the requester, while
/// the approved access lasts, exactly what was approved. Audited
/// (`disclosure.read`).
#[utoipa::path(get, path = sealstream_api::routes::DISCLOSURE, tag = "disclosures",
    params(("id" = String, Path, description = "Request id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The disclosure", body = DisclosureView),
        (status = 403, description = "Not approved by two, access ended, or not the requester", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such request", body = crate::openapi::ErrorBody)))]
pub async fn disclosure(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DisclosureView>> {
    let mut tx = state.store.begin().await?;
    let s = visible(&mut tx, &id, &caller).await?;
    if s.view.requester != caller.did {
        return Err(ApiError::forbidden("only the requester reads a disclosure"));
    }
    let until = match (s.view.state, s.access_until_unix) {
        (RequestState::Approved, Some(u)) => u,
        (RequestState::Expired, Some(u)) => {
            return Err(ApiError::forbidden(format!(
                "the access ended at {}",
                sealstream_core::utc::format_seconds(u)
            )))
        }
        (RequestState::Pending, _) => {
            return Err(ApiError::forbidden(format!(
                "not approved: {} of 2 approvals",
                s.view.approvals.len()
            )))
        }
        (state, _) => {
            return Err(ApiError::forbidden(format!(
                "the request is {}",
                state.as_str()
            )))
        }
    };
    let mut view = DisclosureView {
        request_id: id.clone(),
        access_until: sealstream_core::utc::format_seconds(until),
        total: None,
        orders: Vec::new(),
    };
    if let Some(p) = &s.view.period {
        let proof =
            crate::receipt_log::prove_total(&state, &mut tx, &p.log, &p.from, &p.to).await?;
        view.total = Some(
            serde_json::from_str(&proof.to_json_pretty())
                .map_err(|e| ApiError::internal("disclosure", e))?,
        );
    }
    let names: Vec<&str> = s.view.fields.iter().map(String::as_str).collect();
    for (order_id, buyer, seller) in &s.orders {
        let disclosure = if names.is_empty() {
            None
        } else {
            match crate::orders::db::receipt_v2(&mut tx, order_id).await? {
                Some(Some(text)) => {
                    let v2 = ReceiptV2::parse(text.as_bytes())
                        .map_err(|e| ApiError::internal("disclosure", e))?;
                    let shown: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| v2.disclosures.iter().any(|d| d.name() == *n))
                        .collect();
                    let part = v2
                        .disclose(&shown)
                        .map_err(|e| ApiError::internal("disclosure", e))?;
                    Some(
                        serde_json::from_str(&part.to_json_pretty())
                            .map_err(|e| ApiError::internal("disclosure", e))?,
                    )
                }
                _ => None,
            }
        };
        view.orders.push(CaseOrder {
            order_id: order_id.clone(),
            buyer_did: buyer.clone(),
            seller_did: seller.clone(),
            disclosure,
        });
    }
    crate::audit::append(
        &mut tx,
        &caller.did,
        "disclosure.read",
        &id,
        &audit_details(&json!({"orders": view.orders.len(), "total": view.total.is_some()})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// `GET /v1/disclosure-notices`: the approved disclosures that concern the
/// caller (a party to a disclosed order, the seller of a disclosed log),
/// unless sealed.
#[utoipa::path(get, path = sealstream_api::routes::DISCLOSURE_NOTICES, tag = "disclosures",
    security(("session" = [])),
    responses((status = 200, description = "Newest first, at most 200", body = NoticeList)))]
pub async fn notices(
    State(state): State<AppState>,
    caller: Principal,
) -> ApiResult<Json<NoticeList>> {
    let mut tx = state.store.begin_read().await?;
    let rows = sqlx::query(
        "SELECT r.id, r.kind, r.approved_at, r.access_until_unix, r.legal_basis \
         FROM disclosure_requests r JOIN disclosure_subjects s ON s.request_id = r.id \
         WHERE s.did = $1 AND r.sealed = 0 AND r.approved_at IS NOT NULL \
         ORDER BY r.approved_at DESC, r.id LIMIT 200",
    )
    .bind(&caller.did)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(|r| {
            let kind: String = r.try_get(1)?;
            Ok(NoticeView {
                request_id: r.try_get(0)?,
                kind: RequestKind::parse(&kind).unwrap_or(RequestKind::Case),
                approved_at: r.try_get(2)?,
                access_until: sealstream_core::utc::format_seconds(r.try_get::<i64, _>(3)?),
                legal_basis: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(NoticeList { items }))
}
