//! `sealstream market subscription renew --auto` (docs/subscriptions.md,
//! "Renewal"): a loop that keeps an EVM-rail subscription paid from the
//! buyer's key. Each turn reads the subscription and does one thing
//! ([`next_step`], a function of the subscription and the time):
//!
//! - over (cancelled, revoked, lapsed): says so and exits 0;
//! - a period awaits payment (the first one, or a renewal made before a
//!   restart): pays it as `market order pay` does (`sealstream_client::buyer`:
//!   the plan, the transaction, its receipt, the proof, the server's
//!   confirmation), or waits when a payment of it is already pending, so a
//!   restart never pays twice nor renews twice;
//! - less than `--before` seconds paid (or in grace): asks for the renewal;
//! - else sleeps until then (at most `--poll` seconds, to see a cancellation
//!   or revocation).
//!
//! SIGINT/SIGTERM stop it between turns (exit 0). The invoice rail is
//! refused: its periods are marked paid by the seller.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sealstream_api::orders::OrderState;
use sealstream_api::payments::RailKind;
use sealstream_api::subscriptions::{RenewSubscription, SubscriptionState, SubscriptionView};
use sealstream_client::buyer::{self, PayError, PaymentPlan, TxKind};
use sealstream_client::evm::node::Node;
use sealstream_client::market::{ClientError, MarketClient};

use super::market_session::{client, client_error};
use crate::cli::MarketSession;
use crate::error::{CliError, CliResult};
use crate::ui::Ui;

/// The flags of `renew --auto` beside the session.
pub struct AutoArgs {
    /// The subscription.
    pub id: String,
    /// The chain's JSON-RPC endpoint.
    pub rpc: String,
    /// Renew when less than this many seconds are paid (default: a tenth
    /// of the period, at least 30 s).
    pub before: Option<u64>,
    /// Longest sleep between two looks at the subscription.
    pub poll: Duration,
    /// Legacy transactions.
    pub legacy: bool,
    /// How long to wait for mining and for the server's confirmation.
    pub timeout: Duration,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The subscription is over: why.
    Done(String),
    /// Pay this order (a period awaiting payment).
    Pay(String),
    /// Ask for one more period.
    Renew,
    /// Nothing to do for this long.
    Wait(Duration),
}

/// The default margin: a tenth of the period, at least 30 s (and at most
/// the period).
pub fn default_before(period: u64) -> u64 {
    (period / 10).max(30).min(period.max(1))
}

/// What to do with `s` at `now` (Unix seconds), renewing when less than
/// `before` seconds are paid.
pub fn next_step(s: &SubscriptionView, now: i64, before: u64) -> Step {
    match s.state {
        SubscriptionState::Cancelled | SubscriptionState::Revoked | SubscriptionState::Lapsed => {
            return Step::Done(format!(
                "subscription {} is {}{}: nothing more to pay",
                s.id,
                s.state,
                s.end_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ))
        }
        SubscriptionState::AwaitingPayment
        | SubscriptionState::Active
        | SubscriptionState::Grace => {}
    }
    if let Some(order) = s.unpaid_order() {
        return Step::Pay(order.to_string());
    }
    if s.state == SubscriptionState::Grace {
        return Step::Renew;
    }
    let Some(paid_through) = s
        .paid_through
        .as_deref()
        .and_then(sealstream_core::utc::parse_seconds)
    else {
        // Active without a paid-through time cannot be; look again later.
        return Step::Wait(Duration::from_secs(1));
    };
    let due = paid_through.saturating_sub(i64::try_from(before).unwrap_or(i64::MAX));
    if now >= due {
        Step::Renew
    } else {
        Step::Wait(Duration::from_secs(u64::try_from(due - now).unwrap_or(0)))
    }
}

fn pay_error(e: PayError) -> CliError {
    match e {
        PayError::Client(e) => client_error("subscription renew --auto", e),
        e => CliError::integrity(format!("subscription renew --auto: {e}")),
    }
}

/// Pays order `id` from the buyer's key (as `market order pay --wait`);
/// `false` when a payment of it is already pending (nothing sent).
fn pay(
    client: &mut MarketClient,
    node: &mut Node,
    id: &str,
    args: &AutoArgs,
    ui: &Ui,
) -> CliResult<bool> {
    let order = client
        .order(id)
        .map_err(|e| client_error("subscription renew --auto", e))?;
    if order.payment.rail != RailKind::Evm {
        return Err(CliError::input(format!(
            "subscription renew --auto: order {id} is paid by invoice: the seller marks each \
             period paid (market order mark-paid); --auto pays on an EVM rail only"
        )));
    }
    if order.state != OrderState::AwaitingPayment {
        return Ok(false);
    }
    let plan = match PaymentPlan::of(&order) {
        Ok(p) => p,
        // A payment sent before (by a run that stopped): wait for it.
        Err(PayError::NotPayable { reason, .. }) => {
            ui.say(format!("Order {id}: {reason}"));
            return Ok(false);
        }
        Err(e) => return Err(pay_error(e)),
    };
    ui.say(format!(
        "Paying order {id}: {} {} on chain {} to {}",
        plan.amount_display,
        plan.symbol.as_deref().unwrap_or("(base units)"),
        plan.chain_id,
        plan.pay_to.to_checksum()
    ));
    let kind = if args.legacy {
        TxKind::Legacy
    } else {
        TxKind::Auto
    };
    let sent = buyer::send_payment(client, node, &plan, kind).map_err(pay_error)?;
    buyer::wait_mined(node, &sent.tx_hash, args.timeout).map_err(pay_error)?;
    let answer = client
        .prove_payment(&plan, &sent.tx_hash)
        .map_err(|e| client_error("subscription renew --auto: the payment proof", e))?;
    if !answer.accepted {
        client
            .wait_paid(id, &sent.tx_hash, args.timeout)
            .map_err(pay_error)?;
    }
    ui.say(format!("Order {id} paid ({})", sent.tx_hash));
    Ok(true)
}

/// `market subscription renew --auto`.
pub fn run(session: &MarketSession, args: AutoArgs, ui: &Ui) -> CliResult {
    if !(args.rpc.starts_with("http://") || args.rpc.starts_with("https://")) {
        return Err(CliError::input(format!(
            "--rpc: expected an http:// or https:// URL, got {:?}",
            args.rpc
        )));
    }
    let mut client = client(session, "a buyer")?;
    let mut node = Node::new(&args.rpc).map_err(|e| pay_error(e.into()))?;
    let stop = super::stop::on_signals()?;
    let mut first = true;
    loop {
        if stop.load(Ordering::Relaxed) {
            ui.say("Stopped");
            return Ok(());
        }
        let s = client
            .subscription(&args.id)
            .map_err(|e| client_error("subscription renew --auto", e))?;
        if first {
            // The rail: that of its periods' orders.
            if let Some(p) = s.periods.first() {
                let order = client
                    .order(&p.order_id)
                    .map_err(|e| client_error("subscription renew --auto", e))?;
                if order.payment.rail != RailKind::Evm {
                    return Err(CliError::input(format!(
                        "subscription renew --auto: {} is paid by invoice: the seller marks \
                         each period paid (market order mark-paid); --auto pays on an EVM \
                         rail only",
                        args.id
                    )));
                }
            }
            first = false;
        }
        let before = args
            .before
            .unwrap_or_else(|| default_before(s.period_seconds));
        let now = sealstream_core::utc::now_unix();
        match next_step(&s, now, before) {
            Step::Done(why) => {
                ui.say(why);
                return Ok(());
            }
            Step::Pay(order) => {
                if !pay(&mut client, &mut node, &order, &args, ui)?
                    && super::stop::sleep_unless_stopped(args.poll, &stop)
                {
                    ui.say("Stopped");
                    return Ok(());
                }
            }
            Step::Renew => {
                match client.renew_subscription(
                    &args.id,
                    &RenewSubscription {
                        buyer_public_key_hex: None,
                    },
                ) {
                    Ok(s) => ui.say(format!(
                        "Renewed {}: order {} to pay",
                        s.id,
                        s.unpaid_order().unwrap_or("-")
                    )),
                    // Ended or renewed meanwhile: the next turn sees it.
                    Err(ClientError::Refused { status: 409, .. }) => {}
                    Err(e) => return Err(client_error("subscription renew --auto", e)),
                }
            }
            Step::Wait(d) => {
                if super::stop::sleep_unless_stopped(d.min(args.poll), &stop) {
                    ui.say("Stopped");
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: &str, paid_through: Option<i64>, unpaid: Option<&str>) -> SubscriptionView {
        let periods: Vec<serde_json::Value> = unpaid
            .map(|o| {
                serde_json::json!({"number": 2, "orderId": o, "state": "awaiting-payment",
                "newBuyerPublicKeyHex": null, "paidAt": null, "createdAt": "2026-12-05T00:00:00Z"})
            })
            .into_iter()
            .collect();
        let v = serde_json::json!({
            "id": "sub_1", "listingId": "ls_1", "sellerDid": "did:peaq:0x01",
            "buyerDid": "did:peaq:0x02", "buyerId": "b", "buyerPublicKeyHex": "00",
            "machineDid": "did:peaq:0x03", "topic": "/t", "periodSeconds": 3600,
            "graceSeconds": 600, "history": "none", "amount": "1", "state": state,
            "activeFrom": null,
            "paidThrough": paid_through.map(sealstream_core::utc::format_seconds),
            "graceUntil": null, "accessEnds": null, "endReason": null,
            "keys": [], "periods": periods, "payment": null,
            "createdAt": "2026-12-05T00:00:00Z"
        });
        serde_json::from_value(v).expect("a subscription view")
    }

    #[test]
    fn it_pays_what_awaits_renews_within_the_margin_and_stops_when_over() {
        let t = 1_800_000_000;
        assert_eq!(
            next_step(&view("awaiting-payment", None, Some("ord_1")), t, 360),
            Step::Pay("ord_1".into())
        );
        // A renewal awaiting payment (a restart): paid, not renewed again.
        assert_eq!(
            next_step(&view("active", Some(t + 10), Some("ord_2")), t, 360),
            Step::Pay("ord_2".into())
        );
        assert_eq!(
            next_step(&view("active", Some(t + 1000), None), t, 360),
            Step::Wait(Duration::from_secs(640))
        );
        assert_eq!(
            next_step(&view("active", Some(t + 360), None), t, 360),
            Step::Renew
        );
        assert_eq!(
            next_step(&view("grace", Some(t - 5), None), t, 360),
            Step::Renew
        );
        for state in ["cancelled", "revoked", "lapsed"] {
            let step = next_step(&view(state, Some(t + 1000), None), t, 360);
            assert!(
                matches!(&step, Step::Done(m) if m.contains(state)),
                "{step:?}"
            );
        }
        assert_eq!(default_before(3600), 360);
        assert_eq!(default_before(100), 30);
        assert_eq!(default_before(20), 20);
    }
}
