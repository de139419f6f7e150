//! Datasets over stored chunk chains, on both databases: drafts computed by
//! the server (chunk range and receive-time range) with the root core
//! computes, signed manifests (machine, chain key, owner) accepted by POST
//! and by PUT on a draft, bad manifests refused naming the field with
//! nothing stored, who sees what, inclusion proofs that verify with core,
//! and a restart that keeps everything.

mod common;

use common::chains::{insert_chain, insert_machine, new_owner, write_chain, TestMachine};
use common::{block_on, Db, TestServer};
use sealstream_core::chunk::{sha256_hex, ChainState, ChunkEnvelope, SealedChunk};
use sealstream_core::dataset::{
    verify_chunk, ChunkProofError, DatasetBuilder, DatasetInfo, DatasetManifest, DatasetSignature,
    InclusionProof,
};
use sealstream_core::keys::MachineSigningKey;
use sealstream_core::merkle;
use sealstream_market::auth::Role;
use sealstream_testkit::on_both_databases;
use serde_json::{json, Value};

const TOPIC: &str = "/sensor/gps";
/// Receive time of chunk 0; chunk i arrives `RECEIVED_STEP * i` later.
const T0: i64 = 1_767_323_045; // 2026-01-02T03:04:05Z
const RECEIVED_STEP: i64 = 10;

struct Fixture {
    server: TestServer,
    owner_key: MachineSigningKey,
    owner_did: String,
    owner: String,
    machine: TestMachine,
    plaintexts: Vec<Vec<u8>>,
    chunks: Vec<SealedChunk>,
}

/// A server with one owner, one machine and a 7-chunk chain on `TOPIC`,
/// chunk i received at `T0 + 10 i`.
fn fixture(db: Db) -> Fixture {
    let server = TestServer::start(db);
    let (owner_key, owner_did) = new_owner();
    let owner = server.session_for(&owner_did, &[Role::Owner]);
    let machine = insert_machine(&server, &owner_did);
    let plaintexts: Vec<Vec<u8>> = (0..7u8)
        .map(|i| format!("reading {i}: lat 52.{i}, lon 13.{i}").into_bytes())
        .collect();
    let chunks = write_chain(&machine, ChainState::new(), &plaintexts);
    let received: Vec<i64> = (0..7).map(|i| T0 + RECEIVED_STEP * i).collect();
    insert_chain(&server, &machine.did, TOPIC, &chunks, &received);
    Fixture {
        server,
        owner_key,
        owner_did,
        owner,
        machine,
        plaintexts,
        chunks,
    }
}

impl Fixture {
    /// The unsigned manifest of chunks `first..=last`, as the agent builds it.
    fn manifest(&self, first: usize, last: usize) -> DatasetManifest {
        let mut b = DatasetBuilder::new();
        for c in &self.chunks[first..=last] {
            b.push(&c.envelope).unwrap();
        }
        let source: Vec<u8> = self.plaintexts[first..=last].concat();
        b.finish(DatasetInfo {
            topic: Some(TOPIC.into()),
            source_hash: sha256_hex(&source),
            sample_chunk_indexes: vec![first as u64],
            ..DatasetInfo::default()
        })
        .unwrap()
    }

    /// The manifest of `first..=last` signed by the machine and the chain key.
    fn machine_signed(&self, first: usize, last: usize) -> DatasetManifest {
        let mut m = self.manifest(first, last);
        m.sign_eip191(&self.machine.key).unwrap();
        m.sign_ed25519(&self.machine.chain_key).unwrap();
        m
    }

    fn create(&self, body: Value) -> (u16, Value) {
        self.server
            .send("POST", "/v1/datasets", Some(&self.owner), &body)
    }

    /// A draft of the machine's `TOPIC` chain received from `from` to `to`.
    fn time_range(&self, from: &str, to: &str) -> (u16, Value) {
        self.create(json!({
            "machineDid": self.machine.did, "topic": TOPIC, "fromTime": from, "toTime": to
        }))
    }

    fn draft(&self, from: u64, to: u64) -> Value {
        let (status, body) = self.create(json!({
            "machineDid": self.machine.did, "topic": TOPIC, "fromIndex": from, "toIndex": to
        }));
        assert_eq!(status, 201, "{body}");
        body
    }

    fn put_manifest(&self, id: &str, m: &DatasetManifest) -> (u16, Value) {
        self.put_manifest_json(id, Some(&self.owner), wire(m))
    }

    /// `PUT /v1/datasets/{id}/manifest` of `manifest` (whatever JSON) with
    /// `token`.
    fn put_manifest_json(&self, id: &str, token: Option<&str>, manifest: Value) -> (u16, Value) {
        self.server.send(
            "PUT",
            &format!("/v1/datasets/{id}/manifest"),
            token,
            &json!({ "manifest": manifest }),
        )
    }

    fn audit_events(&self) -> u64 {
        let (status, head) = (200, self.server.audit_head());
        assert_eq!(status, 200);
        head["events"].as_u64().unwrap()
    }

    fn dataset_rows(&self) -> i64 {
        block_on(async {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM datasets")
                .fetch_one(self.server.store.pool())
                .await
                .unwrap();
            n
        })
    }

    fn last_actions(&self, n: i64) -> Vec<String> {
        block_on(async {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT action FROM audit_events ORDER BY seq DESC LIMIT $1")
                    .bind(n)
                    .fetch_all(self.server.store.pool())
                    .await
                    .unwrap();
            rows.into_iter().rev().map(|(a,)| a).collect()
        })
    }
}

/// A manifest as a request carries it.
fn wire(m: &DatasetManifest) -> Value {
    serde_json::from_str(&m.to_pretty_json()).unwrap()
}

/// serde_json → core JSON.
fn core_json(v: &Value) -> sealstream_core::json::Value {
    sealstream_core::json::parse(&serde_json::to_vec(v).unwrap()).unwrap()
}

fn root_of(chunks: &[SealedChunk]) -> String {
    let leaves: Vec<_> = chunks
        .iter()
        .map(|c| sealstream_core::dataset::chunk_leaf(&c.envelope.chunk_id).unwrap())
        .collect();
    sealstream_core::dataset::hash_hex(&merkle::root(&leaves))
}

/// A change to a manifest (which may sign it).
type ManifestEdit<'a> = Box<dyn Fn(&mut DatasetManifest) + 'a>;

/// `edit`, then the EIP-191 signature of `machine`.
fn signed_by<'a>(
    machine: &'a TestMachine,
    edit: impl Fn(&mut DatasetManifest) + 'a,
) -> ManifestEdit<'a> {
    Box::new(move |m| {
        edit(m);
        m.sign_eip191(&machine.key).unwrap();
    })
}

fn assert_refused(reply: (u16, Value), status: u16, field: &str) {
    let (got, body) = reply;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{body}"
    );
}

fn range_draft_has_the_root_core_computes(db: Db) {
    let f = fixture(db);
    let before = f.audit_events();
    let body = f.draft(2, 5);
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("ds_") && id.len() == 19, "{id}");
    assert!(id[3..].bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(body["state"], "draft");
    assert_eq!(body["machineDid"], f.machine.did.as_str());
    assert_eq!(body["ownerDid"], f.owner_did.as_str());
    assert_eq!(body["topic"], TOPIC);
    assert_eq!(body["firstIndex"], 2);
    assert_eq!(body["lastIndex"], 5);
    assert_eq!(body["chunkCount"], 4);
    assert_eq!(body["firstChunkId"], f.chunks[2].envelope.chunk_id.as_str());
    assert_eq!(body["headChunkId"], f.chunks[5].envelope.chunk_id.as_str());
    assert_eq!(
        body["chainPublicKeyHex"],
        f.machine.chain_key.public_key().to_hex()
    );
    // Independently: core's builder over the same envelopes.
    let expected = f.manifest(2, 5);
    assert_eq!(body["merkleRoot"], expected.merkle_root.as_str());
    assert_eq!(body["merkleRoot"], root_of(&f.chunks[2..=5]).as_str());
    assert_eq!(body["firstReceivedAt"], "2026-01-02T03:04:25Z");
    assert_eq!(body["lastReceivedAt"], "2026-01-02T03:04:55Z");
    assert_eq!(body["public"], false);
    assert!(body.get("manifest").is_none(), "{body}");
    assert_eq!(f.audit_events(), before + 1);
    assert_eq!(f.last_actions(1), vec!["dataset.create"]);

    // The whole chain, and a single chunk.
    let whole = f.draft(0, 6);
    assert_eq!(whole["merkleRoot"], root_of(&f.chunks).as_str());
    let one = f.draft(6, 6);
    assert_eq!(one["chunkCount"], 1);
    assert_eq!(one["merkleRoot"], root_of(&f.chunks[6..]).as_str());

    // Read back and listed.
    let (status, got) = f.server.get(&format!("/v1/datasets/{id}"), Some(&f.owner));
    assert_eq!(status, 200);
    assert_eq!(got, body);
    let (status, page) = f.server.get("/v1/datasets", Some(&f.owner));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["datasets"].as_array().unwrap().len(), 3);
    let (_, first) = f.server.get("/v1/datasets?limit=2", Some(&f.owner));
    assert_eq!(first["datasets"].as_array().unwrap().len(), 2);
    assert_eq!(first["nextOffset"], 2);
    let (_, rest) = f
        .server
        .get("/v1/datasets?limit=2&offset=2", Some(&f.owner));
    assert_eq!(rest["datasets"].as_array().unwrap().len(), 1);
    assert!(rest.get("nextOffset").is_none());
    let mut ids: Vec<Value> = first["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["datasets"].as_array().unwrap())
        .map(|d| d["id"].clone())
        .collect();
    ids.sort_by_key(|v| v.to_string());
    ids.dedup();
    assert_eq!(ids.len(), 3, "pages do not overlap");
    assert_refused(
        f.server.get("/v1/datasets?limit=0", Some(&f.owner)),
        400,
        "limit",
    );
    assert_refused(
        f.server.get("/v1/datasets?page=2", Some(&f.owner)),
        400,
        "page",
    );
}

fn time_range_selects_by_receive_time(db: Db) {
    let f = fixture(db);
    let t = sealstream_core::utc::format_seconds;
    // [T0+20, T0+50): chunks 2, 3, 4 (received at +20, +30, +40); +50 excluded.
    let (status, body) = f.time_range(&t(T0 + 20), &t(T0 + 50));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["firstIndex"], 2);
    assert_eq!(body["chunkCount"], 3);
    assert_eq!(body["merkleRoot"], root_of(&f.chunks[2..=4]).as_str());
    // Times between receive times round inwards.
    let (_, body) = f.time_range(&t(T0 + 11), &t(T0 + 41));
    assert_eq!(
        (body["firstIndex"].clone(), body["chunkCount"].clone()),
        (json!(2), json!(3))
    );
    // Everything.
    let (_, body) = f.time_range(&t(T0 - 1000), &t(T0 + 1000));
    assert_eq!(body["merkleRoot"], root_of(&f.chunks).as_str());

    let before = (f.audit_events(), f.dataset_rows());
    // (from, to, status, the field named): nothing received in
    // [T0+41, T0+49); an empty range; not a UTC time.
    for (from, to, status, field) in [
        (t(T0 + 41), t(T0 + 49), 422, "toTime"),
        (t(T0 + 40), t(T0 + 40), 422, "toTime"),
        ("2026-01-02 03:04:05".to_string(), t(T0), 400, "fromTime"),
    ] {
        assert_refused(f.time_range(&from, &to), status, field);
    }
    assert_refused(
        f.create(json!({"machineDid": f.machine.did, "topic": TOPIC, "fromTime": t(T0)})),
        400,
        "toTime",
    );
    assert_eq!(
        (f.audit_events(), f.dataset_rows()),
        before,
        "nothing stored"
    );
}

fn bad_ranges_are_refused_naming_the_field(db: Db) {
    let f = fixture(db);
    let before = (f.audit_events(), f.dataset_rows());
    let range = |from: u64, to: u64| json!({"machineDid": f.machine.did, "topic": TOPIC, "fromIndex": from, "toIndex": to});
    assert_refused(f.create(range(4, 3)), 422, "toIndex");
    assert_refused(f.create(range(3, 7)), 422, "toIndex");
    assert_refused(f.create(range(7, 9)), 422, "fromIndex");
    assert_refused(
        f.create(
            json!({"machineDid": f.machine.did, "topic": "/other", "fromIndex": 0, "toIndex": 0}),
        ),
        422,
        "topic",
    );
    assert_refused(
        f.create(json!({"machineDid": f.machine.did, "topic": TOPIC, "fromIndex": 0})),
        400,
        "toIndex",
    );
    assert_refused(
        f.create(
            json!({"machineDid": f.machine.did, "topic": TOPIC, "fromIndex": -1, "toIndex": 2}),
        ),
        400,
        "fromIndex",
    );
    assert_refused(
        f.create(json!({"machineDid": f.machine.did, "topic": TOPIC})),
        400,
        "fromIndex",
    );
    assert_refused(
        f.create(json!({
            "machineDid": f.machine.did, "topic": TOPIC, "fromIndex": 0, "toIndex": 1,
            "fromTime": "2026-01-02T03:04:05Z", "toTime": "2026-01-02T03:04:06Z"
        })),
        400,
        "fromTime",
    );
    assert_refused(
        f.create(json!({"topic": TOPIC, "fromIndex": 0, "toIndex": 1})),
        400,
        "machineDid",
    );
    assert_refused(
        f.create(
            json!({"machineDid": "did:peaq:0x12", "topic": TOPIC, "fromIndex": 0, "toIndex": 1}),
        ),
        400,
        "machineDid",
    );
    assert_refused(
        f.create(json!({"machineDid": f.machine.did, "topic": TOPIC, "fromIndex": 0, "toIndex": 1, "x": 1})),
        400,
        "x",
    );
    assert_refused(
        f.create(json!({"machineDid": f.machine.did, "manifest": wire(&f.machine_signed(0, 1))})),
        400,
        "machineDid",
    );
    assert_eq!(
        (f.audit_events(), f.dataset_rows()),
        before,
        "nothing stored"
    );
}

fn machine_signed_manifest_is_accepted_by_post_and_put(db: Db) {
    let f = fixture(db);
    // (b) A manifest alone, as the agent signs one per window.
    let m = f.machine_signed(1, 4);
    let before = f.audit_events();
    let (status, body) = f.create(json!({ "manifest": wire(&m) }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "signed");
    assert_eq!(body["signerDid"], f.machine.did.as_str());
    assert_eq!(body["firstIndex"], 1);
    assert_eq!(body["chunkCount"], 4);
    assert_eq!(body["merkleRoot"], m.merkle_root.as_str());
    assert_eq!(body["manifest"], wire(&m));
    assert_eq!(f.audit_events(), before + 2);
    assert_eq!(f.last_actions(2), vec!["dataset.create", "dataset.sign"]);
    let stored = DatasetManifest::parse(&serde_json::to_vec(&body["manifest"]).unwrap()).unwrap();
    assert_eq!(stored, m);
    stored.verify_signatures().unwrap();

    // Only the machine's EIP-191 signature, and only the chain key's, each suffice.
    let mut only_eip = f.manifest(0, 2);
    only_eip.sign_eip191(&f.machine.key).unwrap();
    let (status, body) = f.create(json!({ "manifest": wire(&only_eip) }));
    assert_eq!(status, 201, "{body}");
    let mut only_ed = f.manifest(0, 2);
    only_ed.sign_ed25519(&f.machine.chain_key).unwrap();
    let (status, body) = f.create(json!({ "manifest": wire(&only_ed) }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["signerDid"], f.machine.did.as_str());

    // PUT on a draft.
    let draft = f.draft(2, 6);
    let id = draft["id"].as_str().unwrap();
    let before = f.audit_events();
    let m = f.machine_signed(2, 6);
    let (status, body) = f.put_manifest(id, &m);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "signed");
    assert_eq!(body["id"], id);
    assert_eq!(body["manifest"], wire(&m));
    assert_eq!(f.audit_events(), before + 1);
    assert_eq!(f.last_actions(1), vec!["dataset.sign"]);
    let (_, got) = f.server.get(&format!("/v1/datasets/{id}"), Some(&f.owner));
    assert_eq!(got, body);
    // Signed once.
    assert_refused(f.put_manifest(id, &m), 409, "manifest");
    assert_eq!(f.audit_events(), before + 1);
}

fn owner_signed_manifest_is_accepted(db: Db) {
    let f = fixture(db);
    let draft = f.draft(0, 3);
    let id = draft["id"].as_str().unwrap();
    let mut m = f.manifest(0, 3);
    m.sign_eip191_as(&f.owner_key);
    let (status, body) = f.put_manifest(id, &m);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signerDid"], f.owner_did.as_str());
    assert_eq!(
        body["manifest"]["signatures"][0]["signer"],
        f.owner_did.as_str()
    );
    // By POST too, beside the machine's own.
    let mut m = f.manifest(3, 6);
    m.sign_eip191(&f.machine.key).unwrap();
    m.sign_eip191_as(&f.owner_key);
    let (status, body) = f.create(json!({ "manifest": wire(&m) }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["signerDid"], f.owner_did.as_str());
}

fn bad_manifests_are_refused_naming_the_field(db: Db) {
    let f = fixture(db);
    let draft = f.draft(2, 5);
    let id = draft["id"].as_str().unwrap().to_string();
    let before = (f.audit_events(), f.dataset_rows());
    let other_chain = sealstream_core::keys::ChainSigningKey::generate();
    let wrong_root = root_of(&f.chunks[1..=5]);
    let machine = &f.machine;

    // Manifests of 2..=5 changed (then signed by the machine alone where
    // the change does not sign), refused by PUT naming the field.
    let put_cases: Vec<(ManifestEdit, &str)> = vec![
        // Wrong root, signed as such.
        (
            signed_by(machine, |m| m.merkle_root = wrong_root.clone()),
            "manifest.merkleRoot",
        ),
        // Someone else's signature (a stranger, not the owner).
        (
            Box::new(|m| m.sign_eip191_as(&MachineSigningKey::generate())),
            "manifest.signatures[0]",
        ),
        // The owner's signature relabelled as the machine's.
        (
            Box::new(|m| {
                m.sign_eip191_as(&f.owner_key);
                if let DatasetSignature::Eip191 { signer, .. } = &mut m.signatures[0] {
                    *signer = machine.did.clone();
                }
            }),
            "manifest.signatures[0]",
        ),
        // Topic, samples, head, chain key, unsigned.
        (
            signed_by(machine, |m| m.topic = Some("/other".into())),
            "manifest.topic",
        ),
        (
            signed_by(machine, |m| m.sample_chunk_indexes = vec![6]),
            "manifest.sampleChunkIndexes[0]",
        ),
        (
            signed_by(machine, |m| {
                m.head_chunk_id = f.chunks[6].envelope.chunk_id.clone()
            }),
            "manifest.headChunkId",
        ),
        (
            Box::new(|m| {
                m.chain_public_key_hex = other_chain.public_key().to_hex();
                m.sign_ed25519(&other_chain).unwrap();
            }),
            "manifest.chainPublicKeyHex",
        ),
        (Box::new(|_| {}), "manifest.signatures"),
    ];
    for (edit, field) in put_cases {
        let mut m = f.manifest(2, 5);
        edit(&mut m);
        assert_refused(f.put_manifest(&id, &m), 422, field);
    }
    // Wrong count: a true manifest of a shorter range.
    assert_refused(
        f.put_manifest(&id, &f.machine_signed(2, 4)),
        422,
        "manifest.chunkCount",
    );
    // Another range altogether.
    assert_refused(
        f.put_manifest(&id, &f.machine_signed(1, 4)),
        422,
        "manifest.firstIndex",
    );
    // Signed by the machine and the chain key, then a field changed after
    // signing (sourceHash is not checkable by the server, but the
    // signatures cover it), or the second signature broken.
    let mut m = f.machine_signed(2, 5);
    m.source_hash = sha256_hex(b"something else");
    assert_refused(f.put_manifest(&id, &m), 422, "manifest.signatures[0]");
    let mut m = f.machine_signed(2, 5);
    if let DatasetSignature::Ed25519 { value, .. } = &mut m.signatures[1] {
        *value = "00".repeat(64);
    }
    assert_refused(f.put_manifest(&id, &m), 422, "manifest.signatures[1]");
    // Malformed: a missing field, an unknown (unsigned) one, not an object.
    let mut missing = wire(&f.machine_signed(2, 5));
    missing.as_object_mut().unwrap().remove("merkleRoot");
    let mut unknown = wire(&f.machine_signed(2, 5));
    unknown["price"] = json!(1);
    for (manifest, field) in [
        (missing, "manifest.merkleRoot"),
        (unknown, "manifest.price"),
        (json!([1]), "manifest"),
    ] {
        let reply = f.put_manifest_json(&id, Some(&f.owner), manifest);
        assert_refused(reply, 400, field);
    }

    // By POST: the same checks against the chain, and ranges beyond it.
    let post_cases: Vec<(ManifestEdit, &str)> = vec![
        (
            signed_by(machine, |m| m.merkle_root = wrong_root.clone()),
            "manifest.merkleRoot",
        ),
        (
            signed_by(machine, |m| m.chunk_count = 9),
            "manifest.chunkCount",
        ),
        (
            signed_by(machine, |m| m.first_index = 7),
            "manifest.firstIndex",
        ),
        // A true manifest of a shorter range than it claims: the head differs.
        (
            signed_by(machine, |m| m.chunk_count = 3),
            "manifest.headChunkId",
        ),
        (
            Box::new(|m| m.sign_eip191_as(&MachineSigningKey::generate())),
            "manifest.signatures[0]",
        ),
    ];
    for (edit, field) in post_cases {
        let mut m = f.manifest(2, 5);
        edit(&mut m);
        assert_refused(f.create(json!({"manifest": wire(&m)})), 422, field);
    }

    assert_eq!(
        (f.audit_events(), f.dataset_rows()),
        before,
        "nothing stored"
    );
    let (_, still) = f.server.get(&format!("/v1/datasets/{id}"), Some(&f.owner));
    assert_eq!(still["state"], "draft");
    assert!(still.get("manifest").is_none());
}

fn only_the_owner_reaches_its_datasets(db: Db) {
    let f = fixture(db);
    let (_, stranger_did) = new_owner();
    let stranger = f.server.session_for(&stranger_did, &[Role::Owner]);
    let (_, admin_did) = new_owner();
    let admin = f.server.session_for(&admin_did, &[Role::Admin]);
    let body = f.draft(0, 2);
    let id = body["id"].as_str().unwrap().to_string();
    let before = (f.audit_events(), f.dataset_rows());
    let range = json!({"machineDid": f.machine.did, "topic": TOPIC, "fromIndex": 0, "toIndex": 1});

    // Anonymous: no creating, listing or signing.
    assert_refused(
        f.server.send("POST", "/v1/datasets", None, &range),
        401,
        "Authorization",
    );
    assert_refused(f.server.get("/v1/datasets", None), 401, "Authorization");
    let m = f.machine_signed(0, 2);
    assert_refused(
        f.put_manifest_json(&id, None, wire(&m)),
        401,
        "Authorization",
    );
    // Another owner: the machine and the dataset do not exist for them.
    let (status, reply) = f
        .server
        .send("POST", "/v1/datasets", Some(&stranger), &range);
    assert_eq!(status, 404, "{reply}");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("machine"));
    let (status, _) = f.server.send(
        "POST",
        "/v1/datasets",
        Some(&stranger),
        &json!({"manifest": wire(&m)}),
    );
    assert_eq!(status, 404);
    for path in [
        format!("/v1/datasets/{id}"),
        format!("/v1/datasets/{id}/proofs/0"),
        format!("/v1/datasets/{id}/chunks/0/envelope"),
    ] {
        for token in [Some(stranger.as_str()), None] {
            let (status, reply) = f.server.get(&path, token);
            assert_eq!(status, 404, "{path}: {reply}");
            assert_eq!(reply["error"]["message"], format!("dataset {id} not found"));
        }
    }
    let (status, _) = f.put_manifest_json(&id, Some(&stranger), wire(&m));
    assert_eq!(status, 404);
    let (_, page) = f.server.get("/v1/datasets", Some(&stranger));
    assert_eq!(page["datasets"], json!([]));
    // An admin reads everything but does not sign for the owner.
    let (status, _) = f.server.get(&format!("/v1/datasets/{id}"), Some(&admin));
    assert_eq!(status, 200);
    let (_, page) = f.server.get("/v1/datasets", Some(&admin));
    assert_eq!(page["datasets"].as_array().unwrap().len(), 1);
    let (status, _) = f.put_manifest_json(&id, Some(&admin), wire(&m));
    assert_eq!(status, 403);
    let (status, _) = f
        .server
        .get("/v1/datasets/ds_0000000000000000", Some(&f.owner));
    assert_eq!(status, 404);
    assert_eq!(
        (f.audit_events(), f.dataset_rows()),
        before,
        "nothing stored"
    );

    // Once public (a listing published), anyone reads it, its proofs and envelopes.
    block_on(async {
        let mut tx = f.server.store.pool().begin().await.unwrap();
        assert!(sealstream_market::datasets::set_public(&mut tx, &id, true)
            .await
            .unwrap());
        assert!(
            !sealstream_market::datasets::set_public(&mut tx, "ds_nope", true)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
    });
    let (status, got) = f.server.get(&format!("/v1/datasets/{id}"), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["public"], true);
    let (status, _) = f.server.get(&format!("/v1/datasets/{id}/proofs/1"), None);
    assert_eq!(status, 200);
    let (status, _) = f.server.get(
        &format!("/v1/datasets/{id}/chunks/1/envelope"),
        Some(&stranger),
    );
    assert_eq!(status, 200);
    // Still not theirs to sign.
    let (status, _) = f.put_manifest_json(&id, Some(&stranger), wire(&m));
    assert_eq!(status, 404);
    let row = block_on(sealstream_market::datasets::dataset_by_id(
        &f.server.store,
        &id,
    ))
    .unwrap()
    .unwrap();
    assert!(row.public);
    assert_eq!(row.owner_did, f.owner_did);
}

/// Fetches the proof and envelope of chain index `index` of dataset `id`.
fn proof_and_envelope(
    f: &Fixture,
    id: &str,
    index: u64,
    token: Option<&str>,
) -> (InclusionProof, ChunkEnvelope) {
    let (status, proof) = f
        .server
        .get(&format!("/v1/datasets/{id}/proofs/{index}"), token);
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["schemaVersion"], "sealstream.inclusion-proof.v1");
    let proof = InclusionProof::from_json(&core_json(&proof)).unwrap();
    let (status, envelope) = f
        .server
        .get(&format!("/v1/datasets/{id}/chunks/{index}/envelope"), token);
    assert_eq!(status, 200, "{envelope}");
    let envelope = ChunkEnvelope::from_json(&core_json(&envelope)).unwrap();
    (proof, envelope)
}

fn proofs_verify_with_core_for_every_chunk(db: Db) {
    let f = fixture(db);
    let m = f.machine_signed(1, 5);
    let (status, body) = f.create(json!({"manifest": wire(&m)}));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let served = DatasetManifest::parse(&serde_json::to_vec(&body["manifest"]).unwrap()).unwrap();
    for index in 1..=5u64 {
        let (proof, envelope) = proof_and_envelope(&f, &id, index, Some(&f.owner));
        assert_eq!(envelope, f.chunks[index as usize].envelope);
        assert_eq!(proof.chunk_index, index);
        assert_eq!(proof.leaf_index, index - 1);
        assert_eq!(proof.tree_size, 5);
        assert_eq!(proof.merkle_root, m.merkle_root);
        verify_chunk(
            &served,
            &proof,
            &envelope,
            &f.chunks[index as usize].ciphertext,
        )
        .unwrap_or_else(|e| panic!("chunk {index}: {e}"));
    }
    // A proof does not vouch for another chunk.
    let (proof2, _) = proof_and_envelope(&f, &id, 2, Some(&f.owner));
    let (mut proof3, envelope3) = proof_and_envelope(&f, &id, 3, Some(&f.owner));
    proof3.path = proof2.path;
    assert_eq!(
        verify_chunk(&served, &proof3, &envelope3, &f.chunks[3].ciphertext),
        Err(ChunkProofError::Root)
    );
    // Outside the dataset, or not an index.
    for index in ["0", "6", "99999999999999999999"] {
        let reply = f
            .server
            .get(&format!("/v1/datasets/{id}/proofs/{index}"), Some(&f.owner));
        let expected = if index.len() > 19 { 400 } else { 404 };
        assert_refused(reply, expected, "index");
        let reply = f.server.get(
            &format!("/v1/datasets/{id}/chunks/{index}/envelope"),
            Some(&f.owner),
        );
        assert_refused(reply, expected, "index");
    }
    assert_refused(
        f.server
            .get(&format!("/v1/datasets/{id}/proofs/x"), Some(&f.owner)),
        400,
        "index",
    );
    assert_refused(
        f.server
            .get(&format!("/v1/datasets/{id}/proofs/-1"), Some(&f.owner)),
        400,
        "index",
    );
    // A draft's proofs lead to its computed root.
    let draft = f.draft(0, 6);
    let draft_id = draft["id"].as_str().unwrap();
    for index in 0..=6u64 {
        let (proof, envelope) = proof_and_envelope(&f, draft_id, index, Some(&f.owner));
        let leaf = sealstream_core::dataset::chunk_leaf(&envelope.chunk_id).unwrap();
        let root = sealstream_core::keys::parse_hex_exact::<32>(
            draft["merkleRoot"].as_str().unwrap(),
            "root",
        )
        .unwrap();
        assert!(merkle::verify_inclusion(
            &leaf,
            proof.leaf_index,
            7,
            &proof.path,
            &root
        ));
    }
}

fn a_chain_that_grew_keeps_old_datasets_and_restart_keeps_everything(db: Db) {
    let mut f = fixture(db);
    let draft = f.draft(0, 6);
    let signed = f
        .create(json!({"manifest": wire(&f.machine_signed(0, 3))}))
        .1;
    // The chain grows; the datasets keep their ranges and roots.
    let state = ChainState::after(&f.chunks[6].envelope);
    let more = write_chain(&f.machine, state, &[b"eight".to_vec(), b"nine".to_vec()]);
    insert_chain(&f.server, &f.machine.did, TOPIC, &more, &[T0 + 70, T0 + 80]);
    f.chunks.extend(more);
    let grown = f.draft(5, 8);
    assert_eq!(grown["merkleRoot"], root_of(&f.chunks[5..=8]).as_str());
    let events = f.audit_events();

    f.server.restart();
    for body in [&draft, &signed, &grown] {
        let id = body["id"].as_str().unwrap();
        let (status, got) = f.server.get(&format!("/v1/datasets/{id}"), Some(&f.owner));
        assert_eq!(status, 200);
        assert_eq!(&got, body);
    }
    // server.start is appended at every start (of every replica, with
    // SEALSTREAM_TEST_REPLICAS).
    assert_eq!(f.audit_events(), events + 1 + f.server.others.len() as u64);
    let id = draft["id"].as_str().unwrap();
    let (proof, _) = proof_and_envelope(&f, id, 6, Some(&f.owner));
    assert_eq!(proof.tree_size, 7);
    // A draft is still signable after the restart.
    let (status, body) = f.put_manifest(id, &f.machine_signed(0, 6));
    assert_eq!(status, 200, "{body}");
    let (_, page) = f.server.get("/v1/datasets", Some(&f.owner));
    assert_eq!(page["datasets"].as_array().unwrap().len(), 3);
}

on_both_databases!(
    range_draft_has_the_root_core_computes,
    time_range_selects_by_receive_time,
    bad_ranges_are_refused_naming_the_field,
    machine_signed_manifest_is_accepted_by_post_and_put,
    owner_signed_manifest_is_accepted,
    bad_manifests_are_refused_naming_the_field,
    only_the_owner_reaches_its_datasets,
    proofs_verify_with_core_for_every_chunk,
    a_chain_that_grew_keeps_old_datasets_and_restart_keeps_everything,
);
