//! The harness itself and the public basics, on both databases: health,
//! errors as JSON naming no field for unknown routes, restart keeps the
//! audit log.

mod common;

use common::{Db, TestServer};

fn health_and_not_found(db: Db) {
    let mut server = TestServer::start(db);
    let (status, body) = server.get("/healthz", None);
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    let (status, body) = server.get("/v1/nope", None);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "not found");
    let (_, head) = server.get("/v1/audit/head", None);
    assert_eq!(head["events"], 1);
    server.restart();
    let (_, head) = server.get("/v1/audit/head", None);
    assert_eq!(head["events"], 2, "the log survives a restart: {head}");
}

on_both_databases!(health_and_not_found);
