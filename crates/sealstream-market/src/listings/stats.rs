//! Delayed public statistics (issue 21, anti-correlation): the sales count
//! a listing shows the public (as a bucket, `0`, `1-10`, …) counts only the
//! orders paid at least `--public-stats-delay` ago, refreshed every
//! `--public-stats-interval`; so a sale never shows in public numbers when
//! it happens, and watching a listing's bucket does not time a payment.

use std::time::Duration;

use crate::server::AppState;
use crate::store::{Store, StoreError};

/// Refreshes every listing's public count from the orders paid at or
/// before `now_unix − delay`. Returns how many listings changed.
pub async fn publish(store: &Store, now_unix: i64, delay: Duration) -> Result<u64, StoreError> {
    let cutoff = sealstream_core::utc::format_seconds(now_unix - delay.as_secs() as i64);
    let mut tx = store.begin().await?;
    let changed = super::db::publish_sales(&mut tx, &cutoff).await?;
    tx.commit().await?;
    Ok(changed)
}

/// The task that runs [`publish`] every `interval` (the server runs it
/// once itself before it serves, so the first pass here is one interval
/// after start).
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = state.config.public_stats_interval;
        loop {
            tokio::time::sleep(every).await;
            if !state
                .leases
                .leading(&state.store, crate::lease::Job::PublicStats, every)
                .await
            {
                continue;
            }
            let now = sealstream_core::utc::now_unix();
            match publish(&state.store, now, state.config.public_stats_delay).await {
                Ok(n) if n > 0 => tracing::debug!(listings = n, "public sales counts refreshed"),
                Ok(_) => {}
                Err(e) => tracing::warn!("public statistics: {e}"),
            }
        }
    })
}
