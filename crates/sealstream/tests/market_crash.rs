//! Crash safety of paid orders (issue 7): a batch of 50 orders of one
//! listing, 35 of them paid (by invoice, marked by the seller) while
//! `sealstream market serve` and `sealstream market grant-daemon` are
//! killed with SIGKILL at points drawn from a seeded generator and started
//! again. Afterwards every paid order is granted exactly once (one grant
//! row, one `grant.issue` audit event), no unpaid order is granted, the
//! audit log verifies, a last `grant-daemon --once` finds nothing to do, and
//! buyers' release packages decrypt to the published bytes.
//!
//! Whatever the kill points, the assertions are the same: the test waits
//! for outcomes, never for a time.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::market::{
    datasets, grant_daemon_once, list_and_publish, owner_with_machine, release_link, text, Market,
};
use common::*;
use sealstream_core::json::Value;
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_testkit::http;

const ORDERS: usize = 50;

/// A small deterministic generator (xorshift64*), so a failing run can be
/// repeated with its seed (printed, and taken from `SEALSTREAM_CRASH_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `sealstream market grant-daemon` polling every second, as a child.
struct Daemon {
    child: Option<Child>,
    args: Vec<std::ffi::OsString>,
}

impl Daemon {
    fn start(base: &str, key_file: &Path) -> Daemon {
        let mut d = Daemon {
            child: None,
            args: vec![
                "market".into(),
                "grant-daemon".into(),
                "--server".into(),
                base.into(),
                "--interval".into(),
                "1".into(),
                "--key-file".into(),
                key_file.into(),
                // The older spelling of --owner-private-key-file (a hidden alias).
                "--owner-key-file".into(),
                keyfile("owner.x25519.sk").into(),
            ],
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        self.child = Some(
            sealstream()
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start grant-daemon"),
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `market.call`, retried while the server is down (a connection refused
/// or reset); the first HTTP answer is returned.
fn call_through_crashes(
    market: &Market,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = http::request(method, &format!("{}{path}", market.base))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let response = match http::try_send(request) {
            Ok(r) => r,
            Err(e) => {
                assert!(Instant::now() < deadline, "{method} {path}: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        return (
            response.status,
            sealstream_core::json::parse(&response.body).unwrap_or(Value::Null),
        );
    }
}

/// Marks `id` paid, through crashes: 200, or 409 when an earlier attempt
/// was committed before the server died.
fn mark_paid(market: &Market, seller: &str, id: &str) {
    let (status, body) = call_through_crashes(
        market,
        "POST",
        &format!("/v1/orders/{id}/mark-paid"),
        seller,
        &format!(r#"{{"reference":"INV-{id}"}}"#),
    );
    assert!(status == 200 || status == 409, "{status} {body:?}");
    if status == 409 {
        let (_, order) =
            call_through_crashes(market, "GET", &format!("/v1/orders/{id}"), seller, "");
        assert_ne!(text(&order, "state"), "awaiting-payment", "{body:?}");
    }
}

/// Rows of `sql` on the market database (SQLite), as (text, count).
fn query_counts(db: &Path, sql: &str) -> Vec<(String, i64)> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    sealstream_testkit::server::block_on(async move {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
        let out = rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect();
        conn.close().await.unwrap();
        out
    })
}

#[test]
fn paid_orders_are_granted_exactly_once_through_crashes() {
    let seed: u64 = std::env::var("SEALSTREAM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0007);
    eprintln!("crash seed {seed} (SEALSTREAM_CRASH_SEED)");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("market");
    let mut market = Market::start(&data);

    // A 12-chunk chain, its dataset and an invoice listing.
    let (owner_key, _, seller) = owner_with_machine(&market);
    let input = t.join("input.bin");
    let source: Vec<u8> = (0..120_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &source).unwrap();
    let machine_key_file = t.join("machine.sk");
    std::fs::write(&machine_key_file, common::agent::MACHINE_SK).unwrap();
    let mut publish = sealstream();
    publish_args(&mut publish, &input, &t.join("chain"), 10_000);
    publish
        // `--to`: the older spelling of `--server` (a hidden alias).
        .args(["--topic", "/arm/torque", "--to", &market.base])
        .arg("--dataset-key-file")
        .arg(&machine_key_file);
    let out = publish.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dataset_id = text(&datasets(&market, &seller)[0], "id");
    let listing = format!(
        r#"{{"datasetId":"{dataset_id}","title":"Arm torque","description":"Torque readings.",
            "tags":["arm"],"domain":"robotics","license":{{"spdx":"CC-BY-4.0"}},"price":"990",
            "rail":{{"kind":"invoice","currency":"EUR","decimals":2,"payee":"Robots GmbH",
                     "terms":"30 days net"}},"delivery":["api"]}}"#
    );
    let listing_id = list_and_publish(&market, &seller, &listing);

    // 50 orders, each with its own key; 35 are to be paid.
    let buyer = market.sign_in(&MachineSigningKey::generate());
    let mut orders: Vec<(String, RecipientSecretKey, bool)> = Vec::new();
    for i in 0..ORDERS {
        let key = RecipientSecretKey::generate();
        let body = format!(
            r#"{{"listingId":"{listing_id}","buyerPublicKeyHex":"{}","buyerId":"buyer-{i}"}}"#,
            key.public_key().to_hex()
        );
        let (status, order) = market.call("POST", "/v1/orders", Some(&buyer), Some(&body));
        assert_eq!(status, 201, "{order:?}");
        orders.push((text(&order, "id"), key, i % 10 < 7));
    }
    let paid: Vec<&String> = orders.iter().filter(|o| o.2).map(|o| &o.0).collect();
    assert_eq!(paid.len(), 35);

    // The daemon runs while orders are paid; both processes are killed at
    // seeded points and started again.
    let owner_key_file = t.join("owner.sk");
    std::fs::write(&owner_key_file, owner_key.to_hex_secret().as_bytes()).unwrap();
    let mut daemon = Daemon::start(&market.base, &owner_key_file);
    let mut next = 0;
    let mut kills = BTreeMap::from([("server", 0), ("daemon", 0)]);
    for _round in 0..10 {
        for _ in 0..=rng.below(5) {
            if next < paid.len() {
                mark_paid(&market, &seller, paid[next]);
                next += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        match rng.below(3) {
            0 => {
                market.kill();
                *kills.get_mut("server").unwrap() += 1;
                std::thread::sleep(Duration::from_millis(rng.below(300)));
                market.restart();
            }
            1 => {
                daemon.kill();
                *kills.get_mut("daemon").unwrap() += 1;
                std::thread::sleep(Duration::from_millis(rng.below(300)));
                daemon.spawn();
            }
            _ => {
                market.kill();
                daemon.kill();
                *kills.get_mut("server").unwrap() += 1;
                *kills.get_mut("daemon").unwrap() += 1;
                market.restart();
                daemon.spawn();
            }
        }
    }
    for id in &paid[next..] {
        mark_paid(&market, &seller, id);
    }
    eprintln!("kills: {kills:?}");

    // Wait for the outcome: nothing paid left ungranted.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, waiting) = market.call(
            "GET",
            "/v1/orders?as=seller&state=paid&limit=200",
            Some(&seller),
            None,
        );
        assert_eq!(status, 200, "{waiting:?}");
        if waiting
            .get("items")
            .and_then(Value::as_array)
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still paid, not granted: {waiting:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.kill();

    // Granted iff paid, once each.
    let (_, all) = market.call("GET", "/v1/orders?as=seller&limit=200", Some(&seller), None);
    let states: BTreeMap<String, String> = all
        .get("items")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|o| (text(o, "id"), text(o, "state")))
        .collect();
    assert_eq!(states.len(), ORDERS);
    for (id, _, is_paid) in &orders {
        let expected = if *is_paid {
            "granted"
        } else {
            "awaiting-payment"
        };
        assert_eq!(states[id], expected, "{id}");
    }
    market.stop();
    let db = data.join("market.db");
    let grants = query_counts(
        &db,
        "SELECT order_id, COUNT(*) FROM grants GROUP BY order_id",
    );
    let issued = query_counts(
        &db,
        "SELECT subject, COUNT(*) FROM audit_events WHERE action = 'grant.issue' GROUP BY subject",
    );
    let expected: Vec<(String, i64)> = {
        let mut v: Vec<(String, i64)> = paid.iter().map(|id| ((*id).clone(), 1)).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<(String, i64)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(grants), expected, "one grant row per paid order");
    assert_eq!(
        sorted(issued),
        expected,
        "one grant.issue event per paid order"
    );
    let verify = sealstream()
        .args(["market", "audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // A last pass has nothing to do; release packages open.
    market.restart();
    let once = grant_daemon_once(&market.base, &owner_key_file)
        .output()
        .unwrap();
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    assert!(
        once.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&once.stdout)
    );
    for (i, (id, key, _)) in orders.iter().enumerate().filter(|(_, o)| o.2).take(3) {
        let key_file: PathBuf = t.join(format!("buyer-{i}.sk"));
        std::fs::write(&key_file, key.to_hex_secret().as_bytes()).unwrap();
        let link = release_link(&market, &buyer, id);
        let out = t.join(format!("out-{i}.bin"));
        let consumed = sealstream()
            .args(["consume", "--download-url", &text(&link, "url")])
            .args(["--buyer-id", &format!("buyer-{i}")])
            .arg("--buyer-private-key-file")
            .arg(&key_file)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            consumed.status.success(),
            "{}",
            String::from_utf8_lossy(&consumed.stderr)
        );
        assert_eq!(std::fs::read(&out).unwrap(), source, "{id}");
    }
}
