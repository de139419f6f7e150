//! What entitles a buyer to a feed's chunks, and the decision for each
//! chunk: [`Entitlement`], as the seller's source of truth
//! ([`Entitlements`]: the market in the CLI and the agent) states it.
//!
//! A subscription covers chunks by time (the market's rule,
//! docs/subscriptions.md): from its first payment to its access end, with
//! history before it as the listing says, each wrapped to the buyer key in
//! force at the chunk's time. A dataset order covers the dataset's chunks
//! by index, bound to the dataset's first and head chunk ids.

/// Which chunks from before the subscription's start it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum History {
    /// None.
    None,
    /// All of them.
    All,
    /// The last `n` of them.
    Last(u64),
}

/// The chunks of a dataset an order covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetRange {
    /// Chain index of its first chunk.
    pub first: u64,
    /// Chain index of its last chunk.
    pub last: u64,
    /// Id of its first chunk.
    pub first_chunk_id: String,
    /// Id of its last chunk (chunk ids chain: it commits to all of them).
    pub head_chunk_id: String,
}

/// An entitlement as the seller's source of truth states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlement {
    /// When the check that produced it began (Unix seconds): what it says
    /// holds for chunks that appeared before then.
    pub as_of: i64,
    /// The subscription's (or order's) state (`active`, `grace`, `lapsed`, …).
    pub state: String,
    /// Whether the state is final (no renewal can extend it).
    pub is_final: bool,
    /// Why it ended or is not in force (shown to the buyer).
    pub reason: Option<String>,
    /// Unix seconds from which chunks are covered (the first payment).
    pub active_from: Option<i64>,
    /// Unix seconds at which coverage ends, if it does (the access end once
    /// final, `T + G` while renewable).
    pub ends: Option<i64>,
    /// `T` (UTC text), for the buyer's display.
    pub paid_through: Option<String>,
    /// `T + G` (UTC text), for the buyer's display.
    pub grace_until: Option<String>,
    /// The access end (UTC text), once it has one.
    pub access_ends: Option<String>,
    /// Seconds until `T + G`.
    pub seconds_left: Option<u64>,
    /// History before `active_from`.
    pub history: History,
    /// The buyer keys (X25519, hex) with the Unix second each applies from,
    /// oldest first (the first applies to every chunk before the second).
    pub keys: Vec<(i64, String)>,
    /// The access entries' recipient id.
    pub recipient_id: String,
    /// For a dataset's order: the chunks it covers, whatever their times;
    /// the feed ends after the last.
    pub dataset: Option<DatasetRange>,
}

/// What the seller decides for one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Wrap its key to this buyer key.
    Send(String),
    /// Not covered (before the start, outside history): skip it.
    Skip,
    /// Past the end known as of a check of a renewable entitlement: check
    /// again first.
    Recheck,
    /// Past the end of a final one: the feed ends here for this buyer.
    Ended,
}

impl Entitlement {
    /// Whether it covers anything now (`active` or `grace`, a paid order),
    /// or still has chunks due (final with an end).
    pub(crate) fn in_force(&self) -> bool {
        if self.dataset.is_some() {
            return self.active_from.is_some();
        }
        self.active_from.is_some() && (!self.is_final || self.ends.is_some())
    }

    fn key_at(&self, t: i64) -> Option<&str> {
        let mut key = self.keys.first().map(|k| k.1.as_str());
        for (from, k) in self.keys.iter().skip(1) {
            if *from <= t {
                key = Some(k);
            }
        }
        key
    }

    /// Chunk `index`, accepted at `t`; `first_live` is the first index
    /// accepted at or after `active_from`.
    pub(crate) fn decide(&self, index: u64, t: i64, first_live: u64) -> Decision {
        if let Some(d) = &self.dataset {
            return match self.keys.first() {
                Some(k) if (d.first..=d.last).contains(&index) => Decision::Send(k.1.clone()),
                _ if index < d.first => Decision::Skip,
                _ => Decision::Ended,
            };
        }
        let Some(from) = self.active_from else {
            return Decision::Ended;
        };
        if t < from {
            let covered = match self.history {
                History::None => false,
                History::All => true,
                History::Last(n) => index.saturating_add(n) >= first_live,
            };
            return match (covered, self.keys.first()) {
                (true, Some(k)) => Decision::Send(k.1.clone()),
                _ => Decision::Skip,
            };
        }
        match self.ends {
            Some(end) if t >= end => {
                if self.is_final {
                    Decision::Ended
                } else {
                    Decision::Recheck
                }
            }
            _ => match self.key_at(t) {
                Some(k) => Decision::Send(k.to_string()),
                None => Decision::Skip,
            },
        }
    }

    /// Why the feed ended for this buyer, for the `invalid` message.
    pub(crate) fn ended_reason(&self) -> String {
        if let Some(d) = &self.dataset {
            return format!(
                "the order ({}) is delivered: chunks {} to {}",
                self.state, d.first, d.last
            );
        }
        match (&self.reason, &self.access_ends) {
            (Some(r), Some(at)) => format!(
                "the subscription is {} ({r}); access ended at {at}",
                self.state
            ),
            (Some(r), None) => format!("the subscription is {} ({r})", self.state),
            (None, Some(at)) => format!("the subscription is {}; access ended at {at}", self.state),
            (None, None) => format!("the subscription is {}", self.state),
        }
    }
}

/// Why [`Entitlements::check`] gives no entitlement. The text is shown to
/// the buyer: no secret in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// There is none (no such subscription, another feed's, …).
    Refused(String),
    /// It cannot be checked now (the market is unreachable): a hello is
    /// refused (the buyer tries again), a running session keeps what it
    /// last knew (and sends no key past what that check covers).
    Unavailable(String),
}

/// The seller's source of truth for entitlements (the market's API in the
/// CLI and the agent). Called from session threads; may block.
pub trait Entitlements: Send + Sync {
    /// The entitlement `id` (a subscription or an order) gives to feed
    /// `feed`, with [`Entitlement::as_of`] the time the check began.
    fn check(&self, feed: &str, id: &str) -> Result<Entitlement, Denied>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(history: History, ends: Option<i64>, is_final: bool) -> Entitlement {
        Entitlement {
            as_of: 0,
            state: "active".into(),
            is_final,
            reason: None,
            active_from: Some(100),
            ends,
            paid_through: None,
            grace_until: None,
            access_ends: None,
            seconds_left: None,
            history,
            keys: vec![(i64::MIN, "k1".into()), (200, "k2".into())],
            recipient_id: "b".into(),
            dataset: None,
        }
    }

    #[test]
    fn chunks_are_decided_by_time_history_and_key() {
        let mut order = ent(History::None, None, true);
        order.dataset = Some(DatasetRange {
            first: 2,
            last: 4,
            first_chunk_id: "0x2".into(),
            head_chunk_id: "0x4".into(),
        });
        assert_eq!(order.decide(1, 1, 0), Decision::Skip);
        assert_eq!(order.decide(2, 1, 0), Decision::Send("k1".into()));
        assert_eq!(order.decide(4, 10_000, 0), Decision::Send("k1".into()));
        assert_eq!(order.decide(5, 1, 0), Decision::Ended);
        let e = ent(History::None, Some(300), false);
        assert_eq!(e.decide(0, 50, 5), Decision::Skip);
        assert_eq!(e.decide(5, 100, 5), Decision::Send("k1".into()));
        assert_eq!(e.decide(6, 200, 5), Decision::Send("k2".into()));
        assert_eq!(e.decide(7, 300, 5), Decision::Recheck);
        let f = ent(History::None, Some(300), true);
        assert_eq!(f.decide(7, 300, 5), Decision::Ended);
        assert_eq!(f.decide(6, 299, 5), Decision::Send("k2".into()));
        let all = ent(History::All, None, false);
        assert_eq!(all.decide(0, 1, 5), Decision::Send("k1".into()));
        assert_eq!(all.decide(9, 10_000, 5), Decision::Send("k2".into()));
        let last2 = ent(History::Last(2), None, false);
        assert_eq!(last2.decide(2, 1, 5), Decision::Skip);
        assert_eq!(last2.decide(3, 1, 5), Decision::Send("k1".into()));
        assert_eq!(last2.decide(4, 1, 5), Decision::Send("k1".into()));
        // A history length from a peer or a market cannot overflow.
        let huge = ent(History::Last(u64::MAX), None, false);
        assert_eq!(huge.decide(u64::MAX, 1, 5), Decision::Send("k1".into()));
        let mut unpaid = ent(History::All, None, false);
        unpaid.active_from = None;
        assert!(!unpaid.in_force());
        assert_eq!(unpaid.decide(0, 1, 0), Decision::Ended);
    }
}
