//! Chain payments through the server (issue 7), against a real EVM node
//! (anvil, `scripts/setup-test-peers`): the buyer pays from the address of
//! the key they signed in with, anyone posts the proof (the reference sends
//! no credentials), and the server asks the node before the order is paid.
//!
//! Native coin and ERC-20 payments are accepted with their receipt; an
//! underpayment, a payment to someone else, from someone else, in another
//! currency, a reverted transfer and a transaction already used for another
//! order are refused
//! with the proof's field at fault, and the order stays payable; a payment
//! short of its confirmations is held as a claim until a confirmation poll
//! finds it deep enough. Both databases.
//!
//! Issue 14 (items 9 to 11): a transfer mined before the order was made
//! does not pay it; every claim is kept on its own (a second claim does not
//! replace the first), a hash the node does not know expires, bogus claims
//! do not starve the watcher (claims are checked oldest-checked first, a
//! bounded number per sweep), an order takes a bounded number of claims,
//! anonymous proof posts are rate-limited per client address and per order,
//! and a proof that cannot be confirmed yet says what is missing.

mod common;

use common::anvil::{Anvil, DevAccount, BASE_CHAIN_ID};
use common::orders_fixtures::{buyer_with_key, native_rail, order, sale, token_rail, Buyer, Sale};
use common::{unix_now, Db, TestServer};
use sealstream_api::receipts::{ReceiptPayment, SignedReceipt};
use sealstream_core::keys::{MachineSigningKey, ReceiptPublicKey};
use sealstream_market::evm::{Address, TxHash};
use sealstream_market::limits::Rate;
use sealstream_market::server::Config;
use sealstream_testkit::{http, on_both_databases};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ETH: u128 = 1_000_000_000_000_000_000;
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// A server that verifies payments on `anvil`'s chain with `confirmations`;
/// the background claim watcher polls only once an hour, so every
/// confirmation in these tests comes from a request.
fn server(db: Db, anvil: &Anvil, confirmations: u64) -> TestServer {
    server_with(db, anvil, confirmations, |_| {})
}

/// [`server`] with `adjust` applied to its configuration as well.
fn server_with(
    db: Db,
    anvil: &Anvil,
    confirmations: u64,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    let url = anvil.url.clone();
    TestServer::start_with(db, move |c| {
        c.evm_rpc.insert(BASE_CHAIN_ID, url);
        c.confirmations = Some(confirmations);
        c.payment_poll = HOUR;
        adjust(c);
    })
}

/// A listing of `chunks` chunks at `price` wei paid to dev account 2, and
/// a buyer who pays from dev account 1 (the payer): where most tests start.
fn native_shop<'a>(
    server: &TestServer,
    anvil: &'a Anvil,
    chunks: usize,
    price: &str,
) -> (Sale, Address, &'a DevAccount, Buyer) {
    let pay_to = anvil.account(2).address;
    let sale = sale(
        server,
        chunks,
        price,
        native_rail(BASE_CHAIN_ID, &pay_to.to_string()),
    );
    let payer = anvil.account(1);
    let alice = paying_buyer(server, payer);
    (sale, pay_to, payer, alice)
}

/// The proof of a native payment `hash` by `payer` for `order`, posted.
fn pay(server: &TestServer, order: &Value, hash: &TxHash, payer: &DevAccount) -> (u16, Value) {
    post_proof(server, order, &proof(order, hash, payer.address, None))
}

/// Asserts a 200 answer with `accepted` as given.
fn assert_accepted(reply: (u16, Value), accepted: bool) {
    let (status, body) = reply;
    assert_eq!(
        (status, body["accepted"].as_bool()),
        (200, Some(accepted)),
        "{body}"
    );
}

/// Asserts a 200 answer whose claim waits for confirmations.
fn assert_awaiting_confirmations(reply: (u16, Value)) {
    let (status, body) = reply;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("awaiting-confirmations")),
        "{body}"
    );
}

/// A buyer who signs in with dev account `account`'s key (so pays from it).
fn paying_buyer(server: &TestServer, account: &DevAccount) -> Buyer {
    let hex = account.private_key.trim_start_matches("0x");
    buyer_with_key(server, MachineSigningKey::from_hex(hex, "dev key").unwrap())
}

/// The proof body `peaqos stream pay` posts, for `order` paid by `hash`.
fn proof(order: &Value, hash: &TxHash, payer: Address, token: Option<Address>) -> Value {
    let payment = &order["payment"];
    json!({
        "txHash": hash.to_string(),
        "orderId": order["id"],
        "chain": "base",
        "payerAddress": payer.to_string(),
        "payeeAddress": payment["payTo"],
        "amount": payment["amountDisplay"],
        "tokenAddress": token.map(|t| t.to_string()),
        "token": payment["symbol"],
    })
}

fn post_proof(server: &TestServer, order: &Value, body: &Value) -> (u16, Value) {
    let id = order["id"].as_str().unwrap();
    server.send(
        "POST",
        &format!("/v1/orders/{id}/payment-proof"),
        None,
        body,
    )
}

fn order_state(server: &TestServer, buyer: &Buyer, order: &Value) -> Value {
    let id = order["id"].as_str().unwrap();
    let (status, body) = server.get(&format!("/v1/orders/{id}"), Some(&buyer.token));
    assert_eq!(status, 200, "{body}");
    body
}

/// The receipt of a paid order, verified against the server's key.
fn receipt(server: &TestServer, buyer: &Buyer, order: &Value) -> SignedReceipt {
    let (_, key) = server.get("/v1/receipts/key", None);
    let pinned = ReceiptPublicKey::from_hex(key["publicKeyHex"].as_str().unwrap(), "key").unwrap();
    let id = order["id"].as_str().unwrap();
    let text = http::send(server.request(
        "GET",
        &format!("/v1/orders/{id}/receipt"),
        Some(&buyer.token),
    ))
    .ok()
    .text();
    let receipt = SignedReceipt::parse(text.as_bytes()).unwrap();
    receipt.verify(Some(&pinned)).unwrap();
    receipt
}

/// Asserts a refusal naming `field`, with `accepted: false`, and that the
/// order is still awaiting payment.
fn assert_refused(
    server: &TestServer,
    buyer: &Buyer,
    order: &Value,
    reply: (u16, Value),
    status: u16,
    field: &str,
) {
    let (got, body) = reply;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["accepted"], false, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert_eq!(
        order_state(server, buyer, order)["state"],
        "awaiting-payment"
    );
}

fn native_payment_is_verified_once(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 1);
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 3, &(ETH / 4).to_string());
    let first = order(&server, &alice, &sale.listing_id);
    assert_eq!(first["payment"]["rail"], "evm");
    assert_eq!(first["payment"]["chainId"], BASE_CHAIN_ID);
    assert_eq!(first["payment"]["payer"], payer.address.to_string());

    let hash = anvil.send_native(payer.address, pay_to, ETH / 4);
    assert_accepted(pay(&server, &first, &hash, payer), true);
    let shown = order_state(&server, &alice, &first);
    assert_eq!(shown["state"], "paid");
    // Posting the same proof again is answered the same and changes nothing.
    assert_accepted(pay(&server, &first, &hash, payer), true);
    assert_eq!(server.count_rows("payments"), 1);

    let r = receipt(&server, &alice, &first);
    let mined = anvil.receipt(&hash).unwrap();
    let block = u64::from_str_radix(
        mined["blockNumber"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(
        r.receipt.payment,
        ReceiptPayment::Evm {
            tx_hash: hash.to_string(),
            chain_id: BASE_CHAIN_ID,
            payer: payer.address.to_string(),
            block_number: block,
        }
    );
    assert_eq!(r.receipt.amount, (ETH / 4).to_string());

    // The confirmation reads as the reference's distribute expects.
    let id = first["id"].as_str().unwrap();
    let (status, c) = server.get(&format!("/v1/orders/{id}/confirmation"), Some(&sale.owner));
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["status"], "confirmed");
    assert_eq!(c["tx_hash"], hash.to_string());
    assert_eq!(
        c["buyer_public_key_hex"],
        alice.recipient.public_key().to_hex()
    );

    // The same transaction cannot pay a second order.
    let second = order(&server, &alice, &sale.listing_id);
    let reply = pay(&server, &second, &hash, payer);
    assert_refused(&server, &alice, &second, reply, 409, "txHash");
    assert_eq!(server.count_rows("payments"), 1);
}

fn token_payment_is_verified(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 1);
    let (issuer, payer, pay_to) = (
        anvil.account(0).address,
        anvil.account(1),
        anvil.account(3).address,
    );
    let token = anvil.deploy_token(issuer);
    anvil.send_token(token, issuer, payer.address, 10_000_000);
    let sale = sale(
        &server,
        2,
        "2500000",
        token_rail(BASE_CHAIN_ID, &token.to_string(), &pay_to.to_string()),
    );
    let alice = paying_buyer(&server, payer);
    let o = order(&server, &alice, &sale.listing_id);
    assert_eq!(o["payment"]["token"], token.to_string());
    assert_eq!(o["payment"]["amountDisplay"], "2.5");

    // A proof naming the native coin for a token order is refused before
    // the node is asked.
    let hash = anvil.send_token(token, payer.address, pay_to, 2_500_000);
    let reply = pay(&server, &o, &hash, payer);
    assert_refused(&server, &alice, &o, reply, 422, "tokenAddress");
    // Reverted: a transfer of more than the buyer holds, mined with
    // explicit gas (no estimate).
    let reverted = anvil.send_raw(json!({
        "from": payer.address.to_string(),
        "to": token.to_string(),
        "data": Anvil::transfer_call(pay_to, 50_000_000),
        "gas": "0x30000",
    }));
    assert_eq!(anvil.receipt(&reverted).unwrap()["status"], "0x0");
    let reply = post_proof(
        &server,
        &o,
        &proof(&o, &reverted, payer.address, Some(token)),
    );
    assert_refused(&server, &alice, &o, reply, 422, "txHash");
    assert_accepted(
        post_proof(&server, &o, &proof(&o, &hash, payer.address, Some(token))),
        true,
    );
    assert_eq!(order_state(&server, &alice, &o)["state"], "paid");
    assert_eq!(anvil.token_balance(token, pay_to).to_string(), "2500000");
    let r = receipt(&server, &alice, &o);
    assert_eq!(r.receipt.amount, "2500000");
    assert_eq!(r.receipt.decimals, 6);
}

fn bad_payments_are_refused_and_the_order_stays_payable(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 1);
    let (issuer, payer, stranger, pay_to) = (
        anvil.account(0).address,
        anvil.account(1),
        anvil.account(4),
        anvil.account(2).address,
    );
    let token = anvil.deploy_token(issuer);
    anvil.send_token(token, issuer, payer.address, 1_000);
    let sale = sale(
        &server,
        2,
        &(ETH / 2).to_string(),
        native_rail(BASE_CHAIN_ID, &pay_to.to_string()),
    );
    let alice = paying_buyer(&server, payer);
    let o = order(&server, &alice, &sale.listing_id);
    let good = |hash: &TxHash| proof(&o, hash, payer.address, None);

    // Too little; to someone else; from someone else, claimed as the
    // buyer's; a token transfer for a native order.
    let short = anvil.send_native(payer.address, pay_to, ETH / 2 - 1);
    let elsewhere = anvil.send_native(payer.address, anvil.account(5).address, ETH / 2);
    let theirs = anvil.send_native(stranger.address, pay_to, ETH / 2);
    let tokens = anvil.send_token(token, payer.address, pay_to, 1_000);
    // A proof naming another payer is refused on its face; so are the
    // wrong chain and a malformed hash.
    let mut claimed = good(&theirs);
    claimed["payerAddress"] = json!(stranger.address.to_string());
    let mut peaq = good(&short);
    peaq["chain"] = json!("peaq");
    let mut malformed = good(&short);
    malformed["txHash"] = json!("0x1234");
    // (proof, status, the field named)
    let refusals = [
        (good(&short), 422, "amount"),
        (good(&elsewhere), 422, "payeeAddress"),
        (good(&theirs), 422, "payerAddress"),
        (claimed, 422, "payerAddress"),
        (good(&tokens), 422, "tokenAddress"),
        (peaq, 422, "chain"),
        (malformed, 400, "txHash"),
    ];
    for (body, status, field) in refusals {
        let reply = post_proof(&server, &o, &body);
        assert_refused(&server, &alice, &o, reply, status, field);
    }
    assert_eq!(server.count_rows("payments"), 0);
    let id = o["id"].as_str().unwrap();

    // The order is still payable; a payment after cancelling is refused.
    let right = anvil.send_native(payer.address, pay_to, ETH / 2);
    let (status, body) = server.send(
        "POST",
        &format!("/v1/orders/{id}/cancel"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_refused_cancelled(&server, &o, &good(&right));
    let again = order(&server, &alice, &sale.listing_id);
    assert_accepted(pay(&server, &again, &right, payer), true);
    assert_eq!(server.count_rows("payments"), 1);
}

fn assert_refused_cancelled(server: &TestServer, order: &Value, body: &Value) {
    let (status, reply) = post_proof(server, order, body);
    common::assert_refused(status, &reply, 409, "orderId");
    assert_eq!(reply["accepted"], false);
}

fn payments_wait_for_their_confirmations(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 3);
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let o = order(&server, &alice, &sale.listing_id);
    let id = o["id"].as_str().unwrap();
    assert_eq!(o["payment"]["confirmations"], 3);

    let hash = anvil.send_native(payer.address, pay_to, 1000);
    let (status, body) = pay(&server, &o, &hash, payer);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], false);
    assert_eq!(body["status"], "awaiting-confirmations");
    assert_eq!(
        (body["confirmations"].as_u64(), body["required"].as_u64()),
        (Some(1), Some(3))
    );
    let shown = order_state(&server, &alice, &o);
    assert_eq!(shown["state"], "awaiting-payment");
    assert_eq!(shown["claimedTx"], hash.to_string());

    // One more block: still short.
    anvil.mine(1);
    let (status, c) = server.get(&format!("/v1/orders/{id}/confirmation"), Some(&sale.owner));
    assert_eq!(
        (status, c["status"].as_str()),
        (200, Some("awaiting-confirmations")),
        "{c}"
    );
    assert!(
        c["claim_status"]
            .as_str()
            .unwrap()
            .ends_with("2 of 3 confirmations"),
        "{c}"
    );
    assert_eq!(server.count_rows("payments"), 0);
    // Deep enough: the seller's poll records the claimed payment.
    anvil.mine(1);
    let (status, c) = server.get(&format!("/v1/orders/{id}/confirmation"), Some(&sale.owner));
    assert_eq!(
        (status, c["status"].as_str()),
        (200, Some("confirmed")),
        "{c}"
    );
    assert_eq!(c["tx_hash"], hash.to_string());
    assert_eq!(order_state(&server, &alice, &o)["state"], "paid");
    let r = receipt(&server, &alice, &o);
    assert_eq!(r.receipt.order_id, id);
}

/// A hash no node knows (`label` makes it unique).
fn bogus_hash(label: &str) -> TxHash {
    TxHash(Sha256::digest(format!("bogus claim {label}").as_bytes()).into())
}

/// One pass of the server's payment watcher, as its background task runs
/// it (the tests count passes; the task itself polls once an hour).
fn sweep(server: &TestServer) {
    common::block_on(sealstream_market::orders::watcher::watch_once(
        &server.state,
    ))
    .expect("a watcher sweep");
}

/// The order's `createdAt`, in Unix seconds.
fn created_unix(order: &Value) -> u64 {
    let text = order["createdAt"].as_str().expect("createdAt");
    sealstream_core::utc::parse_seconds(text).expect("a UTC time") as u64
}

/// Issue 14, item 9: a transfer mined before the order was made (beyond
/// the allowed clock skew of 5 minutes) does not pay it; one mined within
/// the skew does.
fn a_transfer_mined_before_the_order_does_not_pay_it(db: Db) {
    // The chain's clock runs two hours behind the wall clock.
    let anvil = Anvil::start_in_the_past(2 * 3600);
    let server = server(db, &anvil, 1);
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    // A transfer the buyer made to the seller earlier, for something else.
    let earlier = anvil.send_native(payer.address, pay_to, 1000);
    let o = order(&server, &alice, &sale.listing_id);
    let created = created_unix(&o);
    assert!(anvil.mined_at(&earlier) + 3600 < created);
    let (status, body) = pay(&server, &o, &earlier, payer);
    assert_refused(&server, &alice, &o, (status, body.clone()), 422, "txHash");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before the order"),
        "{body}"
    );
    // Just past the skew: refused as well.
    anvil.set_next_block_timestamp(created - 301);
    let early = anvil.send_native(payer.address, pay_to, 1000);
    assert_eq!(anvil.mined_at(&early), created - 301);
    let reply = pay(&server, &o, &early, payer);
    assert_refused(&server, &alice, &o, reply, 422, "txHash");
    // Within the skew (a clock a minute off): paid.
    anvil.set_next_block_timestamp(created - 60);
    let recent = anvil.send_native(payer.address, pay_to, 1000);
    assert_accepted(pay(&server, &o, &recent, payer), true);
    assert_eq!(order_state(&server, &alice, &o)["state"], "paid");
    assert!(unix_now() >= created);
}

/// Issue 14, item 10: a second claim for an order does not replace the
/// first; the buyer's real payment is still confirmed by the watcher.
fn a_claim_is_not_replaced_by_another(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 3);
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let o = order(&server, &alice, &sale.listing_id);
    let paid = anvil.send_native(payer.address, pay_to, 1000);
    assert_awaiting_confirmations(pay(&server, &o, &paid, payer));
    // Anyone who knows the order id claims a hash no node knows.
    let bogus = bogus_hash("replace");
    assert_accepted(pay(&server, &o, &bogus, payer), false);
    anvil.mine(2);
    sweep(&server);
    assert_eq!(order_state(&server, &alice, &o)["state"], "paid");
}

/// The claim of `hash` in the order view, if listed.
fn claim_of(shown: &Value, hash: &TxHash) -> Option<Value> {
    shown["claims"]
        .as_array()?
        .iter()
        .find(|c| c["txHash"] == hash.to_string())
        .cloned()
}

/// Issue 14, item 10: a hash the node does not know is dropped as expired
/// after a bounded number of checks (here with no minimum age), and the
/// order view says so.
fn unknown_transactions_expire(db: Db) {
    let anvil = Anvil::start();
    let server = server_with(db, &anvil, 1, |c| {
        // No minimum age: the number of checks decides.
        c.unknown_claim_ttl = std::time::Duration::ZERO;
    });
    let (sale, _, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let o = order(&server, &alice, &sale.listing_id);
    let bogus = bogus_hash("expire");
    assert_accepted(pay(&server, &o, &bogus, payer), false);
    let mut sweeps = 0;
    while order_state(&server, &alice, &o)["claimedTx"] == bogus.to_string() {
        assert!(sweeps < 3, "still claimed after {sweeps} sweeps");
        sweep(&server);
        sweeps += 1;
    }
    let shown = order_state(&server, &alice, &o);
    let claim = claim_of(&shown, &bogus).expect("the expired claim is listed");
    assert_eq!(claim["state"], "expired", "{shown}");
    assert!(
        claim["reason"]
            .as_str()
            .unwrap()
            .contains("not known to the node"),
        "{claim}"
    );
}

/// Issue 14, item 10: 250 bogus claims (on orders whose ids sort first)
/// do not starve the watcher: the buyer's real payment is confirmed within
/// two sweeps.
fn bogus_claims_do_not_starve_a_real_payment(db: Db) {
    let anvil = Anvil::start();
    let server = server_with(db, &anvil, 2, |c| {
        // As if from 251 addresses: the per-client limits are not under test.
        c.proof_rate_per_client = Rate::new(1000, std::time::Duration::from_secs(1));
        c.anonymous_write_rate = 0.0;
    });
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let real = order(&server, &alice, &sale.listing_id);
    let real_id = real["id"].as_str().unwrap();
    // 250 orders of the same buyer, with ids before the real one's.
    let bogus_orders: Vec<Value> = (0..250)
        .map(|i| {
            let id = format!("ord_0000000000000000000000000000{i:04x}");
            assert!(id.as_str() < real_id);
            common::block_on(
                sqlx::query(
                    "INSERT INTO orders (id, listing_id, dataset_id, seller_did, buyer_did, \
                     buyer_id, buyer_public_key_hex, amount, rail, state, created_at) \
                     SELECT $1, listing_id, dataset_id, seller_did, buyer_did, buyer_id, \
                     buyer_public_key_hex, amount, rail, state, created_at FROM orders \
                     WHERE id = $2",
                )
                .bind(&id)
                .bind(real_id)
                .execute(server.store.pool()),
            )
            .unwrap();
            let mut o = real.clone();
            o["id"] = json!(id);
            o
        })
        .collect();
    for (i, o) in bogus_orders.iter().enumerate() {
        let hash = bogus_hash(&format!("starve {i}"));
        let (status, body) = pay(&server, o, &hash, payer);
        assert_eq!(status, 200, "bogus claim {i}: {body}");
    }
    let paid = anvil.send_native(payer.address, pay_to, 1000);
    assert_awaiting_confirmations(pay(&server, &real, &paid, payer));
    anvil.mine(1);
    let mut sweeps = 0;
    while order_state(&server, &alice, &real)["state"] != "paid" {
        assert!(sweeps < 2, "not paid after {sweeps} sweeps");
        sweep(&server);
        sweeps += 1;
    }
}

/// Issue 14, item 10: an order takes at most 5 claims of transactions the
/// node does not know; the buyer's real payment is taken past the cap.
fn claims_per_order_are_capped(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 2);
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let o = order(&server, &alice, &sale.listing_id);
    for i in 0..5 {
        let hash = bogus_hash(&format!("cap {i}"));
        let (status, body) = pay(&server, &o, &hash, payer);
        assert_eq!(status, 200, "claim {i}: {body}");
    }
    let (status, body) = pay(&server, &o, &bogus_hash("cap 5"), payer);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["field"], "txHash", "{body}");
    assert_eq!(body["accepted"], false, "{body}");
    let paid = anvil.send_native(payer.address, pay_to, 1000);
    assert_awaiting_confirmations(pay(&server, &o, &paid, payer));
    anvil.mine(1);
    sweep(&server);
    assert_eq!(order_state(&server, &alice, &o)["state"], "paid");
}

/// Issue 14, item 10: anonymous proof posts are rate-limited per client
/// address and per order (429, the limit named); a refused claim is not
/// stored, and the buyer's real payment is not held by the per-order limit.
fn proof_posts_are_rate_limited(db: Db) {
    let anvil = Anvil::start();
    let server = server_with(db, &anvil, 1, |c| {
        // Bursts of 6 and 3, then (in effect) nothing more.
        c.proof_rate_per_client = Rate::new(6, HOUR);
        c.proof_rate_per_order = Rate::new(3, HOUR);
    });
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let stranger = anvil.account(4);
    let o = order(&server, &alice, &sale.listing_id);
    // Someone else's transfer claimed as the buyer's: refused on chain.
    let theirs = anvil.send_native(stranger.address, pay_to, 1000);
    for _ in 0..3 {
        let (status, body) = pay(&server, &o, &theirs, payer);
        assert_eq!(status, 422, "{body}");
    }
    let (status, body) = pay(&server, &o, &theirs, payer);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["field"], "orderId", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per order"),
        "{body}"
    );
    // The buyer's own payment is not held by the order's limit.
    let paid = anvil.send_native(payer.address, pay_to, 1000);
    assert_accepted(pay(&server, &o, &paid, payer), true);
    // Six posts from this address so far: the seventh is refused.
    let other = order(&server, &alice, &sale.listing_id);
    let (status, body) = pay(&server, &other, &bogus_hash("ip 1"), payer);
    assert_eq!(status, 200, "{body}");
    let (status, body) = pay(&server, &other, &bogus_hash("ip 2"), payer);
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].is_object(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per client address"),
        "{body}"
    );
    let shown = order_state(&server, &alice, &other);
    assert!(claim_of(&shown, &bogus_hash("ip 1")).is_some(), "{shown}");
    assert!(claim_of(&shown, &bogus_hash("ip 2")).is_none(), "{shown}");
}

/// One transaction claimed for two orders while short of its
/// confirmations pays the first the watcher reaches; the other claim is
/// closed as refused (not checked again every sweep).
fn one_transaction_claimed_for_two_orders_pays_one(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 2);
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let (a, b) = (
        order(&server, &alice, &sale.listing_id),
        order(&server, &alice, &sale.listing_id),
    );
    let paid = anvil.send_native(payer.address, pay_to, 1000);
    for o in [&a, &b] {
        let (status, body) = pay(&server, o, &paid, payer);
        assert_eq!(status, 200, "{body}");
    }
    anvil.mine(1);
    sweep(&server);
    let states: Vec<Value> = [&a, &b]
        .iter()
        .map(|o| order_state(&server, &alice, o))
        .collect();
    let (won, lost) = if states[0]["state"] == "paid" {
        (&states[0], &states[1])
    } else {
        (&states[1], &states[0])
    };
    assert_eq!(won["state"], "paid", "{won}");
    assert_eq!(lost["state"], "awaiting-payment", "{lost}");
    let claim = claim_of(lost, &paid).expect("the losing claim");
    assert_eq!(claim["state"], "rejected", "{lost}");
    assert!(
        claim["reason"]
            .as_str()
            .unwrap()
            .contains("already paid another order"),
        "{lost}"
    );
    assert_eq!(server.count_rows("payments"), 1);
}

/// Issue 14, item 11: a proof that cannot be confirmed yet is answered
/// `accepted: false` with what is missing, and the order view lists each
/// claim with it.
fn a_pending_proof_says_what_is_missing(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 3);
    let (sale, pay_to, payer, alice) = native_shop(&server, &anvil, 2, "1000");
    let o = order(&server, &alice, &sale.listing_id);
    let paid = anvil.send_native(payer.address, pay_to, 1000);
    let (status, body) = pay(&server, &o, &paid, payer);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], false, "{body}");
    assert_eq!(body["status"], "awaiting-confirmations", "{body}");
    assert_eq!(body["reason"], "waiting for 2 more confirmations", "{body}");
    let bogus = bogus_hash("missing");
    let (status, body) = pay(&server, &o, &bogus, payer);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], false, "{body}");
    assert_eq!(body["status"], "awaiting-transaction", "{body}");
    assert_eq!(
        body["reason"], "transaction not yet known to the node",
        "{body}"
    );
    let shown = order_state(&server, &alice, &o);
    let real = claim_of(&shown, &paid).expect("the real claim");
    assert_eq!(real["state"], "pending", "{shown}");
    assert_eq!(real["reason"], "waiting for 2 more confirmations");
    let unknown = claim_of(&shown, &bogus).expect("the unknown claim");
    assert_eq!(unknown["state"], "unknown", "{shown}");
    assert_eq!(unknown["reason"], "transaction not yet known to the node");
    // The summary names the claim nearest to paying.
    assert_eq!(shown["claimedTx"], paid.to_string(), "{shown}");
    anvil.mine(1);
    sweep(&server);
    let shown = order_state(&server, &alice, &o);
    let real = claim_of(&shown, &paid).expect("the real claim");
    assert_eq!(real["reason"], "waiting for 1 more confirmation", "{shown}");
}

/// Issue 14, item 11: what the reference's `peaqos stream pay
/// --confirmation-url` makes of a proof the server cannot confirm yet. Its
/// client reads only `accepted` (a bool: there is no third answer it
/// shows), so a payment short of its confirmations comes back as
/// `accepted: false`; the order says what is missing.
fn the_reference_reports_a_pending_proof_as_not_accepted(db: Db) {
    let anvil = Anvil::start();
    let server = server(db, &anvil, 3);
    let (sale, _, payer, alice) = native_shop(&server, &anvil, 2, &(ETH / 4).to_string());
    let o = order(&server, &alice, &sale.listing_id);
    let out = anvil.peaqos_pay(
        payer,
        &[
            "--seller-address",
            o["payment"]["payTo"].as_str().unwrap(),
            "--amount",
            o["payment"]["amountDisplay"].as_str().unwrap(),
            "--order-id",
            o["id"].as_str().unwrap(),
            "--confirmation-url",
            o["urls"]["paymentProof"].as_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "peaqos stream pay: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["proof"]["accepted"], false, "{reply}");
    let hash = TxHash::parse(reply["txHash"].as_str().unwrap(), "txHash").unwrap();
    anvil.wait_mined(&hash);
    let shown = order_state(&server, &alice, &o);
    let claim = claim_of(&shown, &hash).expect("the reference's claim");
    let reason = claim["reason"].as_str().unwrap();
    assert!(
        reason == "waiting for 2 more confirmations"
            || reason == "transaction not yet known to the node"
            || reason == "transaction not yet mined",
        "{shown}"
    );
    anvil.mine(2);
    sweep(&server);
    assert_eq!(order_state(&server, &alice, &o)["state"], "paid");
}

/// Issue 14, migration 0010: claims held in the older `orders.claimed_tx`
/// and `claim_status` columns are carried over: an open claim as an
/// unknown claim the watcher checks first, the claim of a cancelled order
/// closed, a refused claim kept with its reason; the older columns are
/// gone.
fn claims_are_carried_over_by_the_upgrade(db: Db) {
    let buyer_key = MachineSigningKey::generate();
    let buyer_did = sealstream_core::identity::Did::of_key(&buyer_key).to_string();
    let (open, refused, cancelled) = (bogus_hash("open"), bogus_hash("refused"), bogus_hash("x"));
    let rail = native_rail(BASE_CHAIN_ID, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").to_string();
    let server = TestServer::start_prepared(
        db,
        |url| {
            let pool = common::migrate_below(db, url, 10);
            let rows = [
                (
                    "ord_00000000000000000000000000000001",
                    "awaiting-payment",
                    Some(open.to_string()),
                    Some(format!("{open}: 0 of 3 confirmations")),
                ),
                (
                    "ord_00000000000000000000000000000002",
                    "awaiting-payment",
                    None,
                    Some(format!("{refused}: the transaction reverted")),
                ),
                (
                    "ord_00000000000000000000000000000003",
                    "cancelled",
                    Some(cancelled.to_string()),
                    Some(format!("{cancelled}: 0 of 3 confirmations")),
                ),
            ];
            for (id, state, claimed, status) in rows {
                common::block_on(
                    sqlx::query(
                        "INSERT INTO orders (id, listing_id, dataset_id, seller_did, buyer_did, \
                         buyer_id, buyer_public_key_hex, amount, rail, state, claimed_tx, \
                         claim_status, created_at) VALUES ($1, 'ls_1', 'ds_1', \
                         'did:peaq:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', $2, $2, $3, '1000', \
                         $4, $5, $6, $7, '2026-01-02T03:04:05Z')",
                    )
                    .bind(id)
                    .bind(&buyer_did)
                    .bind("11".repeat(32))
                    .bind(&rail)
                    .bind(state)
                    .bind(claimed)
                    .bind(status)
                    .execute(&pool),
                )
                .unwrap();
            }
            common::block_on(pool.close());
        },
        |_| {},
    );
    let alice = buyer_with_key(&server, buyer_key);
    let shown = |id: &str| order_state(&server, &alice, &json!({ "id": id }));

    let first = shown("ord_00000000000000000000000000000001");
    assert_eq!(first["claimedTx"], open.to_string(), "{first}");
    let claim = claim_of(&first, &open).expect("the open claim");
    assert_eq!(claim["state"], "unknown", "{first}");
    assert_eq!(claim["chainId"], BASE_CHAIN_ID, "{first}");
    assert_eq!(claim["checks"], 0, "{first}");

    let second = shown("ord_00000000000000000000000000000002");
    assert!(second["claimedTx"].is_null(), "{second}");
    let claim = claim_of(&second, &refused).expect("the refused claim");
    assert_eq!(claim["state"], "rejected", "{second}");
    assert_eq!(claim["reason"], "the transaction reverted", "{second}");
    assert_eq!(
        second["claimStatus"],
        format!("{refused}: the transaction reverted")
    );

    let third = shown("ord_00000000000000000000000000000003");
    let claim = claim_of(&third, &cancelled).expect("the cancelled order's claim");
    assert_eq!(claim["state"], "superseded", "{third}");
    assert_eq!(server.count_rows("payment_claims"), 3);
    let old_column = common::block_on(
        sqlx::query("SELECT claimed_tx FROM orders").fetch_all(server.store.pool()),
    );
    assert!(old_column.is_err(), "orders.claimed_tx is still there");
}

on_both_databases!(
    claims_are_carried_over_by_the_upgrade,
    native_payment_is_verified_once,
    token_payment_is_verified,
    bad_payments_are_refused_and_the_order_stays_payable,
    payments_wait_for_their_confirmations,
    a_transfer_mined_before_the_order_does_not_pay_it,
    a_claim_is_not_replaced_by_another,
    unknown_transactions_expire,
    bogus_claims_do_not_starve_a_real_payment,
    claims_per_order_are_capped,
    proof_posts_are_rate_limited,
    one_transaction_claimed_for_two_orders_pays_one,
    a_pending_proof_says_what_is_missing,
    the_reference_reports_a_pending_proof_as_not_accepted,
);
