//! Subscriptions with the CLI only, on the invoice rail, against the market
//! as a child process: the owner lists the shipped example
//! (docs/examples/listing-subscription.json) for its machine with
//! `market listing create --machine-did --publish`; a buyer finds it with
//! `market search --kind subscription` and subscribes (`market subscribe`,
//! the id on stdout, how to pay on stderr); the seller marks the period's
//! order paid; the buyer renews with a new key (`--rotate-key`, the new
//! period's order on stdout), which the seller marks paid too; both read
//! the subscription, its list and its history; the buyer cannot revoke (the
//! seller does, with a reason) and cancels another subscription.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::market::{owner_with_machine, text, Market};
use common::*;
use sealstream_core::identity::Did;
use sealstream_core::json::{self, Value};
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    json::parse(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// `sealstream market ARGS… --server URL --key-file KEY`.
fn market_cmd(server: &str, key: &Path, args: &[&str]) -> Command {
    let mut c = sealstream();
    c.arg("market").args(args);
    c.args(["--server", server]).arg("--key-file").arg(key);
    c
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| match v {
        Value::Object(m) => m.get(*k).unwrap_or_else(|| panic!("no {k} in {v:?}")),
        _ => panic!("not an object at {k}"),
    })
}

fn items(v: &Value) -> &Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn a_subscription_on_the_invoice_rail_with_the_cli_only() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let market = Market::start(&t.join("market"));
    let server = market.base.as_str();
    let (owner_key, _, _) = owner_with_machine(&market);
    std::fs::write(t.join("owner.sk"), owner_key.to_hex_secret()).unwrap();
    let buyer_key = MachineSigningKey::generate();
    let buyer_did = Did::of_key(&buyer_key).to_string();
    std::fs::write(t.join("buyer.sk"), buyer_key.to_hex_secret()).unwrap();
    let first_key = RecipientSecretKey::generate();
    std::fs::write(t.join("buyer.x25519.sk"), first_key.to_hex_secret()).unwrap();
    let rotated = RecipientSecretKey::generate();
    std::fs::write(t.join("rotated.x25519.sk"), rotated.to_hex_secret()).unwrap();
    let (owner_sk, buyer_sk) = (t.join("owner.sk"), t.join("buyer.sk"));

    // The owner lists the shipped example for its machine.
    let mut create = market_cmd(server, &owner_sk, &["listing", "create", "--publish"]);
    create
        .arg("--listing")
        .arg(repo_root().join("docs/examples/listing-subscription.json"))
        .args(["--machine-did", DID]);
    let out = run_ok(create, "listing create");
    let listing = stdout(&out).trim().to_string();
    assert!(listing.starts_with("ls_"), "{}", stdout(&out));

    // A buyer finds it by kind.
    let mut search = sealstream();
    search.args([
        "market",
        "search",
        "--kind",
        "subscription",
        "--json",
        "--server",
        server,
    ]);
    let found = json_of(&run_ok(search, "search --kind subscription"));
    let found = items(field(&found, &["items"]));
    assert_eq!(found.len(), 1);
    assert_eq!(text(&found[0], "id"), listing);
    assert_eq!(
        text(field(&found[0], &["subscription"]), "topic"),
        "/gps/fix"
    );
    // The table names the live topic and its period, not a dataset.
    let mut table = sealstream();
    table.args([
        "market",
        "search",
        "--kind",
        "subscription",
        "--server",
        server,
    ]);
    let out = run_ok(table, "search --kind subscription");
    assert!(
        stdout(&out).contains("live /gps/fix, per "),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("0 chunks"), "{}", stdout(&out));

    // Subscribe: the id on stdout, how to pay on stderr.
    let mut subscribe = market_cmd(server, &buyer_sk, &["subscribe", "--listing", &listing]);
    subscribe
        .arg("--buyer-private-key-file")
        .arg(t.join("buyer.x25519.sk"));
    let out = run_ok(subscribe, "subscribe");
    let sub = stdout(&out).trim().to_string();
    assert!(sub.starts_with("sub_"), "{}", stdout(&out));
    let shown = json_of(&run_ok(
        market_cmd(server, &buyer_sk, &["subscription", "show", &sub, "--json"]),
        "subscription show",
    ));
    assert_eq!(text(&shown, "state"), "awaiting-payment");
    assert_eq!(
        text(&shown, "buyerPublicKeyHex"),
        first_key.public_key().to_hex()
    );
    let first_order = text(&items(field(&shown, &["periods"]))[0], "orderId");
    assert!(
        stderr(&out).contains(&format!(
            "the seller then runs: sealstream market order mark-paid {first_order} --server {server} \
             --key-file SELLER_KEY --reference INVOICE_REF"
        )),
        "{}",
        stderr(&out)
    );

    // The period is an order: `market order show` says whose.
    let out = run_ok(
        market_cmd(server, &buyer_sk, &["order", "show", &first_order]),
        "order show",
    );
    assert!(
        stderr(&out).contains(&format!("pays:   a period of subscription {sub}")),
        "{}",
        stderr(&out)
    );

    // The seller marks the period paid: active.
    run_ok(
        market_cmd(
            server,
            &owner_sk,
            &["order", "mark-paid", &first_order, "--reference", "INV-1"],
        ),
        "mark-paid",
    );
    let active = json_of(&run_ok(
        market_cmd(server, &buyer_sk, &["subscription", "show", &sub, "--json"]),
        "subscription show",
    ));
    assert_eq!(text(&active, "state"), "active");
    let paid_through = text(&active, "paidThrough");
    // For people: the first key applies from the start, not from 1970.
    let out = run_ok(
        market_cmd(server, &buyer_sk, &["subscription", "show", &sub]),
        "subscription show (text)",
    );
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &stdout(&out);
    assert!(said.contains(" from the start"), "{said}");
    assert!(!said.contains("1970"), "{said}");

    // Renew with a new key: the new period's order on stdout.
    let mut renew = market_cmd(server, &buyer_sk, &["subscription", "renew", &sub]);
    renew.arg("--rotate-key").arg(t.join("rotated.x25519.sk"));
    let out = run_ok(renew, "subscription renew");
    let second_order = stdout(&out).trim().to_string();
    assert!(
        second_order.starts_with("ord_") && second_order != first_order,
        "{}",
        stdout(&out)
    );
    run_ok(
        market_cmd(
            server,
            &owner_sk,
            &["order", "mark-paid", &second_order, "--reference", "INV-2"],
        ),
        "mark-paid the renewal",
    );
    let renewed = json_of(&run_ok(
        market_cmd(server, &owner_sk, &["subscription", "show", &sub, "--json"]),
        "subscription show (seller)",
    ));
    assert_eq!(
        text(&renewed, "buyerPublicKeyHex"),
        rotated.public_key().to_hex()
    );
    assert_eq!(items(field(&renewed, &["keys"])).len(), 2);
    let t1 = sealstream_core::utc::parse_seconds(&paid_through).unwrap();
    let t2 = sealstream_core::utc::parse_seconds(&text(&renewed, "paidThrough")).unwrap();
    assert_eq!(t2 - t1, 86_400, "one more period of the example's day");

    // Both sides list it; the history says what happened.
    let out = run_ok(
        market_cmd(
            server,
            &owner_sk,
            &["subscription", "list", "--as", "seller"],
        ),
        "subscription list --as seller",
    );
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!(
            "{sub}\tactive\tlisting {listing}\tbuyer {buyer_did}"
        )),
        "{line}"
    );
    let out = run_ok(
        market_cmd(server, &buyer_sk, &["subscription", "list"]),
        "subscription list",
    );
    assert!(stdout(&out).starts_with(&sub), "{}", stdout(&out));
    let out = run_ok(
        market_cmd(server, &buyer_sk, &["subscription", "history", &sub]),
        "subscription history",
    );
    let events: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split('\t').nth(2).unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        events,
        ["created", "activated", "renewed", "key-rotated"],
        "{}",
        stdout(&out)
    );

    // The buyer cannot revoke (the server answers 404: exit 2); the seller
    // does, with a reason.
    let out = market_cmd(
        server,
        &buyer_sk,
        &["subscription", "revoke", &sub, "--reason", "mine"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("subscription revoke: "),
        "{}",
        stderr(&out)
    );
    let revoked = json_of(&run_ok(
        market_cmd(
            server,
            &owner_sk,
            &[
                "subscription",
                "revoke",
                &sub,
                "--reason",
                "contract ended",
                "--json",
            ],
        ),
        "subscription revoke",
    ));
    assert_eq!(text(&revoked, "state"), "revoked");
    assert_eq!(text(&revoked, "endReason"), "contract ended");

    // Another subscription, cancelled before its first payment.
    let mut again = market_cmd(server, &buyer_sk, &["subscribe", "--listing", &listing]);
    again.args(["--buyer-public-key", &first_key.public_key().to_hex()]);
    let other = stdout(&run_ok(again, "subscribe again")).trim().to_string();
    let cancelled = json_of(&run_ok(
        market_cmd(
            server,
            &buyer_sk,
            &["subscription", "cancel", &other, "--json"],
        ),
        "subscription cancel",
    ));
    assert_eq!(text(&cancelled, "state"), "cancelled");
    assert_eq!(
        text(&items(field(&cancelled, &["periods"]))[0], "state"),
        "cancelled"
    );
}
