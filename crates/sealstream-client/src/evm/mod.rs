//! What a buyer needs to pay an order on an EVM chain itself: the
//! transaction ([`transaction`]: EIP-155 legacy or EIP-1559, signed with
//! the buyer's secp256k1 key, RLP-encoded by [`rlp`]; both defined in
//! `sealstream_core::evm`, which the market's escrow jobs sign with too)
//! and the chain's node ([`node`]: JSON-RPC for the nonce, fees, gas,
//! chain id, sending and receipts). [`crate::buyer`] puts them together
//! for an order.

pub mod node;
pub use sealstream_core::evm::{rlp, transaction, Uint256};
