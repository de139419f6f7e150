//! A small market world built through the real routes, shared by the
//! authorization matrix (`authz.rs`) and the API fuzzing run
//! (`api_fuzz.rs`): owners A and B sign in, each registers a machine, the
//! machine signs in and uploads a chain (all but its last chunk), the owner
//! makes datasets (one public through a published listing, one signed but
//! only in a draft listing, one draft) and listings (published with a
//! disclosed sample key, draft with one, and spares for publish and
//! withdraw); a buyer orders A's invoice listing in every state (awaiting
//! payment, paid, granted with links); A has a second machine whose operator
//! key it registered.

use sealstream_core::access::{grant_entry, AccessFileBuilder, Buyer as CoreBuyer};
use sealstream_core::chunk::{
    sha256_hex, ChainConfig, ChainState, ChainWriter, Recipient, SealedChunk,
};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_market::auth::Role;
use sealstream_market::server::Config;
use serde_json::{json, Value};

use super::listings_fixtures::{listing_body, publish};
use super::orders_fixtures::{invoice_rail, mark_paid};
use super::{multipart, path_segment, Db, TestServer};

/// The topic every machine's chain is on.
pub const TOPIC: &str = "/sensor/temp";
/// Chunks sealed per machine; the last is kept back for the upload row.
pub const CHUNKS: usize = 7;

/// One owner's side of the world.
pub struct Side {
    pub owner_did: String,
    pub owner_token: String,
    pub machine_key: MachineSigningKey,
    pub machine_did: String,
    pub machine_token: String,
    pub chain_key: ChainSigningKey,
    pub recipient: RecipientSecretKey,
    pub plaintexts: Vec<Vec<u8>>,
    pub chunks: Vec<SealedChunk>,
    /// Signed, and public through a published listing (chunks 0–2).
    pub ds_public: String,
    /// Signed, only in a draft listing (chunks 3–5).
    pub ds_private: String,
    /// A draft (chunks 0–5).
    pub ds_draft: String,
    /// Published, sample chunk 1 disclosed.
    pub listing_published: String,
    /// Published, no samples (the withdraw row's target).
    pub listing_published_spare: String,
    /// Draft over `ds_private`, sample chunk 3 disclosed.
    pub listing_draft: String,
    /// Draft over `ds_public`, no samples (the publish row's target).
    pub listing_draft_spare: String,
}

/// The buyer's subscriptions of A's subscription listing (A's machine and
/// topic, invoice rail, all history).
pub struct Subscriptions {
    /// A's published subscription listing.
    pub listing: String,
    /// Awaiting its first payment: the cancel row's target.
    pub awaiting: String,
    /// Active: show, history, renewal and grant rows.
    pub active: String,
    /// Active: the revoke row's target.
    pub to_revoke: String,
    /// A grant entry `active` is entitled to (chunk 0, a history chunk),
    /// wrapped to the buyer's key.
    pub entry: Value,
}

/// The buyer's orders of A's invoice listing (over `ds_public`, chunks 0–2).
pub struct Orders {
    /// A's published invoice listing.
    pub listing: String,
    /// Awaiting payment: the payment-proof and mark-paid rows' target.
    pub awaiting: String,
    /// Awaiting payment: the cancel row's target.
    pub to_cancel: String,
    /// Marked paid: the grant upload row's target.
    pub paid: String,
    /// The access files of `paid`, as the grant daemon makes them.
    pub paid_files: Vec<Value>,
    /// Paid and granted: grant, receipt, links, release.
    pub granted: String,
    /// `?link=…` of A's confirmation link to `granted`.
    pub confirmation_link: String,
    /// `?link=…` of the buyer's release link to `granted`.
    pub release_link: String,
    /// Another release link of the buyer's: the revoke row's target.
    pub spare_link: String,
}

pub struct World {
    pub server: TestServer,
    pub a: Side,
    pub b: Side,
    /// The buyer's DID and session (buyer role).
    pub buyer_did: String,
    pub buyer: String,
    /// An auditor's session.
    pub auditor: String,
    /// The admin's DID (admin from the configuration) and session.
    pub admin_did: String,
    pub admin: String,
    pub orders: Orders,
    pub subscriptions: Subscriptions,
    /// A second machine of A's, wrapping for an operator recipient too,
    /// whose operator key A registered with the server (no datasets, so
    /// nothing is granted with it).
    pub operator_machine: String,
    /// That operator recipient's secret key (hex).
    pub operator_secret: String,
}

pub fn new_did() -> String {
    Did::of_key(&MachineSigningKey::generate()).to_string()
}

pub fn copy_chain_key(key: &ChainSigningKey) -> ChainSigningKey {
    ChainSigningKey::from_hex(&key.to_hex_secret(), "chain key").unwrap()
}

pub fn chunks_path(did: &str) -> String {
    format!("/v1/machines/{did}/topics/{}/chunks", path_segment(TOPIC))
}

pub fn upload_body(chunk: &SealedChunk) -> (String, Vec<u8>) {
    multipart(&[
        (
            "envelope",
            "application/json",
            chunk.envelope.to_pretty_json().as_bytes(),
        ),
        ("ciphertext", "application/octet-stream", &chunk.ciphertext),
    ])
}

/// The plaintext key of chunk `index`, as the owner's client unwraps it.
pub fn chunk_key(side: &Side, index: usize) -> String {
    let entry = &side.chunks[index].envelope.encryption.key_recipients[0];
    let sealed = hex::decode(&entry.wrapped_key_hex).unwrap();
    let opened = sealstream_core::sealed_box::open(&sealed, &side.recipient).unwrap();
    hex::encode(&opened[..])
}

/// The manifest of chunks `first..=last`, signed by the machine and its
/// chain key, as a request carries it.
pub fn signed_manifest(side: &Side, first: usize, last: usize) -> Value {
    let mut b = DatasetBuilder::new();
    for c in &side.chunks[first..=last] {
        b.push(&c.envelope).unwrap();
    }
    let mut m = b
        .finish(DatasetInfo {
            topic: Some(TOPIC.into()),
            source_hash: sha256_hex(&side.plaintexts[first..=last].concat()),
            sample_chunk_indexes: vec![first as u64],
            ..DatasetInfo::default()
        })
        .unwrap();
    m.sign_eip191(&side.machine_key).unwrap();
    m.sign_ed25519(&side.chain_key).unwrap();
    serde_json::from_str(&m.to_pretty_json()).unwrap()
}

pub fn expect_status(reply: (u16, Value), status: u16, what: &str) -> Value {
    assert_eq!(reply.0, status, "{what}: {}", reply.1);
    reply.1
}

pub fn id_of(reply: (u16, Value), status: u16, what: &str) -> String {
    expect_status(reply, status, what)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One owner, signed in; its machine registered, signed in, and its chain
/// uploaded (all but the last chunk); its datasets and listings.
pub fn side(server: &TestServer, name: &str) -> Side {
    let owner_key = MachineSigningKey::generate();
    let owner_did = Did::of_key(&owner_key).to_string();
    let owner_token = server.sign_in(&owner_key);

    let machine_key = MachineSigningKey::generate();
    let machine_did = Did::of_key(&machine_key).to_string();
    let chain_key = ChainSigningKey::generate();
    let recipient = RecipientSecretKey::generate();
    expect_status(
        server.register_machine(
            &owner_token,
            &owner_did,
            &machine_key,
            &chain_key,
            &[("owner-1", "owner", recipient.public_key())],
        ),
        201,
        "register",
    );
    let machine_token = server.sign_in(&machine_key);

    let plaintexts: Vec<Vec<u8>> = (0..CHUNKS)
        .map(|i| format!("{name} reading {i}: 21.{i} C").into_bytes())
        .collect();
    let mut config = ChainConfig::new(
        copy_chain_key(&chain_key),
        &machine_did,
        &format!("{machine_did}#keys-1"),
        vec![Recipient::new("owner-1", "owner", recipient.public_key())],
    );
    config.parallelism = 1;
    let mut chunks = Vec::new();
    let mut writer = ChainWriter::new(config, ChainState::new(), |c: SealedChunk| {
        chunks.push(c);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    for p in &plaintexts {
        writer.seal_chunk(p.clone()).unwrap();
    }
    let _ = writer.finish().unwrap();
    for chunk in &chunks[..CHUNKS - 1] {
        let (ct, body) = upload_body(chunk);
        let path = format!("{}/{}", chunks_path(&machine_did), chunk.envelope.index);
        expect_status(
            server.send_raw("PUT", &path, Some(&machine_token), &ct, &body),
            201,
            "upload",
        );
    }

    let mut s = Side {
        owner_did,
        owner_token,
        machine_key,
        machine_did,
        machine_token,
        chain_key,
        recipient,
        plaintexts,
        chunks,
        ds_public: String::new(),
        ds_private: String::new(),
        ds_draft: String::new(),
        listing_published: String::new(),
        listing_published_spare: String::new(),
        listing_draft: String::new(),
        listing_draft_spare: String::new(),
    };
    let token = s.owner_token.clone();
    let machine = s.machine_did.clone();
    let (key1, key3) = (chunk_key(&s, 1), chunk_key(&s, 3));
    let post = |path: &str, body: Value| server.send("POST", path, Some(&token), &body);
    let range = |from: u64, to: u64| json!({"machineDid": machine, "topic": TOPIC, "fromIndex": from, "toIndex": to});

    // Datasets: a draft completed by PUT, one signed at once, one draft.
    s.ds_public = id_of(post("/v1/datasets", range(0, 2)), 201, "draft");
    expect_status(
        server.send(
            "PUT",
            &format!("/v1/datasets/{}/manifest", s.ds_public),
            Some(&token),
            &json!({"manifest": signed_manifest(&s, 0, 2)}),
        ),
        200,
        "sign",
    );
    s.ds_private = id_of(
        post(
            "/v1/datasets",
            json!({"manifest": signed_manifest(&s, 3, 5)}),
        ),
        201,
        "signed dataset",
    );
    s.ds_draft = id_of(post("/v1/datasets", range(0, 5)), 201, "draft");

    // Listings.
    let listing = |dataset: &str, title: &str, samples: &[u64]| {
        let mut body = listing_body(dataset, title);
        body["sampleChunkIndexes"] = json!(samples);
        id_of(post("/v1/listings", body), 201, "listing")
    };
    let disclose = |id: &str, index: usize, key: &str| {
        expect_status(
            post(
                &format!("/v1/listings/{id}/samples"),
                json!({"keys": [{"index": index, "chunkKeyHex": key}]}),
            ),
            200,
            "disclose",
        );
    };
    let publish = |id: &str| {
        expect_status(
            post(&format!("/v1/listings/{id}/publish"), json!({})),
            200,
            "publish",
        );
    };
    let published = listing(&s.ds_public, &format!("{name} temperatures"), &[1]);
    disclose(&published, 1, &key1);
    publish(&published);
    let spare = listing(&s.ds_public, &format!("{name} temperatures, again"), &[]);
    publish(&spare);
    let draft = listing(&s.ds_private, &format!("{name} later temperatures"), &[3]);
    disclose(&draft, 3, &key3);
    let draft_spare = listing(&s.ds_public, &format!("{name} to publish"), &[]);
    s.listing_published = published;
    s.listing_published_spare = spare;
    s.listing_draft = draft;
    s.listing_draft_spare = draft_spare;
    s
}

/// The world on a new server.
pub fn world(db: Db) -> World {
    world_with(db, |_| {})
}

/// The world on a new server with `adjust` applied to its configuration.
pub fn world_with(db: Db, adjust: impl FnOnce(&mut Config)) -> World {
    let admin_did = new_did();
    let admin_seed = admin_did.clone();
    let server = TestServer::start_with(db, move |c| {
        c.admins = vec![admin_seed];
        adjust(c);
    });
    let a = side(&server, "A");
    let b = side(&server, "B");
    let buyer_did = new_did();
    let buyer = server.session_for(&buyer_did, &[Role::Buyer]);
    let auditor = server.session_for(&new_did(), &[Role::Auditor]);
    let admin = server.session_for(&admin_did, &[]);
    let orders = orders(&server, &a, &buyer_did, &buyer);
    let subscriptions = subscriptions(&server, &a, &buyer_did, &buyer);
    let (operator_machine, operator_secret) = operator_machine(&server, &a);
    World {
        server,
        a,
        b,
        buyer_did,
        buyer,
        auditor,
        admin_did,
        admin,
        orders,
        subscriptions,
        operator_machine,
        operator_secret,
    }
}

/// A's subscription listing of its topic and the buyer's subscriptions.
pub fn subscriptions(server: &TestServer, a: &Side, buyer_did: &str, buyer: &str) -> Subscriptions {
    let body = json!({
        "kind": "subscription",
        "title": "A temperatures, live",
        "price": "300",
        "rail": invoice_rail(),
        "subscription": {"machineDid": a.machine_did, "topic": TOPIC,
                         "periodSeconds": 86_400, "graceSeconds": 3_600, "history": "all"}
    });
    let listing = publish(server, &a.owner_token, &body);
    let key = RecipientSecretKey::generate().public_key().to_hex();
    let subscribe = || buy(server, "/v1/subscriptions", buyer, &listing, &key);
    let paid = || {
        let sub = subscribe();
        let order = sub["periods"][0]["orderId"].as_str().unwrap();
        invoice_paid(server, a, order);
        sub["id"].as_str().unwrap().to_string()
    };
    let awaiting = subscribe()["id"].as_str().unwrap().to_string();
    let active = paid();
    let to_revoke = paid();
    let core_buyer = CoreBuyer::new(buyer_did, &key).unwrap();
    let e = grant_entry(&a.chunks[0].envelope, &a.recipient, &core_buyer).unwrap();
    let entry = json!({"index": 0, "chunkId": e.chunk_id, "buyer": {
        "recipientId": e.buyer.recipient_id, "recipientType": e.buyer.recipient_type,
        "algorithm": e.buyer.algorithm, "publicKeyHex": e.buyer.public_key_hex,
        "wrappedKeyHex": e.buyer.wrapped_key_hex}});
    Subscriptions {
        listing,
        awaiting,
        active,
        to_revoke,
        entry,
    }
}

/// `POST` of a purchase (`/v1/orders` or `/v1/subscriptions`) of `listing`
/// for `key` as the `buyer`; the created order or subscription.
fn buy(server: &TestServer, route: &str, buyer: &str, listing: &str, key: &str) -> Value {
    expect_status(
        server.send(
            "POST",
            route,
            Some(buyer),
            &json!({"listingId": listing, "buyerPublicKeyHex": key}),
        ),
        201,
        route,
    )
}

/// A marks its order `id` paid by invoice `INV-<id>`.
fn invoice_paid(server: &TestServer, a: &Side, id: &str) {
    expect_status(
        mark_paid(server, id, &a.owner_token, &format!("INV-{id}")),
        200,
        "mark paid",
    );
}

/// A's second machine, with an operator recipient whose key A registers.
pub fn operator_machine(server: &TestServer, a: &Side) -> (String, String) {
    let machine_key = MachineSigningKey::generate();
    let did = Did::of_key(&machine_key).to_string();
    let operator = RecipientSecretKey::generate();
    expect_status(
        server.register_machine(
            &a.owner_token,
            &a.owner_did,
            &machine_key,
            &ChainSigningKey::generate(),
            &[
                ("owner-1", "owner", a.recipient.public_key()),
                ("operator-1", "operator", operator.public_key()),
            ],
        ),
        201,
        "register the operator machine",
    );
    let secret = operator.to_hex_secret().to_string();
    let view = expect_status(
        server.send(
            "PUT",
            &format!("/v1/machines/{did}/operator-key"),
            Some(&a.owner_token),
            &json!({"secretKeyHex": secret}),
        ),
        200,
        "register the operator key",
    );
    assert_eq!(view["publicKeyHex"], operator.public_key().to_hex());
    assert!(!view.to_string().contains(&secret), "{view}");
    (did, secret)
}

/// A's invoice listing over `ds_public` and the buyer's orders of it.
pub fn orders(server: &TestServer, a: &Side, buyer_did: &str, buyer: &str) -> Orders {
    let owner = Some(a.owner_token.as_str());
    let mut body = listing_body(&a.ds_public, "A temperatures by invoice");
    body["price"] = json!("4200");
    body["rail"] = invoice_rail();
    let listing = publish(server, &a.owner_token, &body);
    let buyer_key = RecipientSecretKey::generate().public_key().to_hex();
    let order = || {
        buy(server, "/v1/orders", buyer, &listing, &buyer_key)["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let files = || {
        let core_buyer = CoreBuyer::new(buyer_did, &buyer_key).unwrap();
        let mut builder = AccessFileBuilder::new(&core_buyer, 512_000).unwrap();
        let mut files = Vec::new();
        for c in &a.chunks[0..=2] {
            files
                .extend(builder.push(grant_entry(&c.envelope, &a.recipient, &core_buyer).unwrap()));
        }
        files.extend(builder.finish());
        files
            .iter()
            .map(|f| serde_json::from_slice::<Value>(&f.to_bytes()).unwrap())
            .collect::<Vec<_>>()
    };
    let link = |id: &str, token: &str, purpose: &str| {
        let view = expect_status(
            server.send(
                "POST",
                &format!("/v1/orders/{id}/links"),
                Some(token),
                &json!({"purpose": purpose}),
            ),
            201,
            "link",
        );
        (
            view["id"].as_str().unwrap().to_string(),
            format!("?link={}", view["token"].as_str().unwrap()),
        )
    };
    let awaiting = order();
    let to_cancel = order();
    let paid = order();
    invoice_paid(server, a, &paid);
    let granted = order();
    invoice_paid(server, a, &granted);
    expect_status(
        server.send(
            "PUT",
            &format!("/v1/orders/{granted}/grant"),
            owner,
            &json!({"files": files()}),
        ),
        200,
        "grant",
    );
    let (_, confirmation_link) = link(&granted, &a.owner_token, "confirmation");
    let (_, release_link) = link(&granted, buyer, "release");
    let (spare_link, _) = link(&granted, buyer, "release");
    Orders {
        listing,
        awaiting,
        to_cancel,
        paid,
        paid_files: files(),
        granted,
        confirmation_link,
        release_link,
        spare_link,
    }
}
