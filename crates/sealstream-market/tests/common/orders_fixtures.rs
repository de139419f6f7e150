//! Fixtures for the order suites: a seller with a real chain (chunk keys
//! wrapped to the seller's X25519 key), a real machine-signed dataset
//! posted through the API, and a published listing on a given rail; buyers
//! with sessions and X25519 keys; the release package downloaded and
//! decrypted with core, as a buyer's tools would.

use std::path::Path;
use std::sync::Arc;

use sealstream_core::chunk::{ChainState, Recipient, SealedChunk};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo};
use sealstream_core::identity::Did;
use sealstream_core::keys::{MachineSigningKey, RecipientPublicKey, RecipientSecretKey};
use sealstream_files::consume::{consume_to_file, ConsumeRequest};
use sealstream_market::auth::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::chains::{
    insert_chain, insert_machine, insert_machine_with, new_owner, write_chain_for, TestMachine,
};
use super::TestServer;

/// A seller, its chain, dataset and published listing.
pub struct Sale {
    /// The seller's secp256k1 key (signs in).
    pub owner_key: MachineSigningKey,
    /// The seller's DID.
    pub owner_did: String,
    /// A seller session.
    pub owner: String,
    /// The seller's X25519 recipient key: opens every chunk key.
    pub owner_recipient: RecipientSecretKey,
    /// The machine.
    pub machine: TestMachine,
    /// The topic.
    pub topic: String,
    /// The chunks.
    pub chunks: Vec<SealedChunk>,
    /// Their plaintexts.
    pub plaintexts: Vec<Vec<u8>>,
    /// The dataset (all chunks).
    pub dataset_id: String,
    /// The published listing.
    pub listing_id: String,
}

impl Sale {
    /// All plaintext, in order.
    pub fn source(&self) -> Vec<u8> {
        self.plaintexts.concat()
    }
}

/// `0x` + SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(Sha256::digest(bytes)))
}

/// An EVM rail on `chain_id` paying `pay_to` in the native coin.
pub fn native_rail(chain_id: u64, pay_to: &str) -> Value {
    json!({"kind": "evm", "chainId": chain_id, "token": "native", "decimals": 18,
           "payTo": pay_to, "symbol": "ETH"})
}

/// An EVM rail on `chain_id` paying `pay_to` in `token` (6 decimals).
pub fn token_rail(chain_id: u64, token: &str, pay_to: &str) -> Value {
    json!({"kind": "evm", "chainId": chain_id, "token": token, "decimals": 6,
           "payTo": pay_to, "symbol": "TST"})
}

/// An invoice rail in euros.
pub fn invoice_rail() -> Value {
    json!({"kind": "invoice", "currency": "EUR", "decimals": 2, "payee": "Robots GmbH",
           "terms": "30 days net"})
}

/// A seller with a chain of `n` chunks on a new machine, a machine-signed
/// dataset over all of it (posted through the API) and a published listing
/// at `price` on `rail`.
pub fn sale(server: &TestServer, n: usize, price: &str, rail: Value) -> Sale {
    sale_for(server, n, price, rail, None)
}

/// [`sale`] on a machine registered with an `operator-1` recipient of key
/// `operator` too, every chunk key wrapped for it as well.
pub fn sale_with_operator(
    server: &TestServer,
    n: usize,
    price: &str,
    rail: Value,
    operator: RecipientPublicKey,
) -> Sale {
    sale_for(server, n, price, rail, Some(operator))
}

fn sale_for(
    server: &TestServer,
    n: usize,
    price: &str,
    rail: Value,
    operator: Option<RecipientPublicKey>,
) -> Sale {
    let (owner_key, owner_did) = new_owner();
    let owner = server.session_for(&owner_did, &[Role::Owner]);
    let owner_recipient = RecipientSecretKey::generate();
    let mut recipients = vec![Recipient::new(
        "owner-1",
        "owner",
        owner_recipient.public_key(),
    )];
    recipients.extend(operator.map(|k| Recipient::new("operator-1", "operator", k)));
    let machine = if operator.is_some() {
        insert_machine_with(server, &owner_did, &recipients)
    } else {
        insert_machine(server, &owner_did)
    };
    let topic = "/robot/lidar".to_string();
    let plaintexts: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("scan {i}: {}", "x".repeat(40 + i % 7)).into_bytes())
        .collect();
    let chunks = write_chain_for(&machine, ChainState::new(), &plaintexts, recipients);
    let received: Vec<i64> = (0..n as i64).map(|i| 1_767_323_045 + i).collect();
    insert_chain(server, &machine.did, &topic, &chunks, &received);
    let mut builder = DatasetBuilder::new();
    for c in &chunks {
        builder.push(&c.envelope).unwrap();
    }
    let mut manifest = builder
        .finish(DatasetInfo {
            topic: Some(topic.clone()),
            source_hash: sha256_hex(&plaintexts.concat()),
            ..DatasetInfo::default()
        })
        .unwrap();
    manifest.sign_eip191(&machine.key).unwrap();
    manifest.sign_ed25519(&machine.chain_key).unwrap();
    let wire: Value = serde_json::from_str(&manifest.to_pretty_json()).unwrap();
    let (status, ds) = server.send(
        "POST",
        "/v1/datasets",
        Some(&owner),
        &json!({ "manifest": wire }),
    );
    assert_eq!(status, 201, "{ds}");
    let dataset_id = ds["id"].as_str().unwrap().to_string();
    let body = json!({
        "datasetId": dataset_id,
        "title": "Lidar scans, warehouse 3",
        "description": "Point clouds from a test robot.",
        "tags": ["lidar"],
        "license": {"spdx": "CC-BY-4.0", "use": "research"},
        "price": price,
        "rail": rail,
        "delivery": ["api"],
    });
    let listing_id = super::listings_fixtures::publish(server, &owner, &body);
    Sale {
        owner_key,
        owner_did,
        owner,
        owner_recipient,
        machine,
        topic,
        chunks,
        plaintexts,
        dataset_id,
        listing_id,
    }
}

/// A buyer: secp256k1 key (its DID pays), session and X25519 key.
pub struct Buyer {
    /// Signs in; its address is the only payer accepted.
    pub key: MachineSigningKey,
    /// `did:peaq:0x…`.
    pub did: String,
    /// A buyer session.
    pub token: String,
    /// The X25519 key the chunk keys are wrapped to.
    pub recipient: RecipientSecretKey,
}

/// A new buyer with a session.
pub fn buyer(server: &TestServer) -> Buyer {
    buyer_with_key(server, MachineSigningKey::generate())
}

/// A buyer whose secp256k1 key is `key` (an anvil dev account, to pay).
pub fn buyer_with_key(server: &TestServer, key: MachineSigningKey) -> Buyer {
    let did = Did::of_key(&key).to_string();
    let token = server.session_for(&did, &[Role::Buyer]);
    Buyer {
        key,
        did,
        token,
        recipient: RecipientSecretKey::generate(),
    }
}

/// Orders `listing_id` as `buyer`; returns the order view.
pub fn order(server: &TestServer, buyer: &Buyer, listing_id: &str) -> Value {
    let (status, body) = server.send(
        "POST",
        "/v1/orders",
        Some(&buyer.token),
        &json!({
            "listingId": listing_id,
            "buyerPublicKeyHex": buyer.recipient.public_key().to_hex(),
        }),
    );
    assert_eq!(status, 201, "{body}");
    body
}

/// `POST /v1/orders/{id}/mark-paid` as `token` with invoice `reference`.
pub fn mark_paid(server: &TestServer, id: &str, token: &str, reference: &str) -> (u16, Value) {
    server.send(
        "POST",
        &format!("/v1/orders/{id}/mark-paid"),
        Some(token),
        &json!({ "reference": reference }),
    )
}

/// Orders as `buyer` and has the seller mark it paid (invoice
/// `INV-<order id>`); the order id.
pub fn paid_order(server: &TestServer, sale: &Sale, buyer: &Buyer) -> String {
    let id = order(server, buyer, &sale.listing_id)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = mark_paid(server, &id, &sale.owner, &format!("INV-{id}"));
    assert_eq!(status, 200, "{body}");
    id
}

/// Downloads the release package at `base` (`…/release`, with `?link=`
/// when `query` is given) into `dir`, as consume would.
pub fn download_release(
    server: &TestServer,
    base: &str,
    token: Option<&str>,
    query: &str,
    dir: &Path,
) -> Value {
    let (status, manifest) = server.get(&format!("{base}/manifest.json{query}"), token);
    assert_eq!(status, 200, "{manifest}");
    let chunks = dir.join("chunks");
    let data = dir.join("data");
    let access = dir.join("access");
    for d in [&chunks, &data, &access] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        chunks.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let mut names: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    names.push(manifest["sealstreamDataset"].as_str().unwrap().to_string());
    for name in names {
        let request = server.request("GET", &format!("{base}/{name}{query}"), token);
        let bytes = sealstream_testkit::http::send(request).ok().body;
        let dest =
            if name.starts_with("chunk-") && name.ends_with(".json") || name == "dataset.json" {
                chunks.join(&name)
            } else if name.ends_with(".bin") {
                data.join(&name)
            } else {
                access.join(&name)
            };
        std::fs::write(dest, bytes).unwrap();
    }
    manifest
}

/// Verifies and decrypts a downloaded release package with core; returns
/// the plaintext.
pub fn decrypt_release(dir: &Path, buyer_id: &str, key: &RecipientSecretKey) -> Vec<u8> {
    let out = dir.join("out.bin");
    let request = ConsumeRequest {
        chunk_dir: &dir.join("chunks"),
        data_dir: &dir.join("data"),
        access_dir: &dir.join("access"),
        buyer_id,
        buyer_key: Arc::new(
            RecipientSecretKey::from_hex(&key.to_hex_secret(), "buyer key").unwrap(),
        ),
        verify: true,
        dataset_signers: &[],
        parallelism: 2,
    };
    consume_to_file(&request, &out, &mut |_| {}, &mut |_| {}).expect("consume the release");
    std::fs::read(out).unwrap()
}
