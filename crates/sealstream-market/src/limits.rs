//! Rate limits: a token bucket per key (a principal's DID, a client's
//! address, an order).
//!
//! Each key has a bucket of at most `burst` tokens, one regained every
//! `every` ([`Rate`]); a request takes one token, and is refused while the
//! bucket is empty, with the time until a token is back. On PostgreSQL the
//! buckets of the write and payment-proof limits are rows every replica
//! shares ([`SharedBuckets`]); on SQLite, and for [`KeyedTokenBucket`]
//! itself, they are held in this process's memory, and a restart refills
//! them.
//!
//! Memory is bounded: when a new key would make more than `max_keys`
//! buckets, the buckets that are full again (unused for `burst × every`, so
//! forgetting them changes nothing) are dropped first; if that is not
//! enough, every bucket is dropped, which only lets the keys start over with
//! a full burst (it never refuses more).
//!
//! Client keys come from the socket's peer address ([`ClientAddr`],
//! [`crate::connections::client_key`]), never from a header a client can
//! write: behind a reverse proxy every client shares the proxy's address and
//! its bucket.
//!
//! [`LogThrottle`] keeps the log of refusals readable when they come in a
//! flood: one line a second at most, with the count of those not logged.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::store::PG_NOW_MICROS_SQL;

/// How fast a key may go: `burst` requests at once, then one more every
/// `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens of a full bucket: requests allowed at once (0 refuses all).
    pub burst: u32,
    /// Time to regain one token.
    pub every: Duration,
}

impl Rate {
    /// `burst` at once, then one every `every`.
    pub const fn new(burst: u32, every: Duration) -> Rate {
        Rate { burst, every }
    }

    /// `per_second` tokens a second (more than 0), `burst` at once.
    pub fn per_second(per_second: f64, burst: u32) -> Rate {
        assert!(
            per_second > 0.0 && per_second.is_finite(),
            "a positive, finite rate"
        );
        Rate::new(burst, Duration::from_secs_f64(1.0 / per_second))
    }

    /// As a person reads it: `10 at once, then 1 every 30s`.
    pub fn describe(&self) -> String {
        format!(
            "{} at once, then 1 every {}s",
            self.burst,
            self.every.as_secs_f64()
        )
    }
}

/// Keys a [`KeyedTokenBucket`] holds at most, by default.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// A token bucket per key.
#[derive(Debug)]
pub struct KeyedTokenBucket<K> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The tokens at `now`, refilled since `at`.
    fn tokens_at(&self, now: Instant, rate: Rate) -> f64 {
        let every = rate.every.as_secs_f64();
        let gained = if every > 0.0 {
            now.saturating_duration_since(self.at).as_secs_f64() / every
        } else {
            f64::INFINITY
        };
        (self.tokens + gained).min(f64::from(rate.burst))
    }
}

impl<K: Hash + Eq + Clone> KeyedTokenBucket<K> {
    /// Buckets of `burst` tokens (at least 1) refilled at `rate` per second
    /// (more than 0), at most [`DEFAULT_MAX_KEYS`] of them.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self::with_max_keys(rate, burst, DEFAULT_MAX_KEYS)
    }

    /// [`new`](Self::new) holding at most `max_keys` buckets.
    pub fn with_max_keys(rate: f64, burst: u32, max_keys: usize) -> Self {
        Self::of(Rate::per_second(rate, burst.max(1)), max_keys)
    }

    /// Buckets at `rate` (a burst of 0 refuses everything), at most
    /// `max_keys` of them.
    pub fn of(rate: Rate, max_keys: usize) -> Self {
        KeyedTokenBucket {
            rate,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rate the buckets fill at.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes a token from `key`'s bucket now; `Err(wait)` when it is empty,
    /// `wait` being the time until a token is back.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// [`check`](Self::check) at the instant `now` (for tests: no clock).
    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let rate = self.rate;
        let burst = f64::from(rate.burst);
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            buckets.retain(|_, b| b.tokens_at(now, rate) < burst);
            if buckets.len() >= self.max_keys {
                tracing::warn!(
                    keys = buckets.len(),
                    "rate limiter: more active keys than it holds; all buckets start over"
                );
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = bucket.tokens_at(now, rate);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            Err(rate.every.mul_f64(1.0 - tokens))
        }
    }

    /// Buckets held (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A [`KeyedTokenBucket`] every replica shares (issue 24): on PostgreSQL
/// each bucket is a row of `rate_buckets` (migration 0024) under this
/// limiter's `scope`, taken from and refilled in one statement by the
/// database's clock, so N replicas together allow a key the configured
/// rate; on SQLite (one process) the buckets stay in memory. When the
/// database fails the check, this process's own bucket decides (never
/// stricter than the shared one would be for this process alone).
#[derive(Debug)]
pub struct SharedBuckets<K> {
    scope: &'static str,
    local: KeyedTokenBucket<K>,
}

impl<K: Hash + Eq + Clone + std::fmt::Display> SharedBuckets<K> {
    /// Buckets at `rate` named `scope` in the database, kept in memory
    /// (at most `max_keys`) where the database is not shared.
    pub fn new(scope: &'static str, rate: Rate, max_keys: usize) -> Self {
        SharedBuckets {
            scope,
            local: KeyedTokenBucket::of(rate, max_keys),
        }
    }

    /// The rate the buckets fill at.
    pub fn rate(&self) -> Rate {
        self.local.rate()
    }

    /// Takes a token from `key`'s bucket; `Err(wait)` when it is empty,
    /// `wait` being the time until a token is back.
    pub async fn check(&self, store: &crate::store::Store, key: &K) -> Result<(), Duration> {
        if store.engine() != crate::store::Engine::Postgres {
            return self.local.check(key);
        }
        let rate = self.local.rate();
        if rate.burst == 0 {
            return Err(rate.every);
        }
        match take_shared(store, self.scope, &key.to_string(), rate).await {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::warn!(
                    scope = self.scope,
                    "shared rate limit unavailable, this process's used: {e}"
                );
                self.local.check(key)
            }
        }
    }
}

/// Millionths of a token in one token.
const MICRO: i64 = 1_000_000;

/// The longest idle time a refill counts, in microseconds: a day (a
/// bucket is full long before, and its product with [`MICRO`] stays far
/// from overflowing).
const REFILL_CAP_US: i64 = 86_400 * MICRO;

/// Takes a token from the shared bucket `scope`/`key`: `Ok(Ok(()))`, or
/// `Ok(Err(wait))` when it is empty.
async fn take_shared(
    store: &crate::store::Store,
    scope: &str,
    key: &str,
    rate: Rate,
) -> Result<Result<(), Duration>, sqlx::Error> {
    let every_us = i64::try_from(rate.every.as_micros().max(1)).unwrap_or(i64::MAX);
    let burst = i64::from(rate.burst) * MICRO;
    // The tokens now: the stored ones plus those regained since, at most a
    // full bucket (millionths of a token, integer arithmetic).
    let refilled = format!(
        "LEAST($3, rate_buckets.tokens_micro \
         + (LEAST(GREATEST(excluded.at_us - rate_buckets.at_us, 0), {REFILL_CAP_US}) \
         * {MICRO}) / $4)"
    );
    let sql = format!(
        "INSERT INTO rate_buckets (scope, bucket_key, tokens_micro, at_us) \
         VALUES ($1, $2, $3 - {MICRO}, {PG_NOW_MICROS_SQL}) \
         ON CONFLICT (scope, bucket_key) DO UPDATE SET \
         tokens_micro = {refilled} - {MICRO}, at_us = excluded.at_us \
         WHERE {refilled} >= {MICRO}"
    );
    let taken = sqlx::query(&sql)
        .bind(scope)
        .bind(key)
        .bind(burst)
        .bind(every_us)
        .execute(store.pool())
        .await?
        .rows_affected();
    if taken == 1 {
        return Ok(Ok(()));
    }
    let row: Option<(i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT tokens_micro, at_us, {PG_NOW_MICROS_SQL} FROM rate_buckets \
         WHERE scope = $1 AND bucket_key = $2"
    ))
    .bind(scope)
    .bind(key)
    .fetch_optional(store.pool())
    .await?;
    let wait = row.map_or(rate.every, |(tokens, at, now)| {
        let idle = (now - at).clamp(0, REFILL_CAP_US);
        let have = tokens.saturating_add(idle * MICRO / every_us).min(burst);
        let missing = (MICRO - have).clamp(1, MICRO);
        let us = i128::from(missing) * i128::from(every_us) / i128::from(MICRO);
        Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX).max(1))
    });
    Ok(Err(wait))
}

/// Deletes the shared buckets idle for a day (full by then for any rate a
/// limit uses; a missing row is a full bucket). Returns how many.
pub async fn purge_shared(store: &crate::store::Store) -> Result<u64, sqlx::Error> {
    if store.engine() != crate::store::Engine::Postgres {
        return Ok(0);
    }
    let done = sqlx::query(&format!(
        "DELETE FROM rate_buckets WHERE at_us < {PG_NOW_MICROS_SQL} - {REFILL_CAP_US}"
    ))
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected())
}

/// Lets a log line through at most once per interval, counting the others.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(Duration::from_secs(1))
    }
}

impl LogThrottle {
    /// At most one line every `every`.
    pub fn new(every: Duration) -> Self {
        LogThrottle {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(lines held back since the last one)` when a line may be
    /// written now, `None` when it must be held back.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, held) = &mut *state;
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.every) {
            *held += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held))
    }
}

/// The peer address of the request's socket (never a header), as the
/// accept loop hands it to the router.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The key its limits go by: the address, or the /64 of an IPv6
    /// address ([`crate::connections::client_key`]); `unknown` without a
    /// socket (a router called directly).
    pub fn key(&self) -> String {
        match self.0.map(crate::connections::client_key) {
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => format!("{v6}/64"),
            None => "unknown".to_string(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The limits of payment proof posts: per client address, and per order
/// for proofs that show no payment of it.
#[derive(Debug)]
pub struct ProofLimits {
    /// By [`ClientAddr::key`].
    pub per_client: SharedBuckets<String>,
    /// By order id.
    pub per_order: SharedBuckets<String>,
}

impl ProofLimits {
    /// The buckets at the configured rates.
    pub fn new(config: &crate::server::Config) -> ProofLimits {
        ProofLimits {
            per_client: SharedBuckets::new(
                "proof-client",
                config.proof_rate_per_client,
                DEFAULT_MAX_KEYS,
            ),
            per_order: SharedBuckets::new(
                "proof-order",
                config.proof_rate_per_order,
                DEFAULT_MAX_KEYS,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_zero_refuses_everything() {
        let none = KeyedTokenBucket::of(Rate::new(0, Duration::from_secs(1)), 10);
        assert_eq!(
            none.check_at(&"k", Instant::now()),
            Err(Duration::from_secs(1))
        );
    }

    #[test]
    fn clients_are_keyed_by_address_or_ipv6_slash_64() {
        let key = |a: &str| ClientAddr(Some(a.parse().unwrap())).key();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_eq!(ClientAddr(None).key(), "unknown");
    }

    #[test]
    fn log_throttle_counts_what_it_holds_back() {
        let throttle = LogThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(throttle.allow_at(t0), Some(0));
        assert_eq!(throttle.allow_at(t0 + Duration::from_millis(10)), None);
        assert_eq!(throttle.allow_at(t0 + Duration::from_millis(20)), None);
        assert_eq!(throttle.allow_at(t0 + Duration::from_secs(1)), Some(2));
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = KeyedTokenBucket::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&"a", t0).is_ok());
        }
        let wait = limiter.check_at(&"a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another key has its own bucket.
        assert!(limiter.check_at(&"b", t0).is_ok());
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check_at(&"a", t1).is_ok());
        assert!(limiter.check_at(&"a", t1).is_err());
        // Refills stop at the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.check_at(&"a", t2).is_ok());
        }
        assert!(limiter.check_at(&"a", t2).is_err());
    }

    #[test]
    fn refused_requests_take_no_token() {
        let limiter = KeyedTokenBucket::new(1.0, 1);
        let t0 = Instant::now();
        assert!(limiter.check_at(&1, t0).is_ok());
        for ms in [100, 200, 900] {
            assert!(limiter
                .check_at(&1, t0 + Duration::from_millis(ms))
                .is_err());
        }
        assert!(limiter.check_at(&1, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_forgets_only_full_buckets_first() {
        let limiter = KeyedTokenBucket::with_max_keys(1.0, 2, 3);
        let t0 = Instant::now();
        for k in 0..3 {
            assert!(limiter.check_at(&k, t0).is_ok());
        }
        // Key 0 drained its bucket; keys 1 and 2 refill by t1.
        assert!(limiter.check_at(&0, t0).is_ok());
        let t1 = t0 + Duration::from_millis(1500);
        assert!(limiter.check_at(&3, t1).is_ok());
        assert_eq!(limiter.keys(), 2, "keys 1 and 2 were full again: dropped");
        // Key 0 is still held: half a token back, so refused.
        assert!(limiter
            .check_at(&0, t0 + Duration::from_millis(500))
            .is_err());
        // Over the bound with no full bucket: all start over.
        let busy = KeyedTokenBucket::with_max_keys(1.0, 1, 2);
        assert!(busy.check_at(&"x", t0).is_ok());
        assert!(busy.check_at(&"y", t0).is_ok());
        assert!(busy.check_at(&"z", t0).is_ok());
        assert_eq!(busy.keys(), 1);
        assert!(busy.check_at(&"x", t0).is_ok(), "x starts over, full");
    }
}
