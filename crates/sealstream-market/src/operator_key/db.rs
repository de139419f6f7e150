//! Operator keys in the database (`operator_keys`), and the paid orders
//! the granter can grant with them.

use crate::store::{changed, Store, Tx};

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
pub(super) async fn replace(tx: &mut Tx, key: &StoredKey<'_>) -> Result<(), sqlx::Error> {
    delete(tx, key.machine_did).await?;
    let query = sqlx::query(
        "INSERT INTO operator_keys (machine_did, owner_did, public_key_hex, sealed_secret, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key.machine_did)
    .bind(key.owner_did)
    .bind(key.public_key_hex)
    .bind(key.sealed_secret)
    .bind(key.created_at);
    changed(tx, query).await?;
    Ok(())
}

/// Forgets the operator key of `machine_did`; returns whether one was held.
pub(super) async fn delete(tx: &mut Tx, machine_did: &str) -> Result<bool, sqlx::Error> {
    let query = sqlx::query("DELETE FROM operator_keys WHERE machine_did = $1").bind(machine_did);
    Ok(changed(tx, query).await? > 0)
}

/// The public key (hex) of `machine_did`'s operator key and when it was
/// registered, if one is held.
pub(super) async fn public_key(
    store: &Store,
    machine_did: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT public_key_hex, created_at FROM operator_keys WHERE machine_did = $1")
        .bind(machine_did)
        .fetch_optional(store.pool())
        .await
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

/// The statement of [`grantable`]: by the partial index `orders_grantable`
/// (migration 0025), which holds only dataset orders paid and not yet
/// granted (a subscription period's order names no dataset and stays
/// `paid`).
const GRANTABLE: &str = "SELECT o.id, o.paid_at, k.machine_did, k.sealed_secret FROM orders o \
    JOIN datasets d ON d.id = o.dataset_id \
    JOIN operator_keys k ON k.machine_did = d.machine_did \
    WHERE o.state = 'paid' AND o.dataset_id <> '' AND (o.paid_at, o.id) > ($1, $2) \
    ORDER BY o.paid_at, o.id LIMIT $3";

/// Paid orders whose dataset's machine has an operator key, by time of
/// payment then id, after (`paid_at`, `order_id`) = `after`, at most
/// `limit`.
pub(super) async fn grantable(
    store: &Store,
    after: &(String, String),
    limit: i64,
) -> Result<Vec<Grantable>, sqlx::Error> {
    let rows: Vec<(String, Option<String>, String, String)> = sqlx::query_as(GRANTABLE)
        .bind(&after.0)
        .bind(&after.1)
        .bind(limit)
        .fetch_all(store.pool())
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(order_id, paid_at, machine_did, sealed_secret)| Grantable {
                order_id,
                paid_at,
                machine_did,
                sealed_secret,
            },
        )
        .collect())
}

/// A topic with subscriptions that were ever active, whose machine has an
/// operator key.
pub(super) struct SubscribedTopic {
    /// The machine.
    pub machine_did: String,
    /// Its topic.
    pub topic: String,
    /// The machine's operator secret, sealed.
    pub sealed_secret: String,
}

/// The topics the granter grants subscriptions of: those with a
/// subscription that was ever active, of a machine with an operator key,
/// by machine and topic.
pub(super) async fn subscribed_topics(store: &Store) -> Result<Vec<SubscribedTopic>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT s.machine_did, s.topic, k.sealed_secret FROM subscriptions s \
         JOIN operator_keys k ON k.machine_did = s.machine_did \
         WHERE s.active_from_unix IS NOT NULL ORDER BY s.machine_did, s.topic",
    )
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(machine_did, topic, sealed_secret)| SubscribedTopic {
            machine_did,
            topic,
            sealed_secret,
        })
        .collect())
}

/// Whether the granter has subscriptions of this topic to grant: one is
/// active or in grace and the machine has an operator key.
pub(crate) async fn grants_live(
    store: &Store,
    machine_did: &str,
    topic: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT 1 FROM subscriptions s JOIN operator_keys k ON k.machine_did = s.machine_did \
         WHERE s.machine_did = $1 AND s.topic = $2 AND s.state IN ('active', 'grace') LIMIT 1",
    )
    .bind(machine_did)
    .bind(topic)
    .fetch_optional(store.pool())
    .await?
    .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `store` with 1,000 paid subscription-period orders (no
    /// dataset) and statistics.
    async fn with_period_orders(store: &Store, postgres: bool) {
        let series = if postgres {
            "SELECT i FROM generate_series(1, 1000) AS i"
        } else {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             SELECT i FROM n"
        };
        let sql = format!(
            "INSERT INTO orders (id, listing_id, dataset_id, seller_did, buyer_did, buyer_id, \
               buyer_public_key_hex, amount, rail, state, created_at, paid_at, subscription_id) \
             SELECT 'ord_' || i, 'lst', '', 'did:s', 'did:b', 'b', 'k', '1', 'invoice', 'paid', \
               't', 't' || i, 'sub_' || i FROM ({series}) AS s"
        );
        sqlx::query(&sql)
            .execute(store.pool())
            .await
            .expect("orders");
        sqlx::query("ANALYZE")
            .execute(store.pool())
            .await
            .expect("ANALYZE");
    }

    /// The sweep reads the paid orders to grant through `orders_grantable`
    /// on both engines, not every paid order (a subscription period's
    /// order stays `paid` for good): PostgreSQL's generic plan and
    /// SQLite's query plan both name the index.
    #[test]
    fn the_grant_sweep_reads_only_dataset_orders_to_grant() {
        let (runtime, store) = crate::store::test_postgres::store();
        let (postgres, sqlite) = runtime.block_on(async {
            with_period_orders(&store, true).await;
            let postgres =
                crate::store::test_postgres::generic_plan(&store, GRANTABLE, "'', '', 100").await;
            store.close().await;

            let store = Store::open("sqlite::memory:").await.expect("SQLite");
            with_period_orders(&store, false).await;
            let sqlite: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {GRANTABLE}"))
                    .bind("")
                    .bind("")
                    .bind(100_i64)
                    .fetch_all(store.pool())
                    .await
                    .expect("EXPLAIN QUERY PLAN");
            (
                postgres,
                sqlite
                    .into_iter()
                    .map(|(_, _, _, d)| d)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        });
        assert!(postgres.contains("orders_grantable"), "{postgres}");
        assert!(sqlite.contains("orders_grantable"), "{sqlite}");
    }
}
