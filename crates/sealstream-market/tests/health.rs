//! The harness itself and the public basics, on both databases: health,
//! errors as JSON naming no field for unknown routes, restart keeps the
//! audit log.

mod common;

use common::listings_fixtures::new_did;
use common::{block_on, Db, TestServer};
use sealstream_api::audit::SignedAuditHead;
use sealstream_core::keys::ReceiptPublicKey;
use sealstream_market::auth::Role;
use sealstream_market::server::Server;
use sealstream_testkit::{http, on_both_databases};

fn health_and_not_found(db: Db) {
    let mut server = TestServer::start(db);
    let (status, body) = server.get("/healthz", None);
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    let (status, body) = server.get("/v1/nope", None);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "not found");
    // One `server.start` per process (several with SEALSTREAM_TEST_REPLICAS).
    let starts = 1 + server.others.len() as u64;
    let head = server.audit_head();
    assert_eq!(head["events"], starts);
    server.restart();
    let head = server.audit_head();
    assert_eq!(
        head["events"],
        2 * starts,
        "the log survives a restart: {head}"
    );
}

/// Issue 14, item 13: market-wide counts are for auditors and admins; a
/// scraper uses the separate metrics listener.
fn metrics_and_the_audit_head_are_for_auditors(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
    });
    let buyer = server.session_for(&new_did(), &[Role::Buyer, Role::Owner]);
    let auditor = server.session_for(&new_did(), &[Role::Auditor]);
    for path in ["/metrics", "/v1/audit/head"] {
        assert_eq!(server.get(path, None).0, 401, "{path}");
        let (status, body) = server.get(path, Some(&buyer));
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["error"]["message"].is_string(),
            "{path}: JSON refusal {body}"
        );
        assert_eq!(server.get(path, Some(&auditor)).0, 200, "{path}");
    }
    let metrics_base = server.metrics_base.as_ref().unwrap();
    let scraped = http::send(http::request("GET", &format!("{metrics_base}/metrics")))
        .ok()
        .text();
    assert!(
        scraped.contains("sealstream_market_http_requests_total"),
        "{scraped}"
    );
    let other = http::send(http::request("GET", &format!("{metrics_base}/v1/catalog")));
    assert_eq!(
        other.status, 404,
        "the metrics listener serves /metrics only"
    );
}

/// Issue 14, item 15: the audit head is signed by the server's key; a log
/// cut short or rewritten with recomputed hashes is refused at start.
fn the_audit_head_is_signed_and_checked_at_start(db: Db) {
    let mut server = TestServer::start(db);
    let auditor = server.session_for(&new_did(), &[Role::Auditor]);
    let (status, head) = server.get("/v1/audit/head", Some(&auditor));
    assert_eq!(status, 200, "{head}");
    let signed = SignedAuditHead::parse(head.to_string().as_bytes()).unwrap();
    let (_, key) = server.get("/v1/receipts/key", None);
    let key = ReceiptPublicKey::from_hex(key["publicKeyHex"].as_str().unwrap(), "key").unwrap();
    signed.verify(Some(&key)).unwrap();
    assert_eq!(
        serde_json::json!(signed.events),
        server.audit_head()["events"]
    );

    // Cut the last events off (and the signed heads with them): the head
    // file outside the database still names the longer log.
    server.restart();
    server.restart();
    let events = server.audit_head()["events"].as_i64().unwrap();
    server.stop();
    let store = block_on(sealstream_market::store::Store::open(&server.database_url)).unwrap();
    block_on(async {
        for sql in [
            "DELETE FROM audit_events WHERE seq > 1",
            "DELETE FROM audit_heads WHERE events > 1",
        ] {
            sqlx::query(sql).execute(store.pool()).await.unwrap();
        }
        store.close().await;
    });
    assert!(events > 1);
    let error = block_on(Server::bind(server.config.clone())).expect_err("a cut log");
    let text = error.to_string();
    assert!(text.contains("audit log does not verify"), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

/// Issue 14, item 16: every refusal is JSON, the framework's too, and no
/// answer may be cached.
fn refusals_are_json_and_answers_are_not_cached(db: Db) {
    let server = TestServer::start_with(db, |c| c.body_limit = 1024);
    let json_refusal = |what: &str, request: http::RequestBuilder, status: u16| {
        let response = http::send(request);
        assert_eq!(response.status, status, "{what}");
        assert_eq!(response.header("Cache-Control"), Some("no-store"), "{what}");
        assert!(
            response.content_type().starts_with("application/json"),
            "{what}: {}",
            response.content_type()
        );
        let body: serde_json::Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    };
    let big = "x".repeat(4096);
    json_refusal(
        "a body over the limit",
        server
            .request("POST", "/v1/auth/verify", None)
            .header("Content-Type", "application/json")
            .body(format!("{{\"message\":\"{big}\",\"signature\":\"00\"}}")),
        413,
    );
    json_refusal(
        "a wrong method",
        server.request("DELETE", "/healthz", None),
        405,
    );
    json_refusal(
        "a malformed query string",
        server.request("GET", "/v1/catalog?limit=many", None),
        400,
    );
    // Answers that carry a nonce, a session token or anything else.
    for (method, path) in [
        ("POST", "/v1/auth/nonce"),
        ("GET", "/healthz"),
        ("GET", "/v1/catalog"),
    ] {
        let response = http::send(server.request(method, path, None).body("")).ok();
        assert_eq!(response.header("Cache-Control"), Some("no-store"), "{path}");
    }
}

/// A route that answers without reading the request body (the nonce takes
/// none; a refusal comes before the body) must still read it, or hyper
/// closes the kept-alive connection under the client's next request (seen
/// as "Unexpected EOF" in clients signing in: nonce, then verify on the
/// same connection).
fn an_unread_body_does_not_close_the_connection(db: Db) {
    use std::io::{Read, Write};
    let server = TestServer::start(db);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut socket = std::net::TcpStream::connect(&addr).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // The head first; the body only once the server has had time to answer
    // without it.
    write!(
        socket,
        "POST /v1/auth/nonce HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\n\r\n"
    )
    .unwrap();
    socket.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    write!(
        socket,
        "{{}}GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answers = String::new();
    let _ = socket.read_to_string(&mut answers);
    assert_eq!(
        answers.matches("HTTP/1.1 200 OK").count(),
        2,
        "both requests answered on one connection: {answers}"
    );
    assert!(answers.contains(r#"{"status":"ok"}"#), "{answers}");
}

/// A path parameter that does not decode and an unknown query parameter
/// are 400s naming the parameter (the API fuzzing run sent both; the
/// answers said `"field": null`).
fn malformed_paths_and_queries_name_the_parameter(db: Db) {
    let server = TestServer::start(db);
    for (path, field) in [
        ("/v1/listings/%FF", "id"),
        ("/v1/listings/ls_1/samples/%C3%28", "index"),
        ("/v1/orders/ord_1/confirmation?colour=red", "colour"),
        ("/v1/orders/ord_1/release/manifest.json?=x", "query"),
    ] {
        let (status, body) = server.get(path, None);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
}

on_both_databases!(
    an_unread_body_does_not_close_the_connection,
    malformed_paths_and_queries_name_the_parameter,
    refusals_are_json_and_answers_are_not_cached,
    health_and_not_found,
    metrics_and_the_audit_head_are_for_auditors,
    the_audit_head_is_signed_and_checked_at_start
);
