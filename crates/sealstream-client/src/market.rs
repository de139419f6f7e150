//! A blocking client of the sealstream market server, for machines: sign in
//! with the machine's key (Sign-In with Ethereum, EIP-4361), upload chunks
//! (envelope and ciphertext, one multipart request each) and signed dataset
//! manifests. Used by the agent's `market` destination and by
//! `sealstream publish --to`.
//!
//! Uploads are idempotent on the server (the same chunk again is accepted
//! with nothing written), so a failed request can always be sent again.
//! [`ClientError::is_transient`] tells failures worth retrying (network,
//! 5xx, 429, an expired session) from refusals that will not change (a 4xx
//! naming the field at fault).

use std::io::{Cursor, Read};
use std::time::Duration;

use sealstream_core::identity::{eip191_sign, Did};
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::MachineSigningKey;
use sealstream_core::siwe::{sign_in_message, Timestamp};

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

/// How a list route pages (see [`MarketClient::all_pages`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// `cursor=` from the previous page's `nextCursor` (orders).
    Cursor,
    /// `offset=` (datasets).
    Offset,
}

/// What the server did with an uploaded chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    /// `false` when the server already held this exact chunk.
    pub stored: bool,
    /// Chunks the server now holds for the topic.
    pub chain_length: u64,
}

/// A signed-in (or about to sign in) machine session with one server.
pub struct MarketClient {
    base: String,
    agent: ureq::Agent,
    key: MachineSigningKey,
    did: Did,
    token: Option<String>,
    statement: String,
}

impl std::fmt::Debug for MarketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketClient")
            .field("base", &self.base)
            .field("did", &self.did)
            .field("signed_in", &self.token.is_some())
            .finish()
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters kept).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const BOUNDARY: &str = "sealstream-boundary-7f1c9a4e2b";

impl MarketClient {
    /// A client of the server at `base_url` (`http://host:port`, no
    /// trailing path) for the machine holding `key`. Nothing is sent yet.
    pub fn new(base_url: &str, key: MachineSigningKey) -> MarketClient {
        let did = Did::of_key(&key);
        MarketClient {
            base: base_url.trim_end_matches('/').to_string(),
            // TCP_NODELAY (ureq's default, said here so it stays): a
            // request written in pieces must not wait for a delayed ACK.
            agent: ureq::AgentBuilder::new()
                .no_delay(true)
                .timeout_connect(Duration::from_secs(5))
                .timeout_read(Duration::from_secs(120))
                .timeout_write(Duration::from_secs(120))
                .build(),
            key,
            did,
            token: None,
            statement: "Sign in to the sealstream market as a machine.".into(),
        }
    }

    /// The same client signing in with another EIP-4361 statement (an
    /// owner's or a buyer's tools say who is signing in).
    pub fn with_statement(mut self, statement: &str) -> MarketClient {
        self.statement = statement.to_string();
        self
    }

    /// The machine's DID.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn network(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Network {
            url: self.base.clone(),
            message: e.to_string(),
        }
    }

    fn protocol(&self, message: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            url: self.base.clone(),
            message: message.into(),
        }
    }

    /// The JSON body of a response, or the refusal it carries.
    fn answer(&self, result: Result<ureq::Response, ureq::Error>) -> Result<Value, ClientError> {
        match result {
            Ok(r) => {
                let mut text = String::new();
                r.into_reader()
                    .take(16 << 20)
                    .read_to_string(&mut text)
                    .map_err(|e| self.network(e))?;
                json::parse(text.as_bytes()).map_err(|e| self.protocol(format!("not JSON: {e}")))
            }
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                let (field, message) = match json::parse(text.as_bytes()) {
                    Ok(Value::Object(m)) => match m.get("error") {
                        Some(Value::Object(e)) => (
                            e.get("field").and_then(Value::as_str).map(str::to_string),
                            e.get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        ),
                        _ => (None, text),
                    },
                    _ => (None, text.chars().take(500).collect()),
                };
                if status == 401 {
                    // The session expired or was revoked: sign in again next time.
                }
                Err(ClientError::Refused {
                    url: self.base.clone(),
                    status,
                    field,
                    message,
                })
            }
            Err(e) => Err(self.network(e)),
        }
    }

    fn post_json(&self, path: &str, body: &Value, auth: bool) -> Result<Value, ClientError> {
        let text = json::canonical::rfc8785(body).map_err(|e| self.protocol(e.to_string()))?;
        let mut request = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("Content-Type", "application/json");
        if auth {
            if let Some(t) = &self.token {
                request = request.set("Authorization", &format!("Bearer {t}"));
            }
        }
        self.answer(request.send_string(&text))
    }

    /// Signs in: asks for a nonce, signs an EIP-4361 message with the
    /// machine key, and keeps the session token.
    pub fn sign_in(&mut self) -> Result<(), ClientError> {
        let nonce = self.post_json("/v1/auth/nonce", &Value::Object(Map::new()), false)?;
        let field = |name: &str| -> Result<String, ClientError> {
            nonce
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| self.protocol(format!("nonce answer without {name}")))
        };
        let issued_at = Timestamp::parse(&field("issuedAt")?, "issuedAt")
            .map_err(|e| self.protocol(format!("nonce answer: {e}")))?;
        let mut message = sign_in_message(
            &field("domain")?,
            &field("uri")?,
            &self.did,
            &field("nonce")?,
            issued_at,
            None,
            Some(&self.statement),
        )
        .map_err(|e| self.protocol(format!("cannot build the sign-in message: {e}")))?;
        // The chain id the server signs in on (servers before it said so
        // accept the peaq chain id the message names by default).
        if let Some(chain_id) = nonce.get("chainId").and_then(Value::as_u64) {
            message.chain_id = chain_id;
        }
        let message = message.to_string();
        let signature = eip191_sign(&self.key, message.as_bytes());
        let mut body = Map::new();
        body.insert("message".into(), Value::String(message));
        body.insert("signature".into(), Value::String(signature.to_hex()));
        let answer = self.post_json("/v1/auth/verify", &Value::Object(body), false)?;
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| self.protocol("sign-in answer without token"))?;
        self.token = Some(token.to_string());
        Ok(())
    }

    fn ensure_signed_in(&mut self) -> Result<(), ClientError> {
        if self.token.is_none() {
            self.sign_in()?;
        }
        Ok(())
    }

    /// Runs `f` signed in; on a 401 (session expired) signs in again and
    /// runs it once more.
    fn with_session<T>(
        &mut self,
        mut f: impl FnMut(&Self) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.ensure_signed_in()?;
        match f(self) {
            Err(ClientError::Refused { status: 401, .. }) => {
                self.token = None;
                self.sign_in()?;
                f(self)
            }
            other => other,
        }
    }

    /// Uploads chunk `index` of `topic`: the envelope JSON as written, then
    /// the ciphertext, streamed from memory without copying.
    pub fn upload_chunk(
        &mut self,
        topic: &str,
        index: u64,
        envelope: &[u8],
        ciphertext: &[u8],
    ) -> Result<Uploaded, ClientError> {
        let path = format!(
            "/v1/machines/{}/topics/{}/chunks/{index}",
            encode_segment(&self.did.to_string()),
            encode_segment(topic)
        );
        let head_env = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"envelope\"; filename=\"chunk-{index}.json\"\r\nContent-Type: application/json\r\n\r\n"
        );
        let head_bin = format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"ciphertext\"; filename=\"chunk-{index}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        let tail = format!("\r\n--{BOUNDARY}--\r\n");
        let length =
            head_env.len() + envelope.len() + head_bin.len() + ciphertext.len() + tail.len();
        let answer = self.with_session(|me| {
            let body = Cursor::new(head_env.as_bytes())
                .chain(Cursor::new(envelope))
                .chain(Cursor::new(head_bin.as_bytes()))
                .chain(Cursor::new(ciphertext))
                .chain(Cursor::new(tail.as_bytes()));
            let request = me
                .agent
                .put(&format!("{}{path}", me.base))
                .set(
                    "Content-Type",
                    &format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .set("Content-Length", &length.to_string())
                .set(
                    "Authorization",
                    &format!("Bearer {}", me.token.as_deref().unwrap_or("")),
                );
            me.answer(request.send(body))
        })?;
        let stored = answer
            .get("stored")
            .and_then(Value::as_bool)
            .ok_or_else(|| self.protocol("upload answer without stored"))?;
        let chain_length = answer
            .get("chainLength")
            .and_then(|v| v.as_u64())
            .unwrap_or(index + 1);
        Ok(Uploaded {
            stored,
            chain_length,
        })
    }

    /// What the server holds of `topic` for this machine: the number of
    /// chunks and the head chunk's id (`(0, None)` when nothing).
    pub fn chain_head(&mut self, topic: &str) -> Result<(u64, Option<String>), ClientError> {
        let path = format!(
            "/v1/machines/{}/topics",
            encode_segment(&self.did.to_string())
        );
        let answer = self.with_session(|me| {
            let request = me.agent.get(&format!("{}{path}", me.base)).set(
                "Authorization",
                &format!("Bearer {}", me.token.as_deref().unwrap_or("")),
            );
            me.answer(request.call())
        })?;
        let Some(Value::Array(topics)) = answer.get("topics") else {
            return Err(self.protocol("topics answer without topics"));
        };
        for t in topics {
            if t.get("topic").and_then(Value::as_str) == Some(topic) {
                let count = t.get("chunkCount").and_then(Value::as_u64).unwrap_or(0);
                let head = t
                    .get("headChunkId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                return Ok((count, head));
            }
        }
        Ok((0, None))
    }

    /// Sends a signed-in JSON request (`GET`, `POST`, `PUT`, `PATCH`,
    /// `DELETE`) to `path` (starting with `/`, query included) and returns
    /// the JSON answer (`null` for an empty one); a 401 signs in again once.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let text = match body {
            Some(b) => Some(json::canonical::rfc8785(b).map_err(|e| self.protocol(e.to_string()))?),
            None => None,
        };
        self.with_session(|me| {
            let request = me.agent.request(method, &format!("{}{path}", me.base)).set(
                "Authorization",
                &format!("Bearer {}", me.token.as_deref().unwrap_or("")),
            );
            let result = match &text {
                Some(t) => request
                    .set("Content-Type", "application/json")
                    .send_string(t),
                None => request.call(),
            };
            match result {
                Ok(r) if r.status() == 204 => Ok(Value::Null),
                other => me.answer(other),
            }
        })
    }

    /// `GET path`, signed in.
    pub fn get(&mut self, path: &str) -> Result<Value, ClientError> {
        self.request("GET", path, None)
    }

    /// Every item of a paged list, signed in: `GET path` (with its query)
    /// page by page, `limit` items a page, the items read from the array
    /// `field`. [`Paging::Cursor`] lists follow `nextCursor` (`cursor=`);
    /// [`Paging::Offset`] lists add `offset=` until a page comes back short.
    pub fn all_pages(
        &mut self,
        path: &str,
        field: &str,
        limit: u32,
        paging: Paging,
    ) -> Result<Vec<Value>, ClientError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            match (paging, &cursor) {
                (Paging::Offset, _) => url.push_str(&format!("&offset={}", items.len())),
                (Paging::Cursor, Some(c)) => {
                    url.push_str(&format!("&cursor={}", encode_segment(c)))
                }
                (Paging::Cursor, None) => {}
            }
            let page = self.get(&url)?;
            let got = match page.get(field) {
                Some(Value::Array(list)) => list.clone(),
                _ => return Err(self.protocol(format!("{path}: answer without {field}"))),
            };
            let n = got.len();
            items.extend(got);
            match paging {
                Paging::Offset if n == limit as usize => {}
                Paging::Offset => return Ok(items),
                Paging::Cursor => match page.get("nextCursor").and_then(Value::as_str) {
                    Some(c) if n > 0 => cursor = Some(c.to_string()),
                    _ => return Ok(items),
                },
            }
        }
    }

    /// `GET path`, signed in, as bytes (a chunk's ciphertext, a receipt):
    /// at most `limit` bytes, a longer answer is a protocol error.
    pub fn get_bytes(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, ClientError> {
        self.with_session(|me| {
            let request = me.agent.get(&format!("{}{path}", me.base)).set(
                "Authorization",
                &format!("Bearer {}", me.token.as_deref().unwrap_or("")),
            );
            match request.call() {
                Ok(r) => {
                    let mut bytes = Vec::new();
                    r.into_reader()
                        .take(limit.saturating_add(1))
                        .read_to_end(&mut bytes)
                        .map_err(|e| me.network(e))?;
                    if bytes.len() as u64 > limit {
                        return Err(me.protocol(format!("{path}: answer over {limit} bytes")));
                    }
                    Ok(bytes)
                }
                Err(e) => me.answer(Err(e)).map(|_| Vec::new()),
            }
        })
    }

    /// The key this client signs in with (an owner also signs dataset
    /// manifests with it).
    pub fn key(&self) -> &MachineSigningKey {
        &self.key
    }

    /// Uploads a signed `sealstream.dataset.v1` manifest (as written by the
    /// agent or `publish`); the server checks it against the chunks it
    /// holds. Returns the dataset id.
    pub fn upload_dataset(&mut self, manifest: &[u8]) -> Result<String, ClientError> {
        let manifest = json::parse(manifest)
            .map_err(|e| self.protocol(format!("dataset manifest is not JSON: {e}")))?;
        let mut body = Map::new();
        body.insert("manifest".into(), manifest);
        let body = Value::Object(body);
        let answer = self.with_session(|me| me.post_json("/v1/datasets", &body, true))?;
        answer
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.protocol("dataset answer without id"))
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
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("/sensor/gps"), "%2Fsensor%2Fgps");
        assert_eq!(encode_segment("did:peaq:0xAb"), "did%3Apeaq%3A0xAb");
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
    }

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
}

/// What [`upload_chain_dir`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainUpload {
    /// Chunks in the directory.
    pub chunks: u64,
    /// Chunks the server stored now.
    pub stored: u64,
    /// Chunks the server already held (skipped or accepted as duplicates).
    pub already_held: u64,
    /// The dataset id, when `dataset.json` was uploaded.
    pub dataset_id: Option<String>,
}

/// Why a chain directory could not be uploaded.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The directory's chain could not be read.
    #[error(transparent)]
    Read(#[from] sealstream_core::layout::ReadChainError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The server refused or could not be reached (after retries).
    #[error("chunk {index}: {source}")]
    Chunk {
        /// The chain index.
        index: u64,
        /// The failure.
        source: ClientError,
    },
    /// The server refused `dataset.json` or could not be reached.
    #[error("dataset.json: {0}")]
    Dataset(ClientError),
    /// The server could not be asked what it holds.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Uploads the chain in `dir` (`chunk-N.json` and `chunk-N.bin`, in the
/// reference layout) as `topic`, from the first chunk the server does not
/// hold yet, then `dataset.json` if present. Each request is retried up to
/// `attempts` times on transient failures; `progress` hears each chunk's
/// ciphertext size, `log` each retry.
pub fn upload_chain_dir(
    client: &mut MarketClient,
    topic: &str,
    dir: &std::path::Path,
    attempts: u32,
    progress: &mut dyn FnMut(u64),
    log: &mut dyn FnMut(&str),
) -> Result<ChainUpload, UploadError> {
    use sealstream_core::layout::{ciphertext_name, list_chain};
    let chain = list_chain(dir)?;
    let (count, head) = with_retries(
        attempts,
        || client.chain_head(topic),
        |e, wait| log(&format!("{e}; retrying in {:.1} s", wait.as_secs_f64())),
    )?;
    // Skip what the server holds only when it is this chain: its head is
    // our chunk at the same index. Otherwise send everything and let the
    // server judge (the same chunks are accepted again; another chain's
    // are refused with the reason).
    let held = match (count.checked_sub(1), head) {
        (Some(last), Some(head)) => match chain.iter().find(|(i, _)| *i == last) {
            Some((_, path)) => {
                let envelope = sealstream_core::layout::read_envelope(path)?;
                if envelope.chunk_id == head {
                    count
                } else {
                    0
                }
            }
            None => 0,
        },
        _ => 0,
    };
    let mut summary = ChainUpload {
        chunks: chain.len() as u64,
        ..ChainUpload::default()
    };
    let read = |path: std::path::PathBuf| {
        std::fs::read(&path).map_err(|source| UploadError::File {
            path: path.display().to_string(),
            source,
        })
    };
    for (index, envelope_path) in &chain {
        if *index < held {
            summary.already_held += 1;
            continue;
        }
        let envelope = read(envelope_path.clone())?;
        let ciphertext = read(dir.join(ciphertext_name(*index)))?;
        let uploaded = with_retries(
            attempts,
            || client.upload_chunk(topic, *index, &envelope, &ciphertext),
            |e, wait| {
                log(&format!(
                    "chunk {index}: {e}; retrying in {:.1} s",
                    wait.as_secs_f64()
                ))
            },
        )
        .map_err(|source| UploadError::Chunk {
            index: *index,
            source,
        })?;
        if uploaded.stored {
            summary.stored += 1;
        } else {
            summary.already_held += 1;
        }
        progress(ciphertext.len() as u64);
    }
    let dataset = dir.join("dataset.json");
    if dataset.is_file() {
        let bytes = read(dataset)?;
        let id = with_retries(
            attempts,
            || client.upload_dataset(&bytes),
            |e, wait| {
                log(&format!(
                    "dataset.json: {e}; retrying in {:.1} s",
                    wait.as_secs_f64()
                ))
            },
        )
        .map_err(UploadError::Dataset)?;
        summary.dataset_id = Some(id);
    }
    Ok(summary)
}
