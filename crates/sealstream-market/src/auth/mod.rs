//! Who is calling: sessions, roles and the extractors handlers use.
//!
//! A request carries `Authorization: Bearer <token>`; the token came from
//! sign-in and only its SHA-256 is stored ([`session`]). [`Principal`]
//! requires a valid session (401 otherwise); [`MaybePrincipal`] lets
//! anonymous callers through, for public routes.

pub mod admin;
pub(crate) mod db;
pub mod nonce;
pub mod session;
pub mod siwe_routes;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sealstream_core::identity::Did;

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::store::Store;

pub use sealstream_api::auth::Role;

/// A signed-in caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `did:peaq:0x…` (checksummed address).
    pub did: String,
    /// Its roles, sorted.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Whether the principal has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the principal acts as the owner of a resource that
    /// `owner_did` owns: it is that DID and still holds the owner role. A
    /// seller whose owner role an admin revoked can no longer act on their
    /// machines, datasets, listings or sales.
    pub fn owns(&self, owner_did: &str) -> bool {
        self.has(Role::Owner) && same_did(&self.did, owner_did)
    }

    /// For a resource that `owner_did` owns: `Ok(true)` when the principal
    /// owns it ([`owns`](Self::owns)), a 403 when it is the principal's but
    /// the owner role was revoked, `Ok(false)` for anyone else (whom the
    /// caller answers as usual, often with a 404).
    pub fn owner_access(&self, owner_did: &str) -> Result<bool, ApiError> {
        if !same_did(&self.did, owner_did) {
            return Ok(false);
        }
        if self.has(Role::Owner) {
            return Ok(true);
        }
        tracing::warn!(principal = %crate::logs::Pseudonym::of(&self.did), "refused: the owner role was revoked");
        Err(ApiError::forbidden(format!(
            "{} no longer has the owner role",
            self.did
        )))
    }

    /// 403 unless the principal has one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.has(*r)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "{} has none of the roles {}",
            self.did,
            names.join(", ")
        )))
    }

    /// 403 unless the principal has `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.has(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} does not have the {role} role",
                self.did
            )))
        }
    }
}

/// The canonical text of a DID given in a request (`did:peaq:0x` and the
/// checksummed address), or a 400 naming `field`.
pub fn canonical_did(text: &str, field: &str) -> ApiResult<String> {
    Did::parse(text, field)
        .map(|d| d.to_string())
        .map_err(|e| ApiError::bad_request(field, e.constraint))
}

/// Whether two DIDs name the same identity (addresses compared without
/// regard to case).
pub fn same_did(a: &str, b: &str) -> bool {
    match (Did::parse(a, "did"), Did::parse(b, "did")) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The roles of `did`: those granted in `principal_roles`, plus `machine`
/// when it is a registered machine.
pub async fn roles_of(store: &Store, did: &str) -> Result<Vec<Role>, sqlx::Error> {
    let mut roles = db::granted_roles(store, did).await?;
    if crate::machines::db::is_registered(store.pool(), did).await? {
        roles.push(Role::Machine);
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// The bearer token of a request, if it has one. A malformed header is a 401
/// naming it.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization", "not valid text"))?;
    match text.strip_prefix("Bearer ") {
        Some(token) if !token.trim().is_empty() => Ok(Some(token.trim())),
        _ => Err(ApiError::unauthorized(
            "Authorization",
            "expected \"Bearer <session token>\"",
        )),
    }
}

/// The caller of a request as the write limiter found it (see
/// [`crate::throttle`]), so the extractors do not look the session up again.
#[derive(Clone, Debug)]
pub(crate) struct Resolved(pub Result<Option<Principal>, ApiError>);

async fn principal_of(parts: &Parts, state: &AppState) -> Result<Option<Principal>, ApiError> {
    match parts.extensions.get::<Resolved>() {
        Some(Resolved(found)) => found.clone(),
        None => resolve(parts, state).await,
    }
}

/// The caller of a request: `None` without a bearer token; a 401 for a
/// token that is malformed, unknown or expired. Noted for the request's
/// log line ([`crate::logs`]).
pub(crate) async fn resolve(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<Principal>, ApiError> {
    let found = lookup(parts, state).await;
    crate::logs::note_caller(&parts.extensions, &found);
    found
}

async fn lookup(parts: &Parts, state: &AppState) -> Result<Option<Principal>, ApiError> {
    let Some(token) = bearer(&parts.headers)? else {
        return Ok(None);
    };
    let did = session::lookup(&state.store, token).await?.ok_or_else(|| {
        ApiError::unauthorized("Authorization", "session token unknown or expired")
    })?;
    let roles = roles_of(&state.store, &did).await?;
    Ok(Some(Principal { did, roles }))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal_of(parts, state).await?.ok_or_else(|| {
            ApiError::unauthorized(
                "Authorization",
                "sign in first (POST /v1/auth/nonce, then /v1/auth/verify) and send \"Authorization: Bearer <token>\"",
            )
        })
    }
}

/// The caller if signed in, `None` if anonymous. A token that is sent but
/// unknown or expired is still a 401: a client should learn its session ended.
#[derive(Clone, Debug)]
pub struct MaybePrincipal(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal_of(parts, state).await.map(MaybePrincipal)
    }
}

/// Grants `role` to `did` (recording the principal if new) and appends
/// `role.grant` to the audit log, in one transaction. Granting a role the
/// principal already has changes nothing; returns whether it was new.
pub async fn grant_role(
    store: &Store,
    did: &str,
    role: Role,
    granted_by: &str,
) -> Result<bool, crate::audit::AppendError> {
    let mut tx = store.begin_sqlx().await?;
    let now = sealstream_core::utc::now();
    db::ensure_principal(&mut tx, did, &now).await?;
    if db::has_role(&mut tx, did, role).await? {
        return Ok(false);
    }
    // If absent: another process (a second replica starting with the same
    // `--admin`) may grant it between the check and the insert.
    if !db::insert_role(&mut tx, did, role, granted_by, &now).await? {
        return Ok(false);
    }
    let details =
        sealstream_core::json::parse(format!("{{\"role\":\"{}\"}}", role.as_str()).as_bytes())
            .expect("a fixed JSON object");
    crate::audit::append(&mut tx, granted_by, "role.grant", did, &details).await?;
    tx.commit().await?;
    tracing::info!(
        principal = %crate::logs::Pseudonym::of(did),
        role = role.as_str(),
        by = %crate::logs::actor(granted_by),
        "role granted"
    );
    Ok(true)
}

/// Audit event details from a `serde_json` value (an object of strings,
/// integers and booleans).
pub fn audit_details(value: &serde_json::Value) -> sealstream_core::json::Value {
    let text = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    sealstream_core::json::parse(&text)
        .unwrap_or_else(|_| sealstream_core::json::Value::Object(Default::default()))
}

/// How often expired sessions and sign-in links are deleted.
pub const SESSION_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes the sessions and web sign-in links that expired before
/// `now_unix` (they no longer sign anyone in; this keeps the table from
/// growing). Returns how many.
pub async fn purge_expired_sessions(
    store: &crate::store::Store,
    now_unix: i64,
) -> Result<u64, crate::store::StoreError> {
    let mut tx = store.begin().await?;
    let n = db::purge_expired(&mut tx, now_unix).await?;
    tx.commit().await?;
    Ok(n)
}

/// The task that purges expired sessions (and the shared rate buckets idle
/// for a day, [`crate::limits::purge_shared`]) every
/// [`SESSION_PURGE_EVERY`] (the server runs the first purge itself before
/// it serves).
pub fn spawn_session_purger(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SESSION_PURGE_EVERY).await;
            let job = crate::lease::Job::SessionPurge;
            if !state
                .leases
                .leading(&state.store, job, SESSION_PURGE_EVERY)
                .await
            {
                continue;
            }
            match purge_expired_sessions(&state.store, sealstream_core::utc::now_unix()).await {
                Ok(n) if n > 0 => tracing::debug!(sessions = n, "expired sessions purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!("session purge: {e}"),
            }
            if let Err(e) = crate::limits::purge_shared(&state.store).await {
                tracing::warn!("rate bucket purge: {e}");
            }
        }
    })
}

/// The sign-in, session and role administration routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route(sealstream_api::routes::AUTH_NONCE, post(siwe_routes::nonce))
        .route(
            sealstream_api::routes::AUTH_VERIFY,
            post(siwe_routes::verify),
        )
        .route(
            sealstream_api::routes::AUTH_LOGOUT,
            post(siwe_routes::logout),
        )
        .route(sealstream_api::routes::ME, get(siwe_routes::me))
        .route(
            sealstream_api::routes::AUTH_WEB_LINK,
            post(siwe_routes::web_link),
        )
        .route(
            sealstream_api::routes::ADMIN_ROLE,
            put(admin::grant).delete(admin::revoke),
        )
}
