//! On-chain payment verification (issue 7, orders and payments): a small
//! JSON-RPC client of an EVM node ([`EvmRpc`]) and the check that a
//! transaction pays an order ([`EvmRpc::check_payment`]).
//!
//! One [`EvmRpc`] per configured chain. The check asks the node for its
//! chain id, the transaction, its receipt, the block it was mined in (when
//! the payment must not be older than a given time) and the latest block
//! number (`eth_chainId`, `eth_getTransactionByHash`,
//! `eth_getTransactionReceipt`, `eth_getBlockByHash`, `eth_blockNumber`)
//! and decides:
//! - [`PaymentStatus::Confirmed`]: every check passed with enough
//!   confirmations;
//! - [`PaymentStatus::Pending`]: nothing wrong yet, but not mined or not
//!   deep enough;
//! - [`PaymentStatus::Unknown`]: the node does not know the transaction
//!   (the caller decides how long to wait for it);
//! - [`PaymentError`]: the transaction is not the payment (final), or the
//!   node could not be asked ([`PaymentError::Rpc`], transient).

mod amount;
pub mod escrow;
mod hash;
mod payment;
mod rpc;
mod wire;

pub use amount::Amount;
pub use hash::TxHash;
pub use payment::{
    EscrowDeposit, ExpectedPayment, PaymentError, PaymentStatus, TransferLog, VerifiedPayment,
    TRANSFER_TOPIC,
};
pub use rpc::{EvmRpc, RpcError, RpcErrorKind, DEFAULT_TIMEOUT};
/// A 20-byte EVM address: parsed from `0x` + 40 hex digits in any case,
/// displayed in its EIP-55 checksum form.
pub use sealstream_core::identity::EvmAddress as Address;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_in_any_case_and_display_checksummed() {
        // The EIP-55 test vector.
        let checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        for text in [
            checksummed.to_string(),
            checksummed.to_lowercase(),
            format!("0x{}", checksummed[2..].to_uppercase()),
        ] {
            let a = Address::parse(&text, "payerAddress").unwrap();
            assert_eq!(a.to_string(), checksummed);
        }
        for bad in [
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F",
            "0xzz",
        ] {
            assert_eq!(
                Address::parse(bad, "payeeAddress").unwrap_err().field,
                "payeeAddress"
            );
        }
    }
}
