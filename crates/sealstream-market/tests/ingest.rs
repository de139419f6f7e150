//! Verified, streaming ingest of chunk chains and reading them back, on both
//! databases: real chains written with `ChainWriter`, uploaded as hand-made
//! multipart bodies; every refusal is a 4xx naming the field with nothing
//! stored; the plaintext never reaches the database or the object store.

mod common;

use std::convert::Infallible;

use common::{
    block_on, files_under, multipart, path_segment, register_machine_row, Db, TestServer,
};
use sealstream_core::chunk::{ChainConfig, ChainState, ChainWriter, Recipient, SealedChunk};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_market::auth::Role;
use sealstream_testkit::{http, on_both_databases};
use serde_json::Value;
use sqlx::Row;

const TOPIC: &str = "/sensor/gps";

/// A machine with its keys, its owner, and the recipients it registered.
struct Machine {
    did: String,
    owner: String,
    chain_key: ChainSigningKey,
    recipients: Vec<Recipient>,
}

impl Machine {
    fn new() -> Machine {
        let owner = Did::of_key(&MachineSigningKey::generate()).to_string();
        let recipients = ChainConfig::default_recipients(
            RecipientSecretKey::generate().public_key(),
            RecipientSecretKey::generate().public_key(),
            RecipientSecretKey::generate().public_key(),
        );
        Machine {
            did: Did::of_key(&MachineSigningKey::generate()).to_string(),
            owner,
            chain_key: ChainSigningKey::generate(),
            recipients,
        }
    }

    /// Inserts the `machines` row.
    fn register(&self, server: &TestServer) {
        let recipients: Vec<(String, String, String)> = self
            .recipients
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.recipient_type.clone(),
                    r.public_key.to_hex(),
                )
            })
            .collect();
        let refs: Vec<(&str, &str, &str)> = recipients
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        register_machine_row(
            server,
            &self.did,
            &self.owner,
            &self.chain_key.public_key().to_hex(),
            &refs,
        );
    }

    /// A chain of `data` cut into `chunk_size` slices, signed with the
    /// machine's chain key for its recipients.
    fn chain(&self, data: &[u8], chunk_size: usize) -> Vec<SealedChunk> {
        self.chain_with(
            ChainSigningKey::from_bytes(&self.chain_key_bytes()),
            &self.did,
            self.recipients.clone(),
            data,
            chunk_size,
        )
    }

    fn chain_key_bytes(&self) -> [u8; 32] {
        let hex = self.chain_key.to_hex_secret();
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex.as_str(), &mut out).unwrap();
        out
    }

    fn chain_with(
        &self,
        key: ChainSigningKey,
        did: &str,
        recipients: Vec<Recipient>,
        data: &[u8],
        chunk_size: usize,
    ) -> Vec<SealedChunk> {
        let mut config = ChainConfig::new(key, did, &format!("{did}#keys-1"), recipients);
        config.chunk_size = chunk_size;
        config.parallelism = 2;
        let mut out = Vec::new();
        {
            let mut writer = ChainWriter::new(config, ChainState::new(), |c: SealedChunk| {
                out.push(c);
                Ok::<(), Infallible>(())
            })
            .unwrap();
            writer.write(data).unwrap();
            let _summary = writer.finish().unwrap();
        }
        out
    }
}

fn chunk_path(did: &str, topic: &str, index: u64) -> String {
    format!(
        "/v1/machines/{did}/topics/{}/chunks/{index}",
        path_segment(topic)
    )
}

/// A request body: its content type and bytes.
type Body = (String, Vec<u8>);

fn body_of(chunk: &SealedChunk) -> (String, Vec<u8>) {
    body_with(
        chunk.envelope.to_pretty_json().as_bytes(),
        &chunk.ciphertext,
    )
}

fn body_with(envelope: &[u8], ciphertext: &[u8]) -> (String, Vec<u8>) {
    multipart(&[
        ("envelope", "application/json", envelope),
        ("ciphertext", "application/octet-stream", ciphertext),
    ])
}

fn upload(server: &TestServer, token: &str, did: &str, chunk: &SealedChunk) -> (u16, Value) {
    let (content_type, body) = body_of(chunk);
    server.send_raw(
        "PUT",
        &chunk_path(did, TOPIC, chunk.envelope.index),
        Some(token),
        &content_type,
        &body,
    )
}

/// What must not change when an upload is refused.
#[derive(Debug, PartialEq)]
struct Stored {
    chunks: i64,
    chains: Vec<(String, i64, String)>,
    objects: Vec<String>,
    audit: Value,
}

fn stored(server: &TestServer) -> Stored {
    let (chunks, chains) = block_on(async {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM chunks")
            .fetch_one(server.store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        let chains = sqlx::query(
            "SELECT topic, chunk_count, head_chunk_id FROM chains ORDER BY machine_did, topic",
        )
        .fetch_all(server.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        (n, chains)
    });
    Stored {
        chunks,
        chains,
        objects: server.object_keys(),
        audit: server.audit_head(),
    }
}

/// A server with one registered machine, and sessions for it and its owner.
fn setup(db: Db) -> (TestServer, Machine, String, String) {
    let server = TestServer::start(db);
    let machine = Machine::new();
    machine.register(&server);
    let machine_token = server.session_for(&machine.did, &[]);
    let owner_token = server.session_for(&machine.owner, &[Role::Owner]);
    (server, machine, machine_token, owner_token)
}

fn multi_chunk_chain_uploads_and_reads_back(db: Db) {
    let (server, machine, machine_token, owner_token) = setup(db);
    let data: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let chain = machine.chain(&data, 4096);
    assert_eq!(chain.len(), 5);
    let before = server.audit_head()["events"].as_u64().unwrap();
    for (i, chunk) in chain.iter().enumerate() {
        // The machine uploads the first chunks, its owner the rest.
        let token = if i < 3 { &machine_token } else { &owner_token };
        let (status, body) = upload(&server, token, &machine.did, chunk);
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["stored"], true);
        assert_eq!(body["chunkId"], chunk.envelope.chunk_id.as_str());
        assert_eq!(body["index"], i as u64);
        assert_eq!(body["chainLength"], i as u64 + 1);
    }
    let after = server.audit_head()["events"].as_u64().unwrap();
    assert_eq!(after, before + 5, "one audit event per chunk");
    let last_event = block_on(async {
        sqlx::query(
            "SELECT actor, action, subject, details FROM audit_events ORDER BY seq DESC LIMIT 1",
        )
        .fetch_one(server.store.pool())
        .await
        .unwrap()
    });
    assert_eq!(last_event.get::<String, _>(0), machine.owner);
    assert_eq!(last_event.get::<String, _>(1), "chunk.ingest");
    assert_eq!(
        last_event.get::<String, _>(2),
        format!("{} {TOPIC} 4", machine.did)
    );
    let details: Value = serde_json::from_str(&last_event.get::<String, _>(3)).unwrap();
    assert_eq!(details["chunkId"], chain[4].envelope.chunk_id.as_str());
    assert_eq!(details["size"], chain[4].ciphertext.len() as u64);
    assert_eq!(
        details["ciphertextHash"],
        chain[4].envelope.encrypted_data_hash.as_str()
    );

    // Topics.
    let (status, topics) = server.get(
        &format!("/v1/machines/{}/topics", machine.did),
        Some(&owner_token),
    );
    assert_eq!(status, 200, "{topics}");
    let total: usize = chain.iter().map(|c| c.ciphertext.len()).sum();
    assert_eq!(topics["topics"].as_array().unwrap().len(), 1);
    assert_eq!(topics["topics"][0]["topic"], TOPIC);
    assert_eq!(topics["topics"][0]["chunkCount"], 5);
    assert_eq!(topics["topics"][0]["bytes"], total as u64);
    assert_eq!(
        topics["topics"][0]["headChunkId"],
        chain[4].envelope.chunk_id.as_str()
    );

    // Chunks, two per page.
    let base = format!(
        "/v1/machines/{}/topics/{}/chunks",
        machine.did,
        path_segment(TOPIC)
    );
    let mut from = Some(0u64);
    let mut seen = Vec::new();
    while let Some(f) = from {
        let (status, page) = server.get(&format!("{base}?from={f}&limit=2"), Some(&machine_token));
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["chainLength"], 5);
        for c in page["chunks"].as_array().unwrap() {
            seen.push(c.clone());
        }
        from = page["next"].as_u64();
    }
    assert_eq!(seen.len(), 5);
    for (c, chunk) in seen.iter().zip(&chain) {
        assert_eq!(c["index"], chunk.envelope.index);
        assert_eq!(c["chunkId"], chunk.envelope.chunk_id.as_str());
        let expected: Value = serde_json::from_str(&chunk.envelope.to_pretty_json()).unwrap();
        assert_eq!(c["envelope"], expected);
    }
    let (status, body) = server.get(&format!("{base}?limit=1001"), Some(&owner_token));
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &Value::from("limit"))
    );
    let (status, body) = server.get(&format!("{base}?from=x"), Some(&owner_token));
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &Value::from("from"))
    );

    // Envelope and ciphertext of each chunk, as uploaded.
    for chunk in &chain {
        let path = chunk_path(&machine.did, TOPIC, chunk.envelope.index);
        let response =
            http::send(server.request("GET", &format!("{path}/envelope"), Some(&owner_token))).ok();
        assert_eq!(response.content_type(), "application/json");
        assert_eq!(response.text(), chunk.envelope.to_pretty_json());
        let response =
            http::send(server.request("GET", &format!("{path}/ciphertext"), Some(&machine_token)))
                .ok();
        assert_eq!(response.content_type(), "application/octet-stream");
        assert_eq!(response.body, chunk.ciphertext);
    }
    let (status, body) = server.get(
        &format!("{}/envelope", chunk_path(&machine.did, TOPIC, 5)),
        Some(&owner_token),
    );
    assert_eq!(status, 404, "{body}");
    assert_ne!(body["error"]["message"], "not found");

    // The objects: one per chunk, under a key that does not show the topic.
    let objects = server.object_keys();
    assert_eq!(objects.len(), 5, "{objects:?}");
    for o in &objects {
        assert!(!o.contains("sensor"), "{o:?}");
    }
    // The shared lookups read the same rows.
    let rows = block_on(sealstream_market::ingest::db::chunk_rows(
        server.store.pool(),
        &machine.did,
        TOPIC,
        1..3,
    ))
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 2]);
}

/// Issue 14, item 3: a chunk id is held once in the market. The same
/// machine's chunk uploaded again under another topic would start a copy of
/// the chain there (the signature and the link of a first chunk both check
/// out); it is refused, and nothing is stored.
fn a_chunk_is_held_under_one_chain_only(db: Db) {
    let (server, machine, machine_token, _) = setup(db);
    let chain = machine.chain(b"one reading, sold once", 4096);
    assert_eq!(
        upload(&server, &machine_token, &machine.did, &chain[0]).0,
        201
    );
    let before = stored(&server);
    let (content_type, body) = body_of(&chain[0]);
    let reply = server.send_raw(
        "PUT",
        &chunk_path(&machine.did, "/sensor/copy", 0),
        Some(&machine_token),
        &content_type,
        &body,
    );
    assert_eq!(reply.0, 409, "{}", reply.1);
    assert_eq!(reply.1["error"]["field"], "envelope.chunkId", "{}", reply.1);
    assert_eq!(stored(&server), before);
}

fn same_chunk_again_is_stored_once(db: Db) {
    let (server, machine, token, _) = setup(db);
    let chain = machine.chain(&[7u8; 300], 100);
    for chunk in &chain {
        assert_eq!(upload(&server, &token, &machine.did, chunk).0, 201);
    }
    let before = stored(&server);
    for chunk in [&chain[0], &chain[2]] {
        let (status, body) = upload(&server, &token, &machine.did, chunk);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["stored"], false);
        assert_eq!(body["chunkId"], chunk.envelope.chunk_id.as_str());
        assert_eq!(body["chainLength"], 3);
    }
    assert_eq!(stored(&server), before, "a repeated chunk writes nothing");
}

/// Uploads `body` and checks the refusal (`field` "" for none) and that
/// nothing changed.
fn refused(
    server: &TestServer,
    token: &str,
    path: &str,
    (content_type, body): (String, Vec<u8>),
    status: u16,
    field: &str,
) -> Value {
    let before = stored(server);
    let (got, answer) = server.send_raw("PUT", path, Some(token), &content_type, &body);
    assert_eq!(got, status, "{path}: {answer}");
    let expected = if field.is_empty() {
        Value::Null
    } else {
        Value::from(field)
    };
    assert_eq!(answer["error"]["field"], expected, "{answer}");
    assert_eq!(stored(server), before, "nothing stored on {answer}");
    answer
}

fn bad_uploads_are_refused_and_store_nothing(db: Db) {
    let (server, machine, token, _) = setup(db);
    let chain = machine.chain(&[1u8; 400], 100);
    let did = machine.did.as_str();
    let path = |i| chunk_path(did, TOPIC, i);
    let envelope_json =
        |c: &SealedChunk| -> Value { serde_json::from_str(&c.envelope.to_pretty_json()).unwrap() };
    let with = |c: &SealedChunk, edit: &dyn Fn(&mut Value)| {
        let mut v = envelope_json(c);
        edit(&mut v);
        body_with(v.to_string().as_bytes(), &c.ciphertext)
    };

    // Nothing held yet: the chain must start at 0.
    refused(
        &server,
        &token,
        &path(1),
        body_of(&chain[1]),
        409,
        "envelope.index",
    );
    assert_eq!(upload(&server, &token, did, &chain[0]).0, 201);

    let envelope_1 = chain[1].envelope.to_pretty_json();
    let envelope_part = ("envelope", "application/json", envelope_1.as_bytes());
    let ciphertext_part = (
        "ciphertext",
        "application/octet-stream",
        chain[1].ciphertext.as_slice(),
    );
    let other_chain_key = |chain_key, machine_did: &str, recipients: usize| {
        let recipients = machine.recipients[..recipients].to_vec();
        body_of(&machine.chain_with(chain_key, machine_did, recipients, &[1u8; 400], 100)[0])
    };
    let same_key = || ChainSigningKey::from_bytes(&machine.chain_key_bytes());
    let other_did = Did::of_key(&MachineSigningKey::generate()).to_string();
    let all = machine.recipients.len();
    let mut tampered = chain[1].ciphertext.clone();
    tampered[0] ^= 1;
    let other_chain = machine.chain(&[2u8; 400], 100);
    let big_envelope = vec![b' '; (1 << 20) + 1];
    // (what, path, body, status, the field named)
    let cases: Vec<(&str, String, Body, u16, &str)> = vec![
        (
            "wrong signature",
            path(1),
            with(&chain[1], &|v| {
                let s = v["signature"]["value"].as_str().unwrap().to_string();
                let first = if s.starts_with('0') { "1" } else { "0" };
                v["signature"]["value"] = Value::from(format!("{first}{}", &s[1..]));
            }),
            422,
            "envelope.signature.value",
        ),
        (
            "signed with another chain key than the one registered",
            path(0),
            other_chain_key(ChainSigningKey::generate(), did, all),
            422,
            "envelope.signature.publicKeyHex",
        ),
        (
            "signed for another machine DID",
            path(0),
            other_chain_key(same_key(), &other_did, all),
            422,
            "envelope.signature.machineDid",
        ),
        (
            "ciphertext tampered",
            path(1),
            body_with(envelope_1.as_bytes(), &tampered),
            422,
            "ciphertext",
        ),
        (
            "ciphertext cut short",
            path(1),
            body_with(envelope_1.as_bytes(), &chain[1].ciphertext[..10]),
            422,
            "ciphertext",
        ),
        (
            "broken link: chunk 1 of another chain by the same machine",
            path(1),
            body_of(&other_chain[1]),
            409,
            "envelope.previousChunkId",
        ),
        (
            "another chunk at a taken index",
            path(0),
            body_of(&other_chain[0]),
            409,
            "envelope.index",
        ),
        (
            "index gap",
            path(2),
            body_of(&chain[2]),
            409,
            "envelope.index",
        ),
        (
            "index in the path is not the envelope's",
            path(2),
            body_of(&chain[1]),
            400,
            "envelope.index",
        ),
        (
            "the chunk id does not recompute",
            path(1),
            with(&chain[1], &|v| {
                v["chunkId"] = Value::from(format!("0x{}", "ab".repeat(32)));
            }),
            422,
            "envelope.chunkId",
        ),
        (
            "not wrapped for a registered recipient",
            path(0),
            other_chain_key(same_key(), did, 2),
            422,
            "envelope.encryption.keyRecipients",
        ),
        (
            "no recipients",
            path(1),
            with(&chain[1], &|v| {
                v["encryption"]["keyRecipients"] = Value::Array(vec![]);
            }),
            422,
            "envelope.encryption.keyRecipients",
        ),
        (
            "no encryption",
            path(1),
            with(&chain[1], &|v| {
                v.as_object_mut().unwrap().remove("encryption");
            }),
            400,
            "envelope.encryption",
        ),
        (
            "not encrypted",
            path(1),
            with(&chain[1], &|v| {
                v["encryption"]["algorithm"] = Value::from("none");
            }),
            422,
            "envelope.encryption.algorithm",
        ),
        // Malformed envelopes.
        (
            "truncated envelope",
            path(1),
            body_with(b"{\"schemaVersion\": ", &chain[1].ciphertext),
            400,
            "envelope",
        ),
        (
            "no signature",
            path(1),
            with(&chain[1], &|v| {
                v.as_object_mut().unwrap().remove("signature");
            }),
            400,
            "envelope.signature",
        ),
        (
            "index not a number",
            path(1),
            with(&chain[1], &|v| v["index"] = Value::from("one")),
            400,
            "envelope.index",
        ),
        // Parts missing or out of order.
        (
            "ciphertext only",
            path(1),
            multipart(&[ciphertext_part]),
            400,
            "envelope",
        ),
        (
            "reversed",
            path(1),
            multipart(&[ciphertext_part, envelope_part]),
            400,
            "envelope",
        ),
        (
            "envelope only",
            path(1),
            multipart(&[envelope_part]),
            400,
            "ciphertext",
        ),
        (
            "an extra part",
            path(1),
            multipart(&[envelope_part, ciphertext_part, ("more", "text/plain", b"x")]),
            400,
            "more",
        ),
        (
            "envelope too large",
            path(1),
            body_with(&big_envelope, b"x"),
            413,
            "envelope",
        ),
        (
            "not a form at all",
            path(1),
            ("application/json".into(), b"{}".to_vec()),
            400,
            "Content-Type",
        ),
        // Bad path parts.
        (
            "index not a number in the path",
            format!("/v1/machines/{did}/topics/t/chunks/x"),
            body_of(&chain[1]),
            400,
            "index",
        ),
        (
            "not a DID in the path",
            chunk_path("did:peaq:0x12", TOPIC, 1),
            body_of(&chain[1]),
            400,
            "did",
        ),
    ];
    for (what, path, body, status, field) in cases {
        eprintln!("{what}");
        refused(&server, &token, &path, body, status, field);
    }

    // After all that, the chain goes on from where it was.
    for chunk in &chain[1..] {
        assert_eq!(upload(&server, &token, did, chunk).0, 201);
    }
}

fn oversize_body_is_413(db: Db) {
    let server = TestServer::start_with(db, |c| c.chunk_limit = 64 * 1024);
    let machine = Machine::new();
    machine.register(&server);
    let token = server.session_for(&machine.did, &[]);
    let chain = machine.chain(&vec![3u8; 100_000], 100_000);
    let (content_type, body) = body_of(&chain[0]);
    let before = stored(&server);
    // The head alone: the limit answers before any of the body is read.
    let (status, answer) = server.send_head_only(
        "PUT",
        &chunk_path(&machine.did, TOPIC, 0),
        Some(&token),
        &content_type,
        body.len(),
    );
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["field"], "body", "{answer}");
    assert_eq!(stored(&server), before);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("65536"));
    let small = machine.chain(&[3u8; 1000], 1000);
    assert_eq!(upload(&server, &token, &machine.did, &small[0]).0, 201);
}

fn only_the_machine_and_its_owner_upload_and_read(db: Db) {
    let (server, machine, token, owner_token) = setup(db);
    let chain = machine.chain(&[5u8; 200], 100);
    let path = chunk_path(&machine.did, TOPIC, 0);
    let (ct, body) = body_of(&chain[0]);
    // Anonymous.
    let (status, answer) = server.send_raw("PUT", &path, None, &ct, &body);
    assert_eq!(status, 401, "{answer}");
    // Another owner, with a machine of their own; a buyer; an admin.
    let other = Machine::new();
    other.register(&server);
    let other_owner = server.session_for(&other.owner, &[Role::Owner]);
    let other_machine = server.session_for(&other.did, &[]);
    let admin = server.session_for(
        &Did::of_key(&MachineSigningKey::generate()).to_string(),
        &[Role::Admin],
    );
    for t in [&other_owner, &other_machine, &admin] {
        refused(&server, t, &path, (ct.clone(), body.clone()), 403, "");
    }
    // An unregistered machine.
    let stranger = Did::of_key(&MachineSigningKey::generate()).to_string();
    let answer = refused(
        &server,
        &owner_token,
        &chunk_path(&stranger, TOPIC, 0),
        (ct.clone(), body.clone()),
        404,
        "",
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not registered"));
    assert_eq!(upload(&server, &token, &machine.did, &chain[0]).0, 201);

    // Reads: the machine, its owner and admins; nobody else sees it.
    let reads = [
        format!("/v1/machines/{}/topics", machine.did),
        format!(
            "/v1/machines/{}/topics/{}/chunks",
            machine.did,
            path_segment(TOPIC)
        ),
        format!("{path}/envelope"),
        format!("{path}/ciphertext"),
    ];
    for read in &reads {
        for t in [&token, &owner_token, &admin] {
            let response = http::send(server.request("GET", read, Some(t)));
            assert_eq!(response.status, 200, "{read}");
        }
        for t in [&other_owner, &other_machine] {
            let (status, answer) = server.get(read, Some(t));
            assert_eq!(status, 404, "{read}: {answer}");
        }
        assert_eq!(server.get(read, None).0, 401, "{read}");
    }
}

fn restart_keeps_chains(db: Db) {
    let (mut server, machine, token, owner_token) = setup(db);
    let chain = machine.chain(&[9u8; 500], 100);
    for chunk in &chain[..3] {
        assert_eq!(upload(&server, &token, &machine.did, chunk).0, 201);
    }
    server.restart();
    // The held head survives: the chain continues, repeats are still no-ops.
    assert_eq!(upload(&server, &token, &machine.did, &chain[2]).0, 200);
    for chunk in &chain[3..] {
        assert_eq!(upload(&server, &token, &machine.did, chunk).0, 201);
    }
    server.restart();
    let (status, page) = server.get(
        &format!(
            "/v1/machines/{}/topics/{}/chunks",
            machine.did,
            path_segment(TOPIC)
        ),
        Some(&owner_token),
    );
    assert_eq!(status, 200);
    assert_eq!(page["chunks"].as_array().unwrap().len(), 5);
    let response = http::send(server.request(
        "GET",
        &format!("{}/ciphertext", chunk_path(&machine.did, TOPIC, 4)),
        Some(&owner_token),
    ))
    .ok();
    assert_eq!(response.body, chain[4].ciphertext);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn plaintext_canary_is_never_stored(db: Db) {
    let (server, machine, token, _) = setup(db);
    let canary = format!("CANARY-{}", hex::encode(rand_bytes()));
    let mut data = Vec::new();
    for i in 0..200 {
        data.extend_from_slice(format!("{{\"seq\":{i},\"note\":\"{canary}\"}}\n").as_bytes());
    }
    let chain = machine.chain(&data, 1024);
    assert!(chain.len() > 3);
    for chunk in &chain {
        assert_eq!(upload(&server, &token, &machine.did, chunk).0, 201);
    }
    let canary = canary.as_bytes();
    let mut scanned = 0;
    for (key, bytes) in server.objects() {
        assert!(!contains(&bytes, canary), "canary in {key}");
        scanned += 1;
    }
    assert_eq!(scanned, chain.len());
    match db {
        Db::Sqlite => {
            let mut files = 0;
            for file in files_under(&server.data_dir) {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("market.db") {
                    let bytes = std::fs::read(&file).unwrap();
                    assert!(!contains(&bytes, canary), "canary in {}", file.display());
                    files += 1;
                }
            }
            assert!(files >= 1);
        }
        Db::Postgres => {
            let texts: Vec<String> = block_on(async {
                let mut out = Vec::new();
                for (table, columns) in [
                    (
                        "chunks",
                        "machine_did, topic, chunk_id, COALESCE(previous_chunk_id, ''), envelope, object_key, ciphertext_hash, received_at",
                    ),
                    ("chains", "machine_did, topic, head_chunk_id, updated_at"),
                    ("audit_events", "actor, action, subject, details"),
                ] {
                    let rows = sqlx::query(&format!("SELECT {columns} FROM {table}"))
                        .fetch_all(server.store.pool())
                        .await
                        .unwrap();
                    for row in rows {
                        for i in 0..row.len() {
                            out.push(row.get::<String, _>(i));
                        }
                    }
                }
                out
            });
            assert!(texts.len() > 10);
            for t in texts {
                assert!(!contains(t.as_bytes(), canary), "canary in the database");
            }
        }
    }
}

fn rand_bytes() -> [u8; 16] {
    let mut out = [0u8; 16];
    let key = RecipientSecretKey::generate().public_key();
    out.copy_from_slice(&key.as_bytes()[..16]);
    out
}

fn large_ciphertext_uploads_with_the_default_limit(db: Db) {
    let (server, machine, token, _) = setup(db);
    let size = 48 << 20;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let chain = machine.chain(&data, size);
    assert_eq!(chain.len(), 1);
    let (status, body) = upload(&server, &token, &machine.did, &chain[0]);
    assert_eq!(status, 201, "{body}");
    let objects = server.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].1, chain[0].ciphertext);
}

fn racing_uploads_store_one_chunk(db: Db) {
    let (server, machine, token, _) = setup(db);
    let a = machine.chain(&[1u8; 100], 100);
    let b = machine.chain(&[2u8; 100], 100);
    let path = chunk_path(&machine.did, TOPIC, 0);
    let bodies = [
        body_of(&a[0]),
        body_of(&b[0]),
        body_of(&a[0]),
        body_of(&b[0]),
    ];
    let barrier = std::sync::Barrier::new(bodies.len());
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|(ct, body)| {
                let (server, path, token, barrier) = (&server, &path, &token, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    server.send_raw("PUT", path, Some(token), ct, body).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 201, 409].contains(s)),
        "{statuses:?}"
    );
    let after = stored(&server);
    assert_eq!(after.chunks, 1);
    assert_eq!(after.objects.len(), 1, "the losers' objects are gone");
}

on_both_databases!(
    a_chunk_is_held_under_one_chain_only,
    multi_chunk_chain_uploads_and_reads_back,
    same_chunk_again_is_stored_once,
    bad_uploads_are_refused_and_store_nothing,
    oversize_body_is_413,
    only_the_machine_and_its_owner_upload_and_read,
    restart_keeps_chains,
    plaintext_canary_is_never_stored,
    large_ciphertext_uploads_with_the_default_limit,
    racing_uploads_store_one_chunk,
);

/// `--object-store s3://bucket/prefix` against moto: a chain (with a chunk
/// large enough for a multipart upload) goes up and comes back, and the
/// objects are in the bucket under the prefix.
#[test]
fn chains_live_in_s3() {
    let moto = common::moto::MotoServer::start();
    moto.create_bucket("market");
    common::moto::set_s3_env(&moto.base);
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.object_store = Some("s3://market/objects/v1".into())
    });
    let machine = Machine::new();
    machine.register(&server);
    let token = server.session_for(&machine.did, &[]);
    let mut data = vec![0u8; 20 << 20];
    data.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i % 253) as u8);
    data.extend_from_slice(&[4u8; 3000]);
    let chain = machine.chain(&data, 20 << 20);
    assert_eq!(chain.len(), 2);
    for chunk in &chain {
        let (status, body) = upload(&server, &token, &machine.did, chunk);
        assert_eq!(status, 201, "{body}");
    }
    // A tampered upload leaves nothing in the bucket.
    let extra = machine.chain(&data[..5000], 1000);
    let mut tampered = extra[0].ciphertext.clone();
    tampered[3] ^= 0x80;
    let other = TestServer::start_with(Db::Sqlite, |c| {
        c.object_store = Some("s3://market/other".into())
    });
    machine.register(&other);
    let other_token = other.session_for(&machine.did, &[]);
    let (ct, body) = body_with(extra[0].envelope.to_pretty_json().as_bytes(), &tampered);
    let (status, _) = other.send_raw(
        "PUT",
        &chunk_path(&machine.did, TOPIC, 0),
        Some(&other_token),
        &ct,
        &body,
    );
    assert_eq!(status, 422);

    let objects = moto.objects("market");
    assert_eq!(objects.len(), 2, "{:?}", objects.keys());
    for (chunk, (key, bytes)) in chain.iter().zip(&objects) {
        assert!(key.starts_with("objects/v1/chunks/"), "{key}");
        assert!(key.ends_with(&chunk.envelope.chunk_id), "{key}");
        assert_eq!(bytes, &chunk.ciphertext);
    }
    for chunk in &chain {
        let response = http::send(server.request(
            "GET",
            &format!(
                "{}/ciphertext",
                chunk_path(&machine.did, TOPIC, chunk.envelope.index)
            ),
            Some(&token),
        ))
        .ok();
        assert_eq!(response.body, chunk.ciphertext);
    }
    // Nothing in the local object directory: the objects are in the bucket.
    assert!(files_under(&server.objects_dir()).is_empty());
}
