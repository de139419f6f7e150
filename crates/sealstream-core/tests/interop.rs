//! Live interop against the reference SDK (peaq-os-sdk 0.12.1) in a venv:
//! chains, access files and packages made by each side are verified, granted
//! on and decrypted by the other, byte for byte; canonical JSON and field
//! rules agree on randomized payloads.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use common::{obj, random_map, random_rules, rng, sorted, strings, Peer};
use rand::Rng;
use sealstream_core::access::{grant_entry, read_access_file, AccessFileBuilder, Buyer};
use sealstream_core::chunk::{
    verify_chain, ChainConfig, ChainItem, ChainReader, ChainReaderOptions, ChainState, ChainWriter,
};
use sealstream_core::json::{self, canonical, write::to_python_compact, Map, Value};
use sealstream_core::keys::{ChainSigningKey, FieldKey, MachineSigningKey, RecipientSecretKey};
use sealstream_core::layout::{
    list_chain, read_ciphertext, read_envelope, write_atomic, DirectorySink,
};
use sealstream_core::package::{CanonicalForm, DataPackage, PackageSigner, UnsignedPayload};
use sealstream_core::rules::{decrypt_field, TopicRules};
use sealstream_core::{chunk::PublishManifest, identity::Did};

#[test]
fn canonical_json_matches_reference_on_random_documents() {
    let mut peer = Peer::start();
    let mut rng = rng("canonical");
    let docs: Vec<Value> = (0..400)
        .map(|_| Value::Object(random_map(&mut rng, 0)))
        .collect();
    let texts: Vec<String> = docs.iter().map(to_python_compact).collect();
    let resp = peer.call(obj(vec![
        ("op", "canonical".into()),
        ("texts", strings(&texts)),
    ]));
    let theirs = resp["results"].as_array().unwrap();
    for ((doc, text), their) in docs.iter().zip(&texts).zip(theirs) {
        assert_eq!(
            canonical::python(doc),
            their.as_str().unwrap(),
            "document {text}"
        );
        // And our parser reads their output back to the same value.
        assert_eq!(
            &json::parse(their.as_str().unwrap().as_bytes()).unwrap(),
            &sorted(doc),
            "{text}"
        );
    }
}

/// Replace each encrypted wrapper by `{"decrypted": value}`.
fn normalize(value: &Value, key: &FieldKey) -> Value {
    match value {
        Value::Object(m) if m.get("__encrypted") == Some(&Value::Bool(true)) => obj(vec![(
            "decrypted",
            decrypt_field(value, key).expect("encrypted field decrypts"),
        )]),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalize(v, key)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| normalize(v, key)).collect()),
        other => other.clone(),
    }
}

#[test]
fn field_rules_match_reference_on_random_payloads_and_rules() {
    let mut peer = Peer::start();
    let mut rng = rng("rules");
    let field_key = FieldKey::generate();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..400 {
        let fields = random_map(&mut rng, 0);
        let rules_doc = random_rules(&mut rng, &fields, true);
        let rules = TopicRules::from_json(&rules_doc).unwrap();
        let out = rules.apply(&fields, Some(&field_key));
        ours.push((
            to_python_compact(&Value::Object(fields.clone())),
            to_python_compact(&rules_doc),
            out,
        ));
        cases.push(obj(vec![
            ("fields", to_python_compact(&Value::Object(fields)).into()),
            ("rules", rules_doc),
        ]));
    }
    let resp = peer.call(obj(vec![
        ("op", "apply_rules".into()),
        ("fieldKey", field_key.to_hex_secret().as_str().into()),
        ("cases", Value::Array(cases)),
    ]));
    let mut failures = 0;
    for ((fields, rules, our), their) in ours.iter().zip(resp["results"].as_array().unwrap()) {
        let their = their.as_object().unwrap();
        match (our, their.get("output")) {
            (Ok(our), Some(their)) => {
                let their = json::parse(their.as_str().unwrap().as_bytes()).unwrap();
                assert_eq!(
                    to_python_compact(&normalize(&Value::Object(our.clone()), &field_key)),
                    to_python_compact(&normalize(&their, &field_key)),
                    "fields {fields}\nrules {rules}"
                );
            }
            // The reference fails on numbers it cannot bucket (subnormals, near-overflow); so must we.
            (Err(_), None) => failures += 1,
            (our, _) => panic!(
                "outcomes differ: ours {our:?}, theirs {their:?}\nfields {fields}\nrules {rules}"
            ),
        }
    }
    assert!(
        failures < ours.len() / 10,
        "too many failing cases ({failures}) for the test to mean much"
    );
}

const SIGNING_KEY: &str = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";

#[test]
fn packages_signed_by_each_side_verify_on_the_other() {
    let mut peer = Peer::start();
    let mut rng = rng("packages");
    let key = MachineSigningKey::from_hex(SIGNING_KEY, "key").unwrap();
    let did = Did::of_key(&key).to_string();
    let key_id = format!("{did}#keys-1");
    let field_key = FieldKey::generate();
    let signer =
        PackageSigner::new(key, &did, Some(key_id.clone()), Some(field_key.clone())).unwrap();

    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for i in 0..250u64 {
        let fields = random_map(&mut rng, 0);
        let encrypt = rng.gen_bool(0.3);
        let rules_doc = random_rules(&mut rng, &fields, encrypt);
        let seq = if rng.gen_bool(0.2) { u64::MAX - i } else { i };
        let payload = UnsignedPayload {
            topic: "/t".into(),
            fields: fields.clone(),
            captured_at: format!("2026-11-21T10:00:{:02}Z", i % 60),
        };
        // Numbers the reference cannot generalize fail on both sides (see the rules test).
        let Ok(pkg) = signer.build(
            &payload,
            &TopicRules::from_json(&rules_doc).unwrap(),
            "1.0.0",
            seq,
        ) else {
            continue;
        };
        assert_eq!(pkg.verify().outcome, Ok(CanonicalForm::Python));
        ours.push((pkg, encrypt));
        cases.push(obj(vec![
            ("topic", "/t".into()),
            ("fields", to_python_compact(&Value::Object(fields)).into()),
            ("capturedAt", payload.captured_at.as_str().into()),
            ("rules", rules_doc),
            ("schemaVersion", "1.0.0".into()),
            ("sequenceNumber", Value::from(seq)),
        ]));
    }
    // Ours → their verifier.
    let lines: Vec<String> = ours.iter().map(|(p, _)| p.to_json_line()).collect();
    let resp = peer.call(obj(vec![
        ("op", "verify_packages".into()),
        ("packages", strings(&lines)),
    ]));
    for (line, r) in lines.iter().zip(resp["results"].as_array().unwrap()) {
        assert_eq!(
            r.as_object().unwrap()["valid"],
            Value::Bool(true),
            "their verify of ours: {line} {r:?}"
        );
    }
    // Theirs → our verifier; without encryption (random IVs) the packages are byte-identical.
    let resp = peer.call(obj(vec![
        ("op", "sign_packages".into()),
        ("key", SIGNING_KEY.into()),
        ("did", did.as_str().into()),
        ("keyId", key_id.as_str().into()),
        ("fieldKey", field_key.to_hex_secret().as_str().into()),
        ("cases", Value::Array(cases)),
    ]));
    for ((our, encrypt), their) in ours.iter().zip(resp["results"].as_array().unwrap()) {
        let text = their.as_str().unwrap();
        let pkg = DataPackage::from_json(&json::parse(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            pkg.verify().outcome,
            Ok(CanonicalForm::Python),
            "our verify of theirs: {text}"
        );
        if !encrypt {
            assert_eq!(our.to_json_line(), text);
        }
    }
    // A package tampered after signing fails on both sides.
    let mut bad = ours[0].0.clone();
    bad.timestamp.push('1');
    assert!(!bad.verify().is_valid());
    let resp = peer.call(obj(vec![
        ("op", "verify_packages".into()),
        ("packages", strings(&[bad.to_json_line()])),
    ]));
    assert_eq!(
        resp["results"].as_array().unwrap()[0].as_object().unwrap()["valid"],
        Value::Bool(false)
    );
}

struct Keys {
    chain: ChainSigningKey,
    owner: RecipientSecretKey,
    operator: RecipientSecretKey,
    machine: RecipientSecretKey,
    buyer: Arc<RecipientSecretKey>,
    did: String,
}

fn keys() -> Keys {
    Keys {
        chain: ChainSigningKey::generate(),
        owner: RecipientSecretKey::generate(),
        operator: RecipientSecretKey::generate(),
        machine: RecipientSecretKey::generate(),
        buyer: Arc::new(RecipientSecretKey::generate()),
        did: Did::of_key(&MachineSigningKey::generate()).to_string(),
    }
}

const BUYER_ID: &str = "did:peaq:0x000000000000000000000000000000000000b0b0";

fn our_publish(k: &Keys, input: &[u8], chunk_size: usize, dir: &Path) {
    let mut config = ChainConfig::new(
        ChainSigningKey::from_hex(&k.chain.to_hex_secret(), "chain").unwrap(),
        &k.did,
        &format!("{}#keys-1", k.did),
        ChainConfig::default_recipients(
            k.owner.public_key(),
            k.operator.public_key(),
            k.machine.public_key(),
        ),
    );
    config.chunk_size = chunk_size;
    let mut writer =
        ChainWriter::new(config, ChainState::new(), DirectorySink::new(dir).unwrap()).unwrap();
    writer.copy_from(input).unwrap();
    let (summary, _) = writer.finish().unwrap();
    let manifest = PublishManifest {
        source_hash: summary.source_hash,
        total_chunks: summary.state.next_index,
        chunk_size: chunk_size as u64,
        machine_did: k.did.clone(),
        created_at: sealstream_core::utc::now(),
        extra: Map::new(),
    };
    write_atomic(
        &dir.join("manifest.json"),
        manifest.to_pretty_json().as_bytes(),
    )
    .unwrap();
}

fn our_grant(k: &Keys, chunk_dir: &Path, out: &Path, max: usize) -> usize {
    std::fs::create_dir_all(out).unwrap();
    let buyer = Buyer::new(BUYER_ID, &k.buyer.public_key().to_hex()).unwrap();
    let mut builder = AccessFileBuilder::new(&buyer, max).unwrap();
    let mut files = Vec::new();
    for (_, path) in list_chain(chunk_dir).unwrap() {
        files.extend(
            builder.push(grant_entry(&read_envelope(&path).unwrap(), &k.owner, &buyer).unwrap()),
        );
    }
    files.extend(builder.finish());
    for f in &files {
        write_atomic(&out.join(&f.file_name), &f.to_bytes()).unwrap();
    }
    files.len()
}

fn our_consume(k: &Keys, chunk_dir: &Path, access_dir: &Path) -> Vec<u8> {
    let list = list_chain(chunk_dir).unwrap();
    let items = list.iter().map(|(i, p)| {
        Ok::<_, ()>((
            read_envelope(p).unwrap(),
            read_ciphertext(chunk_dir, *i).unwrap(),
        ))
    });
    verify_chain(items, 2).unwrap().expect("chain verifies");
    let mut access = HashMap::new();
    for e in std::fs::read_dir(access_dir).unwrap() {
        read_access_file(
            &std::fs::read(e.unwrap().path()).unwrap(),
            BUYER_ID,
            &mut access,
        )
        .unwrap();
    }
    let items = list.iter().map(|(i, p)| {
        let env = read_envelope(p).unwrap();
        let entry = access[&env.chunk_id].clone();
        Ok::<_, std::convert::Infallible>(ChainItem {
            envelope: env,
            key: entry,
            ciphertext: read_ciphertext(chunk_dir, *i).unwrap().unwrap(),
        })
    });
    let options = ChainReaderOptions {
        parallelism: 2,
        ..ChainReaderOptions::default()
    };
    let mut reader = ChainReader::new(items, Arc::clone(&k.buyer), options);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut out).unwrap();
    reader.finish().unwrap();
    out
}

/// The reference's grant of `chunk_dir` to the buyer, into `access_dir`.
fn their_grant(peer: &mut Peer, k: &Keys, chunk_dir: &Path, access_dir: &Path) {
    peer.call(obj(vec![
        ("op", "grant".into()),
        ("chunkDir", chunk_dir.to_str().unwrap().into()),
        ("ownerKey", k.owner.to_hex_secret().as_str().into()),
        ("buyerId", BUYER_ID.into()),
        ("buyerPublicKey", k.buyer.public_key().to_hex().into()),
        ("outDir", access_dir.to_str().unwrap().into()),
        ("maxFileSize", Value::from(2048u64)),
    ]));
}

/// Our grant of `chunk_dir` to the buyer into `access_dir`, then the
/// reference's consume of it, which must verify: the bytes it wrote.
fn their_consume_of_our_grant(
    peer: &mut Peer,
    k: &Keys,
    chunk_dir: &Path,
    access_dir: &Path,
    case: &str,
) -> Vec<u8> {
    our_grant(k, chunk_dir, access_dir, 2048);
    let out = access_dir.with_file_name("their-output.bin");
    let r = peer.call(obj(vec![
        ("op", "consume".into()),
        ("chunkDir", chunk_dir.to_str().unwrap().into()),
        ("dataDir", chunk_dir.to_str().unwrap().into()),
        ("accessDir", access_dir.to_str().unwrap().into()),
        ("buyerId", BUYER_ID.into()),
        ("buyerKey", k.buyer.to_hex_secret().as_str().into()),
        ("output", out.to_str().unwrap().into()),
    ]));
    assert_eq!(r["verified"], Value::Bool(true), "{case}");
    std::fs::read(&out).unwrap()
}

fn input_of(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

const SIZES: [(usize, usize); 7] = [
    (0, 4096),
    (1, 4096),
    (190, 4096),
    (8192, 4096),
    (12305, 4096),
    (40, 1),
    (100_000, 7000),
];

#[test]
fn our_chains_verify_grant_and_decrypt_on_the_reference() {
    let mut peer = Peer::start();
    let k = keys();
    for (len, chunk_size) in SIZES {
        let tmp = tempfile::tempdir().unwrap();
        let input = input_of(len, 7);
        std::fs::write(tmp.path().join("input.bin"), &input).unwrap();
        let chunks = tmp.path().join("chunks");
        our_publish(&k, &input, chunk_size, &chunks);
        let case = format!("len {len}, chunk size {chunk_size}");

        let r = peer.call(obj(vec![
            ("op", "verify_chain".into()),
            ("chunkDir", chunks.to_str().unwrap().into()),
        ]));
        assert_eq!(r["valid"], Value::Bool(true), "{case}: {r:?}");

        // Their grant on our chain; our consume.
        let their_access = tmp.path().join("their-access");
        their_grant(&mut peer, &k, &chunks, &their_access);
        assert_eq!(
            our_consume(&k, &chunks, &their_access),
            input,
            "{case}: our consume of their grant"
        );

        // Our grant on our chain; their consume.
        let our_access = tmp.path().join("our-access");
        let out = their_consume_of_our_grant(&mut peer, &k, &chunks, &our_access, &case);
        assert_eq!(out, input, "{case}: their consume of our grant");

        // Same access file names and sizes from both sides.
        let names = |d: &Path| {
            let mut v: Vec<(String, u64)> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().into_string().unwrap(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&our_access),
            names(&their_access),
            "{case}: access files"
        );
    }
}

#[test]
fn reference_chains_verify_grant_and_decrypt_here() {
    let mut peer = Peer::start();
    let k = keys();
    for (len, chunk_size) in SIZES {
        let tmp = tempfile::tempdir().unwrap();
        let input = input_of(len, 3);
        let input_path = tmp.path().join("input.bin");
        std::fs::write(&input_path, &input).unwrap();
        let chunks = tmp.path().join("chunks");
        let case = format!("len {len}, chunk size {chunk_size}");
        let r = peer.call(obj(vec![
            ("op", "publish".into()),
            ("input", input_path.to_str().unwrap().into()),
            ("outDir", chunks.to_str().unwrap().into()),
            ("owner", k.owner.public_key().to_hex().into()),
            ("operator", k.operator.public_key().to_hex().into()),
            ("machine", k.machine.public_key().to_hex().into()),
            ("signingKey", k.chain.to_hex_secret().as_str().into()),
            ("machineDid", k.did.as_str().into()),
            ("keyId", format!("{}#keys-1", k.did).into()),
            ("chunkSize", Value::from(chunk_size as u64)),
        ]));
        let manifest = PublishManifest::from_json(
            &json::parse(&std::fs::read(chunks.join("manifest.json")).unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(Value::from(manifest.source_hash.as_str()), r["sourceHash"]);

        // Our grant; their consume.
        let our_access = tmp.path().join("our-access");
        let out = their_consume_of_our_grant(&mut peer, &k, &chunks, &our_access, &case);
        assert_eq!(out, input, "{case}");

        // Their grant; our verify and consume.
        let their_access = tmp.path().join("their-access");
        their_grant(&mut peer, &k, &chunks, &their_access);
        assert_eq!(our_consume(&k, &chunks, &their_access), input, "{case}");

        // Our envelope rendering of their files is byte-identical.
        for (_, path) in list_chain(&chunks).unwrap() {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                read_envelope(&path).unwrap().to_pretty_json().as_bytes(),
                bytes.as_slice()
            );
        }
    }
}
