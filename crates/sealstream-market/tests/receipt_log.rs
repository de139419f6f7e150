//! The receipt logs (issue 21) on both databases: 1,000 invoice orders in
//! three currencies from six sellers and twenty buyers, each receipt
//! appended to the market's log and its seller's in 1-second epochs; then
//! period totals proven by the server and verified offline for many
//! periods (the true totals, per currency, from the receipts themselves),
//! a total off by one unit refused, no buyer, seller or order named in a
//! proof of the market's log; a seller's own total; consistency between a
//! head taken half way and the last, and a rewritten log caught; each
//! holder's check of its receipt's leaf.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::orders_fixtures::{buyer, order, sale, Buyer, Sale};
use common::{block_on, Db, TestServer};
use sealstream_api::receipts::log::{
    LogConsistency, ReceiptLogs, SignedLogHead, TotalProof, MARKET_LOG,
};
use sealstream_api::receipts::{ReceiptError, SignedReceipt};
use sealstream_core::keys::ReceiptPublicKey;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

const RECEIPTS: usize = 1_000;
const EPOCH: u64 = 1;

fn rail(currency: &str) -> Value {
    json!({"kind": "invoice", "currency": currency, "decimals": 2})
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn time(unix: u64) -> String {
    sealstream_core::utc::format_seconds(unix as i64)
}

fn receipt_key(server: &TestServer) -> ReceiptPublicKey {
    let (status, body) = server.get("/v1/receipts/key", None);
    assert_eq!(status, 200, "{body}");
    ReceiptPublicKey::from_hex(body["publicKeyHex"].as_str().unwrap(), "key").unwrap()
}

/// One paid order as the test saw it.
struct Paid {
    id: String,
    seller: usize,
    buyer: usize,
    currency: String,
    amount: u128,
    epoch: u64,
}

fn total_proof(server: &TestServer, token: &str, log: &str, from: u64, to: u64) -> (u16, Value) {
    server.get(
        &format!(
            "/v1/receipt-log/total?log={log}&from={}&to={}",
            time(from),
            time(to)
        ),
        Some(token),
    )
}

fn expected(paid: &[Paid], from: u64, to: u64, seller: Option<usize>) -> BTreeMap<String, String> {
    let mut t: BTreeMap<String, u128> = BTreeMap::new();
    for p in paid
        .iter()
        .filter(|p| (from..to).contains(&p.epoch) && seller.is_none_or(|s| s == p.seller))
    {
        *t.entry(p.currency.clone()).or_default() += p.amount;
    }
    t.into_iter().map(|(c, v)| (c, v.to_string())).collect()
}

fn receipt_log(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.receipt_log_epoch = Duration::from_secs(EPOCH);
    });
    let key = receipt_key(&server);
    let auditor_did = common::listings_fixtures::new_did();
    let auditor = server.session_for(&auditor_did, &[sealstream_market::auth::Role::Auditor]);
    // Six sellers: two per currency, at different prices.
    let sellers: Vec<(Sale, String, u128)> = [
        ("EUR", 1_250u128),
        ("EUR", 9_999),
        ("USD", 700),
        ("USD", 123_456),
        ("CHF", 5),
        ("CHF", 31_415),
    ]
    .iter()
    .map(|(cur, price)| {
        (
            sale(&server, 2, &price.to_string(), rail(cur)),
            format!("invoice:{cur}:2"),
            *price,
        )
    })
    .collect();
    let buyers: Vec<Buyer> = (0..20).map(|_| buyer(&server)).collect();
    let mut paid = Vec::with_capacity(RECEIPTS);
    let mut half_head = None;
    for i in 0..RECEIPTS {
        let s = (i * 7 + i / 13) % sellers.len();
        let b = i % buyers.len();
        let (sale, currency, amount) = &sellers[s];
        let id = order(&server, &buyers[b], &sale.listing_id)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, body) = server.send(
            "POST",
            &format!("/v1/orders/{id}/mark-paid"),
            Some(&sale.owner),
            &json!({"reference": format!("INV-{i}")}),
        );
        assert_eq!(status, 200, "{body}");
        let (status, receipt) =
            server.get(&format!("/v1/orders/{id}/receipt"), Some(&buyers[b].token));
        assert_eq!(status, 200, "{receipt}");
        let receipt = SignedReceipt::parse(&bytes(&receipt)).unwrap();
        let issued =
            sealstream_core::utc::parse_seconds(&receipt.receipt.issued_at).unwrap() as u64;
        paid.push(Paid {
            id,
            seller: s,
            buyer: b,
            currency: currency.clone(),
            amount: *amount,
            epoch: issued / EPOCH,
        });
        if i + 1 == RECEIPTS / 2 {
            let (status, head) = server.get("/v1/receipt-log/head?log=market", Some(&auditor));
            assert_eq!(status, 200, "{head}");
            half_head = Some(SignedLogHead::parse(&bytes(&head)).unwrap());
        }
    }
    // Every epoch the orders fell in must be over before it is proven.
    let last = paid.last().unwrap().epoch;
    while sealstream_core::utc::now_unix() as u64 / EPOCH <= last + 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = paid[0].epoch;
    assert!(last > first, "the orders span several epochs");

    // The periods: every single epoch, spans from the start, to the end,
    // in the middle, all of it, and ones with no receipt at all.
    let mut periods: BTreeSet<(u64, u64)> = BTreeSet::new();
    for e in first..=last {
        periods.insert((e, e + 1));
    }
    let mid = (first + last) / 2;
    for (a, b) in [
        (first, last + 1),
        (first - 5, last + 2),
        (first, mid),
        (mid, last + 1),
        (first + 1, last),
        (first - 10, first),
        (last + 1, last + 2),
    ] {
        if a < b {
            periods.insert((a, b));
        }
    }
    let buyer_marks: Vec<String> = buyers
        .iter()
        .flat_map(|b| {
            let address = b.did.trim_start_matches("did:peaq:").to_string();
            [
                b.did.clone(),
                address.to_lowercase(),
                address,
                b.recipient.public_key().to_hex(),
            ]
        })
        .collect();
    let mut proven = 0;
    for &(a, b) in &periods {
        let (status, body) = total_proof(&server, &auditor, MARKET_LOG, a * EPOCH, b * EPOCH);
        assert_eq!(status, 200, "{a}..{b}: {body}");
        let text = serde_json::to_string_pretty(&body).unwrap();
        let proof = TotalProof::parse(text.as_bytes()).unwrap();
        let check = proof
            .verify(Some(&key))
            .unwrap_or_else(|e| panic!("{a}..{b}: {e}"));
        let want = expected(&paid, a, b, None);
        assert_eq!(check.totals, want, "{a}..{b}");
        let count = paid.iter().filter(|p| (a..b).contains(&p.epoch)).count();
        assert_eq!(check.receipts, count as u64, "{a}..{b}");
        // No buyer, seller or order appears in it.
        for mark in buyer_marks
            .iter()
            .chain(sellers.iter().map(|s| &s.0.owner_did))
            .chain(paid.iter().map(|p| &p.id))
        {
            assert!(
                !text.to_lowercase().contains(&mark.to_lowercase()),
                "{a}..{b}: the proof names {mark}"
            );
        }
        // A total changed by one unit, either way, in any currency fails.
        for currency in ["invoice:EUR:2", "invoice:USD:2", "invoice:CHF:2"] {
            for up in [true, false] {
                let mut forged = proof.clone();
                let t = forged
                    .totals
                    .entry(currency.into())
                    .or_insert_with(|| "0".into());
                let v: u128 = t.parse().unwrap();
                if !up && v == 0 {
                    continue;
                }
                *t = if up { v + 1 } else { v - 1 }.to_string();
                assert!(
                    matches!(
                        forged.verify(Some(&key)),
                        Err(ReceiptError::ProofMismatch { .. })
                    ),
                    "{a}..{b}: {currency} off by one accepted"
                );
            }
        }
        proven += 1;
    }
    assert!(proven >= periods.len() && proven > 10);

    // A seller proves their own sales (the default log), and only theirs.
    let (seller0, _, _) = &sellers[0];
    let (status, body) = server.get(
        &format!(
            "/v1/receipt-log/total?from={}&to={}",
            time(first * EPOCH),
            time((last + 1) * EPOCH)
        ),
        Some(&seller0.owner),
    );
    assert_eq!(status, 200, "{body}");
    let proof = TotalProof::parse(&bytes(&body)).unwrap();
    let check = proof.verify(Some(&key)).unwrap();
    assert_eq!(check.log, format!("seller:{}", seller0.owner_did));
    assert_eq!(check.totals, expected(&paid, first, last + 1, Some(0)));
    // …not the market's, nor another seller's.
    let (status, _) = total_proof(&server, &seller0.owner, MARKET_LOG, first, last + 1);
    assert_eq!(status, 403);
    let other = format!("seller:{}", sellers[1].0.owner_did);
    let (status, _) = total_proof(&server, &seller0.owner, &other, first, last + 1);
    assert_eq!(status, 403);

    // Periods refused: not over yet, not on an epoch boundary (with a
    // one-hour epoch the seller logs would refuse a second; here check the
    // order), reversed.
    let now = sealstream_core::utc::now_unix() as u64;
    let (status, body) = total_proof(&server, &auditor, MARKET_LOG, now, now + 60);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("to")),
        "{body}"
    );
    let (status, body) = total_proof(&server, &auditor, MARKET_LOG, first + 2, first + 1);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("to")),
        "{body}"
    );

    // Consistency from the head taken half way to now.
    let half = half_head.unwrap();
    assert_eq!(half.head.tree_size, (RECEIPTS / 2) as u64);
    let (status, body) = server.get(
        &format!(
            "/v1/receipt-log/consistency?log=market&size={}",
            half.head.tree_size
        ),
        Some(&auditor),
    );
    assert_eq!(status, 200, "{body}");
    let proof = LogConsistency::from_extension(half.clone(), &bytes(&body)).unwrap();
    proof.verify(Some(&key)).unwrap();
    assert_eq!(proof.new.head.tree_size, RECEIPTS as u64);

    // A holder checks its receipt's leaf: the buyer in the market's log,
    // the seller in both.
    for p in paid.iter().step_by(97) {
        let (status, receipt) = server.get(
            &format!("/v1/orders/{}/receipt", p.id),
            Some(&buyers[p.buyer].token),
        );
        assert_eq!(status, 200);
        let receipt = SignedReceipt::parse(&bytes(&receipt)).unwrap();
        let (status, body) = server.get(
            &format!("/v1/orders/{}/receipt/log", p.id),
            Some(&buyers[p.buyer].token),
        );
        assert_eq!(status, 200, "{body}");
        let logs = ReceiptLogs::parse(&bytes(&body)).unwrap();
        assert!(logs.seller.is_none(), "the buyer sees no seller log");
        logs.market.verify(&receipt, Some(&key)).unwrap();
        let (status, body) = server.get(
            &format!("/v1/orders/{}/receipt/log", p.id),
            Some(&sellers[p.seller].0.owner),
        );
        assert_eq!(status, 200, "{body}");
        let logs = ReceiptLogs::parse(&bytes(&body)).unwrap();
        logs.market.verify(&receipt, Some(&key)).unwrap();
        logs.seller.unwrap().verify(&receipt, Some(&key)).unwrap();
        // An opening to another amount, or another order's receipt, fails.
        let mut lie = logs.market.clone();
        lie.amount = (p.amount + 1).to_string();
        assert!(lie.verify(&receipt, Some(&key)).is_err());
    }

    // A market that rewrites one old leaf's amount (a lower commitment for
    // the first receipt) is caught by the consistency proof from the half
    // head, and the buyer's check of that receipt fails.
    block_on(async {
        let mut tx = server.store.begin().await.unwrap();
        let commitment = sealstream_api::receipts::log::commit(
            "invoice:EUR:2",
            1,
            &curve25519_dalek::scalar::Scalar::ONE,
        )
        .compress();
        sqlx::query(
            "UPDATE receipt_log_leaves SET commitment = $1 WHERE log_id = 'market' AND idx = 0",
        )
        .bind(hex::encode(commitment.as_bytes()))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    });
    let (status, body) = server.get(
        &format!(
            "/v1/receipt-log/consistency?log=market&size={}",
            half.head.tree_size
        ),
        Some(&auditor),
    );
    assert_eq!(status, 200, "{body}");
    let proof = LogConsistency::from_extension(half, &bytes(&body)).unwrap();
    assert!(matches!(
        proof.verify(Some(&key)),
        Err(ReceiptError::ProofMismatch { .. })
    ));
    let p = &paid[0];
    let (_, receipt) = server.get(
        &format!("/v1/orders/{}/receipt", p.id),
        Some(&buyers[p.buyer].token),
    );
    let receipt = SignedReceipt::parse(&bytes(&receipt)).unwrap();
    let (_, body) = server.get(
        &format!("/v1/orders/{}/receipt/log", p.id),
        Some(&buyers[p.buyer].token),
    );
    let logs = ReceiptLogs::parse(&bytes(&body)).unwrap();
    assert!(matches!(
        logs.market.verify(&receipt, Some(&key)),
        Err(ReceiptError::ProofMismatch { .. })
    ));

    // Every proof asked for is in the audit log.
    let actions = common::listings_fixtures::audit_actions(&server, MARKET_LOG);
    assert_eq!(
        actions.iter().filter(|a| *a == "receipt_log.total").count(),
        periods.len()
    );
}

on_both_databases!(receipt_log);

/// The logs' routes sign and record, so they take from the write buckets:
/// past the burst, a 429 naming the rate.
#[test]
fn log_reads_are_rate_limited_as_writes() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.write_rate = 0.01;
        c.write_burst = 2;
    });
    let did = common::listings_fixtures::new_did();
    let seller = server.session_for(&did, &[sealstream_market::auth::Role::Owner]);
    for _ in 0..2 {
        let (status, body) = server.get("/v1/receipt-log/head", Some(&seller));
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server.get("/v1/receipt-log/head", Some(&seller));
    assert_eq!(status, 429, "{body}");
}
