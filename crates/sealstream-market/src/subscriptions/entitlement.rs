//! Who gets a chunk's key (docs/subscriptions.md, "Who gets a chunk's
//! key"): a pure function of a subscription's times, its history policy
//! and its buyer keys, and of a chunk's index and acceptance time. The
//! pending-grants route and the grant upload both decide with it, so the
//! granter is told exactly the pairs the server will take.
//!
//! ```text
//! entitled(s, c) ⇔ s.activeFrom ≤ t(c) < s.E
//!              ∨ (history covers c ∧ t(c) < s.activeFrom)
//! ```
//!
//! Chunks of one topic are accepted in chain order (chunk `n + 1` links to
//! chunk `n`, so it cannot be accepted before it): the chunks accepted
//! before `activeFrom` are the indexes below [`Window::first_live_index`],
//! and `{"lastChunks": N}` covers the `N` highest of them.

use sealstream_api::listings::HistoryPolicy;

/// A subscription's times, as far as entitlement needs them (Unix
/// seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// When the first payment was confirmed; `None`: never active, nothing
    /// is entitled.
    pub active_from: Option<i64>,
    /// `E`, the end of access (exclusive): the revocation time, `T` for a
    /// cancellation, `T + G` otherwise (while active or in grace `T + G`
    /// moves with every renewal; a chunk accepted after it exists only
    /// once the subscription has lapsed).
    pub access_end: i64,
    /// What of the topic before `active_from` is covered.
    pub history: HistoryPolicy,
    /// The number of the topic's chunks accepted before `active_from` (the
    /// index of the first chunk accepted at or after it).
    pub first_live_index: u64,
}

/// A chunk of the subscription's topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Chain index.
    pub index: u64,
    /// When the market accepted it (Unix seconds).
    pub accepted: i64,
}

/// Whether the history policy covers `chunk`, one of the chunks accepted
/// before the subscription started.
fn history_covers(w: &Window, chunk: Chunk) -> bool {
    match w.history {
        HistoryPolicy::None => false,
        HistoryPolicy::All => true,
        HistoryPolicy::LastChunks(n) => chunk.index.saturating_add(n) >= w.first_live_index,
    }
}

/// Whether the subscription of `w` is entitled to `chunk`'s key.
pub fn entitled(w: &Window, chunk: Chunk) -> bool {
    let Some(from) = w.active_from else {
        return false;
    };
    if chunk.accepted >= from {
        return chunk.accepted < w.access_end;
    }
    // Accepted before the start: history, and only chunks that really
    // precede the first live one.
    chunk.index < w.first_live_index && history_covers(w, chunk)
}

/// The lowest index a history policy can reach: where a search for
/// entitled chunks may start.
pub fn lowest_index(w: &Window) -> u64 {
    match w.history {
        HistoryPolicy::None => w.first_live_index,
        HistoryPolicy::All => 0,
        HistoryPolicy::LastChunks(n) => w.first_live_index.saturating_sub(n),
    }
}

/// A buyer key and the chunk time (Unix seconds) from which it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFrom {
    /// When it applies from (the first key: from the start of time).
    pub applies_from: i64,
    /// X25519 public key, hex.
    pub public_key_hex: String,
}

/// The key a chunk accepted at `accepted` is wrapped to: the last key
/// applying at or before that time (`keys` oldest first; the first applies
/// from the start, so history chunks use it). `None` only without keys.
pub fn key_for(keys: &[KeyFrom], accepted: i64) -> Option<&KeyFrom> {
    keys.iter()
        .rev()
        .find(|k| k.applies_from <= accepted)
        .or_else(|| keys.first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window(history: HistoryPolicy) -> Window {
        Window {
            active_from: Some(100),
            access_end: 200,
            history,
            first_live_index: 10,
        }
    }

    fn chunk(index: u64, accepted: i64) -> Chunk {
        Chunk { index, accepted }
    }

    #[test]
    fn live_chunks_from_the_start_to_the_end_exclusive() {
        let w = window(HistoryPolicy::None);
        assert!(entitled(&w, chunk(10, 100)));
        assert!(entitled(&w, chunk(11, 199)));
        assert!(!entitled(&w, chunk(12, 200)), "E is exclusive");
        assert!(!entitled(&w, chunk(9, 99)), "no history");
    }

    #[test]
    fn never_active_is_entitled_to_nothing() {
        let w = Window {
            active_from: None,
            ..window(HistoryPolicy::All)
        };
        assert!(!entitled(&w, chunk(0, 0)));
        assert!(!entitled(&w, chunk(10, 150)));
    }

    #[test]
    fn history_all_and_last_chunks() {
        let all = window(HistoryPolicy::All);
        assert!(entitled(&all, chunk(0, 1)));
        assert!(entitled(&all, chunk(9, 99)));
        let last = window(HistoryPolicy::LastChunks(3));
        let covered: Vec<u64> = (0..10).filter(|i| entitled(&last, chunk(*i, 50))).collect();
        assert_eq!(covered, [7, 8, 9]);
        assert_eq!(lowest_index(&last), 7);
        assert_eq!(lowest_index(&all), 0);
        assert_eq!(lowest_index(&window(HistoryPolicy::None)), 10);
        let more_than_there_is = window(HistoryPolicy::LastChunks(50));
        assert!(entitled(&more_than_there_is, chunk(0, 1)));
        assert_eq!(lowest_index(&more_than_there_is), 0);
    }

    #[test]
    fn a_revoked_or_cancelled_end_cuts_at_e() {
        let w = Window {
            access_end: 150,
            ..window(HistoryPolicy::None)
        };
        assert!(entitled(&w, chunk(20, 149)));
        assert!(!entitled(&w, chunk(21, 150)));
        // Cancelled before the first payment: never active.
        let w = Window {
            active_from: None,
            access_end: 0,
            ..window(HistoryPolicy::All)
        };
        assert!(!entitled(&w, chunk(0, 0)));
    }

    #[test]
    fn keys_apply_from_their_time() {
        let keys = vec![
            KeyFrom {
                applies_from: 0,
                public_key_hex: "a".into(),
            },
            KeyFrom {
                applies_from: 150,
                public_key_hex: "b".into(),
            },
        ];
        assert_eq!(key_for(&keys, 50).unwrap().public_key_hex, "a");
        assert_eq!(key_for(&keys, 149).unwrap().public_key_hex, "a");
        assert_eq!(key_for(&keys, 150).unwrap().public_key_hex, "b");
        assert_eq!(key_for(&keys, 10_000).unwrap().public_key_hex, "b");
        assert_eq!(key_for(&keys, -5).unwrap().public_key_hex, "a");
        assert!(key_for(&[], 1).is_none());
    }

    fn history() -> impl Strategy<Value = HistoryPolicy> {
        prop_oneof![
            Just(HistoryPolicy::None),
            Just(HistoryPolicy::All),
            (1u64..20).prop_map(HistoryPolicy::LastChunks),
        ]
    }

    proptest! {
        /// Over a topic (acceptance times nondecreasing in chain order),
        /// the entitled chunks are exactly: those accepted in
        /// `[activeFrom, E)`, and of those accepted before, all (`all`),
        /// none (`none`) or the last N (`lastChunks`). Checked against an
        /// oracle that counts positions instead of comparing indexes.
        #[test]
        fn entitled_matches_the_oracle(
            gaps in proptest::collection::vec(0i64..5, 0..60),
            start in 0i64..150,
            length in 0i64..150,
            history in history(),
            never in proptest::bool::weighted(0.1),
        ) {
            let mut t = 0;
            let chunks: Vec<Chunk> = gaps
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    t += g;
                    chunk(i as u64, t)
                })
                .collect();
            let before: Vec<&Chunk> = chunks.iter().filter(|c| c.accepted < start).collect();
            let w = Window {
                active_from: (!never).then_some(start),
                access_end: start + length,
                history,
                first_live_index: before.len() as u64,
            };
            let got: Vec<u64> = chunks.iter().filter(|c| entitled(&w, **c)).map(|c| c.index).collect();
            let mut want: Vec<u64> = Vec::new();
            if !never {
                let kept = match history {
                    HistoryPolicy::None => 0,
                    HistoryPolicy::All => before.len(),
                    HistoryPolicy::LastChunks(n) => before.len().min(n as usize),
                };
                want.extend(before[before.len() - kept..].iter().map(|c| c.index));
                want.extend(
                    chunks
                        .iter()
                        .filter(|c| c.accepted >= start && c.accepted < start + length)
                        .map(|c| c.index),
                );
            }
            prop_assert_eq!(&got, &want);
            // Nothing at or after E, whatever the history.
            prop_assert!(chunks
                .iter()
                .filter(|c| c.accepted >= start + length)
                .all(|c| !entitled(&w, *c)));
            // A search from `lowest_index` misses nothing.
            prop_assert!(got.iter().all(|i| *i >= lowest_index(&w)));
        }

        /// A rotated key is never used for a chunk accepted before its
        /// time, and every chunk gets the newest key applying to it.
        #[test]
        fn the_key_in_force(
            times in proptest::collection::vec(1i64..1000, 0..6),
            at in -10i64..1100,
        ) {
            let mut times = times;
            times.sort_unstable();
            let mut keys = vec![KeyFrom { applies_from: 0, public_key_hex: "k0".into() }];
            keys.extend(times.iter().enumerate().map(|(i, t)| KeyFrom {
                applies_from: *t,
                public_key_hex: format!("k{}", i + 1),
            }));
            let k = key_for(&keys, at).unwrap();
            prop_assert!(k.applies_from <= at.max(0));
            prop_assert!(keys.iter().all(|o| o.applies_from <= k.applies_from || o.applies_from > at));
        }
    }
}
