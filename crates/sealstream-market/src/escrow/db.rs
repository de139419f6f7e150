//! The `escrows` table (migration 0017): one row per escrowed order.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::{changed, DbError, Tx};
use sealstream_api::disputes::{EscrowState, EscrowView};

/// An escrow as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Escrow {
    pub order_id: String,
    pub rail: String,
    pub chain_id: Option<u64>,
    pub contract: Option<String>,
    pub order_key: String,
    pub amount: String,
    pub state: EscrowState,
    pub release_after: u64,
    pub deposit_tx: Option<String>,
    pub evidence: Option<String>,
    pub evidence_hash: Option<String>,
    pub evidence_valid: Option<bool>,
    pub evidence_reason: Option<String>,
    pub to_buyer: Option<String>,
    pub to_seller: Option<String>,
    pub decided_by: Option<String>,
    pub settle_tx: Option<String>,
}

const COLUMNS: &str = "order_id, rail, chain_id, contract, order_key, amount, state, \
    release_after, deposit_tx, evidence, evidence_hash, evidence_valid, evidence_reason, \
    to_buyer, to_seller, decided_by, settle_tx";

fn non_negative(n: i64, what: &'static str) -> Result<u64, DbError> {
    u64::try_from(n).map_err(|_| DbError::inconsistent("escrow", format!("negative {what}")))
}

fn escrow_of(r: &AnyRow) -> Result<Escrow, DbError> {
    let state: String = r.try_get(6)?;
    Ok(Escrow {
        order_id: r.try_get(0)?,
        rail: r.try_get(1)?,
        chain_id: r
            .try_get::<Option<i64>, _>(2)?
            .map(|n| non_negative(n, "chain id"))
            .transpose()?,
        contract: r.try_get(3)?,
        order_key: r.try_get(4)?,
        amount: r.try_get(5)?,
        state: EscrowState::parse(&state)
            .ok_or_else(|| DbError::inconsistent("escrow", "stored state is malformed"))?,
        release_after: non_negative(r.try_get(7)?, "release time")?,
        deposit_tx: r.try_get(8)?,
        evidence: r.try_get(9)?,
        evidence_hash: r.try_get(10)?,
        evidence_valid: r.try_get::<Option<i64>, _>(11)?.map(|v| v == 1),
        evidence_reason: r.try_get(12)?,
        to_buyer: r.try_get(13)?,
        to_seller: r.try_get(14)?,
        decided_by: r.try_get(15)?,
        settle_tx: r.try_get(16)?,
    })
}

impl Escrow {
    /// As the API shows it.
    pub(crate) fn view(&self) -> EscrowView {
        EscrowView {
            order_id: self.order_id.clone(),
            state: self.state,
            amount: self.amount.clone(),
            contract: self.contract.clone(),
            order_key: self.order_key.clone(),
            release_after: self.release_after,
            evidence_hash: self.evidence_hash.clone(),
            evidence_valid: self.evidence_valid,
            evidence_reason: self.evidence_reason.clone(),
            to_buyer: self.to_buyer.clone(),
            to_seller: self.to_seller.clone(),
            settle_tx: self.settle_tx.clone(),
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records a held escrow (the payment was just verified); `false` when the
/// order already has one.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_held(
    tx: &mut Tx,
    order_id: &str,
    chain_id: u64,
    contract: &str,
    order_key: &str,
    amount: &str,
    release_after: u64,
    deposit_tx: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let q = sqlx::query(
        "INSERT INTO escrows (order_id, rail, chain_id, contract, order_key, amount, state, \
         release_after, deposit_tx, created_at, updated_at) \
         VALUES ($1, 'evm', $2, $3, $4, $5, 'held', $6, $7, $8, $8) ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(to_i64(chain_id))
    .bind(contract)
    .bind(order_key)
    .bind(amount)
    .bind(to_i64(release_after))
    .bind(deposit_tx)
    .bind(now);
    Ok(changed(tx, q).await? == 1)
}

/// Records a held invoice escrow (the seller marked the order paid);
/// `false` when the order already has one.
pub(crate) async fn insert_held_invoice(
    tx: &mut Tx,
    order_id: &str,
    order_key: &str,
    amount: &str,
    release_after: u64,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let q = sqlx::query(
        "INSERT INTO escrows (order_id, rail, order_key, amount, state, release_after, \
         created_at, updated_at) VALUES ($1, 'invoice', $2, $3, 'held', $4, $5, $5) \
         ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(order_key)
    .bind(amount)
    .bind(to_i64(release_after))
    .bind(now);
    Ok(changed(tx, q).await? == 1)
}

/// Open invoice escrows (held or disputed), oldest deadline first, at
/// most `limit`.
pub(crate) async fn open_invoice(tx: &mut Tx, limit: usize) -> Result<Vec<Escrow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM escrows WHERE rail = 'invoice' \
         AND state IN ('held', 'disputed') ORDER BY release_after, order_id LIMIT $1"
    ))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(escrow_of).collect()
}

/// The escrow of `order_id`, if any.
pub(crate) async fn escrow(tx: &mut Tx, order_id: &str) -> Result<Option<Escrow>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM escrows WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| escrow_of(&r)).transpose()
}

/// Open escrows (held or disputed) on `chain_id`, oldest deadline first,
/// at most `limit`.
pub(crate) async fn open_on_chain(
    tx: &mut Tx,
    chain_id: u64,
    limit: usize,
) -> Result<Vec<Escrow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM escrows WHERE rail = 'evm' AND chain_id = $1 \
         AND state IN ('held', 'disputed') ORDER BY release_after, order_id LIMIT $2"
    ))
    .bind(to_i64(chain_id))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(escrow_of).collect()
}

/// Stores the buyer's evidence and the checker's verdict; the escrow
/// becomes disputed (only from held: `false` otherwise), with the
/// arbitration deadline `decide_by` when the market keeps it (invoice;
/// an EVM deal's comes from the chain).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn dispute(
    tx: &mut Tx,
    order_id: &str,
    evidence: &str,
    evidence_hash: &str,
    valid: bool,
    reason: &str,
    decide_by: Option<u64>,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let q = sqlx::query(
        "UPDATE escrows SET state = 'disputed', evidence = $2, evidence_hash = $3, \
         evidence_valid = $4, evidence_reason = $5, updated_at = $6, \
         release_after = COALESCE($7, release_after) \
         WHERE order_id = $1 AND state = 'held'",
    )
    .bind(order_id)
    .bind(evidence)
    .bind(evidence_hash)
    .bind(i64::from(valid))
    .bind(reason)
    .bind(now)
    .bind(decide_by.map(to_i64));
    Ok(changed(tx, q).await? == 1)
}

/// Records the deal's deadline as the chain has it (a dispute on chain
/// moves it to the arbitration deadline).
pub(crate) async fn set_release_after(
    tx: &mut Tx,
    order_id: &str,
    release_after: u64,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let q = sqlx::query(
        "UPDATE escrows SET release_after = $2, updated_at = $3 \
         WHERE order_id = $1 AND release_after <> $2",
    )
    .bind(order_id)
    .bind(to_i64(release_after))
    .bind(now);
    Ok(changed(tx, q).await? == 1)
}

/// The escrow is paid to the seller (from held or disputed).
pub(crate) async fn released(
    tx: &mut Tx,
    order_id: &str,
    to_seller: &str,
    settle_tx: Option<&str>,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let q = sqlx::query(
        "UPDATE escrows SET state = 'released', to_buyer = '0', to_seller = $2, \
         settle_tx = $3, updated_at = $4 WHERE order_id = $1 AND state IN ('held', 'disputed')",
    )
    .bind(order_id)
    .bind(to_seller)
    .bind(settle_tx)
    .bind(now);
    Ok(changed(tx, q).await? == 1)
}

/// The dispute is decided: `to_buyer` back, `to_seller` on.
pub(crate) async fn resolved(
    tx: &mut Tx,
    order_id: &str,
    to_buyer: &str,
    to_seller: &str,
    decided_by: &str,
    settle_tx: Option<&str>,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let q = sqlx::query(
        "UPDATE escrows SET state = 'resolved', to_buyer = $2, to_seller = $3, decided_by = $4, \
         settle_tx = $5, updated_at = $6 WHERE order_id = $1 AND state = 'disputed'",
    )
    .bind(order_id)
    .bind(to_buyer)
    .bind(to_seller)
    .bind(decided_by)
    .bind(settle_tx)
    .bind(now);
    Ok(changed(tx, q).await? == 1)
}
