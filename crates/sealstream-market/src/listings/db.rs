//! Listings in the database: `listings`, their search entries (SQLite's
//! FTS5 table `listing_search`; PostgreSQL generates its `search` column
//! itself), the sample keys disclosed (`listing_samples`), and the datasets
//! as listings show them.

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::model::{
    plausible_id, price_key, DatasetState, DatasetSummary, ListedDataset, Listing, ListingFields,
    ListingKind, ListingState, Rail, SubscriptionTerms,
};
use crate::store::{changed, Engine, Tx};

/// The columns [`listing_of`] reads, for `SELECT … FROM listings l`.
const COLUMNS: &str = "l.id, l.owner_did, l.dataset_id, l.title, l.description, l.tags, \
     l.domain, l.schema_hint, l.sample_chunk_indexes, l.license, l.price_amount, l.rail, \
     l.delivery, l.state, l.public_sales AS sales_count, l.created_at, l.updated_at, l.published_at, l.kind, \
     l.subscription, l.compliance";

fn stored_json(row: &AnyRow, column: &str) -> Result<Value, sqlx::Error> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored listing: bad {what}").into())
}

/// Reads the [`COLUMNS`] of a row.
fn listing_of(row: &AnyRow) -> Result<Listing, sqlx::Error> {
    let tags: Vec<String> =
        serde_json::from_value(stored_json(row, "tags")?).map_err(|_| corrupt("tags"))?;
    let samples: Vec<u64> = serde_json::from_value(stored_json(row, "sample_chunk_indexes")?)
        .map_err(|_| corrupt("sample_chunk_indexes"))?;
    let delivery: Vec<String> =
        serde_json::from_value(stored_json(row, "delivery")?).map_err(|_| corrupt("delivery"))?;
    let license: Option<String> = row.try_get("license")?;
    let license = match license {
        Some(text) => Some(serde_json::from_str(&text).map_err(|_| corrupt("license"))?),
        None => None,
    };
    let rail = Rail::parse(&stored_json(row, "rail")?).map_err(|_| corrupt("rail"))?;
    let state: String = row.try_get("state")?;
    let kind: String = row.try_get("kind")?;
    let subscription: Option<String> = row.try_get("subscription")?;
    let subscription = match subscription {
        Some(text) => Some(
            serde_json::from_str::<SubscriptionTerms>(&text)
                .map_err(|_| corrupt("subscription"))?,
        ),
        None => None,
    };
    let compliance: Option<String> = row.try_get("compliance")?;
    let compliance = match compliance {
        Some(text) => Some(
            serde_json::from_str::<sealstream_api::compliance::CompliancePreset>(&text)
                .map_err(|_| corrupt("compliance"))?,
        ),
        None => None,
    };
    Ok(Listing {
        id: row.try_get("id")?,
        owner_did: row.try_get("owner_did")?,
        kind: ListingKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        dataset_id: row.try_get("dataset_id")?,
        subscription,
        fields: ListingFields {
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            tags,
            domain: row.try_get("domain")?,
            schema_hint: row.try_get("schema_hint")?,
            sample_chunk_indexes: samples,
            license,
            price: row.try_get("price_amount")?,
            rail,
            delivery,
            compliance,
        },
        state: ListingState::parse(&state).ok_or_else(|| corrupt("state"))?,
        sales_count: row.try_get("sales_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        published_at: row.try_get("published_at")?,
    })
}

/// The listing `id`, if it exists.
pub(crate) async fn listing(tx: &mut Tx, id: &str) -> Result<Option<Listing>, sqlx::Error> {
    if !plausible_id(id) {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM listings l WHERE l.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
    row.as_ref().map(listing_of).transpose()
}

/// `owner`'s listings with an id after `after`, by id, at most `limit`.
pub(crate) async fn listings_of(
    tx: &mut Tx,
    owner: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<Listing>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM listings l WHERE l.owner_did = $1 AND l.id > $2 ORDER BY l.id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(owner)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(listing_of).collect()
}

/// The stored forms of a listing's fields that the `INSERT` and the
/// `UPDATE` share, in their order: title, description, tags, domain,
/// schema hint, sample chunk indexes, license, price, price key, rail,
/// delivery, compliance preset.
fn bind_fields<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    f: &'q ListingFields,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&f.title)
        .bind(&f.description)
        .bind(json!(f.tags).to_string())
        .bind(f.domain.clone())
        .bind(f.schema_hint.clone())
        .bind(json!(f.sample_chunk_indexes).to_string())
        .bind(f.license.as_ref().map(Value::to_string))
        .bind(&f.price)
        .bind(price_key(&f.price))
        .bind(f.rail.to_json().to_string())
        .bind(json!(f.delivery).to_string())
        .bind(f.compliance.as_ref().map(|c| json!(c).to_string()))
}

/// Publishes the sales counts the public sees: each listing's paid orders
/// paid at or before `cutoff` (UTC text, now minus the delay). Returns how
/// many listings changed.
pub(crate) async fn publish_sales(tx: &mut Tx, cutoff: &str) -> Result<u64, sqlx::Error> {
    let query = sqlx::query(
        "UPDATE listings SET public_sales = (SELECT COUNT(*) FROM orders o \
         WHERE o.listing_id = listings.id AND o.paid_at IS NOT NULL AND o.paid_at <= $1) \
         WHERE public_sales <> (SELECT COUNT(*) FROM orders o \
         WHERE o.listing_id = listings.id AND o.paid_at IS NOT NULL AND o.paid_at <= $1)",
    )
    .bind(cutoff);
    changed(tx, query).await
}

/// Inserts a new listing and its search entry.
pub(crate) async fn insert(
    tx: &mut Tx,
    engine: Engine,
    listing: &Listing,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO listings (id, owner_did, dataset_id, title, description, tags, domain, \
         schema_hint, sample_chunk_indexes, license, price_amount, price_key, rail, delivery, \
         compliance, state, sales_count, created_at, updated_at, published_at, published_unix, \
         kind, subscription, machine_did, topic) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, $17, \
         $18, NULL, NULL, $19, $20, $21, $22)",
    )
    .bind(&listing.id)
    .bind(&listing.owner_did)
    .bind(&listing.dataset_id);
    let terms = listing.subscription.as_ref();
    let query = bind_fields(query, &listing.fields)
        .bind(listing.state.as_str())
        .bind(&listing.created_at)
        .bind(&listing.updated_at)
        .bind(listing.kind.as_str())
        .bind(terms.map(|t| json!(t).to_string()))
        .bind(terms.map(|t| t.machine_did.clone()))
        .bind(terms.map(|t| t.topic.clone()));
    let query = query;
    changed(tx, query).await?;
    index(tx, engine, &listing.id, &listing.fields).await
}

/// Writes a listing's fields (and `updated_at`) and refreshes its search
/// entry.
pub(crate) async fn update_fields(
    tx: &mut Tx,
    engine: Engine,
    listing: &Listing,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "UPDATE listings SET title = $1, description = $2, tags = $3, domain = $4, \
         schema_hint = $5, sample_chunk_indexes = $6, license = $7, price_amount = $8, \
         price_key = $9, rail = $10, delivery = $11, compliance = $12, updated_at = $13 \
         WHERE id = $14",
    );
    let query = bind_fields(query, &listing.fields)
        .bind(&listing.updated_at)
        .bind(&listing.id);
    let query = query;
    changed(tx, query).await?;
    index(tx, engine, &listing.id, &listing.fields).await
}

/// Keeps SQLite's FTS5 table in step with a listing (PostgreSQL's
/// `search` column is generated by the database).
async fn index(
    tx: &mut Tx,
    engine: Engine,
    id: &str,
    f: &ListingFields,
) -> Result<(), sqlx::Error> {
    if engine != Engine::Sqlite {
        return Ok(());
    }
    // The listing's old row, found by key through `listing_search_rows`: a
    // condition on the FTS5 table's own `listing_id` would scan every row.
    let old: Option<i64> =
        sqlx::query_scalar("SELECT fts_rowid FROM listing_search_rows WHERE listing_id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(rowid) = old {
        let query = sqlx::query("DELETE FROM listing_search WHERE rowid = $1").bind(rowid);
        changed(tx, query).await?;
    }
    let query = sqlx::query(
        "INSERT INTO listing_search (listing_id, title, description, tags, schema_hint) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&f.title)
    .bind(&f.description)
    .bind(f.tags.join(" "))
    .bind(f.schema_hint.clone().unwrap_or_default());
    changed(tx, query).await?;
    let query = sqlx::query(
        "INSERT INTO listing_search_rows (listing_id, fts_rowid) VALUES ($1, last_insert_rowid()) \
         ON CONFLICT (listing_id) DO UPDATE SET fts_rowid = excluded.fts_rowid",
    )
    .bind(id);
    changed(tx, query).await?;
    Ok(())
}

/// Publishes listing `id` at `now` (`now_unix`).
pub(crate) async fn publish(
    tx: &mut Tx,
    id: &str,
    now: &str,
    now_unix: i64,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "UPDATE listings SET state = 'published', published_at = $1, published_unix = $2, \
         updated_at = $1 WHERE id = $3",
    )
    .bind(now)
    .bind(now_unix)
    .bind(id);
    changed(tx, query).await?;
    Ok(())
}

/// Withdraws listing `id` at `now`.
pub(crate) async fn withdraw(tx: &mut Tx, id: &str, now: &str) -> Result<(), sqlx::Error> {
    let query =
        sqlx::query("UPDATE listings SET state = 'withdrawn', updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id);
    changed(tx, query).await?;
    Ok(())
}

/// Whether a listing of `dataset_id` other than `except` is published.
pub(crate) async fn other_published(
    tx: &mut Tx,
    dataset_id: &str,
    except: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT 1 FROM listings WHERE dataset_id = $1 AND state = 'published' AND id <> $2",
    )
    .bind(dataset_id)
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// Counts a sale of listing `id`.
pub(crate) async fn count_sale(tx: &mut Tx, id: &str) -> Result<(), sqlx::Error> {
    let query =
        sqlx::query("UPDATE listings SET sales_count = sales_count + 1 WHERE id = $1").bind(id);
    changed(tx, query).await?;
    Ok(())
}

/// The chain indexes of the sample chunks of listing `id` whose keys are
/// disclosed, in order.
pub(crate) async fn disclosed(tx: &mut Tx, listing_id: &str) -> Result<Vec<u64>, sqlx::Error> {
    let indexes: Vec<i64> = sqlx::query_scalar(
        "SELECT chunk_index FROM listing_samples WHERE listing_id = $1 ORDER BY chunk_index",
    )
    .bind(listing_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(indexes.into_iter().map(|i| i.max(0) as u64).collect())
}

/// A sample key, disclosed.
pub(crate) struct SampleKeyRow<'a> {
    /// Chain index of the chunk.
    pub index: u64,
    /// The chunk key, hex.
    pub key_hex: &'a str,
    /// Its commitment, as the envelope states it.
    pub commitment: &'a str,
}

/// Keeps the disclosed key of a sample chunk (one already kept stays).
pub(crate) async fn insert_sample(
    tx: &mut Tx,
    listing_id: &str,
    key: &SampleKeyRow<'_>,
    disclosed_at: &str,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO listing_samples (listing_id, chunk_index, chunk_key_hex, key_commitment, disclosed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (listing_id, chunk_index) DO NOTHING",
    )
    .bind(listing_id)
    .bind(key.index as i64)
    .bind(key.key_hex)
    .bind(key.commitment)
    .bind(disclosed_at);
    changed(tx, query).await?;
    Ok(())
}

/// The disclosed key (hex) of sample chunk `index` of listing `id`.
pub(crate) async fn sample_key(
    tx: &mut Tx,
    listing_id: &str,
    index: u64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT chunk_key_hex FROM listing_samples WHERE listing_id = $1 AND chunk_index = $2",
    )
    .bind(listing_id)
    .bind(index as i64)
    .fetch_optional(&mut **tx)
    .await
}

/// Forgets the disclosed key of sample chunk `index` of listing `id`.
pub(crate) async fn delete_sample(
    tx: &mut Tx,
    listing_id: &str,
    index: u64,
) -> Result<(), sqlx::Error> {
    let query =
        sqlx::query("DELETE FROM listing_samples WHERE listing_id = $1 AND chunk_index = $2")
            .bind(listing_id)
            .bind(index as i64);
    changed(tx, query).await?;
    Ok(())
}

fn corrupt_dataset(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored dataset: bad {what}").into())
}

/// The dataset `id` as listings show it, with its owner and its machine's
/// chain key (if the machine is registered).
pub(crate) async fn listed_dataset(
    tx: &mut Tx,
    id: &str,
) -> Result<Option<ListedDataset>, sqlx::Error> {
    if !plausible_id(id) {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT d.id, d.owner_did, d.machine_did, d.topic, d.first_index, d.chunk_count, \
         d.merkle_root, d.first_received_unix, d.last_received_unix, d.state, m.chain_public_key \
         FROM datasets d LEFT JOIN machines m ON m.did = d.machine_did WHERE d.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let utc = |v: i64| sealstream_core::utc::format_seconds(v.max(0));
    let state: String = row.try_get("state")?;
    Ok(Some(ListedDataset {
        summary: DatasetSummary {
            id: row.try_get("id")?,
            machine_did: row.try_get("machine_did")?,
            topic: row.try_get("topic")?,
            first_index: row.try_get("first_index")?,
            chunk_count: row.try_get("chunk_count")?,
            merkle_root: row.try_get("merkle_root")?,
            from: utc(row.try_get("first_received_unix")?),
            to: utc(row.try_get("last_received_unix")?),
            state: DatasetState::parse(&state).ok_or_else(|| corrupt_dataset("state"))?,
        },
        owner_did: row.try_get("owner_did")?,
        chain_public_key: row.try_get("chain_public_key")?,
    }))
}
