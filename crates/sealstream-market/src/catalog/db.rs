//! The catalog search in the database: the query of a checked [`Search`]
//! on either engine (SQLite's FTS5 table `listing_search`, PostgreSQL's
//! `tsvector` column), and its rows as catalog items.

use serde_json::Value;
use sqlx::Row;

use super::{excerpt, fts5_query, sales_bucket, CatalogItem, Cursor, Search, Sort};
use crate::listings::model::{price_key, ListingKind, Rail};
use crate::store::{DbError, Engine, Store};

/// A catalog item found, with its sort keys (for the next page's cursor).
pub(super) struct Found {
    /// The item.
    pub item: CatalogItem,
    /// When its listing was published (Unix seconds; 0 if never).
    pub published_unix: i64,
    /// Its price key (zero-padded base units).
    pub price_key: String,
}

/// One page of a search.
pub(super) struct Page {
    /// At most `limit` items, in order.
    pub found: Vec<Found>,
    /// Whether more items follow.
    pub more: bool,
}

enum Bind {
    Text(String),
    Int(i64),
}

/// SQL text with its `$n` parameters.
pub(super) struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    /// The query as one string (its text, then each parameter): the key of
    /// its answer in the catalog cache.
    pub(super) fn key(&self) -> String {
        let mut key = self.text.clone();
        for b in &self.binds {
            key.push('\0');
            match b {
                Bind::Text(t) => key.push_str(t),
                Bind::Int(i) => key.push_str(&i.to_string()),
            }
        }
        key
    }
}

/// The catalog's generation: the counter every change to a listing or a
/// dataset moves (migration 0022), for the catalog cache.
pub(super) async fn generation(store: &Store) -> Result<i64, DbError> {
    let n: i64 = sqlx::query_scalar("SELECT n FROM catalog_generation WHERE id = 1")
        .fetch_one(store.pool())
        .await?;
    Ok(n)
}

/// The query of `search` on `engine`.
pub(super) fn build(search: &Search, engine: Engine) -> Sql {
    let mut sql = Sql {
        text: String::new(),
        binds: Vec::new(),
    };
    let mut conditions = vec!["l.state = 'published'".to_string()];
    // Subscription listings have no dataset: their machine and topic are
    // the listing's own columns.
    let mut from = "listings l LEFT JOIN datasets d ON d.id = l.dataset_id".to_string();
    let mut rank = None;
    if !search.words.is_empty() {
        match engine {
            Engine::Sqlite => {
                let p = sql.bind(Bind::Text(fts5_query(&search.words)));
                from = "listing_search JOIN listings l ON l.id = listing_search.listing_id \
                        LEFT JOIN datasets d ON d.id = l.dataset_id"
                    .to_string();
                conditions.push(format!("listing_search MATCH {p}"));
                // bm25: lower is better; columns listing_id, title,
                // description, tags, schema_hint.
                rank = Some("(-bm25(listing_search, 0.0, 10.0, 1.0, 5.0, 2.0))".to_string());
            }
            Engine::Postgres => {
                let p = sql.bind(Bind::Text(search.words.join(" ")));
                conditions.push(format!("l.search @@ websearch_to_tsquery('simple', {p})"));
                rank = Some(format!(
                    "ts_rank(l.search, websearch_to_tsquery('simple', {p}))"
                ));
            }
        }
    }
    let mut eq = |column: &str, value: &Option<String>, sql: &mut Sql| {
        if let Some(v) = value {
            let p = sql.bind(Bind::Text(v.clone()));
            conditions.push(format!("{column} = {p}"));
        }
    };
    eq("l.domain", &search.domain, &mut sql);
    eq(
        "COALESCE(d.machine_did, l.machine_did)",
        &search.machine,
        &mut sql,
    );
    eq("COALESCE(d.topic, l.topic)", &search.topic, &mut sql);
    eq(
        "l.kind",
        &search.kind.map(|k| k.as_str().to_string()),
        &mut sql,
    );
    if let Some(rail) = search.rail {
        // Stored rails are compact JSON objects with a "kind" member.
        let p = sql.bind(Bind::Text(format!("%\"kind\":\"{}\"%", rail.as_str())));
        conditions.push(format!("l.rail LIKE {p}"));
    }
    if let Some(tag) = &search.tag {
        // One element of the stored JSON array equals the tag, the case of
        // ASCII letters aside (the tag is lower-cased the same way).
        let p = sql.bind(Bind::Text(tag.clone()));
        conditions.push(match engine {
            Engine::Sqlite => format!(
                "EXISTS (SELECT 1 FROM json_each(l.tags) WHERE lower(json_each.value) = {p})"
            ),
            Engine::Postgres => format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text(l.tags::jsonb) AS t(v) \
                 WHERE translate(t.v, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') = {p})"
            ),
        });
    }
    if let Some(lo) = &search.min_price {
        let p = sql.bind(Bind::Text(price_key(lo)));
        conditions.push(format!("l.price_key >= {p}"));
    }
    if let Some(hi) = &search.max_price {
        let p = sql.bind(Bind::Text(price_key(hi)));
        conditions.push(format!("l.price_key <= {p}"));
    }
    if let Some(f) = search.from {
        let p = sql.bind(Bind::Int(f));
        conditions.push(format!("d.last_received_unix >= {p}"));
    }
    if let Some(t) = search.to {
        let p = sql.bind(Bind::Int(t));
        conditions.push(format!("d.first_received_unix <= {p}"));
    }
    let (cmp, dir) = if search.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut offset = 0;
    match &search.cursor {
        Some(Cursor::Newest(t, id)) => {
            let (pt, pid) = (sql.bind(Bind::Int(*t)), sql.bind(Bind::Text(id.clone())));
            conditions.push(format!(
                "(l.published_unix {cmp} {pt} OR (l.published_unix = {pt} AND l.id {cmp} {pid}))"
            ));
        }
        Some(Cursor::Price(k, id)) => {
            let (pk, pid) = (
                sql.bind(Bind::Text(k.clone())),
                sql.bind(Bind::Text(id.clone())),
            );
            conditions.push(format!(
                "(l.price_key {cmp} {pk} OR (l.price_key = {pk} AND l.id {cmp} {pid}))"
            ));
        }
        Some(Cursor::Offset(n)) => offset = *n,
        None => {}
    }
    let order = match search.sort {
        Sort::Newest => format!("l.published_unix {dir}, l.id {dir}"),
        Sort::Price => format!("l.price_key {dir}, l.id {dir}"),
        Sort::Relevance => format!(
            "{} {dir}, l.id ASC",
            rank.as_deref().unwrap_or("l.published_unix")
        ),
    };
    let limit = sql.bind(Bind::Int(search.limit as i64 + 1));
    let offset = sql.bind(Bind::Int(offset.min(i64::MAX as u64) as i64));
    sql.text = format!(
        "SELECT l.id, l.title, l.description, l.tags, l.domain, l.price_amount, l.price_key, \
         l.rail, l.public_sales AS sales_count, l.published_at, l.published_unix, l.kind, l.subscription, \
         COALESCE(d.id, '') AS dataset_id, COALESCE(d.machine_did, l.machine_did) AS machine_did, \
         COALESCE(d.topic, l.topic) AS topic, COALESCE(d.chunk_count, 0) AS chunk_count, \
         COALESCE(d.merkle_root, '') AS merkle_root, d.first_received_unix, \
         d.last_received_unix \
         FROM {from} WHERE {} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
        conditions.join(" AND ")
    );
    sql
}

/// Runs `sql`, the query of `search` ([`build`]): a page of published
/// listings, and whether more follow.
pub(super) async fn search(store: &Store, search: &Search, sql: &Sql) -> Result<Page, DbError> {
    let mut q = sqlx::query(&sql.text);
    for b in &sql.binds {
        q = match b {
            Bind::Text(t) => q.bind(t.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    let rows = q.fetch_all(store.pool()).await?;
    let utc = |v: i64| sealstream_core::utc::format_seconds(v.max(0));
    let mut found = Vec::with_capacity(rows.len().min(search.limit));
    for row in rows.iter().take(search.limit) {
        let tags: String = row.try_get("tags")?;
        let rail: String = row.try_get("rail")?;
        let rail: Value = serde_json::from_str(&rail)
            .map_err(|e| DbError::inconsistent("stored rail", e.to_string()))?;
        // Stored rails were checked on the way in; re-checking keeps the
        // output in the one shape clients know.
        let rail =
            Rail::parse(&rail).map_err(|e| DbError::inconsistent("stored rail", e.to_string()))?;
        let description: String = row.try_get("description")?;
        let kind: String = row.try_get("kind")?;
        let kind = ListingKind::parse(&kind)
            .ok_or_else(|| DbError::inconsistent("stored kind", kind.clone()))?;
        let subscription = row
            .try_get::<Option<String>, _>("subscription")?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| DbError::inconsistent("stored subscription", e.to_string()))?;
        let span = |column: &str| -> Result<String, DbError> {
            Ok(row
                .try_get::<Option<i64>, _>(column)?
                .map(utc)
                .unwrap_or_default())
        };
        found.push(Found {
            published_unix: row
                .try_get::<Option<i64>, _>("published_unix")?
                .unwrap_or(0),
            price_key: row.try_get("price_key")?,
            item: CatalogItem {
                id: row.try_get("id")?,
                kind,
                subscription,
                title: row.try_get("title")?,
                description_excerpt: excerpt(&description),
                tags: serde_json::from_str(&tags)
                    .map_err(|e| DbError::inconsistent("stored tags", e.to_string()))?,
                domain: row.try_get("domain")?,
                machine_did: row.try_get("machine_did")?,
                topic: row.try_get("topic")?,
                price: row.try_get("price_amount")?,
                rail,
                dataset_id: row.try_get("dataset_id")?,
                chunk_count: row.try_get("chunk_count")?,
                merkle_root: row.try_get("merkle_root")?,
                from: span("first_received_unix")?,
                to: span("last_received_unix")?,
                sales_bucket: sales_bucket(row.try_get("sales_count")?),
                published_at: row.try_get("published_at")?,
            },
        });
    }
    Ok(Page {
        found,
        more: rows.len() > search.limit,
    })
}
