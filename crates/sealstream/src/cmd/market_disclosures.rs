//! `sealstream market disclosure …`: disclosure requests under dual
//! approval (`sealstream_api::disclosures`).

use sealstream_api::disclosures::{
    CaseScope, CreateRequest, DisclosureView, PeriodScope, RequestKind, RequestView,
};
use sealstream_api::receipts::log::TotalProof;
use sealstream_api::receipts::ReceiptV2;
use sealstream_core::keys::ReceiptPublicKey;

use super::market_session::{client, client_error, json_answer};
use crate::cli::MarketDisclosureCommand;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

fn describe(ui: &Ui, r: &RequestView) {
    ui.say(format!(
        "{} {} ({}): {} of 2 approvals{}{}",
        r.id,
        r.kind.as_str(),
        r.state.as_str(),
        r.approvals.len(),
        r.access_until
            .as_deref()
            .map(|u| format!(", access until {u}"))
            .unwrap_or_default(),
        if r.sealed { ", sealed" } else { "" }
    ));
}

fn answer(ui: &Ui, r: &RequestView) -> CliResult {
    describe(ui, r);
    ui.id_out(&r.id);
    if ui.json {
        json_answer(ui, r)?;
    }
    Ok(())
}

/// A document inside an answer, as bytes to read strictly.
fn bytes_of<T: serde::Serialize>(value: &T) -> CliResult<Vec<u8>> {
    let v = sealstream_api::document::core_value_of(value)
        .map_err(|e| CliError::integrity(format!("answer: {e}")))?;
    Ok(sealstream_core::json::write::to_python_compact(&v).into_bytes())
}

/// Verifies what a disclosure holds: the total proof, each receipt
/// disclosure. Returns lines to print.
fn verify(view: &DisclosureView, pinned: Option<&ReceiptPublicKey>) -> CliResult<Vec<String>> {
    let mut lines = Vec::new();
    let integrity = |what: String, e: sealstream_api::receipts::ReceiptError| {
        if e.is_integrity() {
            CliError::integrity(format!("{what}: {e}"))
        } else {
            CliError::input(format!("{what}: {e}"))
        }
    };
    if let Some(total) = &view.total {
        let bytes = bytes_of(total)?;
        let proof = TotalProof::parse(&bytes).map_err(|e| integrity("total".into(), e))?;
        let check = proof
            .verify(pinned)
            .map_err(|e| integrity("total".into(), e))?;
        lines.push(format!(
            "total proof valid: log {}, {} to {}, {} receipts",
            check.log, proof.from, proof.to, check.receipts
        ));
        for (c, a) in &check.totals {
            lines.push(format!(
                "  total: {} ({c})",
                sealstream_api::payments::format_units(
                    a,
                    sealstream_api::receipts::log::currency_decimals(c)
                )
            ));
        }
    }
    for o in &view.orders {
        lines.push(format!(
            "order {}: buyer {}, seller {}",
            o.order_id, o.buyer_did, o.seller_did
        ));
        if let Some(d) = &o.disclosure {
            let bytes = bytes_of(d)?;
            let v2 = ReceiptV2::parse(&bytes)
                .map_err(|e| integrity(format!("order {}", o.order_id), e))?;
            let shown = v2
                .verify(pinned)
                .map_err(|e| integrity(format!("order {}", o.order_id), e))?;
            for (name, value) in &shown.fields {
                lines.push(format!(
                    "  {name}: {}",
                    sealstream_core::json::write::to_python_compact(value)
                ));
            }
        }
    }
    Ok(lines)
}

pub fn run(command: MarketDisclosureCommand, ui: Ui) -> CliResult {
    match command {
        MarketDisclosureCommand::Request {
            session,
            legal_basis,
            log,
            from,
            to,
            order,
            listing,
            party,
            fields,
            access_seconds,
        } => {
            let (kind, period, case) = match (log, from, to) {
                (Some(log), Some(from), Some(to)) => (
                    RequestKind::PeriodTotal,
                    Some(PeriodScope { log, from, to }),
                    None,
                ),
                _ => {
                    if order.is_none() && listing.is_none() && party.is_none() {
                        return Err(CliError::input(
                            "give --log, --from and --to (a period), or one of --order, --listing, --party (a case)",
                        ));
                    }
                    (
                        RequestKind::Case,
                        None,
                        Some(CaseScope {
                            order_id: order,
                            listing_id: listing,
                            party,
                        }),
                    )
                }
            };
            let mut c = client(&session, "an auditor")?;
            let view = c
                .create_disclosure_request(&CreateRequest {
                    kind,
                    legal_basis,
                    period,
                    case,
                    fields,
                    access_seconds,
                })
                .map_err(|e| client_error("disclosure request", e))?;
            answer(&ui, &view)
        }
        MarketDisclosureCommand::List { session } => {
            let mut c = client(&session, "an auditor or approver")?;
            let list = c
                .disclosure_requests()
                .map_err(|e| client_error("disclosure list", e))?;
            for r in &list.items {
                describe(&ui, r);
            }
            if ui.json {
                json_answer(&ui, &list)?;
            }
            Ok(())
        }
        MarketDisclosureCommand::Show { session, id } => {
            let mut c = client(&session, "an auditor or approver")?;
            let view = c
                .disclosure_request(&id)
                .map_err(|e| client_error("disclosure show", e))?;
            answer(&ui, &view)
        }
        MarketDisclosureCommand::Approve { session, id, seal } => {
            let mut c = client(&session, "an approver")?;
            let view = c
                .approve_disclosure(&id, seal)
                .map_err(|e| client_error("disclosure approve", e))?;
            answer(&ui, &view)
        }
        MarketDisclosureCommand::Reject {
            session,
            id,
            reason,
        } => {
            let mut c = client(&session, "an approver")?;
            let view = c
                .reject_disclosure(&id, &reason)
                .map_err(|e| client_error("disclosure reject", e))?;
            answer(&ui, &view)
        }
        MarketDisclosureCommand::Fetch {
            session,
            id,
            server_key,
            out,
        } => {
            let pinned = server_key
                .map(|k| {
                    ReceiptPublicKey::from_hex(&k, "--server-key")
                        .map_err(|e| CliError::input(e.to_string()))
                })
                .transpose()?;
            let mut c = client(&session, "an auditor")?;
            let view = c
                .disclosure(&id)
                .map_err(|e| client_error("disclosure fetch", e))?;
            let lines = verify(&view, pinned.as_ref())?;
            let text = sealstream_core::json::write::to_python_pretty(
                &sealstream_api::document::core_value_of(&view)
                    .map_err(|e| CliError::integrity(format!("answer: {e}")))?,
            );
            match &out {
                Some(path) => {
                    sealstream_files::layout::write_atomic(path, text.as_bytes())
                        .map_err(|e| CliError::input(at(path, e)))?;
                    ui.say(format!("Disclosure {id} written to {}", path.display()));
                }
                None => print!("{text}"),
            }
            ui.say(format!("access until {}", view.access_until));
            for line in lines {
                ui.say(line);
            }
            Ok(())
        }
        MarketDisclosureCommand::Notices { session } => {
            let mut c = client(&session, "a party")?;
            let list = c
                .disclosure_notices()
                .map_err(|e| client_error("disclosure notices", e))?;
            if list.items.is_empty() {
                ui.say("no disclosure concerns you");
            }
            for n in &list.items {
                ui.say(format!(
                    "{} {}: approved at {}, access until {}; legal basis: {}",
                    n.request_id,
                    n.kind.as_str(),
                    n.approved_at,
                    n.access_until,
                    n.legal_basis
                ));
            }
            if ui.json {
                json_answer(&ui, &list)?;
            }
            Ok(())
        }
    }
}
