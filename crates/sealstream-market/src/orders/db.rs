//! Orders in the database, with what hangs on them: `orders`, their
//! payment claims (`payment_claims`), payments (`payments`), license
//! receipts (`receipts`), grants (`grants`) and bearer links
//! (`order_links`).

use std::collections::HashMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::claims::{Claim, ClaimState, Observation, CLOSED_SHOWN};
use super::grant::GrantRow;
use super::links::LinkPurpose;
use super::{Order, OrderSide, OrderState};
use crate::listings::Rail;
use crate::store::{changed, stored_u64, DbError, Store, Tx};

/// The columns [`order_of`] reads, in order.
const ORDER_COLUMNS: [&str; 15] = [
    "id",
    "listing_id",
    "dataset_id",
    "seller_did",
    "buyer_did",
    "buyer_id",
    "buyer_public_key_hex",
    "amount",
    "rail",
    "state",
    "created_at",
    "paid_at",
    "granted_at",
    "subscription_id",
    "compliance",
];

/// [`ORDER_COLUMNS`] of table alias `alias` (`o.id, o.listing_id, …`).
fn order_columns(alias: &str) -> String {
    ORDER_COLUMNS
        .iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn corrupt_order(what: &str) -> DbError {
    DbError::inconsistent("order", format!("stored {what} is malformed"))
}

/// The order in `r`'s first columns ([`ORDER_COLUMNS`]).
fn order_of(r: &AnyRow) -> Result<Order, DbError> {
    let rail_text: String = r.try_get(8)?;
    let rail_json: Value = serde_json::from_str(&rail_text).map_err(|_| corrupt_order("rail"))?;
    let state: String = r.try_get(9)?;
    Ok(Order {
        id: r.try_get(0)?,
        listing_id: r.try_get(1)?,
        dataset_id: r.try_get(2)?,
        seller_did: r.try_get(3)?,
        buyer_did: r.try_get(4)?,
        buyer_id: r.try_get(5)?,
        buyer_public_key_hex: r.try_get(6)?,
        amount: r.try_get(7)?,
        rail: Rail::parse(&rail_json).map_err(|_| corrupt_order("rail"))?,
        state: OrderState::parse(&state).ok_or_else(|| corrupt_order("state"))?,
        created_at: r.try_get(10)?,
        paid_at: r.try_get(11)?,
        granted_at: r.try_get(12)?,
        subscription_id: r.try_get(13)?,
        compliance: match r.try_get::<Option<String>, _>(14)? {
            None => None,
            Some(text) => {
                let value = sealstream_core::json::parse(text.as_bytes())
                    .map_err(|_| corrupt_order("compliance"))?;
                Some(
                    sealstream_api::compliance::Accepted::from_value(&value, "compliance")
                        .map_err(|_| corrupt_order("compliance"))?,
                )
            }
        },
    })
}

/// The order `id`, if it exists.
pub(crate) async fn order(tx: &mut Tx, id: &str) -> Result<Option<Order>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM orders o WHERE o.id = $1",
        order_columns("o")
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(order_of).transpose()
}

/// Stores a new order.
pub(crate) async fn insert_order(tx: &mut Tx, order: &Order) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO orders (id, listing_id, dataset_id, seller_did, buyer_did, buyer_id, \
         buyer_public_key_hex, amount, rail, state, created_at, subscription_id, compliance) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&order.id)
    .bind(&order.listing_id)
    .bind(&order.dataset_id)
    .bind(&order.seller_did)
    .bind(&order.buyer_did)
    .bind(&order.buyer_id)
    .bind(&order.buyer_public_key_hex)
    .bind(&order.amount)
    .bind(order.rail.to_json().to_string())
    .bind(order.state.as_str())
    .bind(&order.created_at)
    .bind(order.subscription_id.clone())
    .bind(
        order
            .compliance
            .as_ref()
            .map(|c| sealstream_core::json::write::to_python_compact(&c.to_value())),
    );
    changed(tx, query).await?;
    Ok(())
}

/// Which orders a list shows.
pub(crate) struct OrderFilter<'a> {
    /// The caller.
    pub party: &'a str,
    /// The caller's seat.
    pub side: OrderSide,
    /// Only orders after this id.
    pub after: &'a str,
    /// Only orders in this state.
    pub state: Option<&'a str>,
    /// Only orders of this listing.
    pub listing: Option<&'a str>,
    /// At most this many.
    pub limit: u32,
}

/// The orders `filter` selects, by id.
pub(crate) async fn orders(store: &Store, filter: &OrderFilter<'_>) -> Result<Vec<Order>, DbError> {
    let party = match filter.side {
        OrderSide::Buyer => "buyer_did",
        OrderSide::Seller => "seller_did",
    };
    let mut sql = format!(
        "SELECT {} FROM orders o WHERE o.{party} = $1 AND o.id > $2",
        order_columns("o")
    );
    let mut n = 2;
    if filter.state.is_some() {
        n += 1;
        sql.push_str(&format!(" AND o.state = ${n}"));
    }
    if filter.listing.is_some() {
        n += 1;
        sql.push_str(&format!(" AND o.listing_id = ${n}"));
    }
    sql.push_str(&format!(" ORDER BY o.id LIMIT {}", filter.limit));
    let mut query = sqlx::query(&sql).bind(filter.party).bind(filter.after);
    if let Some(s) = filter.state {
        query = query.bind(s);
    }
    if let Some(l) = filter.listing {
        query = query.bind(l);
    }
    let rows = query.fetch_all(store.pool()).await?;
    rows.iter().map(order_of).collect()
}

/// Marks order `id` paid at `now`; `false` when it no longer awaits
/// payment.
pub(crate) async fn mark_paid(tx: &mut Tx, id: &str, now: &str) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "UPDATE orders SET state = 'paid', paid_at = $1 \
         WHERE id = $2 AND state = 'awaiting-payment'",
    )
    .bind(now)
    .bind(id);
    Ok(changed(tx, query).await? == 1)
}

/// Cancels order `id`; `false` when it no longer awaits payment.
pub(crate) async fn cancel(tx: &mut Tx, id: &str) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "UPDATE orders SET state = 'cancelled' WHERE id = $1 AND state = 'awaiting-payment'",
    )
    .bind(id);
    Ok(changed(tx, query).await? == 1)
}

/// The columns [`claim_of`] reads, in order.
const CLAIM_COLUMNS: &str = "c.order_id, c.tx_hash, c.chain_id, c.claimed_at, \
     c.last_checked_at, c.checks, c.state, c.reason, c.confirmations";

fn count(n: i64, what: &str) -> Result<u64, DbError> {
    stored_u64(n, "payment claim", what)
}

/// The claim in `r`'s columns from `at` on ([`CLAIM_COLUMNS`]).
fn claim_of(r: &AnyRow, at: usize) -> Result<Claim, DbError> {
    let state: String = r.try_get(at + 6)?;
    Ok(Claim {
        order_id: r.try_get(at)?,
        tx_hash: r.try_get(at + 1)?,
        chain_id: count(r.try_get(at + 2)?, "chain id")?,
        claimed_at: r.try_get(at + 3)?,
        last_checked_at: r.try_get(at + 4)?,
        checks: count(r.try_get(at + 5)?, "checks")?,
        state: ClaimState::parse(&state)
            .ok_or_else(|| DbError::inconsistent("payment claim", "stored state is malformed"))?,
        reason: r.try_get(at + 7)?,
        confirmations: r
            .try_get::<Option<i64>, _>(at + 8)?
            .map(|n| count(n, "confirmations"))
            .transpose()?,
    })
}

/// The claim of `tx_hash` for `order_id`, if any; on PostgreSQL its row
/// stays locked until `tx` ends.
pub(crate) async fn claim(
    tx: &mut Tx,
    order_id: &str,
    tx_hash: &str,
) -> Result<Option<Claim>, DbError> {
    // Read to be changed: locked on PostgreSQL, so that two checks of the
    // same claim (the watcher, a buyer's confirmation poll, another
    // replica) take turns instead of writing over each other's count and
    // state.
    let lock = if crate::store::is_postgres(tx) {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = sqlx::query(&format!(
        "SELECT {CLAIM_COLUMNS} FROM payment_claims c WHERE c.order_id = $1 AND c.tx_hash = $2{lock}"
    ))
    .bind(order_id)
    .bind(tx_hash)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| claim_of(&r, 0)).transpose()
}

/// The order's open claims, pending before unknown, each oldest-checked
/// first.
pub(crate) async fn open_claims(tx: &mut Tx, order_id: &str) -> Result<Vec<Claim>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {CLAIM_COLUMNS} FROM payment_claims c \
         WHERE c.order_id = $1 AND c.state IN ('pending', 'unknown') \
         ORDER BY CASE c.state WHEN 'pending' THEN 0 ELSE 1 END, c.check_seq, c.tx_hash"
    ))
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| claim_of(r, 0)).collect()
}

/// The claims shown with an order: every open one, and the
/// [`CLOSED_SHOWN`] last checked closed ones.
pub(crate) async fn shown_claims(tx: &mut Tx, order_id: &str) -> Result<Vec<Claim>, DbError> {
    let mut claims = open_claims(tx, order_id).await?;
    let rows = sqlx::query(&format!(
        "SELECT {CLAIM_COLUMNS} FROM payment_claims c \
         WHERE c.order_id = $1 AND c.state NOT IN ('pending', 'unknown') \
         ORDER BY c.last_checked_at DESC, c.tx_hash LIMIT {CLOSED_SHOWN}"
    ))
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        claims.push(claim_of(r, 0)?);
    }
    Ok(claims)
}

/// The open claims of each of `order_ids` (for a page of orders).
pub(crate) async fn open_claims_of(
    pool: &AnyPool,
    order_ids: &[&str],
) -> Result<HashMap<String, Vec<Claim>>, DbError> {
    let mut out: HashMap<String, Vec<Claim>> = HashMap::new();
    if order_ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT {CLAIM_COLUMNS} FROM payment_claims c \
         WHERE c.state IN ('pending', 'unknown') AND c.order_id IN ({}) \
         ORDER BY c.order_id, CASE c.state WHEN 'pending' THEN 0 ELSE 1 END, \
         c.check_seq, c.tx_hash",
        crate::store::placeholder_list(order_ids.len(), 1)
    );
    let mut query = sqlx::query(&sql);
    for id in order_ids {
        query = query.bind(*id);
    }
    for r in &query.fetch_all(pool).await? {
        let claim = claim_of(r, 0)?;
        out.entry(claim.order_id.clone()).or_default().push(claim);
    }
    Ok(out)
}

/// The order's open claims of transactions the node does not know.
pub(crate) async fn unknown_claims(tx: &mut Tx, order_id: &str) -> Result<u64, DbError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM payment_claims WHERE order_id = $1 AND state = 'unknown'",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    count(n, "count")
}

/// Open claims in `state` of orders awaiting payment, oldest-checked
/// first, at most `limit`, with their orders.
pub(crate) async fn due_claims(
    tx: &mut Tx,
    state: ClaimState,
    limit: usize,
) -> Result<Vec<(Order, Claim)>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {}, {CLAIM_COLUMNS} FROM payment_claims c JOIN orders o ON o.id = c.order_id \
         WHERE c.state = $1 AND o.state = 'awaiting-payment' \
         ORDER BY c.check_seq, c.order_id, c.tx_hash LIMIT {limit}",
        order_columns("o"),
    ))
    .bind(state.as_str())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((order_of(r)?, claim_of(r, ORDER_COLUMNS.len())?)))
        .collect()
}

/// The next value of `payment_claims.check_seq`: a claim checked now goes
/// to the back of the watcher's queue.
const NEXT_SEQ: &str = "(SELECT COALESCE(MAX(check_seq), 0) + 1 FROM payment_claims)";

fn confirmations_of(seen: &Observation) -> Option<i64> {
    seen.confirmations
        .map(|c| i64::try_from(c).unwrap_or(i64::MAX))
}

/// Records a new claim of `tx_hash` on `order_id` (on chain `chain`)
/// with what was `seen` at `now`; `false` when it exists already.
pub(crate) async fn insert_claim(
    tx: &mut Tx,
    order_id: &str,
    tx_hash: &str,
    chain: i64,
    now: &str,
    seen: &Observation,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "INSERT INTO payment_claims (order_id, tx_hash, chain_id, claimed_at, \
         last_checked_at, checks, check_seq, state, reason, confirmations) \
         VALUES ($1, $2, $3, $4, $4, $5, {NEXT_SEQ}, $6, $7, $8) \
         ON CONFLICT (order_id, tx_hash) DO NOTHING"
    );
    let query = sqlx::query(&sql)
        .bind(order_id)
        .bind(tx_hash)
        .bind(chain)
        .bind(now)
        .bind(i64::from(seen.answered))
        .bind(seen.state.as_str())
        .bind(&seen.reason)
        .bind(confirmations_of(seen));
    Ok(changed(tx, query).await? == 1)
}

/// Moves only the time of the last attempt of a claim to `now` (and the
/// claim to the back of the queue).
pub(crate) async fn touch_claim(
    tx: &mut Tx,
    order_id: &str,
    tx_hash: &str,
    now: &str,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE payment_claims SET last_checked_at = $1, check_seq = {NEXT_SEQ} \
         WHERE order_id = $2 AND tx_hash = $3"
    );
    let query = sqlx::query(&sql).bind(now).bind(order_id).bind(tx_hash);
    changed(tx, query).await?;
    Ok(())
}

/// Records what a check at `now` found of an existing claim: `seen`,
/// `checks` checks since `claimed_at`.
pub(crate) async fn update_claim(
    tx: &mut Tx,
    claim: &Claim,
    now: &str,
    seen: &Observation,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE payment_claims SET claimed_at = $1, last_checked_at = $2, checks = $3, \
         check_seq = {NEXT_SEQ}, state = $4, reason = $5, confirmations = $6 \
         WHERE order_id = $7 AND tx_hash = $8"
    );
    let query = sqlx::query(&sql)
        .bind(&claim.claimed_at)
        .bind(now)
        .bind(i64::try_from(claim.checks).unwrap_or(i64::MAX))
        .bind(seen.state.as_str())
        .bind(&seen.reason)
        .bind(confirmations_of(seen))
        .bind(&claim.order_id)
        .bind(&claim.tx_hash);
    changed(tx, query).await?;
    Ok(())
}

/// Expires `claim` with `reason` if it is still unknown; returns whether
/// it expired.
pub(crate) async fn expire_claim(
    tx: &mut Tx,
    claim: &Claim,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "UPDATE payment_claims SET state = 'expired', reason = $1 \
         WHERE order_id = $2 AND tx_hash = $3 AND state = 'unknown'",
    )
    .bind(reason)
    .bind(&claim.order_id)
    .bind(&claim.tx_hash);
    Ok(changed(tx, query).await? == 1)
}

/// Closes the order's open claims: `paid_by` (the transaction that paid
/// it, if on chain) becomes confirmed, the others superseded with
/// `reason`.
pub(crate) async fn close_claims(
    tx: &mut Tx,
    order_id: &str,
    paid_by: Option<&str>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    if let Some(hash) = paid_by {
        let query = sqlx::query(
            "UPDATE payment_claims SET state = 'confirmed', reason = NULL \
             WHERE order_id = $1 AND tx_hash = $2",
        )
        .bind(order_id)
        .bind(hash);
        changed(tx, query).await?;
    }
    let query = sqlx::query(
        "UPDATE payment_claims SET state = 'superseded', reason = $1 \
         WHERE order_id = $2 AND state IN ('pending', 'unknown')",
    )
    .bind(reason)
    .bind(order_id);
    changed(tx, query).await?;
    Ok(())
}

/// Closes the open claims of orders no longer awaiting payment and
/// deletes closed claims last checked before `cutoff` (UTC). Returns the
/// claims deleted.
pub(crate) async fn tidy_claims(tx: &mut Tx, cutoff: &str) -> Result<u64, sqlx::Error> {
    let query = sqlx::query(
        "UPDATE payment_claims SET state = 'superseded', \
         reason = 'the order is no longer awaiting payment' \
         WHERE state IN ('pending', 'unknown') AND order_id IN \
         (SELECT id FROM orders WHERE state <> 'awaiting-payment')",
    );
    changed(tx, query).await?;
    let query = sqlx::query(
        "DELETE FROM payment_claims WHERE state NOT IN ('pending', 'unknown') \
         AND last_checked_at < $1",
    )
    .bind(cutoff);
    let deleted = changed(tx, query).await?;
    Ok(deleted)
}

/// Records the payment `payment_key` of `order` (its `details` as JSON)
/// verified at `now`; `false` when the key or the order has a payment
/// already.
pub(crate) async fn insert_payment(
    tx: &mut Tx,
    order: &Order,
    payment_key: &str,
    details: &Value,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO payments (payment_key, order_id, rail, details, verified_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(payment_key)
    .bind(&order.id)
    .bind(order.rail.kind().as_str())
    .bind(details.to_string())
    .bind(now);
    Ok(changed(tx, query).await? == 1)
}

/// The payments held under `payment_key` or for `order_id`, as (payment
/// key, order id).
pub(crate) async fn payments_of(
    tx: &mut Tx,
    payment_key: &str,
    order_id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT payment_key, order_id FROM payments WHERE payment_key = $1 OR order_id = $2",
    )
    .bind(payment_key)
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await
}

/// The order the payment `payment_key` paid, if it is held.
pub(crate) async fn paid_order(
    tx: &mut Tx,
    payment_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT order_id FROM payments WHERE payment_key = $1")
        .bind(payment_key)
        .fetch_optional(&mut **tx)
        .await
}

/// What a paid order's confirmation shows of its payment.
pub(crate) struct PaymentRecord {
    /// `evm:<tx hash>` or `invoice:<order id>`.
    pub key: String,
    /// The transaction, for a payment on chain.
    pub tx_hash: Option<String>,
    /// The invoice reference, for an invoice marked paid.
    pub reference: Option<String>,
}

/// The payment of `order_id`, if it is paid.
pub(crate) async fn payment(tx: &mut Tx, order_id: &str) -> Result<Option<PaymentRecord>, DbError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT payment_key, details FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((key, details)) = row else {
        return Ok(None);
    };
    let details: Value = serde_json::from_str(&details)
        .map_err(|_| DbError::inconsistent("payment", "stored details are malformed"))?;
    let text = |name: &str| details[name].as_str().map(str::to_string);
    Ok(Some(PaymentRecord {
        key,
        tx_hash: text("txHash"),
        reference: text("reference"),
    }))
}

/// Stores the signed receipts (JSON text, v1 and v2) of `order_id`.
pub(crate) async fn insert_receipt(
    tx: &mut Tx,
    order_id: &str,
    receipt: &str,
    receipt_v2: &str,
    issued_at: &str,
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO receipts (order_id, receipt, receipt_v2, issued_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(receipt)
    .bind(receipt_v2)
    .bind(issued_at);
    changed(tx, query).await?;
    Ok(())
}

/// The v2 receipt (JSON text) of `order_id`: `None` when the order is not
/// paid, `Some(None)` for a receipt issued before v2 receipts were.
pub(crate) async fn receipt_v2(
    tx: &mut Tx,
    order_id: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar("SELECT receipt_v2 FROM receipts WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await
}

/// The signed receipt (JSON text) of `order_id`, once paid.
pub(crate) async fn receipt(tx: &mut Tx, order_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT receipt FROM receipts WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await
}

/// Stores `grant`; `false` when the order has a grant already.
pub(crate) async fn insert_grant(tx: &mut Tx, grant: &GrantRow) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO grants (order_id, object_prefix, files, entries, granted_by, granted_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&grant.order_id)
    .bind(&grant.object_prefix)
    .bind(serde_json::to_string(&grant.files).unwrap_or_default())
    .bind(grant.entries as i64)
    .bind(&grant.granted_by)
    .bind(&grant.granted_at);
    Ok(changed(tx, query).await? == 1)
}

/// Marks paid order `id` granted at `now`; `false` when it is not paid.
pub(crate) async fn mark_granted(tx: &mut Tx, id: &str, now: &str) -> Result<bool, sqlx::Error> {
    let query = sqlx::query(
        "UPDATE orders SET state = 'granted', granted_at = $1 WHERE id = $2 AND state = 'paid'",
    )
    .bind(now)
    .bind(id);
    Ok(changed(tx, query).await? == 1)
}

/// The grant of `order_id`, if granted.
pub(crate) async fn grant(tx: &mut Tx, order_id: &str) -> Result<Option<GrantRow>, DbError> {
    let row = sqlx::query(
        "SELECT order_id, object_prefix, files, entries, granted_by, granted_at \
         FROM grants WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let files: Vec<String> = serde_json::from_str(&r.try_get::<String, _>(2)?)
        .map_err(|_| DbError::inconsistent("grant", "stored file list is malformed"))?;
    Ok(Some(GrantRow {
        order_id: r.try_get(0)?,
        object_prefix: r.try_get(1)?,
        files,
        entries: r.try_get::<i64, _>(3)?.max(0) as u64,
        granted_by: r.try_get(4)?,
        granted_at: r.try_get(5)?,
    }))
}

/// A bearer link as stored (its token only as a hash).
pub(crate) struct LinkRow<'a> {
    /// SHA-256 of the token, hex.
    pub token_hash: &'a str,
    /// `lnk_…`.
    pub id: &'a str,
    /// The order it opens.
    pub order_id: &'a str,
    /// What it opens.
    pub purpose: LinkPurpose,
    /// Who made it.
    pub created_by: &'a str,
    /// When (UTC).
    pub created_at: &'a str,
}

/// Stores a new link.
pub(crate) async fn insert_link(tx: &mut Tx, link: &LinkRow<'_>) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "INSERT INTO order_links (token_hash, id, order_id, purpose, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(link.token_hash)
    .bind(link.id)
    .bind(link.order_id)
    .bind(link.purpose.as_str())
    .bind(link.created_by)
    .bind(link.created_at);
    changed(tx, query).await?;
    Ok(())
}

/// Whether the link of `token_hash` is live and opens order `order_id`
/// for `purpose`.
pub(crate) async fn link_opens(
    tx: &mut Tx,
    token_hash: &str,
    order_id: &str,
    purpose: LinkPurpose,
) -> Result<bool, sqlx::Error> {
    let link: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT order_id, purpose, revoked_at FROM order_links WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(link.is_some_and(|(order, opens, revoked_at)| {
        order == order_id && opens == purpose.as_str() && revoked_at.is_none()
    }))
}

/// Whether link `id` of order `order_id` made by `created_by` is revoked;
/// `None` if there is no such link.
pub(crate) async fn link_revoked(
    tx: &mut Tx,
    id: &str,
    order_id: &str,
    created_by: &str,
) -> Result<Option<bool>, sqlx::Error> {
    let revoked_at: Option<Option<String>> = sqlx::query_scalar(
        "SELECT revoked_at FROM order_links WHERE id = $1 AND order_id = $2 AND created_by = $3",
    )
    .bind(id)
    .bind(order_id)
    .bind(created_by)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(revoked_at.map(|at| at.is_some()))
}

/// Revokes link `id` at `now`.
pub(crate) async fn revoke_link(tx: &mut Tx, id: &str, now: &str) -> Result<(), sqlx::Error> {
    let query = sqlx::query("UPDATE order_links SET revoked_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id);
    changed(tx, query).await?;
    Ok(())
}
