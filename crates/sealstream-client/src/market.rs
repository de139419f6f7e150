//! A blocking client of the sealstream market server: a session signed in
//! with a secp256k1 key (Sign-In with Ethereum, EIP-4361) and the
//! requests of the market API, typed by `sealstream-api` (the requests of
//! each resource are in [`crate::ingest`], [`crate::machines`],
//! [`crate::datasets`], [`crate::listings`] and [`crate::orders`]).
//!
//! HTTP is reqwest's blocking client with rustls on aws-lc-rs, the stack
//! the server's own outgoing requests use. TCP_NODELAY is on (a request
//! written in pieces must not wait for a delayed ACK). Connecting may take
//! 5 s; a request is sent and answered within 120 s, and each read of an
//! answer waits at most 120 s; an upload (a chunk, a grant) has no overall
//! deadline but its data may not stay unacknowledged for more than 120 s
//! (`TCP_USER_TIMEOUT`, on Linux).
//!
//! Uploads are idempotent on the server (the same chunk again is accepted
//! with nothing written), so a failed request can always be sent again.
//! [`ClientError::is_transient`] tells failures worth retrying (network,
//! 5xx, 429, an expired session) from refusals that will not change (a 4xx
//! naming the field at fault).

use std::io::Read;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use sealstream_api::auth::{NonceResponse, SessionResponse, VerifyRequest};
use sealstream_api::errors::ErrorBody;
use sealstream_api::routes;
use sealstream_api::siwe::{sign_in_message, Timestamp};
use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::keys::MachineSigningKey;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may take to be sent and answered, and each read of
/// its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long sent data may stay unacknowledged (uploads have no overall
/// deadline).
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest JSON answer read.
const MAX_JSON_ANSWER: u64 = 16 << 20;

/// Why a request to the market failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection failed.
    #[error("market {url}: {message}")]
    Network {
        /// The server.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with an error status.
    #[error("market {url}: {status} {}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Refused {
        /// The server.
        url: String,
        /// HTTP status.
        status: u16,
        /// The request part the server named, if any.
        field: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The server's answer could not be understood.
    #[error("market {url}: unexpected answer: {message}")]
    Protocol {
        /// The server.
        url: String,
        /// What was wrong with it.
        message: String,
    },
}

impl ClientError {
    /// Whether sending the same request later may succeed: network
    /// failures, 5xx, 429 and 401 (the client signs in again).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Network { .. } => true,
            ClientError::Refused { status, .. } => {
                *status >= 500 || *status == 429 || *status == 401 || *status == 408
            }
            ClientError::Protocol { .. } => false,
        }
    }
}

/// What a request carries.
#[derive(Clone)]
pub(crate) enum Payload {
    /// Nothing.
    Empty,
    /// A JSON body.
    Json(Vec<u8>),
    /// A body of another type (`Content-Type`, bytes), sent without an
    /// overall deadline.
    Upload(String, bytes::Bytes),
    /// No body, and no overall deadline: the answer is a stream read as it
    /// comes (a subscription feed).
    Stream,
}

/// A signed-in (or about to sign in) session with one server.
pub struct MarketClient {
    base: String,
    http: Result<Client, String>,
    key: MachineSigningKey,
    did: Did,
    token: Option<String>,
    statement: String,
    /// Never signs in ([`MarketClient::anonymous`]).
    anonymous: bool,
}

impl std::fmt::Debug for MarketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketClient")
            .field("base", &self.base)
            .field("did", &self.did)
            .field("signed_in", &self.token.is_some())
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

/// The HTTP client of every session.
fn http_client() -> Result<Client, String> {
    // No client-wide deadline: each request sets its own ([`Payload`]).
    let builder = Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(None)
        .tcp_keepalive(STALL_TIMEOUT / 2);
    #[cfg(target_os = "linux")]
    let builder = builder.tcp_user_timeout(STALL_TIMEOUT);
    builder.build().map_err(|e| describe(&e))
}

/// An error and its causes, for a person to read.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// `body` as the JSON text sent: its keys in byte order (the canonical
/// form clients have always sent; serde's value keeps keys sorted).
pub(crate) fn json_bytes<B: Serialize>(body: &B) -> Vec<u8> {
    let sorted = serde_json::to_value(body).unwrap_or_default();
    serde_json::to_vec(&sorted).unwrap_or_default()
}

/// `body` as a JSON payload ([`json_bytes`]).
pub(crate) fn json_body<B: Serialize>(body: &B) -> Payload {
    Payload::Json(json_bytes(body))
}

/// An empty JSON object, the body of requests that take none.
#[derive(Serialize)]
pub(crate) struct NoFields {}

impl MarketClient {
    /// A client of the server at `base_url` (`http://host:port`, no
    /// trailing path) signing in with `key`. Nothing is sent yet.
    pub fn new(base_url: &str, key: MachineSigningKey) -> MarketClient {
        let did = Did::of_key(&key);
        MarketClient {
            base: base_url.trim_end_matches('/').to_string(),
            http: http_client(),
            key,
            did,
            token: None,
            statement: "Sign in to the sealstream market as a machine.".into(),
            anonymous: false,
        }
    }

    /// A client of the server at `base_url` that never signs in: every
    /// request goes without a session, as anyone's would (the catalog,
    /// published listings and their samples, public datasets and proofs,
    /// the receipt key). A route that needs a session answers 401. Its
    /// [`did`](Self::did) is that of a throwaway key and names no one.
    pub fn anonymous(base_url: &str) -> MarketClient {
        MarketClient {
            anonymous: true,
            ..MarketClient::new(base_url, MachineSigningKey::generate())
        }
    }

    /// The same client signing in with another EIP-4361 statement (an
    /// owner's or a buyer's tools say who is signing in).
    pub fn with_statement(mut self, statement: &str) -> MarketClient {
        self.statement = statement.to_string();
        self
    }

    /// The DID signing in.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The key this client signs in with (an owner also signs dataset
    /// manifests with it).
    pub fn key(&self) -> &MachineSigningKey {
        &self.key
    }

    pub(crate) fn network(&self, message: impl Into<String>) -> ClientError {
        ClientError::Network {
            url: self.base.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn protocol(&self, message: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            url: self.base.clone(),
            message: message.into(),
        }
    }

    /// Sends one request (with the session's token when `auth`) and returns
    /// the answer, or the refusal it carries.
    fn send(
        &self,
        method: Method,
        path: &str,
        payload: &Payload,
        auth: bool,
    ) -> Result<Response, ClientError> {
        let http = self.http.as_ref().map_err(|e| self.network(e.clone()))?;
        let mut request: RequestBuilder = http.request(method, format!("{}{path}", self.base));
        if auth {
            if let Some(t) = &self.token {
                request = request.header(AUTHORIZATION, format!("Bearer {t}"));
            }
        }
        request = match payload {
            Payload::Empty => request.timeout(REQUEST_TIMEOUT),
            Payload::Json(bytes) => request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone())
                .timeout(REQUEST_TIMEOUT),
            Payload::Stream => request,
            Payload::Upload(content_type, bytes) => request
                .header(CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone()),
        };
        let response = request.send().map_err(|e| self.network(describe(&e)))?;
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            return Err(self.refusal(status.as_u16(), response));
        }
        Ok(response)
    }

    /// The refusal an error answer carries (`{"error": {field, message}}`,
    /// or the start of its text).
    fn refusal(&self, status: u16, response: Response) -> ClientError {
        let mut text = Vec::new();
        let _ = response.take(64 << 10).read_to_end(&mut text);
        let (field, message) = match serde_json::from_slice::<ErrorBody>(&text) {
            Ok(body) => (body.error.field, body.error.message),
            Err(_) => (
                None,
                String::from_utf8_lossy(&text).chars().take(500).collect(),
            ),
        };
        ClientError::Refused {
            url: self.base.clone(),
            status,
            field,
            message,
        }
    }

    /// The answer's bytes, at most `limit` (a longer answer is a protocol
    /// error).
    fn read_bytes(
        &self,
        response: Response,
        path: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let mut bytes = Vec::new();
        response
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| self.network(describe(&e)))?;
        if bytes.len() as u64 > limit {
            return Err(self.protocol(format!("{path}: answer over {limit} bytes")));
        }
        Ok(bytes)
    }

    /// The answer as `R`.
    fn read_json<R: DeserializeOwned>(
        &self,
        response: Response,
        path: &str,
    ) -> Result<R, ClientError> {
        let bytes = self.read_bytes(response, path, MAX_JSON_ANSWER)?;
        serde_json::from_slice(&bytes).map_err(|e| self.protocol(format!("{path}: {e}")))
    }

    /// Signs in: asks for a nonce, signs an EIP-4361 message with the key,
    /// and keeps the session token.
    pub fn sign_in(&mut self) -> Result<(), ClientError> {
        if self.anonymous {
            return Err(self.protocol("an anonymous client does not sign in"));
        }
        let nonce: NonceResponse = {
            let response = self.send(
                Method::POST,
                routes::AUTH_NONCE,
                &json_body(&NoFields {}),
                false,
            )?;
            self.read_json(response, routes::AUTH_NONCE)?
        };
        let issued_at = Timestamp::parse(&nonce.issued_at, "issuedAt")
            .map_err(|e| self.protocol(format!("nonce answer: {e}")))?;
        let mut message = sign_in_message(
            &nonce.domain,
            &nonce.uri,
            &self.did,
            &nonce.nonce,
            issued_at,
            None,
            Some(&self.statement),
        )
        .map_err(|e| self.protocol(format!("cannot build the sign-in message: {e}")))?;
        message.chain_id = nonce.chain_id;
        let message = message.to_string();
        let signature = eip191_sign(&self.key, message.as_bytes()).to_hex();
        let session: SessionResponse = {
            let body = json_body(&VerifyRequest { message, signature });
            let response = self.send(Method::POST, routes::AUTH_VERIFY, &body, false)?;
            self.read_json(response, routes::AUTH_VERIFY)?
        };
        self.token = Some(session.token);
        Ok(())
    }

    /// The session's bearer token, signing in first if there is none yet
    /// (`market login` prints it for scripts). It is a secret: whoever holds
    /// it acts as this client's DID until it expires or is logged out.
    pub fn session_token(&mut self) -> Result<&str, ClientError> {
        if self.token.is_none() {
            self.sign_in()?;
        }
        Ok(self.token.as_deref().unwrap_or_default())
    }

    /// Runs `f` signed in; on a 401 (session expired) signs in again and
    /// runs it once more. An anonymous client runs it once, without a
    /// session.
    fn with_session<T>(
        &mut self,
        mut f: impl FnMut(&Self) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        if self.anonymous {
            return f(self);
        }
        if self.token.is_none() {
            self.sign_in()?;
        }
        match f(self) {
            Err(ClientError::Refused { status: 401, .. }) => {
                self.token = None;
                self.sign_in()?;
                f(self)
            }
            other => other,
        }
    }

    /// A signed-in request whose answer is the JSON `R`.
    pub(crate) fn call<R: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        payload: Payload,
    ) -> Result<R, ClientError> {
        self.with_session(|me| {
            let response = me.send(method.clone(), path, &payload, true)?;
            me.read_json(response, path)
        })
    }

    /// `GET path`, signed in, its answer the JSON `R`.
    pub(crate) fn get<R: DeserializeOwned>(&mut self, path: &str) -> Result<R, ClientError> {
        self.call(Method::GET, path, Payload::Empty)
    }

    /// A signed-in request whose answer has no body worth reading (`204`).
    pub(crate) fn call_empty(
        &mut self,
        method: Method,
        path: &str,
        payload: Payload,
    ) -> Result<(), ClientError> {
        self.with_session(|me| {
            me.send(method.clone(), path, &payload, true)?;
            Ok(())
        })
    }

    /// `GET path`, signed in, as the open answer, read as it streams
    /// (no overall deadline).
    pub(crate) fn get_stream(&mut self, path: &str) -> Result<Response, ClientError> {
        self.with_session(|me| me.send(Method::GET, path, &Payload::Stream, true))
    }

    /// Forgets the session token (the next request signs in again).
    pub(crate) fn forget_session(&mut self) {
        self.token = None;
    }

    /// `GET path` without a session (public routes, bearer links), its
    /// answer the JSON `R`.
    pub(crate) fn get_public<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        let response = self.send(Method::GET, path, &Payload::Empty, false)?;
        self.read_json(response, path)
    }

    /// `GET path` without a session, as at most `limit` bytes.
    pub(crate) fn get_public_bytes(&self, path: &str, limit: u64) -> Result<Vec<u8>, ClientError> {
        let response = self.send(Method::GET, path, &Payload::Empty, false)?;
        self.read_bytes(response, path, limit)
    }

    /// `GET path`, signed in, as bytes (a chunk's ciphertext, a receipt, an
    /// envelope): at most `limit` bytes, a longer answer is a protocol
    /// error.
    pub(crate) fn get_bytes(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, ClientError> {
        self.with_session(|me| {
            let response = me.send(Method::GET, path, &Payload::Empty, true)?;
            me.read_bytes(response, path, limit)
        })
    }
}

/// Runs `f` until it succeeds, fails for good, or `attempts` transient
/// failures have happened, sleeping 0.5 s, 1 s, 2 s … (at most 30 s)
/// between attempts. `on_retry` hears each transient failure.
pub fn with_retries<T>(
    attempts: u32,
    mut f: impl FnMut() -> Result<T, ClientError>,
    mut on_retry: impl FnMut(&ClientError, Duration),
) -> Result<T, ClientError> {
    let mut failures = 0u32;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && failures + 1 < attempts => {
                let wait = Duration::from_millis(500)
                    .saturating_mul(1 << failures.min(6))
                    .min(Duration::from_secs(30));
                on_retry(&e, wait);
                std::thread::sleep(wait);
                failures += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_told_apart() {
        let refused = |status| ClientError::Refused {
            url: "u".into(),
            status,
            field: Some("envelope.index".into()),
            message: "m".into(),
        };
        assert!(refused(503).is_transient());
        assert!(refused(429).is_transient());
        assert!(refused(401).is_transient());
        assert!(!refused(409).is_transient());
        assert!(!refused(422).is_transient());
        assert_eq!(refused(409).to_string(), "market u: 409 envelope.index: m");
    }

    #[test]
    fn retries_stop_at_a_refusal() {
        let mut calls = 0;
        let r: Result<(), _> = with_retries(
            5,
            || {
                calls += 1;
                Err(ClientError::Refused {
                    url: "u".into(),
                    status: 422,
                    field: None,
                    message: "no".into(),
                })
            },
            |_, _| {},
        );
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn bodies_are_sent_with_sorted_keys() {
        let body = sealstream_api::orders::CreateOrder {
            listing_id: "ls_1".into(),
            buyer_public_key_hex: "ab".into(),
            buyer_id: None,
            jurisdiction: None,
            purpose: None,
            accept_attestation: None,
        };
        assert_eq!(
            String::from_utf8(json_bytes(&body)).unwrap(),
            r#"{"buyerPublicKeyHex":"ab","listingId":"ls_1"}"#
        );
    }

    #[test]
    fn an_anonymous_client_never_signs_in() {
        let mut client = MarketClient::anonymous("http://127.0.0.1:9");
        let e = client.sign_in().unwrap_err();
        assert!(matches!(e, ClientError::Protocol { .. }), "{e}");
        // A request goes without signing in first: the network fails, not
        // the sign-in.
        let e = client.listing("ls_1").unwrap_err();
        assert!(matches!(e, ClientError::Network { .. }), "{e}");
    }

    #[test]
    fn an_unreachable_server_is_a_network_failure() {
        let mut client = MarketClient::new("http://127.0.0.1:9", MachineSigningKey::generate());
        let e = client.sign_in().unwrap_err();
        assert!(matches!(e, ClientError::Network { .. }), "{e}");
        assert!(e.is_transient());
    }
}
