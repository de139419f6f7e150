//! `sealstream market subscription renew --auto` against a real EVM node
//! (anvil) and `market serve`: the loop pays the first period from the
//! buyer's key and renews when less than `--before` seconds are paid; after
//! a restart it pays the renewal left awaiting payment instead of asking
//! for another; it exits 0 once the buyer cancels. `--rotate-key` with
//! `--auto` is a usage error (64); the invoice rail is refused (exit 1).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::anvil::BASE_CHAIN_ID;
use common::market::{list_and_publish, market_on_anvil, owner_with_machine, Market};
use common::*;
use sealstream_core::json::{self, Value};

/// A child killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn market_cmd(market: &Market, key: &Path, args: &[&str]) -> Command {
    let mut c = sealstream();
    c.arg("market")
        .args(args)
        .args(["--server", &market.base, "--key-file"])
        .arg(key);
    c
}

/// The states of the subscription's periods, in order.
fn periods(market: &Market, key: &Path, sub: &str) -> Vec<String> {
    let out = run_ok(
        market_cmd(market, key, &["subscription", "show", sub, "--json"]),
        "show",
    );
    let v = json::parse(&out.stdout).unwrap();
    v.get("periods")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|p| p.get("state").and_then(Value::as_str).unwrap().to_string())
        .collect()
}

fn wait_until(what: &str, log: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn auto(market: &Market, key: &Path, sub: &str, rpc: &str, before: &str, log: &Path) -> Running {
    let mut c = market_cmd(
        market,
        key,
        &[
            "subscription",
            "renew",
            sub,
            "--auto",
            "--rpc",
            rpc,
            "--before",
            before,
            "--poll",
            "1",
        ],
    );
    let err = std::fs::File::create(log).unwrap();
    Running(c.stdout(Stdio::null()).stderr(err).spawn().unwrap())
}

fn subscription_listing(rail: &str) -> String {
    format!(
        r#"{{"kind":"subscription","title":"Live fixes","price":"1000000000000000","rail":{rail},
            "delivery":["api"],
            "subscription":{{"machineDid":"{DID}","topic":"/gps/fix","periodSeconds":3600,
                             "graceSeconds":600,"history":"none"}}}}"#
    )
}

#[test]
fn the_loop_keeps_a_subscription_paid_until_it_is_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (anvil, market) = market_on_anvil(&t.join("market"), 1, &[]);
    let (_, _, owner) = owner_with_machine(&market);
    let pay_to = anvil.account(2).address.to_string();
    let evm = format!(
        r#"{{"kind":"evm","chainId":{BASE_CHAIN_ID},"token":"native","decimals":18,"payTo":"{pay_to}","symbol":"ETH"}}"#
    );
    let listing = list_and_publish(&market, &owner, &subscription_listing(&evm));
    let key = t.join("buyer.secp256k1.sk");
    std::fs::write(&key, anvil.account(1).private_key.trim_start_matches("0x")).unwrap();
    let subscribe = |listing: &str| {
        let out = run_ok(
            market_cmd(
                &market,
                &key,
                &[
                    "subscribe",
                    "--listing",
                    listing,
                    "--buyer-public-key",
                    BUYER_PK,
                ],
            ),
            "subscribe",
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let sub = subscribe(&listing);
    let log = t.join("auto.log");

    // --before a whole period: the first period is paid, then one renewal
    // (then more than --before is paid).
    let mut running = auto(&market, &key, &sub, &anvil.url, "3600", &log);
    wait_until("two periods paid", &log, || {
        periods(&market, &key, &sub) == ["paid", "paid"]
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        periods(&market, &key, &sub),
        ["paid", "paid"],
        "no third period"
    );
    let pid = running.0.id().to_string();
    run_ok(
        {
            let mut k = Command::new("kill");
            k.args(["-TERM", &pid]);
            k
        },
        "kill -TERM",
    );
    assert!(running.0.wait().unwrap().success());

    // A renewal asked for while it was stopped is paid by the next run, not
    // doubled.
    run_ok(
        market_cmd(&market, &key, &["subscription", "renew", &sub]),
        "renew",
    );
    assert_eq!(
        periods(&market, &key, &sub),
        ["paid", "paid", "awaiting-payment"]
    );
    let mut running = auto(&market, &key, &sub, &anvil.url, "60", &log);
    wait_until("the pending renewal paid", &log, || {
        periods(&market, &key, &sub) == ["paid", "paid", "paid"]
    });

    // The buyer cancels: the loop says so and exits 0.
    run_ok(
        market_cmd(&market, &key, &["subscription", "cancel", &sub]),
        "cancel",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = running.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the loop did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    assert!(
        said.contains("is cancelled (") && said.contains("nothing more to pay"),
        "{said}"
    );
    assert_eq!(periods(&market, &key, &sub), ["paid", "paid", "paid"]);

    // --auto with a new key: a usage error.
    let out = market_cmd(
        &market,
        &key,
        &[
            "subscription",
            "renew",
            &sub,
            "--auto",
            "--rpc",
            &anvil.url,
            "--new-buyer-public-key",
            BUYER_PK,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // On the invoice rail: refused, saying why.
    let invoice = r#"{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Robots GmbH","terms":"14 days"}"#;
    let invoice_listing = list_and_publish(&market, &owner, &subscription_listing(invoice));
    let invoiced = subscribe(&invoice_listing);
    let out = market_cmd(
        &market,
        &key,
        &[
            "subscription",
            "renew",
            &invoiced,
            "--auto",
            "--rpc",
            &anvil.url,
        ],
    )
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("paid by invoice"), "{said}");
}
