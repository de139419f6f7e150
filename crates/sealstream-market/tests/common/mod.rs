//! The market integration harness: what only the market's tests need, on
//! top of `sealstream-testkit` (the server in this process on SQLite or
//! PostgreSQL, sign-in, registration, anvil, moto): schemas of older
//! versions, machines registered by SQL, multipart bodies, and the worlds
//! of chains, listings and orders the suites build.
//!
//! Every suite test is written once, `fn name(db: Db)`, and run on both
//! databases by `on_both_databases!(name, …)`.
// Each test binary uses a part of the harness (and of what it re-exports).
#![allow(dead_code, unused_imports)]

pub mod chains;
pub mod listings_fixtures;
pub mod orders_fixtures;
pub mod world;

pub use sealstream_testkit::http::path_segment;
pub use sealstream_testkit::server::{block_on, reply, Db, TestServer};
pub use sealstream_testkit::{anvil, files_under, moto, repo_root, unix_now};
use serde_json::Value;

/// Asserts that an answer of `status` with `body` is a refusal of
/// `expected` that names `field` (the error shape's `error.field`).
#[track_caller]
pub fn assert_refused(status: u16, body: &Value, expected: u16, field: &str) {
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (expected, Some(field)),
        "{body}"
    );
}

/// Opens `url` (creating a SQLite file) and applies the market's
/// migrations numbered below `before` only: the schema as an older server
/// left it.
pub fn migrate_below(db: Db, url: &str, before: i64) -> sqlx::AnyPool {
    block_on(async {
        sqlx::any::install_default_drivers();
        let engine = match db {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        };
        let all = repo_root()
            .join("crates/sealstream-market/migrations")
            .join(engine);
        let older = tempfile::tempdir().expect("temporary directory");
        for entry in std::fs::read_dir(&all).expect("the migrations") {
            let path = entry.expect("a migration").path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let version: i64 = name.split('_').next().unwrap().parse().expect("NNNN_");
            if version < before {
                std::fs::copy(&path, older.path().join(&name)).expect("copy a migration");
            }
        }
        let url = match db {
            Db::Sqlite => format!("{url}?mode=rwc"),
            Db::Postgres => url.to_string(),
        };
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("open the database");
        sqlx::migrate::Migrator::new(older.path())
            .await
            .expect("the older migrations")
            .run(&pool)
            .await
            .expect("the older schema");
        pool
    })
}

/// One recipient registered for a machine: (recipientId, recipientType,
/// publicKeyHex).
pub type RegisteredRecipient<'a> = (&'a str, &'a str, &'a str);

/// Registers `machine_did` under `owner_did` by inserting its `machines` row
/// directly (the registration route has its own tests).
pub fn register_machine_row(
    server: &TestServer,
    machine_did: &str,
    owner_did: &str,
    chain_public_key_hex: &str,
    recipients: &[RegisteredRecipient<'_>],
) {
    let recipients: Vec<Value> = recipients
        .iter()
        .map(|(id, kind, key)| {
            serde_json::json!({"recipientId": id, "recipientType": kind, "publicKeyHex": key})
        })
        .collect();
    block_on(async {
        sqlx::query(
            "INSERT INTO machines (did, owner_did, chain_public_key, recipients, statement, \
             signature, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(machine_did)
        .bind(owner_did)
        .bind(chain_public_key_hex)
        .bind(Value::Array(recipients).to_string())
        .bind("registered by a test")
        .bind("0x00")
        .bind("2025-01-01T00:00:00Z")
        .execute(server.store.pool())
        .await
        .unwrap();
    });
}

/// The boundary [`multipart`] uses.
pub const BOUNDARY: &str = "sealstream-test-boundary-4f2b9c7e1a";

/// A `multipart/form-data` body of `parts` (name, content type, bytes) in
/// order, and its Content-Type header value.
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let filename = if *content_type == "application/octet-stream" {
            format!("; filename=\"{name}.bin\"")
        } else {
            String::new()
        };
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}
