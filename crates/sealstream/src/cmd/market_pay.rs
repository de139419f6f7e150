//! `sealstream market order pay`: the buyer pays an order on its EVM chain
//! (`sealstream_client::buyer`), then posts the proof and says what the
//! server answered.

use std::time::Duration;

use sealstream_api::orders::OrderState;
use sealstream_api::payments::{ProofAnswer, ProofStatus};
use sealstream_client::buyer::{self, PayError, PaymentPlan, SentPayment, TxKind};
use sealstream_client::evm::node::{Node, NodeError};

use super::market_orders::shell_word;
use super::market_session::{client, client_error, json_answer};
use crate::cli::MarketSession;
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

/// The flags of `market order pay` beside the session.
pub struct PayArgs {
    /// The order.
    pub id: String,
    /// The chain's JSON-RPC endpoint.
    pub rpc: String,
    /// Poll the order until paid or refused.
    pub wait: bool,
    /// A legacy transaction even where EIP-1559 is possible.
    pub legacy: bool,
    /// A transaction already sent: only its proof is posted.
    pub tx_hash: Option<String>,
    /// How long to wait for mining, and for the order with `wait`.
    pub timeout: Duration,
}

/// What `--json` prints.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PayResult<'a> {
    order_id: &'a str,
    tx_hash: &'a str,
    chain_id: u64,
    from: String,
    pay_to: String,
    token: Option<String>,
    amount: &'a str,
    /// The transaction sent (absent with --tx-hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<Sent<'a>>,
    block_number: u64,
    proof: &'a ProofAnswer,
    /// The order's state after --wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<OrderState>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Sent<'a> {
    kind: &'a str,
    nonce: u64,
    gas_limit: u64,
}

/// A failure's exit code: what the person must fix (flags, the order, the
/// node's chain, a server or node out of reach) 1; a refusal (the node's,
/// the chain's, the server's) 2.
fn pay_error(e: PayError) -> CliError {
    let message = format!("order pay: {e}");
    match e {
        PayError::Client(e) => client_error("order pay", e),
        PayError::Node(NodeError::Network { .. })
        | PayError::NotPayable { .. }
        | PayError::WrongChain { .. } => CliError::input(message),
        _ => CliError::integrity(message),
    }
}

/// The proof's answer in words: confirmed, or pending and why.
fn answer_line(answer: &ProofAnswer) -> String {
    if answer.accepted {
        return "confirmed: the order is paid".to_string();
    }
    let status = match answer.status {
        ProofStatus::Confirmed => "confirmed",
        ProofStatus::AwaitingConfirmations => "pending, waiting for confirmations",
        ProofStatus::AwaitingTransaction => "pending, waiting for the transaction",
        ProofStatus::Expired => "expired",
    };
    let depth = match (answer.confirmations, answer.required) {
        (Some(have), Some(need)) => format!(" ({have} of {need} confirmations)"),
        _ => String::new(),
    };
    format!(
        "{status}{depth}: {}",
        answer.reason.as_deref().unwrap_or("no reason given")
    )
}

/// `market order pay`.
pub fn run(session: &MarketSession, args: &PayArgs, ui: &Ui) -> CliResult {
    if !(args.rpc.starts_with("http://") || args.rpc.starts_with("https://")) {
        return Err(CliError::input(format!(
            "--rpc: expected an http:// or https:// URL, got {:?}",
            args.rpc
        )));
    }
    let mut client = client(session, "a buyer")?;
    let order = client
        .order(&args.id)
        .map_err(|e| client_error("order pay", e))?;
    let mut node = Node::new(&args.rpc).map_err(|e| pay_error(e.into()))?;
    let (plan, sent, tx_hash) = match &args.tx_hash {
        Some(hash) => {
            let plan = PaymentPlan::of(&order)
                .or_else(|e| match e {
                    // The payment named may be the pending one.
                    PayError::NotPayable { .. } if order.state == OrderState::AwaitingPayment => {
                        let mut unclaimed = order.clone();
                        unclaimed.claims.clear();
                        PaymentPlan::of(&unclaimed)
                    }
                    e => Err(e),
                })
                .map_err(pay_error)?;
            (plan, None, hash.trim().to_string())
        }
        None => {
            let plan = PaymentPlan::of(&order).map_err(pay_error)?;
            ui.say(format!(
                "Paying order {}: {} {} on chain {} to {}{}, from {}",
                plan.order_id,
                plan.amount_display,
                plan.symbol.as_deref().unwrap_or(match plan.token {
                    None => "(native coin)",
                    Some(_) => "(token)",
                }),
                plan.chain_id,
                plan.pay_to.to_checksum(),
                match &plan.escrow {
                    Some((contract, _)) => format!(
                        " into escrow {} (held until the dispute window passes)",
                        contract.to_checksum()
                    ),
                    None => String::new(),
                },
                plan.payer.to_checksum(),
            ));
            let kind = if args.legacy {
                TxKind::Legacy
            } else {
                TxKind::Auto
            };
            let sent = buyer::send_payment(&client, &mut node, &plan, kind).map_err(pay_error)?;
            ui.say(format!(
                "Sent {} ({}, nonce {}, gas limit {}); waiting for it to be mined...",
                sent.tx_hash, sent.kind, sent.nonce, sent.gas_limit
            ));
            let hash = sent.tx_hash.clone();
            (plan, Some(sent), hash)
        }
    };
    let receipt = buyer::wait_mined(&mut node, &tx_hash, args.timeout).map_err(pay_error)?;
    ui.say(format!(
        "Mined in block {}; posting the payment proof...",
        receipt.block_number
    ));
    let answer = client
        .prove_payment(&plan, &tx_hash)
        .map_err(|e| client_error("order pay: the server refused the payment proof", e))?;
    ui.say(format!("Payment {}", answer_line(&answer)));
    let state = if args.wait && !answer.accepted {
        ui.say("Waiting for the server to confirm it...");
        let order = client
            .wait_paid(&plan.order_id, &tx_hash, args.timeout)
            .map_err(pay_error)?;
        ui.say(format!("Order {} is {}", order.id, order.state));
        Some(order.state)
    } else {
        if !answer.accepted {
            ui.say(format!(
                "The server keeps checking it. Follow it with `sealstream market order show {id} \
                 --server {server} --key-file {key}`, or wait here: add --tx-hash {tx_hash} --wait",
                id = plan.order_id,
                server = shell_word(&session.server),
                key = shell_word(&session.key_file.display().to_string()),
            ));
        }
        None
    };
    if ui.json {
        json_answer(
            ui,
            &PayResult {
                order_id: &plan.order_id,
                tx_hash: &tx_hash,
                chain_id: plan.chain_id,
                from: plan.payer.to_checksum(),
                pay_to: plan.pay_to.to_checksum(),
                token: plan.token.map(|t| t.to_checksum()),
                amount: &plan.amount_display,
                sent: sent.as_ref().map(|s: &SentPayment| Sent {
                    kind: s.kind,
                    nonce: s.nonce,
                    gas_limit: s.gas_limit,
                }),
                block_number: receipt.block_number,
                proof: &answer,
                state,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_say_what_they_wait_for() {
        let pending = ProofAnswer {
            accepted: false,
            status: ProofStatus::AwaitingConfirmations,
            confirmations: Some(1),
            required: Some(3),
            reason: Some("waiting for 2 more confirmations".into()),
        };
        assert_eq!(
            answer_line(&pending),
            "pending, waiting for confirmations (1 of 3 confirmations): waiting for 2 more confirmations"
        );
        assert_eq!(
            answer_line(&ProofAnswer::confirmed()),
            "confirmed: the order is paid"
        );
    }
}
