//! Datasets in the database: rows, the chunk ranges they cover, and the
//! Merkle computations over a range's chunk ids.

use futures_util::TryStreamExt;
use sealstream_core::dataset::{chunk_leaf, hash_hex};
use sealstream_core::merkle::{Hash, RootBuilder};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::store::Store;

/// Rows read per query while a range's root is computed: memory stays
/// bounded whatever the range's length.
pub const PAGE: i64 = 5_000;

pub use sealstream_api::datasets::DatasetState;

/// A `datasets` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetRow {
    /// `ds_` + 16 hex digits.
    pub id: String,
    /// The owner of the machine (who may sign, list and sell it).
    pub owner_did: String,
    /// The machine whose chain this is.
    pub machine_did: String,
    /// The chain's topic.
    pub topic: String,
    /// Chain index of the first chunk covered.
    pub first_index: u64,
    /// Chunks covered (at least 1).
    pub chunk_count: u64,
    /// Id of the first chunk covered.
    pub first_chunk_id: String,
    /// Id of the last chunk covered.
    pub head_chunk_id: String,
    /// `0x` + the RFC 6962 root over the covered chunk ids.
    pub merkle_root: String,
    /// The chain's Ed25519 public key (hex).
    pub chain_public_key_hex: String,
    /// When the server received the first chunk covered (Unix seconds).
    pub first_received_unix: i64,
    /// When the server received the last chunk covered (Unix seconds).
    pub last_received_unix: i64,
    /// Draft or signed.
    pub state: DatasetState,
    /// The signed manifest (JSON text), once signed.
    pub manifest: Option<String>,
    /// Who signed it: the owner when the owner signed, else the machine.
    pub signer_did: Option<String>,
    /// Creation time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created_at: String,
    /// Readable by anyone (a listing of it is published).
    pub public: bool,
}

impl DatasetRow {
    /// Chain index of the last chunk covered.
    pub fn last_index(&self) -> u64 {
        self.first_index + self.chunk_count - 1
    }

    /// Whether chain index `index` is in the dataset.
    pub fn covers(&self, index: u64) -> bool {
        index >= self.first_index && index - self.first_index < self.chunk_count
    }
}

/// Why a dataset could not be read or computed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetStoreError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row breaks an invariant (a gap in a chain, a malformed id,
    /// an unknown state): the database was changed behind the server.
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
}

pub(crate) const COLUMNS: &str = "id, owner_did, machine_did, topic, first_index, chunk_count, \
     first_chunk_id, head_chunk_id, merkle_root, chain_public_key, first_received_unix, \
     last_received_unix, state, manifest, signer_did, created_at, public";

fn to_u64(v: i64, what: &str) -> Result<u64, DatasetStoreError> {
    u64::try_from(v).map_err(|_| DatasetStoreError::Inconsistent(format!("negative {what}")))
}

pub(crate) fn row_of(r: &AnyRow) -> Result<DatasetRow, DatasetStoreError> {
    let state: String = r.try_get("state")?;
    let chunk_count = to_u64(r.try_get("chunk_count")?, "chunk_count")?;
    if chunk_count == 0 {
        return Err(DatasetStoreError::Inconsistent(
            "a dataset without chunks".into(),
        ));
    }
    Ok(DatasetRow {
        id: r.try_get("id")?,
        owner_did: r.try_get("owner_did")?,
        machine_did: r.try_get("machine_did")?,
        topic: r.try_get("topic")?,
        first_index: to_u64(r.try_get("first_index")?, "first_index")?,
        chunk_count,
        first_chunk_id: r.try_get("first_chunk_id")?,
        head_chunk_id: r.try_get("head_chunk_id")?,
        merkle_root: r.try_get("merkle_root")?,
        chain_public_key_hex: r.try_get("chain_public_key")?,
        first_received_unix: r.try_get("first_received_unix")?,
        last_received_unix: r.try_get("last_received_unix")?,
        state: DatasetState::parse(&state)
            .ok_or_else(|| DatasetStoreError::Inconsistent(format!("dataset state {state:?}")))?,
        manifest: r.try_get("manifest")?,
        signer_did: r.try_get("signer_did")?,
        created_at: r.try_get("created_at")?,
        public: r.try_get::<i64, _>("public")? != 0,
    })
}

/// The dataset `id`, if it exists (whoever may see it: callers decide).
pub async fn dataset_by_id(
    store: &Store,
    id: &str,
) -> Result<Option<DatasetRow>, DatasetStoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM datasets WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(row_of).transpose()
}

/// Marks dataset `id` public (readable by anyone: manifest, proofs,
/// envelopes) or not, inside the caller's transaction; the caller appends
/// the audit event for the change that makes it so (a listing published or
/// withdrawn). Returns whether the dataset exists.
pub async fn set_public(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    public: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE datasets SET public = $1 WHERE id = $2")
        .bind(i64::from(public))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The signed dataset already held with exactly `row`'s manifest (the same
/// manifest delivered twice), if any.
pub async fn signed_twin(
    store: &Store,
    row: &DatasetRow,
) -> Result<Option<DatasetRow>, DatasetStoreError> {
    let found = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM datasets WHERE machine_did = $1 AND topic = $2 \
         AND first_index = $3 AND chunk_count = $4 AND merkle_root = $5 AND state = $6 \
         AND manifest = $7 ORDER BY created_at, id LIMIT 1"
    ))
    .bind(&row.machine_did)
    .bind(&row.topic)
    .bind(i64::try_from(row.first_index).unwrap_or(i64::MAX))
    .bind(i64::try_from(row.chunk_count).unwrap_or(i64::MAX))
    .bind(&row.merkle_root)
    .bind(DatasetState::Signed.as_str())
    .bind(&row.manifest)
    .fetch_optional(store.pool())
    .await?;
    found.as_ref().map(row_of).transpose()
}

/// Inserts a new dataset row inside `tx`.
pub(crate) async fn insert(
    tx: &mut Transaction<'static, Any>,
    d: &DatasetRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO datasets ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&d.id)
    .bind(&d.owner_did)
    .bind(&d.machine_did)
    .bind(&d.topic)
    .bind(d.first_index as i64)
    .bind(d.chunk_count as i64)
    .bind(&d.first_chunk_id)
    .bind(&d.head_chunk_id)
    .bind(&d.merkle_root)
    .bind(&d.chain_public_key_hex)
    .bind(d.first_received_unix)
    .bind(d.last_received_unix)
    .bind(d.state.as_str())
    .bind(d.manifest.clone())
    .bind(d.signer_did.clone())
    .bind(&d.created_at)
    .bind(i64::from(d.public))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores the signed manifest of draft `id` inside `tx`. Returns `false`
/// when the dataset is no longer a draft (signed meanwhile).
pub(crate) async fn sign_draft(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    manifest: &str,
    signer_did: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE datasets SET state = $1, manifest = $2, signer_did = $3 \
         WHERE id = $4 AND state = $5",
    )
    .bind(DatasetState::Signed.as_str())
    .bind(manifest)
    .bind(signer_did)
    .bind(id)
    .bind(DatasetState::Draft.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Datasets owned by `owner` (every dataset when `None`), newest first.
pub async fn list(
    store: &Store,
    owner: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<DatasetRow>, DatasetStoreError> {
    let rows = match owner {
        Some(owner) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM datasets WHERE owner_did = $1 \
                 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
            ))
            .bind(owner)
            .bind(limit)
            .bind(offset)
            .fetch_all(store.pool())
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM datasets ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
            ))
            .bind(limit)
            .bind(offset)
            .fetch_all(store.pool())
            .await?
        }
    };
    rows.iter().map(row_of).collect()
}

/// Chunks held on the chain of (`machine`, `topic`), `None` if it has none.
pub async fn chain_length(
    store: &Store,
    machine: &str,
    topic: &str,
) -> Result<Option<u64>, DatasetStoreError> {
    let row = sqlx::query("SELECT chunk_count FROM chains WHERE machine_did = $1 AND topic = $2")
        .bind(machine)
        .bind(topic)
        .fetch_optional(store.pool())
        .await?;
    match row {
        Some(r) => Ok(Some(to_u64(r.try_get(0)?, "chunk_count")?)),
        None => Ok(None),
    }
}

/// The chain indexes of the first chunk received at or after `from_unix`
/// and of the last received before `to_unix`, `None` if no chunk was
/// received in between.
pub async fn index_range_received(
    store: &Store,
    machine: &str,
    topic: &str,
    from_unix: i64,
    to_unix: i64,
) -> Result<Option<(u64, u64)>, DatasetStoreError> {
    let row = sqlx::query(
        "SELECT MIN(idx), MAX(idx) FROM chunks WHERE machine_did = $1 AND topic = $2 \
         AND received_unix >= $3 AND received_unix < $4",
    )
    .bind(machine)
    .bind(topic)
    .bind(from_unix)
    .bind(to_unix)
    .fetch_one(store.pool())
    .await?;
    let first: Option<i64> = row.try_get(0)?;
    let last: Option<i64> = row.try_get(1)?;
    match (first, last) {
        (Some(a), Some(b)) => Ok(Some((to_u64(a, "idx")?, to_u64(b, "idx")?))),
        _ => Ok(None),
    }
}

/// What a contiguous range of a chain commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSummary {
    /// Chain index of the first chunk.
    pub first_index: u64,
    /// Number of chunks.
    pub chunk_count: u64,
    /// Id of the first chunk.
    pub first_chunk_id: String,
    /// Id of the last chunk.
    pub head_chunk_id: String,
    /// `0x` + the RFC 6962 root over the chunk ids.
    pub merkle_root: String,
    /// When the first chunk was received (Unix seconds).
    pub first_received_unix: i64,
    /// When the last chunk was received (Unix seconds).
    pub last_received_unix: i64,
}

/// Reads the chunk ids of chain indexes `first..=last` of (`machine`,
/// `topic`) in pages of [`PAGE`] rows and computes their Merkle root. The
/// caller has checked that the chain holds the range; a missing chunk is
/// [`DatasetStoreError::Inconsistent`].
pub async fn summarize_range(
    store: &Store,
    machine: &str,
    topic: &str,
    first: u64,
    last: u64,
) -> Result<RangeSummary, DatasetStoreError> {
    summarize_paged(store, machine, topic, first, last, PAGE).await
}

async fn summarize_paged(
    store: &Store,
    machine: &str,
    topic: &str,
    first: u64,
    last: u64,
    page: i64,
) -> Result<RangeSummary, DatasetStoreError> {
    let gap = |at: u64| {
        DatasetStoreError::Inconsistent(format!("chunk {at} of {machine} {topic} is missing"))
    };
    let mut tree = RootBuilder::new();
    let mut next = first;
    let mut first_seen: Option<(String, i64)> = None;
    let mut last_seen: Option<(String, i64)> = None;
    while next <= last {
        let rows = sqlx::query(
            "SELECT idx, chunk_id, received_unix FROM chunks \
             WHERE machine_did = $1 AND topic = $2 AND idx >= $3 AND idx <= $4 \
             ORDER BY idx LIMIT $5",
        )
        .bind(machine)
        .bind(topic)
        .bind(next as i64)
        .bind(last as i64)
        .bind(page)
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            return Err(gap(next));
        }
        for r in &rows {
            let idx = to_u64(r.try_get(0)?, "idx")?;
            if idx != next {
                return Err(gap(next));
            }
            let id: String = r.try_get(1)?;
            let received: i64 = r.try_get(2)?;
            let leaf = chunk_leaf(&id).ok_or_else(|| {
                DatasetStoreError::Inconsistent(format!("chunk {idx}: malformed chunk id"))
            })?;
            tree.push(leaf);
            if first_seen.is_none() {
                first_seen = Some((id.clone(), received));
            }
            last_seen = Some((id, received));
            next += 1;
        }
    }
    let (Some((first_chunk_id, first_received_unix)), Some((head_chunk_id, last_received_unix))) =
        (first_seen, last_seen)
    else {
        return Err(gap(first));
    };
    Ok(RangeSummary {
        first_index: first,
        chunk_count: tree.size(),
        first_chunk_id,
        head_chunk_id,
        merkle_root: hash_hex(&tree.root()),
        first_received_unix,
        last_received_unix,
    })
}

/// The Merkle leaves of every chunk of `dataset`, in order, in one indexed
/// query streamed row by row (32 bytes kept per chunk). Fails as
/// [`DatasetStoreError::Inconsistent`] if a chunk is missing.
pub async fn leaves(store: &Store, dataset: &DatasetRow) -> Result<Vec<Hash>, DatasetStoreError> {
    let mut rows = sqlx::query(
        "SELECT idx, chunk_id FROM chunks \
         WHERE machine_did = $1 AND topic = $2 AND idx >= $3 AND idx <= $4 ORDER BY idx",
    )
    .bind(&dataset.machine_did)
    .bind(&dataset.topic)
    .bind(dataset.first_index as i64)
    .bind(dataset.last_index() as i64)
    .fetch(store.pool());
    let mut out = Vec::with_capacity(
        usize::try_from(dataset.chunk_count)
            .unwrap_or(0)
            .min(1 << 20),
    );
    let mut next = dataset.first_index;
    while let Some(r) = rows.try_next().await? {
        let idx = to_u64(r.try_get(0)?, "idx")?;
        let id: String = r.try_get(1)?;
        if idx != next {
            return Err(DatasetStoreError::Inconsistent(format!(
                "dataset {}: chunk {next} is missing",
                dataset.id
            )));
        }
        out.push(chunk_leaf(&id).ok_or_else(|| {
            DatasetStoreError::Inconsistent(format!("chunk {idx}: malformed chunk id"))
        })?);
        next += 1;
    }
    if out.len() as u64 != dataset.chunk_count {
        return Err(DatasetStoreError::Inconsistent(format!(
            "dataset {}: {} of {} chunks held",
            dataset.id,
            out.len(),
            dataset.chunk_count
        )));
    }
    Ok(out)
}

/// The chunk ids of `dataset`'s chunks held, with their chain indexes, in
/// order (the caller checks that none is missing).
pub async fn chunk_ids(
    store: &Store,
    dataset: &DatasetRow,
) -> Result<Vec<(u64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT idx, chunk_id FROM chunks WHERE machine_did = $1 AND topic = $2 \
         AND idx >= $3 AND idx < $4 ORDER BY idx",
    )
    .bind(&dataset.machine_did)
    .bind(&dataset.topic)
    .bind(dataset.first_index as i64)
    .bind((dataset.first_index + dataset.chunk_count) as i64)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>(0)?.max(0) as u64,
                r.try_get::<String, _>(1)?,
            ))
        })
        .collect()
}

/// The envelope (JSON text as uploaded) of chain index `index` of the
/// dataset's chain.
pub async fn envelope(
    store: &Store,
    dataset: &DatasetRow,
    index: u64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT envelope FROM chunks WHERE machine_did = $1 AND topic = $2 AND idx = $3",
    )
    .bind(&dataset.machine_did)
    .bind(&dataset.topic)
    .bind(index as i64)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// The chunk id of chain index `index` of the dataset's chain.
pub async fn chunk_id(
    store: &Store,
    dataset: &DatasetRow,
    index: u64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT chunk_id FROM chunks WHERE machine_did = $1 AND topic = $2 AND idx = $3",
    )
    .bind(&dataset.machine_did)
    .bind(&dataset.topic)
    .bind(index as i64)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.try_get(0)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::merkle;

    async fn store_with_chunks(n: u64, skip: Option<u64>) -> (Store, Vec<String>) {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let id = format!("0x{:064x}", i * 7919 + 1);
            ids.push(id.clone());
            if Some(i) == skip {
                continue;
            }
            sqlx::query(
                "INSERT INTO chunks (machine_did, topic, idx, chunk_id, previous_chunk_id, envelope, \
                 object_key, size, ciphertext_hash, received_at, received_unix) \
                 VALUES ('m', 't', $1, $2, NULL, '{}', 'k', 0, 'h', 'at', $3)",
            )
            .bind(i as i64)
            .bind(&id)
            .bind(1000 + i as i64)
            .execute(store.pool())
            .await
            .unwrap();
        }
        (store, ids)
    }

    fn root_of(ids: &[String]) -> String {
        let leaves: Vec<_> = ids.iter().map(|id| chunk_leaf(id).unwrap()).collect();
        hash_hex(&merkle::root(&leaves))
    }

    #[tokio::test]
    async fn pages_of_any_size_give_the_root_of_the_whole_range() {
        let (store, ids) = store_with_chunks(23, None).await;
        for page in [1, 2, 3, 5, 22, 23, 24, 1000] {
            for (first, last) in [(0u64, 22u64), (4, 17), (9, 9), (21, 22)] {
                let s = summarize_paged(&store, "m", "t", first, last, page)
                    .await
                    .unwrap();
                let range = &ids[first as usize..=last as usize];
                assert_eq!(
                    s.merkle_root,
                    root_of(range),
                    "page {page}, {first}..={last}"
                );
                assert_eq!(s.chunk_count, last - first + 1);
                assert_eq!(s.first_chunk_id, range[0]);
                assert_eq!(&s.head_chunk_id, range.last().unwrap());
                assert_eq!(s.first_received_unix, 1000 + first as i64);
                assert_eq!(s.last_received_unix, 1000 + last as i64);
            }
        }
    }

    #[tokio::test]
    async fn a_missing_chunk_is_reported_not_skipped() {
        let (store, _) = store_with_chunks(10, Some(6)).await;
        for page in [1, 4, 100] {
            let e = summarize_paged(&store, "m", "t", 2, 9, page)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("chunk 6"), "{e}");
            let e = summarize_paged(&store, "m", "t", 6, 6, page)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("chunk 6"), "{e}");
        }
        // Beyond the end.
        let e = summarize_paged(&store, "m", "t", 8, 12, 4)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("chunk 10"), "{e}");
    }
}
