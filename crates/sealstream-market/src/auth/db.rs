//! Principals, roles, sessions and used sign-in nonces in the database
//! (`principals`, `principal_roles`, `sessions`, `auth_nonces`).

use sqlx::{Any, Row, Transaction};

use super::Role;
use crate::store::Store;

/// The roles granted to `did` in `principal_roles` (names no longer known
/// are skipped).
pub(super) async fn granted_roles(store: &Store, did: &str) -> Result<Vec<Role>, sqlx::Error> {
    let rows = sqlx::query("SELECT role FROM principal_roles WHERE did = $1")
        .bind(did)
        .fetch_all(store.pool())
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .filter_map(|name| Role::parse(&name))
        .collect())
}

/// Whether `did` holds `role` in `principal_roles`.
pub(super) async fn has_role(
    tx: &mut Transaction<'static, Any>,
    did: &str,
    role: Role,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM principal_roles WHERE did = $1 AND role = $2")
            .bind(did)
            .bind(role.as_str())
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Grants `role` to `did`. With `if_absent`, a role already held is left
/// as it is (`ON CONFLICT DO NOTHING`); without, it is an error. Returns
/// whether a row was added.
pub(super) async fn insert_role(
    tx: &mut Transaction<'static, Any>,
    did: &str,
    role: Role,
    granted_by: &str,
    granted_at: &str,
    if_absent: bool,
) -> Result<bool, sqlx::Error> {
    let sql = if if_absent {
        "INSERT INTO principal_roles (did, role, granted_by, granted_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (did, role) DO NOTHING"
    } else {
        "INSERT INTO principal_roles (did, role, granted_by, granted_at) VALUES ($1, $2, $3, $4)"
    };
    let done = sqlx::query(sql)
        .bind(did)
        .bind(role.as_str())
        .bind(granted_by)
        .bind(granted_at)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes `role` from `did`; returns whether it was held.
pub(super) async fn delete_role(
    tx: &mut Transaction<'static, Any>,
    did: &str,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM principal_roles WHERE did = $1 AND role = $2")
        .bind(did)
        .bind(role.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Records `did` in `principals` if it is not there yet.
pub(super) async fn ensure_principal(
    tx: &mut Transaction<'static, Any>,
    did: &str,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO principals (did, first_seen_at) VALUES ($1, $2) ON CONFLICT (did) DO NOTHING",
    )
    .bind(did)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records `now` as the first sign-in of `did` unless it signed in
/// before; returns whether this is its first.
pub(super) async fn mark_first_sign_in(
    tx: &mut Transaction<'static, Any>,
    did: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE principals SET first_sign_in_at = $1 WHERE did = $2 AND first_sign_in_at IS NULL",
    )
    .bind(now)
    .bind(did)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A used sign-in nonce, kept until it expires.
pub(super) struct UsedNonce<'a> {
    /// The nonce.
    pub nonce: &'a str,
    /// The domain it was issued for (lower case).
    pub domain: &'a str,
    /// When it was issued (UTC).
    pub issued_at: String,
    /// When it expires (Unix seconds).
    pub expires_unix: i64,
    /// When it was used (UTC).
    pub used_at: &'a str,
    /// Who used it.
    pub used_by: &'a str,
}

/// Forgets the nonces expired at `now` (their tags no longer check), then
/// records `nonce` as used. Returns `false` when it was used already.
pub(super) async fn use_nonce(
    tx: &mut Transaction<'static, Any>,
    now: i64,
    nonce: &UsedNonce<'_>,
) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM auth_nonces WHERE expires_unix <= $1")
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let used = sqlx::query(
        "INSERT INTO auth_nonces (nonce, domain, issued_at, expires_unix, used_at, used_by) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (nonce) DO NOTHING",
    )
    .bind(nonce.nonce)
    .bind(nonce.domain)
    .bind(&nonce.issued_at)
    .bind(nonce.expires_unix)
    .bind(nonce.used_at)
    .bind(nonce.used_by)
    .execute(&mut **tx)
    .await?;
    Ok(used.rows_affected() == 1)
}

/// Stores a session (`token_hash`, the SHA-256 of its token) for `did`.
pub(super) async fn insert_session(
    tx: &mut Transaction<'static, Any>,
    token_hash: &str,
    did: &str,
    created_at: &str,
    expires_unix: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, did, created_at, expires_unix) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(did)
    .bind(created_at)
    .bind(expires_unix)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes the session of `token_hash`; returns whether there was one.
pub(super) async fn delete_session(
    tx: &mut Transaction<'static, Any>,
    token_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The DID of the session of `token_hash` if it is live at `now`.
pub(super) async fn session_did(
    store: &Store,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT did FROM sessions WHERE token_hash = $1 AND expires_unix > $2")
        .bind(token_hash)
        .bind(now)
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| r.try_get::<String, _>(0)).transpose()
}
