//! Issue 24's crash test: three `sealstream market serve` replicas on one
//! PostgreSQL database and one S3 bucket (moto), behind a round-robin proxy,
//! granting with the machine's operator key. 200 orders are paid on a real
//! EVM node (anvil) while a replica is killed (SIGKILL) and started again
//! every second or so, at random. Then every paid order is granted (the
//! jobs of a killed replica are taken over once its leases expire), and
//! exactly once (one `grant.issue` in the audit log), no unpaid order is
//! granted, and `market audit verify` checks the log against its signed
//! head.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::anvil::{Anvil, BASE_CHAIN_ID};
use common::market::{datasets, list_for_eth, owner_with_machine, run_market_agent, text, Market};
use common::*;
use sealstream_core::json::{self, Value};
use sealstream_core::keys::MachineSigningKey;
use sealstream_testkit::http;
use sealstream_testkit::moto::{self, MotoServer};
use sealstream_testkit::proxy::RoundRobin;

const REPLICAS: usize = 3;
const PAID: usize = 200;
const UNPAID: usize = 10;

/// `method path` through the proxy, sent again while a replica is down
/// (502 from the proxy, 503 from a replica busy with a conflict).
fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body_of = body.map(|b| ("application/json", b.as_bytes()));
        let (status, text) = http::call(base, method, path, token, body_of);
        if !matches!(status, 502 | 503) || Instant::now() > deadline {
            return (
                status,
                json::parse(text.as_bytes()).unwrap_or(Value::String(text)),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sets the flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The flags every replica shares, and its own id.
fn replica_flags(t: &Path, database: &str, anvil: &Anvil, proxy: &str, i: usize) -> Vec<String> {
    let keys = t.join("keys");
    let key = |name: &str| keys.join(name).display().to_string();
    [
        "--database-url",
        database,
        "--object-store",
        "s3://market/replicas",
        "--receipt-key-file",
        &key("receipt-key"),
        "--operator-kek-file",
        &key("operator-kek"),
        "--nonce-key-file",
        &key("nonce-key"),
        "--public-url",
        proxy,
        "--replica-id",
        &format!("m{i}"),
        "--evm-rpc",
        &format!("{BASE_CHAIN_ID}={}", anvil.url),
        "--confirmations",
        "1",
        "--payment-poll",
        "1",
        // Every buyer comes through the proxy's one address.
        "--payment-proof-rate",
        "1000",
        "--payment-proof-burst",
        "10000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn paid_orders_are_granted_once_while_replicas_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("keys")).unwrap();
    // The bucket the replicas share; the S3 client of each replica reads
    // its endpoint and credentials from the environment (this binary has
    // this one test, so setting it races with nothing).
    let s3 = MotoServer::start();
    s3.create_bucket("market");
    moto::set_s3_env(&s3.base);
    let database = sealstream_testkit::postgres::cluster().new_database();
    let anvil = Anvil::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let proxy = RoundRobin::start(runtime.handle(), vec![String::new(); REPLICAS]);
    let base = proxy.base();
    // The first replica creates the shared keys; the others start after it.
    let mut markets = Vec::new();
    for i in 0..REPLICAS {
        let flags = replica_flags(t, &database, &anvil, &base, i);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let log = t.join(format!("m{i}.log"));
        let market = Market::start_logged(&t.join(format!("m{i}")), &flags, &log);
        proxy.set_backend(i, market.base.trim_start_matches("http://").to_string());
        markets.push(market);
    }

    // A seller: the fixture machine with its operator key registered, a
    // dataset uploaded by the agent, listed for 0.25 ETH.
    let (_, _, owner) = owner_with_machine(&markets[0]);
    run_market_agent(&markets[0], &t.join("agent"), 40, None, false);
    let dataset_id = text(&datasets(&markets[0], &owner)[0], "id");
    let pay_to = anvil.account(2).address;
    let listing_id = list_for_eth(&markets[0], &owner, &dataset_id, &pay_to.to_string());
    let operator = std::fs::read_to_string(keyfile("operator.x25519.sk")).unwrap();
    let (status, body) = call(
        &base,
        "PUT",
        &format!("/v1/machines/{DID}/operator-key"),
        Some(&owner),
        Some(&format!(r#"{{"secretKeyHex":"{}"}}"#, operator.trim())),
    );
    assert_eq!(status, 200, "{body:?}");

    // Replicas crash and come back while the orders are paid.
    let markets = Arc::new(Mutex::new(markets));
    let stop = Arc::new(AtomicBool::new(false));
    // The crashes stop with the test, should it fail.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let chaos = {
        let (markets, stop) = (markets.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = SplitMix64::new(test_seed("market_replicas"));
            let mut crashes = 0;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200 + rng.next_u64() % 600));
                let i = (rng.next_u64() % REPLICAS as u64) as usize;
                let mut m = markets.lock().unwrap();
                m[i].kill();
                std::thread::sleep(Duration::from_millis(rng.next_u64() % 300));
                m[i].restart();
                crashes += 1;
            }
            crashes
        })
    };

    // Buyers are funded dev accounts (the payer is the buyer's address).
    let buyers: Vec<(MachineSigningKey, String, sealstream_market::evm::Address)> = (3..10)
        .map(|a| {
            let account = anvil.account(a);
            let key = MachineSigningKey::from_hex(
                account.private_key.trim_start_matches("0x"),
                "dev key",
            )
            .unwrap();
            // Signing in takes two requests; one may reach a replica as
            // it is killed.
            let mut tries = 0;
            let token = loop {
                match std::panic::catch_unwind(|| sealstream_testkit::sign_in::sign_in(&base, &key))
                {
                    Ok(token) => break token,
                    Err(_) if tries < 50 => std::thread::sleep(Duration::from_millis(200)),
                    Err(e) => std::panic::resume_unwind(e),
                }
                tries += 1;
            };
            (key, token, account.address)
        })
        .collect();
    let order_body = format!(r#"{{"listingId":"{listing_id}","buyerPublicKeyHex":"{BUYER_PK}"}}"#);
    let mut paid: BTreeMap<String, String> = BTreeMap::new();
    let mut unpaid = Vec::new();
    for n in 0..PAID + UNPAID {
        let (_, token, address) = &buyers[n % buyers.len()];
        let (status, order) = call(&base, "POST", "/v1/orders", Some(token), Some(&order_body));
        assert_eq!(status, 201, "{order:?}");
        let id = text(&order, "id");
        if n >= PAID {
            unpaid.push((id, token.clone()));
            continue;
        }
        let amount: u128 = text(&order, "payment.amount").parse().unwrap();
        let hash = anvil.send_native(*address, pay_to, amount);
        anvil.wait_mined(&hash);
        let proof = format!(
            r#"{{"txHash":"{hash}","orderId":"{id}","chain":"base","payerAddress":"{address}",
                "payeeAddress":"{pay_to}","amount":"{}","tokenAddress":null,"token":"{}"}}"#,
            text(&order, "payment.amountDisplay"),
            text(&order, "payment.symbol"),
        );
        let (status, answer) = call(
            &base,
            "POST",
            &format!("/v1/orders/{id}/payment-proof"),
            None,
            Some(&proof),
        );
        assert_eq!(status, 200, "{answer:?}");
        paid.insert(id, token.clone());
        if paid.len().is_multiple_of(20) {
            eprintln!("{} orders paid", paid.len());
        }
    }
    // The crashes stop once every payment is posted; what they left undone
    // (claims to confirm, grants) is the surviving replicas' to finish.
    stop.store(true, Ordering::SeqCst);
    let crashes = chaos.join().unwrap();
    assert!(crashes > 0, "no replica was killed");
    eprintln!("{crashes} crashes while paying");

    // Every paid order is granted (by whichever replica holds the granter).
    let state = |id: &str, token: &str| {
        let (status, order) = call(&base, "GET", &format!("/v1/orders/{id}"), Some(token), None);
        assert_eq!(status, 200, "{order:?}");
        text(&order, "state")
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    for (id, token) in &paid {
        while state(id, token) != "granted" {
            assert!(
                Instant::now() < deadline,
                "order {id} never granted: {}",
                state(id, token)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for (id, token) in &unpaid {
        assert_eq!(state(id, token), "awaiting-payment", "unpaid order {id}");
    }
    // Stopped cleanly, the last heads signed.
    for m in markets.lock().unwrap().iter_mut() {
        assert!(m.stop().success());
    }

    // The log: one grant per paid order, none for the others; it verifies
    // against its signed head.
    let db_flags = |c: &mut std::process::Command| {
        c.args(["--database-url", &database, "--receipt-key-file"])
            .arg(t.join("keys").join("receipt-key"));
    };
    let mut export = sealstream();
    export.args(["market", "audit", "export"]);
    db_flags(&mut export);
    let events = String::from_utf8(run_ok(export, "market audit export").stdout).unwrap();
    let mut grants: BTreeMap<String, usize> = BTreeMap::new();
    for line in events.lines() {
        let event = json::parse(line.as_bytes()).unwrap();
        if text(&event, "action") == "grant.issue" {
            *grants.entry(text(&event, "subject")).or_default() += 1;
        }
    }
    for id in paid.keys() {
        assert_eq!(grants.get(id), Some(&1), "grants of order {id}");
    }
    assert_eq!(grants.len(), paid.len(), "grants of orders not paid");
    let mut verify = sealstream();
    verify.args(["market", "audit", "verify"]);
    db_flags(&mut verify);
    let verified = run_ok(verify, "market audit verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(said.contains("signed head"), "{said}");
    eprintln!("{crashes} crashes; {said}");

    // The chunks the agent uploaded (through any replica) are in the
    // bucket, under the prefix, and nothing else is.
    let objects = s3.objects("market");
    assert!(
        objects.keys().any(|k| k.starts_with("replicas/chunks/")),
        "{:?}",
        objects.keys()
    );
    assert!(
        objects.keys().all(|k| k.starts_with("replicas/")),
        "{:?}",
        objects.keys()
    );
}
