//! The server's logs (docs/market-design.md, "Logs"): one line per request
//! (`log_request`) and who made it, never by a DID, a token or a key but
//! by a [`Pseudonym`]: the first 12 hex digits of the SHA-256 of the DID in
//! lower case. The same identity has the same pseudonym in every line, and
//! an operator who knows a DID can find its lines
//! (`printf %s did:peaq:0x… | tr A-F a-f | sha256sum | cut -c1-12`).
//!
//! [`redact`] replaces every DID and EVM address in a text with its
//! pseudonym; `market serve` passes every line it writes through it
//! ([`Redacting`]), so that one written in a refusal's message (the
//! machine a request named, the payer of a transaction) does not reach the
//! log either.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, Extensions};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

/// The target of the request lines: `RUST_LOG=sealstream_market::request=warn`
/// leaves them out.
pub const REQUEST_TARGET: &str = "sealstream_market::request";

/// How the log names an identity: `id:` and the first 12 hex digits of
/// the SHA-256 of its DID in lower case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pseudonym([u8; 6]);

impl Pseudonym {
    /// The pseudonym of `did` (`did:peaq:0x…`, compared without regard to
    /// case).
    pub fn of(did: &str) -> Pseudonym {
        let digest = Sha256::digest(did.to_ascii_lowercase().as_bytes());
        let mut short = [0u8; 6];
        short.copy_from_slice(&digest[..6]);
        Pseudonym(short)
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "id:{}", hex::encode(self.0))
    }
}

/// Who did something, for a log line: the [`Pseudonym`] of a DID, or the
/// server's own name for an actor that is not a principal (`server`,
/// `operator`, `payment-watcher`).
pub fn actor(who: &str) -> Cow<'static, str> {
    if who.starts_with("did:") || is_address(who.as_bytes()) {
        Cow::Owned(Pseudonym::of(&did_text(who)).to_string())
    } else {
        Cow::Owned(who.to_string())
    }
}

const DID_PREFIX: &str = "did:peaq:";

/// `did:peaq:0x…` for a bare address, the text itself otherwise.
fn did_text(who: &str) -> Cow<'_, str> {
    if who.starts_with("0x") {
        Cow::Owned(format!("{DID_PREFIX}{who}"))
    } else {
        Cow::Borrowed(who)
    }
}

/// Whether `s` is exactly `0x` and 40 hex digits.
fn is_address(s: &[u8]) -> bool {
    s.len() == 42 && s.starts_with(b"0x") && s[2..].iter().all(u8::is_ascii_hexdigit)
}

/// `text` with every DID (`did:peaq:0x` and 40 hex digits) and every EVM
/// address (`0x` and 40 hex digits, not part of a longer hex string such
/// as a transaction hash) replaced by its [`Pseudonym`]; an address and its
/// DID get the same one.
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i + 42 <= bytes.len() {
        let boundary_before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let boundary_after = bytes.get(i + 42).is_none_or(|b| !b.is_ascii_alphanumeric());
        if boundary_before && boundary_after && is_address(&bytes[i..i + 42]) {
            let start = if text[..i].ends_with(DID_PREFIX) {
                i - DID_PREFIX.len()
            } else {
                i
            };
            let address = &text[i..i + 42];
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..start]);
            o.push_str(&Pseudonym::of(&format!("{DID_PREFIX}{address}")).to_string());
            i += 42;
            copied = i;
        } else {
            i += 1;
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// A writer that [`redact`]s what goes through it. The log's formatter
/// writes each line whole, so no DID is cut in two.
#[derive(Debug)]
pub struct Redacting<W>(pub W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(redact(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A writer that names the replica on every log line it passes on
/// (`market serve --replica-id`): a `"replica"` member first in each JSON
/// object, or a `replica=…` field at the end of each text line. The log's
/// formatter writes each line whole, in one call. The id is checked
/// ([`crate::lease::check_replica_id`]), so it needs no quoting.
#[derive(Debug)]
pub struct Labelled<W> {
    /// The replica id.
    pub replica: std::sync::Arc<str>,
    /// Whether lines are JSON objects (else text).
    pub json: bool,
    /// Where the labelled lines go.
    pub inner: W,
}

impl<W: std::io::Write> std::io::Write for Labelled<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = Vec::with_capacity(buf.len() + self.replica.len() + 16);
        match (self.json, buf.first(), buf.last()) {
            (true, Some(b'{'), _) => {
                line.extend_from_slice(b"{\"replica\":\"");
                line.extend_from_slice(self.replica.as_bytes());
                line.extend_from_slice(b"\",");
                line.extend_from_slice(&buf[1..]);
            }
            (false, _, Some(b'\n')) => {
                line.extend_from_slice(&buf[..buf.len() - 1]);
                line.extend_from_slice(b" replica=");
                line.extend_from_slice(self.replica.as_bytes());
                line.push(b'\n');
            }
            _ => line.extend_from_slice(buf),
        }
        self.inner.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Who made a request, as far as the server found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// A valid session of this principal.
    Principal(Pseudonym),
    /// A bearer token that is malformed, unknown or expired.
    InvalidToken,
}

/// The request's caller, noted by the session lookup
/// ([`crate::auth::resolve`]) for its request line.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallerNote(Arc<Mutex<Option<Caller>>>);

/// Notes the caller a session lookup found for the request with
/// `extensions` (`Ok(None)`: no token; `Err`: a token refused).
pub(crate) fn note_caller<E>(
    extensions: &Extensions,
    found: &Result<Option<crate::auth::Principal>, E>,
) {
    let Some(CallerNote(note)) = extensions.get::<CallerNote>() else {
        return;
    };
    let caller = match found {
        Ok(Some(p)) => Some(Caller::Principal(Pseudonym::of(&p.did))),
        Ok(None) => None,
        Err(_) => Some(Caller::InvalidToken),
    };
    *note.lock().unwrap_or_else(|e| e.into_inner()) = caller;
}

/// Longest raw path written for a request no route matched.
const UNMATCHED_PATH_CHARS: usize = 64;
/// Longest segment of such a path written as it is; a longer one (a token,
/// a hash) is written as `…`.
const UNMATCHED_SEGMENT_CHARS: usize = 24;

/// The raw path of a request no route matched, as the log writes it:
/// segments longer than [`UNMATCHED_SEGMENT_CHARS`] (where a token or a key
/// would be) and DIDs cut out, at most [`UNMATCHED_PATH_CHARS`] characters.
fn unmatched_path(path: &str) -> String {
    let mut out = String::new();
    for (n, segment) in path.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        if segment.len() > UNMATCHED_SEGMENT_CHARS {
            out.push('…');
        } else {
            out.push_str(segment);
        }
    }
    let mut out = redact(&out).into_owned();
    if out.chars().count() > UNMATCHED_PATH_CHARS {
        out = out.chars().take(UNMATCHED_PATH_CHARS).collect();
        out.push('…');
    }
    out
}

/// The middleware writing one line per request, once it is answered: its
/// method, the route's template (`/v1/orders/{id}`, never the path with
/// its ids; for a request no route matched, `unmatched` and the path, cut
/// short), the status, the time to the answer's head in milliseconds, the
/// answer's size when known, and the principal: its [`Pseudonym`],
/// `anonymous` without a token, `invalid-token`, or `unchecked` for a
/// token the route did not look at. At info level; the probes (`/healthz`,
/// `/metrics`) at debug.
pub(crate) async fn log_request(mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let (route, path) = match request.extensions().get::<MatchedPath>() {
        Some(matched) => (matched.as_str().to_string(), None),
        None => (
            "unmatched".to_string(),
            Some(unmatched_path(request.uri().path())),
        ),
    };
    let has_token = request.headers().contains_key(header::AUTHORIZATION);
    let note = CallerNote::default();
    request.extensions_mut().insert(note.clone());
    let response = next.run(request).await;
    let latency_ms = start.elapsed().as_micros() as f64 / 1000.0;
    let principal = match *note.0.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(Caller::Principal(p)) => p.to_string(),
        Some(Caller::InvalidToken) => "invalid-token".to_string(),
        None if has_token => "unchecked".to_string(),
        None => "anonymous".to_string(),
    };
    let status = response.status().as_u16();
    let bytes = response_bytes(&response);
    let probe =
        route == sealstream_api::routes::HEALTHZ || route == sealstream_api::routes::METRICS;
    let path = path.as_deref();
    if probe {
        tracing::debug!(
            target: REQUEST_TARGET,
            method = %method, route, path, status, latency_ms, bytes, principal,
            "request"
        );
    } else {
        tracing::info!(
            target: REQUEST_TARGET,
            method = %method, route, path, status, latency_ms, bytes, principal,
            "request"
        );
    }
    response
}

/// The size of an answer's body, when it is known before it is sent.
fn response_bytes(response: &Response) -> Option<u64> {
    response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| response.body().size_hint().exact())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DID: &str = "did:peaq:0x9F2a1b0E3C6d5f4A7b8C9d0E1f2A3b4C5d6E7f80";

    #[test]
    fn a_pseudonym_ignores_case_and_is_short() {
        let p = Pseudonym::of(DID);
        assert_eq!(p, Pseudonym::of(&DID.to_ascii_lowercase()));
        let text = p.to_string();
        assert!(text.starts_with("id:") && text.len() == 15, "{text}");
        assert_ne!(
            p,
            Pseudonym::of("did:peaq:0x0000000000000000000000000000000000000001")
        );
        // What the module documents an operator computes.
        let digest = hex::encode(Sha256::digest(DID.to_ascii_lowercase().as_bytes()));
        assert_eq!(text, format!("id:{}", &digest[..12]));
    }

    #[test]
    fn redact_replaces_dids_and_addresses_but_not_hashes() {
        let address = &DID["did:peaq:".len()..];
        let tx = format!("0x{}", "ab".repeat(32));
        let text = format!(
            "machine {DID} is already registered; payer {address}, tx {tx}, key {}",
            "cd".repeat(20)
        );
        let out = redact(&text);
        let p = Pseudonym::of(DID).to_string();
        assert_eq!(
            out,
            format!(
                "machine {p} is already registered; payer {p}, tx {tx}, key {}",
                "cd".repeat(20)
            )
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(redact(&format!("({DID})")), format!("({p})"));
        assert_eq!(actor(DID), p);
        assert_eq!(actor(address), p);
        assert_eq!(actor("operator"), "operator");
    }

    #[test]
    fn an_unmatched_path_loses_tokens_and_dids_and_is_cut_short() {
        let token = "ab".repeat(32);
        assert_eq!(
            unmatched_path(&format!("/v1/link/{token}/x")),
            "/v1/link/…/x"
        );
        let long = "/a".repeat(50);
        let cut = unmatched_path(&long);
        assert_eq!(cut.chars().count(), UNMATCHED_PATH_CHARS + 1);
        assert!(cut.ends_with('…'));
        // A DID segment is longer than a segment may be.
        assert_eq!(unmatched_path(&format!("/v1/x/{DID}")), "/v1/x/…");
    }

    #[test]
    fn the_redacting_writer_writes_lines_redacted() {
        use std::io::Write;
        let mut w = Redacting(Vec::new());
        writeln!(w, "owner={DID}").unwrap();
        let text = String::from_utf8(w.0).unwrap();
        assert_eq!(text, format!("owner={}\n", Pseudonym::of(DID)));
    }
}
