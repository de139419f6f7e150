//! Real chunk chains in the market database without the ingest route: a
//! machine row inserted directly, chunks written with core's `ChainWriter`
//! (real envelopes, ids, signatures and ciphertext) and stored as ingest
//! would store them.

use sealstream_core::chunk::{ChainConfig, ChainState, ChainWriter, Recipient, SealedChunk};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};

use super::{block_on, TestServer};

/// A registered machine and its keys.
pub struct TestMachine {
    /// The machine's secp256k1 key (EIP-191 signatures, its DID).
    pub key: MachineSigningKey,
    /// The chain's Ed25519 key.
    pub chain_key: ChainSigningKey,
    /// `did:peaq:0x…` of `key`.
    pub did: String,
    /// The owner it is registered to.
    pub owner_did: String,
}

/// A new owner identity: its secp256k1 key and DID.
pub fn new_owner() -> (MachineSigningKey, String) {
    let key = MachineSigningKey::generate();
    let did = Did::of_key(&key).to_string();
    (key, did)
}

/// Inserts a `machines` row for a new machine owned by `owner_did`.
pub fn insert_machine(server: &TestServer, owner_did: &str) -> TestMachine {
    insert_machine_with(server, owner_did, &[])
}

/// [`insert_machine`] with registered `recipients` (id, type, key).
pub fn insert_machine_with(
    server: &TestServer,
    owner_did: &str,
    recipients: &[Recipient],
) -> TestMachine {
    let recipients_json = serde_json::to_string(
        &recipients
            .iter()
            .map(|r| {
                serde_json::json!({"recipientId": r.id, "recipientType": r.recipient_type,
                                   "publicKeyHex": r.public_key.to_hex()})
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let key = MachineSigningKey::generate();
    let chain_key = ChainSigningKey::generate();
    let did = Did::of_key(&key).to_string();
    block_on(async {
        sqlx::query(
            "INSERT INTO machines (did, owner_did, chain_public_key, recipients, statement, signature, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&did)
        .bind(owner_did)
        .bind(chain_key.public_key().to_hex())
        .bind(&recipients_json)
        .bind("inserted by a test")
        .bind("0x")
        .bind(sealstream_core::utc::now())
        .execute(server.store.pool())
        .await
        .expect("insert machine");
    });
    TestMachine {
        key,
        chain_key,
        did,
        owner_did: owner_did.to_string(),
    }
}

/// Seals one chunk per plaintext with `machine`'s chain key, continuing
/// from `state` (a new chain: `ChainState::new()`).
pub fn write_chain(
    machine: &TestMachine,
    state: ChainState,
    plaintexts: &[Vec<u8>],
) -> Vec<SealedChunk> {
    write_chain_to(
        machine,
        state,
        plaintexts,
        RecipientSecretKey::generate().public_key(),
    )
}

/// [`write_chain`], with chunk keys wrapped for the owner key `owner`.
pub fn write_chain_to(
    machine: &TestMachine,
    state: ChainState,
    plaintexts: &[Vec<u8>],
    owner: sealstream_core::keys::RecipientPublicKey,
) -> Vec<SealedChunk> {
    write_chain_for(
        machine,
        state,
        plaintexts,
        vec![Recipient::new("owner-1", "owner", owner)],
    )
}

/// [`write_chain`], with chunk keys wrapped for `recipients`.
pub fn write_chain_for(
    machine: &TestMachine,
    state: ChainState,
    plaintexts: &[Vec<u8>],
    recipients: Vec<Recipient>,
) -> Vec<SealedChunk> {
    let did: Did = machine.did.parse().expect("machine DID");
    let mut config = ChainConfig::new(
        ChainSigningKey::from_hex(&machine.chain_key.to_hex_secret(), "chain key")
            .expect("chain key"),
        &machine.did,
        &did.default_key_id(),
        recipients,
    );
    config.parallelism = 1;
    let mut sealed = Vec::new();
    let mut writer = ChainWriter::new(config, state, |c: SealedChunk| -> Result<(), ()> {
        sealed.push(c);
        Ok(())
    })
    .expect("chain writer");
    for p in plaintexts {
        writer.seal_chunk(p.clone()).expect("seal");
    }
    let (_summary, _sink) = writer.finish().expect("finish");
    sealed
}

/// Stores `chunks` (consecutive, continuing the chain held, if any) on the
/// chain of (`machine_did`, `topic`) as ingest would: envelope JSON, a
/// ciphertext object under the local object directory, and the `chains`
/// row advanced to the last chunk. `received_unix[i]` is chunk `i`'s
/// receive time.
pub fn insert_chain(
    server: &TestServer,
    machine_did: &str,
    topic: &str,
    chunks: &[SealedChunk],
    received_unix: &[i64],
) {
    assert_eq!(
        chunks.len(),
        received_unix.len(),
        "one receive time per chunk"
    );
    let Some(last) = chunks.last() else {
        return;
    };
    block_on(async {
        let mut tx = server.store.pool().begin().await.unwrap();
        let mut bytes = 0i64;
        for (chunk, received) in chunks.iter().zip(received_unix) {
            let e = &chunk.envelope;
            let key = format!(
                "test-chunks/{}/{}/{}.bin",
                machine_did,
                hex::encode(topic.as_bytes()),
                e.index
            );
            server.put_object_async(&key, &chunk.ciphertext).await;
            bytes += chunk.ciphertext.len() as i64;
            sqlx::query(
                "INSERT INTO chunks (machine_did, topic, idx, chunk_id, previous_chunk_id, envelope, \
                 object_key, size, ciphertext_hash, received_at, received_unix) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(machine_did)
            .bind(topic)
            .bind(e.index as i64)
            .bind(&e.chunk_id)
            .bind(e.previous_chunk_id.clone())
            .bind(e.to_pretty_json())
            .bind(&key)
            .bind(chunk.ciphertext.len() as i64)
            .bind(&e.encrypted_data_hash)
            .bind(sealstream_core::utc::format_seconds(*received))
            .bind(*received)
            .execute(&mut *tx)
            .await
            .expect("insert chunk");
        }
        let now = sealstream_core::utc::now();
        sqlx::query(
            "INSERT INTO chains (machine_did, topic, chunk_count, head_chunk_id, bytes, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (machine_did, topic) DO UPDATE SET chunk_count = $3, head_chunk_id = $4, \
             bytes = chains.bytes + $5, updated_at = $6",
        )
        .bind(machine_did)
        .bind(topic)
        .bind(last.envelope.index as i64 + 1)
        .bind(&last.envelope.chunk_id)
        .bind(bytes)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .expect("upsert chain");
        tx.commit().await.unwrap();
    });
}
