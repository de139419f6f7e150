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
use sealstream_api::routes;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::db::{self, LinkRow};
use super::{base_url, party_order, Order};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::listings::audit_details;
use crate::server::AppState;
use crate::store::Tx;

pub use sealstream_api::orders::{CreateLink, LinkPurpose, LinkView};

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The order `id` if `token` is a live link of that order for `purpose`;
/// 404 otherwise (a revoked, unknown or misdirected link says nothing more).
pub(crate) async fn open(
    tx: &mut Tx,
    id: &str,
    token: &str,
    purpose: LinkPurpose,
) -> ApiResult<Order> {
    let live = db::link_opens(tx, &token_hash(token), id, purpose).await?;
    if !live {
        return Err(super::not_found(id));
    }
    db::order(tx, id).await?.ok_or_else(|| super::not_found(id))
}

/// Makes a bearer link: a release link (the order's buyer) or a
/// confirmation link (its seller). The token is shown once.
#[utoipa::path(post, path = sealstream_api::routes::ORDER_LINKS, tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    request_body = CreateLink,
    security(("session" = [])),
    responses(
        (status = 201, description = "The link", body = LinkView),
        (status = 400, description = "Unknown purpose", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such order for the caller in that seat", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CreateLink>,
) -> ApiResult<(StatusCode, Json<LinkView>)> {
    let purpose = req.purpose;
    let mut tx = state.store.begin().await?;
    let order = party_order(&mut tx, &id, &caller).await?;
    let seat_ok = match purpose {
        LinkPurpose::Release => order.buyer_did == caller.did,
        LinkPurpose::Confirmation => caller.owns(&order.seller_did),
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
    let link = LinkRow {
        token_hash: &token_hash(&token),
        id: &link_id,
        order_id: &id,
        purpose,
        created_by: &caller.did,
        created_at: &now,
    };
    db::insert_link(&mut tx, &link).await?;
    let details = audit_details(json!({"link": link_id, "purpose": purpose.as_str()}));
    crate::audit::append(&mut tx, &caller.did, "order.link.create", &id, &details).await?;
    tx.commit().await?;
    tracing::info!(order = %id, link = %link_id, purpose = purpose.as_str(), "link created");
    let path = match purpose {
        LinkPurpose::Release => routes::order_release(&id),
        LinkPurpose::Confirmation => routes::order_confirmation(&id),
    };
    Ok((
        StatusCode::CREATED,
        Json(LinkView {
            url: format!("{}{path}?link={token}", base_url(&state)),
            id: link_id,
            purpose,
            token,
            created_at: now,
        }),
    ))
}

/// Revokes a link (its maker only). Revoking twice is not an error.
#[utoipa::path(delete, path = sealstream_api::routes::ORDER_LINK, tag = "orders",
    params(("id" = String, Path, description = "Order id"), ("link" = String, Path, description = "Link id")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such link of the caller's", body = crate::openapi::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath((id, link)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let revoked = db::link_revoked(&mut tx, &link, &id, &caller.did)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("link {link} not found")))?;
    if !revoked {
        db::revoke_link(&mut tx, &link, &sealstream_core::utc::now()).await?;
        let details = audit_details(json!({"link": link}));
        crate::audit::append(&mut tx, &caller.did, "order.link.revoke", &id, &details).await?;
    }
    tx.commit().await?;
    if !revoked {
        tracing::info!(order = %id, link = %link, "link revoked");
    }
    Ok(StatusCode::NO_CONTENT)
}
