//! The escrow contract `contracts/SealstreamEscrow.sol`: its ABI as far
//! as the market, the CLI and the tests use it (call data of `deposit`,
//! `release`, `dispute`, `resolve` and ERC-20 `approve`; the `Deposited`
//! event; a deal read through `deals(bytes32)`), and the order key that
//! names an order on chain.
//!
//! The contract holds one payment per order key until its dispute window
//! has passed (then anyone may `release` it to the seller), or until the
//! arbiter `resolve`s the buyer's dispute with a split (or the arbitration
//! deadline passes and the dispute lapses: `release` again pays the
//! seller). See docs/market-design.md, "Escrow".

use super::amount::Amount;
use super::wire::Log;
use super::Address;

pub use sealstream_core::evm::escrow::{
    approve_call as approve_call_be, deals_call, dispute_call, keccak, order_key, release_call,
    selector, APPROVE, DEALS, DEPOSIT, DEPOSITED_EVENT, DISPUTE, RELEASE, RESOLVE,
};

/// Call data of `deposit(orderKey, seller, token, amount)`; `token`
/// `None` deposits the native coin (send `amount` as the value).
pub fn deposit_call(
    order_key: &[u8; 32],
    seller: &Address,
    token: Option<&Address>,
    amount: Amount,
) -> Vec<u8> {
    sealstream_core::evm::escrow::deposit_call(order_key, seller, token, &amount.to_be_bytes())
}

/// Call data of `resolve(orderKey, toBuyer, decisionHash)`.
pub fn resolve_call(order_key: &[u8; 32], to_buyer: Amount, decision_hash: &[u8; 32]) -> Vec<u8> {
    sealstream_core::evm::escrow::resolve_call(order_key, &to_buyer.to_be_bytes(), decision_hash)
}

/// Call data of ERC-20 `approve(spender, amount)`.
pub fn approve_call(spender: &Address, amount: Amount) -> Vec<u8> {
    approve_call_be(spender, &amount.to_be_bytes())
}

/// A deal's state on chain (the contract's `State` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DealState {
    /// No deposit under this key.
    None,
    /// Deposited, within the window or waiting to be released.
    Held,
    /// Disputed by the buyer, waiting for the arbiter.
    Disputed,
    /// Paid to the seller.
    Released,
    /// Split by the arbiter.
    Resolved,
}

impl DealState {
    /// The enum's value on chain; `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<DealState> {
        Some(match v {
            0 => DealState::None,
            1 => DealState::Held,
            2 => DealState::Disputed,
            3 => DealState::Released,
            4 => DealState::Resolved,
            _ => return None,
        })
    }
}

/// A deal as the `deals(bytes32)` getter returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deal {
    /// Who deposited.
    pub buyer: Address,
    /// Who is paid on release.
    pub seller: Address,
    /// The token, `None` for the native coin.
    pub token: Option<Address>,
    /// The amount held, in base units.
    pub amount: Amount,
    /// Held: the end of the dispute window; Disputed: the arbitration
    /// deadline (Unix seconds).
    pub release_after: u64,
    /// Its state.
    pub state: DealState,
}

fn word_address(w: &[u8]) -> Option<Address> {
    let (pad, body) = w.split_at(12);
    pad.iter().all(|b| *b == 0).then(|| {
        let mut a = [0u8; 20];
        a.copy_from_slice(body);
        Address(a)
    })
}

fn word_u64(w: &[u8]) -> Option<u64> {
    w[..24]
        .iter()
        .all(|b| *b == 0)
        .then(|| u64::from_be_bytes(w[24..].try_into().expect("8 bytes")))
}

fn non_zero(a: Address) -> Option<Address> {
    (a.0 != [0; 20]).then_some(a)
}

impl Deal {
    /// Decodes the getter's return data (six words); `None` when it is
    /// not that shape.
    pub fn decode(data: &[u8]) -> Option<Deal> {
        if data.len() != 6 * 32 {
            return None;
        }
        let w = |i: usize| &data[i * 32..(i + 1) * 32];
        let state = word_u64(w(5)).and_then(|v| u8::try_from(v).ok())?;
        Some(Deal {
            buyer: word_address(w(0))?,
            seller: word_address(w(1))?,
            token: non_zero(word_address(w(2))?),
            amount: Amount::from_be_bytes(w(3).try_into().expect("32 bytes")),
            release_after: word_u64(w(4))?,
            state: DealState::from_u8(state)?,
        })
    }
}

/// A `Deposited` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposited {
    /// The contract that emitted it.
    pub escrow: Address,
    /// The order key.
    pub order_key: [u8; 32],
    /// The depositor.
    pub buyer: Address,
    /// The seller to be paid.
    pub seller: Address,
    /// The token, `None` for the native coin.
    pub token: Option<Address>,
    /// The amount held.
    pub amount: Amount,
    /// The end of the dispute window (Unix seconds).
    pub release_after: u64,
}

/// Decodes a `Deposited` log: topic 0 the event's hash, the order key,
/// buyer and seller as topics 1 to 3, token, amount and releaseAfter as
/// exactly three data words. `None` for any other log.
pub(crate) fn decode_deposited(log: &Log) -> Option<Deposited> {
    let [topic0, key, buyer, seller] = log.topics.as_slice() else {
        return None;
    };
    if topic0.0 != keccak(DEPOSITED_EVENT.as_bytes()) || log.data.0.len() != 3 * 32 {
        return None;
    }
    let d = &log.data.0;
    Some(Deposited {
        escrow: log.address.0,
        order_key: key.0,
        buyer: word_address(&buyer.0)?,
        seller: word_address(&seller.0)?,
        token: non_zero(word_address(&d[..32])?),
        amount: Amount::from_be_bytes(d[32..64].try_into().expect("32 bytes")),
        release_after: word_u64(&d[64..96])?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::wire::{Data, HexAddress, Word};
    use super::*;

    #[test]
    fn selectors_are_the_known_ones() {
        // ERC-20 approve, as every wallet knows it.
        assert_eq!(hex::encode(selector(APPROVE)), "095ea7b3");
        assert_eq!(
            approve_call(&Address([7; 20]), Amount::from(5u64)).len(),
            4 + 64
        );
        assert_eq!(release_call(&[1; 32])[..4], selector(RELEASE));
    }

    fn deposited_log(data: Vec<u8>) -> Log {
        let mut buyer = [0u8; 32];
        buyer[12..].copy_from_slice(&[1; 20]);
        let mut seller = [0u8; 32];
        seller[12..].copy_from_slice(&[2; 20]);
        Log {
            address: HexAddress(Address([9; 20])),
            topics: vec![
                Word(keccak(DEPOSITED_EVENT.as_bytes())),
                Word(order_key("ord_1")),
                Word(buyer),
                Word(seller),
            ],
            data: Data(data),
            removed: false,
        }
    }

    #[test]
    fn a_deposited_log_decodes_and_others_do_not() {
        let mut data = vec![0u8; 96];
        data[12..32].copy_from_slice(&[3; 20]);
        data[63] = 100;
        data[95] = 60;
        let log = deposited_log(data.clone());
        let d = decode_deposited(&log).unwrap();
        assert_eq!(d.order_key, order_key("ord_1"));
        assert_eq!(d.buyer, Address([1; 20]));
        assert_eq!(d.seller, Address([2; 20]));
        assert_eq!(d.token, Some(Address([3; 20])));
        assert_eq!(d.amount, Amount::from(100u64));
        assert_eq!(d.release_after, 60);
        // Native coin: token 0.
        let mut native = data.clone();
        native[12..32].fill(0);
        assert_eq!(
            decode_deposited(&deposited_log(native)).unwrap().token,
            None
        );
        // Wrong shape, wrong topic, dirty words.
        assert!(decode_deposited(&deposited_log(data[..64].to_vec())).is_none());
        let mut other = log.clone();
        other.topics[0] = Word([0; 32]);
        assert!(decode_deposited(&other).is_none());
        let mut dirty = data.clone();
        dirty[70] = 1;
        assert!(decode_deposited(&deposited_log(dirty)).is_none());
    }

    #[test]
    fn a_deal_decodes() {
        let mut data = vec![0u8; 192];
        data[12..32].copy_from_slice(&[1; 20]);
        data[44..64].copy_from_slice(&[2; 20]);
        data[127] = 42;
        data[159] = 7;
        data[191] = 2;
        let deal = Deal::decode(&data).unwrap();
        assert_eq!(deal.token, None);
        assert_eq!(deal.amount, Amount::from(42u64));
        assert_eq!(deal.release_after, 7);
        assert_eq!(deal.state, DealState::Disputed);
        data[191] = 5;
        assert!(Deal::decode(&data).is_none());
        assert!(Deal::decode(&data[..160]).is_none());
    }
}
