//! Anti-correlation (issue 21, part 6) on both databases: listing prices
//! snap to the operator's ladder; a sale does not show in public numbers
//! (the listing's and the catalog's sales bucket) before the delay; with a
//! grant batching window, the server's granter leaves paid orders for the
//! window's boundary.

mod common;

use std::time::{Duration, Instant};

use common::orders_fixtures::{buyer, invoice_rail, paid_order, sale, sale_with_operator};
use common::{block_on, Db, TestServer};
use sealstream_core::keys::RecipientSecretKey;
use sealstream_testkit::on_both_databases;
use serde_json::json;

fn prices_snap_to_the_ladder(db: Db) {
    let server = TestServer::start_with(db, |c| c.price_ladder = vec![100, 200, 500]);
    let sale = sale(&server, 2, "1234", invoice_rail());
    let (status, listing) = server.get(&format!("/v1/listings/{}", sale.listing_id), None);
    assert_eq!(status, 200);
    assert_eq!(listing["price"], "1000", "{listing}");
    let (status, listing) = server.send(
        "PATCH",
        &format!("/v1/listings/{}", sale.listing_id),
        Some(&sale.owner),
        &json!({"price": "3600"}),
    );
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["price"], "5000");
    // An order pays the snapped price.
    let alice = buyer(&server);
    let (status, order) = server.send(
        "POST",
        "/v1/orders",
        Some(&alice.token),
        &json!({"listingId": sale.listing_id,
                "buyerPublicKeyHex": alice.recipient.public_key().to_hex()}),
    );
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["payment"]["amount"], "5000", "{order}");
}

fn sales_show_in_public_only_after_the_delay(db: Db) {
    let server = TestServer::start(db);
    let delay = server.config.public_stats_delay;
    let sale = sale(&server, 2, "700", invoice_rail());
    let alice = buyer(&server);
    paid_order(&server, &sale, &alice);
    let bucket = |server: &TestServer| {
        let (_, listing) = server.get(&format!("/v1/listings/{}", sale.listing_id), None);
        let (_, catalog) = server.get("/v1/catalog?limit=100", None);
        let card = catalog["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == sale.listing_id.as_str())
            .cloned()
            .unwrap();
        (
            listing["sales"].as_str().unwrap().to_string(),
            card["salesBucket"].as_str().unwrap_or_default().to_string(),
        )
    };
    let now = sealstream_core::utc::now_unix();
    // The stats job at any time before the delay has passed: still 0.
    for at in [now, now + delay.as_secs() as i64 - 5] {
        block_on(sealstream_market::listings::stats::publish(
            &server.store,
            at,
            delay,
        ))
        .unwrap();
        assert_eq!(bucket(&server), ("0".into(), "0".into()), "at {at}");
    }
    // Once the delay has passed, the sale counts.
    block_on(sealstream_market::listings::stats::publish(
        &server.store,
        now + delay.as_secs() as i64 + 5,
        delay,
    ))
    .unwrap();
    assert_eq!(bucket(&server), ("1-10".into(), "1-10".into()));
}

fn grants_wait_for_the_batch_window(db: Db) {
    // A window so long that its next boundary is years away: the granter
    // must not grant the order by itself.
    let server = TestServer::start_with(db, |c| {
        c.grant_batch_window = Duration::from_secs(1_000_000_000)
    });
    let operator = RecipientSecretKey::generate();
    let sale = sale_with_operator(&server, 3, "900", invoice_rail(), operator.public_key());
    let (status, body) = server.send(
        "PUT",
        &format!("/v1/machines/{}/operator-key", sale.machine.did),
        Some(&sale.owner),
        &json!({"secretKeyHex": operator.to_hex_secret().to_string()}),
    );
    assert_eq!(status, 200, "{body}");
    let alice = buyer(&server);
    let id = paid_order(&server, &sale, &alice);
    let state = |server: &TestServer| {
        let (_, o) = server.get(&format!("/v1/orders/{id}"), Some(&alice.token));
        o["state"].as_str().unwrap().to_string()
    };
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(
            state(&server),
            "paid",
            "granted before the window's boundary"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The boundary's batch (what the granter runs then) grants it.
    let granted = block_on(sealstream_market::operator_key::grant_once(&server.state)).unwrap();
    assert_eq!(granted, 1);
    assert_eq!(state(&server), "granted");
}

on_both_databases!(
    prices_snap_to_the_ladder,
    sales_show_in_public_only_after_the_delay,
    grants_wait_for_the_batch_window
);
