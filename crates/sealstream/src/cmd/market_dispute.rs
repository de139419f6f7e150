//! `sealstream market order dispute|escrow|resolve`: disputes of orders
//! paid into escrow (docs/market-design.md, "Escrow").

use std::path::Path;
use std::time::Duration;

use sealstream_api::disputes::{self, EscrowView, ResolveDispute};
use sealstream_client::buyer::{self, PayError};
use sealstream_client::evm::node::{Node, NodeError};
use sealstream_core::identity::EvmAddress;

use super::market_session::{client, client_error, json_answer};
use crate::cli::MarketSession;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

fn describe(ui: &Ui, e: &EscrowView) {
    ui.say(format!(
        "Escrow of order {}: {}, {} held{}, release after {} (Unix seconds){}{}",
        e.order_id,
        e.state,
        e.amount,
        e.contract
            .as_deref()
            .map(|c| format!(" in {c}"))
            .unwrap_or_default(),
        e.release_after,
        match (e.evidence_valid, e.evidence_reason.as_deref()) {
            (Some(true), Some(r)) => format!("; evidence valid: {r}"),
            (Some(false), Some(r)) => format!("; evidence not valid: {r}"),
            _ => String::new(),
        },
        match (&e.to_buyer, &e.to_seller) {
            (Some(b), Some(s)) => format!("; {b} to the buyer, {s} to the seller"),
            _ => String::new(),
        },
    ));
}

fn node_error(e: PayError) -> CliError {
    let message = format!("order dispute: {e}");
    match e {
        PayError::Client(e) => client_error("order dispute", e),
        PayError::Node(NodeError::Network { .. }) | PayError::WrongChain { .. } => {
            CliError::input(message)
        }
        _ => CliError::integrity(message),
    }
}

/// `market order dispute`.
pub fn dispute(
    session: &MarketSession,
    id: &str,
    evidence_path: &Path,
    rpc: &str,
    timeout: Duration,
    ui: &Ui,
) -> CliResult {
    if !(rpc.starts_with("http://") || rpc.starts_with("https://")) {
        return Err(CliError::input(format!(
            "--rpc: expected an http:// or https:// URL, got {rpc:?}"
        )));
    }
    let bytes = std::fs::read(evidence_path)
        .map_err(|e| CliError::input(at(evidence_path, format!("cannot read ({e})"))))?;
    let evidence = disputes::parse(&bytes).map_err(|e| CliError::input(at(evidence_path, e)))?;
    let mut client = client(session, "a buyer")?;
    let order = client
        .order(id)
        .map_err(|e| client_error("order dispute", e))?;
    let (Some(contract), Some(chain_id)) = (&order.payment.escrow, order.payment.chain_id) else {
        return Err(CliError::input(format!(
            "order dispute: order {id} is not paid into escrow"
        )));
    };
    let contract = EvmAddress::parse(contract, "escrow")
        .map_err(|_| CliError::integrity("order dispute: the order names a malformed escrow"))?;
    let mut node = Node::new(rpc).map_err(|e| node_error(e.into()))?;
    let answer = client
        .dispute(id, &evidence)
        .map_err(|e| client_error("order dispute", e))?;
    describe(ui, &answer);
    let hash = answer.evidence_hash.clone().unwrap_or_default();
    let hash_bytes = sealstream_core::keys::parse_hex_exact::<32>(&hash, "evidenceHash")
        .map_err(|_| CliError::integrity("order dispute: the market named no evidence hash"))?;
    let key = sealstream_core::evm::escrow::order_key(id);
    let sent = buyer::send_dispute(&client, &mut node, chain_id, contract, &key, &hash_bytes)
        .map_err(node_error)?;
    ui.say(format!(
        "Sent dispute({}, {hash}) as {}; waiting for it to be mined...",
        hex_word(&key),
        sent.tx_hash
    ));
    let receipt = buyer::wait_mined(&mut node, &sent.tx_hash, timeout).map_err(node_error)?;
    ui.say(format!(
        "Disputed on chain in block {}",
        receipt.block_number
    ));
    if ui.json {
        json_answer(ui, &answer)?;
    }
    Ok(())
}

fn hex_word(w: &[u8; 32]) -> String {
    let digits: String = w.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// `market order escrow`.
pub fn show(session: &MarketSession, id: &str, ui: &Ui) -> CliResult {
    let mut client = client(session, "a buyer, seller or arbiter")?;
    let escrow = client
        .escrow(id)
        .map_err(|e| client_error("order escrow", e))?;
    describe(ui, &escrow);
    if ui.json {
        json_answer(ui, &escrow)?;
    }
    Ok(())
}

/// `market order resolve`.
pub fn resolve(session: &MarketSession, id: &str, to_buyer: &str, ui: &Ui) -> CliResult {
    let mut client = client(session, "an arbiter")?;
    let escrow = client
        .resolve_dispute(
            id,
            &ResolveDispute {
                to_buyer: to_buyer.trim().to_string(),
            },
        )
        .map_err(|e| client_error("order resolve", e))?;
    describe(ui, &escrow);
    if ui.json {
        json_answer(ui, &escrow)?;
    }
    Ok(())
}
