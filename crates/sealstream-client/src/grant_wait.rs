//! The grant daemon's wait between passes (`market grant-daemon --follow`):
//! a long poll of each subscription topic's pending list (`?wait=SECS`,
//! docs/subscriptions.md), which the server answers as soon as a chunk of
//! the topic is ingested or a period is paid, so a new chunk is granted
//! within a fraction of a second instead of at the next `--interval`.

use std::time::Duration;

use sealstream_api::routes;
use sealstream_api::subscriptions::PendingGrants;

use crate::live::SubscriptionGranter;
use crate::market::{ClientError, MarketClient};

/// Longest wait the server takes, seconds.
pub const MAX_WAIT: u32 = 60;

impl MarketClient {
    /// [`MarketClient::pending_subscription_grants`], waiting up to `wait`
    /// seconds (1 to 60) while none is pending.
    pub fn pending_subscription_grants_waiting(
        &mut self,
        machine_did: &str,
        topic: &str,
        limit: Option<u32>,
        wait: u32,
    ) -> Result<PendingGrants, ClientError> {
        self.get(&routes::topic_pending_grants_waiting(
            machine_did,
            topic,
            limit,
            wait.clamp(1, MAX_WAIT),
        ))
    }
}

impl SubscriptionGranter {
    /// Waits up to `wait` (whole seconds, at least 1) for a pair to become
    /// pending on a topic of the owner's subscription listings: each topic
    /// is long-polled in turn for its share of the wait. Whether one is
    /// pending (`false`: the wait ended, or the owner has no such topic).
    pub fn wait_for_pending(
        &self,
        client: &mut MarketClient,
        wait: Duration,
    ) -> Result<bool, ClientError> {
        let topics = crate::live::subscription_topics(client)?;
        if topics.is_empty() {
            std::thread::sleep(wait);
            return Ok(false);
        }
        let total = u32::try_from(wait.as_secs()).unwrap_or(MAX_WAIT).max(1);
        let share = (total / topics.len().max(1) as u32).clamp(1, MAX_WAIT);
        for (machine, topic) in &topics {
            let page =
                client.pending_subscription_grants_waiting(machine, topic, Some(1), share)?;
            if !page.items.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
