//! Bearer links to one order: a release link, made by the buyer, opens the
//! release package to whoever holds it (for `consume --download-url` on
//! another machine, or the reference CLI, which sends no credentials); a
//! confirmation link, made by the seller, opens the order's confirmation
//! (for `peaqos stream distribute --confirmation-url`). The token travels
//! as `?link=`; only its SHA-256 is stored; its maker can revoke it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use utoipa::ToSchema;

use super::{base_url, party_order, Order};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::listings::audit_details;
use crate::server::AppState;

/// What a link opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The release package (made by the buyer).
    Release,
    /// The confirmation (made by the seller).
    Confirmation,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Release => "release",
            Purpose::Confirmation => "confirmation",
        }
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The order `id` if `token` is a live link of that order for `purpose`;
/// 404 otherwise (a revoked, unknown or misdirected link says nothing more).
pub(crate) async fn open(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    token: &str,
    purpose: Purpose,
) -> ApiResult<Order> {
    let row =
        sqlx::query("SELECT order_id, purpose, revoked_at FROM order_links WHERE token_hash = $1")
            .bind(token_hash(token))
            .fetch_optional(&mut **tx)
            .await?;
    let live = row.is_some_and(|r| {
        r.try_get::<String, _>(0).is_ok_and(|o| o == id)
            && r.try_get::<String, _>(1)
                .is_ok_and(|p| p == purpose.as_str())
            && r.try_get::<Option<String>, _>(2).is_ok_and(|x| x.is_none())
    });
    if !live {
        return Err(super::not_found(id));
    }
    Order::load(tx, id)
        .await?
        .ok_or_else(|| super::not_found(id))
}

/// `POST /v1/orders/{id}/links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateLink {
    /// `release` (the buyer) or `confirmation` (the seller).
    #[schema(pattern = "^(release|confirmation)$")]
    pub purpose: String,
}

/// A link, as its maker sees it once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    /// `lnk_…`, to revoke it.
    pub id: String,
    /// `release` or `confirmation`.
    pub purpose: String,
    /// The URL to hand out (carries the token).
    pub url: String,
    /// The token alone.
    pub token: String,
    /// Made (UTC).
    pub created_at: String,
}

/// Makes a bearer link: a release link (the order's buyer) or a
/// confirmation link (its seller). The token is shown once.
#[utoipa::path(post, path = "/v1/orders/{id}/links", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = CreateLink,
    security(("session" = [])),
    responses(
        (status = 201, description = "The link", body = LinkView),
        (status = 400, description = "Unknown purpose", body = crate::openapi::ErrorBody),
        (status = 401, description = "No session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order for the caller in that seat", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CreateLink>,
) -> ApiResult<(StatusCode, Json<LinkView>)> {
    let purpose = match req.purpose.as_str() {
        "release" => Purpose::Release,
        "confirmation" => Purpose::Confirmation,
        _ => {
            return Err(ApiError::bad_request(
                "purpose",
                "expected release or confirmation",
            ))
        }
    };
    let mut tx = state.store.begin().await?;
    let order = party_order(&mut tx, &id, &caller).await?;
    let seat_ok = match purpose {
        Purpose::Release => order.buyer_did == caller.did,
        Purpose::Confirmation => caller.owns(&order.seller_did),
    };
    if !seat_ok {
        return Err(super::not_found(&id));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let mut id_bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let link_id = format!("lnk_{}", hex::encode(id_bytes));
    let now = sealstream_core::utc::now();
    sqlx::query(
        "INSERT INTO order_links (token_hash, id, order_id, purpose, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash(&token))
    .bind(&link_id)
    .bind(&id)
    .bind(purpose.as_str())
    .bind(&caller.did)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let details = audit_details(json!({"link": link_id, "purpose": purpose.as_str()}));
    crate::audit::append(&mut tx, &caller.did, "order.link.create", &id, &details).await?;
    tx.commit().await?;
    let path = match purpose {
        Purpose::Release => "release",
        Purpose::Confirmation => "confirmation",
    };
    Ok((
        StatusCode::CREATED,
        Json(LinkView {
            url: format!("{}/v1/orders/{id}/{path}?link={token}", base_url(&state)),
            id: link_id,
            purpose: purpose.as_str().into(),
            token,
            created_at: now,
        }),
    ))
}

/// Revokes a link (its maker only). Revoking twice is not an error.
#[utoipa::path(delete, path = "/v1/orders/{id}/links/{link}", tag = "orders",
    params(("id" = String, Path, description = "Order id"), ("link" = String, Path, description = "Link id")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No session", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such link of the caller's", body = crate::openapi::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath((id, link)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let row = sqlx::query(
        "SELECT revoked_at FROM order_links WHERE id = $1 AND order_id = $2 AND created_by = $3",
    )
    .bind(&link)
    .bind(&id)
    .bind(&caller.did)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("link {link} not found")))?;
    if row.try_get::<Option<String>, _>(0)?.is_none() {
        sqlx::query("UPDATE order_links SET revoked_at = $1 WHERE id = $2")
            .bind(sealstream_core::utc::now())
            .bind(&link)
            .execute(&mut *tx)
            .await?;
        let details = audit_details(json!({"link": link}));
        crate::audit::append(&mut tx, &caller.did, "order.link.revoke", &id, &details).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
