//! `sealstream market order create|show|list|mark-paid|link|receipt`: the
//! buyer's and the seller's requests about orders.

use std::io::Write;

use sealstream_api::orders::{
    CreateLink, CreateOrder, LinkPurpose, ListQuery, OrderSide, OrderView,
};
use sealstream_api::payments::{MarkPaid, RailKind};

use super::market_session::{client, client_error, json_answer};
use crate::cli::MarketOrderCommand;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// A text field of an answer, or "-".
fn or_dash(text: Option<&str>) -> &str {
    text.unwrap_or("-")
}

/// What a person needs to know of an order, on stderr.
fn describe(ui: &Ui, order: &OrderView) {
    let payment = &order.payment;
    ui.say(format!(
        "Order {} of listing {}: {}",
        order.id, order.listing_id, order.state
    ));
    ui.say(format!("  buyer:  {}", order.buyer_did));
    ui.say(format!("  seller: {}", order.seller_did));
    match payment.rail {
        RailKind::Evm => {
            ui.say(format!(
                "  pay:    {} {} ({} base units) on chain {} to {}, token {}",
                payment.amount_display,
                or_dash(payment.symbol.as_deref()),
                payment.amount,
                payment.chain_id.map_or("-".to_string(), |c| c.to_string()),
                or_dash(payment.pay_to.as_deref()),
                or_dash(payment.token.as_deref()),
            ));
            ui.say(format!(
                "  proof:  {} (peaqos stream pay --confirmation-url)",
                order.urls.payment_proof
            ));
        }
        RailKind::Invoice => ui.say(format!(
            "  pay:    {} {} by invoice; the seller marks the order paid",
            payment.amount_display,
            or_dash(payment.currency.as_deref()),
        )),
    }
    for line in claim_lines(order) {
        ui.say(line);
    }
    ui.say(format!("  release: {}", order.urls.release));
}

/// The order's payment claims, one line each: the transaction, its state
/// and what it waits for ("waiting for 2 more confirmations", "transaction
/// not yet known to the node") or why it closed.
fn claim_lines(order: &OrderView) -> Vec<String> {
    if order.claims.is_empty() {
        // A summary without the claims listed.
        return order
            .claimed_tx
            .as_deref()
            .map(|tx| {
                vec![format!(
                    "  claimed payment: {tx} ({})",
                    or_dash(order.claim_status.as_deref())
                )]
            })
            .unwrap_or_default();
    }
    let mut lines = vec!["  payment claims:".to_string()];
    for c in &order.claims {
        let mut line = format!(
            "    {} {}: {}",
            c.tx_hash,
            c.state,
            or_dash(c.reason.as_deref())
        );
        if let Some(checked) = &c.last_checked_at {
            line.push_str(&format!(" (checked {checked})"));
        }
        lines.push(line);
    }
    lines
}

/// `{"orders": […]}`.
#[derive(serde::Serialize)]
struct Orders<'a> {
    orders: &'a [OrderView],
}

pub fn run(command: MarketOrderCommand, ui: Ui) -> CliResult {
    match command {
        MarketOrderCommand::Create {
            session,
            listing,
            buyer_key_file,
            buyer_public_key,
            buyer_id,
        } => {
            let public = match (buyer_key_file, buyer_public_key) {
                (Some(path), _) => crate::keyfile::x25519_secret(&path, "buyer key")?
                    .public_key()
                    .to_hex(),
                (None, Some(hex)) => {
                    sealstream_core::keys::RecipientPublicKey::from_hex(&hex, "--buyer-public-key")
                        .map_err(|e| CliError::input(e.to_string()))?
                        .to_hex()
                }
                (None, None) => {
                    return Err(CliError::input(
                        "give --buyer-private-key-file or --buyer-public-key",
                    ))
                }
            };
            let mut client = client(&session, "a buyer")?;
            let order = client
                .create_order(&CreateOrder {
                    listing_id: listing,
                    buyer_public_key_hex: public,
                    buyer_id,
                })
                .map_err(|e| client_error("order create", e))?;
            describe(&ui, &order);
            if ui.json {
                json_answer(&ui, &order)?;
            }
            Ok(())
        }
        MarketOrderCommand::Show { session, id } => {
            let mut client = client(&session, "a buyer or seller")?;
            let order = client
                .order(&id)
                .map_err(|e| client_error("order show", e))?;
            describe(&ui, &order);
            if ui.json {
                json_answer(&ui, &order)?;
            }
            Ok(())
        }
        MarketOrderCommand::List {
            session,
            side,
            state,
        } => {
            let mut client = client(&session, "a buyer or seller")?;
            let side = OrderSide::parse(&side).unwrap_or(OrderSide::Buyer);
            // The state as given: the server names one it does not know.
            let query = ListQuery {
                state,
                ..ListQuery::new(side)
            };
            let orders = client
                .all_orders(&query)
                .map_err(|e| client_error("order list", e))?;
            if ui.json {
                json_answer(&ui, &Orders { orders: &orders })?;
            } else {
                for o in &orders {
                    println!(
                        "{}\t{}\tlisting {}\t{}\t{}",
                        o.id,
                        o.state,
                        o.listing_id,
                        match side {
                            OrderSide::Buyer => format!("seller {}", o.seller_did),
                            OrderSide::Seller => format!("buyer {}", o.buyer_did),
                        },
                        o.created_at,
                    );
                }
            }
            Ok(())
        }
        MarketOrderCommand::MarkPaid {
            session,
            id,
            reference,
        } => {
            let mut client = client(&session, "a seller")?;
            let order = client
                .mark_paid(&id, &MarkPaid { reference })
                .map_err(|e| client_error("order mark-paid", e))?;
            ui.say(format!("Order {} marked paid: {}", order.id, order.state));
            if ui.json {
                json_answer(&ui, &order)?;
            }
            Ok(())
        }
        MarketOrderCommand::Link {
            session,
            id,
            purpose,
        } => {
            let mut client = client(&session, "a buyer or seller")?;
            let purpose = LinkPurpose::parse(&purpose)
                .ok_or_else(|| CliError::input("--purpose: expected release or confirmation"))?;
            let link = client
                .create_link(&id, &CreateLink { purpose })
                .map_err(|e| client_error("order link", e))?;
            if ui.json {
                json_answer(&ui, &link)?;
            } else {
                // The URL is the command's result: stdout, for `$(…)`.
                println!("{}", link.url);
                ui.say(format!(
                    "Link {} ({}); it carries a bearer token: hand it only to whom it is for",
                    link.id, link.purpose
                ));
            }
            Ok(())
        }
        MarketOrderCommand::Receipt { session, id, out } => {
            let mut client = client(&session, "a buyer or seller")?;
            let bytes = client
                .receipt(&id)
                .map_err(|e| client_error("order receipt", e))?;
            match out {
                Some(path) => {
                    sealstream_files::layout::write_atomic(&path, &bytes)
                        .map_err(|e| CliError::input(at(&path, e)))?;
                    ui.say(format!(
                        "Receipt of order {id} written to {}",
                        path.display()
                    ));
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_api::orders::{OrderState, OrderUrls};
    use sealstream_api::payments::{ClaimState, ClaimView, PaymentInstructions};

    fn order(claims: Vec<ClaimView>, claimed: Option<(&str, &str)>) -> OrderView {
        OrderView {
            id: "ord_1".into(),
            listing_id: "ls_1".into(),
            dataset_id: "ds_1".into(),
            seller_did: "s".into(),
            buyer_did: "b".into(),
            buyer_id: "b".into(),
            buyer_public_key_hex: "00".into(),
            state: OrderState::AwaitingPayment,
            claimed_tx: claimed.map(|(tx, _)| tx.to_string()),
            claim_status: claimed.map(|(_, status)| status.to_string()),
            claims,
            payment: PaymentInstructions {
                rail: RailKind::Invoice,
                amount: "1".into(),
                amount_display: "0.01".into(),
                decimals: 2,
                chain_id: None,
                chain: None,
                pay_to: None,
                token: None,
                symbol: None,
                payer: None,
                confirmations: None,
                currency: Some("EUR".into()),
                payee: None,
            },
            urls: OrderUrls {
                payment_proof: "p".into(),
                confirmation: "c".into(),
                release: "r".into(),
                receipt: "q".into(),
            },
            created_at: "2026-01-01T00:00:00Z".into(),
            paid_at: None,
            granted_at: None,
        }
    }

    fn claim(tx: &str, state: ClaimState, reason: &str, checked: Option<&str>) -> ClaimView {
        ClaimView {
            tx_hash: tx.into(),
            chain_id: 1,
            state,
            reason: Some(reason.into()),
            confirmations: None,
            claimed_at: "2026-01-02T03:00:00Z".into(),
            last_checked_at: checked.map(str::to_string),
            checks: 1,
        }
    }

    #[test]
    fn claims_say_what_they_wait_for() {
        let with_claims = order(
            vec![
                claim(
                    "0xaa",
                    ClaimState::Pending,
                    "waiting for 2 more confirmations",
                    Some("2026-01-02T03:04:05Z"),
                ),
                claim(
                    "0xbb",
                    ClaimState::Unknown,
                    "transaction not yet known to the node",
                    None,
                ),
            ],
            Some(("0xaa", "0xaa: waiting")),
        );
        assert_eq!(
            claim_lines(&with_claims),
            vec![
                "  payment claims:",
                "    0xaa pending: waiting for 2 more confirmations (checked 2026-01-02T03:04:05Z)",
                "    0xbb unknown: transaction not yet known to the node",
            ]
        );
        let summary_only = order(Vec::new(), Some(("0xaa", "0xaa: 1 of 3")));
        assert_eq!(
            claim_lines(&summary_only),
            vec!["  claimed payment: 0xaa (0xaa: 1 of 3)"]
        );
        assert!(claim_lines(&order(Vec::new(), None)).is_empty());
    }
}
