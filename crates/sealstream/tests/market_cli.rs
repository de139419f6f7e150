//! `sealstream market serve` and `market audit verify` as processes, on SQLite:
//! health, metrics and audit head over HTTP; graceful stop on SIGTERM; the
//! audit log growing across restarts; tampering named by `audit verify`.

mod common;

use std::path::Path;
use std::process::Output;

use common::market::Market;
use common::sealstream;
use sealstream_core::identity::Did;
use sealstream_core::json::Value;
use sealstream_core::keys::MachineSigningKey;
use sealstream_testkit::http;
use sealstream_testkit::server::block_on;

fn audit_verify(data_dir: &Path, json: bool) -> Output {
    audit_verify_with(data_dir, json, &[])
}

fn audit_verify_with(data_dir: &Path, json: bool, extra: &[&str]) -> Output {
    let mut cmd = sealstream();
    cmd.args(["market", "audit", "verify", "--data-dir"])
        .arg(data_dir)
        .args(extra);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copies a stopped market's database, with its write-ahead log if one is
/// left beside it, into the directory `to`.
fn copy_db(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["market.db", "market.db-wal"] {
        if from.join(name).exists() {
            std::fs::copy(from.join(name), to.join(name)).unwrap();
        }
    }
}

/// Runs `sql` on the market database with sqlx (no sqlite3 binary needed).
fn tamper(data_dir: &Path, sql: &str) {
    let url = format!("sqlite://{}", data_dir.join("market.db").display());
    block_on(async move {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let done = sqlx::query(sql).execute(&mut conn).await.unwrap();
        assert_eq!(done.rows_affected(), 1, "{sql}");
        conn.close().await.unwrap();
    });
}

#[test]
fn serve_restart_verify_and_tamper() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("market-data");

    // First run: created data dir, health, metrics, one audit event.
    let admin_key = MachineSigningKey::generate();
    let admin_did = Did::of_key(&admin_key).to_string();
    let flags = ["--admin", admin_did.as_str()];
    let mut server = Market::start_with(&data, &flags);
    assert!(data.join("market.db").is_file());
    // Market-wide counts and the audit head are for admins and auditors.
    assert_eq!(server.call("GET", "/metrics", None, None).0, 401);
    assert_eq!(server.call("GET", "/v1/audit/head", None, None).0, 401);
    let admin = server.sign_in(&admin_key);
    let as_admin = |server: &Market, path: &str| {
        let (status, body) = server.call("GET", path, Some(&admin), None);
        assert_eq!(status, 200, "{path}: {body:?}");
        match body {
            Value::String(text) => text,
            other => sealstream_core::json::canonical::rfc8785(&other).unwrap(),
        }
    };
    let metrics = as_admin(&server, "/metrics");
    assert!(
        metrics.contains("# TYPE sealstream_market_http_requests_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sealstream_market_http_requests_total{route="/healthz",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("sealstream_market_http_request_duration_seconds_count"));
    let head = as_admin(&server, "/v1/audit/head");
    // The admin's role, the start, the admin's first sign-in (two roles):
    // five events so far.
    assert!(head.starts_with(r#"{"events":5,"head":"0x"#), "{head}");
    let unknown = http::send(http::request("GET", &format!("{}/nope", server.base)));
    assert_eq!(unknown.status, 404);
    assert!(server.stop().success(), "SIGTERM must stop with exit 0");

    // Second run: one more start event.
    let mut server = Market::start_with(&data, &flags);
    let head = as_admin(&server, "/v1/audit/head");
    assert!(head.starts_with(r#"{"events":6,"head":"0x"#), "{head}");
    assert!(server.stop().success());

    let ok = audit_verify(&data, false);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let line = stderr(&ok);
    assert!(
        line.starts_with("audit log intact: 6 events, head 0x"),
        "{line}"
    );
    assert!(line.contains("(signed head: 6 events"), "{line}");
    let hash = line
        .split("head ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(head.contains(hash), "{head} {line}");
    let json = audit_verify(&data, true);
    assert_eq!(json.status.code(), Some(0));
    let out = String::from_utf8(json.stdout).unwrap();
    assert!(
        out.contains("\"intact\": true") && out.contains("\"events\": 6"),
        "{out}"
    );

    // A seventh event, so that there is a middle one to remove.
    let mut server = Market::start_with(&data, &flags);
    let published = as_admin(&server, "/v1/audit/head");
    let server_key = match server.call("GET", "/v1/receipts/key", None, None).1 {
        Value::Object(m) => m["publicKeyHex"].as_str().unwrap().to_string(),
        other => panic!("{other:?}"),
    };
    assert!(server.stop().success());
    assert_eq!(audit_verify(&data, false).status.code(), Some(0));
    let published_head = published
        .split("\"head\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();

    // The last event cut off (issue 14, item 15): the chain alone would
    // still verify, but the server signed its head at shutdown. Without the
    // market's key the signed heads cannot be checked, and verify says so.
    let cut = tmp.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    copy_db(&data, &cut);
    tamper(&cut, "DELETE FROM audit_events WHERE seq = 7");
    let no_key = audit_verify(&cut, false);
    assert_eq!(no_key.status.code(), Some(1), "{}", stderr(&no_key));
    assert!(
        stderr(&no_key).contains("--server-key"),
        "{}",
        stderr(&no_key)
    );
    let with_key = sealstream()
        .args(["market", "audit", "verify", "--data-dir"])
        .arg(&cut)
        .args(["--server-key", &server_key])
        .output()
        .unwrap();
    assert_eq!(with_key.status.code(), Some(2), "{}", stderr(&with_key));
    assert_eq!(
        stderr(&with_key).trim(),
        "error: audit log not intact: truncated: 6 events, but the published head is of event 7"
    );
    let against = |dir: &Path, head: &str| {
        sealstream()
            .args(["market", "audit", "verify", "--data-dir"])
            .arg(dir)
            .args(["--server-key", &server_key])
            .args(["--head", head, "--events", "7"])
            .output()
            .unwrap()
    };
    let ok = against(&data, &published_head);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    // The log as JSON lines: every event once, in order, linked; a log that
    // does not verify is not exported (and no file is left).
    let export = |dir: &Path, out: &Path| {
        sealstream()
            .args(["market", "audit", "export", "--data-dir"])
            .arg(dir)
            .args(["--server-key", &server_key, "--output"])
            .arg(out)
            .output()
            .unwrap()
    };
    let lines_file = tmp.path().join("audit.jsonl");
    let exported = export(&data, &lines_file);
    assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
    assert!(
        stderr(&exported).contains("audit log exported: 7 events"),
        "{}",
        stderr(&exported)
    );
    let text = std::fs::read_to_string(&lines_file).unwrap();
    let mut prev = "0x".to_string() + &"0".repeat(64);
    for (i, line) in text.lines().enumerate() {
        let event = sealstream_core::json::parse(line.as_bytes()).unwrap();
        assert_eq!(
            event.get("seq").and_then(|v| v.as_u64()),
            Some(i as u64 + 1),
            "{line}"
        );
        assert_eq!(
            event.get("prev").and_then(|v| v.as_str()),
            Some(prev.as_str()),
            "{line}"
        );
        assert!(
            event
                .get("details")
                .is_some_and(|d| d.as_object().is_some()),
            "{line}"
        );
        prev = event
            .get("hash")
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string();
    }
    assert_eq!(text.lines().count(), 7);
    assert_eq!(prev, published_head);
    let refused_file = tmp.path().join("cut.jsonl");
    let refused = export(&cut, &refused_file);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(!refused_file.exists());
    let other = format!("0x{}", "ab".repeat(32));
    let bad = against(&data, &other);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        stderr(&bad).trim(),
        "error: audit log not intact: seq 7: hash is not the published head"
    );

    // An anchor exported and kept elsewhere outlives a rollback of both the
    // database and the head file.
    let anchor = tmp.path().join("anchor.json");
    let exported = sealstream()
        .args(["market", "audit", "anchor", "--data-dir"])
        .arg(&data)
        .arg("--output")
        .arg(&anchor)
        .output()
        .unwrap();
    assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
    let rolled = tmp.path().join("rolled");
    std::fs::create_dir(&rolled).unwrap();
    copy_db(&data, &rolled);
    tamper(&rolled, "DELETE FROM audit_events WHERE seq = 7");
    tamper(&rolled, "DELETE FROM audit_heads WHERE events = 7");
    let rolled_back = sealstream()
        .args(["market", "audit", "verify", "--data-dir"])
        .arg(&rolled)
        .args(["--server-key", &server_key])
        .output()
        .unwrap();
    assert_eq!(
        rolled_back.status.code(),
        Some(0),
        "the database alone cannot tell"
    );
    let anchored = sealstream()
        .args(["market", "audit", "verify", "--data-dir"])
        .arg(&rolled)
        .args(["--server-key", &server_key, "--anchor"])
        .arg(&anchor)
        .output()
        .unwrap();
    assert_eq!(anchored.status.code(), Some(2), "{}", stderr(&anchored));
    assert!(
        stderr(&anchored).contains("truncated"),
        "{}",
        stderr(&anchored)
    );

    // Changed details: the event's own hash no longer matches.
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    copy_db(&data, &copy);
    tamper(
        &data,
        r#"UPDATE audit_events SET details = '{"listen":"0.0.0.0:1"}' WHERE seq = 2"#,
    );
    let bad = audit_verify(&data, false);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert_eq!(
        stderr(&bad).trim(),
        "error: audit log not intact: seq 2: hash does not match its content"
    );
    let bad = audit_verify(&data, true);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8(bad.stdout)
        .unwrap()
        .contains("\"intact\": false"));

    // A removed middle event: the gap is named.
    tamper(&copy, "DELETE FROM audit_events WHERE seq = 2");
    let bad = audit_verify_with(&copy, false, &["--server-key", &server_key]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert_eq!(
        stderr(&bad).trim(),
        "error: audit log not intact: seq 2 missing"
    );

    // Renumbered to hide the gap: the link is broken instead.
    tamper(&copy, "UPDATE audit_events SET seq = 2 WHERE seq = 3");
    let bad = audit_verify_with(&copy, false, &["--server-key", &server_key]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        stderr(&bad).trim(),
        "error: audit log not intact: seq 2: hash does not match its content"
    );
}

#[test]
fn verify_without_a_database_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let o = audit_verify(&tmp.path().join("none"), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no market database here"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_describes_the_market_commands() {
    let o = sealstream().args(["market", "--help"]).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for command in [
        "serve",
        "audit",
        "upload",
        "grant-daemon",
        "machine",
        "dataset",
        "listing",
        "order",
    ] {
        assert!(text.contains(command), "{command} in {text}");
    }
    let o = sealstream()
        .args(["market", "serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    for flag in [
        "--listen",
        "--data-dir",
        "--database-url",
        "127.0.0.1:8080",
        "--evm-rpc",
        "--confirmations",
        "--receipt-key-file",
        "--operator-kek-file",
        "--nonce-key-file",
    ] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
}
