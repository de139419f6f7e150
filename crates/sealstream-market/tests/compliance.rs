//! Compliance presets (issue 21) on both databases: a listing declares the
//! jurisdictions it sells to, its data classes, a retention notice and an
//! attestation; orders that do not meet it are refused with the reason
//! (the field named), nothing stored; an accepted order records the preset
//! and its hash, and its receipts (v1, and v2 where the record is a 22nd
//! field that can be disclosed) carry them, signed.

mod common;

use common::listings_fixtures::count;
use common::orders_fixtures::{buyer, invoice_rail, mark_paid, sale};
use common::{assert_refused, Db, TestServer};
use sealstream_api::compliance::CompliancePreset;
use sealstream_api::receipts::{ReceiptV2, SignedReceipt};
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

fn preset() -> Value {
    json!({
        "jurisdictions": ["eu", "CH"],
        "dataClasses": ["location", "personal-data"],
        "retention": "Delete within 12 months of purchase.",
        "attestation": "I will not try to re-identify anyone in the data.",
    })
}

fn presets_gate_orders_and_land_in_receipts(db: Db) {
    let server = TestServer::start(db);
    let sale = sale(&server, 3, "4200", invoice_rail());
    let (status, listing) = server.send(
        "PATCH",
        &format!("/v1/listings/{}", sale.listing_id),
        Some(&sale.owner),
        &json!({ "compliance": preset() }),
    );
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["compliance"]["jurisdictions"], json!(["CH", "EU"]));
    let normal: CompliancePreset = serde_json::from_value(listing["compliance"].clone()).unwrap();
    let hash = listing["complianceHash"].as_str().unwrap().to_string();
    assert_eq!(hash, normal.hash());
    // The public view shows the terms.
    let (status, public) = server.get(&format!("/v1/listings/{}", sale.listing_id), None);
    assert_eq!(status, 200);
    assert_eq!(public["complianceHash"], hash.as_str());
    let html = sealstream_testkit::http::send(server.request(
        "GET",
        &format!("/listings/{}", sale.listing_id),
        None,
    ));
    let text = String::from_utf8_lossy(&html.body).to_string();
    assert!(
        text.contains("<h2>Compliance</h2>") && text.contains(&hash) && text.contains("CH, EU"),
        "{text}"
    );

    let alice = buyer(&server);
    let orders_before = count(&server, "orders");
    let attempt = |body: Value| {
        let mut b = json!({
            "listingId": sale.listing_id,
            "buyerPublicKeyHex": alice.recipient.public_key().to_hex(),
        });
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        server.send("POST", "/v1/orders", Some(&alice.token), &b)
    };
    // Refused, each with its reason.
    let (status, body) = attempt(json!({}));
    assert_refused(status, &body, 422, "jurisdiction");
    let (status, body) =
        attempt(json!({"jurisdiction": "US", "purpose": "maps", "acceptAttestation": true}));
    assert_refused(status, &body, 422, "jurisdiction");
    let reason = body["error"]["message"].as_str().unwrap();
    assert!(
        reason.contains("does not sell to US") && reason.contains("CH, EU"),
        "{reason}"
    );
    let (status, body) = attempt(json!({"jurisdiction": "DE", "acceptAttestation": true}));
    assert_refused(status, &body, 422, "purpose");
    let (status, body) = attempt(json!({"jurisdiction": "DE", "purpose": "maps"}));
    assert_refused(status, &body, 422, "acceptAttestation");
    assert_eq!(
        count(&server, "orders"),
        orders_before,
        "a refusal stores nothing"
    );

    // Accepted: the order records it.
    let (status, order) = attempt(json!({
        "jurisdiction": "de", "purpose": "Training a mapping model.", "acceptAttestation": true
    }));
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["compliance"]["presetHash"], hash.as_str());
    assert_eq!(order["compliance"]["jurisdiction"], "DE");
    let id = order["id"].as_str().unwrap().to_string();
    let (status, seen) = server.get(&format!("/v1/orders/{id}"), Some(&sale.owner));
    assert_eq!(status, 200);
    assert_eq!(seen["compliance"]["purpose"], "Training a mapping model.");

    // Paid: both receipts carry the preset and its hash, signed.
    let (status, body) = mark_paid(&server, &id, &sale.owner, "INV-7");
    assert_eq!(status, 200, "{body}");
    let (_, v1) = server.get(&format!("/v1/orders/{id}/receipt"), Some(&alice.token));
    let v1 = SignedReceipt::parse(&serde_json::to_vec(&v1).unwrap()).unwrap();
    v1.verify(None).unwrap();
    let recorded = v1
        .receipt
        .compliance
        .clone()
        .expect("the receipt records the preset");
    assert_eq!(recorded.preset_hash, hash);
    assert_eq!(recorded.preset, normal);
    assert!(recorded.attestation_accepted);
    let (_, v2) = server.get(
        &format!("/v1/orders/{id}/receipt?version=2"),
        Some(&alice.token),
    );
    let v2 = ReceiptV2::parse(&serde_json::to_vec(&v2).unwrap()).unwrap();
    assert_eq!(v2.digests.len(), 22);
    let full = v2.verify(None).unwrap();
    assert_eq!(full.receipt.unwrap().compliance, Some(recorded));
    // The compliance record alone can be disclosed, and changing it fails.
    let shown = v2.disclose(&["compliance", "datasetRoot"]).unwrap();
    let seen = shown.verify(None).unwrap();
    assert_eq!(seen.fields.len(), 2);
    let mut text = shown.to_json_pretty();
    text = text.replace("\"DE\"", "\"FR\"");
    let forged = ReceiptV2::parse(text.as_bytes()).unwrap();
    assert!(forged.verify(None).is_err());

    // A listing without a preset takes orders as before; subscription
    // listings take no preset.
    let plain = common::orders_fixtures::sale(&server, 2, "100", invoice_rail());
    let (status, order) = server.send(
        "POST",
        "/v1/orders",
        Some(&alice.token),
        &json!({"listingId": plain.listing_id,
                "buyerPublicKeyHex": alice.recipient.public_key().to_hex()}),
    );
    assert_eq!(status, 201, "{order}");
    assert!(order.get("compliance").is_none());
    // A bad preset names its field.
    let (status, body) = server.send(
        "PATCH",
        &format!("/v1/listings/{}", plain.listing_id),
        Some(&plain.owner),
        &json!({"compliance": {"jurisdictions": ["Germany"], "dataClasses": ["location"], "retention": "1 year"}}),
    );
    assert_refused(status, &body, 400, "compliance.jurisdictions");
}

on_both_databases!(presets_gate_orders_and_land_in_receipts);
