//! Long polls of the pending list
//! (`GET /v1/machines/{did}/topics/{topic}/subscription-grants?wait=SECS`):
//! while nothing is pending the answer waits, up to `wait` seconds, for a
//! chunk to be ingested or a subscription to change (a period paid, …:
//! `Feeds::ingested` and `Feeds::changed`, sent after the commit), reads
//! again, and answers as soon as something is pending or the wait ends.
//! A wake-up that brings nothing for this topic only costs one read. The
//! routes run under [`TIMEOUT`], above the longest wait; a stopping server
//! ends every wait at once.

use std::future::Future;
use std::time::Duration;

use sealstream_api::subscriptions::PendingGrants;

use crate::error::ApiResult;
use crate::server::AppState;

/// Longest wait, seconds.
pub const MAX_WAIT: u32 = 60;
/// The request timeout of the long-poll routes (above [`MAX_WAIT`]).
pub const TIMEOUT: Duration = Duration::from_secs(MAX_WAIT as u64 + 15);

/// `read` now and, while it finds nothing and `wait` seconds have not
/// passed, again after each wake-up.
pub async fn waiting<F, Fut>(
    state: &AppState,
    wait: Option<u32>,
    mut read: F,
) -> ApiResult<PendingGrants>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<PendingGrants>>,
{
    let Some(wait) = wait else {
        return read().await;
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    let mut changes = state.feeds.pending_changes();
    loop {
        changes.borrow_and_update();
        let page = read().await?;
        if !page.items.is_empty() || state.feeds.closing() {
            return Ok(page);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            // The wait is over (or the server is going away).
            Ok(Err(_)) | Err(_) => return Ok(page),
        }
    }
}
