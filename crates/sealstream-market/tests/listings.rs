//! Listings on both databases: the owner's lifecycle (create, patch,
//! publish, withdraw) with refusals naming the field and nothing stored on
//! a refusal; other owners and anonymous callers see nothing but published
//! listings; cards; sample chunks decrypted end to end with core; restart;
//! listings on EVM chains the server does not verify refused up front.

mod common;

use common::listings_fixtures::{
    audit_actions, chain, count, dataset, listing_body, owner, publish, set_dataset_state,
    signed_dataset,
};
use common::{Db, TestServer};
use sealstream_core::chunk::{decrypt_chunk, ChunkEnvelope, KeyRecipient};
use sealstream_core::keys::RecipientSecretKey;
use sealstream_market::auth::Role;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

fn lifecycle(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let bob = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "env/air", 4);
    set_dataset_state(&server, &ds, "draft");

    let (status, created) = server.send(
        "POST",
        "/v1/listings",
        Some(&alice.token),
        &listing_body(&ds, "Air quality, Lyon"),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ls_") && id.len() == 35, "{id}");
    assert_eq!(created["state"], "draft");
    assert_eq!(created["sales"], "0");
    assert_eq!(
        created["rail"]["payTo"],
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    );
    assert_eq!(created["dataset"]["chunkCount"], 4);
    let path = format!("/v1/listings/{id}");

    // A draft: the owner sees it, nobody else does.
    assert_eq!(server.get(&path, Some(&alice.token)).0, 200);
    let (status, body) = server.get(&path, None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["message"], format!("listing {id} not found"));
    assert_eq!(server.get(&path, Some(&bob.token)).0, 404);
    assert_eq!(server.get(&format!("{path}/card"), None).0, 404);

    // Other owners cannot change it: 404 as if it did not exist.
    let patch = json!({"title": "Mine now"});
    assert_eq!(server.send("PATCH", &path, Some(&bob.token), &patch).0, 404);
    for action in ["publish", "withdraw"] {
        let (status, _) = server.send(
            "POST",
            &format!("{path}/{action}"),
            Some(&bob.token),
            &json!({}),
        );
        assert_eq!(status, 404, "{action}");
    }
    assert_eq!(server.send("PATCH", &path, None, &patch).0, 401);

    // Patch changes only the given fields.
    let (status, patched) = server.send(
        "PATCH",
        &path,
        Some(&alice.token),
        &json!({"title": "Air quality, Lyon 2024", "domain": null, "price": "2000"}),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["title"], "Air quality, Lyon 2024");
    assert_eq!(patched["domain"], Value::Null);
    assert_eq!(patched["price"], "2000");
    assert_eq!(patched["description"], created["description"]);
    assert_eq!(patched["tags"], created["tags"]);
    let (status, body) = server.send("PATCH", &path, Some(&alice.token), &json!({}));
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("body"))
    );

    // Publishing needs a signed dataset.
    let (status, body) = server.send(
        "POST",
        &format!("{path}/publish"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["field"], "datasetId");
    set_dataset_state(&server, &ds, "signed");
    let (status, published) = server.send(
        "POST",
        &format!("{path}/publish"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["state"], "published");
    assert!(published["publishedAt"].as_str().unwrap().ends_with('Z'));
    let (status, body) = server.send(
        "POST",
        &format!("{path}/publish"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (409, json!("state"))
    );

    // Published: anyone reads it, with the dataset summary and a bucket.
    let (status, page) = server.get(&path, None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["sales"], "0");
    assert_eq!(page["dataset"]["topic"], "env/air");
    assert!(page["dataset"]["merkleRoot"]
        .as_str()
        .unwrap()
        .starts_with("0x"));
    assert_eq!(page["dataset"]["from"], "2023-11-14T22:13:20Z");
    assert!(page.get("salesCount").is_none());
    let (status, page) = server.get(&path, Some(&bob.token));
    assert_eq!(status, 200, "{page}");

    // Still editable once published.
    let (status, _) = server.send(
        "PATCH",
        &path,
        Some(&alice.token),
        &json!({"tags": ["air", "pm25"]}),
    );
    assert_eq!(status, 200);

    // Withdrawn: out of sight and frozen.
    let (status, withdrawn) = server.send(
        "POST",
        &format!("{path}/withdraw"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(
        (status, withdrawn["state"].clone()),
        (200, json!("withdrawn"))
    );
    assert_eq!(server.get(&path, None).0, 404);
    assert_eq!(server.get(&path, Some(&alice.token)).0, 200);
    let (status, body) = server.send("PATCH", &path, Some(&alice.token), &patch);
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (409, json!("state"))
    );
    assert_eq!(
        server
            .send(
                "POST",
                &format!("{path}/withdraw"),
                Some(&alice.token),
                &json!({})
            )
            .0,
        409
    );
    assert_eq!(
        server
            .send(
                "POST",
                &format!("{path}/publish"),
                Some(&alice.token),
                &json!({})
            )
            .0,
        409
    );

    assert_eq!(
        audit_actions(&server, &id),
        [
            "listing.create",
            "listing.update",
            "listing.publish",
            "listing.update",
            "listing.withdraw"
        ]
    );
}

fn refusals_name_the_field(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let bob = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 3);
    let (_, bobs) = signed_dataset(&server, &bob.did, "t", 3);
    let buyer = common::listings_fixtures::new_did();
    let buyer_token = server.session_for(&buyer, &[Role::Buyer]);
    let audit_before = count(&server, "audit_events");
    let ok = listing_body(&ds, "Fine");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = ok.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (with(&|b| b["title"] = json!("")), 400, "title"),
        (with(&|b| b["title"] = json!("x".repeat(201))), 400, "title"),
        (with(&|b| b["title"] = json!(7)), 400, "title"),
        (
            with(&|b| b["description"] = json!("d".repeat(20_001))),
            400,
            "description",
        ),
        (
            with(&|b| {
                b["tags"] = json!(vec!["t"; 21]
                    .iter()
                    .enumerate()
                    .map(|(i, _)| format!("t{i}"))
                    .collect::<Vec<_>>())
            }),
            400,
            "tags",
        ),
        (
            with(&|b| b["tags"] = json!(["ok", "x".repeat(41)])),
            400,
            "tags[1]",
        ),
        (with(&|b| b["tags"] = json!(["ok", ""])), 400, "tags[1]"),
        (
            with(&|b| b["sampleChunkIndexes"] = json!([0, 1, 2, 3, 4, 5])),
            400,
            "sampleChunkIndexes",
        ),
        (
            with(&|b| b["sampleChunkIndexes"] = json!([1, 1])),
            400,
            "sampleChunkIndexes[1]",
        ),
        (
            with(&|b| b["sampleChunkIndexes"] = json!([0, 3])),
            422,
            "sampleChunkIndexes[1]",
        ),
        (
            with(&|b| b["sampleChunkIndexes"] = json!([-1])),
            400,
            "sampleChunkIndexes[0]",
        ),
        (with(&|b| b["price"] = json!("-5")), 400, "price"),
        (with(&|b| b["price"] = json!("1.5")), 400, "price"),
        (with(&|b| b["price"] = json!(15)), 400, "price"),
        (
            with(&|b| b["rail"]["kind"] = json!("cash")),
            400,
            "rail.kind",
        ),
        (
            with(&|b| b["rail"]["chainId"] = json!("one")),
            400,
            "rail.chainId",
        ),
        (
            with(&|b| b["rail"]["payTo"] = json!("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")),
            400,
            "rail.payTo",
        ),
        (
            with(&|b| b["rail"]["payTo"] = json!("0x1234")),
            400,
            "rail.payTo",
        ),
        (
            with(&|b| b["rail"]["token"] = json!("0xZZaeb6053f3e94c9b9a09f33669435e7ef1beaed")),
            400,
            "rail.token",
        ),
        (with(&|b| b["rail"]["extra"] = json!(1)), 400, "rail.extra"),
        (
            with(&|b| b["rail"] = json!({"kind": "invoice", "currency": "euro"})),
            400,
            "rail.currency",
        ),
        (
            with(&|b| b["delivery"] = json!(["carrier-pigeon"])),
            400,
            "delivery[0]",
        ),
        (with(&|b| b["license"] = json!(42)), 400, "license"),
        (with(&|b| b["extra"] = json!(true)), 400, "extra"),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("rail");
            }),
            400,
            "body",
        ),
        (
            with(&|b| b["datasetId"] = json!("ds_nope")),
            404,
            "datasetId",
        ),
        (with(&|b| b["datasetId"] = json!(bobs)), 404, "datasetId"),
    ];
    for (body, status, field) in cases {
        let (got, reply) = server.send("POST", "/v1/listings", Some(&alice.token), &body);
        assert_eq!(got, status, "{field}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
    let (status, reply) = server.send_raw(
        "POST",
        "/v1/listings",
        Some(&alice.token),
        "application/json",
        b"{\"title\":",
    );
    assert_eq!(status, 400, "{reply}");
    // Without the owner role: 403.
    assert_eq!(
        server
            .send("POST", "/v1/listings", Some(&buyer_token), &ok)
            .0,
        403
    );
    assert_eq!(server.send("POST", "/v1/listings", None, &ok).0, 401);
    // Nothing was stored by any refusal.
    assert_eq!(count(&server, "listings"), 0);
    assert_eq!(count(&server, "audit_events"), audit_before);

    // Patch refusals name the field and change nothing.
    let (_, created) = server.send("POST", "/v1/listings", Some(&alice.token), &ok);
    let path = format!("/v1/listings/{}", created["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"price": "ten"}), "price"),
        (json!({"rail": {"kind": "evm"}}), "rail.chainId"),
        (json!({"sampleChunkIndexes": [9]}), "sampleChunkIndexes[0]"),
        (json!({"datasetId": "ds_other"}), "datasetId"),
    ] {
        let (status, reply) = server.send("PATCH", &path, Some(&alice.token), &body);
        assert!(status == 400 || status == 422, "{status} {reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
    let (_, after) = server.get(&path, Some(&alice.token));
    assert_eq!(after["title"], created["title"]);
    assert_eq!(after["updatedAt"], created["updatedAt"]);
}

/// A listing on an EVM chain whose payments the server does not verify (no
/// `--evm-rpc` for it) could never be paid: refused when created (422
/// naming `rail.chainId`), when its rail is changed to such a chain, and
/// when a draft made while the server verified the chain is published
/// after a restart without it (409). Nothing is stored by a refusal.
fn unverified_chains_are_refused_up_front(db: Db) {
    const BASE: u64 = 8453;
    let mut server = TestServer::start_with(db, |c| {
        c.evm_rpc
            .insert(BASE, sealstream_testkit::server::SILENT_RPC.into());
    });
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    let on_chain = |chain_id: u64| {
        let mut body = listing_body(&ds, "On another chain");
        body["rail"]["chainId"] = json!(chain_id);
        body
    };
    let audit_before = count(&server, "audit_events");
    let (status, reply) = server.send("POST", "/v1/listings", Some(&alice.token), &on_chain(1));
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "rail.chainId", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not verify payments on chain 1")
            && message.contains("chains verified: 3338, 8453"),
        "{message}"
    );
    assert_eq!(count(&server, "listings"), 0);
    assert_eq!(count(&server, "audit_events"), audit_before);

    // A verified chain is accepted; changing its rail to another is not.
    let (status, draft) = server.send("POST", "/v1/listings", Some(&alice.token), &on_chain(BASE));
    assert_eq!(status, 201, "{draft}");
    let id = draft["id"].as_str().unwrap().to_string();
    let path = format!("/v1/listings/{id}");
    let mut rail = on_chain(1)["rail"].clone();
    let (status, reply) = server.send(
        "PATCH",
        &path,
        Some(&alice.token),
        &json!({ "rail": rail.clone() }),
    );
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "rail.chainId", "{reply}");
    assert_eq!(
        server.get(&path, Some(&alice.token)).1["rail"]["chainId"],
        BASE
    );
    // Another field of it may change.
    let (status, _) = server.send("PATCH", &path, Some(&alice.token), &json!({"price": "7"}));
    assert_eq!(status, 200);

    // The server restarts without chain 8453: the draft is not published.
    server.config.evm_rpc.remove(&BASE);
    server.restart();
    let (status, reply) = server.send(
        "POST",
        &format!("{path}/publish"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"]["field"], "rail.chainId", "{reply}");
    assert_eq!(server.get(&path, Some(&alice.token)).1["state"], "draft");
    // Moved to a chain the server verifies, it is.
    rail["chainId"] = json!(sealstream_testkit::server::PEAQ_CHAIN_ID);
    let (status, reply) = server.send("PATCH", &path, Some(&alice.token), &json!({ "rail": rail }));
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = server.send(
        "POST",
        &format!("{path}/publish"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{reply}");
}

fn mine_lists_only_the_callers(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let bob = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    let (_, bds) = signed_dataset(&server, &bob.did, "t", 2);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, c) = server.send(
            "POST",
            "/v1/listings",
            Some(&alice.token),
            &listing_body(&ds, &format!("A{i}")),
        );
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    server.send(
        "POST",
        "/v1/listings",
        Some(&bob.token),
        &listing_body(&bds, "B"),
    );
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server.get(
            &format!("/v1/listings?mine=true&limit=2{cursor}"),
            Some(&alice.token),
        );
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    ids.sort();
    assert_eq!(seen, ids);
    assert_eq!(server.get("/v1/listings?mine=true", None).0, 401);
    let (status, body) = server.get("/v1/listings", Some(&alice.token));
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("mine"))
    );
    let (status, body) = server.get("/v1/listings?mine=true&limit=500", Some(&alice.token));
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("limit"))
    );
}

fn card_follows_dazaar(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let (chain, ds) = signed_dataset(&server, &alice.did, "energy/meter", 3);
    let id = publish(&server, &alice.token, &listing_body(&ds, "Meter readings"));
    let (status, card) = server.get(&format!("/v1/listings/{id}/card"), None);
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["name"], "Meter readings");
    assert_eq!(card["provider"], alice.did);
    assert_eq!(card["sellerKey"], chain.chain_public_key);
    assert_eq!(card["machineDid"], chain.machine_did);
    assert_eq!(card["license"], json!({"spdx": "CC-BY-4.0"}));
    assert_eq!(card["dataset"]["chunkCount"], 3);
    assert_eq!(card["dataset"]["topic"], "energy/meter");
    let pay = &card["payment"][0];
    assert_eq!(pay["currency"], "PEAQ");
    assert_eq!(pay["amount"], "1.5");
    assert_eq!(pay["amountBaseUnits"], "1500000000000000000");
    assert_eq!(pay["payTo"], "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
    assert_eq!(pay["chainId"], 3338);
}

fn get_bytes(server: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let answer = sealstream_testkit::http::send(server.request("GET", path, None));
    (answer.status, answer.body)
}

/// The owner's client: opens its wrapped copy of a chunk key.
fn owner_chunk_key(chain: &common::listings_fixtures::Chain, index: usize) -> String {
    let entry = &chain.chunks[index].envelope.encryption.key_recipients[0];
    let sealed = hex::decode(&entry.wrapped_key_hex).unwrap();
    let opened = sealstream_core::sealed_box::open(&sealed, &chain.recipient).unwrap();
    hex::encode(&opened[..])
}

fn samples_decrypt_with_core(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let plaintexts: [&[u8]; 4] = [b"first slice", b"second slice: sample", b"third", b"fourth"];
    let chain = chain(
        &server,
        &alice.did,
        "robot/pose",
        &plaintexts,
        1_700_000_000,
    );
    let ds = dataset(&server, &alice.did, &chain, 0, 4, "signed");
    let mut body = listing_body(&ds, "Robot poses");
    body["sampleChunkIndexes"] = json!([1, 2]);
    let (status, created) = server.send("POST", "/v1/listings", Some(&alice.token), &body);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let samples = format!("/v1/listings/{id}/samples");

    // Publishing waits for the sample keys.
    let (status, reply) = server.send(
        "POST",
        &format!("/v1/listings/{id}/publish"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(
        (status, reply["error"]["field"].clone()),
        (409, json!("sampleChunkIndexes")),
        "{reply}"
    );

    // Wrong keys are refused, naming the entry; nothing is stored.
    let wrong = hex::encode([7u8; 32]);
    let good1 = owner_chunk_key(&chain, 1);
    let good2 = owner_chunk_key(&chain, 2);
    for (keys, status, field) in [
        (
            json!([{"index": 1, "chunkKeyHex": good1}, {"index": 2, "chunkKeyHex": wrong}]),
            422,
            "keys[1].chunkKeyHex",
        ),
        (
            json!([{"index": 1, "chunkKeyHex": good2}]),
            422,
            "keys[0].chunkKeyHex",
        ),
        (
            json!([{"index": 0, "chunkKeyHex": owner_chunk_key(&chain, 0)}]),
            422,
            "keys[0].index",
        ),
        (
            json!([{"index": 1, "chunkKeyHex": "abcd"}]),
            400,
            "keys[0].chunkKeyHex",
        ),
        (
            json!([{"index": 1, "chunkKeyHex": good1}, {"index": 1, "chunkKeyHex": good1}]),
            400,
            "keys[1].index",
        ),
        (json!([{"index": 1, "key": good1}]), 400, "keys[0].key"),
        (json!([]), 400, "keys"),
    ] {
        let (got, reply) =
            server.send("POST", &samples, Some(&alice.token), &json!({"keys": keys}));
        assert_eq!(got, status, "{field}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
        assert!(
            !reply.to_string().contains(&good1),
            "a refusal echoes no key"
        );
    }
    assert_eq!(count(&server, "listing_samples"), 0);
    let bob = owner(&server);
    let keys =
        json!({"keys": [{"index": 1, "chunkKeyHex": good1}, {"index": 2, "chunkKeyHex": good2}]});
    assert_eq!(
        server.send("POST", &samples, Some(&bob.token), &keys).0,
        404
    );
    assert_eq!(server.send("POST", &samples, None, &keys).0, 401);

    let fresh = RecipientSecretKey::generate();
    let sample1 = format!(
        "{samples}/1?recipientPublicKey={}",
        fresh.public_key().to_hex()
    );
    // A draft's samples are not public.
    assert_eq!(server.get(&sample1, None).0, 404);

    let (status, reply) = server.send("POST", &samples, Some(&alice.token), &keys);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["samplesAvailable"], json!([1, 2]));
    assert_eq!(count(&server, "listing_samples"), 2);
    let (status, reply) = server.send(
        "POST",
        &format!("/v1/listings/{id}/publish"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{reply}");

    // Anyone gets a sample key sealed to a fresh X25519 key and decrypts
    // the chunk with core's normal path.
    for index in [1usize, 2] {
        let fresh = RecipientSecretKey::generate();
        let (status, sample) = server.get(
            &format!(
                "{samples}/{index}?recipientPublicKey={}",
                fresh.public_key().to_hex()
            ),
            None,
        );
        assert_eq!(status, 200, "{sample}");
        assert_eq!(sample["index"], index);
        let envelope = ChunkEnvelope::parse(sample["envelope"].to_string().as_bytes()).unwrap();
        assert_eq!(envelope, chain.chunks[index].envelope);
        let w = &sample["wrappedKey"];
        let entry = KeyRecipient {
            recipient_id: w["recipientId"].as_str().unwrap().into(),
            recipient_type: w["recipientType"].as_str().unwrap().into(),
            algorithm: w["algorithm"].as_str().unwrap().into(),
            public_key_hex: w["publicKeyHex"].as_str().unwrap().into(),
            wrapped_key_hex: w["wrappedKeyHex"].as_str().unwrap().into(),
        };
        let (status, ciphertext) = get_bytes(&server, sample["ciphertextUrl"].as_str().unwrap());
        assert_eq!(status, 200);
        assert_eq!(ciphertext, chain.chunks[index].ciphertext);
        let plaintext = decrypt_chunk(&envelope, &entry, &fresh, ciphertext.clone()).unwrap();
        assert_eq!(plaintext, plaintexts[index]);
        // Another key cannot open it.
        assert!(decrypt_chunk(
            &envelope,
            &entry,
            &RecipientSecretKey::generate(),
            ciphertext
        )
        .is_err());
    }

    // Refusals of the public routes.
    let (status, reply) = server.get(&format!("{samples}/1"), None);
    assert_eq!(
        (status, reply["error"]["field"].clone()),
        (400, json!("recipientPublicKey"))
    );
    let (status, reply) = server.get(&format!("{samples}/1?recipientPublicKey=zz"), None);
    assert_eq!(
        (status, reply["error"]["field"].clone()),
        (400, json!("recipientPublicKey"))
    );
    let zero = "00".repeat(32);
    let (status, reply) = server.get(&format!("{samples}/1?recipientPublicKey={zero}"), None);
    assert_eq!(
        (status, reply["error"]["field"].clone()),
        (400, json!("recipientPublicKey"))
    );
    let key = fresh.public_key().to_hex();
    let (status, reply) = server.get(&format!("{samples}/0?recipientPublicKey={key}"), None);
    assert_eq!(
        (status, reply["error"]["field"].clone()),
        (404, json!("index")),
        "{reply}"
    );
    assert_eq!(
        get_bytes(&server, &format!("{samples}/0/ciphertext")).0,
        404
    );
    assert_eq!(
        server
            .get(&format!("{samples}/x?recipientPublicKey={key}"), None)
            .0,
        400
    );

    // A sample dropped from the listing is no longer given out.
    let (status, _) = server.send(
        "PATCH",
        &format!("/v1/listings/{id}"),
        Some(&alice.token),
        &json!({"sampleChunkIndexes": [2]}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        server
            .get(&format!("{samples}/1?recipientPublicKey={key}"), None)
            .0,
        404
    );
    assert_eq!(
        server
            .get(&format!("{samples}/2?recipientPublicKey={key}"), None)
            .0,
        200
    );
    assert_eq!(count(&server, "listing_samples"), 1);
    assert!(audit_actions(&server, &id).contains(&"listing.samples.disclose".to_string()));
}

/// Issue 14, item 12: the envelopes of a public (listed) dataset do not
/// carry `plaintextHash` for anyone but its owner: the SHA-256 of a
/// low-entropy chunk ("yes", "no") confirms a guess offline. The chunk id
/// (which a proof needs) is untouched.
fn public_envelopes_withhold_the_plaintext_hash(db: Db) {
    let server = TestServer::start(db);
    let alice = owner(&server);
    let plaintexts: [&[u8]; 3] = [b"yes", b"no", b"yes"];
    let chain = chain(&server, &alice.did, "door/open", &plaintexts, 1_700_000_000);
    let ds = dataset(&server, &alice.did, &chain, 0, 3, "signed");
    publish(&server, &alice.token, &listing_body(&ds, "Door states"));
    let buyer = server.session_for(&common::listings_fixtures::new_did(), &[Role::Buyer]);
    for (i, plaintext) in plaintexts.iter().enumerate() {
        let path = format!("/v1/datasets/{ds}/chunks/{i}/envelope");
        let secret = sealstream_core::chunk::sha256_hex(plaintext);
        let secret = secret.trim_start_matches("0x");
        for token in [None, Some(buyer.as_str())] {
            let (status, envelope) = server.get(&path, token);
            assert_eq!(status, 200, "{envelope}");
            assert_eq!(envelope["plaintextHash"], "", "{envelope}");
            assert!(!envelope.to_string().contains(secret), "{envelope}");
            assert_eq!(
                envelope["chunkId"],
                chain.chunks[i].envelope.chunk_id.as_str()
            );
            let parsed = ChunkEnvelope::parse(envelope.to_string().as_bytes()).unwrap();
            assert_eq!(parsed.chunk_id, chain.chunks[i].envelope.chunk_id);
            assert_eq!(parsed.signature, chain.chunks[i].envelope.signature);
        }
        let (status, envelope) = server.get(&path, Some(&alice.token));
        assert_eq!(status, 200, "{envelope}");
        assert_eq!(
            envelope["plaintextHash"],
            chain.chunks[i].envelope.plaintext_hash.as_str(),
            "the owner sees the envelope as uploaded"
        );
    }
}

fn restart_keeps_listings(db: Db) {
    let mut server = TestServer::start(db);
    let alice = owner(&server);
    let (_, ds) = signed_dataset(&server, &alice.did, "t", 2);
    let mut body = listing_body(&ds, "Persistent zeppelin telemetry");
    body["tags"] = json!(["airship"]);
    let id = publish(&server, &alice.token, &body);
    let (_, before) = server.get(&format!("/v1/listings/{id}"), None);
    server.restart();
    let (status, after) = server.get(&format!("/v1/listings/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(after, before);
    for q in ["zeppelin", "airship"] {
        let (status, page) = server.get(&format!("/v1/catalog?q={q}"), None);
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["items"][0]["id"], id, "{q}: {page}");
    }
}

on_both_databases!(
    public_envelopes_withhold_the_plaintext_hash,
    lifecycle,
    refusals_name_the_field,
    unverified_chains_are_refused_up_front,
    mine_lists_only_the_callers,
    card_follows_dazaar,
    samples_decrypt_with_core,
    restart_keeps_listings,
);
