//! Operator keys on both databases (issue 7): an owner who opts in
//! registers the secret of a machine's `operator` recipient, and the server
//! grants paid orders of that machine's datasets itself — re-wrapping each
//! chunk key from the operator entry to the buyer, never re-encrypting —
//! so the buyer's release package decrypts without any grant daemon.
//! Refused registrations (malformed, unknown field, not the operator's
//! secret, not the owner) name the field, never echo the secret and store
//! nothing; a revoked key grants nothing; the sealed key survives a
//! restart.

mod common;

use std::time::{Duration, Instant};

use common::listings_fixtures::audit_actions;
use common::orders_fixtures::{
    buyer, decrypt_release, download_release, invoice_rail, paid_order, sale_with_operator, Buyer,
    Sale,
};
use common::{block_on, Db, TestServer};
use sealstream_core::keys::RecipientSecretKey;
use sealstream_market::auth::Role;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

fn key_path(sale: &Sale) -> String {
    format!("/v1/machines/{}/operator-key", sale.machine.did)
}

/// The order as its buyer sees it.
fn order_view(server: &TestServer, buyer: &Buyer, id: &str) -> Value {
    let (status, body) = server.get(&format!("/v1/orders/{id}"), Some(&buyer.token));
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the server's granter has granted `id` (an outcome, not a
/// time: the deadline only bounds a broken run).
fn wait_granted(server: &TestServer, buyer: &Buyer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = order_view(server, buyer, id);
        if view["state"] == "granted" {
            return view;
        }
        assert!(Instant::now() < deadline, "never granted: {view}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn register(server: &TestServer, sale: &Sale, token: &str, body: &Value) -> (u16, Value) {
    server.send("PUT", &key_path(sale), Some(token), body)
}

fn assert_refused(reply: (u16, Value), status: u16, field: &str, secret: &str) {
    assert_eq!(
        (reply.0, reply.1["error"]["field"].as_str()),
        (status, Some(field)),
        "{}",
        reply.1
    );
    assert!(
        !reply.1.to_string().contains(&secret[..16]),
        "the answer quotes the secret: {}",
        reply.1
    );
}

fn operator_keys_grant_paid_orders(db: Db) {
    let mut server = TestServer::start(db);
    let operator = RecipientSecretKey::generate();
    let sale = sale_with_operator(&server, 5, "900", invoice_rail(), operator.public_key());
    let secret = operator.to_hex_secret().to_string();

    // Refusals: nothing stored, nothing quoted.
    let owner_secret = sale.owner_recipient.to_hex_secret().to_string();
    assert_refused(
        register(
            &server,
            &sale,
            &sale.owner,
            &json!({"secretKeyHex": owner_secret}),
        ),
        422,
        "secretKeyHex",
        &owner_secret,
    );
    let short = &secret[..40];
    assert_refused(
        register(&server, &sale, &sale.owner, &json!({"secretKeyHex": short})),
        400,
        "secretKeyHex",
        short,
    );
    assert_refused(
        register(
            &server,
            &sale,
            &sale.owner,
            &json!({"secretKeyHex": secret, "publicKeyHex": "00"}),
        ),
        400,
        "publicKeyHex",
        &secret,
    );
    let stranger = server.session_for(
        &sealstream_core::identity::Did::of_key(
            &sealstream_core::keys::MachineSigningKey::generate(),
        )
        .to_string(),
        &[Role::Owner],
    );
    let (status, body) = register(&server, &sale, &stranger, &json!({"secretKeyHex": secret}));
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        format!("machine {} not found", sale.machine.did)
    );
    assert_eq!(server.count_rows("operator_keys"), 0);
    let (status, _) = server.get(&key_path(&sale), Some(&sale.owner));
    assert_eq!(status, 404);

    // Registered: the public half is answered, the secret sealed at rest.
    let (status, view) = register(
        &server,
        &sale,
        &sale.owner,
        &json!({"secretKeyHex": secret}),
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["publicKeyHex"], operator.public_key().to_hex());
    assert_eq!(view["recipientId"], "operator-1");
    assert!(!view.to_string().contains(&secret), "{view}");
    let sealed: String = block_on(
        sqlx::query_scalar("SELECT sealed_secret FROM operator_keys WHERE machine_did = $1")
            .bind(&sale.machine.did)
            .fetch_one(server.store.pool()),
    )
    .unwrap();
    assert!(!sealed.contains(&secret), "stored in the clear");
    assert_eq!(
        audit_actions(&server, &sale.machine.did),
        ["operator_key.register"]
    );

    // A paid order is granted by the server, and decrypts for its buyer.
    let alice = buyer(&server);
    let first = paid_order(&server, &sale, &alice);
    wait_granted(&server, &alice, &first);
    let (status, grant) = server.get(&format!("/v1/orders/{first}/grant"), Some(&sale.owner));
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["grantedBy"], "operator");
    assert_eq!(grant["entries"], 5);
    let dir = tempfile::tempdir().unwrap();
    let base = format!("/v1/orders/{first}/release");
    download_release(&server, &base, Some(&alice.token), "", dir.path());
    assert_eq!(
        decrypt_release(dir.path(), &alice.did, &alice.recipient),
        sale.source()
    );
    let actions = audit_actions(&server, &first);
    assert_eq!(
        actions.iter().filter(|a| *a == "grant.issue").count(),
        1,
        "{actions:?}"
    );
    // The grant daemon's turn comes too late: granted once.
    let (status, again) = server.send(
        "PUT",
        &format!("/v1/orders/{first}/grant"),
        Some(&sale.owner),
        &json!({"files": [{"schemaVersion": "x"}]}),
    );
    assert_eq!(
        (status, again["granted"].as_bool()),
        (200, Some(false)),
        "{again}"
    );

    // The keys the granter opened are kept for the dataset's next order,
    // which is granted from them alone and decrypts for its buyer.
    assert_eq!(server.state.opened_keys.datasets(), 1);
    let carol = buyer(&server);
    let third = paid_order(&server, &sale, &carol);
    wait_granted(&server, &carol, &third);
    let dir = tempfile::tempdir().unwrap();
    download_release(
        &server,
        &format!("/v1/orders/{third}/release"),
        Some(&carol.token),
        "",
        dir.path(),
    );
    assert_eq!(
        decrypt_release(dir.path(), &carol.did, &carol.recipient),
        sale.source()
    );

    // Revoked: the kept keys are forgotten, and the next paid order waits
    // for the owner.
    let (status, _) = server.send("DELETE", &key_path(&sale), Some(&sale.owner), &json!({}));
    assert_eq!(status, 204);
    assert_eq!(server.count_rows("operator_keys"), 0);
    assert_eq!(server.state.opened_keys.datasets(), 0);
    let bob = buyer(&server);
    let second = paid_order(&server, &sale, &bob);
    let granted = block_on(sealstream_market::operator_key::grant_once(&server.state)).unwrap();
    assert_eq!(granted, 0);
    assert_eq!(order_view(&server, &bob, &second)["state"], "paid");

    // Registered again (waking the granter): the waiting order is granted.
    let (status, _) = register(
        &server,
        &sale,
        &sale.owner,
        &json!({"secretKeyHex": secret}),
    );
    assert_eq!(status, 200);
    wait_granted(&server, &bob, &second);

    // After a restart the sealed key still opens.
    server.restart();
    let carol = buyer(&server);
    let third = paid_order(&server, &sale, &carol);
    wait_granted(&server, &carol, &third);
    let dir = tempfile::tempdir().unwrap();
    let base = format!("/v1/orders/{third}/release");
    download_release(&server, &base, Some(&carol.token), "", dir.path());
    assert_eq!(
        decrypt_release(dir.path(), &carol.did, &carol.recipient),
        sale.source()
    );
    assert_eq!(
        audit_actions(&server, &sale.machine.did),
        [
            "operator_key.register",
            "operator_key.revoke",
            "operator_key.register"
        ]
    );
}

fn a_machine_without_an_operator_recipient_is_refused(db: Db) {
    let server = TestServer::start(db);
    let sale = common::orders_fixtures::sale(&server, 2, "10", invoice_rail());
    let secret = RecipientSecretKey::generate().to_hex_secret().to_string();
    let reply = register(
        &server,
        &sale,
        &sale.owner,
        &json!({"secretKeyHex": secret}),
    );
    assert_refused(reply, 422, "did", &secret);
    assert_eq!(server.count_rows("operator_keys"), 0);
}

on_both_databases!(
    operator_keys_grant_paid_orders,
    a_machine_without_an_operator_recipient_is_refused,
);
