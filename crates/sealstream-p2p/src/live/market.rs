//! Entitlements of live feeds as a sealstream market states them: each
//! subscription read with `GET /v1/subscriptions/{id}` by the seller (the
//! owner's `p2p serve`) or by the machine whose topic it covers (the
//! agent's `p2p` destination).

use std::sync::Mutex;

use sealstream_api::listings::HistoryPolicy;
use sealstream_api::subscriptions::{SubscriptionState, SubscriptionView};
use sealstream_client::market::{ClientError, MarketClient};
use sealstream_core::utc;

use super::seller::{Denied, Entitlement, Entitlements, History};

/// The market's subscriptions as a feed server's entitlements.
pub struct MarketEntitlements {
    client: Mutex<MarketClient>,
    machine: String,
}

impl std::fmt::Debug for MarketEntitlements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketEntitlements")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl MarketEntitlements {
    /// Subscriptions read through `client` (signed in as the seller or as
    /// the machine); only those to topics of `machine_did` count.
    pub fn new(client: MarketClient, machine_did: &str) -> MarketEntitlements {
        MarketEntitlements {
            client: Mutex::new(client),
            machine: machine_did.to_string(),
        }
    }
}

fn unix(text: &Option<String>) -> Option<i64> {
    text.as_deref().and_then(utc::parse_rfc3339)
}

/// A subscription of the market as the feed server's entitlement to `feed`
/// (the topic) of `machine`.
pub fn entitlement(v: &SubscriptionView, feed: &str, machine: &str) -> Result<Entitlement, Denied> {
    if !v.machine_did.eq_ignore_ascii_case(machine) || v.topic != feed {
        return Err(Denied::Refused(
            "the subscription is not to this feed".into(),
        ));
    }
    let grace_until = unix(&v.grace_until);
    let ends = unix(&v.access_ends).or(grace_until);
    let now = utc::now_unix();
    let keys = v
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            // The first key applies from the start.
            let from = if i == 0 {
                i64::MIN
            } else {
                utc::parse_rfc3339(&k.applies_from).unwrap_or(i64::MAX)
            };
            (from, k.public_key_hex.to_ascii_lowercase())
        })
        .collect();
    let reason = match v.state {
        SubscriptionState::AwaitingPayment => Some("its first period is not paid yet".to_string()),
        _ => v.end_reason.clone(),
    };
    Ok(Entitlement {
        state: v.state.as_str().to_string(),
        is_final: v.state.is_final(),
        reason,
        active_from: unix(&v.active_from),
        ends,
        paid_through: v.paid_through.clone(),
        grace_until: v.grace_until.clone(),
        access_ends: v.access_ends.clone(),
        seconds_left: grace_until.map(|g| (g - now).max(0) as u64),
        history: match v.history {
            HistoryPolicy::None => History::None,
            HistoryPolicy::All => History::All,
            HistoryPolicy::LastChunks(n) => History::Last(n),
        },
        keys,
        recipient_id: v.buyer_id.clone(),
    })
}

impl Entitlements for MarketEntitlements {
    fn check(&self, feed: &str, subscription: &str) -> Result<Entitlement, Denied> {
        let view = self
            .client
            .lock()
            .expect("client lock")
            .subscription(subscription);
        match view {
            Ok(v) => entitlement(&v, feed, &self.machine),
            Err(e) if e.is_transient() => {
                Err(Denied::Unavailable("the market is unreachable".into()))
            }
            Err(ClientError::Refused { status: 404, .. }) => Err(Denied::Refused(
                "no such subscription to this seller's feeds".into(),
            )),
            Err(ClientError::Refused { status, .. }) => {
                Err(Denied::Unavailable(format!("the market answered {status}")))
            }
            Err(_) => Err(Denied::Unavailable(
                "the market's answer was unusable".into(),
            )),
        }
    }
}
