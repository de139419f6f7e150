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
use serde::Deserialize;

use super::siwe_routes::MeResponse;
use super::{grant_role, roles_of, Principal, Role};
use crate::error::{ApiError, ApiPath, ApiResult};
use crate::logs::Pseudonym;
use crate::server::AppState;

/// The path of both routes: a principal and one of its roles.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct RolePath {
    /// The principal, did:peaq:0x…
    #[param(pattern = "^did:peaq:0x[0-9a-fA-F]{40}$")]
    pub(crate) did: String,
    /// owner, buyer, auditor or admin (machine, implicit, is a 409)
    #[param(pattern = "^(machine|owner|buyer|auditor|admin)$")]
    pub(crate) role: String,
}

/// The principal (its canonical DID) and the role `path` names, for an
/// admin `caller`: a 403 for anyone else, a 400 for a malformed DID or an
/// unknown role, a 409 for the implicit `machine` role.
fn target(caller: &Principal, path: &RolePath) -> ApiResult<(String, Role)> {
    caller.require(Role::Admin)?;
    let did = Did::parse(&path.did, "did")
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?
        .to_string();
    let role = Role::parse(&path.role).ok_or_else(|| {
        ApiError::bad_request(
            "role",
            "one of machine, owner, buyer, auditor, arbiter, admin",
        )
    })?;
    if role == Role::Machine {
        return Err(ApiError::conflict(
            Some("role"),
            "the machine role is implicit: a DID has it while it is a registered machine (POST /v1/machines)",
        ));
    }
    Ok((did, role))
}

/// The answer to a change: the principal's roles now.
async fn roles_now(state: &AppState, did: String) -> ApiResult<Json<MeResponse>> {
    let roles = roles_of(&state.store, &did).await?;
    Ok(Json(MeResponse { did, roles }))
}

/// Grants a role to a principal.
#[utoipa::path(put, path = sealstream_api::routes::ADMIN_ROLE, tag = "admin",
    security(("session" = [])),
    params(RolePath),
    responses(
        (status = 200, description = "The principal's roles now", body = MeResponse),
        (status = 400, description = "Malformed DID or unknown role", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::openapi::ErrorBody),
        (status = 409, description = "The machine role is implicit", body = crate::openapi::ErrorBody)))]
pub(crate) async fn grant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<RolePath>,
) -> ApiResult<Json<MeResponse>> {
    let (did, role) = target(&principal, &path)?;
    grant_role(&state.store, &did, role, &principal.did).await?;
    roles_now(&state, did).await
}

/// Revokes a role from a principal.
#[utoipa::path(delete, path = sealstream_api::routes::ADMIN_ROLE, tag = "admin",
    security(("session" = [])),
    params(RolePath),
    responses(
        (status = 200, description = "The principal's roles now", body = MeResponse),
        (status = 400, description = "Malformed DID or unknown role", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::openapi::ErrorBody),
        (status = 409, description = "The machine role is implicit and cannot be revoked", body = crate::openapi::ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<RolePath>,
) -> ApiResult<Json<MeResponse>> {
    let (did, role) = target(&principal, &path)?;
    let mut tx = state.store.begin().await?;
    let revoked = super::db::delete_role(&mut tx, &did, role).await?;
    if revoked {
        let details = super::audit_details(&serde_json::json!({ "role": role.as_str() }));
        crate::audit::append(&mut tx, &principal.did, "role.revoke", &did, &details).await?;
    }
    tx.commit().await?;
    if revoked {
        tracing::info!(
            principal = %Pseudonym::of(&did),
            role = role.as_str(),
            by = %Pseudonym::of(&principal.did),
            "role revoked"
        );
    }
    roles_now(&state, did).await
}
