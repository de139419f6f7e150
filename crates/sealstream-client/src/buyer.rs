//! The buyer's requests that need its key: paying an order on its EVM
//! chain. The order's payment instructions (chain, pay-to, amount, native
//! coin or ERC-20 token) become a transaction signed with the key that
//! signs in — the only payer the server accepts — sent through the chain's
//! node, and once mined its proof is posted to the order; the server's
//! answer says whether it is confirmed or what it still waits for.

use std::time::{Duration, Instant};

use sealstream_api::orders::{Confirmation, OrderState, OrderView};
use sealstream_api::payments::{ClaimState, PaymentProof, ProofAnswer, RailKind};
use sealstream_core::identity::EvmAddress;

use crate::evm::node::{Call, Node, NodeError, Receipt};
use crate::evm::transaction::{erc20_transfer, Fees, Transaction};
use crate::evm::Uint256;
use crate::market::{ClientError, MarketClient};
use sealstream_core::evm::escrow::{approve_call, deposit_call, dispute_call};

/// How often the node and the order are asked again while waiting.
const POLL: Duration = Duration::from_secs(1);

/// Why an order could not be paid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// The market refused or was not reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The chain's node refused or was not reached.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The order cannot be paid this way now (its rail, its state, a
    /// payment already on its way), or its instructions are malformed.
    #[error("order {order}: {reason}")]
    NotPayable {
        /// The order.
        order: String,
        /// Why.
        reason: String,
    },
    /// The node serves another chain than the order's.
    #[error("the node serves chain {node}, the order is paid on chain {order}")]
    WrongChain {
        /// The order's chain.
        order: u64,
        /// The node's.
        node: u64,
    },
    /// The transaction was mined and failed.
    #[error("transaction {hash} reverted on chain")]
    Reverted {
        /// The transaction.
        hash: String,
    },
    /// Not mined or not decided in time.
    #[error("{what} after {seconds} s")]
    TimedOut {
        /// What did not happen.
        what: String,
        /// How long it was waited for.
        seconds: u64,
    },
    /// The server closed the claim of the payment without accepting it.
    #[error("the server refused the payment {hash}: {reason}")]
    Refused {
        /// The transaction.
        hash: String,
        /// The server's reason.
        reason: String,
    },
}

/// Which kind of transaction to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// EIP-1559 where the chain has a base fee, legacy otherwise.
    Auto,
    /// EIP-155 legacy, with the node's gas price.
    Legacy,
}

/// An order's payment, from its instructions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentPlan {
    /// The order.
    pub order_id: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The proof's `chain`: the reference's name of the chain, or its id.
    pub chain_name: String,
    /// Where to pay.
    pub pay_to: EvmAddress,
    /// The ERC-20 contract, or `None` for the chain's coin.
    pub token: Option<EvmAddress>,
    /// Base units.
    pub amount: Uint256,
    /// The amount with its decimal point.
    pub amount_display: String,
    /// The coin's or token's symbol, if known.
    pub symbol: Option<String>,
    /// The only address the server accepts the payment from.
    pub payer: EvmAddress,
    /// Paid into this escrow contract under this order key (the order's
    /// payment instructions name them), not straight to `pay_to`.
    pub escrow: Option<(EvmAddress, [u8; 32])>,
}

impl PaymentPlan {
    /// The plan of `order`, which must await payment on an EVM rail, with
    /// no payment of the buyer's already on its way.
    pub fn of(order: &OrderView) -> Result<PaymentPlan, PayError> {
        let refuse = |reason: String| PayError::NotPayable {
            order: order.id.clone(),
            reason,
        };
        let p = &order.payment;
        if p.rail != RailKind::Evm {
            return Err(refuse(
                "it is paid by invoice: the seller marks it paid (market order mark-paid)".into(),
            ));
        }
        if order.state != OrderState::AwaitingPayment {
            return Err(refuse(format!(
                "it is {}, not awaiting payment",
                order.state
            )));
        }
        if let Some(c) = order
            .claims
            .iter()
            .find(|c| matches!(c.state, ClaimState::Pending | ClaimState::Confirmed))
        {
            return Err(refuse(format!(
                "the buyer's payment {} is already {} ({}): wait for it with --tx-hash {} --wait \
                 instead of paying twice",
                c.tx_hash,
                c.state,
                c.reason.as_deref().unwrap_or("-"),
                c.tx_hash
            )));
        }
        let malformed = |what: &str| refuse(format!("malformed payment instructions: {what}"));
        let address = |text: Option<&str>, what: &str| {
            text.and_then(|t| EvmAddress::parse(t, what).ok())
                .ok_or_else(|| malformed(what))
        };
        let chain_id = p.chain_id.ok_or_else(|| malformed("chainId"))?;
        Ok(PaymentPlan {
            order_id: order.id.clone(),
            chain_id,
            chain_name: p.chain.clone().unwrap_or_else(|| chain_id.to_string()),
            pay_to: address(p.pay_to.as_deref(), "payTo")?,
            token: match p.token.as_deref() {
                None | Some(sealstream_api::payments::NATIVE) => None,
                Some(t) => Some(address(Some(t), "token")?),
            },
            amount: Uint256::from_decimal(&p.amount).ok_or_else(|| malformed("amount"))?,
            amount_display: p.amount_display.clone(),
            symbol: p.symbol.clone(),
            payer: address(p.payer.as_deref(), "payer")?,
            escrow: match (&p.escrow, &p.escrow_order_key) {
                (None, None) => None,
                (Some(contract), Some(key)) => Some((
                    address(Some(contract), "escrow")?,
                    sealstream_core::keys::parse_hex_exact::<32>(key, "escrowOrderKey")
                        .map_err(|_| malformed("escrowOrderKey"))?,
                )),
                _ => return Err(malformed("escrow without escrowOrderKey")),
            },
        })
    }

    /// The payment proof of transaction `tx_hash`.
    pub fn proof(&self, tx_hash: &str) -> PaymentProof {
        PaymentProof {
            tx_hash: tx_hash.to_string(),
            order_id: self.order_id.clone(),
            chain: self.chain_name.clone(),
            payer_address: self.payer.to_checksum(),
            payee_address: self.pay_to.to_checksum(),
            amount: self.amount_display.clone(),
            token_address: self.token.map(|t| t.to_checksum()),
            token: self.symbol.clone(),
        }
    }
}

/// A payment sent to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentPayment {
    /// The transaction's hash, `0x…`.
    pub tx_hash: String,
    /// Its nonce.
    pub nonce: u64,
    /// `legacy` or `eip1559`.
    pub kind: &'static str,
    /// Its gas limit.
    pub gas_limit: u64,
}

/// Gas limit for a token transfer: the node's estimate and a fifth more,
/// as token contracts may cost a little more when mined than estimated.
fn with_margin(estimate: u64, token: bool) -> u64 {
    if token {
        estimate.saturating_add(estimate / 5)
    } else {
        estimate
    }
}

/// Sends the payment of `plan` signed by `client`'s key through `node`,
/// after checking that the node serves the order's chain and that the key
/// is the payer's.
pub fn send_payment(
    client: &MarketClient,
    node: &mut Node,
    plan: &PaymentPlan,
    kind: TxKind,
) -> Result<SentPayment, PayError> {
    let key = client.key();
    let from = key.address();
    if from != plan.payer {
        return Err(PayError::NotPayable {
            order: plan.order_id.clone(),
            reason: format!(
                "the key signing in pays from {}, the server accepts a payment from {} only",
                from.to_checksum(),
                plan.payer.to_checksum()
            ),
        });
    }
    let chain = node.chain_id()?;
    if chain != plan.chain_id {
        return Err(PayError::WrongChain {
            order: plan.chain_id,
            node: chain,
        });
    }
    let (to, value, data) = match (&plan.escrow, &plan.token) {
        (None, None) => (plan.pay_to, plan.amount, Vec::new()),
        (None, Some(token)) => (
            *token,
            Uint256::default(),
            erc20_transfer(&plan.pay_to, &plan.amount),
        ),
        (Some((contract, order_key)), token) => {
            if let Some(token) = token {
                // The contract takes the tokens itself: allow it first.
                let approve = send_call(
                    client,
                    node,
                    plan.chain_id,
                    kind,
                    *token,
                    Uint256::default(),
                    approve_call(contract, &plan.amount.0),
                    true,
                )?;
                wait_mined(node, &approve.tx_hash, APPROVE_WAIT)?;
            }
            let data = deposit_call(order_key, &plan.pay_to, token.as_ref(), &plan.amount.0);
            let value = if token.is_some() {
                Uint256::default()
            } else {
                plan.amount
            };
            (*contract, value, data)
        }
    };
    let token_call = plan.token.is_some() || plan.escrow.is_some();
    send_call(
        client,
        node,
        plan.chain_id,
        kind,
        to,
        value,
        data,
        token_call,
    )
}

/// How long a token deposit waits for its approval to be mined.
const APPROVE_WAIT: Duration = Duration::from_secs(120);

/// Signs a call of `to` (with `value` wei and `data`) by `client`'s key and
/// sends it through `node`; `contract` adds a margin to the gas estimate.
#[allow(clippy::too_many_arguments)]
fn send_call(
    client: &MarketClient,
    node: &mut Node,
    chain_id: u64,
    kind: TxKind,
    to: EvmAddress,
    value: Uint256,
    data: Vec<u8>,
    contract: bool,
) -> Result<SentPayment, PayError> {
    let key = client.key();
    let from = key.address();
    let estimate = node.estimate_gas(&Call {
        from: from.to_checksum(),
        to: to.to_checksum(),
        value: value.to_quantity(),
        data: format!("0x{}", hex::encode(&data)),
    })?;
    let fees = match (kind, node.base_fee()?) {
        (TxKind::Auto, Some(base)) => {
            let tip = node.max_priority_fee()?;
            Fees::Eip1559 {
                max_priority_fee_per_gas: tip,
                // Room for the base fee to double before it is mined.
                max_fee_per_gas: base.saturating_mul(2).saturating_add(tip),
            }
        }
        _ => Fees::Legacy {
            gas_price: node.gas_price()?,
        },
    };
    let tx = Transaction {
        chain_id,
        nonce: node.nonce(&from)?,
        fees,
        gas_limit: with_margin(estimate, contract),
        to,
        value,
        data,
    };
    let signed = tx.sign(key);
    let tx_hash = format!("0x{}", hex::encode(signed.hash));
    let answered = node.send_raw(&signed.raw)?;
    if !answered.eq_ignore_ascii_case(&tx_hash) {
        return Err(NodeError::Protocol {
            url: node.url().to_string(),
            method: "eth_sendRawTransaction",
            message: format!("the node names the transaction {answered}, its hash is {tx_hash}"),
        }
        .into());
    }
    Ok(SentPayment {
        tx_hash,
        nonce: tx.nonce,
        kind: match fees {
            Fees::Legacy { .. } => "legacy",
            Fees::Eip1559 { .. } => "eip1559",
        },
        gas_limit: tx.gas_limit,
    })
}

/// Sends `dispute(orderKey, evidenceHash)` to the order's escrow, signed by
/// `client`'s key (the buyer's, the only one the contract accepts), after
/// checking the node's chain.
pub fn send_dispute(
    client: &MarketClient,
    node: &mut Node,
    chain_id: u64,
    escrow: EvmAddress,
    order_key: &[u8; 32],
    evidence_hash: &[u8; 32],
) -> Result<SentPayment, PayError> {
    let chain = node.chain_id()?;
    if chain != chain_id {
        return Err(PayError::WrongChain {
            order: chain_id,
            node: chain,
        });
    }
    send_call(
        client,
        node,
        chain_id,
        TxKind::Auto,
        escrow,
        Uint256::default(),
        dispute_call(order_key, evidence_hash),
        true,
    )
}

/// Waits until `tx_hash` is mined, at most `timeout`; a reverted
/// transaction is an error.
pub fn wait_mined(node: &mut Node, tx_hash: &str, timeout: Duration) -> Result<Receipt, PayError> {
    let start = Instant::now();
    loop {
        if let Some(receipt) = node.receipt(tx_hash)? {
            if !receipt.success {
                return Err(PayError::Reverted {
                    hash: tx_hash.to_string(),
                });
            }
            return Ok(receipt);
        }
        if start.elapsed() >= timeout {
            return Err(PayError::TimedOut {
                what: format!("transaction {tx_hash} not mined"),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(POLL);
    }
}

impl MarketClient {
    /// Posts the proof of `tx_hash` for `plan`'s order.
    pub fn prove_payment(
        &mut self,
        plan: &PaymentPlan,
        tx_hash: &str,
    ) -> Result<ProofAnswer, ClientError> {
        self.payment_proof(&plan.order_id, &plan.proof(tx_hash))
    }

    /// Polls order `id` (its confirmation, which makes the server check
    /// its open claims) until it is paid, at most `timeout`; the claim of
    /// `tx_hash` closed without paying it, or the order cancelled, is
    /// [`PayError::Refused`].
    pub fn wait_paid(
        &mut self,
        id: &str,
        tx_hash: &str,
        timeout: Duration,
    ) -> Result<OrderView, PayError> {
        let start = Instant::now();
        loop {
            let confirmed = matches!(self.confirmation(id, None)?, Confirmation::Confirmed(_));
            let order = self.order(id)?;
            if confirmed || matches!(order.state, OrderState::Paid | OrderState::Granted) {
                return Ok(order);
            }
            let refused = |reason: String| PayError::Refused {
                hash: tx_hash.to_string(),
                reason,
            };
            if order.state == OrderState::Cancelled {
                return Err(refused(format!("order {id} is cancelled")));
            }
            if let Some(c) = order
                .claims
                .iter()
                .find(|c| c.tx_hash.eq_ignore_ascii_case(tx_hash))
            {
                if !c.state.is_open() && c.state != ClaimState::Confirmed {
                    return Err(refused(format!(
                        "{}: {}",
                        c.state,
                        c.reason.as_deref().unwrap_or("no reason given")
                    )));
                }
            }
            if start.elapsed() >= timeout {
                return Err(PayError::TimedOut {
                    what: format!("order {id} not paid"),
                    seconds: timeout.as_secs(),
                });
            }
            std::thread::sleep(POLL * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_transfers_get_a_margin() {
        assert_eq!(with_margin(21_000, false), 21_000);
        assert_eq!(with_margin(50_000, true), 60_000);
    }
}
