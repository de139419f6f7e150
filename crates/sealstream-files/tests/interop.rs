//! Live interop against the reference SDK (peaq-os-sdk 0.12.1) in a venv:
//! chain directories and access files made by each side are verified,
//! granted on and decrypted by the other, byte for byte.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sealstream_core::access::{grant_entry, read_access_file, AccessFileBuilder, Buyer};
use sealstream_core::chunk::{
    verify_chain, ChainConfig, ChainItem, ChainReader, ChainReaderOptions, ChainState, ChainWriter,
    PublishManifest,
};
use sealstream_core::identity::Did;
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_files::layout::{
    list_chain, read_ciphertext, read_envelope, write_atomic, DirectorySink,
};
use sealstream_testkit::reference::Peer;

/// Build an object from pairs.
fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
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
