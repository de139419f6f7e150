//! `sealstream market subscribe` and `sealstream market subscription
//! show|list|cancel|revoke|renew|history`: the buyer's and the seller's
//! requests about subscriptions (docs/subscriptions.md). A subscription's
//! periods are orders: what is printed ends with the order command that
//! pays the period awaiting payment.

use std::path::Path;

use sealstream_api::payments::RailKind;
use sealstream_api::subscriptions::{
    CreateSubscription, RenewSubscription, RevokeSubscription, SubscriptionHistory,
    SubscriptionQuery, SubscriptionSide, SubscriptionView,
};

use super::market_browse::history_text;
use super::market_orders::{buyer_public_key, buying, order_command};
use super::market_session::{client, client_error, json_answer};
use crate::cli::{BuyerKey, MarketSession, MarketSubscriptionCommand, Purchase};
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

fn or_dash(text: Option<&str>) -> &str {
    text.unwrap_or("-")
}

/// What a person needs to know of a subscription, on stderr, and the
/// command that pays its unpaid period as the person signed in.
fn describe(ui: &Ui, s: &SubscriptionView, session: &MarketSession, me: &str) {
    ui.say(format!(
        "Subscription {} of listing {}: {}",
        s.id, s.listing_id, s.state
    ));
    ui.say(format!("  buyer:        {}", s.buyer_did));
    ui.say(format!("  seller:       {}", s.seller_did));
    ui.say(format!("  topic:        {} {}", s.machine_did, s.topic));
    ui.say(format!(
        "  terms:        {} base units per {} s, grace {} s, history {}",
        s.amount,
        s.period_seconds,
        s.grace_seconds,
        history_text(s.history)
    ));
    ui.say(format!(
        "  active from:  {}",
        or_dash(s.active_from.as_deref())
    ));
    ui.say(format!(
        "  paid through: {}",
        or_dash(s.paid_through.as_deref())
    ));
    if let Some(g) = &s.grace_until {
        ui.say(format!("  grace until:  {g}"));
    }
    if let Some(e) = &s.access_ends {
        ui.say(format!(
            "  access ends:  {e} ({})",
            or_dash(s.end_reason.as_deref())
        ));
    }
    for (i, k) in s.keys.iter().enumerate() {
        // The first key applies from the start (its stored time is 0).
        let from = if i == 0 {
            "the start".to_string()
        } else {
            k.applies_from.clone()
        };
        ui.say(format!("  key:          {} from {from}", k.public_key_hex));
    }
    for p in &s.periods {
        ui.say(format!(
            "  period {}:     order {} {}{}",
            p.number,
            p.order_id,
            p.state,
            p.paid_at
                .as_deref()
                .map(|t| format!(", paid {t}"))
                .unwrap_or_default()
        ));
    }
    let (Some(order), Some(payment)) = (s.unpaid_order(), &s.payment) else {
        return;
    };
    let as_buyer = s.buyer_did.eq_ignore_ascii_case(me);
    let (server, key) = (&session.server, &session.key_file);
    match payment.rail {
        RailKind::Evm if as_buyer => ui.say(format!(
            "  to pay:       {} --rpc RPC_URL",
            order_command("pay", order, server, key)
        )),
        RailKind::Evm => ui.say(format!(
            "  to pay:       the buyer pays order {order} on chain {}",
            payment.chain_id.map_or("-".to_string(), |c| c.to_string())
        )),
        RailKind::Invoice => {
            let seller_key = if as_buyer {
                Path::new("SELLER_KEY")
            } else {
                key.as_path()
            };
            ui.say(format!(
                "  to pay:       {} {} by invoice; the seller then runs: {} --reference INVOICE_REF",
                payment.amount_display,
                or_dash(payment.currency.as_deref()),
                order_command("mark-paid", order, server, seller_key)
            ));
        }
    }
}

/// `market subscribe`.
pub fn subscribe(purchase: Purchase, ui: Ui) -> CliResult {
    let (mut client, public) = buying(&purchase)?;
    let s = client
        .create_subscription(&CreateSubscription {
            listing_id: purchase.listing,
            buyer_public_key_hex: public,
            buyer_id: purchase.buyer_id,
        })
        .map_err(|e| client_error("subscribe", e))?;
    describe(&ui, &s, &purchase.session, &client.did().to_string());
    ui.id_out(&s.id);
    if ui.json {
        json_answer(&ui, &s)?;
    }
    Ok(())
}

/// `{"subscriptions": […]}`.
#[derive(serde::Serialize)]
struct Subscriptions<'a> {
    subscriptions: &'a [SubscriptionView],
}

/// Shows `s` (stderr, or the JSON answer on stdout).
fn answer(ui: &Ui, s: &SubscriptionView, session: &MarketSession, me: &str) -> CliResult {
    describe(ui, s, session, me);
    if ui.json {
        json_answer(ui, s)?;
    }
    Ok(())
}

pub fn run(command: MarketSubscriptionCommand, ui: Ui) -> CliResult {
    match command {
        MarketSubscriptionCommand::Show { session, id } => {
            let mut client = client(&session, "a buyer or seller")?;
            let s = client
                .subscription(&id)
                .map_err(|e| client_error("subscription show", e))?;
            answer(&ui, &s, &session, &client.did().to_string())
        }
        MarketSubscriptionCommand::List(list) => {
            let mut client = client(&list.session, "a buyer or seller")?;
            let side = SubscriptionSide::parse(&list.side).unwrap_or(SubscriptionSide::Buyer);
            // The state as given: the server names one it does not know.
            let query = SubscriptionQuery {
                state: list.state,
                ..SubscriptionQuery::new(side)
            };
            let all = client
                .all_subscriptions(&query)
                .map_err(|e| client_error("subscription list", e))?;
            if ui.json {
                return json_answer(
                    &ui,
                    &Subscriptions {
                        subscriptions: &all,
                    },
                );
            }
            for s in &all {
                println!(
                    "{}\t{}\tlisting {}\t{}\tpaid through {}",
                    s.id,
                    s.state,
                    s.listing_id,
                    match side {
                        SubscriptionSide::Buyer => format!("seller {}", s.seller_did),
                        SubscriptionSide::Seller => format!("buyer {}", s.buyer_did),
                    },
                    or_dash(s.paid_through.as_deref()),
                );
            }
            Ok(())
        }
        MarketSubscriptionCommand::Cancel { session, id } => {
            let mut client = client(&session, "a buyer")?;
            let s = client
                .cancel_subscription(&id)
                .map_err(|e| client_error("subscription cancel", e))?;
            answer(&ui, &s, &session, &client.did().to_string())
        }
        MarketSubscriptionCommand::Revoke {
            session,
            id,
            reason,
        } => {
            let mut client = client(&session, "a seller")?;
            let s = client
                .revoke_subscription(&id, &RevokeSubscription { reason })
                .map_err(|e| client_error("subscription revoke", e))?;
            answer(&ui, &s, &session, &client.did().to_string())
        }
        MarketSubscriptionCommand::Renew {
            session,
            id,
            auto: true,
            rpc,
            before,
            poll,
            legacy,
            timeout,
            ..
        } => super::market_renew_auto::run(
            &session,
            super::market_renew_auto::AutoArgs {
                id,
                rpc: rpc.unwrap_or_default(),
                before,
                poll: std::time::Duration::from_secs(poll),
                legacy,
                timeout: std::time::Duration::from_secs(timeout),
            },
            &ui,
        ),
        MarketSubscriptionCommand::Renew {
            session,
            id,
            rotate_key,
            new_buyer_public_key,
            ..
        } => {
            let new_key = match (rotate_key, new_buyer_public_key) {
                (None, None) => None,
                (file, hex) => Some(buyer_public_key(&BuyerKey {
                    buyer_key_file: file,
                    buyer_public_key: hex,
                })?),
            };
            let mut client = client(&session, "a buyer")?;
            let s = client
                .renew_subscription(
                    &id,
                    &RenewSubscription {
                        buyer_public_key_hex: new_key,
                    },
                )
                .map_err(|e| client_error("subscription renew", e))?;
            describe(&ui, &s, &session, &client.did().to_string());
            let order = s.unpaid_order().ok_or_else(|| {
                CliError::integrity(format!(
                    "subscription renew: the server shows no unpaid period of {id}"
                ))
            })?;
            ui.id_out(order);
            if ui.json {
                json_answer(&ui, &s)?;
            }
            Ok(())
        }
        MarketSubscriptionCommand::History { session, id } => {
            let mut client = client(&session, "a buyer or seller")?;
            let h: SubscriptionHistory = client
                .subscription_history(&id)
                .map_err(|e| client_error("subscription history", e))?;
            if ui.json {
                return json_answer(&ui, &h);
            }
            for e in &h.entries {
                println!(
                    "{}\t{}\t{}\t{}\tby {}",
                    e.seq, e.effective_at, e.event, e.state, e.actor
                );
            }
            Ok(())
        }
        MarketSubscriptionCommand::Cutoff { session, id, out } => {
            let mut client = client(&session, "a buyer or seller")?;
            let (bytes, notice) = client
                .subscription_cutoff(&id)
                .map_err(|e| client_error("subscription cutoff", e))?;
            match out {
                Some(path) => {
                    sealstream_files::layout::write_atomic(&path, &bytes)
                        .map_err(|e| CliError::input(crate::error::at(&path, e)))?;
                    let c = &notice.cutoff;
                    ui.say(format!(
                        "Cut-off notice of subscription {id} ({}, access ended {}, last index {}) written to {}",
                        c.reason,
                        c.effective_at,
                        c.last_index_entitled
                            .map_or("none".to_string(), |i| i.to_string()),
                        path.display()
                    ));
                }
                None => {
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
                }
            }
            Ok(())
        }
    }
}
