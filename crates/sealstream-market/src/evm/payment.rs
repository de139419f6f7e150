//! Checking that a transaction pays what an order asks: [`EvmRpc::check_payment`].
//!
//! A payment is one transaction, sent by the buyer, that either
//! - transfers the native coin straight to the payee (`to` = payee, the
//!   amount is the transaction's `value`), or
//! - makes an ERC-20 token contract emit `Transfer(from, payee, value)`
//!   logs (the transaction is sent to the token contract; the amount is the
//!   sum of those logs' values).
//!
//! This is how `peaqos stream pay` pays: a plain value transfer without
//! data, or a call of the token's `transfer(to, amount)`. Value moved by
//! internal calls (a contract forwarding the native coin) is not seen.
//!
//! Everything a transaction commits to (sender, recipient, value, chain id)
//! is checked as soon as the node knows the transaction, mined or not, so a
//! wrong payment is refused at once; what only mining decides (success,
//! logs, the block's time, depth) waits for the receipt.
//!
//! The order id is not on chain, so a transfer from the buyer to the payee
//! made before the order (for something else) would pass every other
//! check: [`ExpectedPayment::not_before`] binds the payment in time, by the
//! timestamp of the block it was mined in (set by the block's producer,
//! so the caller allows some skew).

use std::fmt;

use super::amount::Amount;
use super::hash::to_hex;
use super::rpc::{EvmRpc, RpcError, RpcErrorKind};
use super::wire::{Log, Receipt, Transaction};
use super::{Address, TxHash};

/// `keccak256("Transfer(address,address,uint256)")`: topic 0 of an ERC-20
/// transfer log.
pub const TRANSFER_TOPIC: [u8; 32] = [
    0xdd, 0xf2, 0x52, 0xad, 0x1b, 0xe2, 0xc8, 0x9b, 0x69, 0xc2, 0xb0, 0x68, 0xfc, 0x37, 0x8d, 0xaa,
    0x95, 0x2b, 0xa7, 0xf1, 0x63, 0xc4, 0xa1, 0x16, 0x28, 0xf5, 0x5a, 0x4d, 0xf5, 0x23, 0xb3, 0xef,
];

/// What an order expects a payment transaction to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedPayment {
    /// The configured chain: the node's `eth_chainId`, and the
    /// transaction's `chainId` when it has one, must equal it.
    pub chain_id: u64,
    /// The transaction claimed to pay.
    pub tx_hash: TxHash,
    /// The buyer: the transaction's sender must be this address.
    pub payer: Address,
    /// The seller: the native coin's recipient, or the `to` of the token's
    /// `Transfer` logs.
    pub pay_to: Address,
    /// The ERC-20 token contract, or `None` for the native coin.
    pub token: Option<Address>,
    /// The least amount accepted, in base units (wei or token units).
    pub min_amount: Amount,
    /// The confirmations required: `latest - block + 1` must reach it
    /// (values below 1 count as 1: a payment must be mined).
    pub confirmations: u64,
    /// The earliest block timestamp accepted (Unix seconds): a
    /// transaction mined in an earlier block is refused
    /// ([`PaymentError::MinedTooEarly`]). `None` accepts any time.
    pub not_before: Option<u64>,
    /// Paid into this escrow contract instead of straight to the payee:
    /// the transaction is sent to the contract and its receipt carries the
    /// contract's `Deposited` event of the order key, with the payer, the
    /// payee, the token and exactly `min_amount`.
    pub escrow: Option<EscrowDeposit>,
}

/// Where an escrowed payment is deposited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowDeposit {
    /// The escrow contract.
    pub contract: Address,
    /// The order's key ([`super::escrow::order_key`]).
    pub order_key: [u8; 32],
}

/// The outcome of a check that found nothing wrong (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Every check passed, with enough confirmations.
    Confirmed(VerifiedPayment),
    /// Nothing wrong so far, but not final: mined with fewer confirmations
    /// than required, or known to the node but not mined yet (or mined and
    /// its receipt not indexed yet: `confirmations: 0`).
    Pending {
        /// The confirmations so far (0 when not mined).
        confirmations: u64,
        /// The confirmations required.
        required: u64,
    },
    /// The node does not know the transaction. Not refused, because a
    /// transaction just sent may not have reached this node yet; the
    /// caller decides how long to wait (a hash nobody sent stays unknown
    /// for ever).
    Unknown {
        /// The confirmations required.
        required: u64,
    },
}

/// A payment that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPayment {
    /// The transaction.
    pub tx_hash: TxHash,
    /// The block it was mined in.
    pub block_number: u64,
    /// That block's hash, `0x` + 64 lower-case hex digits (to detect a
    /// later reorganisation).
    pub block_hash: String,
    /// The payer (the transaction's sender).
    pub from: Address,
    /// The address paid (the expected payee).
    pub to: Address,
    /// The amount paid to it, in base units (for a token: the sum of the
    /// transfers to it in this transaction, capped at `2^256 - 1`).
    pub amount: Amount,
    /// The token paid in, or `None` for the native coin.
    pub token: Option<Address>,
    /// The confirmations at the time of the check.
    pub confirmations: u64,
    /// The timestamp of its block (Unix seconds), when
    /// [`ExpectedPayment::not_before`] asked for it.
    pub mined_at: Option<u64>,
    /// For an escrowed payment: the end of its dispute window on chain
    /// (the `Deposited` event's `releaseAfter`, Unix seconds).
    pub release_after: Option<u64>,
}

/// Why a transaction is not the expected payment, or why it could not be
/// checked ([`PaymentError::Rpc`], the only transient case).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The node could not be asked, or answered nonsense: try again later.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The node serves another chain than the one configured.
    #[error("the node serves chain {node}, not the configured chain {expected}")]
    WrongChain {
        /// The node's chain id.
        node: u64,
        /// The configured chain id.
        expected: u64,
    },
    /// The transaction was signed for another chain.
    #[error("the transaction was signed for chain {tx}, not chain {expected}")]
    TxOnOtherChain {
        /// The transaction's chain id.
        tx: u64,
        /// The configured chain id.
        expected: u64,
    },
    /// The transaction was mined but failed (receipt status 0).
    #[error("the transaction reverted")]
    Reverted,
    /// The transaction was sent by someone else than the payer.
    #[error("the transaction was sent by {found}, not by the payer {expected}")]
    WrongPayer {
        /// The expected payer.
        expected: Address,
        /// The transaction's sender.
        found: Address,
    },
    /// The transaction pays someone else (`found`: the recipient seen, or
    /// `None` for a contract creation).
    #[error("the transaction pays {}, not the payee {expected}", OrCreation(found))]
    WrongRecipient {
        /// The expected payee.
        expected: Address,
        /// The recipient seen.
        found: Option<Address>,
    },
    /// The transaction pays in another currency (`None` = the native coin):
    /// a call of another contract, a native transfer where a token was
    /// expected, or a contract call where the native coin was expected.
    #[error(
        "the transaction pays in {}, not in {}",
        Currency(found),
        Currency(expected)
    )]
    WrongToken {
        /// The currency expected.
        expected: Option<Address>,
        /// The currency (or contract called) seen.
        found: Option<Address>,
    },
    /// The transaction moves nothing to the payee: a native transfer of
    /// value 0, or a token call that emitted no `Transfer` log of the token
    /// (or only transfers of 0).
    #[error("the transaction transfers nothing")]
    NothingPaid,
    /// An escrowed payment's deposit is not the order's: no `Deposited`
    /// event of the order key from the escrow contract, or one with
    /// another buyer, seller, token or amount (which must be exact).
    #[error("the escrow deposit is not this order's: {0}")]
    WrongDeposit(String),
    /// The transaction pays less than required.
    #[error("the transaction pays {paid}, less than the {required} required")]
    Underpaid {
        /// The amount paid.
        paid: Amount,
        /// The amount required.
        required: Amount,
    },
    /// The transaction was mined before the earliest time accepted
    /// ([`ExpectedPayment::not_before`]): it was made before the order.
    #[error(
        "the transaction was mined at {}, before the order (payments mined from {} on are accepted)",
        Utc(*mined_at),
        Utc(*not_before)
    )]
    MinedTooEarly {
        /// Its block's timestamp (Unix seconds).
        mined_at: u64,
        /// The earliest timestamp accepted (Unix seconds).
        not_before: u64,
    },
}

impl PaymentError {
    /// The payment-proof field this error concerns: `txHash`,
    /// `payerAddress`, `payeeAddress`, `amount`, `tokenAddress` or `chain`.
    pub fn field(&self) -> &'static str {
        match self {
            PaymentError::Rpc(_)
            | PaymentError::WrongChain { .. }
            | PaymentError::TxOnOtherChain { .. } => "chain",
            PaymentError::Reverted | PaymentError::MinedTooEarly { .. } => "txHash",
            PaymentError::WrongPayer { .. } => "payerAddress",
            PaymentError::WrongRecipient { .. } => "payeeAddress",
            PaymentError::WrongToken { .. } => "tokenAddress",
            PaymentError::NothingPaid
            | PaymentError::Underpaid { .. }
            | PaymentError::WrongDeposit(_) => "amount",
        }
    }

    /// Whether asking again later may give another answer (only
    /// [`PaymentError::Rpc`]: every other error is final for the
    /// transaction).
    pub fn is_transient(&self) -> bool {
        matches!(self, PaymentError::Rpc(_))
    }
}

struct OrCreation<'a>(&'a Option<Address>);

impl fmt::Display for OrCreation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("no one (a contract creation)"),
        }
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
struct Utc(u64);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&sealstream_core::utc::format_seconds(
            i64::try_from(self.0).unwrap_or(i64::MAX),
        ))
    }
}

struct Currency<'a>(&'a Option<Address>);

impl fmt::Display for Currency<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "token {a}"),
            None => f.write_str("the native coin"),
        }
    }
}

/// An ERC-20 `Transfer(from, to, value)` decoded from a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferLog {
    /// The contract that emitted it.
    pub token: Address,
    /// The sender.
    pub from: Address,
    /// The recipient.
    pub to: Address,
    /// The value moved.
    pub value: Amount,
}

/// Decodes an ERC-20 `Transfer` log: topic 0 [`TRANSFER_TOPIC`], `from`
/// and `to` as topics 1 and 2 (12 zero bytes then the address), the value
/// as exactly 32 bytes of data. `None` for any other log (an ERC-721
/// `Transfer` has the token id as a fourth topic and is not one).
fn decode_transfer(log: &Log) -> Option<TransferLog> {
    let [topic0, from, to] = log.topics.as_slice() else {
        return None;
    };
    if topic0.0 != TRANSFER_TOPIC {
        return None;
    }
    let address = |word: &[u8; 32]| -> Option<Address> {
        let (pad, body) = word.split_at(12);
        pad.iter().all(|b| *b == 0).then(|| {
            let mut out = [0u8; 20];
            out.copy_from_slice(body);
            Address(out)
        })
    };
    let value: [u8; 32] = log.data.0.as_slice().try_into().ok()?;
    Some(TransferLog {
        token: log.address.0,
        from: address(&from.0)?,
        to: address(&to.0)?,
        value: Amount::from_be_bytes(value),
    })
}

impl EvmRpc {
    /// Checks that `expected.tx_hash` is the payment `expected` describes,
    /// on this node. `Ok` means nothing is wrong: [`PaymentStatus::Confirmed`]
    /// once mined deep enough, [`PaymentStatus::Pending`] before.
    pub async fn check_payment(
        &self,
        expected: &ExpectedPayment,
    ) -> Result<PaymentStatus, PaymentError> {
        let required = expected.confirmations.max(1);
        let pending = |confirmations| {
            Ok(PaymentStatus::Pending {
                confirmations,
                required,
            })
        };

        let node = self.chain_id().await?;
        if node != expected.chain_id {
            return Err(PaymentError::WrongChain {
                node,
                expected: expected.chain_id,
            });
        }
        let Some(tx) = self.transaction(&expected.tx_hash).await? else {
            return Ok(PaymentStatus::Unknown { required });
        };
        if tx.hash.0 != expected.tx_hash.0 {
            return Err(self
                .malformed("eth_getTransactionByHash.hash", "not the hash asked for")
                .into());
        }
        let paid = check_transaction(&tx, expected)?;
        let Some(tx_block) = tx.block_number else {
            return pending(0);
        };
        let Some(receipt) = self.receipt(&expected.tx_hash).await? else {
            // Mined, but this node has not indexed the receipt yet.
            return pending(0);
        };
        check_receipt_matches(self, &tx, tx_block.0, &receipt, &expected.tx_hash)?;
        match receipt.status.0 {
            1 => {}
            0 => return Err(PaymentError::Reverted),
            _ => {
                return Err(self
                    .malformed("eth_getTransactionReceipt.status", "expected 0x0 or 0x1")
                    .into())
            }
        }
        let mut release_after = None;
        let amount = match paid {
            Paid::Native(value) => value,
            Paid::Token(token) => token_amount(&receipt, token, expected)?,
            Paid::Escrow(escrow) => {
                let deposit = escrow_deposit(&receipt, escrow, expected)?;
                release_after = Some(deposit.release_after);
                deposit.amount
            }
        };
        if amount < expected.min_amount {
            return Err(PaymentError::Underpaid {
                paid: amount,
                required: expected.min_amount,
            });
        }
        let mined_at = match expected.not_before {
            None => None,
            Some(not_before) => {
                let mined_at = self.block_time(&receipt).await?;
                if mined_at < not_before {
                    return Err(PaymentError::MinedTooEarly {
                        mined_at,
                        not_before,
                    });
                }
                Some(mined_at)
            }
        };

        // Asked after the receipt, so a consistent node is at or past its
        // block; a lagging one (behind a load balancer) counts as 0.
        let latest = self.block_number().await?;
        let block = receipt.block_number.0;
        let confirmations = latest.saturating_add(1).saturating_sub(block);
        if confirmations < required {
            return pending(confirmations);
        }
        Ok(PaymentStatus::Confirmed(VerifiedPayment {
            tx_hash: expected.tx_hash,
            block_number: block,
            block_hash: to_hex(&receipt.block_hash.0),
            from: tx.from.0,
            to: expected.pay_to,
            amount,
            token: expected.token,
            confirmations,
            mined_at,
            release_after,
        }))
    }

    /// The timestamp of the block `receipt` names (which must be the block
    /// the node has under that hash and number).
    async fn block_time(&self, receipt: &Receipt) -> Result<u64, PaymentError> {
        let inconsistent = || {
            PaymentError::Rpc(self.error(RpcErrorKind::Inconsistent(
                "the receipt's block is not the node's block of that hash".to_string(),
            )))
        };
        let block = self
            .block_by_hash(&receipt.block_hash.0)
            .await?
            .ok_or_else(inconsistent)?;
        if block.hash != receipt.block_hash || block.number != receipt.block_number {
            return Err(inconsistent());
        }
        Ok(block.timestamp.0)
    }
}

/// What a transaction that passed [`check_transaction`] pays in.
enum Paid<'a> {
    /// The native coin: the transaction's value (at least the minimum).
    Native(Amount),
    /// This token: the amount is in the receipt's logs.
    Token(Address),
    /// Into this escrow: the deposit is in the receipt's logs.
    Escrow(&'a EscrowDeposit),
}

/// The checks on what the transaction itself commits to.
fn check_transaction<'a>(
    tx: &Transaction,
    expected: &'a ExpectedPayment,
) -> Result<Paid<'a>, PaymentError> {
    if let Some(chain) = tx.chain_id {
        if chain.0 != expected.chain_id {
            return Err(PaymentError::TxOnOtherChain {
                tx: chain.0,
                expected: expected.chain_id,
            });
        }
    }
    if tx.from.0 != expected.payer {
        return Err(PaymentError::WrongPayer {
            expected: expected.payer,
            found: tx.from.0,
        });
    }
    let Some(to) = tx.to.map(|a| a.0) else {
        return Err(PaymentError::WrongRecipient {
            expected: expected.pay_to,
            found: None,
        });
    };
    if let Some(escrow) = &expected.escrow {
        if to != escrow.contract {
            return Err(PaymentError::WrongRecipient {
                expected: escrow.contract,
                found: Some(to),
            });
        }
        let value = tx.value.0;
        match expected.token {
            None if value != expected.min_amount => {
                return Err(PaymentError::WrongDeposit(format!(
                    "the transaction sends {value} wei, not exactly {}",
                    expected.min_amount
                )))
            }
            Some(_) if !value.is_zero() => {
                return Err(PaymentError::WrongDeposit(
                    "a token deposit sends no native coin".to_string(),
                ))
            }
            _ => {}
        }
        return Ok(Paid::Escrow(escrow));
    }
    match expected.token {
        None => {
            if to != expected.pay_to {
                return Err(if tx.input.0.is_empty() {
                    PaymentError::WrongRecipient {
                        expected: expected.pay_to,
                        found: Some(to),
                    }
                } else {
                    PaymentError::WrongToken {
                        expected: None,
                        found: Some(to),
                    }
                });
            }
            let value = tx.value.0;
            if value.is_zero() {
                return Err(PaymentError::NothingPaid);
            }
            if value < expected.min_amount {
                return Err(PaymentError::Underpaid {
                    paid: value,
                    required: expected.min_amount,
                });
            }
            Ok(Paid::Native(value))
        }
        Some(token) => {
            if to != token {
                return Err(PaymentError::WrongToken {
                    expected: Some(token),
                    // Straight to the payee: the native coin instead.
                    found: (to != expected.pay_to).then_some(to),
                });
            }
            Ok(Paid::Token(token))
        }
    }
}

/// The receipt must be the transaction's, in the block the transaction
/// was reported in.
fn check_receipt_matches(
    rpc: &EvmRpc,
    tx: &Transaction,
    tx_block: u64,
    receipt: &Receipt,
    hash: &TxHash,
) -> Result<(), PaymentError> {
    if receipt.transaction_hash.0 != hash.0 {
        return Err(rpc
            .malformed(
                "eth_getTransactionReceipt.transactionHash",
                "not the hash asked for",
            )
            .into());
    }
    let same_block =
        receipt.block_number.0 == tx_block && tx.block_hash.is_none_or(|h| h == receipt.block_hash);
    if !same_block || receipt.logs.iter().any(|l| l.removed) {
        return Err(PaymentError::Rpc(rpc.error(RpcErrorKind::Inconsistent(
            "the transaction and its receipt name different blocks".to_string(),
        ))));
    }
    Ok(())
}

/// The escrow's `Deposited` event of the order in `receipt`, checked
/// against what the order expects (buyer, seller, token, exact amount).
fn escrow_deposit(
    receipt: &Receipt,
    escrow: &EscrowDeposit,
    expected: &ExpectedPayment,
) -> Result<super::escrow::Deposited, PaymentError> {
    let deposit = receipt
        .logs
        .iter()
        .filter(|log| log.address.0 == escrow.contract)
        .filter_map(super::escrow::decode_deposited)
        .find(|d| d.order_key == escrow.order_key)
        .ok_or_else(|| {
            PaymentError::WrongDeposit(
                "no Deposited event of this order from the escrow contract".to_string(),
            )
        })?;
    let wrong = |what: &str| Err(PaymentError::WrongDeposit(what.to_string()));
    if deposit.buyer != expected.payer {
        return wrong("deposited by another address than the buyer's");
    }
    if deposit.seller != expected.pay_to {
        return wrong("the deposit pays another seller than the listing's pay-to");
    }
    if deposit.token != expected.token {
        return wrong("the deposit is in another currency than the order's");
    }
    if deposit.amount != expected.min_amount {
        return Err(PaymentError::WrongDeposit(format!(
            "the deposit holds {}, not exactly the order's {}",
            deposit.amount, expected.min_amount
        )));
    }
    Ok(deposit)
}

/// The sum of the token's `Transfer` values to the payee in `receipt`.
fn token_amount(
    receipt: &Receipt,
    token: Address,
    expected: &ExpectedPayment,
) -> Result<Amount, PaymentError> {
    let transfers: Vec<TransferLog> = receipt
        .logs
        .iter()
        .filter(|log| log.address.0 == token)
        .filter_map(decode_transfer)
        .collect();
    let Some(first) = transfers.first() else {
        return Err(PaymentError::NothingPaid);
    };
    let to_payee: Vec<&TransferLog> = transfers
        .iter()
        .filter(|t| t.to == expected.pay_to)
        .collect();
    if to_payee.is_empty() {
        return Err(PaymentError::WrongRecipient {
            expected: expected.pay_to,
            found: Some(first.to),
        });
    }
    // Saturating: a sum past 2^256 - 1 (only a broken token emits one)
    // still pays at least any amount an order can ask.
    let amount = to_payee
        .iter()
        .fold(Amount::ZERO, |sum, t| sum.saturating_add(t.value));
    if amount.is_zero() {
        return Err(PaymentError::NothingPaid);
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::super::wire::{Data, HexAddress, Word};
    use super::*;
    use sha3::{Digest, Keccak256};

    fn addr(byte: u8) -> Address {
        Address([byte; 20])
    }

    fn topic_of(a: Address) -> Word {
        let mut w = [0u8; 32];
        w[12..].copy_from_slice(&a.0);
        Word(w)
    }

    fn transfer_log(token: Address, from: Address, to: Address, value: u64) -> Log {
        Log {
            address: HexAddress(token),
            topics: vec![Word(TRANSFER_TOPIC), topic_of(from), topic_of(to)],
            data: Data(Amount::from(value).to_be_bytes().to_vec()),
            removed: false,
        }
    }

    #[test]
    fn transfer_topic_is_the_keccak_of_the_event_signature() {
        let digest: [u8; 32] = Keccak256::digest(b"Transfer(address,address,uint256)").into();
        assert_eq!(digest, TRANSFER_TOPIC);
    }

    #[test]
    fn decodes_an_erc20_transfer() {
        let log = transfer_log(addr(0xaa), addr(1), addr(2), 500_000);
        assert_eq!(
            decode_transfer(&log),
            Some(TransferLog {
                token: addr(0xaa),
                from: addr(1),
                to: addr(2),
                value: Amount::from(500_000u64),
            })
        );
    }

    #[test]
    fn other_logs_are_not_transfers() {
        let good = transfer_log(addr(0xaa), addr(1), addr(2), 7);
        // Another event.
        let mut other = good.clone();
        other.topics[0] = Word([0x8c; 32]);
        assert_eq!(decode_transfer(&other), None);
        // ERC-721: the token id as a fourth topic, no data.
        let mut nft = good.clone();
        nft.topics.push(Word([0; 32]));
        nft.data = Data(vec![]);
        assert_eq!(decode_transfer(&nft), None);
        // Non-indexed addresses (all in data).
        let mut flat = good.clone();
        flat.topics.truncate(1);
        assert_eq!(decode_transfer(&flat), None);
        // Data not one word.
        let mut short = good.clone();
        short.data.0.pop();
        assert_eq!(decode_transfer(&short), None);
        let mut long = good.clone();
        long.data.0.push(0);
        assert_eq!(decode_transfer(&long), None);
        // A "to" topic that is not an address (dirty high bytes).
        let mut dirty = good.clone();
        dirty.topics[2].0[0] = 1;
        assert_eq!(decode_transfer(&dirty), None);
    }

    #[test]
    fn a_transfer_of_the_whole_range_decodes() {
        let mut log = transfer_log(addr(0xaa), addr(1), addr(2), 0);
        log.data = Data(vec![0xff; 32]);
        assert_eq!(decode_transfer(&log).unwrap().value, Amount::MAX);
    }

    fn receipt_with(logs: Vec<Log>) -> Receipt {
        Receipt {
            transaction_hash: Word([1; 32]),
            block_hash: Word([2; 32]),
            block_number: super::super::wire::Quantity(5),
            status: super::super::wire::Quantity(1),
            logs,
        }
    }

    fn token_expected(token: Address, pay_to: Address) -> ExpectedPayment {
        ExpectedPayment {
            chain_id: 8453,
            tx_hash: TxHash([1; 32]),
            payer: addr(1),
            pay_to,
            token: Some(token),
            min_amount: Amount::from(1u64),
            confirmations: 1,
            not_before: None,
            escrow: None,
        }
    }

    #[test]
    fn token_transfers_to_the_payee_are_summed() {
        let (token, payee, other) = (addr(0xaa), addr(2), addr(3));
        let receipt = receipt_with(vec![
            transfer_log(token, addr(1), payee, 300),
            // To someone else, and from another contract: not counted.
            transfer_log(token, addr(1), other, 1_000),
            transfer_log(addr(0xbb), addr(1), payee, 1_000),
            transfer_log(token, addr(9), payee, 200),
        ]);
        let expected = token_expected(token, payee);
        assert_eq!(
            token_amount(&receipt, token, &expected).unwrap(),
            Amount::from(500u64)
        );
    }

    #[test]
    fn token_receipts_without_a_transfer_to_the_payee_are_refused() {
        let (token, payee, other) = (addr(0xaa), addr(2), addr(3));
        let expected = token_expected(token, payee);
        let only_other = receipt_with(vec![transfer_log(token, addr(1), other, 1)]);
        assert!(matches!(
            token_amount(&only_other, token, &expected),
            Err(PaymentError::WrongRecipient { found: Some(f), .. }) if f == other
        ));
        let other_token = receipt_with(vec![transfer_log(addr(0xbb), addr(1), payee, 1)]);
        assert!(matches!(
            token_amount(&other_token, token, &expected),
            Err(PaymentError::NothingPaid)
        ));
        let zero = receipt_with(vec![transfer_log(token, addr(1), payee, 0)]);
        assert!(matches!(
            token_amount(&zero, token, &expected),
            Err(PaymentError::NothingPaid)
        ));
        let mut huge = transfer_log(token, addr(1), payee, 0);
        huge.data = Data(vec![0xff; 32]);
        let overflow = receipt_with(vec![huge.clone(), huge]);
        assert_eq!(
            token_amount(&overflow, token, &expected).unwrap(),
            Amount::MAX
        );
    }

    #[test]
    fn fields_name_the_proof_parts() {
        assert_eq!(PaymentError::Reverted.field(), "txHash");
        assert_eq!(
            PaymentError::WrongPayer {
                expected: addr(1),
                found: addr(2)
            }
            .field(),
            "payerAddress"
        );
        assert_eq!(PaymentError::NothingPaid.field(), "amount");
        assert!(!PaymentError::Reverted.is_transient());
        let e = PaymentError::WrongToken {
            expected: Some(addr(3)),
            found: None,
        };
        assert_eq!(e.field(), "tokenAddress");
        assert!(e.to_string().contains("the native coin"), "{e}");
        let e = PaymentError::WrongRecipient {
            expected: addr(3),
            found: None,
        };
        assert!(e.to_string().contains("contract creation"), "{e}");
        let e = PaymentError::MinedTooEarly {
            mined_at: 1_767_323_045,
            not_before: 1_767_323_046,
        };
        assert_eq!(e.field(), "txHash");
        assert!(!e.is_transient());
        assert_eq!(
            e.to_string(),
            "the transaction was mined at 2026-01-02T03:04:05Z, before the order \
             (payments mined from 2026-01-02T03:04:06Z on are accepted)"
        );
    }
}
