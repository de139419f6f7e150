//! Checking claimed payments: what the chain says of a claimed
//! transaction (`ask_chain`), recording it (`settle`: the payment and
//! the order paid, or the claim with what it waits for or why it is
//! refused), and the watcher that checks open claims in the background
//! ([`watch_once`], [`spawn_claim_watcher`]).
//!
//! The watcher checks at most `--claims-per-sweep` claims a pass, each
//! oldest-checked first, claims of transactions the node knows before
//! claims of unknown ones (which keep a quarter of the pass): a claim
//! waits behind others for a bounded number of passes, and hashes nobody
//! sent cannot hold up a real payment.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::claims::{self, Claim, ClaimState, Observation};
use super::db;
use super::payment::{expected, record_payment};
use super::Order;
use crate::error::{ApiError, ApiResult};
use crate::evm::{PaymentError, PaymentStatus, TxHash, VerifiedPayment};
use crate::listings::{audit_details, Rail};
use crate::server::AppState;

/// What a claim waits for once the node knows its transaction.
pub(crate) fn waiting_for(confirmations: u64, required: u64) -> String {
    if confirmations == 0 {
        return "transaction not yet mined".to_string();
    }
    let more = required.saturating_sub(confirmations);
    let s = if more == 1 { "" } else { "s" };
    format!("waiting for {more} more confirmation{s}")
}

/// What a claim of a transaction the node does not know waits for.
pub(crate) const NOT_KNOWN_YET: &str = "transaction not yet known to the node";

/// What the chain says of a claimed transaction.
pub(crate) enum Verdict {
    /// Valid and deep enough.
    Paid(VerifiedPayment),
    /// Known to the node and valid so far.
    Pending { confirmations: u64, required: u64 },
    /// The node does not know it.
    Unknown { required: u64 },
    /// It does not pay the order (final).
    Refused(PaymentError),
    /// The node did not answer (logged).
    Silent,
}

impl Verdict {
    /// The node knows the transaction as a valid payment of the order
    /// (paid, or on its way): only the buyer can make one.
    pub(crate) fn shows_payment(&self) -> bool {
        matches!(self, Verdict::Paid(_) | Verdict::Pending { .. })
    }
}

/// Asks the order's chain about `tx_hash`. An error only when the order
/// cannot be checked here at all (its chain is not configured, its stored
/// fields are malformed).
pub(crate) async fn ask_chain(
    state: &AppState,
    order: &Order,
    tx_hash: TxHash,
) -> ApiResult<Verdict> {
    let expected = expected(state, order, tx_hash)?;
    let rpc = state.evm.get(&expected.chain_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("chain"),
            format!(
                "this server does not verify payments on chain {}",
                expected.chain_id
            ),
        )
    })?;
    Ok(match rpc.check_payment(&expected).await {
        Ok(PaymentStatus::Confirmed(v)) => Verdict::Paid(v),
        Ok(PaymentStatus::Pending {
            confirmations,
            required,
        }) => Verdict::Pending {
            confirmations,
            required,
        },
        Ok(PaymentStatus::Unknown { required }) => Verdict::Unknown { required },
        Err(PaymentError::Rpc(e)) => {
            tracing::warn!(order = %order.id, tx = %tx_hash, "payment check: {e}");
            Verdict::Silent
        }
        Err(e) => Verdict::Refused(e),
    })
}

/// What recording a verdict came to.
pub(crate) enum Settled {
    /// The order is paid (now or before, by this transaction).
    Paid,
    /// The claim is open: it waits for `claim.reason`.
    Waiting {
        claim: Claim,
        confirmations: u64,
        required: u64,
    },
    /// The transaction does not pay the order: the refusal to answer.
    Refused(ApiError),
    /// The claim was unknown too long and expired.
    Expired(Claim),
    /// Not recorded: the order already has `max` open claims of
    /// transactions the node does not know.
    Capped { max: usize },
    /// The node did not answer; nothing changed but the time of the
    /// attempt.
    Silent,
}

/// How [`settle`] may treat a claim.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SettleRules {
    /// Expire an unknown claim checked enough and old enough (the
    /// watcher).
    pub may_expire: bool,
    /// Refuse a new unknown claim past this many per order (a posted
    /// proof).
    pub cap: Option<usize>,
}

fn chain_of(order: &Order) -> u64 {
    match &order.rail {
        Rail::Evm { chain_id, .. } => *chain_id,
        Rail::Invoice { .. } => 0,
    }
}

/// Records what the chain said of `tx_hash` for `order`: the payment (and
/// the order paid), or the claim with what it waits for or why it is
/// refused. `actor` is audited.
pub(crate) async fn settle(
    state: &AppState,
    order: &Order,
    tx_hash: TxHash,
    verdict: Verdict,
    actor: &str,
    rules: SettleRules,
) -> ApiResult<Settled> {
    let hash_text = tx_hash.to_string();
    let chain_id = chain_of(order);
    match verdict {
        Verdict::Paid(v) => {
            let mut payment = json!({
                "txHash": hash_text,
                "chainId": chain_id,
                "payer": v.from.to_string(),
                "payTo": v.to.to_string(),
                "token": v.token.map(|t| t.to_string()),
                "amount": v.amount.to_string(),
                "blockNumber": v.block_number,
                "blockHash": v.block_hash,
                "minedAt": v.mined_at.map(|t| sealstream_core::utc::format_seconds(t as i64)),
                "confirmations": v.confirmations,
            });
            if let (Some(release_after), Ok(Some(escrow))) =
                (v.release_after, super::payment::escrow_of(state, order))
            {
                payment["escrow"] = json!({
                    "contract": escrow.contract.to_string(),
                    "orderKey": format!("0x{}", hex::encode(escrow.order_key)),
                    "releaseAfter": release_after,
                });
            }
            let mut tx = state.store.begin().await?;
            let current = db::order(&mut tx, &order.id)
                .await?
                .ok_or_else(|| super::not_found(&order.id))?;
            let seen = Observation {
                state: ClaimState::Confirmed,
                reason: None,
                confirmations: Some(v.confirmations),
                answered: true,
            };
            claims::record(&mut tx, &order.id, &hash_text, chain_id, &seen).await?;
            let key = format!("evm:{hash_text}");
            match record_payment(state, &mut tx, &current, &key, &payment, actor).await {
                Ok(_) => {}
                Err(e) if e.status == StatusCode::CONFLICT => {
                    // The transaction paid another order, or this order was
                    // paid otherwise: final for this claim.
                    drop(tx);
                    let mut tx = state.store.begin().await?;
                    let seen = Observation {
                        state: ClaimState::Rejected,
                        reason: Some(e.message.clone()),
                        confirmations: Some(v.confirmations),
                        answered: true,
                    };
                    claims::record(&mut tx, &order.id, &hash_text, chain_id, &seen).await?;
                    tx.commit().await?;
                    tracing::warn!(order = %order.id, tx = %hash_text, "payment claim refused: {}", e.message);
                    return Ok(Settled::Refused(e));
                }
                Err(e) => return Err(e),
            }
            tx.commit().await?;
            tracing::info!(order = %order.id, tx = %hash_text, amount = %order.amount, "payment confirmed, receipt issued");
            crate::wake::send(state, crate::wake::Signal::Grant);
            if let Some(sub) = &order.subscription_id {
                crate::wake::send(state, crate::wake::Signal::Changed(sub.clone()));
            }
            Ok(Settled::Paid)
        }
        Verdict::Pending {
            confirmations,
            required,
        } => {
            let reason = waiting_for(confirmations, required);
            let mut tx = state.store.begin().await?;
            let before = db::claim(&mut tx, &order.id, &hash_text).await?;
            let seen = Observation {
                state: ClaimState::Pending,
                reason: Some(reason.clone()),
                confirmations: Some(confirmations),
                answered: true,
            };
            let claim = claims::record(&mut tx, &order.id, &hash_text, chain_id, &seen).await?;
            if before.map(|c| c.state) != Some(ClaimState::Pending) {
                let details = audit_details(json!({
                    "txHash": hash_text,
                    "confirmations": confirmations,
                    "required": required,
                }));
                crate::audit::append(&mut tx, actor, "payment.claim", &order.id, &details).await?;
            }
            tx.commit().await?;
            tracing::info!(order = %order.id, tx = %hash_text, "payment claim pending: {reason}");
            Ok(Settled::Waiting {
                claim,
                confirmations,
                required,
            })
        }
        Verdict::Unknown { required } => {
            let mut tx = state.store.begin().await?;
            if let Some(max) = rules.cap {
                let open_unknown = db::claim(&mut tx, &order.id, &hash_text)
                    .await?
                    .is_some_and(|c| c.state == ClaimState::Unknown);
                if !open_unknown && db::unknown_claims(&mut tx, &order.id).await? >= max as u64 {
                    return Ok(Settled::Capped { max });
                }
            }
            let seen = Observation {
                state: ClaimState::Unknown,
                reason: Some(NOT_KNOWN_YET.to_string()),
                confirmations: None,
                answered: true,
            };
            let claim = claims::record(&mut tx, &order.id, &hash_text, chain_id, &seen).await?;
            let expired = rules.may_expire
                && claims::expire_if_stale(
                    &mut tx,
                    &claim,
                    state.config.unknown_claim_ttl.as_secs(),
                )
                .await?;
            tx.commit().await?;
            if expired {
                tracing::warn!(
                    order = %order.id,
                    tx = %hash_text,
                    checks = claim.checks,
                    "payment claim expired: the node never knew the transaction"
                );
                return Ok(Settled::Expired(claim));
            }
            tracing::info!(order = %order.id, tx = %hash_text, "payment claim pending: {NOT_KNOWN_YET}");
            Ok(Settled::Waiting {
                claim,
                confirmations: 0,
                required,
            })
        }
        Verdict::Refused(e) => {
            let mut tx = state.store.begin().await?;
            let seen = Observation {
                state: ClaimState::Rejected,
                reason: Some(e.to_string()),
                confirmations: None,
                answered: true,
            };
            claims::record(&mut tx, &order.id, &hash_text, chain_id, &seen).await?;
            tx.commit().await?;
            tracing::warn!(order = %order.id, tx = %hash_text, "payment claim refused: {e}");
            Ok(Settled::Refused(ApiError::unprocessable(
                e.field(),
                e.to_string(),
            )))
        }
        Verdict::Silent => {
            let mut tx = state.store.begin().await?;
            if db::claim(&mut tx, &order.id, &hash_text).await?.is_some() {
                let seen = Observation {
                    state: ClaimState::Unknown,
                    reason: None,
                    confirmations: None,
                    answered: false,
                };
                claims::record(&mut tx, &order.id, &hash_text, chain_id, &seen).await?;
            }
            tx.commit().await?;
            Ok(Settled::Silent)
        }
    }
}

/// Runs [`watch_once`] every `every`, until the returned task is aborted.
pub fn spawn_claim_watcher(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let job = crate::lease::Job::PaymentWatcher;
            if !state.leases.leading(&state.store, job, every).await {
                continue;
            }
            if let Err(e) = watch_once(&state).await {
                tracing::warn!("payment watcher: {e}");
            }
        }
    })
}

/// One pass of the watcher over open claims (see [`watch_once`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Claims asked about on chain.
    pub checked: usize,
    /// Orders paid.
    pub paid: usize,
    /// Claims found not to pay their order.
    pub refused: usize,
    /// Unknown claims dropped.
    pub expired: usize,
    /// Checks the node did not answer.
    pub silent: usize,
}

/// One pass of the watcher: checks at most `--claims-per-sweep` open
/// claims, each oldest-checked first, so that no claim waits behind
/// others for more than a few sweeps. Claims of transactions the node
/// knows (`pending`: only the buyer can make one) go before claims of
/// unknown ones, which get at least a quarter of the pass when there are
/// any: bogus hashes cannot hold up a real payment. Unknown claims checked
/// at least 3 times and older than `--unknown-claim-ttl` expire. Closed
/// claims older than 7 days are deleted.
pub async fn watch_once(state: &AppState) -> ApiResult<Sweep> {
    let budget = state.config.claims_per_sweep.max(1);
    let mut tx = state.store.begin().await?;
    claims::tidy(&mut tx).await?;
    let pending = db::due_claims(&mut tx, ClaimState::Pending, budget).await?;
    let unknown = db::due_claims(&mut tx, ClaimState::Unknown, budget).await?;
    tx.commit().await?;
    let reserved = (budget / 4).max(1).min(unknown.len());
    let take_pending = pending.len().min(budget - reserved);
    let take_unknown = unknown.len().min(budget - take_pending);
    let mut sweep = Sweep::default();
    let mut paid: Vec<String> = Vec::new();
    let rules = SettleRules {
        may_expire: true,
        cap: None,
    };
    for (order, claim) in pending
        .into_iter()
        .take(take_pending)
        .chain(unknown.into_iter().take(take_unknown))
    {
        if paid.contains(&order.id) {
            continue;
        }
        let Ok(hash) = TxHash::parse(&claim.tx_hash, "txHash") else {
            tracing::warn!(order = %order.id, "payment watcher: a stored claim's hash is malformed");
            continue;
        };
        sweep.checked += 1;
        let verdict = match ask_chain(state, &order, hash).await {
            Ok(v) => v,
            Err(e) => {
                // The order cannot be checked here (its chain is no longer
                // configured): its claim moves to the back of the queue.
                tracing::warn!(order = %order.id, "payment watcher: {}", e.message);
                Verdict::Silent
            }
        };
        match settle(state, &order, hash, verdict, "payment-watcher", rules).await {
            Ok(Settled::Paid) => {
                sweep.paid += 1;
                paid.push(order.id.clone());
            }
            Ok(Settled::Refused(_)) => sweep.refused += 1,
            Ok(Settled::Expired(_)) => sweep.expired += 1,
            Ok(Settled::Silent) => sweep.silent += 1,
            Ok(Settled::Waiting { .. } | Settled::Capped { .. }) => {}
            Err(e) => {
                tracing::warn!(order = %order.id, tx = %hash, "payment watcher: {}", e.message)
            }
        }
    }
    if sweep != Sweep::default() {
        tracing::info!(
            checked = sweep.checked,
            paid = sweep.paid,
            refused = sweep.refused,
            expired = sweep.expired,
            silent = sweep.silent,
            "payment watcher pass"
        );
    }
    Ok(sweep)
}
