//! Rate limits: keyed token buckets held in this process.
//!
//! A [`RateLimiter`] keeps one bucket per key, a string naming what is
//! limited and for whom (`proof:ip:192.0.2.7`, `proof:order:ord_…`). A
//! bucket holds at most [`Rate::burst`] tokens and gains one every
//! [`Rate::every`]; each request takes a token, or is refused with the
//! time until the next one ([`Limited`]).
//!
//! The buckets live in memory: a restart refills them, and several servers
//! on one database limit each on their own. Memory is bounded by
//! `max_keys`: when a new key finds the table full, the buckets that have
//! refilled are dropped (a full bucket is the same as none); if every
//! bucket is still in use, all are dropped and a warning logged — past
//! `max_keys` clients limited at once the limits are lifted for a moment
//! rather than the memory grown.
//!
//! Client keys come from the socket's peer address ([`ClientAddr`]), never
//! from a header a client can write: behind a reverse proxy every client
//! shares the proxy's address and its bucket.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

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

    /// `burst` and `every` as a person reads them: `10, then 1 every 30s`.
    pub fn describe(&self) -> String {
        format!(
            "{} at once, then 1 every {}s",
            self.burst,
            self.every.as_secs_f64()
        )
    }
}

/// A request refused by a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: try again in {}s", retry_after.as_secs().max(1))]
pub struct Limited {
    /// Until the bucket has a token again.
    pub retry_after: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    rate: Rate,
}

impl Bucket {
    /// The tokens at `now`.
    fn refilled(&self, now: Instant) -> f64 {
        let every = self.rate.every.as_secs_f64();
        let gained = if every > 0.0 {
            now.saturating_duration_since(self.at).as_secs_f64() / every
        } else {
            f64::INFINITY
        };
        (self.tokens + gained).min(f64::from(self.rate.burst))
    }
}

/// Keyed token buckets (see the module documentation).
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    max_keys: usize,
}

/// The default bound on the buckets held at once.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(DEFAULT_MAX_KEYS)
    }
}

impl RateLimiter {
    /// A limiter holding at most `max_keys` buckets.
    pub fn new(max_keys: usize) -> RateLimiter {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    /// Takes a token from `key`'s bucket (made full at `rate` if new).
    pub fn take(&self, key: &str, rate: Rate) -> Result<(), Limited> {
        self.take_at(key, rate, Instant::now())
    }

    /// [`take`](Self::take) at `now` (for tests).
    pub fn take_at(&self, key: &str, rate: Rate, now: Instant) -> Result<(), Limited> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            buckets.retain(|_, b| b.refilled(now) < f64::from(b.rate.burst));
            if buckets.len() >= self.max_keys {
                tracing::warn!(
                    keys = buckets.len(),
                    "rate limiter full: every bucket dropped"
                );
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
            rate,
        });
        // A changed rate (a new configuration) applies from now on.
        bucket.rate = rate;
        let tokens = bucket.refilled(now);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Limited {
                retry_after: rate.every.mul_f64(1.0 - tokens),
            })
        }
    }
}

/// The part of a client's address its limits are keyed by: an IPv4
/// address (an IPv4-mapped IPv6 address as IPv4), the /64 of an IPv6
/// address (one host commonly holds a whole /64), or `unknown` when the
/// request came without a socket (tests calling the router directly).
pub fn client_key(addr: Option<IpAddr>) -> String {
    match addr.map(|a| a.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
        None => "unknown".to_string(),
    }
}

/// The peer address of the request's socket (never a header), when the
/// server was started with connect info.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// [`client_key`] of this address.
    pub fn key(&self) -> String {
        client_key(self.0)
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

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate::new(3, Duration::from_secs(10));

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take_at("k", RATE, t0).unwrap();
        }
        let refused = limiter.take_at("k", RATE, t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        // Other keys have their own bucket.
        limiter.take_at("other", RATE, t0).unwrap();
        // Half an interval on: still refused, 5 s to go.
        let refused = limiter
            .take_at("k", RATE, t0 + Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(5));
        limiter
            .take_at("k", RATE, t0 + Duration::from_secs(10))
            .unwrap();
        assert!(limiter
            .take_at("k", RATE, t0 + Duration::from_secs(10))
            .is_err());
        // Long after: full again, never more than the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            limiter.take_at("k", RATE, later).unwrap();
        }
        assert!(limiter.take_at("k", RATE, later).is_err());
    }

    #[test]
    fn a_burst_of_zero_refuses_everything() {
        let limiter = RateLimiter::new(10);
        let none = Rate::new(0, Duration::from_secs(1));
        assert!(limiter.take_at("k", none, Instant::now()).is_err());
    }

    #[test]
    fn the_table_stays_within_its_bound() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        limiter.take_at("a", RATE, t0).unwrap();
        limiter.take_at("b", RATE, t0).unwrap();
        // Full of buckets in use: all dropped for the newcomer.
        limiter.take_at("c", RATE, t0).unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
        limiter.take_at("d", RATE, t0).unwrap();
        // "c" and "d" have refilled an hour on: dropped, "e" kept apart.
        let later = t0 + Duration::from_secs(3600);
        limiter.take_at("e", RATE, later).unwrap();
        let keys: Vec<String> = limiter.buckets.lock().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["e".to_string()]);
    }

    #[test]
    fn clients_are_keyed_by_address_or_ipv6_slash_64() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(Some(v4)), "192.0.2.7");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(Some(mapped)), "192.0.2.7");
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(Some(a)), "2001:db8:1:2::/64");
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_eq!(client_key(None), "unknown");
    }
}
