//! Role administration (admin only):
//! `PUT|DELETE /v1/admin/principals/{did}/roles/{role}`.
//!
//! Grants and revocations append `role.grant` / `role.revoke` with the admin
//! as actor; asking for what is already so changes nothing and appends
//! nothing. The `machine` role cannot be granted or revoked here: a DID has
//! it while it is registered in `machines`.

use axum::extract::State;
use axum::Json;
use sealstream_core::identity::Did;

use super::siwe_routes::MeResponse;
use super::{grant_role, roles_of, Principal, Role};
use crate::error::{ApiError, ApiPath, ApiResult};
use crate::server::AppState;

fn target(did: &str, role: &str) -> ApiResult<(String, Role)> {
    let did = Did::parse(did, "did")
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?
        .to_string();
    let role = Role::parse(role).ok_or_else(|| {
        ApiError::bad_request("role", "one of machine, owner, buyer, auditor, admin")
    })?;
    if role == Role::Machine {
        return Err(ApiError::conflict(
            Some("role"),
            "the machine role is implicit: a DID has it while it is a registered machine (POST /v1/machines)",
        ));
    }
    Ok((did, role))
}

/// Grants a role to a principal.
#[utoipa::path(put, path = sealstream_api::routes::ADMIN_ROLE, tag = "admin",
    security(("session" = [])),
    params(("did" = String, Path, description = "The principal, did:peaq:0x…", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
           ("role" = String, Path, description = "owner, buyer, auditor or admin (machine, implicit, is a 409)", pattern = "^(machine|owner|buyer|auditor|admin)$")),
    responses(
        (status = 200, description = "The principal's roles now", body = MeResponse),
        (status = 400, description = "Malformed DID or unknown role", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid session", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::openapi::ErrorBody),
        (status = 409, description = "The machine role is implicit", body = crate::openapi::ErrorBody)))]
pub(crate) async fn grant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((did, role)): ApiPath<(String, String)>,
) -> ApiResult<Json<MeResponse>> {
    principal.require(Role::Admin)?;
    let (did, role) = target(&did, &role)?;
    grant_role(&state.store, &did, role, &principal.did).await?;
    let roles = roles_of(&state.store, &did).await?;
    Ok(Json(MeResponse { did, roles }))
}

/// Revokes a role from a principal.
#[utoipa::path(delete, path = sealstream_api::routes::ADMIN_ROLE, tag = "admin",
    security(("session" = [])),
    params(("did" = String, Path, description = "The principal, did:peaq:0x…", pattern = "^did:peaq:0x[0-9a-fA-F]{40}$"),
           ("role" = String, Path, description = "owner, buyer, auditor or admin (machine, implicit, is a 409)", pattern = "^(machine|owner|buyer|auditor|admin)$")),
    responses(
        (status = 200, description = "The principal's roles now", body = MeResponse),
        (status = 400, description = "Malformed DID or unknown role", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid session", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::openapi::ErrorBody),
        (status = 409, description = "The machine role is implicit and cannot be revoked", body = crate::openapi::ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((did, role)): ApiPath<(String, String)>,
) -> ApiResult<Json<MeResponse>> {
    principal.require(Role::Admin)?;
    let (did, role) = target(&did, &role)?;
    let mut tx = state.store.begin().await?;
    if super::db::delete_role(&mut tx, &did, role).await? {
        let details = super::audit_details(&serde_json::json!({ "role": role.as_str() }));
        crate::audit::append(&mut tx, &principal.did, "role.revoke", &did, &details).await?;
    }
    tx.commit().await?;
    let roles = roles_of(&state.store, &did).await?;
    Ok(Json(MeResponse { did, roles }))
}
