//! `sealstream market serve` and `market audit verify` as processes, on SQLite:
//! health, metrics and audit head over HTTP; graceful stop on SIGTERM; the
//! audit log growing across restarts; tampering named by `audit verify`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::market::Market;

fn sealstream() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealstream"))
}

fn audit_verify(data_dir: &Path, json: bool) -> Output {
    let mut cmd = sealstream();
    cmd.args(["market", "audit", "verify", "--data-dir"])
        .arg(data_dir);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `sql` on the market database with sqlx (no sqlite3 binary needed).
fn tamper(data_dir: &Path, sql: &str) {
    let url = format!("sqlite://{}", data_dir.join("market.db").display());
    let sql = sql.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let done = sqlx::query(&sql).execute(&mut conn).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{sql}");
            conn.close().await.unwrap();
        });
}

#[test]
fn serve_restart_verify_and_tamper() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("market-data");

    // First run: created data dir, health, metrics, one audit event.
    let mut server = Market::start(&data);
    assert!(data.join("market.db").is_file());
    let metrics = server.get("/metrics");
    assert!(
        metrics.contains("# TYPE sealstream_market_http_requests_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sealstream_market_http_requests_total{route="/healthz",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("sealstream_market_http_request_duration_seconds_count"));
    let head = server.get("/v1/audit/head");
    assert!(head.starts_with(r#"{"events":1,"head":"0x"#), "{head}");
    let unknown = ureq::get(&format!("{}/nope", server.base)).call();
    assert!(matches!(unknown, Err(ureq::Error::Status(404, _))));
    assert!(server.stop().success(), "SIGTERM must stop with exit 0");

    // Second run: one more start event.
    let mut server = Market::start(&data);
    let head = server.get("/v1/audit/head");
    assert!(head.starts_with(r#"{"events":2,"head":"0x"#), "{head}");
    assert!(server.stop().success());

    let ok = audit_verify(&data, false);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let line = stderr(&ok);
    assert!(
        line.starts_with("audit log intact: 2 events, head 0x"),
        "{line}"
    );
    assert!(head.contains(line.trim().rsplit(' ').next().unwrap()));
    let json = audit_verify(&data, true);
    assert_eq!(json.status.code(), Some(0));
    let out = String::from_utf8(json.stdout).unwrap();
    assert!(
        out.contains("\"intact\": true") && out.contains("\"events\": 2"),
        "{out}"
    );

    // A third event, so that there is a middle one to remove.
    let mut server = Market::start(&data);
    let published = server.get("/v1/audit/head");
    assert!(server.stop().success());
    assert_eq!(audit_verify(&data, false).status.code(), Some(0));
    let published_head = published
        .split("\"head\":\"")
        .nth(1)
        .unwrap()
        .trim_end_matches("\"}")
        .to_string();

    // The last event cut off: the chain alone still verifies, the published
    // head does not.
    let cut = tmp.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    std::fs::copy(data.join("market.db"), cut.join("market.db")).unwrap();
    tamper(&cut, "DELETE FROM audit_events WHERE seq = 3");
    assert_eq!(audit_verify(&cut, false).status.code(), Some(0));
    let against = |dir: &Path, head: &str| {
        sealstream()
            .args(["market", "audit", "verify", "--data-dir"])
            .arg(dir)
            .args(["--head", head, "--events", "3"])
            .output()
            .unwrap()
    };
    let ok = against(&data, &published_head);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let bad = against(&cut, &published_head);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        stderr(&bad).trim(),
        "error: audit log not intact: truncated: 2 events, but the published head is of event 3"
    );
    let other = format!("0x{}", "ab".repeat(32));
    let bad = against(&data, &other);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        stderr(&bad).trim(),
        "error: audit log not intact: seq 3: hash is not the published head"
    );

    // Changed details: the event's own hash no longer matches.
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(data.join("market.db"), copy.join("market.db")).unwrap();
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
    let bad = audit_verify(&copy, false);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert_eq!(
        stderr(&bad).trim(),
        "error: audit log not intact: seq 2 missing"
    );

    // Renumbered to hide the gap: the link is broken instead.
    tamper(&copy, "UPDATE audit_events SET seq = 2 WHERE seq = 3");
    let bad = audit_verify(&copy, false);
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
    ] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
}
