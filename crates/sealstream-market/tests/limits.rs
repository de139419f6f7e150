//! Upload quotas, the free-disk floor and write rate limits (issue 14,
//! item 6), on both databases: quotas count ciphertext bytes and chunks per
//! owner across the owner's machines and hold under concurrent uploads;
//! refusals are 507 (quota, disk) and 429 (rate) naming the limit, with
//! nothing stored.

mod common;

use common::chains::{insert_machine, new_owner, write_chain, TestMachine};
use common::{multipart, path_segment, Db, TestServer};
use sealstream_core::chunk::{ChainState, SealedChunk, TAG_LEN};
use sealstream_market::auth::Role;
use sealstream_market::store::Engine;
use sealstream_testkit::on_both_databases;
use serde_json::Value;

const TOPIC: &str = "/robot/imu";

fn upload(
    server: &TestServer,
    token: &str,
    machine: &TestMachine,
    chunk: &SealedChunk,
) -> (u16, Value) {
    upload_to(server, token, machine, TOPIC, chunk)
}

fn upload_to(
    server: &TestServer,
    token: &str,
    machine: &TestMachine,
    topic: &str,
    chunk: &SealedChunk,
) -> (u16, Value) {
    let (content_type, body) = multipart(&[
        (
            "envelope",
            "application/json",
            chunk.envelope.to_pretty_json().as_bytes(),
        ),
        ("ciphertext", "application/octet-stream", &chunk.ciphertext),
    ]);
    server.send_raw(
        "PUT",
        &format!(
            "/v1/machines/{}/topics/{}/chunks/{}",
            machine.did,
            path_segment(topic),
            chunk.envelope.index
        ),
        Some(token),
        &content_type,
        &body,
    )
}

fn chain(machine: &TestMachine, n: usize, size: usize) -> Vec<SealedChunk> {
    let plaintexts: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; size]).collect();
    write_chain(machine, ChainState::new(), &plaintexts)
}

fn refused_with(answer: &(u16, Value), status: u16, limit: &str) -> String {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["field"], limit, "{}", answer.1);
    answer.1["error"]["message"].as_str().unwrap().to_string()
}

/// The chunk quota counts the owner's chunks on all its machines; another
/// owner has its own.
fn chunk_quota_counts_every_machine_of_the_owner(db: Db) {
    let server = TestServer::start_with(db, |c| c.owner_quota_chunks = 5);
    let (_, owner) = new_owner();
    let token = server.session_for(&owner, &[Role::Owner]);
    let (m1, m2) = (
        insert_machine(&server, &owner),
        insert_machine(&server, &owner),
    );
    let (c1, c2) = (chain(&m1, 3, 100), chain(&m2, 3, 100));
    for c in &c1 {
        assert_eq!(upload(&server, &token, &m1, c).0, 201);
    }
    for c in &c2[..2] {
        assert_eq!(upload(&server, &token, &m2, c).0, 201);
    }
    let objects = server.object_keys().len();
    let message = refused_with(
        &upload(&server, &token, &m2, &c2[2]),
        507,
        "owner-quota-chunks",
    );
    assert!(message.contains("5 of 5"), "{message}");
    assert_eq!(server.count_rows("chunks"), 5, "nothing stored");
    assert_eq!(server.object_keys().len(), objects);
    // The same chunk again is still answered (nothing new is stored).
    assert_eq!(upload(&server, &token, &m1, &c1[2]).0, 200);
    // Another owner is not held back.
    let (_, other) = new_owner();
    let other_token = server.session_for(&other, &[Role::Owner]);
    let m3 = insert_machine(&server, &other);
    assert_eq!(
        upload(&server, &other_token, &m3, &chain(&m3, 1, 100)[0]).0,
        201
    );
}

/// The byte quota counts ciphertext bytes; a chunk that would cross it is
/// refused after its bytes were counted, and leaves no object.
fn byte_quota_counts_ciphertext_bytes(db: Db) {
    let (_, owner) = new_owner();
    // A 1,000-byte plaintext seals to 1,000 bytes and the tag.
    let probe = 1000 + TAG_LEN as u64;
    let server = TestServer::start_with(db, |c| c.owner_quota_bytes = 2 * probe + probe / 2);
    let token = server.session_for(&owner, &[Role::Owner]);
    let machine = insert_machine(&server, &owner);
    let c = chain(&machine, 3, 1000);
    assert_eq!(c[0].ciphertext.len() as u64, probe);
    assert_eq!(upload(&server, &token, &machine, &c[0]).0, 201);
    assert_eq!(upload(&server, &token, &machine, &c[1]).0, 201);
    let message = refused_with(
        &upload(&server, &token, &machine, &c[2]),
        507,
        "owner-quota-bytes",
    );
    assert!(
        message.contains(&format!("{} of {}", 2 * probe, 2 * probe + probe / 2)),
        "{message}"
    );
    assert_eq!(server.count_rows("chunks"), 2);
    assert_eq!(server.object_keys().len(), 2, "no object left");
    // Once the owner is at or over it, uploads are refused before any
    // ciphertext is read.
    let server = TestServer::start_with(db, |c| c.owner_quota_bytes = probe);
    let token = server.session_for(&owner, &[Role::Owner]);
    let machine = insert_machine(&server, &owner);
    let c = chain(&machine, 2, 1000);
    assert_eq!(upload(&server, &token, &machine, &c[0]).0, 201);
    refused_with(
        &upload(&server, &token, &machine, &c[1]),
        507,
        "owner-quota-bytes",
    );
}

/// Concurrent uploads by one owner on 8 chains never store more chunks
/// than the quota: exactly the quota once anything was refused.
fn chunk_quota_holds_under_concurrent_uploads(db: Db) {
    let quota = 5;
    let server = TestServer::start_with(db, |c| c.owner_quota_chunks = quota);
    let (_, owner) = new_owner();
    let token = server.session_for(&owner, &[Role::Owner]);
    let machines: Vec<TestMachine> = (0..4).map(|_| insert_machine(&server, &owner)).collect();
    let chains: Vec<(usize, String, Vec<SealedChunk>)> = (0..8)
        .map(|i| {
            (
                i % 4,
                format!("/topic/{i}"),
                chain(&machines[i % 4], 2, 200),
            )
        })
        .collect();
    let barrier = std::sync::Barrier::new(chains.len());
    let statuses: Vec<Vec<u16>> = std::thread::scope(|s| {
        let handles: Vec<_> = chains
            .iter()
            .map(|(m, topic, chunks)| {
                let (server, token, barrier, machine) = (&server, &token, &barrier, &machines[*m]);
                s.spawn(move || {
                    barrier.wait();
                    let mut out = Vec::new();
                    for chunk in chunks {
                        let (status, body) = upload_to(server, token, machine, topic, chunk);
                        out.push(status);
                        if status != 201 {
                            assert_eq!(status, 507, "{body}");
                            assert_eq!(body["error"]["field"], "owner-quota-chunks");
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored = statuses.iter().flatten().filter(|s| **s == 201).count();
    assert_eq!(stored, quota as usize, "{statuses:?}");
    assert_eq!(server.count_rows("chunks"), quota as i64);
    assert_eq!(server.object_keys().len(), quota as usize);
}

/// Below the free-disk floor, uploads are refused before anything is
/// stored; the message names the floor, not the space left.
fn uploads_stop_at_the_free_disk_floor(db: Db) {
    let server = TestServer::start_with(db, |c| c.min_free_disk = u64::MAX);
    let (_, owner) = new_owner();
    let token = server.session_for(&owner, &[Role::Owner]);
    let machine = insert_machine(&server, &owner);
    let answer = upload(&server, &token, &machine, &chain(&machine, 1, 100)[0]);
    if server.state.objects.local_dir().is_none() && server.store.engine() == Engine::Postgres {
        // Objects in S3 and rows in PostgreSQL: no local disk fills, so
        // there is no floor to keep (the replica run, SEALSTREAM_TEST_OBJECT_STORE).
        assert_eq!(answer.0, 201, "{}", answer.1);
        return;
    }
    let message = refused_with(&answer, 507, "min-free-disk");
    assert!(message.contains(&u64::MAX.to_string()), "{message}");
    assert_eq!(server.count_rows("chunks"), 0);
    assert!(server.object_keys().is_empty());
}

/// Writes are limited per principal (whatever session it uses) and, when
/// anonymous, per client address; reads are not.
fn writes_are_rate_limited_per_principal(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.write_rate = 0.001;
        c.write_burst = 3;
        c.anonymous_write_rate = 0.001;
        c.anonymous_write_burst = 2;
    });
    let (_, alice) = new_owner();
    let (_, bob) = new_owner();
    let a1 = server.session_for(&alice, &[Role::Owner]);
    let a2 = server.session_for(&alice, &[]);
    let b = server.session_for(&bob, &[Role::Owner]);
    let empty = serde_json::json!({});
    for _ in 0..3 {
        // Refused for its body, but a write all the same.
        assert_eq!(
            server.send("POST", "/v1/listings", Some(&a1), &empty).0,
            400
        );
    }
    let response = sealstream_testkit::http::send(
        server
            .request("POST", "/v1/listings", Some(&a2))
            .header("Content-Type", "application/json")
            .body("{}"),
    );
    assert_eq!(response.status, 429, "expected 429: {response:?}");
    let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["error"]["field"], "write-rate", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("burst of 3"),
        "{body}"
    );
    assert_eq!(server.send("POST", "/v1/listings", Some(&b), &empty).0, 400);
    assert_eq!(server.get("/v1/listings?mine=true", Some(&a1)).0, 200);
    // Anonymous writes count against the client's address, under their own
    // limits; a token the server does not know is no session.
    for _ in 0..2 {
        let (status, _) = server.send_raw("POST", "/v1/auth/nonce", None, "text/plain", b"");
        assert_eq!(status, 200);
    }
    let (status, body) = server.send_raw("POST", "/v1/auth/nonce", None, "text/plain", b"");
    assert_eq!(
        (status, &body["error"]["field"]),
        (429, &Value::from("anonymous-write-rate"))
    );
    let (status, body) = server.send("POST", "/v1/listings", Some("not-a-token"), &empty);
    assert_eq!(
        (status, &body["error"]["field"]),
        (429, &Value::from("anonymous-write-rate"))
    );
}

on_both_databases!(
    chunk_quota_counts_every_machine_of_the_owner,
    byte_quota_counts_ciphertext_bytes,
    chunk_quota_holds_under_concurrent_uploads,
    uploads_stop_at_the_free_disk_floor,
    writes_are_rate_limited_per_principal,
);
