//! Operator keys in the database (`operator_keys`), and the paid orders
//! the granter can grant with them.

use sqlx::{Any, Row, Transaction};

use crate::store::Store;

/// An operator key as stored: its public half and the sealed secret.
pub(super) struct StoredKey<'a> {
    /// The machine.
    pub machine_did: &'a str,
    /// The machine's owner, who registered it.
    pub owner_did: &'a str,
    /// The X25519 public key, hex.
    pub public_key_hex: &'a str,
    /// The secret sealed under the key-encryption key.
    pub sealed_secret: &'a str,
    /// When it was registered (UTC).
    pub created_at: &'a str,
}

/// Stores `key` as the machine's operator key, replacing any held.
pub(super) async fn replace(
    tx: &mut Transaction<'static, Any>,
    key: &StoredKey<'_>,
) -> Result<(), sqlx::Error> {
    delete(tx, key.machine_did).await?;
    sqlx::query(
        "INSERT INTO operator_keys (machine_did, owner_did, public_key_hex, sealed_secret, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.machine_did)
    .bind(key.owner_did)
    .bind(key.public_key_hex)
    .bind(key.sealed_secret)
    .bind(key.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forgets the operator key of `machine_did`; returns whether one was held.
pub(super) async fn delete(
    tx: &mut Transaction<'static, Any>,
    machine_did: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM operator_keys WHERE machine_did = $1")
        .bind(machine_did)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The public key (hex) of `machine_did`'s operator key and when it was
/// registered, if one is held.
pub(super) async fn public_key(
    store: &Store,
    machine_did: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT public_key_hex, created_at FROM operator_keys WHERE machine_did = $1")
            .bind(machine_did)
            .fetch_optional(store.pool())
            .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// A paid order whose dataset's machine has an operator key.
pub(super) struct Grantable {
    /// The order.
    pub order_id: String,
    /// When it was paid (UTC).
    pub paid_at: Option<String>,
    /// The machine of its dataset.
    pub machine_did: String,
    /// The machine's operator secret, sealed.
    pub sealed_secret: String,
}

/// Paid orders whose dataset's machine has an operator key, by time of
/// payment then id, after (`paid_at`, `order_id`) = `after`, at most
/// `limit`.
pub(super) async fn grantable(
    store: &Store,
    after: &(String, String),
    limit: i64,
) -> Result<Vec<Grantable>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.id, o.paid_at, k.machine_did, k.sealed_secret FROM orders o \
         JOIN datasets d ON d.id = o.dataset_id \
         JOIN operator_keys k ON k.machine_did = d.machine_did \
         WHERE o.state = 'paid' AND (o.paid_at > $1 OR (o.paid_at = $1 AND o.id > $2)) \
         ORDER BY o.paid_at, o.id LIMIT $3",
    )
    .bind(&after.0)
    .bind(&after.1)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Grantable {
                order_id: r.try_get(0)?,
                paid_at: r.try_get(1)?,
                machine_did: r.try_get(2)?,
                sealed_secret: r.try_get(3)?,
            })
        })
        .collect()
}
