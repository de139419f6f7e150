//! The rate limit on writes (docs/market-design.md, "Limits"): every
//! request that may change something (any method but GET, HEAD, OPTIONS and
//! TRACE) takes a token from its principal's bucket
//! ([`crate::limits::KeyedTokenBucket`]): the DID of its session, whatever
//! session of that DID it uses; without a valid session, the client's
//! address (the socket's peer, an IPv6 address by its /64; never a header).
//! An empty bucket is a 429 naming `write-rate`, with `Retry-After`.
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
use crate::server::AppState;

/// Default writes per second per principal.
pub const DEFAULT_WRITE_RATE: f64 = 200.0;
/// Default burst of writes per principal.
pub const DEFAULT_WRITE_BURST: u32 = 1000;

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

/// The middleware: takes a token for every write, or answers 429.
pub async fn limit_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limiter) = state.writes.as_deref() else {
        return next.run(request).await;
    };
    if request.method().is_safe() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let resolved = crate::auth::resolve(&parts, &state).await;
    let key = match &resolved {
        Ok(Some(principal)) => WriteKey::Principal(principal.did.clone()),
        _ => match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => WriteKey::Client(crate::connections::client_key(peer.ip())),
            None => WriteKey::Unknown,
        },
    };
    parts.extensions.insert(crate::auth::Resolved(resolved));
    match limiter.check(&key) {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(wait) => refuse(&state, &key, wait),
    }
}

fn refuse(state: &AppState, key: &WriteKey, wait: std::time::Duration) -> Response {
    let config = &state.config;
    let who = match key {
        WriteKey::Principal(_) => "a principal",
        WriteKey::Client(_) | WriteKey::Unknown => "an address without a session",
    };
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    state.metrics.refused("write-rate");
    if let Some(held_back) = state.refusal_log.allow() {
        let key = match key {
            WriteKey::Principal(did) => did.clone(),
            WriteKey::Client(ip) => ip.to_string(),
            WriteKey::Unknown => "unknown".into(),
        };
        tracing::warn!(
            limit = "write-rate",
            key,
            held_back,
            "write refused: rate limit"
        );
    }
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        Some("write-rate"),
        format!(
            "too many writes: {who} may make {} per second, in a burst of {} (write-rate, \
             write-burst); try again in {seconds} s",
            config.write_rate, config.write_burst
        ),
    )
    .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits"),
    );
    response
}
