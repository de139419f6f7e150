//! `sealstream market order create|show|list|mark-paid|link|cancel|pay|receipt`:
//! the buyer's and the seller's requests about orders. What is printed of an
//! order ends with what to run next, as commands to copy: pay it, mark it
//! paid, or make the release link `consume --download-url` reads.

use std::io::Write;
use std::path::Path;

use sealstream_api::orders::{
    CreateLink, CreateOrder, LinkPurpose, ListQuery, OrderSide, OrderState, OrderView,
};
use sealstream_api::payments::{MarkPaid, RailKind};

use super::market_pay;
use super::market_session::{client, client_error, json_answer};
use crate::cli::{BuyerKey, MarketOrderCommand, MarketSession, Purchase};
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// A text field of an answer, or "-".
fn or_dash(text: Option<&str>) -> &str {
    text.unwrap_or("-")
}

/// A word of a shell command as typed: as is when it is plain, else in
/// single quotes.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `sealstream market order VERB ID --server S --key-file K`, the start of
/// a command about `order` as the same person.
pub(crate) fn order_command(verb: &str, id: &str, server: &str, key_file: &Path) -> String {
    format!(
        "sealstream market order {verb} {} --server {} --key-file {}",
        shell_word(id),
        shell_word(server),
        shell_word(&key_file.display().to_string())
    )
}

/// What the person signed in runs next, one line each: how to pay (the
/// buyer's pay command and the address that must pay, or the seller's
/// mark-paid), and how to get the release package once granted.
fn next_steps(order: &OrderView, session: &MarketSession, as_buyer: bool) -> Vec<String> {
    let payment = &order.payment;
    let (server, key) = (&session.server, &session.key_file);
    let mut lines = Vec::new();
    if order.state == OrderState::AwaitingPayment {
        match payment.rail {
            RailKind::Evm => {
                lines.push(format!(
                    "  payer:  {} (the buyer's key: the server accepts a payment from this address only)",
                    or_dash(payment.payer.as_deref())
                ));
                if as_buyer {
                    lines.push(format!(
                        "  to pay: {} --rpc RPC_URL   (RPC_URL: a JSON-RPC endpoint of chain {})",
                        order_command("pay", &order.id, server, key),
                        payment.chain_id.map_or("-".to_string(), |c| c.to_string()),
                    ));
                }
            }
            RailKind::Invoice => {
                let seller_key = if as_buyer {
                    Path::new("SELLER_KEY")
                } else {
                    key.as_path()
                };
                lines.push(format!(
                    "  to pay: settle the seller's invoice; the seller then runs: {} --reference INVOICE_REF",
                    order_command("mark-paid", &order.id, server, seller_key),
                ));
            }
        }
    }
    if let Some(sub) = &order.subscription_id {
        // A subscription's period: its chunks are granted to the
        // subscription, not released with the order.
        lines.push(format!(
            "  pays:   a period of subscription {sub} (sealstream market subscription show {sub})"
        ));
        return lines;
    }
    if as_buyer && order.state != OrderState::Cancelled {
        let link = order_command("link", &order.id, server, key);
        lines.push(if order.state == OrderState::Granted {
            format!("  release: {link}   (prints the URL for consume --download-url)")
        } else {
            format!("  release: once granted, {link} prints the URL for consume --download-url")
        });
    }
    lines
}

/// What a person needs to know of an order, on stderr, and what to run
/// next as the person signed in with `session`.
fn describe(ui: &Ui, order: &OrderView, session: &MarketSession, me: &str) {
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
                "  pay:    {} {} ({} base units) on chain {} to {}, token {}{}",
                payment.amount_display,
                or_dash(payment.symbol.as_deref()),
                payment.amount,
                payment.chain_id.map_or("-".to_string(), |c| c.to_string()),
                or_dash(payment.pay_to.as_deref()),
                or_dash(payment.token.as_deref()),
                payment
                    .confirmations
                    .map_or(String::new(), |n| format!(", {n} confirmation(s)")),
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
    let as_buyer = order.buyer_did.eq_ignore_ascii_case(me);
    for line in next_steps(order, session, as_buyer) {
        ui.say(line);
    }
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

/// The buyer's client, signed in, and the X25519 public key (hex) of a
/// purchase (`order create`, `subscribe`).
pub(crate) fn buying(
    purchase: &Purchase,
) -> CliResult<(sealstream_client::market::MarketClient, String)> {
    let public = buyer_public_key(&purchase.key)?;
    Ok((client(&purchase.session, "a buyer")?, public))
}

/// The X25519 public key (hex) of `key`: the public part of the secret key
/// file, or the public key given.
pub(crate) fn buyer_public_key(key: &BuyerKey) -> CliResult<String> {
    match (&key.buyer_key_file, &key.buyer_public_key) {
        (Some(path), _) => Ok(crate::keyfile::x25519_secret(path, "buyer key")?
            .public_key()
            .to_hex()),
        (None, Some(hex)) => {
            sealstream_core::keys::RecipientPublicKey::from_hex(hex, "--buyer-public-key")
                .map(|k| k.to_hex())
                .map_err(|e| CliError::input(e.to_string()))
        }
        (None, None) => Err(CliError::input(
            "give --buyer-private-key-file or --buyer-public-key",
        )),
    }
}

/// `{"orders": […]}`.
#[derive(serde::Serialize)]
struct Orders<'a> {
    orders: &'a [OrderView],
}

pub fn run(command: MarketOrderCommand, ui: Ui) -> CliResult {
    match command {
        MarketOrderCommand::Create(order) => {
            let purchase = order.purchase;
            let (mut client, public) = buying(&purchase)?;
            let order = client
                .create_order(&CreateOrder {
                    listing_id: purchase.listing,
                    buyer_public_key_hex: public,
                    buyer_id: purchase.buyer_id,
                    jurisdiction: order.jurisdiction,
                    purpose: order.purpose,
                    accept_attestation: order.accept_attestation.then_some(true),
                })
                .map_err(|e| client_error("order create", e))?;
            describe(&ui, &order, &purchase.session, &client.did().to_string());
            ui.id_out(&order.id);
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
            describe(&ui, &order, &session, &client.did().to_string());
            if ui.json {
                json_answer(&ui, &order)?;
            }
            Ok(())
        }
        MarketOrderCommand::List { list, kind } => {
            let mut client = client(&list.session, "a buyer or seller")?;
            let side = OrderSide::parse(&list.side).unwrap_or(OrderSide::Buyer);
            // The state as given: the server names one it does not know.
            let query = ListQuery {
                state: list.state,
                ..ListQuery::new(side)
            };
            let mut orders = client
                .all_orders(&query)
                .map_err(|e| client_error("order list", e))?;
            orders.retain(|o| of_kind(&kind, o));
            if ui.json {
                json_answer(&ui, &Orders { orders: &orders })?;
            } else {
                for o in &orders {
                    println!(
                        "{}\t{}\tlisting {}\t{}\t{}{}",
                        o.id,
                        o.state,
                        o.listing_id,
                        match side {
                            OrderSide::Buyer => format!("seller {}", o.seller_did),
                            OrderSide::Seller => format!("buyer {}", o.buyer_did),
                        },
                        o.created_at,
                        o.subscription_id
                            .as_deref()
                            .map(|s| format!("\tsubscription {s}"))
                            .unwrap_or_default(),
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
        MarketOrderCommand::Cancel { session, id } => {
            let mut client = client(&session, "a buyer")?;
            let order = client
                .cancel_order(&id)
                .map_err(|e| client_error("order cancel", e))?;
            ui.say(format!("Order {} cancelled: {}", order.id, order.state));
            if ui.json {
                json_answer(&ui, &order)?;
            }
            Ok(())
        }
        MarketOrderCommand::Dispute {
            session,
            id,
            evidence,
            rpc,
            timeout,
        } => super::market_dispute::dispute(
            &session,
            &id,
            &evidence,
            &rpc,
            std::time::Duration::from_secs(timeout),
            &ui,
        ),
        MarketOrderCommand::Escrow { session, id } => {
            super::market_dispute::show(&session, &id, &ui)
        }
        MarketOrderCommand::Resolve {
            session,
            id,
            to_buyer,
        } => super::market_dispute::resolve(&session, &id, &to_buyer, &ui),
        MarketOrderCommand::Pay {
            session,
            id,
            rpc,
            wait,
            legacy,
            tx_hash,
            timeout,
        } => market_pay::run(
            &session,
            &market_pay::PayArgs {
                id,
                rpc,
                wait,
                legacy,
                tx_hash,
                timeout: std::time::Duration::from_secs(timeout),
            },
            &ui,
        ),
        #[cfg(feature = "market")]
        MarketOrderCommand::ReceiptLog { session, id } => {
            super::market_receipt_log::order_receipt_log(&session, &id, ui)
        }
        MarketOrderCommand::Receipt {
            session,
            id,
            out,
            v2,
            pdf,
        } => {
            let mut client = client(&session, "a buyer or seller")?;
            let bytes = if pdf {
                client.receipt_pdf(&id, v2)
            } else if v2 {
                client.receipt_v2(&id)
            } else {
                client.receipt(&id)
            }
            .map_err(|e| client_error("order receipt", e))?;
            match out {
                Some(path) => {
                    sealstream_files::layout::write_atomic_private(&path, &bytes)
                        .map_err(|e| CliError::input(at(&path, e)))?;
                    ui.say(format!(
                        "Receipt {}of order {id} written to {}",
                        if pdf { "(PDF) " } else { "" },
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

/// Whether `o` is of `kind` (`market order list --kind`): `period` an
/// order paying a subscription's period, `order` any other, `all` both.
fn of_kind(kind: &str, o: &OrderView) -> bool {
    match kind {
        "order" => o.subscription_id.is_none(),
        "period" => o.subscription_id.is_some(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_orders() {
        let plain = order(vec![], None);
        let mut period = order(vec![], None);
        period.subscription_id = Some("sub_1".into());
        for (kind, plain_kept, period_kept) in [
            ("order", true, false),
            ("period", false, true),
            ("all", true, true),
        ] {
            assert_eq!(
                (of_kind(kind, &plain), of_kind(kind, &period)),
                (plain_kept, period_kept),
                "{kind}"
            );
        }
    }
    use sealstream_api::orders::OrderUrls;
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
                escrow: None,
                escrow_order_key: None,
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
            subscription_id: None,
            compliance: None,
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
