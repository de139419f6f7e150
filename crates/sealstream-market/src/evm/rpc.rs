//! [`EvmRpc`]: a small JSON-RPC 2.0 client of one EVM node over HTTP(S).
//!
//! The node's URL often carries an API key (in the path, the query or the
//! user info), so it is never printed whole: [`EvmRpc`]'s `Display` and
//! `Debug` and every [`RpcError`] show only the scheme, host and port.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::hash::to_hex;
use super::wire::{parse_u64_quantity, BlockHeader, Receipt, Transaction};
use super::TxHash;

/// The default time limit of one request, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest reply body read (a receipt with many logs stays far below).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// The longest node error message kept in an [`RpcError`].
const MAX_MESSAGE_CHARS: usize = 300;

/// A JSON-RPC client of one EVM node. Cheap to clone (clones share one
/// connection pool).
#[derive(Clone)]
pub struct EvmRpc {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    url: reqwest::Url,
    endpoint: String,
    timeout: Duration,
    next_id: AtomicU64,
}

/// A failed JSON-RPC exchange with a node: transient from the market's
/// point of view (answer 502/503 and let the caller retry).
#[derive(Debug, thiserror::Error)]
#[error("EVM node {endpoint}: {kind}")]
pub struct RpcError {
    /// The node, as scheme, host and port only.
    pub endpoint: String,
    /// What went wrong.
    pub kind: RpcErrorKind,
}

/// What went wrong in an [`RpcError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcErrorKind {
    /// The URL is not an absolute `http://` or `https://` URL with a host.
    #[error("invalid node URL: {0}")]
    InvalidUrl(&'static str),
    /// The request could not be sent or its reply not read (connection
    /// refused, TLS, reset). The source never carries the URL.
    #[error("request failed")]
    Transport(#[source] reqwest::Error),
    /// No complete reply within the time limit.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The node answered with an HTTP status other than 2xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The node answered with a JSON-RPC error object.
    #[error("{method} failed with error {code}: {message}")]
    Rpc {
        /// The method called.
        method: &'static str,
        /// The JSON-RPC error code.
        code: i64,
        /// The node's message (shortened, control characters removed).
        message: String,
    },
    /// The reply is not the JSON-RPC shape expected; `field` is its JSON
    /// path (`eth_getTransactionReceipt.logs[0].data`).
    #[error("malformed reply: {field}: {reason}")]
    Malformed {
        /// The JSON path of the bad part.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two replies of the node contradict each other (a chain
    /// reorganisation in between, or a load balancer over nodes that
    /// disagree); asking again later may succeed.
    #[error("inconsistent replies: {0}")]
    Inconsistent(String),
}

impl EvmRpc {
    /// A client of the node at `url` (`http://` or `https://`), with
    /// [`DEFAULT_TIMEOUT`] per request.
    pub fn new(url: &str) -> Result<Self, RpcError> {
        Self::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// A client of the node at `url` with `timeout` per request.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, RpcError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| RpcError {
            endpoint: "(unparsable URL)".to_string(),
            kind: RpcErrorKind::InvalidUrl("not an absolute URL"),
        })?;
        let endpoint = redact(&parsed);
        let invalid = |why| RpcError {
            endpoint: endpoint.clone(),
            kind: RpcErrorKind::InvalidUrl(why),
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        let client = reqwest::Client::builder()
            // TCP_NODELAY (reqwest's default, said here so it stays).
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would send the request (and a key in its URL) to
            // an address nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RpcError {
                endpoint: endpoint.clone(),
                kind: RpcErrorKind::Transport(e.without_url()),
            })?;
        Ok(EvmRpc {
            inner: Arc::new(Inner {
                client,
                url: parsed,
                endpoint,
                timeout,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The node as scheme, host and port (what logs and errors show).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, RpcError> {
        let text: String = self.call("eth_chainId", json!([])).await?;
        parse_u64_quantity(&text).map_err(|reason| self.malformed("eth_chainId", reason))
    }

    /// `eth_blockNumber`: the number of the latest block.
    pub async fn block_number(&self) -> Result<u64, RpcError> {
        let text: String = self.call("eth_blockNumber", json!([])).await?;
        parse_u64_quantity(&text).map_err(|reason| self.malformed("eth_blockNumber", reason))
    }

    /// `eth_getTransactionByHash`; `None` when the node does not know it.
    pub(crate) async fn transaction(&self, hash: &TxHash) -> Result<Option<Transaction>, RpcError> {
        self.call("eth_getTransactionByHash", json!([to_hex(&hash.0)]))
            .await
    }

    /// `eth_getTransactionReceipt`; `None` while not mined (or unknown).
    pub(crate) async fn receipt(&self, hash: &TxHash) -> Result<Option<Receipt>, RpcError> {
        self.call("eth_getTransactionReceipt", json!([to_hex(&hash.0)]))
            .await
    }

    /// `eth_getBlockByHash` without its transactions; `None` when the node
    /// does not know the block.
    pub(crate) async fn block_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<BlockHeader>, RpcError> {
        self.call("eth_getBlockByHash", json!([to_hex(hash), false]))
            .await
    }

    /// The latest block's timestamp (Unix seconds): the chain's clock,
    /// which the escrow contract's windows are measured by.
    pub async fn latest_timestamp(&self) -> Result<u64, RpcError> {
        let block: Option<BlockHeader> = self
            .call("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        block
            .map(|b| b.timestamp.0)
            .ok_or_else(|| self.malformed("eth_getBlockByNumber", "no latest block"))
    }

    /// `eth_getTransactionCount(address, "pending")`: the next nonce.
    pub async fn nonce(&self, address: &super::Address) -> Result<u64, RpcError> {
        let text: String = self
            .call(
                "eth_getTransactionCount",
                json!([address.to_string(), "pending"]),
            )
            .await?;
        parse_u64_quantity(&text).map_err(|r| self.malformed("eth_getTransactionCount", r))
    }

    /// `eth_gasPrice`, in wei per gas.
    pub async fn gas_price(&self) -> Result<u64, RpcError> {
        let text: String = self.call("eth_gasPrice", json!([])).await?;
        parse_u64_quantity(&text).map_err(|r| self.malformed("eth_gasPrice", r))
    }

    /// `eth_estimateGas` of a call of `to` with `data` from `from`: an
    /// error ([`RpcErrorKind::Rpc`]) when it would revert.
    pub async fn estimate_gas(
        &self,
        from: &super::Address,
        to: &super::Address,
        data: &[u8],
    ) -> Result<u64, RpcError> {
        let text: String = self
            .call(
                "eth_estimateGas",
                json!([{"from": from.to_string(), "to": to.to_string(), "data": to_hex(data)}]),
            )
            .await?;
        parse_u64_quantity(&text).map_err(|r| self.malformed("eth_estimateGas", r))
    }

    /// `eth_call` of `to` with `data` at the latest block: the returned
    /// bytes.
    pub async fn eth_call(&self, to: &super::Address, data: &[u8]) -> Result<Vec<u8>, RpcError> {
        let text: String = self
            .call(
                "eth_call",
                json!([{"to": to.to_string(), "data": to_hex(data)}, "latest"]),
            )
            .await?;
        text.strip_prefix("0x")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| self.malformed("eth_call", "expected 0x and hex digits"))
    }

    /// `eth_sendRawTransaction`: the transaction's hash.
    pub async fn send_raw_transaction(&self, raw: &[u8]) -> Result<TxHash, RpcError> {
        let text: String = self
            .call("eth_sendRawTransaction", json!([to_hex(raw)]))
            .await?;
        TxHash::parse(&text, "").map_err(|e| self.malformed("eth_sendRawTransaction", e.constraint))
    }

    /// The status of the receipt of `hash`: `Some(true)` mined with
    /// success, `Some(false)` reverted, `None` not mined yet.
    pub async fn receipt_status(&self, hash: &TxHash) -> Result<Option<bool>, RpcError> {
        Ok(self.receipt(hash).await?.map(|r| r.status.0 == 1))
    }

    pub(crate) fn error(&self, kind: RpcErrorKind) -> RpcError {
        RpcError {
            endpoint: self.inner.endpoint.clone(),
            kind,
        }
    }

    pub(crate) fn malformed(
        &self,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> RpcError {
        self.error(RpcErrorKind::Malformed {
            field: field.into(),
            reason: reason.into(),
        })
    }

    /// Calls `method` with `params` and decodes its `result` as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<T, RpcError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = self.post(body.to_string()).await?;
        let reply: Value = serde_json::from_slice(&reply)
            .map_err(|e| self.malformed(method, format!("not JSON ({e})")))?;
        let Value::Object(mut reply) = reply else {
            return Err(self.malformed(method, "not a JSON object"));
        };
        if reply.get("jsonrpc") != Some(&json!("2.0")) {
            return Err(self.malformed(format!("{method}.jsonrpc"), "expected \"2.0\""));
        }
        if reply.get("id") != Some(&json!(id)) {
            return Err(self.malformed(format!("{method}.id"), "not the id of the request"));
        }
        match reply.remove("error") {
            None | Some(Value::Null) => {}
            Some(error) => return Err(self.rpc_error(method, &error)),
        }
        let result = reply
            .remove("result")
            .ok_or_else(|| self.malformed(method, "neither result nor error"))?;
        serde_path_to_error::deserialize(result).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                method.to_string()
            } else {
                format!("{method}.{path}")
            };
            self.malformed(field, e.into_inner().to_string())
        })
    }

    fn rpc_error(&self, method: &'static str, error: &Value) -> RpcError {
        let code = error.get("code").and_then(Value::as_i64);
        let message = error.get("message").and_then(Value::as_str);
        match (code, message) {
            (Some(code), Some(message)) => self.error(RpcErrorKind::Rpc {
                method,
                code,
                message: message
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_MESSAGE_CHARS)
                    .collect(),
            }),
            _ => self.malformed(
                format!("{method}.error"),
                "expected an object with a numeric code and a string message",
            ),
        }
    }

    /// POSTs `body` as JSON and returns the reply body (at most
    /// [`MAX_REPLY_BYTES`]).
    async fn post(&self, body: String) -> Result<Vec<u8>, RpcError> {
        let transport = |e: reqwest::Error| {
            self.error(if e.is_timeout() {
                RpcErrorKind::Timeout(self.inner.timeout)
            } else {
                RpcErrorKind::Transport(e.without_url())
            })
        };
        let mut response = self
            .inner
            .client
            .post(self.inner.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.error(RpcErrorKind::Status(status.as_u16())));
        }
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if out.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(self.malformed("reply", format!("larger than {MAX_REPLY_BYTES} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// `scheme://host[:port]`, and `/…` when the URL had a path or query: what
/// may be shown of a node URL.
fn redact(url: &reqwest::Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        out.push_str("/…");
    }
    out
}

impl fmt::Display for EvmRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.endpoint)
    }
}

impl fmt::Debug for EvmRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvmRpc({})", self.inner.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_to_scheme_host_and_port() {
        for (url, shown) in [
            (
                "https://base-mainnet.example.com/v2/SECRETKEY",
                "https://base-mainnet.example.com/…",
            ),
            (
                "https://node.example.com/?apikey=SECRETKEY",
                "https://node.example.com/…",
            ),
            (
                "https://user:SECRETKEY@node.example.com",
                "https://node.example.com",
            ),
            ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
            ("http://127.0.0.1:8545/", "http://127.0.0.1:8545"),
            ("http://[::1]:8545/#SECRETKEY", "http://[::1]:8545/…"),
        ] {
            let rpc = EvmRpc::new(url).unwrap();
            assert_eq!(rpc.endpoint(), shown);
            assert_eq!(rpc.to_string(), shown);
            assert!(!format!("{rpc:?}").contains("SECRETKEY"));
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        for url in [
            "ws://node.example.com/SECRETKEY",
            "file:///SECRETKEY",
            "node.example.com/SECRETKEY",
            "",
            "mailto:SECRETKEY@example.com",
        ] {
            let e = EvmRpc::new(url).unwrap_err();
            assert!(matches!(e.kind, RpcErrorKind::InvalidUrl(_)), "{url}: {e}");
            assert!(!e.to_string().contains("SECRETKEY"), "{e}");
        }
    }
}
