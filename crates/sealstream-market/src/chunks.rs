//! Stored chains, read back: registered machines as ingest sees them, the
//! chain of each (machine, topic), chunk rows by index or range, and the
//! ciphertext objects. Plain async functions over [`Store`] and
//! [`Objects`], for the routes of ingest, datasets and listings alike.
//!
//! Indexes are `u64` in the API and `BIGINT` (i64) in the database; every
//! index stored is below `i64::MAX`.

use std::ops::Range;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use sealstream_core::identity::Did;
use serde::Deserialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::objects::{ObjectError, Objects};
use crate::store::Store;

/// A registered machine: what ingest checks uploads against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineRecord {
    /// `did:peaq:0x…`, as registered.
    pub did: String,
    /// The owner's DID.
    pub owner_did: String,
    /// The chain's Ed25519 public key, hex, as registered.
    pub chain_public_key: String,
    /// The recipients every chunk key must be wrapped for.
    pub recipients: Vec<RegisteredRecipient>,
}

/// One recipient of a registered machine (`machines.recipients`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredRecipient {
    /// Id (`owner-1`, …).
    pub recipient_id: String,
    /// Type (`owner`, `operator`, `machine`, …).
    pub recipient_type: String,
    /// X25519 public key, hex.
    pub public_key_hex: String,
}

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
    /// Where the ciphertext is, in [`Objects`].
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

/// Why stored chains could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChunksError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value is not what the schema promises.
    #[error("stored {what} is corrupt: {message}")]
    Corrupt {
        /// Which value.
        what: String,
        /// What is wrong with it.
        message: String,
    },
}

impl From<ChunksError> for ApiError {
    fn from(e: ChunksError) -> Self {
        ApiError::internal("database", e)
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

fn index_of(value: i64, what: &str) -> Result<u64, ChunksError> {
    u64::try_from(value).map_err(|_| ChunksError::Corrupt {
        what: what.to_string(),
        message: format!("negative value {value}"),
    })
}

/// An index as the database binds it; `None` when too large to be stored.
pub fn db_index(index: u64) -> Option<i64> {
    i64::try_from(index).ok()
}

/// The registered machine `did` (canonical text), if any.
pub async fn machine(store: &Store, did: &str) -> Result<Option<MachineRecord>, ChunksError> {
    let row = sqlx::query(
        "SELECT did, owner_did, chain_public_key, recipients FROM machines WHERE did = $1",
    )
    .bind(did)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let recipients_text: String = row.try_get(3)?;
    let recipients = serde_json::from_str(&recipients_text).map_err(|e| ChunksError::Corrupt {
        what: format!("recipients of machine {did}"),
        message: e.to_string(),
    })?;
    Ok(Some(MachineRecord {
        did: row.try_get(0)?,
        owner_did: row.try_get(1)?,
        chain_public_key: row.try_get(2)?,
        recipients,
    }))
}

/// Whether `principal` may read the chains of `machine`: the machine
/// itself, its owner (while an owner: a 403 once the role is revoked), or
/// an admin.
pub fn may_read(principal: &Principal, machine: &MachineRecord) -> Result<bool, ApiError> {
    Ok(same_did(&principal.did, &machine.did)
        || principal.has(Role::Admin)
        || principal.owner_access(&machine.owner_did)?)
}

/// The machine `did` (as given in a request path, field `did`) if
/// `principal` may read its chains; a 404 otherwise, whether it is not
/// registered or belongs to someone else.
pub async fn readable_machine(
    store: &Store,
    principal: &Principal,
    did: &str,
) -> ApiResult<MachineRecord> {
    let did = canonical_did(did, "did")?;
    match machine(store, &did).await? {
        Some(m) if may_read(principal, &m)? => Ok(m),
        _ => Err(ApiError::not_found(format!("machine {did} not found"))),
    }
}

fn chain_row(row: &AnyRow) -> Result<ChainRow, ChunksError> {
    Ok(ChainRow {
        machine_did: row.try_get(0)?,
        topic: row.try_get(1)?,
        chunk_count: index_of(row.try_get(2)?, "chains.chunk_count")?,
        head_chunk_id: row.try_get(3)?,
        bytes: index_of(row.try_get(4)?, "chains.bytes")?,
        updated_at: row.try_get(5)?,
    })
}

const CHAIN_COLUMNS: &str = "machine_did, topic, chunk_count, head_chunk_id, bytes, updated_at";

/// The chain of (`machine_did`, `topic`), if it has chunks.
pub async fn chain(
    store: &Store,
    machine_did: &str,
    topic: &str,
) -> Result<Option<ChainRow>, ChunksError> {
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
pub async fn chains(store: &Store, machine_did: &str) -> Result<Vec<ChainRow>, ChunksError> {
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

fn chunk_row(row: &AnyRow) -> Result<ChunkRow, ChunksError> {
    Ok(ChunkRow {
        index: index_of(row.try_get(0)?, "chunks.idx")?,
        chunk_id: row.try_get(1)?,
        previous_chunk_id: row.try_get(2)?,
        envelope: row.try_get(3)?,
        object_key: row.try_get(4)?,
        size: index_of(row.try_get(5)?, "chunks.size")?,
        ciphertext_hash: row.try_get(6)?,
        received_at: row.try_get(7)?,
        received_unix: row.try_get(8)?,
    })
}

/// The chunk at `index` of (`machine_did`, `topic`), if stored.
pub async fn chunk(
    store: &Store,
    machine_did: &str,
    topic: &str,
    index: u64,
) -> Result<Option<ChunkRow>, ChunksError> {
    let Some(index) = db_index(index) else {
        return Ok(None);
    };
    let row = sqlx::query(&format!(
        "SELECT {CHUNK_COLUMNS} FROM chunks WHERE machine_did = $1 AND topic = $2 AND idx = $3"
    ))
    .bind(machine_did)
    .bind(topic)
    .bind(index)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(chunk_row).transpose()
}

/// The chunks of (`machine_did`, `topic`) with an index in `range`, in
/// index order (those stored: a range past the head is cut short).
pub async fn chunk_rows(
    store: &Store,
    machine_did: &str,
    topic: &str,
    range: Range<u64>,
) -> Result<Vec<ChunkRow>, ChunksError> {
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
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(chunk_row).collect()
}

/// The ciphertext of a stored chunk, streamed from the object store, with
/// its size.
pub async fn ciphertext(
    objects: &Objects,
    chunk: &ChunkRow,
) -> Result<(u64, BoxStream<'static, Result<Bytes, object_store::Error>>), ObjectError> {
    let result = objects.get(&chunk.object_key).await?;
    let size = result.meta.size;
    Ok((size, result.into_stream()))
}
