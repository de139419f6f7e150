//! The receipt logs ([`sealstream_api::receipts::log`]): every receipt the
//! market issues is appended, in the transaction that issues it, to the
//! market's log and to its seller's. The amount, currency and blinding of
//! each leaf stay in the database; what leaves it is signed tree heads,
//! period-total proofs (hashes and commitments, the totals and one summed
//! blinding), consistency paths and, to a receipt's own buyer and seller,
//! the receipt's opening.
//!
//! Appends and head signing are serialised per log (PostgreSQL: the log's
//! row `FOR UPDATE`; SQLite: the write lock every writing transaction
//! holds). A leaf's epoch is taken under that lock and never below the
//! log's last epoch, and signing a head raises the last epoch to the
//! head's time, so leaves are in epoch order and every leaf appended after
//! a head lies in an epoch at or after the head's `signedAt`: what a total
//! proof relies on when a period reaches the log's end.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use sealstream_api::receipts::log::{
    self as rlog, ConsistencyQuery, LeafOpening, LogConsistency, LogHead, LogLeaf, LogQuery,
    ReceiptInclusion, ReceiptLogs, SignedLogHead, SumNode, TotalProof, TotalQuery, MARKET_LOG,
};
use sealstream_api::receipts::SignedReceipt;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::server::AppState;
use crate::store::{changed, Tx};

/// The routes of the logs (the order's inclusion is under the orders').
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(sealstream_api::routes::RECEIPT_LOG_HEAD, get(head))
        .route(sealstream_api::routes::RECEIPT_LOG_TOTAL, get(total))
        .route(
            sealstream_api::routes::RECEIPT_LOG_CONSISTENCY,
            get(consistency),
        )
        .route(sealstream_api::routes::ORDER_RECEIPT_LOG, get(order_logs))
}

/// A log's row: its epoch length, size and last epoch.
struct LogRow {
    epoch_seconds: u64,
    size: u64,
    last_epoch: u64,
}

/// Creates `log` if it has no row yet (with the configured epoch) and
/// locks it for the rest of `tx`.
async fn lock(state: &AppState, tx: &mut Tx, log: &str) -> ApiResult<LogRow> {
    let epoch = state.config.receipt_log_epoch.as_secs().max(1) as i64;
    changed(
        tx,
        sqlx::query(
            "INSERT INTO receipt_logs (log_id, epoch_seconds, size, last_epoch) \
             VALUES ($1, $2, 0, 0) ON CONFLICT (log_id) DO NOTHING",
        )
        .bind(log)
        .bind(epoch),
    )
    .await?;
    let sql = if crate::store::is_postgres(tx) {
        "SELECT epoch_seconds, size, last_epoch FROM receipt_logs WHERE log_id = $1 FOR UPDATE"
    } else {
        "SELECT epoch_seconds, size, last_epoch FROM receipt_logs WHERE log_id = $1"
    };
    let (epoch_seconds, size, last_epoch): (i64, i64, i64) =
        sqlx::query_as(sql).bind(log).fetch_one(&mut **tx).await?;
    Ok(LogRow {
        epoch_seconds: epoch_seconds.max(1) as u64,
        size: size.max(0) as u64,
        last_epoch: last_epoch.max(0) as u64,
    })
}

/// Locks the logs a receipt of `seller_did` goes to (the market's first,
/// then the seller's: one order for every transaction) and returns the
/// time the receipt is issued at, read under the locks.
pub(crate) async fn begin_issue(
    state: &AppState,
    tx: &mut Tx,
    seller_did: &str,
) -> ApiResult<String> {
    lock(state, tx, MARKET_LOG).await?;
    lock(state, tx, &rlog::seller_log(seller_did)).await?;
    Ok(sealstream_core::utc::now())
}

/// Appends `receipt` (issued at `issued_at`, after [`begin_issue`]) to the
/// market's log and its seller's.
pub(crate) async fn append(
    state: &AppState,
    tx: &mut Tx,
    receipt: &SignedReceipt,
    issued_at: &str,
) -> ApiResult<()> {
    let r = &receipt.receipt;
    let currency = rlog::currency_of_rail(&r.rail, r.decimals)
        .ok_or_else(|| ApiError::internal("receipt log", "the receipt's rail names no currency"))?;
    let amount: u128 = r
        .amount
        .parse()
        .map_err(|_| ApiError::internal("receipt log", "amount beyond 2^128 base units"))?;
    let digest = rlog::receipt_digest(receipt).map_err(|e| ApiError::internal("receipt log", e))?;
    let unix = sealstream_core::utc::parse_seconds(issued_at).unwrap_or(0);
    for log in [MARKET_LOG.to_string(), rlog::seller_log(&r.seller_did)] {
        let row = lock(state, tx, &log).await?;
        let epoch = rlog::epoch_of(unix, row.epoch_seconds).max(row.last_epoch);
        let blinding = rlog::random_blinding(&mut rand::rngs::OsRng);
        let commitment = rlog::commit(&currency, amount, &blinding).compress();
        changed(
            tx,
            sqlx::query(
                "INSERT INTO receipt_log_leaves (log_id, idx, order_id, epoch, receipt_digest, \
                 commitment, currency, amount, blinding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&log)
            .bind(row.size as i64)
            .bind(&r.order_id)
            .bind(epoch as i64)
            .bind(hex::encode(digest))
            .bind(hex::encode(commitment.as_bytes()))
            .bind(&currency)
            .bind(&r.amount)
            .bind(hex::encode(blinding.as_bytes())),
        )
        .await?;
        changed(
            tx,
            sqlx::query("UPDATE receipt_logs SET size = $1, last_epoch = $2 WHERE log_id = $3")
                .bind(row.size as i64 + 1)
                .bind(epoch as i64)
                .bind(&log),
        )
        .await?;
    }
    Ok(())
}

/// Every leaf of `log` with its opening, in order.
async fn leaves(tx: &mut Tx, log: &str) -> ApiResult<Vec<(String, LeafOpening)>> {
    type Row = (String, i64, String, String, String, String, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT order_id, epoch, receipt_digest, commitment, currency, amount, blinding \
         FROM receipt_log_leaves WHERE log_id = $1 ORDER BY idx",
    )
    .bind(log)
    .fetch_all(&mut **tx)
    .await?;
    let bad = |what: &str| ApiError::internal("receipt log", format!("stored leaf: {what}"));
    let hex32 = |text: &str| -> ApiResult<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| bad("not hex"))?;
        Ok(out)
    };
    rows.into_iter()
        .map(
            |(order_id, epoch, digest, commitment, currency, amount, blinding)| {
                let blinding = Option::from(
                    curve25519_dalek::scalar::Scalar::from_canonical_bytes(hex32(&blinding)?),
                )
                .ok_or_else(|| bad("blinding"))?;
                Ok((
                    order_id,
                    LeafOpening {
                        leaf: LogLeaf {
                            epoch: epoch.max(0) as u64,
                            receipt_digest: hex32(&digest)?,
                            commitment: curve25519_dalek::ristretto::CompressedRistretto(hex32(
                                &commitment,
                            )?),
                        },
                        currency,
                        amount: amount.parse().map_err(|_| bad("amount"))?,
                        blinding,
                    },
                ))
            },
        )
        .collect()
}

/// The nodes of `openings`' leaves.
fn nodes(openings: &[LeafOpening]) -> ApiResult<Vec<SumNode>> {
    openings
        .iter()
        .map(|o| {
            o.leaf.node().ok_or_else(|| {
                ApiError::internal("receipt log", "stored commitment is not a point")
            })
        })
        .collect()
}

/// The current state of `log`, locked: its leaves and a freshly signed
/// head over them (the log's last epoch raised to the head's time).
async fn signed_state(
    state: &AppState,
    tx: &mut Tx,
    log: &str,
) -> ApiResult<(Vec<(String, LeafOpening)>, Vec<SumNode>, SignedLogHead)> {
    let row = lock(state, tx, log).await?;
    let all = leaves(tx, log).await?;
    if all.len() as u64 != row.size {
        return Err(ApiError::internal(
            "receipt log",
            "size and leaves disagree",
        ));
    }
    let openings: Vec<LeafOpening> = all.iter().map(|(_, o)| o.clone()).collect();
    let nodes = nodes(&openings)?;
    let now = sealstream_core::utc::now();
    let now_epoch = rlog::epoch_of(
        sealstream_core::utc::parse_seconds(&now).unwrap_or(0),
        row.epoch_seconds,
    );
    changed(
        tx,
        sqlx::query("UPDATE receipt_logs SET last_epoch = $1 WHERE log_id = $2")
            .bind(now_epoch.max(row.last_epoch) as i64)
            .bind(log),
    )
    .await?;
    let head = LogHead::of(log, &nodes, row.epoch_seconds, &now)
        .sign(&state.receipt_key)
        .map_err(|e| ApiError::internal("receipt log", e))?;
    Ok((all, nodes, head))
}

/// A proof of `log`'s totals over `[from, to)` against a head signed now,
/// inside `tx` (which the caller commits). A period that is not aligned,
/// reversed or not over is a 400 naming `from` or `to`.
pub(crate) async fn prove_total(
    state: &AppState,
    tx: &mut Tx,
    log: &str,
    from: &str,
    to: &str,
) -> ApiResult<TotalProof> {
    let (all, _, head) = signed_state(state, tx, log).await?;
    rlog::period_epochs(from, to, head.head.epoch_seconds)
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))?;
    let openings: Vec<LeafOpening> = all.into_iter().map(|(_, o)| o).collect();
    TotalProof::prove(head, &openings, from, to)
        .map_err(|e| ApiError::bad_request(&e.field, e.constraint))
}

/// The log a request names, if the caller may read it: `market` for
/// admins and auditors; `seller` (the default) for the caller's own;
/// `seller:<did>` for that seller or admins and auditors.
fn readable_log(caller: &Principal, log: Option<&str>) -> ApiResult<String> {
    let staff = caller.has(Role::Admin) || caller.has(Role::Auditor);
    match log.unwrap_or("seller") {
        "seller" => {
            if !caller.owner_access(&caller.did)? {
                return Err(ApiError::forbidden(format!(
                    "{} is not an owner: it has no sales log",
                    caller.did
                )));
            }
            Ok(rlog::seller_log(&caller.did))
        }
        MARKET_LOG if staff => Ok(MARKET_LOG.into()),
        MARKET_LOG => Err(ApiError::forbidden(
            "the market's log is for admins and auditors",
        )),
        other => {
            let did = other
                .strip_prefix("seller:")
                .filter(|_| rlog::is_log_name(other));
            let Some(did) = did else {
                return Err(ApiError::bad_request(
                    "log",
                    "expected market, seller or seller:<did>",
                ));
            };
            if staff || caller.owner_access(did)? {
                Ok(other.into())
            } else {
                Err(ApiError::forbidden(format!(
                    "the sales log of {did} is for that seller, admins and auditors"
                )))
            }
        }
    }
}

fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// A receipt log's tree head, signed now with the receipt key
/// (`sealstream.receipt-log-head.v1`).
#[utoipa::path(get, path = sealstream_api::routes::RECEIPT_LOG_HEAD, tag = "receipt log",
    params(LogQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The signed head `{schemaVersion, head: {log, treeSize, rootHash, rootCommitment, epochSeconds, signedAt}, signature}`"),
        (status = 400, description = "Not a log's name", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the caller's log, and not an admin or auditor", body = crate::openapi::ErrorBody)))]
pub async fn head(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    let log = readable_log(&caller, q.log.as_deref())?;
    let mut tx = state.store.begin().await?;
    let (_, _, head) = signed_state(&state, &mut tx, &log).await?;
    tx.commit().await?;
    Ok(json_text(head.to_json_pretty()))
}

/// A proof of the totals per currency of the receipts appended to a log in
/// a period (`sealstream.receipt-log-total.v1`): no amount, buyer, seller
/// or order in it. Audited (`receipt_log.total`).
#[utoipa::path(get, path = sealstream_api::routes::RECEIPT_LOG_TOTAL, tag = "receipt log",
    params(TotalQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The proof `{schemaVersion, head, period, range, items, totals, blinding}`; verify with `sealstream market audit verify-total`"),
        (status = 400, description = "A period not on epoch boundaries, reversed, or not over yet (field `from` or `to`), or not a log's name", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the caller's log, and not an admin or auditor", body = crate::openapi::ErrorBody)))]
pub async fn total(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(q): ApiQuery<TotalQuery>,
) -> ApiResult<Response> {
    let log = readable_log(&caller, q.log.as_deref())?;
    let mut tx = state.store.begin().await?;
    let proof = prove_total(&state, &mut tx, &log, &q.from, &q.to).await?;
    let details = crate::auth::audit_details(&json!({
        "log": log,
        "from": q.from,
        "to": q.to,
        "receipts": proof.end - proof.start,
        "treeSize": proof.head.head.tree_size,
    }));
    crate::audit::append(&mut tx, &caller.did, "receipt_log.total", &log, &details).await?;
    tx.commit().await?;
    Ok(json_text(proof.to_json_pretty()))
}

/// The consistency path from the log at an older size to its current
/// head: `{head, path}` (RFC 9162 §2.1.4 over the log's nodes).
#[utoipa::path(get, path = sealstream_api::routes::RECEIPT_LOG_CONSISTENCY, tag = "receipt log",
    params(ConsistencyQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "`{head, path}`: the current signed head and the path from `size`; with the older head, `sealstream market audit log-consistency` verifies it"),
        (status = 400, description = "`size` larger than the log", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not the caller's log, and not an admin or auditor", body = crate::openapi::ErrorBody)))]
pub async fn consistency(
    State(state): State<AppState>,
    caller: Principal,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> ApiResult<Response> {
    let log = readable_log(&caller, q.log.as_deref())?;
    let mut tx = state.store.begin().await?;
    let (_, nodes, head) = signed_state(&state, &mut tx, &log).await?;
    tx.commit().await?;
    if q.size > head.head.tree_size {
        return Err(ApiError::bad_request(
            "size",
            format!("the log has {} receipts", head.head.tree_size),
        ));
    }
    // The older head only supplies its size here; the client holds it.
    let mut old = head.clone();
    old.head.tree_size = q.size;
    let proof = LogConsistency::prove(old, head, &nodes)
        .ok_or_else(|| ApiError::internal("receipt log", "no consistency path"))?;
    Ok(json_text(sealstream_core::json::write::to_python_pretty(
        &proof.extension_json(),
    )))
}

/// A receipt's place in the logs, with its opening: in the market's log to
/// its buyer and seller, and in the seller's log to the seller. With it the
/// holder checks that the market committed the receipt's own amount
/// (`sealstream market order receipt-log`).
#[utoipa::path(get, path = sealstream_api::routes::ORDER_RECEIPT_LOG, tag = "receipt log",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "`{market, seller}`: each `sealstream.receipt-log-inclusion.v1` (`seller` null but to the seller)"),
        (status = 404, description = "No such order for the caller, or no receipt in the log (not paid, or paid before the log existed)", body = crate::openapi::ErrorBody)))]
pub async fn order_logs(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let order = crate::orders::party_order(&mut tx, &id, &caller).await?;
    let mut logs = vec![MARKET_LOG.to_string()];
    let seller = caller.owner_access(&order.seller_did)?;
    if seller {
        logs.push(rlog::seller_log(&order.seller_did));
    }
    let mut found = Vec::new();
    for log in &logs {
        let (all, nodes, head) = signed_state(&state, &mut tx, log).await?;
        let Some(index) = all.iter().position(|(o, _)| *o == id) else {
            return Err(ApiError::not_found(format!(
                "order {id} has no receipt in the receipt log"
            )));
        };
        let opening = &all[index].1;
        let path = sealstream_core::merkle::inclusion_proof(&nodes, index)
            .ok_or_else(|| ApiError::internal("receipt log", "no audit path"))?;
        found.push(ReceiptInclusion {
            head,
            index: index as u64,
            leaf: opening.leaf,
            currency: opening.currency.clone(),
            amount: opening.amount.to_string(),
            blinding: opening.blinding,
            path,
        });
    }
    tx.commit().await?;
    let mut found = found.into_iter();
    let answer = ReceiptLogs {
        market: found.next().expect("the market's log"),
        seller: found.next(),
    };
    Ok(json_text(sealstream_core::json::write::to_python_pretty(
        &answer.to_json(),
    )))
}
