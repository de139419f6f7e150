//! Subscriptions on both databases (docs/subscriptions.md), on the
//! invoice rail: listings of kind `subscription`, the state machine
//! (payment of each period through its order, renewal with a key
//! rotation, grace and lapse by the sweep at an injected time, recorded
//! with the time they took effect), cancellation and revocation, every
//! refusal naming its field, visibility to the buyer and the seller only,
//! and the entitlement as the granter sees it: the pending pairs of a
//! topic and grant uploads refused (409) for chunks not entitled.

mod common;

use common::anvil::{Anvil, BASE_CHAIN_ID};
use common::chains::{insert_chain, insert_machine, new_owner, write_chain_to, TestMachine};
use common::listings_fixtures::audit_actions;
use common::orders_fixtures::{buyer, buyer_with_key, invoice_rail, mark_paid, native_rail, Buyer};
use common::{assert_refused, block_on, path_segment, unix_now, Db, TestServer};
use sealstream_api::subscriptions::{
    read_feed_event, FeedChunk, FeedEvent, FeedState, FeedStatus, SubscriptionState,
};
use sealstream_core::access::{grant_entry, Buyer as CoreBuyer};
use sealstream_core::chunk::{ChainState, SealedChunk};
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_market::auth::Role;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PERIOD: i64 = 3_600;
const GRACE: i64 = 600;
const TOPIC: &str = "/gps/fix";

/// An owner with a registered machine and a published subscription
/// listing of its topic.
struct Seller {
    key: MachineSigningKey,
    did: String,
    token: String,
    machine: TestMachine,
    listing_id: String,
    recipient: RecipientSecretKey,
}

fn listing_body(machine_did: &str, history: Value) -> Value {
    listing_on(machine_did, history, invoice_rail(), "900")
}

fn listing_on(machine_did: &str, history: Value, rail: Value, price: &str) -> Value {
    json!({
        "kind": "subscription",
        "title": "Live GPS fixes, truck 7",
        "price": price,
        "rail": rail,
        "subscription": {"machineDid": machine_did, "topic": TOPIC,
                         "periodSeconds": PERIOD, "graceSeconds": GRACE, "history": history}
    })
}

fn seller(server: &TestServer, history: Value) -> Seller {
    seller_on(server, |machine| listing_body(machine, history))
}

fn seller_on(server: &TestServer, body: impl FnOnce(&str) -> Value) -> Seller {
    let (key, did) = new_owner();
    let token = server.session_for(&did, &[Role::Owner]);
    let machine = insert_machine(server, &did);
    let (status, listing) = server.send("POST", "/v1/listings", Some(&token), &body(&machine.did));
    assert_eq!(status, 201, "{listing}");
    assert_eq!(listing["kind"], "subscription");
    assert!(listing.get("dataset").is_none(), "{listing}");
    let id = listing["id"].as_str().unwrap().to_string();
    let (status, published) = server.send(
        "POST",
        &format!("/v1/listings/{id}/publish"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(status, 200, "{published}");
    Seller {
        key,
        did,
        token,
        machine,
        listing_id: id,
        recipient: RecipientSecretKey::generate(),
    }
}

fn subscribe(server: &TestServer, buyer: &Buyer, listing_id: &str) -> Value {
    let (status, body) = server.send(
        "POST",
        "/v1/subscriptions",
        Some(&buyer.token),
        &json!({"listingId": listing_id,
                "buyerPublicKeyHex": buyer.recipient.public_key().to_hex()}),
    );
    assert_eq!(status, 201, "{body}");
    body
}

fn show(server: &TestServer, id: &str, token: &str) -> Value {
    let (status, body) = server.get(&format!("/v1/subscriptions/{id}"), Some(token));
    assert_eq!(status, 200, "{body}");
    body
}

/// Posts `body` to the subscription's `action` route (`renewals`,
/// `cancel`, `revoke`) as the holder of `token`.
fn act(server: &TestServer, id: &str, action: &str, token: &str, body: &Value) -> (u16, Value) {
    server.send(
        "POST",
        &format!("/v1/subscriptions/{id}/{action}"),
        Some(token),
        body,
    )
}

fn unpaid_order(sub: &Value) -> String {
    sub["periods"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|p| p["state"] == "awaiting-payment")
        .expect("an unpaid period")["orderId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn unix(text: &Value) -> i64 {
    sealstream_core::utc::parse_seconds(text.as_str().expect("a time")).expect("UTC text")
}

fn events(server: &TestServer, id: &str, token: &str) -> Vec<(String, String, i64)> {
    let (status, body) = server.get(&format!("/v1/subscriptions/{id}/history"), Some(token));
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["state"].as_str().unwrap().to_string(),
                unix(&e["effectiveAt"]),
            )
        })
        .collect()
}

fn sweep(server: &TestServer, at: i64) -> usize {
    block_on(sealstream_market::subscriptions::sweep(&server.state, at)).expect("sweep")
}

fn paid_subscription(server: &TestServer, seller: &Seller, b: &Buyer) -> (String, Value) {
    let sub = subscribe(server, b, &seller.listing_id);
    let id = sub["id"].as_str().unwrap().to_string();
    let order = unpaid_order(&sub);
    let (status, body) = mark_paid(server, &order, &seller.token, &format!("INV-{order}"));
    assert_eq!(status, 200, "{body}");
    let shown = show(server, &id, &b.token);
    assert_eq!(shown["state"], "active", "{shown}");
    (id, shown)
}

/// `s` revokes subscription `id` ("end of contract").
fn revoke(server: &TestServer, s: &Seller, id: &str) {
    let reason = json!({"reason": "end of contract"});
    let (status, body) = act(server, id, "revoke", &s.token, &reason);
    assert_eq!(status, 200, "{body}");
}

/// A server on `db` with a [`seller`] of `history`.
fn started(db: Db, history: Value) -> (TestServer, Seller) {
    let server = TestServer::start(db);
    let s = seller(&server, history);
    (server, s)
}

/// [`started`], with a buyer whose subscription is paid: the server, the
/// seller, the buyer, the subscription's id and its view.
fn subscribed(db: Db, history: Value) -> (TestServer, Seller, Buyer, String, Value) {
    let (server, s) = started(db, history);
    let b = buyer(&server);
    let (id, view) = paid_subscription(&server, &s, &b);
    (server, s, b, id, view)
}

fn lifecycle_on_invoice(db: Db) {
    let (server, s) = started(db, json!("none"));
    let alice = buyer(&server);
    let sub = subscribe(&server, &alice, &s.listing_id);
    let id = sub["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sub_") && id.len() == 36, "{id}");
    assert_eq!(sub["state"], "awaiting-payment");
    assert_eq!(sub["payment"]["rail"], "invoice");
    assert_eq!(sub["payment"]["amount"], "900");
    assert_eq!(sub["periodSeconds"], PERIOD);
    assert_eq!(sub["machineDid"], s.machine.did.as_str());
    let first = unpaid_order(&sub);
    // The period is an order of its own, paid by the order routes.
    let (status, order) = server.get(&format!("/v1/orders/{first}"), Some(&alice.token));
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["subscriptionId"], id.as_str());
    let before = unix_now() as i64;
    assert_eq!(mark_paid(&server, &first, &s.token, "INV-1").0, 200);
    let after = unix_now() as i64;
    let active = show(&server, &id, &alice.token);
    assert_eq!(active["state"], "active");
    let from = unix(&active["activeFrom"]);
    assert!((before..=after).contains(&from), "{active}");
    assert_eq!(unix(&active["paidThrough"]), from + PERIOD);
    assert_eq!(unix(&active["graceUntil"]), from + PERIOD + GRACE);
    assert!(active["payment"].is_null());
    // The period's order has no grant of its own.
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/orders/{first}/grant"),
        Some(&s.token),
        &json!({"files": []}),
    );
    assert_refused(status, &body, 409, "orderId");

    // A renewal with a new key: one unpaid period at a time.
    let rotated = RecipientSecretKey::generate();
    let (status, renewed) = act(
        &server,
        &id,
        "renewals",
        &alice.token,
        &json!({"buyerPublicKeyHex": rotated.public_key().to_hex()}),
    );
    assert_eq!(status, 201, "{renewed}");
    assert_eq!(renewed["periods"].as_array().unwrap().len(), 2);
    let second = unpaid_order(&renewed);
    let (status, body) = act(&server, &id, "renewals", &alice.token, &json!({}));
    assert_refused(status, &body, 409, "state");
    assert_eq!(mark_paid(&server, &second, &s.token, "INV-2").0, 200);
    let renewed = show(&server, &id, &alice.token);
    let t = from + 2 * PERIOD;
    assert_eq!(unix(&renewed["paidThrough"]), t);
    assert_eq!(renewed["buyerPublicKeyHex"], rotated.public_key().to_hex());
    assert_eq!(renewed["keys"].as_array().unwrap().len(), 2);

    // Time passes (injected): grace at T, lapsed at T + G, each with the
    // time it took effect, not the time of the sweep.
    assert_eq!(sweep(&server, t - 1), 0);
    assert_eq!(sweep(&server, t + 5), 1);
    assert_eq!(show(&server, &id, &s.token)["state"], "grace");
    assert_eq!(sweep(&server, t + GRACE + 1000), 1);
    let lapsed = show(&server, &id, &alice.token);
    assert_eq!(lapsed["state"], "lapsed");
    assert_eq!(unix(&lapsed["accessEnds"]), t + GRACE);
    assert_eq!(sweep(&server, t + GRACE + 5000), 0, "final states stay");
    let history = events(&server, &id, &alice.token);
    let names: Vec<&str> = history.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "created",
            "activated",
            "renewed",
            "key-rotated",
            "grace",
            "lapsed"
        ]
    );
    assert_eq!(history[4], ("grace".into(), "grace".into(), t));
    assert_eq!(history[5], ("lapsed".into(), "lapsed".into(), t + GRACE));
    assert_eq!(
        events(&server, &id, &s.token),
        history,
        "the seller reads it too"
    );
    assert_eq!(
        audit_actions(&server, &id),
        [
            "subscription.created",
            "subscription.activated",
            "subscription.renewed",
            "subscription.key-rotated",
            "subscription.grace",
            "subscription.lapsed",
            "subscription.cutoff"
        ]
    );
    // Nothing moves a lapsed subscription.
    for (path, token, body) in [
        ("renewals", &alice.token, json!({})),
        ("cancel", &alice.token, json!({})),
        ("revoke", &s.token, json!({"reason": "late"})),
    ] {
        let (status, reply) = act(&server, &id, path, token, &body);
        assert_eq!(
            (status, reply["error"]["field"].as_str()),
            (409, Some("state")),
            "{path}: {reply}"
        );
    }
}

fn a_renewal_in_grace_continues_without_a_gap(db: Db) {
    let (server, s, bob, id, active) = subscribed(db, json!("none"));
    let t = unix(&active["paidThrough"]);
    assert_eq!(sweep(&server, t + 10), 1);
    assert_eq!(show(&server, &id, &bob.token)["state"], "grace");
    let (status, renewal) = act(&server, &id, "renewals", &bob.token, &json!({}));
    assert_eq!(status, 201, "{renewal}");
    assert_eq!(
        mark_paid(&server, &unpaid_order(&renewal), &s.token, "INV-r").0,
        200
    );
    let back = show(&server, &id, &bob.token);
    assert_eq!(back["state"], "active");
    assert_eq!(unix(&back["paidThrough"]), t + PERIOD, "grace is paid time");
}

fn cancel_and_revoke(db: Db) {
    let (server, s) = started(db, json!("none"));
    // Cancelled before the first payment: no access, and the period's
    // order can no longer be paid.
    let carol = buyer(&server);
    let sub = subscribe(&server, &carol, &s.listing_id);
    let id = sub["id"].as_str().unwrap();
    let order = unpaid_order(&sub);
    let (status, body) = act(&server, id, "cancel", &s.token, &json!({}));
    assert_eq!(
        status, 404,
        "the seller revokes, it does not cancel: {body}"
    );
    let (status, cancelled) = act(&server, id, "cancel", &carol.token, &json!({}));
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["activeFrom"].is_null());
    let (status, body) = mark_paid(&server, &order, &s.token, "INV-late");
    assert_eq!(status, 409, "{body}");

    // Cancelled while active: access runs to T, without grace.
    let dave = buyer(&server);
    let (id, active) = paid_subscription(&server, &s, &dave);
    let (status, cancelled) = act(&server, &id, "cancel", &dave.token, &json!({}));
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["accessEnds"], active["paidThrough"]);

    // Revoked by the seller, with a reason: access ends now.
    let erin = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &erin);
    for (token, body, status, field) in [
        (&s.token, json!({"reason": " "}), 400, "reason"),
        (&s.token, json!({"reason": "x".repeat(501)}), 400, "reason"),
    ] {
        let (got, reply) = act(&server, &id, "revoke", token, &body);
        assert_refused(got, &reply, status, field);
    }
    let before = unix_now() as i64;
    let (status, revoked) = act(
        &server,
        &id,
        "revoke",
        &s.token,
        &json!({"reason": "resold the data"}),
    );
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(revoked["endReason"], "resold the data");
    assert!(unix(&revoked["accessEnds"]) >= before);
    let history = events(&server, &id, &erin.token);
    assert_eq!(history.last().unwrap().0, "revoked");
}

fn refusals_name_the_field(db: Db) {
    let (server, s) = started(db, json!({"lastChunks": 3}));
    let create = |body: &Value| server.send("POST", "/v1/listings", Some(&s.token), body);
    let base = listing_body(&s.machine.did, json!("all"));
    let cases = [
        (
            "/subscription/periodSeconds",
            json!(60),
            400,
            "subscription.periodSeconds",
        ),
        (
            "/subscription/graceSeconds",
            json!(9_999_999),
            400,
            "subscription.graceSeconds",
        ),
        (
            "/subscription/history",
            json!({"lastChunks": 0}),
            400,
            "subscription.history.lastChunks",
        ),
        (
            "/subscription/history",
            json!("some"),
            400,
            "subscription.history",
        ),
        ("/subscription/topic", json!(""), 400, "subscription.topic"),
        ("/datasetId", json!("ds_1"), 400, "datasetId"),
        ("/kind", json!("feed"), 400, "kind"),
    ];
    for (pointer, value, status, field) in cases {
        let mut body = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        body.pointer_mut(parent).unwrap()[key] = value;
        let (got, reply) = create(&body);
        assert_eq!(
            (got, reply["error"]["field"].as_str()),
            (status, Some(field)),
            "{pointer}: {reply}"
        );
    }
    // Someone else's machine.
    let (_, other) = new_owner();
    let theirs = insert_machine(&server, &other);
    let (got, reply) = create(&listing_body(&theirs.did, json!("none")));
    assert_refused(got, &reply, 404, "subscription.machineDid");

    let alice = buyer(&server);
    let key = alice.recipient.public_key().to_hex();
    let send =
        |token: &str, body: Value| server.send("POST", "/v1/subscriptions", Some(token), &body);
    let (got, reply) = send(
        &alice.token,
        json!({"listingId": s.listing_id, "buyerPublicKeyHex": "zz"}),
    );
    assert_refused(got, &reply, 400, "buyerPublicKeyHex");
    let (got, reply) = send(
        &alice.token,
        json!({"listingId": "ls_nope", "buyerPublicKeyHex": key}),
    );
    assert_eq!(got, 404, "{reply}");
    let owner_as_buyer = server.session_for(&s.did, &[Role::Owner, Role::Buyer]);
    let (got, reply) = send(
        &owner_as_buyer,
        json!({"listingId": s.listing_id, "buyerPublicKeyHex": key}),
    );
    assert_refused(got, &reply, 409, "listingId");
    let owner_only = server.session_for(&common::listings_fixtures::new_did(), &[Role::Owner]);
    let (got, reply) = send(
        &owner_only,
        json!({"listingId": s.listing_id, "buyerPublicKeyHex": key}),
    );
    assert_eq!(got, 403, "not a buyer: {reply}");
    // A subscription listing is not ordered.
    let (got, reply) = server.send(
        "POST",
        "/v1/orders",
        Some(&alice.token),
        &json!({"listingId": s.listing_id, "buyerPublicKeyHex": key}),
    );
    assert_refused(got, &reply, 409, "listingId");
    // Renewal with a bad key.
    let (id, _) = paid_subscription(&server, &s, &alice);
    let (got, reply) = act(
        &server,
        &id,
        "renewals",
        &alice.token,
        &json!({"buyerPublicKeyHex": "00"}),
    );
    assert_refused(got, &reply, 400, "buyerPublicKeyHex");
    // List queries.
    for (query, field) in [
        ("as=owner", "as"),
        ("state=paused", "state"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let (got, reply) = server.get(&format!("/v1/subscriptions?{query}"), Some(&alice.token));
        assert_eq!(
            (got, reply["error"]["field"].as_str()),
            (400, Some(field)),
            "{query}: {reply}"
        );
    }

    // The catalog finds either kind; the card carries the period.
    let (status, page) = server.get("/v1/catalog?kind=subscription", None);
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["kind"], "subscription");
    assert_eq!(items[0]["topic"], TOPIC);
    assert_eq!(items[0]["machineDid"], s.machine.did.as_str());
    assert_eq!(
        items[0]["subscription"]["history"],
        json!({"lastChunks": 3})
    );
    let (status, page) = server.get("/v1/catalog?kind=dataset", None);
    assert_eq!(
        (status, page["items"].as_array().unwrap().len()),
        (200, 0),
        "{page}"
    );
    let (status, page) = server.get(
        &format!("/v1/catalog?machine={}", path_segment(&s.machine.did)),
        None,
    );
    assert_eq!(
        (status, page["items"].as_array().unwrap().len()),
        (200, 1),
        "{page}"
    );
    let (status, reply) = server.get("/v1/catalog?kind=feed", None);
    assert_refused(status, &reply, 400, "kind");
    let (status, card) = server.get(&format!("/v1/listings/{}/card", s.listing_id), None);
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["payment"][0]["unit"], "seconds");
    assert_eq!(card["payment"][0]["interval"], PERIOD);
    assert_eq!(card["payment"][0]["amount"], "9");
    assert_eq!(card["payment"][0]["amountBaseUnits"], "900");
    assert_eq!(card["subscription"]["topic"], TOPIC);
    assert!(card.get("dataset").is_none());
}

fn only_the_buyer_and_the_seller_see_it(db: Db) {
    let (server, s) = started(db, json!("none"));
    let alice = buyer(&server);
    let mallory = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &alice);
    for path in [
        format!("/v1/subscriptions/{id}"),
        format!("/v1/subscriptions/{id}/history"),
    ] {
        let (status, body) = server.get(&path, Some(&mallory.token));
        assert_eq!(status, 404, "{path}: {body}");
        let (status, _) = server.get(&path, None);
        assert_eq!(status, 401, "{path}");
    }
    for (path, body) in [
        ("cancel", json!({})),
        ("renewals", json!({})),
        ("revoke", json!({"reason": "no"})),
    ] {
        let (status, reply) = act(&server, &id, path, &mallory.token, &body);
        assert_eq!(status, 404, "{path}: {reply}");
    }
    // The machine whose topic it covers reads it (to serve the topic peer
    // to peer), and nothing else of it; it changes nothing.
    let machine = server.sign_in(&s.machine.key);
    let (status, seen) = server.get(&format!("/v1/subscriptions/{id}"), Some(&machine));
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        seen["buyerPublicKeyHex"],
        alice.recipient.public_key().to_hex().as_str()
    );
    let (status, _) = server.get(&format!("/v1/subscriptions/{id}/history"), Some(&machine));
    assert_eq!(status, 404);
    for (path, body) in [
        ("cancel", json!({})),
        ("renewals", json!({})),
        ("revoke", json!({"reason": "no"})),
    ] {
        let (status, reply) = act(&server, &id, path, &machine, &body);
        assert_eq!(status, 404, "machine {path}: {reply}");
    }
    let (_, mine) = server.get("/v1/subscriptions", Some(&alice.token));
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, theirs) = server.get("/v1/subscriptions", Some(&mallory.token));
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let (_, sold) = server.get("/v1/subscriptions?as=seller", Some(&s.token));
    assert_eq!(sold["items"][0]["id"], id.as_str());
    let (_, sold) = server.get("/v1/subscriptions?as=seller", Some(&alice.token));
    assert_eq!(sold["items"], json!([]), "a buyer sells nothing: {sold}");
    let (status, _) = act(
        &server,
        &id,
        "revoke",
        &alice.token,
        &json!({"reason": "mine"}),
    );
    assert_eq!(status, 404, "the buyer cancels, it does not revoke");
    // The pending grants of the topic: the machine's owner only.
    let path = format!(
        "/v1/machines/{}/topics/{}/subscription-grants",
        path_segment(&s.machine.did),
        path_segment(TOPIC)
    );
    let (status, _) = server.get(&path, Some(&alice.token));
    assert_eq!(status, 404);
    let (status, body) = server.get(&path, Some(&s.token));
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/subscriptions/{id}/grants"),
        Some(&alice.token),
        &json!({"entries": []}),
    );
    assert_refused(status, &body, 400, "entries");
}

/// Chunks at chosen acceptance times around a subscription's start.
fn chain_at(server: &TestServer, s: &Seller, times: &[i64]) -> Vec<SealedChunk> {
    let plaintexts: Vec<Vec<u8>> = (0..times.len())
        .map(|i| format!("fix {i}").into_bytes())
        .collect();
    let chunks = write_chain_to(
        &s.machine,
        ChainState::new(),
        &plaintexts,
        s.recipient.public_key(),
    );
    insert_chain(server, &s.machine.did, TOPIC, &chunks, times);
    chunks
}

fn pending(server: &TestServer, s: &Seller) -> Vec<(String, u64, String)> {
    let path = format!(
        "/v1/machines/{}/topics/{}/subscription-grants",
        path_segment(&s.machine.did),
        path_segment(TOPIC)
    );
    let (status, body) = server.get(&path, Some(&s.token));
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["subscriptionId"].as_str().unwrap().to_string(),
                p["index"].as_u64().unwrap(),
                p["buyerPublicKeyHex"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn entry(s: &Seller, chunk: &SealedChunk, buyer_id: &str, key: &RecipientSecretKey) -> Value {
    let buyer = CoreBuyer::new(buyer_id, &key.public_key().to_hex()).unwrap();
    let e = grant_entry(&chunk.envelope, &s.recipient, &buyer).unwrap();
    json!({"index": chunk.envelope.index, "chunkId": e.chunk_id, "buyer": {
        "recipientId": e.buyer.recipient_id, "recipientType": e.buyer.recipient_type,
        "algorithm": e.buyer.algorithm, "publicKeyHex": e.buyer.public_key_hex,
        "wrappedKeyHex": e.buyer.wrapped_key_hex}})
}

fn entitled_pairs_and_grants(db: Db) {
    let (server, s) = started(db, json!({"lastChunks": 2}));
    let now = unix_now() as i64;
    // 0..=2 before the start (history: the last 2), 3 and 4 live, 5 in
    // grace, 6 after T + G.
    let times = [
        now - 900,
        now - 800,
        now - 700,
        now + 100,
        now + 200,
        now + PERIOD + 300,
        now + PERIOD + GRACE + 400,
    ];
    let chunks = chain_at(&server, &s, &times);
    let alice = buyer(&server);
    let (id, active) = paid_subscription(&server, &s, &alice);
    let key = active["buyerPublicKeyHex"].as_str().unwrap().to_string();
    let got = pending(&server, &s);
    let indexes: Vec<u64> = got.iter().map(|(_, i, _)| *i).collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5], "{got:?}");
    assert!(got.iter().all(|(sub, _, k)| *sub == id && *k == key));

    let grant = |entries: Vec<Value>| {
        server.send(
            "PUT",
            &format!("/v1/subscriptions/{id}/grants"),
            Some(&s.token),
            &json!({ "entries": entries }),
        )
    };
    // Not entitled: outside the history, after T + G, or the wrong key.
    for (e, field) in [
        (
            entry(&s, &chunks[0], &alice.did, &alice.recipient),
            "entries[0]",
        ),
        (
            entry(&s, &chunks[6], &alice.did, &alice.recipient),
            "entries[0]",
        ),
        (
            entry(&s, &chunks[3], &alice.did, &RecipientSecretKey::generate()),
            "entries[0].buyer.publicKeyHex",
        ),
        (
            entry(&s, &chunks[3], "someone", &alice.recipient),
            "entries[0].buyer.recipientId",
        ),
    ] {
        let (status, body) = grant(vec![e]);
        assert_refused(status, &body, 409, field);
    }
    // One bad entry among good ones stores nothing.
    let (status, body) = grant(vec![
        entry(&s, &chunks[3], &alice.did, &alice.recipient),
        entry(&s, &chunks[0], &alice.did, &alice.recipient),
    ]);
    assert_refused(status, &body, 409, "entries[1]");
    assert_eq!(server.count_rows("subscription_grants"), 0);
    // A chunk named twice in one request (two wrappings of it) stores nothing.
    let (status, body) = grant(vec![
        entry(&s, &chunks[3], &alice.did, &alice.recipient),
        entry(&s, &chunks[3], &alice.did, &alice.recipient),
    ]);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("entries[1].index")),
        "{body}"
    );
    assert_eq!(server.count_rows("subscription_grants"), 0);
    let good = entry(&s, &chunks[3], &alice.did, &alice.recipient);
    let (status, body) = grant(vec![
        good.clone(),
        entry(&s, &chunks[1], &alice.did, &alice.recipient),
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["stored"].as_u64(), body["already"].as_u64()),
        (Some(2), Some(0))
    );
    let (status, body) = grant(vec![good]);
    assert_eq!((status, body["already"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = grant(vec![entry(&s, &chunks[3], &alice.did, &alice.recipient)]);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("entries[0].buyer.wrappedKeyHex")),
        "another wrapping of a granted chunk: {body}"
    );
    let left: Vec<u64> = pending(&server, &s).iter().map(|(_, i, _)| *i).collect();
    assert_eq!(left, [2, 4, 5]);
    assert!(audit_actions(&server, &id).contains(&"subscription.grant".to_string()));

    // Revoked now: the live chunks after now are no longer entitled.
    revoke(&server, &s, &id);
    let left: Vec<u64> = pending(&server, &s).iter().map(|(_, i, _)| *i).collect();
    assert_eq!(
        left,
        [2],
        "history stays entitled, nothing after the revocation"
    );
    let (status, body) = grant(vec![entry(&s, &chunks[4], &alice.did, &alice.recipient)]);
    assert_refused(status, &body, 409, "entries[0]");
}

fn a_rotated_key_applies_from_its_renewal(db: Db) {
    let (server, s) = started(db, json!("all"));
    let now = unix_now() as i64;
    let chunks = chain_at(&server, &s, &[now - 50, now + 100, now + 2 * PERIOD - 10]);
    let bob = buyer(&server);
    let (id, first) = paid_subscription(&server, &s, &bob);
    let old = first["buyerPublicKeyHex"].as_str().unwrap().to_string();
    let rotated = RecipientSecretKey::generate();
    let (status, renewal) = act(
        &server,
        &id,
        "renewals",
        &bob.token,
        &json!({"buyerPublicKeyHex": rotated.public_key().to_hex()}),
    );
    assert_eq!(status, 201, "{renewal}");
    assert_eq!(
        mark_paid(&server, &unpaid_order(&renewal), &s.token, "INV-k").0,
        200
    );
    // The renewal is confirmed now: chunk 0 (history) is wrapped to the
    // first key, chunks 1 and 2 (accepted after the confirmation) to the
    // new key only.
    let got = pending(&server, &s);
    let new = rotated.public_key().to_hex();
    assert_eq!(
        got[0],
        (id.clone(), 0, old.clone()),
        "history uses the first key"
    );
    assert_eq!(got[1].2, new, "{got:?}");
    assert_eq!(got[2].2, new, "{got:?}");
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/subscriptions/{id}/grants"),
        Some(&s.token),
        &json!({"entries": [entry(&s, &chunks[2], &bob.did, &bob.recipient)]}),
    );
    assert_refused(status, &body, 409, "entries[0].buyer.publicKeyHex");
}

/// An open feed: its events as they arrive, read by a thread.
struct Feed {
    events: std::sync::mpsc::Receiver<Option<FeedEvent>>,
    /// Set on drop: the reader closes the connection at its next read (a
    /// keep-alive at the latest).
    closed: Arc<AtomicBool>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

/// A response that fails its next read once `closed` is set.
struct Closable<R> {
    inner: R,
    closed: Arc<AtomicBool>,
}

impl<R: Read> Read for Closable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("closed by the test"));
        }
        self.inner.read(buf)
    }
}

impl Feed {
    /// The next event (`None`: the feed ended), within 20 s.
    fn next(&self) -> Option<FeedEvent> {
        self.events
            .recv_timeout(Duration::from_secs(20))
            .expect("a feed event within 20 s")
    }

    fn chunk(&self) -> FeedChunk {
        match self.next() {
            Some(FeedEvent::Chunk(c)) => *c,
            other => panic!("expected a chunk event, got {other:?}"),
        }
    }

    fn state(&self) -> FeedState {
        match self.next() {
            Some(FeedEvent::State(s)) => s,
            other => panic!("expected a state event, got {other:?}"),
        }
    }

    /// Nothing arrives for `wait`.
    fn quiet(&self, wait: Duration) {
        if let Ok(e) = self.events.recv_timeout(wait) {
            panic!("expected no event, got {e:?}");
        }
    }
}

/// Opens the feed of `id` with `query` and `last_event_id`: the feed, or
/// the refusal's (status, body).
fn open_feed(
    server: &TestServer,
    id: &str,
    token: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> Result<Feed, (u16, Value)> {
    let mut request = server.request(
        "GET",
        &format!("/v1/subscriptions/{id}/feed{query}"),
        Some(token),
    );
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last);
    }
    let response = request.send().expect("an answer");
    let status = response.status().as_u16();
    if status != 200 {
        let body: Value = serde_json::from_slice(&response.bytes().unwrap()).unwrap();
        return Err((status, body));
    }
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let closed = Arc::new(AtomicBool::new(false));
    let inner = Closable {
        inner: response,
        closed: closed.clone(),
    };
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(inner);
        loop {
            match read_feed_event(&mut r) {
                Ok(Some(e)) => {
                    if tx.send(Some(e)).is_err() {
                        return;
                    }
                }
                Ok(None) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
            }
        }
    });
    Ok(Feed { events: rx, closed })
}

fn grant_chunks(server: &TestServer, s: &Seller, id: &str, entries: Vec<Value>) {
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/subscriptions/{id}/grants"),
        Some(&s.token),
        &json!({ "entries": entries }),
    );
    assert_eq!(status, 200, "{body}");
}

/// Opens a chunk event as a follower does: the ciphertext through the
/// subscription, the key with the buyer's secret, every hash checked.
fn open_chunk(
    server: &TestServer,
    token: &str,
    c: &FeedChunk,
    key: &RecipientSecretKey,
) -> Vec<u8> {
    let envelope =
        sealstream_core::chunk::ChunkEnvelope::from_json(&c.envelope.to_core().unwrap()).unwrap();
    sealstream_core::chunk::verify_signed(&envelope).unwrap();
    let answer =
        sealstream_testkit::http::send(server.request("GET", &c.ciphertext_path, Some(token)));
    assert_eq!(answer.status, 200, "{}", c.ciphertext_path);
    let wrapped = sealstream_core::chunk::KeyRecipient {
        recipient_id: c.buyer.recipient_id.clone(),
        recipient_type: c.buyer.recipient_type.clone(),
        algorithm: c.buyer.algorithm.clone(),
        public_key_hex: c.buyer.public_key_hex.clone(),
        wrapped_key_hex: c.buyer.wrapped_key_hex.clone(),
    };
    sealstream_core::chunk::decrypt_chunk(&envelope, &wrapped, key, answer.body).unwrap()
}

fn the_feed_sends_grants_in_order_resumes_and_ends(db: Db) {
    let (server, s) = started(db, json!("none"));
    let now = unix_now() as i64;
    let chunks = chain_at(
        &server,
        &s,
        &[now + 10, now + 20, now + 30, now + PERIOD + GRACE + 10],
    );
    let alice = buyer(&server);
    let (id, active) = paid_subscription(&server, &s, &alice);
    let e = |i: usize| entry(&s, &chunks[i], &alice.did, &alice.recipient);
    grant_chunks(&server, &s, &id, vec![e(1), e(0)]);

    let feed = open_feed(&server, &id, &alice.token, "", None).expect("a feed");
    let st = feed.state();
    assert_eq!(
        (st.status, st.state),
        (FeedStatus::Valid, SubscriptionState::Active)
    );
    assert_eq!(st.paid_through.as_deref(), active["paidThrough"].as_str());
    assert_eq!(
        unix(&json!(st.grace_until)) - unix(&active["paidThrough"]),
        GRACE
    );
    let left = st.seconds_left.unwrap() as i64;
    assert!(
        // (the seconds since the payment, however slow the machine)
        (PERIOD + GRACE - 60..=PERIOD + GRACE).contains(&left),
        "{left}"
    );
    for (i, chunk) in chunks.iter().enumerate().take(2) {
        let c = feed.chunk();
        assert_eq!(c.index, i as u64);
        assert_eq!(c.chunk_id, chunk.envelope.chunk_id);
        assert_eq!(
            c.buyer.public_key_hex,
            alice.recipient.public_key().to_hex()
        );
        assert_eq!(
            open_chunk(&server, &alice.token, &c, &alice.recipient),
            format!("fix {i}").into_bytes()
        );
    }
    feed.quiet(Duration::from_millis(500));
    // Stored after the feed opened: sent live.
    grant_chunks(&server, &s, &id, vec![e(2)]);
    let c = feed.chunk();
    assert_eq!(
        (c.index, c.previous_chunk_id.as_deref()),
        (2, Some(chunks[1].envelope.chunk_id.as_str()))
    );
    // That read, woken by the grant alone, was gathered on PostgreSQL
    // (`feed_reads`) and alone on SQLite.
    let (gathered, alone) = std::iter::once(&server)
        .chain(&server.others)
        .map(|r| r.state.feeds.reads().counts())
        .fold((0, 0), |(g, a), c| (g + c.gathered, a + c.alone));
    match db {
        Db::Postgres => assert!(gathered >= 1 && alone == 0, "{gathered} {alone}"),
        Db::Sqlite => assert!(gathered == 0 && alone >= 1, "{gathered} {alone}"),
    }

    // Resumed after an index, by query or by Last-Event-ID (the query wins).
    let resumed = open_feed(&server, &id, &alice.token, "?after=1", Some("0")).expect("a feed");
    assert_eq!(resumed.state().status, FeedStatus::Valid);
    assert_eq!(resumed.chunk().index, 2);
    let by_header = open_feed(&server, &id, &alice.token, "", Some("0")).expect("a feed");
    by_header.state();
    assert_eq!((by_header.chunk().index, by_header.chunk().index), (1, 2));
    drop((resumed, by_header));

    // The envelopes up to the last granted one, the ciphertext of granted
    // ones only.
    let (status, body) = server.get(
        &format!("/v1/subscriptions/{id}/chunks/1/envelope"),
        Some(&alice.token),
    );
    assert_eq!(
        (status, body["chunkId"].as_str()),
        (200, Some(chunks[1].envelope.chunk_id.as_str()))
    );
    for path in ["chunks/3/envelope", "chunks/3/ciphertext"] {
        let (status, body) = server.get(
            &format!("/v1/subscriptions/{id}/{path}"),
            Some(&alice.token),
        );
        assert_eq!(status, 404, "{path}: {body}");
    }

    // The sweep moves it into grace at T: a state event.
    sweep(&server, unix(&active["paidThrough"]));
    let st = feed.state();
    assert_eq!(
        (st.status, st.state),
        (FeedStatus::Valid, SubscriptionState::Grace)
    );
    assert!(st
        .remedy
        .unwrap()
        .contains(&format!("subscription renew {id}")));
    // Revoked: invalid with the reason, and the feed ends (nothing more is
    // due: chunk 3 was accepted after the revocation).
    revoke(&server, &s, &id);
    let st = feed.state();
    assert_eq!(
        (st.status, st.state, st.is_final),
        (FeedStatus::Invalid, SubscriptionState::Revoked, true)
    );
    assert!(st.reason.unwrap().contains("end of contract"));
    assert!(st.access_ends.is_some());
    assert_eq!(feed.next(), None, "the feed ends once drained");
    // A feed opened now sends the state, what it holds, and ends.
    let late = open_feed(&server, &id, &alice.token, "?after=1", None).expect("a feed");
    assert_eq!(late.state().status, FeedStatus::Invalid);
    assert_eq!(late.chunk().index, 2);
    assert_eq!(late.next(), None);
}

/// A chunk granted before a revocation stays the subscription's, even when
/// it was accepted at or after the revocation's second (here: a chunk
/// stamped ahead of the clock): the notice's last index counts it, so no
/// delivered key lies above it.
fn a_chunk_granted_before_a_revocation_counts_in_its_notice(db: Db) {
    let server = TestServer::start(db);
    let s = seller(&server, json!("none"));
    let now = unix_now() as i64;
    let chunks = chain_at(&server, &s, &[now + 30]);
    let bob = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &bob);
    grant_chunks(
        &server,
        &s,
        &id,
        vec![entry(&s, &chunks[0], &bob.did, &bob.recipient)],
    );
    let (status, _) = server.send(
        "POST",
        &format!("/v1/subscriptions/{id}/revoke"),
        Some(&s.token),
        &json!({"reason": "end of contract"}),
    );
    assert_eq!(status, 200);
    let (status, notice) = cutoff_of(&server, &id, &bob.token);
    assert_eq!(status, 200);
    let notice = notice.expect("the notice");
    assert_eq!(notice.cutoff.last_index_entitled, Some(0));
    assert!(unix(&json!(notice.cutoff.effective_at)) < now + 30);
}

fn a_final_feed_waits_for_the_chunks_still_due(db: Db) {
    let (server, s) = started(db, json!("none"));
    let now = unix_now() as i64;
    // Chunk 0 a minute ahead: after the payment's second however slow the
    // machine, so it is live (not history, which this listing leaves out).
    let chunks = chain_at(&server, &s, &[now + 60, now + 2 * PERIOD]);
    let bob = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &bob);
    let (status, _) = act(&server, &id, "cancel", &bob.token, &json!({}));
    assert_eq!(status, 200);
    // Cancelled (access to T, an hour ahead): chunk 0 is still due, and
    // so is every chunk accepted until T, so the feed stays, without a
    // cut-off notice yet.
    let feed = open_feed(&server, &id, &bob.token, "", None).expect("a feed");
    let st = feed.state();
    assert_eq!(
        (st.status, st.state, st.cutoff.is_none()),
        (FeedStatus::Invalid, SubscriptionState::Cancelled, true)
    );
    feed.quiet(Duration::from_millis(500));
    grant_chunks(
        &server,
        &s,
        &id,
        vec![entry(&s, &chunks[0], &bob.did, &bob.recipient)],
    );
    assert_eq!(feed.chunk().index, 0);
    feed.quiet(Duration::from_millis(500));

    // Revoked while its grants are behind (history: all, two chunks): the
    // last state carries the notice, and the feed stays open until the
    // chunks still due are granted, sends them in order and ends.
    let s2 = seller(&server, json!("all"));
    let history = chain_at(&server, &s2, &[now - 100, now - 50]);
    let carol = buyer(&server);
    let (c, _) = paid_subscription(&server, &s2, &carol);
    let (status, _) = act(
        &server,
        &c,
        "revoke",
        &s2.token,
        &json!({"reason": "late payment"}),
    );
    assert_eq!(status, 200);
    let feed = open_feed(&server, &c, &carol.token, "", None).expect("a feed");
    let st = feed.state();
    assert_eq!(st.state, SubscriptionState::Revoked);
    let notice = st.cutoff_notice().expect("the notice").expect("it reads");
    assert_eq!(notice.cutoff.last_index_entitled, Some(1));
    let e = |i: usize| entry(&s2, &history[i], &carol.did, &carol.recipient);
    grant_chunks(&server, &s2, &c, vec![e(1)]);
    feed.quiet(Duration::from_millis(500));
    grant_chunks(&server, &s2, &c, vec![e(0)]);
    assert_eq!((feed.chunk().index, feed.chunk().index), (0, 1));
    assert_eq!(feed.next(), None);
}

fn a_feed_is_its_buyers_only(db: Db) {
    // Feeds are counted per process, as connections are (the proxy in
    // front of replicas limits per client): one process here.
    let mut server = TestServer::start_single_with(db, |c| {
        c.max_feeds_per_principal = 1;
        c.feed_keep_alive = Duration::from_millis(100);
    });
    let s = seller(&server, json!("none"));
    let carol = buyer(&server);
    let stranger = buyer(&server);
    let sub = subscribe(&server, &carol, &s.listing_id);
    let id = sub["id"].as_str().unwrap();
    let refused =
        |token: &str, id: &str, query: &str| match open_feed(&server, id, token, query, None) {
            Ok(_) => panic!("a feed was opened"),
            Err((status, body)) => (status, body["error"]["field"].as_str().map(str::to_string)),
        };
    assert_eq!(refused(&s.token, id, "").0, 403);
    assert_eq!(refused(&stranger.token, id, "").0, 404);
    assert_eq!(
        refused(&carol.token, "sub_00000000000000000000000000000000", "").0,
        404
    );
    assert_eq!(
        refused(&carol.token, id, "?after=x"),
        (400, Some("after".into()))
    );
    assert_eq!(refused(&carol.token, id, "?from=1").0, 400);
    let (status, _) = server.get(
        &format!("/v1/subscriptions/{id}/chunks/0/ciphertext"),
        Some(&stranger.token),
    );
    assert_eq!(status, 404);
    let (status, _) = server.get(
        &format!("/v1/subscriptions/{id}/chunks/0/ciphertext"),
        Some(&s.token),
    );
    assert_eq!(status, 403);

    // Awaiting payment: invalid, with the order to pay.
    let feed = open_feed(&server, id, &carol.token, "", None).expect("a feed");
    let st = feed.state();
    assert_eq!(
        (st.status, st.state),
        (FeedStatus::Invalid, SubscriptionState::AwaitingPayment)
    );
    let order = unpaid_order(&sub);
    assert!(st.remedy.unwrap().contains(&order));
    // One feed per principal here: a second is refused until the first
    // closes.
    assert_eq!(refused(&carol.token, id, ""), (429, Some("feeds".into())));
    // Paid: valid, live.
    assert_eq!(mark_paid(&server, &order, &s.token, "INV-f").0, 200);
    assert_eq!(feed.state().status, FeedStatus::Valid);
    drop(feed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.state.feeds.open_count(&carol.did) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed feed is still counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let open = open_feed(&server, id, &carol.token, "", None).expect("a feed");
    assert_eq!(open.state().status, FeedStatus::Valid);
    // A server stopping ends its feeds (it does not wait for them).
    let started = std::time::Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(open.next(), None);
}

/// The EVM rail: each period's order is paid on chain and its proof
/// checked by the node exactly as an order's; a transaction pays one
/// period only.
fn periods_paid_on_chain(db: Db) {
    let anvil = Anvil::start();
    let url = anvil.url.clone();
    let server = TestServer::start_with(db, move |c| {
        c.evm_rpc.insert(BASE_CHAIN_ID, url);
        c.confirmations = Some(1);
        c.payment_poll = std::time::Duration::from_secs(3600);
    });
    let pay_to = anvil.account(2).address;
    let rail = native_rail(BASE_CHAIN_ID, &pay_to.to_string());
    let s = seller_on(&server, |m| {
        listing_on(m, json!("none"), rail, "1000000000000000")
    });
    let payer = anvil.account(1);
    let key =
        MachineSigningKey::from_hex(payer.private_key.trim_start_matches("0x"), "dev key").unwrap();
    let bob = buyer_with_key(&server, key);
    let sub = subscribe(&server, &bob, &s.listing_id);
    let id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(sub["payment"]["rail"], "evm");
    assert_eq!(sub["payment"]["payer"], payer.address.to_string());
    let proof = |order: &str, hash: &str| {
        json!({"txHash": hash, "orderId": order, "chain": "base",
               "payerAddress": payer.address.to_string(), "payeeAddress": pay_to.to_string(),
               "amount": "0.001", "tokenAddress": null, "token": "ETH"})
    };
    let post = |order: &str, hash: &str| {
        server.send(
            "POST",
            &format!("/v1/orders/{order}/payment-proof"),
            None,
            &proof(order, hash),
        )
    };
    let first = unpaid_order(&sub);
    let hash = anvil
        .send_native(payer.address, pay_to, 1_000_000_000_000_000)
        .to_string();
    let (status, answer) = post(&first, &hash);
    assert_eq!(
        (status, answer["accepted"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    assert_eq!(show(&server, &id, &bob.token)["state"], "active");
    // The same transaction does not pay the renewal too.
    let (status, renewal) = act(&server, &id, "renewals", &bob.token, &json!({}));
    assert_eq!(status, 201, "{renewal}");
    let second = unpaid_order(&renewal);
    let (status, answer) = post(&second, &hash);
    assert_refused(status, &answer, 409, "txHash");
    // Underpaid: refused naming the amount, the period still unpaid.
    let short = anvil.send_native(payer.address, pay_to, 1_000).to_string();
    let (status, answer) = post(&second, &short);
    assert_eq!(status, 422, "{answer}");
    assert_eq!(unpaid_order(&show(&server, &id, &bob.token)), second);
    let paid = anvil
        .send_native(payer.address, pay_to, 1_000_000_000_000_000)
        .to_string();
    let (status, answer) = post(&second, &paid);
    assert_eq!(
        (status, answer["accepted"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    let renewed = show(&server, &id, &bob.token);
    assert_eq!(
        unix(&renewed["paidThrough"]) - unix(&renewed["activeFrom"]),
        2 * PERIOD
    );
}

/// Migration 0013: listings and orders made before it are dataset
/// listings and orders of no subscription.
fn older_listings_are_dataset_listings(db: Db) {
    let server = TestServer::start_prepared(
        db,
        |url| {
            let pool = common::migrate_below(db, url, 13);
            block_on(
                sqlx::query(
                    "INSERT INTO listings (id, owner_did, dataset_id, title, description, tags, \
                     sample_chunk_indexes, price_amount, price_key, rail, delivery, state, \
                     created_at, updated_at) VALUES ('ls_old', 'did:peaq:0x1', 'ds_old', 'Old', '', \
                     '[]', '[]', '5', '5', '{}', '[\"api\"]', 'draft', '2026-01-01T00:00:00Z', \
                     '2026-01-01T00:00:00Z')",
                )
                .execute(&pool),
            )
            .unwrap();
            block_on(
                sqlx::query(
                    "INSERT INTO orders (id, listing_id, dataset_id, seller_did, buyer_did, \
                     buyer_id, buyer_public_key_hex, amount, rail, state, created_at) VALUES \
                     ('ord_old', 'ls_old', 'ds_old', 's', 'b', 'b', '00', '5', '{}', 'paid', \
                     '2026-01-01T00:00:00Z')",
                )
                .execute(&pool),
            )
            .unwrap();
            block_on(pool.close());
        },
        |_| {},
    );
    let (kind, terms): (String, Option<String>) = block_on(
        sqlx::query_as("SELECT kind, subscription FROM listings WHERE id = 'ls_old'")
            .fetch_one(server.store.pool()),
    )
    .unwrap();
    assert_eq!((kind.as_str(), terms), ("dataset", None));
    let sub: Option<String> = block_on(
        sqlx::query_scalar("SELECT subscription_id FROM orders WHERE id = 'ord_old'")
            .fetch_one(server.store.pool()),
    )
    .unwrap();
    assert_eq!(sub, None);
}

/// The buyer's side through the typed client: the Follower opens the
/// chunks of the feed in order (the first one followed linked through the
/// envelope before it, read from the server) and refuses every tampered
/// event: another wrapped key, another envelope, a wrong link, another
/// chunk's ciphertext, a key wrapped to someone else.
fn the_follower_checks_every_chunk(db: Db) {
    use sealstream_client::live::{FollowError, Follower, Position};
    use sealstream_client::market::MarketClient;
    let (server, s) = started(db, json!("none"));
    let now = unix_now() as i64;
    let chunks = chain_at(&server, &s, &[now + 10, now + 20, now + 30, now + 40]);
    let alice = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &alice);
    let e = |i: usize| entry(&s, &chunks[i], &alice.did, &alice.recipient);
    grant_chunks(&server, &s, &id, (0..4).map(e).collect());
    let key = MachineSigningKey::from_hex(&alice.key.to_hex_secret(), "key").unwrap();
    let mut client = MarketClient::new(&server.base, key);
    let mut feed = client.subscription_feed(&id, None).unwrap();
    let mut events = Vec::new();
    while events.len() < 4 {
        match feed.next_event().unwrap().expect("an event") {
            FeedEvent::Chunk(c) => events.push(*c),
            FeedEvent::State(st) => assert_eq!(st.status, FeedStatus::Valid),
        }
    }
    drop(feed);
    let secret = || RecipientSecretKey::from_hex(&alice.recipient.to_hex_secret(), "x").unwrap();
    let refused = |f: &mut Follower, c: &FeedChunk, client: &mut MarketClient| -> String {
        match f.open(client, c) {
            Ok(_) => panic!("chunk {} was accepted", c.index),
            Err(e @ (FollowError::Chunk { .. } | FollowError::Decrypt { .. })) => e.to_string(),
            Err(e) => panic!("chunk {}: {e}", c.index),
        }
    };

    // From chunk 1 on: its link is checked against the server's chunk 0.
    let mut f = Follower::new(&id, secret(), None);
    for c in &events[1..] {
        let plain = f.open(&mut client, c).unwrap();
        assert_eq!(plain, format!("fix {}", c.index).into_bytes());
    }
    // In order from the start.
    let mut f = Follower::new(&id, secret(), None);
    assert_eq!(f.open(&mut client, &events[0]).unwrap(), b"fix 0");
    // Sent again: refused.
    assert!(refused(&mut f, &events[0], &mut client).contains("sent again"));

    let mut wrapped = events[1].clone();
    let mut hex = wrapped.buyer.wrapped_key_hex.into_bytes();
    hex[70] = if hex[70] == b'0' { b'1' } else { b'0' };
    wrapped.buyer.wrapped_key_hex = String::from_utf8(hex).unwrap();
    let mut other_envelope = events[1].clone();
    other_envelope.envelope = events[2].envelope.clone();
    let mut other_ciphertext = events[1].clone();
    other_ciphertext.ciphertext_path = events[2].ciphertext_path.clone();
    for (c, why) in [
        (&wrapped, "does not open"),
        (&other_envelope, "the envelope is chunk 2"),
        (&other_ciphertext, "encryptedDataHash"),
    ] {
        let mut f = Follower::new(&id, secret(), None);
        let message = refused(&mut f, c, &mut client);
        assert!(message.contains(why), "{message}");
        assert_eq!(f.last, None, "nothing accepted");
    }
    let wrong_link = Position {
        index: 0,
        chunk_id: chunks[2].envelope.chunk_id.clone(),
    };
    let mut f = Follower::new(&id, secret(), Some(wrong_link));
    assert!(refused(&mut f, &events[1], &mut client).contains("links to"));
    let mut f = Follower::new(&id, RecipientSecretKey::generate(), None);
    assert!(refused(&mut f, &events[0], &mut client).contains("not this buyer key"));
    // With several keys (after renewals with a new key), the one each
    // chunk is wrapped to opens it.
    let mut f = Follower::with_keys(&id, vec![RecipientSecretKey::generate(), secret()], None);
    assert_eq!(f.open(&mut client, &events[0]).unwrap(), b"fix 0");
}

/// The granter's loop with the typed client, as the seller: read the
/// pending pairs of the topic, wrap each chunk key to the key named, store
/// them; nothing is pending afterwards, and the buyer's key opens what was
/// stored.
fn the_client_grants_what_is_pending(db: Db) {
    use sealstream_api::subscriptions::{PostSubscriptionGrants, SubscriptionGrantEntry};
    use sealstream_client::market::MarketClient;

    let (server, s) = started(db, json!("all"));
    let now = unix_now() as i64;
    let chunks = chain_at(&server, &s, &[now - 30, now - 20, now + 100]);
    let carol = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &carol);
    let key = MachineSigningKey::from_hex(&s.key.to_hex_secret(), "owner key").unwrap();
    let mut client = MarketClient::new(&server.base, key);
    let pending = client
        .pending_subscription_grants(&s.machine.did, TOPIC, Some(2))
        .unwrap();
    assert_eq!(pending.items.len(), 2);
    assert!(pending.more, "3 pairs, 2 asked for");
    let all = client
        .pending_subscription_grants(&s.machine.did, TOPIC, None)
        .unwrap();
    assert_eq!(all.items.len(), 3);
    let entries = all
        .items
        .iter()
        .map(|p| {
            let buyer = CoreBuyer::new(&p.buyer_id, &p.buyer_public_key_hex).unwrap();
            let e = grant_entry(&chunks[p.index as usize].envelope, &s.recipient, &buyer).unwrap();
            SubscriptionGrantEntry::from_access(p.index, e)
        })
        .collect::<Vec<_>>();
    let stored = client
        .store_subscription_grants(
            &id,
            &PostSubscriptionGrants {
                entries: entries.clone(),
            },
        )
        .unwrap();
    assert_eq!((stored.stored, stored.already), (3, 0));
    let left = client
        .pending_subscription_grants(&s.machine.did, TOPIC, None)
        .unwrap();
    assert!(left.items.is_empty() && !left.more, "{left:?}");
    // The buyer's key opens each stored key, and it is the chunk's.
    for e in &entries {
        let key =
            sealstream_core::chunk::ChunkKey::unwrap(&e.buyer.wrapped_key_hex, &carol.recipient)
                .expect("the buyer's key opens it");
        assert_eq!(
            key.commitment(),
            chunks[e.index as usize].envelope.encryption.key_commitment
        );
    }
}

/// A period's payment short of its confirmations is held as a claim and
/// confirmed by the payment watcher, which activates the subscription.
fn a_period_confirmed_by_the_watcher(db: Db) {
    let anvil = Anvil::start();
    let url = anvil.url.clone();
    let server = TestServer::start_with(db, move |c| {
        c.evm_rpc.insert(BASE_CHAIN_ID, url);
        c.confirmations = Some(3);
        c.payment_poll = std::time::Duration::from_secs(3600);
    });
    let pay_to = anvil.account(2).address;
    let rail = native_rail(BASE_CHAIN_ID, &pay_to.to_string());
    let s = seller_on(&server, |m| listing_on(m, json!("none"), rail, "1000"));
    let payer = anvil.account(1);
    let key =
        MachineSigningKey::from_hex(payer.private_key.trim_start_matches("0x"), "dev key").unwrap();
    let dan = buyer_with_key(&server, key);
    let sub = subscribe(&server, &dan, &s.listing_id);
    let id = sub["id"].as_str().unwrap().to_string();
    let order = unpaid_order(&sub);
    let hash = anvil.send_native(payer.address, pay_to, 1000).to_string();
    let (status, answer) = server.send(
        "POST",
        &format!("/v1/orders/{order}/payment-proof"),
        None,
        &json!({"txHash": hash, "orderId": order, "chain": "base",
                "payerAddress": payer.address.to_string(), "payeeAddress": pay_to.to_string(),
                "amount": "0.000000000000001", "tokenAddress": null, "token": "ETH"}),
    );
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("awaiting-confirmations")),
        "{answer}"
    );
    assert_eq!(show(&server, &id, &dan.token)["state"], "awaiting-payment");
    anvil.mine(3);
    block_on(sealstream_market::orders::watcher::watch_once(
        &server.state,
    ))
    .expect("a sweep");
    let active = show(&server, &id, &dan.token);
    assert_eq!(active["state"], "active", "{active}");
    assert_eq!(
        events(&server, &id, &dan.token)
            .iter()
            .map(|(e, _, _)| e.as_str())
            .collect::<Vec<_>>(),
        ["created", "activated"]
    );
}

/// The manifest of `chunks` (a window), signed by the machine and its chain
/// key, uploaded by `token`; its dataset id.
fn upload_window(server: &TestServer, s: &Seller, chunks: &[SealedChunk], token: &str) -> String {
    let mut b = sealstream_core::dataset::DatasetBuilder::new();
    let mut plaintext = Vec::new();
    for c in chunks {
        b.push(&c.envelope).unwrap();
        plaintext.extend(format!("fix {}", c.envelope.index).into_bytes());
    }
    let mut m = b
        .finish(sealstream_core::dataset::DatasetInfo {
            topic: Some(TOPIC.into()),
            source_hash: sealstream_core::chunk::sha256_hex(&plaintext),
            ..Default::default()
        })
        .unwrap();
    m.sign_eip191(&s.machine.key).unwrap();
    m.sign_ed25519(&s.machine.chain_key).unwrap();
    let manifest: Value = serde_json::from_str(&m.to_pretty_json()).unwrap();
    let (status, body) = server.send(
        "POST",
        "/v1/datasets",
        Some(token),
        &json!({ "manifest": manifest }),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

fn a_buyer_reads_the_signed_windows_of_its_chunks(db: Db) {
    let (server, s) = started(db, json!("none"));
    let now = unix_now() as i64;
    let chunks = chain_at(
        &server,
        &s,
        &[now + 10, now + 20, now + 30, now + 40, now + 50, now + 60],
    );
    let alice = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &alice);
    let path = |q: &str| format!("/v1/subscriptions/{id}/datasets{q}");
    // Nothing granted yet: no window.
    let (status, body) = server.get(&path(""), Some(&alice.token));
    assert_eq!((status, body), (200, json!({"items": [], "more": false})));

    let machine_token = server.session_for(&s.machine.did, &[Role::Machine]);
    let w0 = upload_window(&server, &s, &chunks[0..2], &machine_token);
    let w1 = upload_window(&server, &s, &chunks[2..4], &s.token);
    let w2 = upload_window(&server, &s, &chunks[4..6], &machine_token);
    // A draft of the same topic is not the machine's word.
    let (status, body) = server.send(
        "POST",
        "/v1/datasets",
        Some(&s.token),
        &json!({"machineDid": s.machine.did, "topic": TOPIC, "fromIndex": 1, "toIndex": 2}),
    );
    assert_eq!(status, 201, "{body}");
    let e = |i: usize| entry(&s, &chunks[i], &alice.did, &alice.recipient);
    grant_chunks(&server, &s, &id, vec![e(0), e(1), e(2), e(3)]);

    let ids = |body: &Value| -> Vec<(String, u64, u64)> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["datasetId"].as_str().unwrap().to_string(),
                    d["firstIndex"].as_u64().unwrap(),
                    d["lastIndex"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // Windows 0 and 1 overlap the grants, window 2 does not (yet).
    let (status, body) = server.get(&path(""), Some(&alice.token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body),
        [(w0.clone(), 0, 1), (w1.clone(), 2, 3)],
        "{body}"
    );
    assert_eq!(body["more"], false);
    let manifest = sealstream_core::dataset::DatasetManifest::from_json(
        &sealstream_core::json::parse(body["items"][0]["manifest"].to_string().as_bytes()).unwrap(),
    )
    .unwrap();
    manifest.verify_signatures().unwrap();
    assert_eq!(manifest.first_chunk_id, chunks[0].envelope.chunk_id);
    let (_, body) = server.get(&path("?limit=1"), Some(&alice.token));
    assert_eq!(
        (ids(&body), &body["more"]),
        (vec![(w0.clone(), 0, 1)], &json!(true))
    );
    let (_, body) = server.get(&path("?after=1"), Some(&alice.token));
    assert_eq!(ids(&body), [(w1.clone(), 2, 3)]);
    let (_, body) = server.get(&path("?after=3"), Some(&alice.token));
    assert_eq!(ids(&body), []);
    grant_chunks(&server, &s, &id, vec![e(4)]);
    let (_, body) = server.get(&path("?after=3"), Some(&alice.token));
    assert_eq!(ids(&body), [(w2, 4, 5)]);

    // The seller: 403; anyone else: 404; bad queries name the field.
    let (status, _) = server.get(&path(""), Some(&s.token));
    assert_eq!(status, 403);
    let bob = buyer(&server);
    let (status, _) = server.get(&path(""), Some(&bob.token));
    assert_eq!(status, 404);
    for (q, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?after=x", "after"),
    ] {
        let (status, body) = server.get(&path(q), Some(&alice.token));
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{q}: {body}"
        );
    }
}

fn a_waiting_pending_list_answers_when_a_chunk_is_ingested(db: Db) {
    let (server, s, _, id, _) = subscribed(db, json!("none"));
    let chunks = write_chain_to(
        &s.machine,
        ChainState::new(),
        &[b"fix 0".to_vec()],
        s.recipient.public_key(),
    );
    let path = |q: &str| {
        format!(
            "/v1/machines/{}/topics/{}/subscription-grants{q}",
            path_segment(&s.machine.did),
            path_segment(TOPIC)
        )
    };
    // Nothing pending: the answer comes when the wait ends, empty.
    let start = std::time::Instant::now();
    let (status, body) = server.get(&path("?wait=1"), Some(&s.token));
    assert_eq!((status, &body["items"]), (200, &json!([])), "{body}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    for q in ["?wait=0", "?wait=61", "?wait=x"] {
        let (status, body) = server.get(&path(q), Some(&s.token));
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("wait")),
            "{q}: {body}"
        );
    }
    // A chunk ingested while it waits: the answer comes at once, with it.
    let machine_token = server.session_for(&s.machine.did, &[Role::Machine]);
    let (status, body, waited) = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            let (content_type, body) = common::multipart(&[
                (
                    "envelope",
                    "application/json",
                    chunks[0].envelope.to_pretty_json().as_bytes(),
                ),
                (
                    "ciphertext",
                    "application/octet-stream",
                    &chunks[0].ciphertext,
                ),
            ]);
            let (status, answer) = server.send_raw(
                "PUT",
                &format!(
                    "/v1/machines/{}/topics/{}/chunks/0",
                    s.machine.did,
                    path_segment(TOPIC)
                ),
                Some(&machine_token),
                &content_type,
                &body,
            );
            assert_eq!(status, 201, "{answer}");
        });
        let start = std::time::Instant::now();
        let (status, body) = server.get(&path("?wait=30"), Some(&s.token));
        (status, body, start.elapsed())
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["subscriptionId"], json!(id), "{body}");
    assert_eq!(body["items"][0]["index"], json!(0));
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    // Something pending: no wait at all.
    let start = std::time::Instant::now();
    let (_, body) = server.get(&path("?wait=30"), Some(&s.token));
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A seller whose machine wraps every chunk for an `operator` recipient
/// too, with that operator key registered with the server.
fn operator_seller(server: &TestServer, history: Value) -> (Seller, RecipientSecretKey) {
    use sealstream_core::chunk::Recipient;
    let operator = RecipientSecretKey::generate();
    let owner = RecipientSecretKey::generate();
    let (key, did) = new_owner();
    let token = server.session_for(&did, &[Role::Owner]);
    let machine = common::chains::insert_machine_with(
        server,
        &did,
        &[
            Recipient::new("owner-1", "owner", owner.public_key()),
            Recipient::new("operator-1", "operator", operator.public_key()),
        ],
    );
    let (status, listing) = server.send(
        "POST",
        "/v1/listings",
        Some(&token),
        &listing_body(&machine.did, history),
    );
    assert_eq!(status, 201, "{listing}");
    let id = listing["id"].as_str().unwrap().to_string();
    let (status, body) = server.send(
        "POST",
        &format!("/v1/listings/{id}/publish"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/machines/{}/operator-key", machine.did),
        Some(&token),
        &json!({"secretKeyHex": operator.to_hex_secret().to_string()}),
    );
    assert_eq!(status, 200, "{body}");
    let seller = Seller {
        key,
        did,
        token,
        machine,
        listing_id: id,
        recipient: owner,
    };
    (seller, operator)
}

/// Seals the chunks `from..from + n` of the seller's chain (wrapped for
/// the owner and the operator), continuing `state`.
fn operator_chunks(
    s: &Seller,
    state: ChainState,
    from: usize,
    n: usize,
    operator: &RecipientSecretKey,
) -> Vec<SealedChunk> {
    use sealstream_core::chunk::Recipient;
    let plaintexts: Vec<Vec<u8>> = (from..from + n)
        .map(|i| format!("fix {i}").into_bytes())
        .collect();
    common::chains::write_chain_for(
        &s.machine,
        state,
        &plaintexts,
        vec![
            Recipient::new("owner-1", "owner", s.recipient.public_key()),
            Recipient::new("operator-1", "operator", operator.public_key()),
        ],
    )
}

/// Uploads a chunk through the ingest route, as the machine's owner.
fn upload(server: &TestServer, s: &Seller, chunk: &SealedChunk) {
    let (content_type, body) = common::multipart(&[
        (
            "envelope",
            "application/json",
            chunk.envelope.to_pretty_json().as_bytes(),
        ),
        ("ciphertext", "application/octet-stream", &chunk.ciphertext),
    ]);
    let (status, answer) = server.send_raw(
        "PUT",
        &format!(
            "/v1/machines/{}/topics/{}/chunks/{}",
            s.machine.did,
            path_segment(TOPIC),
            chunk.envelope.index
        ),
        Some(&s.token),
        &content_type,
        &body,
    );
    assert!(status == 201 || status == 200, "{status}: {answer}");
}

/// Every subscription grant held: (subscription, index) → (buyer key,
/// wrapped key, granted by).
fn held_grants(
    server: &TestServer,
) -> std::collections::BTreeMap<(String, i64), (String, String, String)> {
    block_on(async {
        let rows: Vec<(String, i64, String, String, String)> = sqlx::query_as(
            "SELECT subscription_id, chunk_index, public_key_hex, wrapped_key_hex, granted_by \
             FROM subscription_grants",
        )
        .fetch_all(server.store.pool())
        .await
        .unwrap();
        rows.into_iter()
            .map(|(s, i, k, w, by)| ((s, i), (k, w, by)))
            .collect()
    })
}

/// Waits until the grants held are `want` (subscription, index) pairs
/// exactly, and stay so for a moment. The servers of the tests that call
/// it sweep for grants only every hour (`grant_sweep`), so what arrives
/// came from the wake-up; the deadline is only the test's patience.
fn wait_for_grants(server: &TestServer, want: &[(&str, i64)]) {
    let want: std::collections::BTreeSet<(String, i64)> =
        want.iter().map(|(s, i)| (s.to_string(), *i)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let held: std::collections::BTreeSet<(String, i64)> =
            held_grants(server).into_keys().collect();
        if held == want {
            std::thread::sleep(Duration::from_millis(300));
            let again: std::collections::BTreeSet<(String, i64)> =
                held_grants(server).into_keys().collect();
            assert_eq!(again, want, "granted more than entitled");
            return;
        }
        assert!(
            held.is_subset(&want),
            "granted a pair not entitled: {:?}",
            held.difference(&want).collect::<Vec<_>>()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never granted: held {held:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The chunk key `wrapped` opens with `key` and is chunk's.
fn opens(wrapped: &str, key: &RecipientSecretKey, chunk: &SealedChunk) -> bool {
    sealstream_core::chunk::ChunkKey::unwrap(wrapped, key)
        .is_some_and(|k| k.commitment() == chunk.envelope.encryption.key_commitment)
}

/// With an operator key registered, the server grants each chunk uploaded
/// after activation to the subscribers entitled to it, without any grant
/// daemon: woken by the upload, wrapped to the key in force (a rotated
/// key from its renewal on), nothing to a subscriber that has not paid or
/// was revoked, and audited as the operator's `subscription.grant`.
fn the_server_grants_subscriptions_with_an_operator_key(db: Db) {
    // The granter's periodic sweep is an hour away: every grant the test
    // sees came from an upload's or a payment's wake-up.
    let server = TestServer::start_with(db, |c| c.grant_sweep = Duration::from_secs(3_600));
    let (s, operator) = operator_seller(&server, json!("none"));
    let first = operator_chunks(&s, ChainState::new(), 0, 1, &operator);
    upload(&server, &s, &first[0]);
    // Chunk 0 comes a second before every activation (history none): it
    // is nobody's.
    std::thread::sleep(Duration::from_millis(1100));
    let alice = buyer(&server);
    let carol = buyer(&server);
    let dave = buyer(&server);
    let bob = buyer(&server);
    let (a, _) = paid_subscription(&server, &s, &alice);
    let (c, _) = paid_subscription(&server, &s, &carol);
    let (d, _) = paid_subscription(&server, &s, &dave);
    let unpaid = subscribe(&server, &bob, &s.listing_id);
    let b = unpaid["id"].as_str().unwrap().to_string();
    let state = ChainState::after(&first[0].envelope);
    let next = operator_chunks(&s, state, 1, 1, &operator);
    upload(&server, &s, &next[0]);
    wait_for_grants(&server, &[(&a, 1), (&c, 1), (&d, 1)]);
    let held = held_grants(&server);
    for (id, who) in [(&a, &alice), (&c, &carol), (&d, &dave)] {
        let (key, wrapped, by) = &held[&(id.clone(), 1)];
        assert_eq!(key, &who.recipient.public_key().to_hex());
        assert_eq!(by, "operator");
        assert!(opens(wrapped, &who.recipient, &next[0]));
    }
    assert!(audit_actions(&server, &a).contains(&"subscription.grant".to_string()));

    // Carol is revoked; Dave renews with a new key.
    revoke(&server, &s, &c);
    let rotated = RecipientSecretKey::generate();
    let (status, renewal) = act(
        &server,
        &d,
        "renewals",
        &dave.token,
        &json!({"buyerPublicKeyHex": rotated.public_key().to_hex()}),
    );
    assert_eq!(status, 201, "{renewal}");
    assert_eq!(
        mark_paid(&server, &unpaid_order(&renewal), &s.token, "INV-rot").0,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    let state = ChainState::after(&next[0].envelope);
    let later = operator_chunks(&s, state, 2, 1, &operator);
    upload(&server, &s, &later[0]);
    wait_for_grants(&server, &[(&a, 1), (&c, 1), (&d, 1), (&a, 2), (&d, 2)]);
    let held = held_grants(&server);
    let (key, wrapped, _) = &held[&(d.clone(), 2)];
    assert_eq!(key, &rotated.public_key().to_hex());
    assert!(opens(wrapped, &rotated, &later[0]));
    assert!(
        !opens(wrapped, &dave.recipient, &later[0]),
        "the old key opens nothing after the renewal"
    );
    assert!(!held.contains_key(&(b.clone(), 1)) && !held.contains_key(&(b, 2)));
    assert!(pending(&server, &s).is_empty());
}

/// A grant daemon and the server's granter racing on the same pairs:
/// each pair is stored once, the granter counts the daemon's as held, and
/// nothing is left pending.
fn a_grant_daemon_racing_the_server_is_harmless(db: Db) {
    let server = TestServer::start(db);
    let (s, operator) = operator_seller(&server, json!("all"));
    let alice = buyer(&server);
    let (a, _) = paid_subscription(&server, &s, &alice);
    let now = unix_now() as i64;
    // Inserted without the ingest route: nothing wakes the granter.
    let chunks = operator_chunks(&s, ChainState::new(), 0, 6, &operator);
    insert_chain(&server, &s.machine.did, TOPIC, &chunks, &[now; 6]);
    // The daemon is first on 0 and 1 (unless the granter's periodic sweep
    // came first: then its upload is refused whole, another wrapping held).
    let first = server.send(
        "PUT",
        &format!("/v1/subscriptions/{a}/grants"),
        Some(&s.token),
        &json!({"entries": [entry(&s, &chunks[0], &alice.did, &alice.recipient),
                            entry(&s, &chunks[1], &alice.did, &alice.recipient)]}),
    );
    assert!(first.0 == 200 || first.0 == 409, "{first:?}");
    // Then both at once on the rest: the daemon's upload either stores its
    // entries or is refused whole; the granter grants what is left.
    let rest = json!({"entries": (2..6)
        .map(|i| entry(&s, &chunks[i], &alice.did, &alice.recipient))
        .collect::<Vec<_>>()});
    let daemon = std::thread::scope(|scope| {
        let daemon = scope.spawn(|| {
            server.send(
                "PUT",
                &format!("/v1/subscriptions/{a}/grants"),
                Some(&s.token),
                &rest,
            )
        });
        block_on(sealstream_market::operator_key::grant_once(&server.state)).expect("a sweep");
        daemon.join().unwrap()
    });
    assert!(daemon.0 == 200 || daemon.0 == 409, "{daemon:?}");
    if daemon.0 == 409 {
        assert!(
            daemon.1["error"]["field"]
                .as_str()
                .unwrap()
                .ends_with(".buyer.wrappedKeyHex"),
            "{daemon:?}"
        );
    }
    // A second sweep stores what a lost race left (nothing, normally).
    block_on(sealstream_market::operator_key::grant_once(&server.state)).expect("a sweep");
    let held = held_grants(&server);
    assert_eq!(held.len(), 6, "{held:?}");
    for i in 0..6 {
        let (_, wrapped, by) = &held[&(a.clone(), i)];
        assert!(opens(wrapped, &alice.recipient, &chunks[i as usize]));
        if i < 2 && first.0 == 200 {
            assert_eq!(by, &s.did, "the daemon's grant stays");
        }
    }
    assert_eq!(
        block_on(sealstream_market::operator_key::grant_once(&server.state)).unwrap(),
        0,
        "nothing left"
    );
    assert!(pending(&server, &s).is_empty());
}

/// Grants stored out of index order (two granters at once) never make a
/// feed skip a chunk: a chunk whose predecessors are not all granted waits
/// for them, and a follower sees every index in order.
fn the_feed_waits_for_grants_stored_out_of_order(db: Db) {
    let (server, s) = started(db, json!({"lastChunks": 1}));
    let now = unix_now() as i64;
    // 0 before the start (not covered), 1 the history chunk, 2..=4 live.
    let chunks = chain_at(
        &server,
        &s,
        &[now - 20, now - 10, now + 10, now + 20, now + 30],
    );
    let alice = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &alice);
    let e = |i: usize| entry(&s, &chunks[i], &alice.did, &alice.recipient);
    // 3 first: nothing is sent, 1 is missing below it.
    grant_chunks(&server, &s, &id, vec![e(3)]);
    let feed = open_feed(&server, &id, &alice.token, "", None).expect("a feed");
    assert_eq!(feed.state().status, FeedStatus::Valid);
    feed.quiet(Duration::from_millis(500));
    // 1 (the window's lowest index): sent; 3 still waits for 2.
    grant_chunks(&server, &s, &id, vec![e(1)]);
    assert_eq!(feed.chunk().index, 1);
    feed.quiet(Duration::from_millis(500));
    // A feed resumed after 1 waits as well.
    let resumed = open_feed(&server, &id, &alice.token, "?after=1", None).expect("a feed");
    resumed.state();
    resumed.quiet(Duration::from_millis(300));
    grant_chunks(&server, &s, &id, vec![e(2)]);
    for f in [&feed, &resumed] {
        let got: Vec<u64> = (0..2).map(|_| f.chunk().index).collect();
        assert_eq!(got, [2, 3]);
    }
    grant_chunks(&server, &s, &id, vec![e(4)]);
    let c = feed.chunk();
    assert_eq!(c.index, 4);
    assert_eq!(
        open_chunk(&server, &alice.token, &c, &alice.recipient),
        b"fix 4".to_vec()
    );
    assert_eq!(resumed.chunk().index, 4);
}

/// The cut-off notice of `id` as `token` reads it: the status and, on
/// 200, the notice read strictly.
fn cutoff_of(
    server: &TestServer,
    id: &str,
    token: &str,
) -> (u16, Option<sealstream_api::receipts::SignedCutoff>) {
    let (status, body) = server.get(&format!("/v1/subscriptions/{id}/cutoff"), Some(token));
    let notice = (status == 200).then(|| {
        sealstream_api::receipts::SignedCutoff::parse(body.to_string().as_bytes())
            .expect("a notice")
    });
    (status, notice)
}

/// Every final state gets a signed cut-off notice once its access has
/// ended: lapsed (E = T + G, by the sweep), revoked (E = now), cancelled
/// after payment (E = T, issued once T has passed) and before it (E = now,
/// entitled to nothing), each with the highest index entitled and E,
/// verifiable with the published receipt key; a changed notice fails; the
/// buyer and the seller read it, nobody else, and nobody before it is due.
fn cut_off_notices_for_every_final_state(db: Db) {
    use sealstream_api::receipts::{CutoffReason, ReceiptError, SignedCutoff};
    let (server, s) = started(db, json!({"lastChunks": 1}));
    let now = unix_now() as i64;
    // 0 and 1 before every start (1 in the history), 2 live, 3 in a
    // lapsing subscription's grace, 4 after it.
    chain_at(
        &server,
        &s,
        &[
            now - 100,
            now - 50,
            now + 10,
            now + PERIOD + GRACE - 1,
            now + PERIOD + GRACE + 5,
        ],
    );
    let (alice, carol, dave, bob) = (
        buyer(&server),
        buyer(&server),
        buyer(&server),
        buyer(&server),
    );
    let (a, a_view) = paid_subscription(&server, &s, &alice);
    let (c, _) = paid_subscription(&server, &s, &carol);
    let (d, d_view) = paid_subscription(&server, &s, &dave);
    let b = subscribe(&server, &bob, &s.listing_id)["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Not final: no notice, to anyone.
    assert_eq!(cutoff_of(&server, &a, &alice.token).0, 404);
    assert_eq!(cutoff_of(&server, &a, &s.token).0, 404);

    revoke(&server, &s, &c);
    for (id, who) in [(&d, &dave), (&b, &bob)] {
        let (status, body) = act(&server, id, "cancel", &who.token, &json!({}));
        assert_eq!(status, 200, "{body}");
    }
    // Cancelled after payment: access runs to T, no notice before.
    assert_eq!(cutoff_of(&server, &d, &dave.token).0, 404);
    let t_a = unix(&a_view["paidThrough"]);
    let t_d = unix(&d_view["paidThrough"]);
    let at = now + PERIOD + GRACE + 1000;
    sweep(&server, at);

    let (status, body) = server.get("/v1/receipts/key", None);
    assert_eq!(status, 200);
    let key = sealstream_core::keys::ReceiptPublicKey::from_hex(
        body["publicKeyHex"].as_str().unwrap(),
        "publicKeyHex",
    )
    .unwrap();
    let carol_end = unix(&show(&server, &c, &carol.token)["accessEnds"]);
    let bob_end = unix(&show(&server, &b, &bob.token)["accessEnds"]);
    for (id, who, reason, last, end) in [
        (&a, &alice, CutoffReason::Lapsed, Some(3), t_a + GRACE),
        (&c, &carol, CutoffReason::Revoked, Some(1), carol_end),
        (&d, &dave, CutoffReason::Cancelled, Some(2), t_d),
        (&b, &bob, CutoffReason::Cancelled, None, bob_end),
    ] {
        let (status, notice) = cutoff_of(&server, id, &who.token);
        assert_eq!(status, 200, "{id}");
        let notice = notice.unwrap();
        notice.verify(Some(&key)).expect("signed by the market");
        let n = &notice.cutoff;
        assert_eq!(
            (n.subscription_id.as_str(), n.reason, n.last_index_entitled),
            (id.as_str(), reason, last),
            "{id}"
        );
        assert_eq!(unix(&json!(n.effective_at)), end, "{id}");
        assert!(unix(&json!(n.issued_at)) >= end, "{id}");
        assert_eq!(
            (
                n.buyer_did.as_str(),
                n.seller_did.as_str(),
                n.listing_id.as_str()
            ),
            (who.did.as_str(), s.did.as_str(), s.listing_id.as_str())
        );
        // The seller reads the same notice; nobody else does.
        assert_eq!(cutoff_of(&server, id, &s.token).1, Some(notice.clone()));
        let stranger = if *id == a { &carol } else { &alice };
        assert_eq!(cutoff_of(&server, id, &stranger.token), (404, None));
        // Issued once, audited once.
        let actions = audit_actions(&server, id);
        assert_eq!(
            actions
                .iter()
                .filter(|a| *a == "subscription.cutoff")
                .count(),
            1,
            "{actions:?}"
        );
        // A changed notice does not verify.
        let mut bent = notice.clone();
        bent.cutoff.last_index_entitled = Some(99);
        assert_eq!(bent.verify(None), Err(ReceiptError::BadSignature));
        let text = notice.to_json_pretty().replace(reason.as_str(), "lapsed");
        if reason != CutoffReason::Lapsed {
            let read = SignedCutoff::parse(text.as_bytes()).unwrap();
            assert_eq!(read.verify(Some(&key)), Err(ReceiptError::BadSignature));
        }
    }
    assert_eq!(
        carol_end,
        unix(&json!(
            cutoff_of(&server, &c, &carol.token)
                .1
                .unwrap()
                .cutoff
                .effective_at
        ))
    );
    assert!(carol_end >= now && carol_end < at);
    // The revoked subscription's detail is the seller's reason.
    assert_eq!(
        cutoff_of(&server, &c, &carol.token)
            .1
            .unwrap()
            .cutoff
            .detail,
        "end of contract"
    );
}

/// The operator's shortest period (`Config::min_subscription_period`,
/// `market serve --min-subscription-period`): a listing at it is taken, one
/// below it is a 400 naming `subscription.periodSeconds`; by default it is
/// an hour.
fn the_shortest_period_is_the_operators_policy(db: Db) {
    let body = |machine: &str, period: i64| {
        let mut b = listing_body(machine, json!("none"));
        b["subscription"]["periodSeconds"] = json!(period);
        b
    };
    let short = TestServer::start_with(db, |c| {
        c.min_subscription_period = Duration::from_secs(20);
    });
    let (_, did) = new_owner();
    let token = short.session_for(&did, &[Role::Owner]);
    let machine = insert_machine(&short, &did);
    let (status, listing) = short.send(
        "POST",
        "/v1/listings",
        Some(&token),
        &body(&machine.did, 20),
    );
    assert_eq!(status, 201, "{listing}");
    assert_eq!(listing["subscription"]["periodSeconds"], 20);
    let (status, refused) = short.send(
        "POST",
        "/v1/listings",
        Some(&token),
        &body(&machine.did, 19),
    );
    assert_refused(status, &refused, 400, "subscription.periodSeconds");
    drop(short);
    let server = TestServer::start(db);
    let token = server.session_for(&did, &[Role::Owner]);
    let machine = insert_machine(&server, &did);
    let (status, refused) = server.send(
        "POST",
        "/v1/listings",
        Some(&token),
        &body(&machine.did, 3599),
    );
    assert_refused(status, &refused, 400, "subscription.periodSeconds");
    let (status, _) = server.send(
        "POST",
        "/v1/listings",
        Some(&token),
        &body(&machine.did, 3600),
    );
    assert_eq!(status, 201);
}

/// Issue 24: a live feed served by one replica hears of what is done on
/// another (PostgreSQL `LISTEN/NOTIFY`, `wake`): grants stored through the
/// first replica reach a feed open on the second, and so does a change of
/// the subscription made on the first. Without the wake-ups the feed would
/// wait for its subscription's next time-driven change, an hour away, and
/// the test's patience (20 s per event) would run out.
#[test]
fn a_feed_hears_of_what_another_replica_does() {
    let (server, s) = started(Db::Postgres, json!("none"));
    let other = server.replica(|c| c.replica_id = Some("second".into()));
    let bob = buyer(&server);
    let (id, _) = paid_subscription(&server, &s, &bob);
    let now = unix_now() as i64;
    let chunks = chain_at(&server, &s, &[now + 60, now + 120]);
    let feed = open_feed(&other, &id, &bob.token, "", None).expect("a feed");
    let st = feed.state();
    assert_eq!(
        (st.status, st.state),
        (FeedStatus::Valid, SubscriptionState::Active)
    );
    let e = |i: usize| entry(&s, &chunks[i], &bob.did, &bob.recipient);
    grant_chunks(&server, &s, &id, vec![e(0)]);
    assert_eq!(feed.chunk().index, 0);
    let (status, _) = act(&server, &id, "cancel", &bob.token, &json!({}));
    assert_eq!(status, 200);
    assert_eq!(feed.state().state, SubscriptionState::Cancelled);
    grant_chunks(&server, &s, &id, vec![e(1)]);
    assert_eq!(feed.chunk().index, 1);
}

/// Feeds' reads of their grants, gathered into one statement on PostgreSQL
/// (`subscriptions::feed_reads`), answer each read with its own rows: the
/// same as the read answered alone, at most its limit, none of another
/// subscription's or topic's.
///
/// On a runtime of one thread, reads queued together are taken together
/// (the reader runs once every one of them waits): one statement for all.
#[test]
fn gathered_feed_reads_answer_each_feed_its_own() {
    use sealstream_market::subscriptions::feed_reads::{FeedReads, GrantedRead};
    let (server, s) = started(Db::Postgres, json!("none"));
    let buyers: Vec<Buyer> = (0..4).map(|_| buyer(&server)).collect();
    let ids: Vec<String> = buyers
        .iter()
        .map(|b| paid_subscription(&server, &s, b).0)
        .collect();
    let now = unix_now() as i64;
    let chunks = chain_at(&server, &s, &[now + 60, now + 120, now + 180]);
    // Subscription i holds chunks 0..i: the first none, the last all three.
    let mut held: Vec<Vec<(u64, String)>> = Vec::new();
    for (i, (id, b)) in ids.iter().zip(&buyers).enumerate() {
        let entries: Vec<Value> = chunks[..i]
            .iter()
            .map(|c| entry(&s, c, &b.did, &b.recipient))
            .collect();
        held.push(
            entries
                .iter()
                .map(|e| {
                    let wrapped = e["buyer"]["wrappedKeyHex"].as_str().unwrap().to_string();
                    (e["index"].as_u64().unwrap(), wrapped)
                })
                .collect(),
        );
        if !entries.is_empty() {
            grant_chunks(&server, &s, id, entries);
        }
    }
    let topic = TOPIC.to_string();
    let read = |id: &str, topic: &str, after: i64, limit: i64| {
        let r = GrantedRead {
            id: id.to_string(),
            machine_did: s.machine.did.clone(),
            topic: topic.to_string(),
            after,
        };
        (r, limit)
    };
    let mut reads = Vec::new();
    let mut expected: Vec<Vec<(u64, String)>> = Vec::new();
    for (id, held) in ids.iter().zip(&held) {
        reads.push(read(id, &topic, -1, 10));
        expected.push(held.clone());
    }
    reads.push(read(&ids[3], &topic, 0, 10));
    expected.push(held[3][1..].to_vec());
    reads.push(read(&ids[3], &topic, -1, 1));
    expected.push(held[3][..1].to_vec());
    reads.push(read(&ids[2], "another/topic", -1, 10));
    expected.push(Vec::new());
    reads.push(read("sub_unknown", &topic, -1, 10));
    expected.push(Vec::new());
    let n = reads.len() as u64;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (alone, together, counts) = runtime.block_on(async {
        let store = sealstream_market::store::Store::open(&server.database_url)
            .await
            .unwrap();
        let reader = FeedReads::default();
        let mut alone = Vec::new();
        for (r, limit) in &reads {
            alone.push(
                reader
                    .granted_chunks(&store, r.clone(), *limit)
                    .await
                    .unwrap(),
            );
        }
        let together = futures_util::future::join_all(
            reads
                .iter()
                .map(|(r, limit)| reader.granted_chunks(&store, r.clone(), *limit)),
        )
        .await;
        let together: Vec<_> = together.into_iter().map(Result::unwrap).collect();
        (alone, together, reader.counts())
    });
    assert_eq!(together, alone);
    let found: Vec<Vec<(u64, String)>> = together
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|(c, g)| (c.index, g.wrapped_key_hex.clone()))
                .collect()
        })
        .collect();
    assert_eq!(found, expected);
    for (rows, (r, _)) in together.iter().zip(&reads) {
        for (_, g) in rows {
            let b = &buyers[ids.iter().position(|id| *id == r.id).unwrap()];
            assert_eq!(g.public_key_hex, b.recipient.public_key().to_hex());
        }
    }
    // Every read gathered: one statement each alone, then one for all.
    assert_eq!(counts.gathered, 2 * n);
    assert_eq!(counts.alone, 0);
    assert_eq!(counts.statements, n + 1);
}

/// The granter keeps each subscription's count of the chunks before its
/// activation between passes and counts only the chunks stored since: a
/// chunk stamped before the activation but stored after a pass (an upload
/// that waited for its commit) still counts, as a fresh count would.
fn a_late_chunk_before_the_activation_is_counted(db: Db) {
    let (server, s, _bob, id, view) = subscribed(db, json!({"lastChunks": 1}));
    let at = unix(&view["activeFrom"]);
    let plaintexts: Vec<Vec<u8>> = (0..4).map(|i| format!("fix {i}").into_bytes()).collect();
    let chunks = write_chain_to(
        &s.machine,
        ChainState::new(),
        &plaintexts,
        s.recipient.public_key(),
    );
    let indexes = |server: &TestServer| -> Vec<u64> {
        pending(server, &s)
            .into_iter()
            .filter(|(sub, _, _)| *sub == id)
            .map(|(_, index, _)| index)
            .collect()
    };
    // Two chunks before the activation: the last of them is the history.
    insert_chain(
        &server,
        &s.machine.did,
        TOPIC,
        &chunks[..2],
        &[at - 100, at - 50],
    );
    assert_eq!(indexes(&server), vec![1]);
    // A third, stamped before the activation, stored after that pass:
    // three chunks before it now, and the history is the third.
    insert_chain(&server, &s.machine.did, TOPIC, &chunks[2..3], &[at - 1]);
    assert_eq!(indexes(&server), vec![2]);
    // A live one after it.
    insert_chain(&server, &s.machine.did, TOPIC, &chunks[3..], &[at + 10]);
    assert_eq!(indexes(&server), vec![2, 3]);
}

on_both_databases!(
    a_late_chunk_before_the_activation_is_counted,
    the_shortest_period_is_the_operators_policy,
    cut_off_notices_for_every_final_state,
    the_feed_waits_for_grants_stored_out_of_order,
    the_server_grants_subscriptions_with_an_operator_key,
    a_grant_daemon_racing_the_server_is_harmless,
    a_period_confirmed_by_the_watcher,
    the_client_grants_what_is_pending,
    older_listings_are_dataset_listings,
    periods_paid_on_chain,
    lifecycle_on_invoice,
    a_renewal_in_grace_continues_without_a_gap,
    cancel_and_revoke,
    refusals_name_the_field,
    only_the_buyer_and_the_seller_see_it,
    entitled_pairs_and_grants,
    a_rotated_key_applies_from_its_renewal,
    the_feed_sends_grants_in_order_resumes_and_ends,
    a_final_feed_waits_for_the_chunks_still_due,
    a_chunk_granted_before_a_revocation_counts_in_its_notice,
    a_feed_is_its_buyers_only,
    the_follower_checks_every_chunk,
    a_buyer_reads_the_signed_windows_of_its_chunks,
    a_waiting_pending_list_answers_when_a_chunk_is_ingested,
);
