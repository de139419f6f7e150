//! Payment claims: each transaction anyone posted as paying an order,
//! kept on its own row of `payment_claims` (migration 0010) with what its
//! last check found.
//!
//! A claim binds nothing: the order is paid only when a check finds the
//! transaction valid and deep enough ([`super::payment`]). Claims are kept
//! apart so that a second claim (anyone may post one: the proof URL takes
//! no credentials) never hides the first, and each says what it waits for.
//!
//! - **Open** claims are `unknown` (the node does not know the
//!   transaction) and `pending` (known and valid so far: not mined, or not
//!   deep enough). The watcher checks them oldest-checked first
//!   (`check_seq`), `pending` ones before `unknown` ones.
//! - An `unknown` claim **expires** once the watcher has checked it at
//!   least [`UNKNOWN_MIN_CHECKS`] times and it is older than
//!   `--unknown-claim-ttl`: a hash nobody sent stays unknown for ever.
//! - **Closed** claims (`confirmed`, `rejected`, `expired`, `superseded`)
//!   are shown, never checked again, and deleted
//!   [`CLOSED_RETENTION_SECS`] after their last check.

use sqlx::{Any, Transaction};

use super::db;
use crate::error::{ApiError, ApiResult};

/// Checks by the watcher an unknown claim gets before it may expire
/// (the claim's own post counts as one).
pub const UNKNOWN_MIN_CHECKS: u64 = 3;

/// How long closed claims are kept after their last check (7 days).
pub const CLOSED_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// Closed claims listed with an order (besides every open one).
pub const CLOSED_SHOWN: i64 = 10;

pub use sealstream_api::payments::{ClaimState, ClaimView};

/// A `payment_claims` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The order claimed to be paid.
    pub order_id: String,
    /// The transaction, `0x` + 64 lower-case hex digits.
    pub tx_hash: String,
    /// The order's chain.
    pub chain_id: u64,
    /// First posted (or posted again after it closed), UTC.
    pub claimed_at: String,
    /// Last asked about on chain, UTC.
    pub last_checked_at: Option<String>,
    /// Times asked about since `claimed_at` (the node's silence excluded).
    pub checks: u64,
    /// Where it is.
    pub state: ClaimState,
    /// What it waits for, or why it closed.
    pub reason: Option<String>,
    /// Confirmations at the last check, once mined.
    pub confirmations: Option<u64>,
}

/// What a check of a claim found, to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The claim's new state.
    pub state: ClaimState,
    /// What it waits for, or why it closed.
    pub reason: Option<String>,
    /// Confirmations seen, once mined.
    pub confirmations: Option<u64>,
    /// Whether the chain answered (the node's silence does not count as a
    /// check, and changes nothing but the time of the last attempt).
    pub answered: bool,
}

/// Records `seen` for the claim of `tx_hash` on `order_id`, in `tx`:
/// a new claim, or the existing one updated (a closed claim posted again
/// opens anew, its count of checks restarted). Returns the claim as
/// recorded.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    order_id: &str,
    tx_hash: &str,
    chain_id: u64,
    seen: &Observation,
) -> ApiResult<Claim> {
    let now = sealstream_core::utc::now();
    let chain = i64::try_from(chain_id)
        .map_err(|_| ApiError::internal("payment claim", "chain id out of range"))?;
    let existing = db::claim(tx, order_id, tx_hash).await?;
    let inserted =
        existing.is_none() && db::insert_claim(tx, order_id, tx_hash, chain, &now, seen).await?;
    if !inserted && !seen.answered {
        // Only the time of the attempt moves (so the sweep goes on to
        // other claims); what the last answer said stays.
        db::touch_claim(tx, order_id, tx_hash, &now).await?;
    } else if !inserted {
        // Inserted meanwhile by a concurrent post: read it back.
        let mut claim = match existing {
            Some(old) => old,
            None => db::claim(tx, order_id, tx_hash)
                .await?
                .ok_or_else(|| ApiError::internal("payment claim", "a claim vanished"))?,
        };
        let reopen = !claim.state.is_open() && seen.state.is_open();
        claim.checks = if reopen { 1 } else { claim.checks + 1 };
        if reopen {
            claim.claimed_at = now.clone();
        }
        db::update_claim(tx, &claim, &now, seen).await?;
    }
    db::claim(tx, order_id, tx_hash)
        .await?
        .ok_or_else(|| ApiError::internal("payment claim", "the claim just recorded is missing"))
}

/// Expires `claim` if it is unknown, was checked at least
/// [`UNKNOWN_MIN_CHECKS`] times and is older than `ttl_secs`. Returns
/// whether it expired.
pub async fn expire_if_stale(
    tx: &mut Transaction<'static, Any>,
    claim: &Claim,
    ttl_secs: u64,
) -> ApiResult<bool> {
    if claim.state != ClaimState::Unknown || claim.checks < UNKNOWN_MIN_CHECKS {
        return Ok(false);
    }
    let now = sealstream_core::utc::now_unix();
    let age = sealstream_core::utc::parse_seconds(&claim.claimed_at)
        .map(|t| now.saturating_sub(t))
        .unwrap_or(i64::MAX);
    if age < i64::try_from(ttl_secs).unwrap_or(i64::MAX) {
        return Ok(false);
    }
    let reason = format!(
        "transaction not known to the node after {} checks over {age} s: dropped \
         (post the proof again once the node has it)",
        claim.checks
    );
    Ok(db::expire_claim(tx, claim, &reason).await?)
}

/// Housekeeping of a watcher sweep: closes the open claims of orders no
/// longer awaiting payment (a safety net: payment and cancellation close
/// them) and deletes closed claims last checked over
/// [`CLOSED_RETENTION_SECS`] ago. Returns the claims deleted.
pub async fn tidy(tx: &mut Transaction<'static, Any>) -> ApiResult<u64> {
    let cutoff = sealstream_core::utc::format_seconds(
        sealstream_core::utc::now_unix() - CLOSED_RETENTION_SECS,
    );
    Ok(db::tidy_claims(tx, &cutoff).await?)
}

impl Claim {
    /// The claim as the order's parties see it.
    pub fn view(&self) -> ClaimView {
        ClaimView {
            tx_hash: self.tx_hash.clone(),
            chain_id: self.chain_id,
            state: self.state,
            reason: self.reason.clone(),
            confirmations: self.confirmations,
            claimed_at: self.claimed_at.clone(),
            last_checked_at: self.last_checked_at.clone(),
            checks: self.checks,
        }
    }
}

/// The claim an order's summary names: the open claim nearest to paying
/// (pending before unknown, most confirmations, then latest), if any.
pub fn nearest(claims: &[Claim]) -> Option<&Claim> {
    claims.iter().filter(|c| c.state.is_open()).max_by(|a, b| {
        (
            a.state == ClaimState::Pending,
            a.confirmations,
            &a.claimed_at,
        )
            .cmp(&(
                b.state == ClaimState::Pending,
                b.confirmations,
                &b.claimed_at,
            ))
    })
}

/// `<hash>: <reason>` of `claim`, with `<n> of <required> confirmations`
/// once mined.
pub fn status_line(claim: &Claim, required: u64) -> String {
    let mut line = format!(
        "{}: {}",
        claim.tx_hash,
        claim.reason.as_deref().unwrap_or(claim.state.as_str())
    );
    if let (ClaimState::Pending, Some(n)) = (claim.state, claim.confirmations) {
        if n > 0 {
            line.push_str(&format!("; {n} of {required} confirmations"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(state: ClaimState, confirmations: Option<u64>, at: &str) -> Claim {
        Claim {
            order_id: "ord_1".into(),
            tx_hash: format!("0x{}", at.len()),
            chain_id: 8453,
            claimed_at: at.into(),
            last_checked_at: None,
            checks: 1,
            state,
            reason: Some("waiting".into()),
            confirmations,
        }
    }

    #[test]
    fn states_round_trip_and_only_unknown_and_pending_are_open() {
        for s in [
            ClaimState::Unknown,
            ClaimState::Pending,
            ClaimState::Confirmed,
            ClaimState::Rejected,
            ClaimState::Expired,
            ClaimState::Superseded,
        ] {
            assert_eq!(ClaimState::parse(s.as_str()), Some(s));
            assert_eq!(
                s.is_open(),
                matches!(s, ClaimState::Unknown | ClaimState::Pending)
            );
        }
        assert_eq!(ClaimState::parse("paid"), None);
    }

    #[test]
    fn the_nearest_claim_is_a_pending_one_with_most_confirmations() {
        let unknown = claim(ClaimState::Unknown, None, "2026-01-02T03:04:09Z");
        let one = claim(ClaimState::Pending, Some(1), "2026-01-02T03:04:05Z");
        let two = claim(ClaimState::Pending, Some(2), "2026-01-02T03:04:01Z");
        let closed = claim(ClaimState::Rejected, Some(9), "2026-01-02T03:04:10Z");
        let all = [unknown.clone(), one.clone(), two.clone(), closed.clone()];
        assert_eq!(nearest(&all), Some(&two));
        assert_eq!(nearest(&[unknown.clone(), closed.clone()]), Some(&unknown));
        assert_eq!(nearest(&[closed]), None);
        assert!(status_line(&two, 3).ends_with("waiting; 2 of 3 confirmations"));
        assert!(status_line(&unknown, 3).ends_with(": waiting"));
    }
}
