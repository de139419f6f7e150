//! Subscriptions in the database: `subscriptions`, their periods
//! (`subscription_periods`, each paid by an order), buyer keys
//! (`subscription_keys`), history (`subscription_history`) and grants
//! (`subscription_grants`).

use std::collections::HashMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::entitlement::KeyFrom;
use super::{Subscription, SubscriptionState};
use crate::listings::{HistoryPolicy, Rail};
use crate::orders::OrderState;
use crate::store::{changed, placeholder_list, placeholders, DbError, Store, Tx};

const COLUMNS: &str = "s.id, s.listing_id, s.seller_did, s.buyer_did, s.buyer_id, \
     s.machine_did, s.topic, s.period_seconds, s.grace_seconds, s.history, s.amount, s.rail, \
     s.state, s.active_from_unix, s.paid_through_unix, s.access_end_unix, s.end_reason, \
     s.created_at, s.updated_at";

fn corrupt(what: &str) -> DbError {
    DbError::inconsistent("subscription", format!("stored {what} is malformed"))
}

fn subscription_of(r: &AnyRow) -> Result<Subscription, DbError> {
    let history: String = r.try_get("history")?;
    let rail: String = r.try_get("rail")?;
    let rail: Value = serde_json::from_str(&rail).map_err(|_| corrupt("rail"))?;
    let state: String = r.try_get("state")?;
    Ok(Subscription {
        id: r.try_get("id")?,
        listing_id: r.try_get("listing_id")?,
        seller_did: r.try_get("seller_did")?,
        buyer_did: r.try_get("buyer_did")?,
        buyer_id: r.try_get("buyer_id")?,
        machine_did: r.try_get("machine_did")?,
        topic: r.try_get("topic")?,
        period_seconds: r.try_get("period_seconds")?,
        grace_seconds: r.try_get("grace_seconds")?,
        history: serde_json::from_str::<HistoryPolicy>(&history).map_err(|_| corrupt("history"))?,
        amount: r.try_get("amount")?,
        rail: Rail::parse(&rail).map_err(|_| corrupt("rail"))?,
        state: SubscriptionState::parse(&state).ok_or_else(|| corrupt("state"))?,
        active_from: r.try_get("active_from_unix")?,
        paid_through: r.try_get("paid_through_unix")?,
        access_end: r.try_get("access_end_unix")?,
        end_reason: r.try_get("end_reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The subscription `id`, if it exists.
pub(crate) async fn subscription(tx: &mut Tx, id: &str) -> Result<Option<Subscription>, DbError> {
    if !crate::listings::model::plausible_id(id) {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subscriptions s WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(subscription_of).transpose()
}

/// Stores a new subscription.
pub(crate) async fn insert(tx: &mut Tx, s: &Subscription) -> Result<(), DbError> {
    let query = sqlx::query(
        "INSERT INTO subscriptions (id, listing_id, seller_did, buyer_did, buyer_id, machine_did, \
         topic, period_seconds, grace_seconds, history, amount, rail, state, active_from_unix, \
         paid_through_unix, access_end_unix, end_reason, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(&s.id)
    .bind(&s.listing_id)
    .bind(&s.seller_did)
    .bind(&s.buyer_did)
    .bind(&s.buyer_id)
    .bind(&s.machine_did)
    .bind(&s.topic)
    .bind(s.period_seconds)
    .bind(s.grace_seconds)
    .bind(serde_json::to_string(&s.history).unwrap_or_default())
    .bind(&s.amount)
    .bind(s.rail.to_json().to_string())
    .bind(s.state.as_str())
    .bind(s.active_from)
    .bind(s.paid_through)
    .bind(s.access_end)
    .bind(s.end_reason.clone())
    .bind(&s.created_at)
    .bind(&s.updated_at);
    changed(tx, query).await?;
    Ok(())
}

/// What a change of a subscription was computed from: its state and `T`
/// as read. The row is written only if both are still so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Was {
    state: SubscriptionState,
    paid_through: Option<i64>,
}

impl Was {
    /// `s` as it is now, before it is changed.
    pub(crate) fn of(s: &Subscription) -> Was {
        Was {
            state: s.state,
            paid_through: s.paid_through,
        }
    }
}

/// Writes the changing columns of `s`, if its state and `T` are still as
/// `was` read them; `false` when either changed meanwhile. (On PostgreSQL a
/// transaction reads without locking the row: a sweep that read "active
/// until T" must not write "grace from T" over a renewal that committed
/// meanwhile; the state alone would still match.)
pub(crate) async fn update(tx: &mut Tx, s: &Subscription, was: Was) -> Result<bool, DbError> {
    let query = sqlx::query(
        "UPDATE subscriptions SET state = $1, active_from_unix = $2, paid_through_unix = $3, \
         access_end_unix = $4, end_reason = $5, updated_at = $6 \
         WHERE id = $7 AND state = $8 AND paid_through_unix IS NOT DISTINCT FROM $9",
    )
    .bind(s.state.as_str())
    .bind(s.active_from)
    .bind(s.paid_through)
    .bind(s.access_end)
    .bind(s.end_reason.clone())
    .bind(&s.updated_at)
    .bind(&s.id)
    .bind(was.state.as_str())
    .bind(was.paid_through);
    Ok(changed(tx, query).await? == 1)
}

/// Which subscriptions a list shows.
pub(crate) struct Filter<'a> {
    /// The caller.
    pub party: &'a str,
    /// `buyer_did` or `seller_did`.
    pub column: &'static str,
    /// Only after this id.
    pub after: &'a str,
    /// Only in this state.
    pub state: Option<&'a str>,
    /// Only of this listing.
    pub listing: Option<&'a str>,
    /// At most this many.
    pub limit: u32,
}

/// The subscriptions `filter` selects, by id.
pub(crate) async fn list(store: &Store, f: &Filter<'_>) -> Result<Vec<Subscription>, DbError> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM subscriptions s WHERE s.{} = $1 AND s.id > $2",
        f.column
    );
    let mut n = 2;
    if f.state.is_some() {
        n += 1;
        sql.push_str(&format!(" AND s.state = ${n}"));
    }
    if f.listing.is_some() {
        n += 1;
        sql.push_str(&format!(" AND s.listing_id = ${n}"));
    }
    sql.push_str(&format!(" ORDER BY s.id LIMIT {}", f.limit));
    let mut q = sqlx::query(&sql).bind(f.party).bind(f.after);
    if let Some(s) = f.state {
        q = q.bind(s);
    }
    if let Some(l) = f.listing {
        q = q.bind(l);
    }
    let rows = q.fetch_all(store.pool()).await?;
    rows.iter().map(subscription_of).collect()
}

/// Ids of subscriptions whose time-driven state is due at `now`: active
/// ones paid through `now` or earlier, in grace ones whose grace ended,
/// final ones whose access ended without a cut-off notice yet.
pub(crate) async fn due(store: &Store, now: i64, limit: i64) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM subscriptions WHERE (state = 'active' AND paid_through_unix <= $1) \
         OR (state = 'grace' AND paid_through_unix + grace_seconds <= $1) \
         OR (state IN ('lapsed', 'cancelled', 'revoked') AND access_end_unix <= $1 \
             AND NOT EXISTS (SELECT 1 FROM subscription_cutoffs c WHERE c.subscription_id = subscriptions.id)) \
         ORDER BY id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(store.pool())
    .await?)
}

/// Subscriptions of a topic that were ever active, by id.
pub(crate) async fn of_topic(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
) -> Result<Vec<Subscription>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subscriptions s WHERE s.machine_did = $1 AND s.topic = $2 \
         AND s.active_from_unix IS NOT NULL ORDER BY s.id"
    ))
    .bind(machine_did)
    .bind(topic)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(subscription_of).collect()
}

/// A period row, with the state of its order.
#[derive(Clone, Debug)]
pub(crate) struct Period {
    /// 1, 2, …
    pub number: i64,
    /// The order paying it.
    pub order_id: String,
    /// The new key it carries.
    pub new_public_key_hex: Option<String>,
    /// Asked for.
    pub created_at: String,
    /// Paid.
    pub paid_at: Option<String>,
    /// Its order's state.
    pub order_state: OrderState,
}

/// Stores period `number` of `subscription_id`, paid by `order_id`.
pub(crate) async fn insert_period(
    tx: &mut Tx,
    subscription_id: &str,
    number: i64,
    order_id: &str,
    new_key: Option<&str>,
    created_at: &str,
) -> Result<(), DbError> {
    let query = sqlx::query(
        "INSERT INTO subscription_periods (subscription_id, number, order_id, \
         new_public_key_hex, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(subscription_id)
    .bind(number)
    .bind(order_id)
    .bind(new_key.map(str::to_string))
    .bind(created_at);
    changed(tx, query).await?;
    Ok(())
}

/// The periods of a subscription, oldest first.
pub(crate) async fn periods(tx: &mut Tx, subscription_id: &str) -> Result<Vec<Period>, DbError> {
    let rows = sqlx::query(
        "SELECT p.number, p.order_id, p.new_public_key_hex, p.created_at, p.paid_at, o.state \
         FROM subscription_periods p JOIN orders o ON o.id = p.order_id \
         WHERE p.subscription_id = $1 ORDER BY p.number",
    )
    .bind(subscription_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get(5)?;
            Ok(Period {
                number: r.try_get(0)?,
                order_id: r.try_get(1)?,
                new_public_key_hex: r.try_get(2)?,
                created_at: r.try_get(3)?,
                paid_at: r.try_get(4)?,
                order_state: OrderState::parse(&state).ok_or_else(|| corrupt("order state"))?,
            })
        })
        .collect()
}

/// The period an order pays: (subscription, number, new key).
pub(crate) async fn period_of_order(
    tx: &mut Tx,
    order_id: &str,
) -> Result<Option<(String, i64, Option<String>)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT subscription_id, number, new_public_key_hex FROM subscription_periods \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Marks the period paid by `order_id` paid at `now`.
pub(crate) async fn mark_period_paid(
    tx: &mut Tx,
    order_id: &str,
    now: &str,
) -> Result<(), DbError> {
    let query = sqlx::query("UPDATE subscription_periods SET paid_at = $1 WHERE order_id = $2")
        .bind(now)
        .bind(order_id);
    changed(tx, query).await?;
    Ok(())
}

/// Stores buyer key number `seq`, applying from `applies_from`.
pub(crate) async fn insert_key(
    tx: &mut Tx,
    subscription_id: &str,
    seq: i64,
    public_key_hex: &str,
    applies_from: i64,
) -> Result<(), DbError> {
    let query = sqlx::query(
        "INSERT INTO subscription_keys (subscription_id, seq, public_key_hex, applies_from_unix) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(subscription_id)
    .bind(seq)
    .bind(public_key_hex)
    .bind(applies_from);
    changed(tx, query).await?;
    Ok(())
}

/// The buyer keys of a subscription, oldest first.
pub(crate) async fn keys(tx: &mut Tx, subscription_id: &str) -> Result<Vec<KeyFrom>, DbError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT public_key_hex, applies_from_unix FROM subscription_keys \
         WHERE subscription_id = $1 ORDER BY seq",
    )
    .bind(subscription_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(public_key_hex, applies_from)| KeyFrom {
            applies_from,
            public_key_hex,
        })
        .collect())
}

/// A history row to append.
pub(crate) struct HistoryRow<'a> {
    /// The event (`activated`, …).
    pub event: &'a str,
    /// The state after it.
    pub state: SubscriptionState,
    /// When it took effect (Unix seconds).
    pub effective: i64,
    /// When recorded (UTC).
    pub recorded_at: &'a str,
    /// Who.
    pub actor: &'a str,
    /// What it carried.
    pub details: &'a Value,
}

/// Appends a row to a subscription's history.
pub(crate) async fn append_history(
    tx: &mut Tx,
    subscription_id: &str,
    row: &HistoryRow<'_>,
) -> Result<(), DbError> {
    let next: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM subscription_history WHERE subscription_id = $1",
    )
    .bind(subscription_id)
    .fetch_one(&mut **tx)
    .await?;
    let query = sqlx::query(
        "INSERT INTO subscription_history (subscription_id, seq, event, state, effective_unix, \
         recorded_at, actor, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(subscription_id)
    .bind(next)
    .bind(row.event)
    .bind(row.state.as_str())
    .bind(row.effective)
    .bind(row.recorded_at)
    .bind(row.actor)
    .bind(row.details.to_string());
    changed(tx, query).await?;
    Ok(())
}

/// A subscription's history, oldest first.
pub(crate) async fn history(
    tx: &mut Tx,
    subscription_id: &str,
) -> Result<Vec<sealstream_api::subscriptions::HistoryEntry>, DbError> {
    let rows: Vec<(i64, String, String, i64, String, String, String)> = sqlx::query_as(
        "SELECT seq, event, state, effective_unix, recorded_at, actor, details \
         FROM subscription_history WHERE subscription_id = $1 ORDER BY seq",
    )
    .bind(subscription_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(
            |(seq, event, state, effective, recorded_at, actor, details)| {
                Ok(sealstream_api::subscriptions::HistoryEntry {
                    seq: seq.max(0) as u64,
                    event,
                    state: SubscriptionState::parse(&state)
                        .ok_or_else(|| corrupt("history state"))?,
                    effective_at: sealstream_core::utc::format_seconds(effective.max(0)),
                    recorded_at,
                    actor,
                    details: serde_json::from_str(&details)
                        .map_err(|_| corrupt("history details"))?,
                })
            },
        )
        .collect()
}

/// A chunk of a topic: index, id, acceptance time.
pub(crate) type ChunkRow = (i64, String, i64);

/// Subscriptions (or rows) named in one statement of the batch reads and
/// writes below. Small: SQLite looks up each parameter's name through a
/// list as long as the statement's parameters, so a statement's binding
/// grows with the square of their number.
const PER_STATEMENT: usize = 50;

/// Where a search for a subscription's ungranted chunks looks: chunks
/// from index `from` accepted before `before`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds<'a> {
    /// The subscription.
    pub id: &'a str,
    /// The lowest index it may be entitled to.
    pub from: u64,
    /// Its access end (Unix seconds): chunks accepted before it.
    pub before: i64,
}

/// For subscriptions of one topic (`bounds`), the chunks each holds no
/// grant of, within its bounds, by subscription then index: at most
/// `limit` per subscription. A few statements whatever the number of
/// subscriptions.
pub(crate) async fn ungranted(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
    bounds: &[Bounds<'_>],
    limit: i64,
) -> Result<Vec<(String, ChunkRow)>, DbError> {
    let postgres = crate::store::is_postgres(tx);
    let mut out = Vec::new();
    for part in bounds.chunks(PER_STATEMENT) {
        let sql = ungranted_sql(postgres, part.len());
        let mut query = sqlx::query_as(&sql)
            .bind(machine_did)
            .bind(topic)
            .bind(limit);
        for b in part {
            query = query
                .bind(b.id)
                .bind(b.from.min(i64::MAX as u64) as i64)
                .bind(b.before);
        }
        let rows: Vec<(String, i64, String, i64)> = query.fetch_all(&mut **tx).await?;
        out.extend(
            rows.into_iter()
                .map(|(id, index, chunk_id, accepted)| (id, (index, chunk_id, accepted))),
        );
    }
    Ok(out)
}

/// The statement of [`ungranted`] for `rows` subscriptions (parameters:
/// machine, topic, limit, then each subscription's id, lowest index and
/// access end).
fn ungranted_sql(postgres: bool, rows: usize) -> String {
    // On PostgreSQL each subscription's search is its own index range
    // (LATERAL, ordered, limited), whatever the planner believes of the
    // table's size: with statistics from when the topic was short, the
    // join below read every chunk of the topic against every
    // subscription of the statement, on every pass (a live topic's
    // passes grew slower with its length). SQLite has no LATERAL; its
    // planner walks the index from each subscription's lower bound.
    //
    // The range is bounded on both sides (the upper bound, the topic's
    // last index, is computed once per statement): with a lower bound
    // only, the planner was seen to search by acceptance time instead,
    // every chunk of the topic before the subscription's end, once its
    // statistics of `chunks` were stale.
    //
    // The `OFFSET 0` keeps PostgreSQL from turning `NOT EXISTS` into
    // an anti-join: as a join, it read every grant the subscription
    // holds against each candidate chunk (a cost that grew with every
    // chunk granted); as a subquery, each candidate is one look-up by
    // the grants' key (subscription, index).
    if postgres {
        format!(
            "WITH w(id, lo, hi) AS (VALUES {}) \
                 SELECT w.id, c.idx, c.chunk_id, c.received_unix FROM w \
                 CROSS JOIN LATERAL ( \
                   SELECT c.idx, c.chunk_id, c.received_unix FROM chunks c \
                   WHERE c.machine_did = $1 AND c.topic = $2 \
                     AND c.idx >= CAST(w.lo AS BIGINT) \
                     AND c.idx <= (SELECT MAX(h.idx) FROM chunks h \
                       WHERE h.machine_did = $1 AND h.topic = $2) \
                     AND c.received_unix < CAST(w.hi AS BIGINT) \
                     AND NOT EXISTS (SELECT 1 FROM subscription_grants g \
                       WHERE g.subscription_id = w.id AND g.chunk_index = c.idx OFFSET 0) \
                   ORDER BY c.idx LIMIT $3) c \
                 ORDER BY w.id, c.idx",
            placeholders(rows, 3, 4)
        )
    } else {
        format!(
            "WITH w(id, lo, hi) AS (VALUES {}) \
             SELECT id, idx, chunk_id, received_unix FROM ( \
               SELECT w.id AS id, c.idx AS idx, c.chunk_id AS chunk_id, \
                 c.received_unix AS received_unix, \
                 ROW_NUMBER() OVER (PARTITION BY w.id ORDER BY c.idx) AS rn \
               FROM w JOIN chunks c ON c.machine_did = $1 AND c.topic = $2 \
                 AND c.idx >= w.lo AND c.received_unix < w.hi \
               WHERE NOT EXISTS (SELECT 1 FROM subscription_grants g \
                 WHERE g.subscription_id = w.id AND g.chunk_index = c.idx)) t \
             WHERE rn <= $3 ORDER BY id, idx",
            placeholders(rows, 3, 4)
        )
    }
}

/// The last chunk of a topic (index and acceptance time), if it has any.
pub(crate) async fn last_chunk(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
) -> Result<Option<(u64, i64)>, DbError> {
    let last: Option<(i64, i64)> = sqlx::query_as(
        "SELECT idx, received_unix FROM chunks WHERE machine_did = $1 AND topic = $2 \
         ORDER BY idx DESC LIMIT 1",
    )
    .bind(machine_did)
    .bind(topic)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(last.and_then(|(i, t)| Some((u64::try_from(i).ok()?, t))))
}

/// How many of a topic's chunks were accepted before a subscription's
/// activation (the index of its first live chunk), as counted up to the
/// topic's last chunk then (`head`, `None` with no chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FirstLive {
    /// Chunks accepted before the activation, among those up to `head`.
    pub count: u64,
    /// The topic's last index when counted.
    pub head: Option<i64>,
}

/// For subscriptions of one topic, each with its activation time and,
/// if counted before, that count (`starts`): how many of the topic's
/// chunks were accepted before it, and the topic's head.
///
/// A count from before is brought up to date by counting only the chunks
/// after its head: chunks are accepted in chain order (index `i + 1` only
/// once `i` is stored), so every chunk up to a head read was counted, and
/// the count stays exact whatever the chunks' times. The range read is
/// bounded on both sides (after the old head, up to the new one), so the
/// planners take the index by chain position for it, not the one by time,
/// which would read every chunk before the activation again.
pub(crate) async fn first_live(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
    starts: &[(&str, i64, Option<FirstLive>)],
) -> Result<HashMap<String, FirstLive>, DbError> {
    let mut out = HashMap::with_capacity(starts.len());
    let (counted, fresh): (Vec<_>, Vec<_>) = starts.iter().partition(|(_, _, was)| was.is_some());
    for part in fresh.chunks(PER_STATEMENT) {
        let sql = format!(
            "WITH f(id, at) AS (VALUES {}) \
             SELECT f.id, (SELECT COUNT(*) FROM chunks c \
               WHERE c.machine_did = $1 AND c.topic = $2 AND c.received_unix < f.at), \
             (SELECT MAX(h.idx) FROM chunks h WHERE h.machine_did = $1 AND h.topic = $2) FROM f",
            placeholders(part.len(), 2, 3)
        );
        let mut query = sqlx::query_as(&sql).bind(machine_did).bind(topic);
        for (id, at, _) in part {
            query = query.bind(*id).bind(*at);
        }
        let rows: Vec<(String, i64, Option<i64>)> = query.fetch_all(&mut **tx).await?;
        out.extend(rows.into_iter().map(|(id, n, head)| {
            let count = n.max(0) as u64;
            (id, FirstLive { count, head })
        }));
    }
    for part in counted.chunks(PER_STATEMENT) {
        let sql = format!(
            "WITH f(id, at, n, after) AS (VALUES {}), \
               h(head) AS (SELECT MAX(idx) FROM chunks WHERE machine_did = $1 AND topic = $2) \
             SELECT f.id, f.n + (SELECT COUNT(*) FROM chunks c \
               WHERE c.machine_did = $1 AND c.topic = $2 \
               AND c.idx > f.after AND c.idx <= h.head AND c.received_unix < f.at), h.head \
             FROM f CROSS JOIN h",
            placeholders(part.len(), 4, 3)
        );
        let mut query = sqlx::query_as(&sql).bind(machine_did).bind(topic);
        for (id, at, was) in part {
            let was = was.unwrap_or(FirstLive {
                count: 0,
                head: None,
            });
            let count = i64::try_from(was.count).unwrap_or(i64::MAX);
            query = query
                .bind(*id)
                .bind(*at)
                .bind(count)
                .bind(was.head.unwrap_or(-1));
        }
        let rows: Vec<(String, i64, Option<i64>)> = query.fetch_all(&mut **tx).await?;
        out.extend(rows.into_iter().map(|(id, n, head)| {
            let count = n.max(0) as u64;
            (id, FirstLive { count, head })
        }));
    }
    Ok(out)
}

/// The keys of each of subscriptions `ids`, oldest first (a subscription
/// without keys is absent).
pub(crate) async fn keys_of(
    tx: &mut Tx,
    ids: &[&str],
) -> Result<HashMap<String, Vec<KeyFrom>>, DbError> {
    let mut out: HashMap<String, Vec<KeyFrom>> = HashMap::with_capacity(ids.len());
    for part in ids.chunks(PER_STATEMENT) {
        let list = placeholder_list(part.len(), 1);
        let sql = format!(
            "SELECT subscription_id, public_key_hex, applies_from_unix FROM subscription_keys \
             WHERE subscription_id IN ({list}) ORDER BY subscription_id, seq"
        );
        let mut query = sqlx::query_as(&sql);
        for id in part {
            query = query.bind(*id);
        }
        let rows: Vec<(String, String, i64)> = query.fetch_all(&mut **tx).await?;
        for (id, public_key_hex, applies_from) in rows {
            out.entry(id).or_default().push(KeyFrom {
                applies_from,
                public_key_hex,
            });
        }
    }
    Ok(out)
}

/// The (id, acceptance time) of a topic's chunks at `indexes`, by index
/// (those stored).
pub(crate) async fn chunk_ids(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
    indexes: &[u64],
) -> Result<HashMap<u64, (String, i64)>, DbError> {
    let mut out = HashMap::with_capacity(indexes.len());
    for part in indexes.chunks(PER_STATEMENT) {
        let list = placeholder_list(part.len(), 3);
        let sql = format!(
            "SELECT idx, chunk_id, received_unix FROM chunks \
             WHERE machine_did = $1 AND topic = $2 AND idx IN ({list})"
        );
        let mut query = sqlx::query_as(&sql).bind(machine_did).bind(topic);
        for index in part {
            query = query.bind((*index).min(i64::MAX as u64) as i64);
        }
        let rows: Vec<(i64, String, i64)> = query.fetch_all(&mut **tx).await?;
        out.extend(
            rows.into_iter()
                .map(|(index, id, accepted)| (index.max(0) as u64, (id, accepted))),
        );
    }
    Ok(out)
}

/// A subscription grant to store.
pub(crate) struct GrantRow<'a> {
    /// Chain index.
    pub index: u64,
    /// Chunk id.
    pub chunk_id: &'a str,
    /// Recipient id.
    pub recipient_id: &'a str,
    /// The buyer key wrapped to.
    pub public_key_hex: &'a str,
    /// The wrapped chunk key.
    pub wrapped_key_hex: &'a str,
}

/// Stores grants (`(subscription, grant)`), each unless one of its chunk
/// is held already; returns those stored, as (subscription, index). A few
/// statements whatever the number.
pub(crate) async fn insert_grants(
    tx: &mut Tx,
    grants: &[(&str, GrantRow<'_>)],
    granted_by: &str,
    now: &str,
) -> Result<std::collections::HashSet<(String, u64)>, DbError> {
    let mut stored = std::collections::HashSet::with_capacity(grants.len());
    for part in grants.chunks(PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO subscription_grants (subscription_id, chunk_index, chunk_id, \
             recipient_id, public_key_hex, wrapped_key_hex, granted_by, granted_at) \
             VALUES {} ON CONFLICT (subscription_id, chunk_index) DO NOTHING \
             RETURNING subscription_id, chunk_index",
            placeholders(part.len(), 8, 1)
        );
        let mut query = sqlx::query_as(&sql);
        for (id, g) in part {
            query = query
                .bind(*id)
                .bind(g.index.min(i64::MAX as u64) as i64)
                .bind(g.chunk_id)
                .bind(g.recipient_id)
                .bind(g.public_key_hex)
                .bind(g.wrapped_key_hex)
                .bind(granted_by)
                .bind(now);
        }
        let rows: Vec<(String, i64)> = query.fetch_all(&mut **tx).await?;
        stored.extend(rows.into_iter().map(|(id, i)| (id, i.max(0) as u64)));
    }
    Ok(stored)
}

/// The wrapped key `subscription_id` holds for chunk `index`, if any.
pub(crate) async fn held_grant(
    tx: &mut Tx,
    subscription_id: &str,
    index: u64,
) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT wrapped_key_hex FROM subscription_grants WHERE subscription_id = $1 AND chunk_index = $2",
    )
    .bind(subscription_id)
    .bind(index.min(i64::MAX as u64) as i64)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The grants of `subscription_id` after index `after`, each with its
/// chunk (of the subscription's topic), by index, at most `limit`: what a
/// feed sends, in one statement.
///
/// The chunks are bounded on both sides (after `after`, up to the
/// subscription's last grant) as well as joined on their index: whichever
/// table the planner starts from, it reads only the range still to send.
/// PostgreSQL, with statistics taken while the topic was small, starts from
/// the topic's chunks, and without the bounds read all of them (every
/// earlier chunk) for every feed read, so a live feed grew slower with the
/// topic's length.
pub(crate) async fn granted_chunks<'e, E>(
    executor: E,
    subscription_id: &str,
    (machine_did, topic): (&str, &str),
    after: i64,
    limit: i64,
) -> Result<Vec<(crate::ingest::db::ChunkRow, WrappedGrant)>, DbError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(&granted_range_sql("$1", ("$2", "$3"), "$4", "$5"))
        .bind(subscription_id)
        .bind(machine_did)
        .bind(topic)
        .bind(after)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    rows.iter().map(granted_chunk).collect()
}

/// The statement of [`granted_chunks`], its values given as SQL
/// expressions (parameters, or columns of a gathered read): the grants of
/// `id` after `after`, each with its chunk of (`machine_did`, `topic`), by
/// index, at most `limit`, the chunks' range bounded on both sides.
fn granted_range_sql(
    id: &str,
    (machine_did, topic): (&str, &str),
    after: &str,
    limit: &str,
) -> String {
    format!(
        "SELECT {}, g.recipient_id, g.public_key_hex, g.wrapped_key_hex \
         FROM subscription_grants g JOIN chunks c \
           ON c.machine_did = {machine_did} AND c.topic = {topic} AND c.idx = g.chunk_index \
           AND c.idx > {after} AND c.idx <= (SELECT MAX(l.chunk_index) \
             FROM subscription_grants l WHERE l.subscription_id = {id}) \
         WHERE g.subscription_id = {id} AND g.chunk_index > {after} \
         ORDER BY g.chunk_index LIMIT {limit}",
        crate::ingest::db::chunk_columns_of("c")
    )
}

/// A row of [`granted_chunks`]: the chunk, then its grant.
fn granted_chunk(row: &AnyRow) -> Result<(crate::ingest::db::ChunkRow, WrappedGrant), DbError> {
    Ok((
        crate::ingest::db::chunk_row(row)?,
        WrappedGrant {
            recipient_id: row.try_get(9)?,
            public_key_hex: row.try_get(10)?,
            wrapped_key_hex: row.try_get(11)?,
        },
    ))
}

/// One read of [`granted_chunks_of_many`]: a subscription, its topic and
/// the last index its feed sent.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GrantedRead {
    /// The subscription.
    pub id: String,
    /// Its machine.
    pub machine_did: String,
    /// Its topic.
    pub topic: String,
    /// The grants after this index are read.
    pub after: i64,
}

/// [`granted_chunks`] of many subscriptions in one statement (PostgreSQL
/// only): for each read, its rows, at most `limit` of them, in the order
/// of `reads`.
///
/// The reads go as one JSON parameter (`json_to_recordset`), so the
/// statement's text is the same whatever their number (one prepared
/// statement), and each is answered by the same bounded range read as
/// [`granted_chunks`] (`CROSS JOIN LATERAL`).
pub(crate) async fn granted_chunks_of_many(
    pool: &sqlx::AnyPool,
    reads: &[GrantedRead],
    limit: i64,
) -> Result<Vec<Vec<(crate::ingest::db::ChunkRow, WrappedGrant)>>, DbError> {
    #[derive(serde::Serialize)]
    struct Numbered<'a> {
        n: usize,
        #[serde(flatten)]
        read: &'a GrantedRead,
    }
    let numbered: Vec<Numbered<'_>> = reads
        .iter()
        .enumerate()
        .map(|(n, read)| Numbered { n, read })
        .collect();
    let json = serde_json::to_string(&numbered)
        .map_err(|e| DbError::inconsistent("feed reads", e.to_string()))?;
    let rows = sqlx::query(&format!(
        "SELECT x.*, r.n FROM json_to_recordset(CAST($1 AS json)) \
           AS r(n integer, id text, machine_did text, topic text, after bigint) \
         CROSS JOIN LATERAL ({}) x \
         ORDER BY r.n, x.idx",
        granted_range_sql("r.id", ("r.machine_did", "r.topic"), "r.after", "$2")
    ))
    .bind(json)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<Vec<_>> = reads.iter().map(|_| Vec::new()).collect();
    for row in &rows {
        let n: i32 = row.try_get(12)?;
        let slot = usize::try_from(n)
            .ok()
            .and_then(|n| out.get_mut(n))
            .ok_or_else(|| DbError::inconsistent("feed reads", format!("read {n} not asked")))?;
        slot.push(granted_chunk(row)?);
    }
    Ok(out)
}

/// A chunk key wrapped for a subscriber, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedGrant {
    /// The subscription's recipient id.
    pub recipient_id: String,
    /// The buyer key it is wrapped to.
    pub public_key_hex: String,
    /// The wrapped chunk key.
    pub wrapped_key_hex: String,
}

/// Whether `subscription_id` holds a grant of chunk `index`.
pub(crate) async fn is_granted(
    store: &Store,
    subscription_id: &str,
    index: u64,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "SELECT 1 FROM subscription_grants WHERE subscription_id = $1 AND chunk_index = $2",
    )
    .bind(subscription_id)
    .bind(index.min(i64::MAX as u64) as i64)
    .fetch_optional(store.pool())
    .await?
    .is_some())
}

/// The highest index granted to `subscription_id`, if any.
pub(crate) async fn last_granted<'e, E>(
    executor: E,
    subscription_id: &str,
) -> Result<Option<i64>, DbError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT MAX(chunk_index) FROM subscription_grants WHERE subscription_id = $1",
    )
    .bind(subscription_id)
    .fetch_one(executor)
    .await?)
}

/// Stores the cut-off notice of a subscription unless one is held;
/// whether it was stored.
pub(crate) async fn insert_cutoff(
    tx: &mut Tx,
    subscription_id: &str,
    document: &str,
    issued_at: &str,
) -> Result<bool, DbError> {
    let query = sqlx::query(
        "INSERT INTO subscription_cutoffs (subscription_id, document, issued_at) \
         VALUES ($1, $2, $3) ON CONFLICT (subscription_id) DO NOTHING",
    )
    .bind(subscription_id)
    .bind(document)
    .bind(issued_at);
    Ok(changed(tx, query).await? == 1)
}

/// The cut-off notice of a subscription (the document's text), if issued.
pub(crate) async fn cutoff(tx: &mut Tx, subscription_id: &str) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT document FROM subscription_cutoffs WHERE subscription_id = $1")
            .bind(subscription_id)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// The highest index of a topic's chunks accepted before `before`, if any.
pub(crate) async fn last_index_before(
    tx: &mut Tx,
    machine_did: &str,
    topic: &str,
    before: i64,
) -> Result<Option<ChunkRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT idx, chunk_id, received_unix FROM chunks \
         WHERE machine_did = $1 AND topic = $2 AND received_unix < $3 ORDER BY idx DESC LIMIT 1",
    )
    .bind(machine_did)
    .bind(topic)
    .bind(before)
    .fetch_optional(&mut **tx)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's generic plan (text) of [`ungranted_sql`] for two
    /// subscriptions, on a new database with the market's schema holding
    /// a topic of 300 chunks granted to 1,000 subscriptions (statistics
    /// taken): the shape at which a live topic's passes were measured.
    fn postgres_plan_of_ungranted() -> String {
        let (runtime, store) = crate::store::test_postgres::store();
        runtime.block_on(async {
            for sql in [
                "INSERT INTO chunks (machine_did, topic, idx, chunk_id, envelope, object_key, \
                   size, ciphertext_hash, received_at, received_unix) \
                 SELECT 'did:peaq:0x00', '/topic', i, 'c' || i, '{}', 'o' || i, 1, 'h', 't', \
                   1700000000 + i / 4 FROM generate_series(0, 299) AS i",
                "INSERT INTO subscription_grants (subscription_id, chunk_index, chunk_id, \
                   recipient_id, public_key_hex, wrapped_key_hex, granted_by, granted_at) \
                 SELECT 'sub_' || s, i, 'c' || i, 'r', 'k', 'w', 'g', 't' \
                 FROM generate_series(0, 999) AS s, generate_series(0, 299) AS i",
                "ANALYZE chunks",
                "ANALYZE subscription_grants",
            ] {
                sqlx::query(sql).execute(store.pool()).await.expect(sql);
            }
            crate::store::test_postgres::generic_plan(
                &store,
                &ungranted_sql(true, 2),
                "'did:peaq:0x00', '/topic', 10, 'sub_0', 290, 1800000000, \
                 'sub_1', 290, 1800000000",
            )
            .await
        })
    }

    /// Each candidate chunk is looked up by the grants' key (subscription,
    /// index): never an anti-join that reads every grant of the
    /// subscription against each candidate, a cost that grew with every
    /// chunk granted (measured at 1,000 subscribers: about 200 grants read
    /// per candidate after 200 chunks).
    #[test]
    fn ungranted_chunks_are_looked_up_by_the_grants_key() {
        let plan = postgres_plan_of_ungranted();
        assert!(!plan.contains("Anti Join"), "{plan}");
        assert!(plan.contains("SubPlan"), "{plan}");
        assert!(
            plan.lines().any(|l| l.contains("Index Cond")
                && l.contains("subscription_id")
                && l.contains("chunk_index")),
            "{plan}"
        );
        // The chunks' search: by chain position, bounded on both sides
        // (as an index scan or a bitmap of one), never by time.
        assert!(!plan.contains("chunks_by_time"), "{plan}");
        assert!(
            plan.lines().any(|l| l.contains("Index Cond")
                && l.contains("idx >= (")
                && l.contains("idx <= ")),
            "{plan}"
        );
    }
}
