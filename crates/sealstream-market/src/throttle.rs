//! The rate limits on writes (docs/market-design.md, "Limits"): every
//! request that may change something (any method but GET, HEAD, OPTIONS and
//! TRACE, and the receipt logs' GETs, which sign and record) takes a token from a bucket ([`crate::limits::KeyedTokenBucket`]):
//! its principal's, the DID of its session whatever session of that DID it
//! uses (`write-rate`, `write-burst`; a web page's post, by the session in
//! its cookie); without a valid session, its client
//! address's, the socket's peer (an IPv6 address by its /64; never a
//! header), under tighter limits (`anonymous-write-rate`,
//! `anonymous-write-burst`): sign-in nonces and payment proofs need no
//! session, and each costs a row or a call to a node. An empty bucket is a
//! 429 naming the rate, with `Retry-After`.
//!
//! The session is looked up here, once: the [`crate::auth::Principal`]
//! extractors take the answer from the request instead of asking the
//! database again.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::limits::{Rate, SharedBuckets, DEFAULT_MAX_KEYS};
use crate::server::AppState;

/// Default writes per second per principal.
pub const DEFAULT_WRITE_RATE: f64 = 200.0;
/// Default burst of writes per principal.
pub const DEFAULT_WRITE_BURST: u32 = 2000;
/// Default writes per second per client address without a session.
pub const DEFAULT_ANONYMOUS_WRITE_RATE: f64 = 20.0;
/// Default burst of writes per client address without a session.
pub const DEFAULT_ANONYMOUS_WRITE_BURST: u32 = 200;

/// The buckets of the write limits.
#[derive(Debug)]
pub struct WriteLimits {
    /// Per principal (`None`: no limit).
    principals: Option<SharedBuckets<WriteKey>>,
    /// Per client address without a session (`None`: no limit).
    anonymous: Option<SharedBuckets<WriteKey>>,
}

impl WriteLimits {
    /// The buckets for `config`'s rates (a rate of 0 is no limit), shared
    /// by the replicas on PostgreSQL ([`SharedBuckets`]).
    pub fn new(config: &crate::server::Config) -> WriteLimits {
        let bucket = |scope: &'static str, rate: f64, burst: u32| {
            (rate > 0.0 && rate.is_finite()).then(|| {
                SharedBuckets::new(
                    scope,
                    Rate::per_second(rate, burst.max(1)),
                    DEFAULT_MAX_KEYS,
                )
            })
        };
        WriteLimits {
            principals: bucket("write-principal", config.write_rate, config.write_burst),
            anonymous: bucket(
                "write-anonymous",
                config.anonymous_write_rate,
                config.anonymous_write_burst,
            ),
        }
    }

    fn bucket(&self, key: &WriteKey) -> Option<&SharedBuckets<WriteKey>> {
        match key {
            WriteKey::Principal(_) => self.principals.as_ref(),
            WriteKey::Client(_) | WriteKey::Unknown => self.anonymous.as_ref(),
        }
    }
}

/// Whose bucket a write takes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WriteKey {
    /// A signed-in principal.
    Principal(String),
    /// An anonymous client, by address.
    Client(IpAddr),
    /// No address known (a request not from a socket).
    Unknown,
}

/// The key of the shared bucket (`rate_buckets.bucket_key`).
impl std::fmt::Display for WriteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteKey::Principal(did) => write!(f, "principal {did}"),
            WriteKey::Client(ip) => write!(f, "client {ip}"),
            WriteKey::Unknown => f.write_str("unknown"),
        }
    }
}

/// The middleware: takes a token for every write, or answers 429.
pub async fn limit_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method().is_safe() && !writing_read(request.uri().path()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let resolved = crate::auth::resolve(&parts, &state).await;
    // A web page's form post carries its session in the cookie (which only
    // the web pages read, never the API's extractors): it takes from its
    // principal's bucket too, so anonymous traffic from the same address
    // cannot crowd it out.
    let web = match &resolved {
        Ok(None) if parts.headers.contains_key(header::COOKIE) => {
            crate::web::session::of(&parts.headers, &state)
                .await
                .ok()
                .flatten()
        }
        _ => None,
    };
    let key = match (&resolved, web) {
        (Ok(Some(principal)), _) => WriteKey::Principal(principal.did.clone()),
        (_, Some(web)) => WriteKey::Principal(web.principal.did),
        _ => match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => WriteKey::Client(crate::connections::client_key(peer.ip())),
            None => WriteKey::Unknown,
        },
    };
    parts.extensions.insert(crate::auth::Resolved(resolved));
    let verdict = match state.writes.bucket(&key) {
        Some(bucket) => bucket.check(&state.store, &key).await,
        None => Ok(()),
    };
    match verdict {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(wait) => refuse(&state, &key, wait),
    }
}

/// The reads that write (and cost a walk over a whole log): the receipt
/// logs' routes sign a head and record it, and a total proof is audited;
/// they take from the same buckets as writes.
fn writing_read(path: &str) -> bool {
    path.starts_with("/v1/receipt-log/") || path.ends_with("/receipt/log")
}

fn refuse(state: &AppState, key: &WriteKey, wait: std::time::Duration) -> Response {
    let config = &state.config;
    let (who, limit, rate, burst) = match key {
        WriteKey::Principal(_) => (
            "a principal",
            "write-rate",
            config.write_rate,
            config.write_burst,
        ),
        WriteKey::Client(_) | WriteKey::Unknown => (
            "an address without a session",
            "anonymous-write-rate",
            config.anonymous_write_rate,
            config.anonymous_write_burst,
        ),
    };
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    state.metrics.refused(limit);
    if let Some(held_back) = state.refusal_log.allow() {
        let key = match key {
            WriteKey::Principal(did) => crate::logs::Pseudonym::of(did).to_string(),
            WriteKey::Client(ip) => ip.to_string(),
            WriteKey::Unknown => "unknown".into(),
        };
        tracing::warn!(limit, key, held_back, "write refused: rate limit");
    }
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        Some(limit),
        format!(
            "too many writes: {who} may make {rate} per second, in a burst of {burst} ({limit}); \
             try again in {seconds} s"
        ),
    )
    .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits"),
    );
    response
}
