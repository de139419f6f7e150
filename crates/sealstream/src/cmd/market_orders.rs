//! `sealstream market order create|show|list|mark-paid|link|receipt`: the
//! buyer's and the seller's requests about orders.

use std::io::Write;

use sealstream_client::market::{encode_segment, MarketClient, Paging};
use sealstream_core::json::{Map, Value};

use super::market_session::{client, client_error, field, wrap};
use crate::cli::MarketOrderCommand;
use crate::error::{at, CliError, CliResult};
use crate::ui::Ui;

/// Largest receipt read (they are a few KiB).
const MAX_RECEIPT: u64 = 1 << 20;

fn order_path(id: &str) -> String {
    format!("/v1/orders/{}", encode_segment(id))
}

/// What a person needs to know of an order, on stderr.
fn describe(ui: &Ui, order: &Value) {
    let payment = order.get("payment").cloned().unwrap_or(Value::Null);
    let urls = order.get("urls").cloned().unwrap_or(Value::Null);
    ui.say(format!(
        "Order {} of listing {}: {}",
        field(order, "id"),
        field(order, "listingId"),
        field(order, "state")
    ));
    ui.say(format!("  buyer:  {}", field(order, "buyerDid")));
    ui.say(format!("  seller: {}", field(order, "sellerDid")));
    match field(&payment, "rail") {
        "evm" => {
            ui.say(format!(
                "  pay:    {} {} ({} base units) on chain {} to {}, token {}",
                field(&payment, "amountDisplay"),
                field(&payment, "symbol"),
                field(&payment, "amount"),
                payment
                    .get("chainId")
                    .and_then(Value::as_u64)
                    .map_or("-".to_string(), |c| c.to_string()),
                field(&payment, "payTo"),
                field(&payment, "token"),
            ));
            ui.say(format!(
                "  proof:  {} (peaqos stream pay --confirmation-url)",
                field(&urls, "paymentProof")
            ));
        }
        "invoice" => ui.say(format!(
            "  pay:    {} {} by invoice; the seller marks the order paid",
            field(&payment, "amountDisplay"),
            field(&payment, "currency"),
        )),
        _ => {}
    }
    for line in claim_lines(order) {
        ui.say(line);
    }
    ui.say(format!("  release: {}", field(&urls, "release")));
}

/// The order's payment claims, one line each: the transaction, its state
/// and what it waits for ("waiting for 2 more confirmations", "transaction
/// not yet known to the node") or why it closed.
fn claim_lines(order: &Value) -> Vec<String> {
    let claims = order
        .get("claims")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if claims.is_empty() {
        // A server before claims were listed: its summary.
        return order
            .get("claimedTx")
            .and_then(Value::as_str)
            .map(|tx| {
                vec![format!(
                    "  claimed payment: {tx} ({})",
                    field(order, "claimStatus")
                )]
            })
            .unwrap_or_default();
    }
    let mut lines = vec!["  payment claims:".to_string()];
    for c in claims {
        let mut line = format!(
            "    {} {}: {}",
            field(c, "txHash"),
            field(c, "state"),
            field(c, "reason")
        );
        if let Some(checked) = c.get("lastCheckedAt").and_then(Value::as_str) {
            line.push_str(&format!(" (checked {checked})"));
        }
        lines.push(line);
    }
    lines
}

fn get_order(client: &mut MarketClient, id: &str) -> CliResult<Value> {
    client
        .get(&order_path(id))
        .map_err(|e| client_error("order show", e))
}

pub fn run(command: MarketOrderCommand, ui: Ui) -> CliResult {
    match command {
        MarketOrderCommand::Create {
            session,
            listing,
            buyer_key_file,
            buyer_public_key,
            buyer_id,
            json,
        } => {
            let ui = Ui { json, ..ui };
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
                        "give --buyer-key-file or --buyer-public-key",
                    ))
                }
            };
            let mut client = client(&session, "a buyer")?;
            let mut body = Map::new();
            body.insert("listingId".into(), listing.into());
            body.insert("buyerPublicKeyHex".into(), public.into());
            if let Some(id) = buyer_id {
                body.insert("buyerId".into(), id.into());
            }
            let order = client
                .request("POST", "/v1/orders", Some(&Value::Object(body)))
                .map_err(|e| client_error("order create", e))?;
            describe(&ui, &order);
            if ui.json {
                ui.json_out(&order);
            }
            Ok(())
        }
        MarketOrderCommand::Show { session, id, json } => {
            let ui = Ui { json, ..ui };
            let mut client = client(&session, "a buyer or seller")?;
            let order = get_order(&mut client, &id)?;
            describe(&ui, &order);
            if ui.json {
                ui.json_out(&order);
            }
            Ok(())
        }
        MarketOrderCommand::List {
            session,
            side,
            state,
            json,
        } => {
            let mut client = client(&session, "a buyer or seller")?;
            let mut path = format!("/v1/orders?as={side}");
            if let Some(state) = state {
                path.push_str(&format!("&state={}", encode_segment(&state)));
            }
            let orders = client
                .all_pages(&path, "items", 200, Paging::Cursor)
                .map_err(|e| client_error("order list", e))?;
            if json {
                ui.json_out(&wrap("orders", orders));
            } else {
                for o in &orders {
                    println!(
                        "{}\t{}\tlisting {}\t{}\t{}",
                        field(o, "id"),
                        field(o, "state"),
                        field(o, "listingId"),
                        if side == "buyer" {
                            format!("seller {}", field(o, "sellerDid"))
                        } else {
                            format!("buyer {}", field(o, "buyerDid"))
                        },
                        field(o, "createdAt"),
                    );
                }
            }
            Ok(())
        }
        MarketOrderCommand::MarkPaid {
            session,
            id,
            reference,
            json,
        } => {
            let ui = Ui { json, ..ui };
            let mut client = client(&session, "a seller")?;
            let mut body = Map::new();
            body.insert("reference".into(), reference.into());
            let order = client
                .request(
                    "POST",
                    &format!("{}/mark-paid", order_path(&id)),
                    Some(&Value::Object(body)),
                )
                .map_err(|e| client_error("order mark-paid", e))?;
            ui.say(format!(
                "Order {} marked paid: {}",
                field(&order, "id"),
                field(&order, "state")
            ));
            if ui.json {
                ui.json_out(&order);
            }
            Ok(())
        }
        MarketOrderCommand::Link {
            session,
            id,
            purpose,
            json,
        } => {
            let mut client = client(&session, "a buyer or seller")?;
            let mut body = Map::new();
            body.insert("purpose".into(), purpose.into());
            let link = client
                .request(
                    "POST",
                    &format!("{}/links", order_path(&id)),
                    Some(&Value::Object(body)),
                )
                .map_err(|e| client_error("order link", e))?;
            if json {
                ui.json_out(&link);
            } else {
                // The URL is the command's result: stdout, for `$(…)`.
                println!("{}", field(&link, "url"));
                ui.say(format!(
                    "Link {} ({}); it carries a bearer token: hand it only to whom it is for",
                    field(&link, "id"),
                    field(&link, "purpose")
                ));
            }
            Ok(())
        }
        MarketOrderCommand::Receipt { session, id, out } => {
            let mut client = client(&session, "a buyer or seller")?;
            let bytes = client
                .get_bytes(&format!("{}/receipt", order_path(&id)), MAX_RECEIPT)
                .map_err(|e| client_error("order receipt", e))?;
            match out {
                Some(path) => {
                    sealstream_core::layout::write_atomic(&path, &bytes)
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

    #[test]
    fn claims_say_what_they_wait_for() {
        let order = sealstream_core::json::parse(
            br#"{"claimedTx":"0xaa","claimStatus":"0xaa: waiting","claims":[
                {"txHash":"0xaa","state":"pending","reason":"waiting for 2 more confirmations",
                 "lastCheckedAt":"2026-01-02T03:04:05Z"},
                {"txHash":"0xbb","state":"unknown","reason":"transaction not yet known to the node",
                 "lastCheckedAt":null}]}"#,
        )
        .unwrap();
        assert_eq!(
            claim_lines(&order),
            vec![
                "  payment claims:",
                "    0xaa pending: waiting for 2 more confirmations (checked 2026-01-02T03:04:05Z)",
                "    0xbb unknown: transaction not yet known to the node",
            ]
        );
        let older =
            sealstream_core::json::parse(br#"{"claimedTx":"0xaa","claimStatus":"0xaa: 1 of 3"}"#)
                .unwrap();
        assert_eq!(
            claim_lines(&older),
            vec!["  claimed payment: 0xaa (0xaa: 1 of 3)"]
        );
        let none = sealstream_core::json::parse(br#"{"claims":[]}"#).unwrap();
        assert!(claim_lines(&none).is_empty());
    }
}
