//! Fixtures for the listing and catalog suites: owners with sessions, real
//! chunk chains (made with `sealstream_core::chunk::ChainWriter`, keys held
//! here) written straight into `machines`, `chains`, `chunks` and the
//! object directory, and datasets over them — without the ingest and
//! dataset routes, which other suites cover.

use rand::RngCore;
use sealstream_core::chunk::{ChainConfig, ChainState, ChainWriter, Recipient, SealedChunk};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_market::auth::Role;
use serde_json::{json, Value};

use super::{block_on, TestServer};

/// A signed-in owner.
pub struct Owner {
    /// `did:peaq:0x…`.
    pub did: String,
    /// Session token.
    pub token: String,
}

/// A new DID.
pub fn new_did() -> String {
    Did::of_key(&MachineSigningKey::generate()).to_string()
}

/// A new owner with a session.
pub fn owner(server: &TestServer) -> Owner {
    let did = new_did();
    let token = server.session_for(&did, &[Role::Owner]);
    Owner { did, token }
}

/// A machine's chain as stored, with the secrets that made it.
pub struct Chain {
    /// The machine DID.
    pub machine_did: String,
    /// The topic.
    pub topic: String,
    /// The chain's Ed25519 public key, hex.
    pub chain_public_key: String,
    /// The owner recipient's X25519 secret: opens every chunk key.
    pub recipient: RecipientSecretKey,
    /// The sealed chunks, in order.
    pub chunks: Vec<SealedChunk>,
    /// The plaintext of each chunk.
    pub plaintexts: Vec<Vec<u8>>,
    /// `received_unix` of chunk 0; chunk i is 60 s later per index.
    pub first_received_unix: i64,
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

async fn exec(server: &TestServer, sql: &str, binds: Vec<Value>) {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b {
            Value::Null => q.bind(None::<String>),
            Value::Number(n) => q.bind(n.as_i64().expect("an i64")),
            Value::String(s) => q.bind(s),
            other => q.bind(other.to_string()),
        };
    }
    q.execute(server.store.pool())
        .await
        .expect("fixture insert");
}

/// Registers a machine of `owner_did` and stores a chain of one chunk per
/// plaintext on `topic`, the ciphertext in the object directory.
pub fn chain(
    server: &TestServer,
    owner_did: &str,
    topic: &str,
    plaintexts: &[&[u8]],
    first_received_unix: i64,
) -> Chain {
    let machine_did = new_did();
    let signing = ChainSigningKey::generate();
    let chain_public_key = signing.public_key().to_hex();
    let recipient = RecipientSecretKey::generate();
    let mut config = ChainConfig::new(
        signing,
        &machine_did,
        &format!("{machine_did}#keys-1"),
        vec![Recipient::new("owner-1", "owner", recipient.public_key())],
    );
    config.parallelism = 1;
    let mut chunks = Vec::new();
    let sink = |c: SealedChunk| -> Result<(), std::convert::Infallible> {
        chunks.push(c);
        Ok(())
    };
    let mut writer = ChainWriter::new(config, ChainState::new(), sink).expect("chain config");
    for p in plaintexts {
        writer.seal_chunk(p.to_vec()).expect("seal");
    }
    let (_summary, _sink) = writer.finish().expect("finish");
    let object_prefix = format!("chunks/{}", random_hex(8));
    block_on(async {
        exec(
            server,
            "INSERT INTO machines (did, owner_did, chain_public_key, recipients, statement, signature, registered_at) \
             VALUES ($1, $2, $3, $4, 'fixture', 'fixture', '2024-01-01T00:00:00Z')",
            vec![
                json!(machine_did),
                json!(owner_did),
                json!(chain_public_key),
                json!(json!([{"recipientId": "owner-1", "recipientType": "owner",
                              "publicKeyHex": recipient.public_key().to_hex()}]).to_string()),
            ],
        )
        .await;
        for c in &chunks {
            let e = &c.envelope;
            let key = format!("{object_prefix}/{}.bin", e.index);
            server.put_object_async(&key, &c.ciphertext).await;
            let unix = first_received_unix + 60 * e.index as i64;
            exec(
                server,
                "INSERT INTO chunks (machine_did, topic, idx, chunk_id, previous_chunk_id, envelope, \
                 object_key, size, ciphertext_hash, received_at, received_unix) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                vec![
                    json!(machine_did),
                    json!(topic),
                    json!(e.index as i64),
                    json!(e.chunk_id),
                    json!(e.previous_chunk_id),
                    json!(e.to_pretty_json()),
                    json!(key),
                    json!(c.ciphertext.len() as i64),
                    json!(e.encrypted_data_hash),
                    json!(sealstream_core::utc::format_seconds(unix)),
                    json!(unix),
                ],
            )
            .await;
        }
        let head = &chunks.last().expect("at least one chunk").envelope;
        exec(
            server,
            "INSERT INTO chains (machine_did, topic, chunk_count, head_chunk_id, bytes, updated_at) \
             VALUES ($1, $2, $3, $4, 0, '2024-01-01T00:00:00Z')",
            vec![
                json!(machine_did),
                json!(topic),
                json!(chunks.len() as i64),
                json!(head.chunk_id),
            ],
        )
        .await;
    });
    Chain {
        machine_did,
        topic: topic.to_string(),
        chain_public_key,
        recipient,
        chunks,
        plaintexts: plaintexts.iter().map(|p| p.to_vec()).collect(),
        first_received_unix,
    }
}

/// A dataset of `owner_did` over chunks `first .. first + count` of
/// `chain`, in `state` (`signed` or `draft`); returns its id.
pub fn dataset(
    server: &TestServer,
    owner_did: &str,
    chain: &Chain,
    first: u64,
    count: u64,
    state: &str,
) -> String {
    let id = format!("ds_{}", random_hex(16));
    let first_chunk = &chain.chunks[first as usize].envelope;
    let head = &chain.chunks[(first + count - 1) as usize].envelope;
    let root = format!("0x{}", random_hex(32));
    block_on(exec(
        server,
        "INSERT INTO datasets (id, owner_did, machine_did, topic, first_index, chunk_count, \
         first_chunk_id, head_chunk_id, merkle_root, first_received_unix, last_received_unix, \
         state, manifest, signer_did, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, '2024-01-01T00:00:00Z')",
        vec![
            json!(id),
            json!(owner_did),
            json!(chain.machine_did),
            json!(chain.topic),
            json!(first as i64),
            json!(count as i64),
            json!(first_chunk.chunk_id),
            json!(head.chunk_id),
            json!(root),
            json!(chain.first_received_unix + 60 * first as i64),
            json!(chain.first_received_unix + 60 * (first + count - 1) as i64),
            json!(state),
            if state == "signed" { json!("{}") } else { Value::Null },
            if state == "signed" { json!(owner_did) } else { Value::Null },
        ],
    ));
    id
}

/// Sets a dataset's state.
pub fn set_dataset_state(server: &TestServer, dataset_id: &str, state: &str) {
    block_on(exec(
        server,
        "UPDATE datasets SET state = $1 WHERE id = $2",
        vec![json!(state), json!(dataset_id)],
    ));
}

/// A signed dataset of `n` small chunks on `topic`, on a new machine.
pub fn signed_dataset(
    server: &TestServer,
    owner_did: &str,
    topic: &str,
    n: usize,
) -> (Chain, String) {
    let plaintexts: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{topic} reading {i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = plaintexts.iter().map(|p| p.as_slice()).collect();
    let c = chain(server, owner_did, topic, &refs, 1_700_000_000);
    let id = dataset(server, owner_did, &c, 0, n as u64, "signed");
    (c, id)
}

/// A valid creation body for `dataset_id`.
pub fn listing_body(dataset_id: &str, title: &str) -> Value {
    json!({
        "datasetId": dataset_id,
        "title": title,
        "description": "Readings from a test machine.",
        "tags": ["test"],
        "domain": "testing",
        "schemaHint": "{\"t\": number}",
        "license": {"spdx": "CC-BY-4.0"},
        "price": "1500000000000000000",
        "rail": {"kind": "evm", "chainId": 3338, "token": "native", "decimals": 18,
                 "payTo": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "symbol": "PEAQ"},
        "delivery": ["api", "object-store"],
    })
}

/// Creates a listing from `body` and publishes it (no samples); returns its id.
pub fn publish(server: &TestServer, token: &str, body: &Value) -> String {
    let (status, created) = server.send("POST", "/v1/listings", Some(token), body);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, published) = server.send(
        "POST",
        &format!("/v1/listings/{id}/publish"),
        Some(token),
        &json!({}),
    );
    assert_eq!(status, 200, "{published}");
    id
}

/// Counts the rows of `table`.
pub fn count(server: &TestServer, table: &str) -> i64 {
    block_on(async {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(server.store.pool())
            .await
            .unwrap();
        n
    })
}

/// The audit actions recorded about `subject`, in order.
pub fn audit_actions(server: &TestServer, subject: &str) -> Vec<String> {
    block_on(async {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT action FROM audit_events WHERE subject = $1 ORDER BY seq")
                .bind(subject)
                .fetch_all(server.store.pool())
                .await
                .unwrap();
        rows.into_iter().map(|(a,)| a).collect()
    })
}

/// Percent-encodes a query value (everything but unreserved characters).
pub use sealstream_testkit::http::path_segment as encode;
