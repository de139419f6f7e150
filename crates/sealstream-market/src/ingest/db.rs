//! Chains and chunks in the database (`chains`, `chunks`): the chain of
//! each (machine, topic), chunk rows by index or range, what an upload
//! writes, and the owners' usage the quotas count. Read by the routes of
//! ingest, datasets, listings and orders alike.
//!
//! Indexes are `u64` in the API and `BIGINT` (i64) in the database; every
//! index stored is below `i64::MAX`.

use std::ops::Range;

use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::quota::Usage;
use crate::store::{changed, stored_u64, DbError, Engine, Store, Tx};

/// The chain of one (machine, topic), as held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRow {
    /// The machine's DID.
    pub machine_did: String,
    /// The topic (`/sensor/gps`).
    pub topic: String,
    /// Chunks held: the next chunk's index.
    pub chunk_count: u64,
    /// The last chunk's id.
    pub head_chunk_id: String,
    /// Ciphertext bytes held.
    pub bytes: u64,
    /// When the last chunk arrived (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub updated_at: String,
}

/// One stored chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRow {
    /// Position in the chain.
    pub index: u64,
    /// `0x…` chunk id.
    pub chunk_id: String,
    /// The previous chunk's id (`None` for the first chunk).
    pub previous_chunk_id: Option<String>,
    /// The envelope JSON text, exactly as uploaded.
    pub envelope: String,
    /// Where the ciphertext is, in [`crate::objects::Objects`].
    pub object_key: String,
    /// Ciphertext size in bytes.
    pub size: u64,
    /// `0x` + hex SHA-256 of the ciphertext.
    pub ciphertext_hash: String,
    /// When it arrived (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub received_at: String,
    /// When it arrived, seconds since the epoch.
    pub received_unix: i64,
}

/// An index as the database binds it; `None` when too large to be stored.
pub fn db_index(index: u64) -> Option<i64> {
    i64::try_from(index).ok()
}

/// A count to store: [`DbError::Inconsistent`] if it does not fit.
fn to_db(value: u64, what: &'static str) -> Result<i64, DbError> {
    db_index(value).ok_or_else(|| DbError::inconsistent(what, format!("{value} is too large")))
}

fn stored(value: i64, what: &str) -> Result<u64, DbError> {
    stored_u64(value, "database", what)
}

const CHAIN_COLUMNS: &str = "machine_did, topic, chunk_count, head_chunk_id, bytes, updated_at";

fn chain_row(row: &AnyRow) -> Result<ChainRow, DbError> {
    Ok(ChainRow {
        machine_did: row.try_get(0)?,
        topic: row.try_get(1)?,
        chunk_count: stored(row.try_get(2)?, "chains.chunk_count")?,
        head_chunk_id: row.try_get(3)?,
        bytes: stored(row.try_get(4)?, "chains.bytes")?,
        updated_at: row.try_get(5)?,
    })
}

/// The chain of (`machine_did`, `topic`), if it has chunks.
pub async fn chain(
    store: &Store,
    machine_did: &str,
    topic: &str,
) -> Result<Option<ChainRow>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {CHAIN_COLUMNS} FROM chains WHERE machine_did = $1 AND topic = $2"
    ))
    .bind(machine_did)
    .bind(topic)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(chain_row).transpose()
}

/// Every chain of `machine_did`, by topic.
pub async fn chains(store: &Store, machine_did: &str) -> Result<Vec<ChainRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {CHAIN_COLUMNS} FROM chains WHERE machine_did = $1 ORDER BY topic"
    ))
    .bind(machine_did)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(chain_row).collect()
}

const CHUNK_COLUMNS: &str = "idx, chunk_id, previous_chunk_id, envelope, object_key, size, \
                             ciphertext_hash, received_at, received_unix";

/// The columns [`chunk_row`] reads, each prefixed with `alias` (for a
/// join that names the `chunks` table so).
pub(crate) fn chunk_columns_of(alias: &str) -> String {
    CHUNK_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A chunk row from the first columns of `row` ([`chunk_columns_of`]).
pub(crate) fn chunk_row(row: &AnyRow) -> Result<ChunkRow, DbError> {
    Ok(ChunkRow {
        index: stored(row.try_get(0)?, "chunks.idx")?,
        chunk_id: row.try_get(1)?,
        previous_chunk_id: row.try_get(2)?,
        envelope: row.try_get(3)?,
        object_key: row.try_get(4)?,
        size: stored(row.try_get(5)?, "chunks.size")?,
        ciphertext_hash: row.try_get(6)?,
        received_at: row.try_get(7)?,
        received_unix: row.try_get(8)?,
    })
}

/// The chunk at `index` of (`machine_did`, `topic`), if stored; read with
/// `executor` (the pool, or a transaction that reads more).
pub async fn chunk<'e, E>(
    executor: E,
    machine_did: &str,
    topic: &str,
    index: u64,
) -> Result<Option<ChunkRow>, DbError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let Some(index) = db_index(index) else {
        return Ok(None);
    };
    let row = sqlx::query(&format!(
        "SELECT {CHUNK_COLUMNS} FROM chunks WHERE machine_did = $1 AND topic = $2 AND idx = $3"
    ))
    .bind(machine_did)
    .bind(topic)
    .bind(index)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(chunk_row).transpose()
}

/// The chunks of (`machine_did`, `topic`) with an index in `range`, in
/// index order (those stored: a range past the head is cut short); read
/// with `executor` (the pool, or a transaction that reads more).
pub async fn chunk_rows<'e, E>(
    executor: E,
    machine_did: &str,
    topic: &str,
    range: Range<u64>,
) -> Result<Vec<ChunkRow>, DbError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let start = db_index(range.start).unwrap_or(i64::MAX);
    let end = db_index(range.end).unwrap_or(i64::MAX);
    if start >= end {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT {CHUNK_COLUMNS} FROM chunks \
         WHERE machine_did = $1 AND topic = $2 AND idx >= $3 AND idx < $4 ORDER BY idx"
    ))
    .bind(machine_did)
    .bind(topic)
    .bind(start)
    .bind(end)
    .fetch_all(executor)
    .await?;
    rows.iter().map(chunk_row).collect()
}

/// Whether a chunk with this id is held on any chain.
pub(crate) async fn chunk_id_held(store: &Store, chunk_id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM chunks WHERE chunk_id = $1")
        .bind(chunk_id)
        .fetch_optional(store.pool())
        .await?
        .is_some())
}

/// Moves the chain of (`machine_did`, `topic`) on by `chunk`, inside `tx`:
/// creates it when `head` is `None` (the first chunk), else advances it
/// only if it still holds `chunk.index` chunks ending at `head`. Returns
/// `false` when the chain moved meanwhile (another upload won).
pub(crate) async fn advance_chain(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
    head: Option<&str>,
    chunk: &ChunkRow,
) -> Result<bool, DbError> {
    let size = to_db(chunk.size, "chunk size")?;
    let moved = match head {
        None => changed(tx, sqlx::query(
            "INSERT INTO chains (machine_did, topic, chunk_count, head_chunk_id, bytes, updated_at) \
             VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (machine_did, topic) DO NOTHING",
        )
        .bind(machine_did)
        .bind(topic)
        .bind(&chunk.chunk_id)
        .bind(size)
        .bind(&chunk.received_at))
        .await?,
        Some(head) => changed(tx, sqlx::query(
            "UPDATE chains SET chunk_count = chunk_count + 1, head_chunk_id = $3, \
             bytes = bytes + $4, updated_at = $5 \
             WHERE machine_did = $1 AND topic = $2 AND chunk_count = $6 AND head_chunk_id = $7",
        )
        .bind(machine_did)
        .bind(topic)
        .bind(&chunk.chunk_id)
        .bind(size)
        .bind(&chunk.received_at)
        .bind(to_db(chunk.index, "chunk index")?)
        .bind(head))
        .await?,
    };
    Ok(moved == 1)
}

/// Inserts `chunk` on the chain of (`machine_did`, `topic`), inside `tx`.
/// Returns `false` when its id is held already (stored under another
/// machine or topic meanwhile).
pub(crate) async fn insert_chunk(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
    chunk: &ChunkRow,
) -> Result<bool, DbError> {
    let query = sqlx::query(
        "INSERT INTO chunks (machine_did, topic, idx, chunk_id, previous_chunk_id, envelope, \
         object_key, size, ciphertext_hash, received_at, received_unix) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(machine_did)
    .bind(topic)
    .bind(to_db(chunk.index, "chunk index")?)
    .bind(&chunk.chunk_id)
    .bind(chunk.previous_chunk_id.clone())
    .bind(&chunk.envelope)
    .bind(&chunk.object_key)
    .bind(to_db(chunk.size, "chunk size")?)
    .bind(&chunk.ciphertext_hash)
    .bind(&chunk.received_at)
    .bind(chunk.received_unix);
    Ok(changed(tx, query).await? == 1)
}

/// The ciphertext bytes and chunks held on the chains of `owner`'s
/// machines.
pub(crate) async fn owner_usage<'e, E>(executor: E, owner: &str) -> Result<Usage, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(c.bytes), 0) AS BIGINT), \
         CAST(COALESCE(SUM(c.chunk_count), 0) AS BIGINT) \
         FROM chains c JOIN machines m ON m.did = c.machine_did WHERE m.owner_did = $1",
    )
    .bind(owner)
    .fetch_one(executor)
    .await?;
    Ok(Usage {
        bytes: row.try_get::<i64, _>(0)?.max(0) as u64,
        chunks: row.try_get::<i64, _>(1)?.max(0) as u64,
    })
}

/// Serialises the quota checks of `owner`'s uploads until `tx` ends: on
/// PostgreSQL a transaction-scoped advisory lock on the owner; on SQLite
/// the transaction already holds the database's write lock.
pub(crate) async fn lock_owner(
    tx: &mut Tx,
    engine: Engine,
    owner: &str,
) -> Result<(), sqlx::Error> {
    if engine == Engine::Postgres {
        let query = sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("sealstream.owner-quota:{owner}"));
        changed(tx, query).await?;
    }
    Ok(())
}
