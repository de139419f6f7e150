//! Principals, roles, sessions and used sign-in nonces in the database
//! (`principals`, `principal_roles`, `sessions`, `auth_nonces`).

use sealstream_core::utc;

use super::Role;
use crate::store::{changed, Store, Tx};

/// The roles granted to `did` in `principal_roles` (names no longer known
/// are skipped).
pub(super) async fn granted_roles(store: &Store, did: &str) -> Result<Vec<Role>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar("SELECT role FROM principal_roles WHERE did = $1")
        .bind(did)
        .fetch_all(store.pool())
        .await?;
    Ok(names.iter().filter_map(|name| Role::parse(name)).collect())
}

/// Whether `did` holds `role` in `principal_roles`.
pub(super) async fn has_role(tx: &mut Tx, did: &str, role: Role) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM principal_roles WHERE did = $1 AND role = $2")
            .bind(did)
            .bind(role.as_str())
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Grants `role` to `did`; a role already held is left as it is (`ON
/// CONFLICT DO NOTHING`, so two processes granting it at once do not
/// fail). Returns whether a row was added.
pub(super) async fn insert_role(
    tx: &mut Tx,
    did: &str,
    role: Role,
    granted_by: &str,
    granted_at: &str,
) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO principal_roles (did, role, granted_by, granted_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (did, role) DO NOTHING",
    )
    .bind(did)
    .bind(role.as_str())
    .bind(granted_by)
    .bind(granted_at);
    Ok(changed(tx, query).await? == 1)
}

/// Revokes `role` from `did`; returns whether it was held.
pub(super) async fn delete_role(tx: &mut Tx, did: &str, role: Role) -> Result<bool, sqlx::Error> {
    let query = sqlx::query("DELETE FROM principal_roles WHERE did = $1 AND role = $2")
        .bind(did)
        .bind(role.as_str());
    Ok(changed(tx, query).await? > 0)
}

/// Records `did` in `principals` if it is not there yet.
pub(super) async fn ensure_principal(tx: &mut Tx, did: &str, now: &str) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO principals (did, first_seen_at) VALUES ($1, $2) ON CONFLICT (did) DO NOTHING",
    )
    .bind(did)
    .bind(now);
    changed(tx, query).await?;
    Ok(())
}

/// Records `now` as the first sign-in of `did` unless it signed in
/// before; returns whether this is its first.
pub(super) async fn mark_first_sign_in(
    tx: &mut Tx,
    did: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "UPDATE principals SET first_sign_in_at = $1 WHERE did = $2 AND first_sign_in_at IS NULL",
    )
    .bind(now)
    .bind(did);
    Ok(changed(tx, query).await? == 1)
}

/// Forgets the nonces expired at `now` (their tags no longer check), then
/// records `nonce` (issued for `domain` at `issued_unix`, expiring at
/// `expires_unix`) as used now by `used_by`. Used nonces are kept until
/// they expire. Returns `false` when it was used already.
pub(super) async fn use_nonce(
    tx: &mut Tx,
    nonce: &str,
    domain: &str,
    issued_unix: i64,
    expires_unix: i64,
    now: i64,
    used_by: &str,
) -> Result<bool, sqlx::Error> {
    let query = sqlx::query("DELETE FROM auth_nonces WHERE expires_unix <= $1").bind(now);
    changed(tx, query).await?;
    let query = sqlx::query(
        "INSERT INTO auth_nonces (nonce, domain, issued_at, expires_unix, used_at, used_by) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (nonce) DO NOTHING",
    )
    .bind(nonce)
    .bind(domain)
    .bind(utc::format_seconds(issued_unix))
    .bind(expires_unix)
    .bind(utc::format_seconds(now))
    .bind(used_by);
    Ok(changed(tx, query).await? == 1)
}

/// Stores a session (`token_hash`, the SHA-256 of its token) for `did`.
pub(super) async fn insert_session(
    tx: &mut Tx,
    token_hash: &str,
    did: &str,
    created_at: &str,
    expires_unix: i64,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO sessions (token_hash, did, created_at, expires_unix) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(did)
    .bind(created_at)
    .bind(expires_unix);
    changed(tx, query).await?;
    Ok(())
}

/// Deletes every session (and web sign-in link, kept in the same table)
/// that expired before `now_unix`; returns how many.
pub(crate) async fn purge_expired(tx: &mut Tx, now_unix: i64) -> Result<u64, sqlx::Error> {
    changed(
        tx,
        sqlx::query("DELETE FROM sessions WHERE expires_unix < $1").bind(now_unix),
    )
    .await
}

/// Deletes the session of `token_hash`; returns whether there was one.
pub(super) async fn delete_session(tx: &mut Tx, token_hash: &str) -> Result<bool, sqlx::Error> {
    let query = sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash);
    Ok(changed(tx, query).await? > 0)
}

/// The DID of the session of `token_hash` if it is live at `now`.
pub(super) async fn session_did(
    store: &Store,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT did FROM sessions WHERE token_hash = $1 AND expires_unix > $2")
        .bind(token_hash)
        .bind(now)
        .fetch_optional(store.pool())
        .await
}

/// A page of principals in DID order after `after` (at most `limit`), each
/// with when it was first seen and its granted roles (comma-separated, in
/// name order), for the admin page.
pub(crate) async fn principals(
    store: &Store,
    after: &str,
    limit: i64,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT did, first_seen_at FROM principals WHERE did > $1 ORDER BY did LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (did, seen) in rows {
        let mut names: Vec<String> =
            sqlx::query_scalar("SELECT role FROM principal_roles WHERE did = $1")
                .bind(&did)
                .fetch_all(store.pool())
                .await?;
        names.sort();
        out.push((did, seen, names.join(", ")));
    }
    Ok(out)
}

/// [`session_did`] inside `tx`.
pub(super) async fn session_did_in(
    tx: &mut Tx,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT did FROM sessions WHERE token_hash = $1 AND expires_unix > $2")
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
}
