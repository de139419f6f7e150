//! Subscriptions: a buyer subscribes, renews (optionally with a new key)
//! and cancels; the seller revokes; both read a subscription and its
//! history. Each period is paid through its order (`unpaid_order()`), with
//! the order methods (`mark_paid`, `payment_proof`). The granter reads the
//! pending pairs of a topic and stores subscription grants.

use reqwest::Method;

use sealstream_api::receipts::SignedCutoff;
use sealstream_api::routes;
use sealstream_api::subscriptions::{
    CreateSubscription, PendingGrants, PostSubscriptionGrants, RenewSubscription,
    RevokeSubscription, SubscriptionGrantsStored, SubscriptionHistory, SubscriptionList,
    SubscriptionQuery, SubscriptionView,
};

use crate::market::{json_body, ClientError, MarketClient, NoFields};

/// Subscriptions asked for a page.
const PAGE: u32 = 200;
/// Largest cut-off notice read (a notice is under 2 KiB).
const MAX_CUTOFF: u64 = 1 << 16;

impl MarketClient {
    /// Subscribes to a published subscription listing.
    pub fn create_subscription(
        &mut self,
        request: &CreateSubscription,
    ) -> Result<SubscriptionView, ClientError> {
        self.call(Method::POST, routes::SUBSCRIPTIONS, json_body(request))
    }

    /// One subscription of the caller's (as buyer or seller).
    pub fn subscription(&mut self, id: &str) -> Result<SubscriptionView, ClientError> {
        self.get(&routes::subscription(id))
    }

    /// A page of the caller's subscriptions.
    pub fn subscriptions(
        &mut self,
        query: &SubscriptionQuery,
    ) -> Result<SubscriptionList, ClientError> {
        self.get(&routes::subscriptions(query))
    }

    /// Every subscription `query` selects, page by page (its own paging is
    /// replaced).
    pub fn all_subscriptions(
        &mut self,
        query: &SubscriptionQuery,
    ) -> Result<Vec<SubscriptionView>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.subscriptions(&query.clone().page(PAGE, cursor.as_deref()))?;
            let n = page.items.len();
            all.extend(page.items);
            match page.next_cursor {
                Some(next) if n > 0 => cursor = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// Cancels a subscription (its buyer).
    pub fn cancel_subscription(&mut self, id: &str) -> Result<SubscriptionView, ClientError> {
        self.call(
            Method::POST,
            &routes::subscription_cancel(id),
            json_body(&NoFields {}),
        )
    }

    /// Revokes a subscription (its seller), with a reason.
    pub fn revoke_subscription(
        &mut self,
        id: &str,
        request: &RevokeSubscription,
    ) -> Result<SubscriptionView, ClientError> {
        self.call(
            Method::POST,
            &routes::subscription_revoke(id),
            json_body(request),
        )
    }

    /// Asks for one more period (its buyer), optionally with a new key.
    pub fn renew_subscription(
        &mut self,
        id: &str,
        request: &RenewSubscription,
    ) -> Result<SubscriptionView, ClientError> {
        self.call(
            Method::POST,
            &routes::subscription_renewals(id),
            json_body(request),
        )
    }

    /// A subscription's history.
    pub fn subscription_history(&mut self, id: &str) -> Result<SubscriptionHistory, ClientError> {
        self.get(&routes::subscription_history(id))
    }

    /// The signed cut-off notice of a final subscription (its buyer or
    /// seller), as served: the bytes, and the notice read strictly from
    /// them (its signature is checked with
    /// [`SignedCutoff::verify`], pinned to [`MarketClient::receipt_key`]'s
    /// key). A 404 while the subscription runs or its access has not ended.
    pub fn subscription_cutoff(
        &mut self,
        id: &str,
    ) -> Result<(Vec<u8>, SignedCutoff), ClientError> {
        let bytes = self.get_bytes(&routes::subscription_cutoff(id), MAX_CUTOFF)?;
        let notice = SignedCutoff::parse(&bytes)
            .map_err(|e| self.protocol(format!("cut-off notice: {e}")))?;
        Ok((bytes, notice))
    }

    /// The (subscription, chunk, key) pairs of a topic entitled and not yet
    /// granted (the machine's owner, or an admin).
    pub fn pending_subscription_grants(
        &mut self,
        machine_did: &str,
        topic: &str,
        limit: Option<u32>,
    ) -> Result<PendingGrants, ClientError> {
        self.get(&routes::topic_pending_grants(machine_did, topic, limit))
    }

    /// Stores chunk keys wrapped for a subscriber (the seller).
    pub fn store_subscription_grants(
        &mut self,
        id: &str,
        request: &PostSubscriptionGrants,
    ) -> Result<SubscriptionGrantsStored, ClientError> {
        self.call(
            Method::PUT,
            &routes::subscription_grants(id),
            json_body(request),
        )
    }
}
