//! The JSON-RPC result shapes the payment check reads, decoded strictly:
//! every hex field is checked for its exact form, and a field that is
//! missing or malformed fails the whole reply (naming its JSON path).
//! Fields not listed here are ignored.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::amount::Amount;
use super::hash::parse_word;
use super::Address;

/// A hex quantity that fits 64 bits (block numbers, chain ids, status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quantity(pub u64);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_u64_quantity(&text)
            .map(Quantity)
            .map_err(D::Error::custom)
    }
}

/// Parses `0x` and 1 to 16 significant hex digits.
pub(crate) fn parse_u64_quantity(text: &str) -> Result<u64, String> {
    let digits = text
        .strip_prefix("0x")
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("expected a hex quantity 0x…")?;
    u64::from_str_radix(digits, 16).map_err(|_| "a quantity larger than 64 bits".to_string())
}

/// A 32-byte word: `0x` + 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word(pub [u8; 32]);

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_word(&text, "")
            .map(Word)
            .map_err(|e| D::Error::custom(e.constraint))
    }
}

/// A 20-byte address: `0x` + 40 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HexAddress(pub Address);

impl<'de> Deserialize<'de> for HexAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Address::parse(&text, "")
            .map(HexAddress)
            .map_err(|e| D::Error::custom(e.constraint))
    }
}

/// A 256-bit hex quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HexAmount(pub Amount);

impl<'de> Deserialize<'de> for HexAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Amount::parse_quantity(&text, "")
            .map(HexAmount)
            .map_err(|e| D::Error::custom(e.constraint))
    }
}

/// Bytes: `0x` + an even number of hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Data(pub Vec<u8>);

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.strip_prefix("0x")
            .and_then(|body| hex::decode(body).ok())
            .map(Data)
            .ok_or_else(|| D::Error::custom("expected 0x followed by an even number of hex digits"))
    }
}

/// The fields of `eth_getTransactionByHash` the check reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transaction {
    pub hash: Word,
    pub from: HexAddress,
    /// `null` for a contract creation.
    pub to: Option<HexAddress>,
    pub value: HexAmount,
    pub input: Data,
    /// `null` (or absent) while the transaction is not mined.
    #[serde(default)]
    pub block_number: Option<Quantity>,
    #[serde(default)]
    pub block_hash: Option<Word>,
    /// Absent for legacy transactions signed without EIP-155.
    #[serde(default)]
    pub chain_id: Option<Quantity>,
}

/// The fields of `eth_getTransactionReceipt` the check reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Receipt {
    pub transaction_hash: Word,
    pub block_hash: Word,
    pub block_number: Quantity,
    /// `0x1` success, `0x0` reverted (required: pre-Byzantium receipts
    /// without it are refused).
    pub status: Quantity,
    pub logs: Vec<Log>,
}

/// The fields of `eth_getBlockByHash` (without transactions) the check
/// reads.
#[derive(Debug, Deserialize)]
pub(crate) struct BlockHeader {
    pub hash: Word,
    pub number: Quantity,
    /// Unix seconds, as the block's producer set them.
    pub timestamp: Quantity,
}

/// One log of a receipt.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Log {
    pub address: HexAddress,
    pub topics: Vec<Word>,
    pub data: Data,
    /// True when the log was dropped by a reorganisation.
    #[serde(default)]
    pub removed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
        serde_path_to_error::deserialize(v).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_u64_quantity("0x0"), Ok(0));
        assert_eq!(parse_u64_quantity("0x2105"), Ok(8453));
        assert_eq!(parse_u64_quantity("0xffffffffffffffff"), Ok(u64::MAX));
        for bad in ["0x", "2105", "0x1_0", "0x10000000000000000", "0xz", ""] {
            assert!(parse_u64_quantity(bad).is_err(), "{bad:?}");
        }
        assert!(
            decode::<Quantity>(json!(5)).is_err(),
            "numbers are not quantities"
        );
    }

    #[test]
    fn a_receipt_decodes_and_bad_fields_are_named() {
        let receipt = json!({
            "transactionHash": format!("0x{}", "ab".repeat(32)),
            "blockHash": format!("0x{}", "cd".repeat(32)),
            "blockNumber": "0x10",
            "status": "0x1",
            "blockTimestamp": 1795316106,
            "logs": [{
                "address": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
                "topics": [format!("0x{}", "00".repeat(32))],
                "data": "0x",
            }],
        });
        let r: Receipt = decode(receipt.clone()).unwrap();
        assert_eq!(r.block_number, Quantity(16));
        assert_eq!(r.logs.len(), 1);
        assert!(!r.logs[0].removed);

        let mut bad = receipt.clone();
        bad["logs"][0]["data"] = json!("0x123");
        assert!(decode::<Receipt>(bad)
            .unwrap_err()
            .starts_with("logs[0].data: "));
        let mut bad = receipt.clone();
        bad["logs"][0]["topics"][0] = json!("0x12");
        assert!(decode::<Receipt>(bad)
            .unwrap_err()
            .starts_with("logs[0].topics[0]: "));
        let mut bad = receipt.clone();
        bad.as_object_mut().unwrap().remove("status");
        assert!(decode::<Receipt>(bad).unwrap_err().contains("status"));
        let mut bad = receipt;
        bad["blockNumber"] = json!(16);
        assert!(decode::<Receipt>(bad)
            .unwrap_err()
            .starts_with("blockNumber: "));
    }

    #[test]
    fn a_pending_transaction_has_no_block() {
        let tx: Transaction = decode(json!({
            "hash": format!("0x{}", "ab".repeat(32)),
            "from": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
            "to": null,
            "value": "0x0",
            "input": "0x6080",
            "blockNumber": null,
            "blockHash": null,
        }))
        .unwrap();
        assert_eq!(tx.block_number, None);
        assert_eq!(tx.to, None);
        assert_eq!(tx.chain_id, None);
        assert_eq!(tx.input.0, vec![0x60, 0x80]);
    }
}
