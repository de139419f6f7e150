//! The audit log in the database: `audit_events` (the chain of events)
//! and `audit_heads` (the heads signed so far).

use futures_util::stream::BoxStream;
use sealstream_api::audit::SignedAuditHead;
use sealstream_core::keys::{parse_hex_array, ReceiptPublicKey};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::signed::SignedHeadError;
use super::Event;
use crate::store::{changed, placeholders, Store, Tx};

/// Takes the log's write lock inside `tx`, before anything is read, so
/// that appends from any number of connections or processes are
/// serialised; it is held until `tx` ends. PostgreSQL: a transaction's
/// advisory lock on the log, which only other appends wait for (a lock on
/// the table itself would also wait for, and then cancel, every vacuum of
/// it: measured as a one-second stall of all appends at each autovacuum,
/// and a log that is never vacuumed). SQLite: a write that changes
/// nothing, which takes the database's write lock (waiting for it under
/// the busy timeout).
pub(super) async fn lock(tx: &mut Tx) -> Result<(), sqlx::Error> {
    let lock = if crate::store::is_postgres(tx) {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(LOCK_NAME)
    } else {
        sqlx::query("UPDATE audit_events SET seq = seq WHERE 1 = 0")
    };
    changed(tx, lock).await?;
    Ok(())
}

/// The name whose hash keys the log's advisory lock on PostgreSQL.
const LOCK_NAME: &str = "sealstream.audit-log";

/// The newest event's number and hash, read together in one statement;
/// `None` for an empty log.
pub(super) async fn last<'e, E>(executor: E) -> Result<Option<(i64, String)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(executor)
        .await
}

/// The newest event's number, hash and time, for the next append; `None`
/// for an empty log.
pub(super) async fn last_for_append(
    tx: &mut Tx,
) -> Result<Option<(i64, String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, hash, at FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await
}

/// Inserts `events` inside `tx` (which holds the [`lock`]), in a few
/// statements.
pub(super) async fn insert_all(tx: &mut Tx, events: &[Event]) -> Result<(), sqlx::Error> {
    /// Rows per statement (8 parameters each; few, as binding costs the
    /// square of a statement's parameters on SQLite).
    const PER_STATEMENT: usize = 50;
    for part in events.chunks(PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit_events (seq, at, actor, action, subject, details, prev, hash) \
             VALUES {}",
            placeholders(part.len(), 8, 1)
        );
        let mut query = sqlx::query(&sql);
        for event in part {
            query = query
                .bind(event.seq)
                .bind(&event.at)
                .bind(&event.actor)
                .bind(&event.action)
                .bind(&event.subject)
                .bind(&event.details)
                .bind(&event.prev)
                .bind(&event.hash);
        }
        changed(tx, query).await?;
    }
    Ok(())
}

/// Every event, by number, as a stream (the log is never held whole).
pub(super) fn events(store: &Store) -> BoxStream<'_, Result<Event, sqlx::Error>> {
    sqlx::query_as(
        "SELECT seq, at, actor, action, subject, details, prev, hash \
         FROM audit_events ORDER BY seq",
    )
    .fetch(store.pool())
}

/// Events `1..=upto`, by number, as a stream.
pub(super) fn events_upto(store: &Store, upto: u64) -> BoxStream<'_, Result<Event, sqlx::Error>> {
    sqlx::query_as(
        "SELECT seq, at, actor, action, subject, details, prev, hash \
         FROM audit_events WHERE seq <= $1 ORDER BY seq",
    )
    .bind(i64::try_from(upto).unwrap_or(i64::MAX))
    .fetch(store.pool())
}

/// The hash of event `seq`, if the log holds it.
pub(super) async fn hash_of(store: &Store, seq: u64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .fetch_optional(store.pool())
        .await
}

fn head_of(row: &AnyRow) -> Result<SignedAuditHead, SignedHeadError> {
    let events: i64 = row.try_get("events")?;
    let key: String = row.try_get("server_key")?;
    let signature: String = row.try_get("signature")?;
    Ok(SignedAuditHead {
        events: u64::try_from(events)
            .map_err(|_| sealstream_core::ValidationError::new("audit_heads.events", "negative"))?,
        head: row.try_get("head")?,
        signed_at: row.try_get("signed_at")?,
        public_key: ReceiptPublicKey::from_hex(&key, "audit_heads.server_key")?,
        signature: parse_hex_array::<64>(&signature, "audit_heads.signature")?,
    })
}

/// The newest signed head in `audit_heads`, if any.
pub(super) async fn latest_head(store: &Store) -> Result<Option<SignedAuditHead>, SignedHeadError> {
    let row = sqlx::query(
        "SELECT events, head, signed_at, server_key, signature FROM audit_heads \
         ORDER BY events DESC LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(head_of).transpose()
}

/// Keeps `head` in `audit_heads` (a head of the same event count already
/// kept stays).
pub(super) async fn insert_head(store: &Store, head: &SignedAuditHead) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_heads (events, head, signed_at, server_key, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(i64::try_from(head.events).unwrap_or(i64::MAX))
    .bind(&head.head)
    .bind(&head.signed_at)
    .bind(head.public_key.to_hex())
    .bind(hex::encode(head.signature))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// What someone who can write the database does to the log, for the tests
/// that show it is caught.
#[cfg(test)]
pub(super) mod tamper {
    use super::{Event, Store};

    /// Runs `sql` on `store`.
    pub async fn exec(store: &Store, sql: &str) {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }

    /// Stores `event` over the event of its number.
    pub async fn rewrite(store: &Store, event: &Event) {
        sqlx::query(
            "UPDATE audit_events SET details = $1, prev = $2, hash = $3, at = $4 WHERE seq = $5",
        )
        .bind(&event.details)
        .bind(&event.prev)
        .bind(&event.hash)
        .bind(&event.at)
        .bind(event.seq)
        .execute(store.pool())
        .await
        .unwrap();
    }
}
