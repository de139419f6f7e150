//! `sealstream market audit prove-total|verify-total|log-head|log-consistency`
//! and `market order receipt-log`: the market's receipt logs
//! (`sealstream_api::receipts::log`), proven by the server and checked here.

use std::io::Write;
use std::path::Path;

use sealstream_api::payments::{format_units, parse_units};
use sealstream_api::receipts::log::{
    currency_decimals, ConsistencyQuery, LogConsistency, LogQuery, ReceiptLogs, SignedLogHead,
    TotalProof, TotalQuery,
};
use sealstream_api::receipts::{ReceiptError, SignedReceipt};
use sealstream_core::json::{Map, Value};
use sealstream_core::keys::ReceiptPublicKey;

use super::market_session::{client, client_error};
use crate::cli::MarketSession;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// `--server-key`, parsed.
fn pinned(server_key: Option<&str>) -> CliResult<Option<ReceiptPublicKey>> {
    server_key
        .map(|text| {
            ReceiptPublicKey::from_hex(text, "--server-key")
                .map_err(|e| CliError::input(e.to_string()))
        })
        .transpose()
}

/// A receipt error as the CLI's: integrity (exit 2) or bad input.
fn receipt_error(what: impl std::fmt::Display, e: ReceiptError) -> CliError {
    let message = format!("{what}: {e}");
    if e.is_integrity() {
        CliError::integrity(message)
    } else {
        CliError::input(message)
    }
}

/// Writes `text` to `out` (atomically, 0600) or stdout.
fn write_out(out: Option<&Path>, text: &str, what: &str, ui: &Ui) -> CliResult {
    match out {
        Some(path) => {
            sealstream_files::layout::write_atomic(path, text.as_bytes())
                .map_err(|e| CliError::input(at(path, e)))?;
            ui.say(format!("{what} written to {}", path.display()));
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
        }
    }
    Ok(())
}

/// A total as people write it: `1234.5 (invoice:EUR:2)`.
fn shown_total(currency: &str, amount: &str) -> String {
    format!(
        "{} ({currency})",
        format_units(amount, currency_decimals(currency))
    )
}

/// The lines a verified proof prints.
fn summary(proof: &TotalProof, receipts: u64, pinned: bool) -> Vec<String> {
    let head = &proof.head.head;
    let mut lines = vec![
        format!(
            "total proof valid: log {}, period {} to {}, {receipts} receipts",
            head.log, proof.from, proof.to
        ),
        format!(
            "  against the head of {} receipts signed at {} by {}{}",
            head.tree_size,
            head.signed_at,
            proof.head.public_key.to_hex(),
            if pinned {
                " (the pinned market key)"
            } else {
                " (not pinned: pass --server-key to check it is the market's)"
            }
        ),
    ];
    if proof.totals.is_empty() {
        lines.push("  totals: none (no sales in the period)".into());
    }
    for (currency, amount) in &proof.totals {
        lines.push(format!("  total: {}", shown_total(currency, amount)));
    }
    lines
}

/// `market audit prove-total`.
pub fn prove_total(
    session: &MarketSession,
    query: TotalQuery,
    server_key: Option<&str>,
    out: Option<&Path>,
    ui: Ui,
) -> CliResult {
    let pinned = pinned(server_key)?;
    let mut client = client(session, "a seller or an auditor")?;
    let bytes = client
        .receipt_log_total(&query)
        .map_err(|e| client_error("audit prove-total", e))?;
    let proof = TotalProof::parse(&bytes)
        .map_err(|e| receipt_error("the server's proof is unreadable", e))?;
    let check = proof
        .verify(pinned.as_ref())
        .map_err(|e| receipt_error("the server's proof does not verify", e))?;
    write_out(out, &proof.to_json_pretty(), "Total proof", &ui)?;
    for line in summary(&proof, check.receipts, pinned.is_some()) {
        ui.say(line);
    }
    Ok(())
}

/// `market audit verify-total`.
pub fn verify_total(path: &Path, server_key: Option<&str>, expect: &[String], ui: Ui) -> CliResult {
    let pinned = pinned(server_key)?;
    let bytes =
        std::fs::read(path).map_err(|e| CliError::input(at(path, format!("cannot read ({e})"))))?;
    let proof = TotalProof::parse(&bytes).map_err(|e| receipt_error(at(path, ""), e))?;
    let mut wanted = Vec::new();
    for e in expect {
        let (currency, amount) = e
            .rsplit_once('=')
            .ok_or_else(|| CliError::input(format!("--expect {e}: expected CURRENCY=AMOUNT")))?;
        let base = parse_units(amount, currency_decimals(currency)).ok_or_else(|| {
            CliError::input(format!(
                "--expect {e}: not an amount with at most {} decimals",
                currency_decimals(currency)
            ))
        })?;
        wanted.push((currency.to_string(), base));
    }
    let check = proof
        .verify(pinned.as_ref())
        .map_err(|e| receipt_error(at(path, ""), e))?;
    let lines = summary(&proof, check.receipts, pinned.is_some());
    for (currency, base) in &wanted {
        let shown = check.totals.get(currency).map_or("0", String::as_str);
        if shown != base {
            for line in &lines {
                ui.say(line);
            }
            return Err(CliError::integrity(format!(
                "--expect: the proven total in {currency} is {}, not {}",
                format_units(shown, currency_decimals(currency)),
                format_units(base, currency_decimals(currency))
            )));
        }
    }
    if ui.json {
        let mut totals = Map::new();
        for (currency, amount) in &check.totals {
            totals.insert(currency.clone(), amount.as_str().into());
        }
        let mut m = Map::new();
        m.insert("valid".into(), true.into());
        m.insert("log".into(), check.log.as_str().into());
        m.insert("from".into(), proof.from.as_str().into());
        m.insert("to".into(), proof.to.as_str().into());
        m.insert("receipts".into(), Value::from(check.receipts));
        m.insert("totals".into(), Value::Object(totals));
        m.insert("treeSize".into(), Value::from(proof.head.head.tree_size));
        m.insert("signedAt".into(), proof.head.head.signed_at.as_str().into());
        m.insert("keyPinned".into(), pinned.is_some().into());
        ui.json_out(&Value::Object(m));
    }
    for line in lines {
        ui.say(line);
    }
    Ok(())
}

/// `market audit log-head`.
pub fn log_head(session: &MarketSession, log: &str, out: Option<&Path>, ui: Ui) -> CliResult {
    let mut client = client(session, "a seller or an auditor")?;
    let bytes = client
        .receipt_log_head(&LogQuery {
            log: Some(log.into()),
        })
        .map_err(|e| client_error("audit log-head", e))?;
    let head = SignedLogHead::parse(&bytes)
        .map_err(|e| receipt_error("the server's head is unreadable", e))?;
    head.verify(None)
        .map_err(|e| receipt_error("the server's head does not verify", e))?;
    write_out(out, &head.to_json_pretty(), "Signed head", &ui)?;
    ui.say(format!(
        "log {}: {} receipts, root {}, signed at {} by {}",
        head.head.log,
        head.head.tree_size,
        head.head.root_hash_hex(),
        head.head.signed_at,
        head.public_key.to_hex()
    ));
    Ok(())
}

/// `market audit log-consistency`.
pub fn log_consistency(
    session: &MarketSession,
    old_path: &Path,
    out: Option<&Path>,
    ui: Ui,
) -> CliResult {
    let bytes = std::fs::read(old_path)
        .map_err(|e| CliError::input(at(old_path, format!("cannot read ({e})"))))?;
    let old = SignedLogHead::parse(&bytes).map_err(|e| receipt_error(at(old_path, ""), e))?;
    old.verify(None)
        .map_err(|e| receipt_error(at(old_path, ""), e))?;
    let mut client = client(session, "a seller or an auditor")?;
    let answer = client
        .receipt_log_consistency(&ConsistencyQuery {
            log: Some(old.head.log.clone()),
            size: old.head.tree_size,
        })
        .map_err(|e| client_error("audit log-consistency", e))?;
    let proof = LogConsistency::from_extension(old, &answer)
        .map_err(|e| receipt_error("the server's answer is unreadable", e))?;
    proof
        .verify(None)
        .map_err(|e| receipt_error("the log is not consistent with the old head", e))?;
    if let Some(path) = out {
        write_out(
            Some(path),
            &proof.to_json_pretty(),
            "Consistency proof",
            &ui,
        )?;
    }
    ui.say(format!(
        "log {} is consistent: it grew from {} receipts (signed at {}) to {} (signed at {}), nothing before rewritten",
        proof.new.head.log,
        proof.old.head.tree_size,
        proof.old.head.signed_at,
        proof.new.head.tree_size,
        proof.new.head.signed_at
    ));
    Ok(())
}

/// `market order receipt-log`.
pub fn order_receipt_log(session: &MarketSession, id: &str, ui: Ui) -> CliResult {
    let mut client = client(session, "a buyer or seller")?;
    let receipt_bytes = client
        .receipt(id)
        .map_err(|e| client_error("order receipt-log", e))?;
    let receipt = SignedReceipt::parse(&receipt_bytes)
        .map_err(|e| receipt_error("the server's receipt is unreadable", e))?;
    receipt
        .verify(None)
        .map_err(|e| receipt_error("the server's receipt does not verify", e))?;
    let bytes = client
        .receipt_logs(id)
        .map_err(|e| client_error("order receipt-log", e))?;
    let logs = ReceiptLogs::parse(&bytes)
        .map_err(|e| receipt_error("the server's answer is unreadable", e))?;
    // The logs' heads must be signed by the key that signed the receipt.
    let key = receipt.public_key;
    for inclusion in std::iter::once(&logs.market).chain(logs.seller.as_ref()) {
        let head = &inclusion.head.head;
        inclusion
            .verify(&receipt, Some(&key))
            .map_err(|e| receipt_error(format!("log {}", head.log), e))?;
        ui.say(format!(
            "receipt of order {id} is leaf {} of {} in log {} (head signed at {}), committing to {}",
            inclusion.index,
            head.tree_size,
            head.log,
            head.signed_at,
            shown_total(&inclusion.currency, &inclusion.amount)
        ));
    }
    Ok(())
}
