//! Disclosure requests under dual approval (issue 21) on both databases: an
//! auditor files a request with a legal basis; one approval grants nothing;
//! the requester cannot approve; a second distinct approver makes it take
//! effect; the requester then reads exactly what was approved (a period's
//! total proof, a case's parties and the receipt fields asked for) until
//! the access expires; the parties see a notice unless both approvers
//! sealed the case; every step is in the audit log.

mod common;

use std::time::{Duration, Instant};

use common::listings_fixtures::{audit_actions, new_did};
use common::orders_fixtures::{buyer, invoice_rail, paid_order, sale};
use common::{Db, TestServer};
use sealstream_api::receipts::log::TotalProof;
use sealstream_api::receipts::ReceiptV2;
use sealstream_market::auth::Role;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

fn time(unix: i64) -> String {
    sealstream_core::utc::format_seconds(unix)
}

fn dual_approval(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.receipt_log_epoch = Duration::from_secs(1);
    });
    // The requester is an auditor who also holds the compliance role: it
    // still cannot approve its own request.
    let auditor_did = new_did();
    let auditor = server.session_for(&auditor_did, &[Role::Auditor, Role::Compliance]);
    let c1 = server.session_for(&new_did(), &[Role::Compliance]);
    let c2 = server.session_for(&new_did(), &[Role::Compliance]);
    let admin = server.session_for(&new_did(), &[Role::Admin]);
    let plain_auditor = server.session_for(&new_did(), &[Role::Auditor]);

    let start = sealstream_core::utc::now_unix();
    let sale = sale(&server, 2, "2500", invoice_rail());
    let alice = buyer(&server);
    let bob = buyer(&server);
    let first = paid_order(&server, &sale, &alice);
    paid_order(&server, &sale, &bob);
    let end = sealstream_core::utc::now_unix() + 1;
    while sealstream_core::utc::now_unix() <= end {
        std::thread::sleep(Duration::from_millis(100));
    }

    // A period total of the seller's sales.
    let (status, req) = server.send(
        "POST",
        "/v1/disclosure-requests",
        Some(&auditor),
        &json!({
            "kind": "period-total",
            "legalBasis": "Tax audit 2026/17, art. 4",
            "period": {"log": format!("seller:{}", sale.owner_did), "from": time(start - 1), "to": time(end)},
            "accessSeconds": 600,
        }),
    );
    assert_eq!(status, 201, "{req}");
    let id = req["id"].as_str().unwrap().to_string();
    assert_eq!(req["state"], "pending");
    let read = |token: &str, id: &str| {
        server.get(
            &format!("/v1/disclosure-requests/{id}/disclosure"),
            Some(token),
        )
    };
    let approve = |token: &str, id: &str, seal: bool| {
        server.send(
            "POST",
            &format!("/v1/disclosure-requests/{id}/approve"),
            Some(token),
            &json!({"seal": seal}),
        )
    };
    let (status, body) = read(&auditor, &id);
    assert_eq!(status, 403, "{body}");
    // The requester cannot approve; an auditor without the role cannot either.
    let (status, body) = approve(&auditor, &id, false);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requester"),
        "{body}"
    );
    assert_eq!(approve(&plain_auditor, &id, false).0, 403);
    // One approval grants nothing.
    let (status, view) = approve(&c1, &id, false);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "pending");
    let (status, body) = read(&auditor, &id);
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 2"),
        "{body}"
    );
    // The same approver twice counts once.
    assert_eq!(approve(&c1, &id, false).0, 409);
    // A second, distinct approver: in effect.
    let (status, view) = approve(&c2, &id, false);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "approved");
    // Only the requester reads it.
    assert_eq!(read(&c2, &id).0, 403);
    let (status, body) = read(&auditor, &id);
    assert_eq!(status, 200, "{body}");
    let proof = TotalProof::parse(&serde_json::to_vec(&body["total"]).unwrap()).unwrap();
    let check = proof.verify(None).unwrap();
    assert_eq!(check.receipts, 2);
    assert_eq!(
        check.totals.get("invoice:EUR:2").map(String::as_str),
        Some("5000")
    );
    assert_eq!(
        audit_actions(&server, &id),
        [
            "disclosure.request",
            "disclosure.approve",
            "disclosure.approve",
            "disclosure.grant",
            "disclosure.read"
        ]
    );
    // The seller is told.
    let (_, notices) = server.get("/v1/disclosure-notices", Some(&sale.owner));
    assert!(
        notices["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["requestId"] == id.as_str()),
        "{notices}"
    );

    // A case: one order, two receipt fields, a short access.
    let (status, req) = server.send(
        "POST",
        "/v1/disclosure-requests",
        Some(&auditor),
        &json!({
            "kind": "case",
            "legalBasis": "Court order 3 C 12/26",
            "case": {"orderId": first},
            "fields": ["datasetRoot", "amount"],
            "accessSeconds": 4,
        }),
    );
    assert_eq!(status, 201, "{req}");
    let case = req["id"].as_str().unwrap().to_string();
    approve(&c1, &case, false);
    let (_, view) = approve(&admin, &case, false);
    assert_eq!(view["state"], "approved", "{view}");
    let until = view["accessUntil"].as_str().unwrap().to_string();
    let (status, body) = read(&auditor, &case);
    assert_eq!(status, 200, "{body}");
    let orders = body["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["buyerDid"], alice.did.as_str());
    assert_eq!(orders[0]["sellerDid"], sale.owner_did.as_str());
    let shown = ReceiptV2::parse(&serde_json::to_vec(&orders[0]["disclosure"]).unwrap()).unwrap();
    let fields = shown.verify(None).unwrap().fields;
    assert_eq!(
        fields.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["datasetRoot", "amount"]
    );
    // Alice (the buyer) and the seller see the notice; Bob does not.
    let told = |token: &str| {
        let (_, n) = server.get("/v1/disclosure-notices", Some(token));
        n["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["requestId"] == case.as_str())
    };
    assert!(told(&alice.token) && told(&sale.owner) && !told(&bob.token));
    // The access ends at the set time.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = read(&auditor, &case);
        if status == 403 {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("access ended"),
                "{body}"
            );
            assert!(
                sealstream_core::utc::now() >= until,
                "refused before {until}"
            );
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "the access never ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, view) = server.get(&format!("/v1/disclosure-requests/{case}"), Some(&auditor));
    assert_eq!(view["state"], "expired");

    // A case both approvers seal: no notice. One seal alone does not seal.
    let sealed_case = |seals: (bool, bool)| {
        let (status, req) = server.send(
            "POST",
            "/v1/disclosure-requests",
            Some(&auditor),
            &json!({"kind": "case", "legalBasis": "Sealed investigation", "case": {"party": bob.did},
                    "accessSeconds": 60}),
        );
        assert_eq!(status, 201, "{req}");
        let id = req["id"].as_str().unwrap().to_string();
        approve(&c1, &id, seals.0);
        let (_, v) = approve(&c2, &id, seals.1);
        assert_eq!(v["sealed"], seals.0 && seals.1);
        id
    };
    let both = sealed_case((true, true));
    let one = sealed_case((true, false));
    let (_, n) = server.get("/v1/disclosure-notices", Some(&bob.token));
    let ids: Vec<&str> = n["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["requestId"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&both.as_str()) && ids.contains(&one.as_str()),
        "{ids:?}"
    );

    // Rejected: no approval after it.
    let (_, req) = server.send(
        "POST",
        "/v1/disclosure-requests",
        Some(&auditor),
        &json!({"kind": "case", "legalBasis": "Curiosity", "case": {"listingId": sale.listing_id},
                "accessSeconds": 60}),
    );
    let rejected = req["id"].as_str().unwrap().to_string();
    let (status, view) = server.send(
        "POST",
        &format!("/v1/disclosure-requests/{rejected}/reject"),
        Some(&c1),
        &json!({"reason": "No legal basis."}),
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "rejected");
    assert_eq!(approve(&c2, &rejected, false).0, 409);
    assert_eq!(read(&auditor, &rejected).0, 403);

    // Malformed requests name the field.
    for (body, field) in [
        (
            json!({"kind": "case", "legalBasis": "", "case": {"orderId": first}, "accessSeconds": 5}),
            "legalBasis",
        ),
        (
            json!({"kind": "case", "legalBasis": "x", "case": {"orderId": first}, "accessSeconds": 0}),
            "accessSeconds",
        ),
        (
            json!({"kind": "case", "legalBasis": "x", "case": {"orderId": first}, "fields": ["price"], "accessSeconds": 5}),
            "fields",
        ),
        (
            json!({"kind": "period-total", "legalBasis": "x", "accessSeconds": 5}),
            "period",
        ),
    ] {
        let (status, answer): (u16, Value) =
            server.send("POST", "/v1/disclosure-requests", Some(&auditor), &body);
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }
}

on_both_databases!(dual_approval);
