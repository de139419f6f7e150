//! The chain's node over JSON-RPC: the few calls a payment needs, their
//! answers decoded into typed results (hex quantities checked), and the
//! node's own error message kept for the person paying.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use sealstream_core::identity::EvmAddress;

/// Most time one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node was not reached, or its answer not read.
    #[error("node {url}: {message}")]
    Network {
        /// The node.
        url: String,
        /// What failed.
        message: String,
    },
    /// The node answered the call with an error.
    #[error("node {url}: {method}: {message} (JSON-RPC error {code})")]
    Refused {
        /// The node.
        url: String,
        /// The call.
        method: &'static str,
        /// The JSON-RPC error code.
        code: i64,
        /// The node's message ("insufficient funds for gas * price + value").
        message: String,
    },
    /// The answer was not what the call returns.
    #[error("node {url}: {method}: unexpected answer: {message}")]
    Protocol {
        /// The node.
        url: String,
        /// The call.
        method: &'static str,
        /// What was wrong with it.
        message: String,
    },
}

/// A JSON-RPC endpoint of an EVM chain.
pub struct Node {
    url: String,
    http: reqwest::blocking::Client,
    next_id: u64,
}

#[derive(Serialize)]
struct Request<'a, P: Serialize> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: P,
}

#[derive(Deserialize)]
struct Answer<T> {
    result: Option<T>,
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
}

/// The fields of a call (`eth_estimateGas`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// The sender, `0x…`.
    pub from: String,
    /// The receiver or contract, `0x…`.
    pub to: String,
    /// Wei sent, a quantity.
    pub value: String,
    /// Call data, `0x…`.
    pub data: String,
}

/// What a mined transaction's receipt says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// It succeeded (status 1).
    pub success: bool,
    /// Its block.
    pub block_number: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptFields {
    status: Option<String>,
    block_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockFields {
    base_fee_per_gas: Option<String>,
}

/// A hex quantity (`0x1a`) of at most 128 bits.
fn quantity(text: &str) -> Result<u128, String> {
    text.strip_prefix("0x")
        .filter(|d| !d.is_empty() && d.len() <= 32)
        .and_then(|d| u128::from_str_radix(d, 16).ok())
        .ok_or_else(|| format!("expected a hex quantity, got {text:?}"))
}

impl Node {
    /// A node at `url` (`http(s)://…`); nothing is sent yet.
    pub fn new(url: &str) -> Result<Node, NodeError> {
        let http = reqwest::blocking::Client::builder()
            .tcp_nodelay(true)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| NodeError::Network {
                url: url.to_string(),
                message: crate::market::describe(&e),
            })?;
        Ok(Node {
            url: url.to_string(),
            http,
            next_id: 1,
        })
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn call<P: Serialize, T: DeserializeOwned>(
        &mut self,
        method: &'static str,
        params: P,
    ) -> Result<Option<T>, NodeError> {
        let id = self.next_id;
        self.next_id += 1;
        let network = |message: String| NodeError::Network {
            url: self.url.clone(),
            message,
        };
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(
                serde_json::to_vec(&Request {
                    jsonrpc: "2.0",
                    id,
                    method,
                    params,
                })
                .map_err(|e| network(e.to_string()))?,
            )
            .send()
            .map_err(|e| network(crate::market::describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .map_err(|e| network(crate::market::describe(&e)))?;
        let protocol = |message: String| NodeError::Protocol {
            url: self.url.clone(),
            method,
            message,
        };
        let answer: Answer<T> = serde_json::from_slice(&body).map_err(|e| {
            protocol(if status.is_success() {
                e.to_string()
            } else {
                format!("HTTP {status}")
            })
        })?;
        match answer.error {
            Some(e) => Err(NodeError::Refused {
                url: self.url.clone(),
                method,
                code: e.code,
                message: e.message,
            }),
            None => Ok(answer.result),
        }
    }

    fn required<P: Serialize, T: DeserializeOwned>(
        &mut self,
        method: &'static str,
        params: P,
    ) -> Result<T, NodeError> {
        self.call(method, params)?
            .ok_or_else(|| self.protocol(method, "no result".into()))
    }

    fn protocol(&self, method: &'static str, message: String) -> NodeError {
        NodeError::Protocol {
            url: self.url.clone(),
            method,
            message,
        }
    }

    fn quantity<P: Serialize>(
        &mut self,
        method: &'static str,
        params: P,
    ) -> Result<u128, NodeError> {
        let text: String = self.required(method, params)?;
        quantity(&text).map_err(|m| self.protocol(method, m))
    }

    /// `eth_chainId`.
    pub fn chain_id(&mut self) -> Result<u64, NodeError> {
        let id = self.quantity("eth_chainId", ())?;
        u64::try_from(id).map_err(|_| self.protocol("eth_chainId", "beyond 64 bits".into()))
    }

    /// The next nonce of `address`, pending transactions counted.
    pub fn nonce(&mut self, address: &EvmAddress) -> Result<u64, NodeError> {
        let n = self.quantity(
            "eth_getTransactionCount",
            (address.to_checksum(), "pending"),
        )?;
        u64::try_from(n)
            .map_err(|_| self.protocol("eth_getTransactionCount", "beyond 64 bits".into()))
    }

    /// `eth_gasPrice`.
    pub fn gas_price(&mut self) -> Result<u128, NodeError> {
        self.quantity("eth_gasPrice", ())
    }

    /// `eth_maxPriorityFeePerGas`.
    pub fn max_priority_fee(&mut self) -> Result<u128, NodeError> {
        self.quantity("eth_maxPriorityFeePerGas", ())
    }

    /// The latest block's base fee; `None` on a chain without EIP-1559.
    pub fn base_fee(&mut self) -> Result<Option<u128>, NodeError> {
        let block: BlockFields = self.required("eth_getBlockByNumber", ("latest", false))?;
        block
            .base_fee_per_gas
            .map(|f| quantity(&f).map_err(|m| self.protocol("eth_getBlockByNumber", m)))
            .transpose()
    }

    /// `eth_estimateGas` of `call`.
    pub fn estimate_gas(&mut self, call: &Call) -> Result<u64, NodeError> {
        let gas = self.quantity("eth_estimateGas", (call,))?;
        u64::try_from(gas).map_err(|_| self.protocol("eth_estimateGas", "beyond 64 bits".into()))
    }

    /// `eth_sendRawTransaction`: the hash the node gives back.
    pub fn send_raw(&mut self, raw: &[u8]) -> Result<String, NodeError> {
        self.required(
            "eth_sendRawTransaction",
            (format!("0x{}", hex::encode(raw)),),
        )
    }

    /// The receipt of `hash` once mined, `None` before.
    pub fn receipt(&mut self, hash: &str) -> Result<Option<Receipt>, NodeError> {
        let Some(fields) = self.call::<_, ReceiptFields>("eth_getTransactionReceipt", (hash,))?
        else {
            return Ok(None);
        };
        let method = "eth_getTransactionReceipt";
        let (Some(status), Some(block)) = (fields.status, fields.block_number) else {
            // Some nodes answer a pending transaction with a receipt
            // without a block.
            return Ok(None);
        };
        let status = quantity(&status).map_err(|m| self.protocol(method, m))?;
        let block = quantity(&block).map_err(|m| self.protocol(method, m))?;
        Ok(Some(Receipt {
            success: status == 1,
            block_number: u64::try_from(block)
                .map_err(|_| self.protocol(method, "beyond 64 bits".into()))?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_checked() {
        assert_eq!(quantity("0x0"), Ok(0));
        assert_eq!(quantity("0x5208"), Ok(21_000));
        for bad in ["", "0x", "12", "0xzz", &format!("0x1{}", "0".repeat(32))] {
            assert!(quantity(bad).is_err(), "{bad:?}");
        }
    }
}
