//! The call data of the escrow contract `contracts/SealstreamEscrow.sol`
//! (and ERC-20 `approve`, which a token deposit needs first), and the key
//! that names an order on chain. Shared by the buyer's CLI (deposit,
//! dispute) and the market (release, resolve), which also decodes the
//! contract's events and deals.

use sha3::{Digest, Keccak256};

use crate::identity::EvmAddress;

/// `keccak256(bytes)`.
pub fn keccak(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// The key of an order on chain: `keccak256` of its id's UTF-8 bytes.
pub fn order_key(order_id: &str) -> [u8; 32] {
    keccak(order_id.as_bytes())
}

/// The 4-byte selector of a function signature (`"release(bytes32)"`).
pub fn selector(signature: &str) -> [u8; 4] {
    let digest = keccak(signature.as_bytes());
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The contract's `deposit` signature.
pub const DEPOSIT: &str = "deposit(bytes32,address,address,uint256)";
/// The contract's `release` signature.
pub const RELEASE: &str = "release(bytes32)";
/// The contract's `dispute` signature.
pub const DISPUTE: &str = "dispute(bytes32,bytes32)";
/// The contract's `resolve` signature.
pub const RESOLVE: &str = "resolve(bytes32,uint256,bytes32)";
/// The contract's `deals` getter signature.
pub const DEALS: &str = "deals(bytes32)";
/// ERC-20 `approve`, which a token deposit needs first.
pub const APPROVE: &str = "approve(address,uint256)";
/// The `Deposited` event's signature (its topic 0 is the keccak of it).
pub const DEPOSITED_EVENT: &str = "Deposited(bytes32,address,address,address,uint256,uint64)";

/// An address as an ABI word (12 zero bytes, then the address).
pub fn address_word(a: &EvmAddress) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(&a.0);
    w
}

fn call(signature: &str, words: &[[u8; 32]]) -> Vec<u8> {
    let mut out = selector(signature).to_vec();
    for w in words {
        out.extend_from_slice(w);
    }
    out
}

/// Call data of `deposit(orderKey, seller, token, amount)` (`amount` a
/// big-endian `uint256`); `token` `None` deposits the native coin (send
/// `amount` as the value).
pub fn deposit_call(
    order_key: &[u8; 32],
    seller: &EvmAddress,
    token: Option<&EvmAddress>,
    amount: &[u8; 32],
) -> Vec<u8> {
    let token = token.copied().unwrap_or(EvmAddress([0; 20]));
    call(
        DEPOSIT,
        &[
            *order_key,
            address_word(seller),
            address_word(&token),
            *amount,
        ],
    )
}

/// Call data of `release(orderKey)`.
pub fn release_call(order_key: &[u8; 32]) -> Vec<u8> {
    call(RELEASE, &[*order_key])
}

/// Call data of `dispute(orderKey, evidenceHash)`.
pub fn dispute_call(order_key: &[u8; 32], evidence_hash: &[u8; 32]) -> Vec<u8> {
    call(DISPUTE, &[*order_key, *evidence_hash])
}

/// Call data of `resolve(orderKey, toBuyer, decisionHash)`.
pub fn resolve_call(
    order_key: &[u8; 32],
    to_buyer: &[u8; 32],
    decision_hash: &[u8; 32],
) -> Vec<u8> {
    call(RESOLVE, &[*order_key, *to_buyer, *decision_hash])
}

/// Call data of `deals(orderKey)` (the getter of a deal).
pub fn deals_call(order_key: &[u8; 32]) -> Vec<u8> {
    call(DEALS, &[*order_key])
}

/// Call data of ERC-20 `approve(spender, amount)`.
pub fn approve_call(spender: &EvmAddress, amount: &[u8; 32]) -> Vec<u8> {
    call(APPROVE, &[address_word(spender), *amount])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_the_known_ones() {
        // ERC-20 approve and transfer, as every wallet knows them.
        assert_eq!(hex::encode(selector(APPROVE)), "095ea7b3");
        assert_eq!(
            hex::encode(selector("transfer(address,uint256)")),
            "a9059cbb"
        );
        let data = deposit_call(&[1; 32], &EvmAddress([2; 20]), None, &[0; 32]);
        assert_eq!(data.len(), 4 + 4 * 32);
        assert_eq!(data[4 + 64..4 + 96], [0u8; 32], "native: token 0");
    }
}
