//! Every item under `fixtures/peaq-stream-v1` (made by the reference)
//! is reproduced or accepted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use sealstream_core::access::{grant_entry, read_access_file, AccessFileBuilder, Buyer};
use sealstream_core::chunk::{
    verify_chain, ChainItem, ChainReadError, ChainReader, ChainReaderOptions, ChunkEnvelope,
    DecryptError, PublishManifest, VerifyReason,
};
use sealstream_core::json::{self, Value};
use sealstream_core::keys::FieldKey;
use sealstream_core::package::{CanonicalForm, DataPackage, PackageSigner};
use sealstream_core::rules::decrypt_field;
use sealstream_testkit::fixture::{read_json, FixtureKeys, PackageCase, BUYER_ID};
use sealstream_testkit::fixtures;

/// The package fixtures' names: the six the reference made.
fn package_names() -> Vec<String> {
    let names = sealstream_testkit::fixture::package_names();
    assert!(
        names.len() >= 6,
        "expected the six package fixtures, found {names:?}"
    );
    names
}

#[test]
fn packages_verify_and_canonical_bytes_match() {
    for name in package_names() {
        let dir = fixtures().join("packages");
        let package =
            DataPackage::from_json(&read_json(&dir.join(format!("{name}.package.json")))).unwrap();
        let expected =
            std::fs::read_to_string(dir.join(format!("{name}.signed-bytes.txt"))).unwrap();
        assert_eq!(package.signed_bytes(), expected, "{name}: canonical bytes");
        assert_eq!(
            package.verify().outcome,
            Ok(CanonicalForm::Python),
            "{name}: verify"
        );
    }
}

#[test]
fn rules_reproduce_fixture_payloads_and_signatures() {
    let keys = FixtureKeys::load();
    let field_key = keys.field_key();
    for name in package_names() {
        let dir = fixtures().join("packages");
        let case = PackageCase::load(&name);
        let expected =
            DataPackage::from_json(&read_json(&dir.join(format!("{name}.package.json")))).unwrap();
        let signer = PackageSigner::new(
            keys.machine_key(),
            keys.did(),
            Some(expected.signing_key_id.clone()),
            Some(field_key.clone()),
        )
        .unwrap();
        let ours = case.sign(&signer, case.sequence_number);
        assert_eq!(ours.verify().outcome, Ok(CanonicalForm::Python), "{name}");
        let has_encrypted =
            json::write::to_python_compact(&expected.to_json()).contains("__encrypted");
        if has_encrypted {
            assert_eq!(
                normalize_encrypted(&Value::Object(ours.payload.clone()), &field_key),
                normalize_encrypted(&Value::Object(expected.payload.clone()), &field_key),
                "{name}: payload after decrypting encrypted fields"
            );
        } else {
            // Deterministic RFC 6979 signatures: the whole package is byte-identical.
            assert_eq!(
                ours.to_json_line(),
                expected.to_json_line(),
                "{name}: package"
            );
        }
    }
}

/// Replace every encrypted wrapper by `{"decrypted": value}` so payloads with random IVs compare.
fn normalize_encrypted(value: &Value, key: &FieldKey) -> Value {
    match value {
        Value::Object(m) if m.get("__encrypted") == Some(&Value::Bool(true)) => {
            let mut out = json::Map::new();
            out.insert(
                "decrypted".into(),
                decrypt_field(value, key).expect("fixture field decrypts"),
            );
            Value::Object(out)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalize_encrypted(v, key)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| normalize_encrypted(v, key)).collect()),
        other => other.clone(),
    }
}

struct Chain {
    dir: PathBuf,
    envelopes: Vec<ChunkEnvelope>,
}

fn load_chain(case: &str) -> Chain {
    let dir = fixtures().join("chains").join(case);
    let mut envelopes = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("published/chunk-{i}.json"));
        if !path.exists() {
            break;
        }
        let bytes = std::fs::read(&path).unwrap();
        let env = ChunkEnvelope::parse(&bytes).unwrap();
        // Our writer renders the envelope exactly as the reference does.
        assert_eq!(
            env.to_pretty_json().as_bytes(),
            bytes.as_slice(),
            "{case}: chunk-{i}.json rendering"
        );
        envelopes.push(env);
    }
    Chain { dir, envelopes }
}

impl Chain {
    /// The ciphertext of chunk `index`, if the fixture has it.
    fn ciphertext(&self, index: u64) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(format!("published/chunk-{index}.bin"))).ok()
    }

    /// Every chunk with its ciphertext and the buyer's entry of the
    /// fixture's access files: what a buyer's chain reader takes.
    fn buyer_items(&self) -> Vec<Result<ChainItem, Infallible>> {
        let mut access = HashMap::new();
        for entry in std::fs::read_dir(self.dir.join("access")).unwrap() {
            read_access_file(
                &std::fs::read(entry.unwrap().path()).unwrap(),
                BUYER_ID,
                &mut access,
            )
            .unwrap();
        }
        self.envelopes
            .iter()
            .map(|e| {
                Ok(ChainItem {
                    envelope: e.clone(),
                    key: access[&e.chunk_id].clone(),
                    ciphertext: self.ciphertext(e.index).unwrap(),
                })
            })
            .collect()
    }
}

const CASES: [&str; 4] = ["empty", "small", "exact2", "odd"];

#[test]
fn chains_verify_and_decrypt_with_the_buyer_key() {
    let buyer_sk = Arc::new(FixtureKeys::load().secret("buyer"));
    for case in CASES {
        let chain = load_chain(case);
        let input = std::fs::read(chain.dir.join("input.bin")).unwrap();
        let items = chain
            .envelopes
            .iter()
            .map(|e| Ok::<_, ()>((e.clone(), chain.ciphertext(e.index))));
        let state = verify_chain(items, 2)
            .unwrap()
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(state.next_index, chain.envelopes.len() as u64);

        let manifest =
            PublishManifest::from_json(&read_json(&chain.dir.join("published/manifest.json")))
                .unwrap();
        assert_eq!(manifest.total_chunks, chain.envelopes.len() as u64);
        assert_eq!(
            manifest.to_pretty_json().as_bytes(),
            std::fs::read(chain.dir.join("published/manifest.json"))
                .unwrap()
                .as_slice(),
            "{case}: manifest rendering"
        );

        let items = chain.buyer_items();
        let mut out = Vec::new();
        let mut reader = ChainReader::new(items, Arc::clone(&buyer_sk), two_threads());
        reader.read_to_end(&mut out).unwrap();
        let summary = reader.finish().unwrap();
        assert_eq!(out, input, "{case}: decrypted bytes");
        assert_eq!(
            summary.output_hash, manifest.source_hash,
            "{case}: source hash"
        );
    }
}

#[test]
fn our_grant_shards_like_the_reference() {
    let keys = FixtureKeys::load();
    let owner = keys.secret("owner");
    let buyer = Buyer::new(BUYER_ID, keys.text("buyer", "publicKeyHex")).unwrap();
    for case in CASES {
        let chain = load_chain(case);
        let mut builder = AccessFileBuilder::new(&buyer, 2048).unwrap();
        let mut files = Vec::new();
        for env in &chain.envelopes {
            files.extend(builder.push(grant_entry(env, &owner, &buyer).unwrap()));
        }
        files.extend(builder.finish());
        let mut theirs: Vec<PathBuf> = std::fs::read_dir(chain.dir.join("access"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        theirs.sort();
        assert_eq!(files.len(), theirs.len(), "{case}: number of access files");
        for (ours, theirs) in files.iter().zip(&theirs) {
            assert_eq!(
                ours.file_name,
                theirs.file_name().unwrap().to_str().unwrap()
            );
            let their_bytes = std::fs::read(theirs).unwrap();
            // Same entries, same layout: only the random wraps differ, and they have a fixed length.
            assert_eq!(
                ours.to_bytes().len(),
                their_bytes.len(),
                "{case}: {}",
                ours.file_name
            );
            let their_ids: Vec<String> = read_json(theirs).as_object().unwrap()["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    e.as_object().unwrap()["chunkId"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            let our_ids: Vec<String> = ours.entries.iter().map(|e| e.chunk_id.clone()).collect();
            assert_eq!(our_ids, their_ids);
        }
    }
}

#[test]
fn stranger_cannot_decrypt_and_tampering_is_caught() {
    let stranger = Arc::new(FixtureKeys::load().secret("stranger"));
    let chain = load_chain("odd");
    let items = chain.buyer_items();
    match ChainReader::new(items, stranger, two_threads()).next_chunk() {
        Err(ChainReadError::Decrypt {
            index: 0,
            error: DecryptError::Unwrap,
        }) => {}
        other => panic!("expected an unwrap failure at chunk 0, got {other:?}"),
    }

    // A flipped ciphertext byte in chunk 2 is a hash mismatch at index 2.
    let items = chain.envelopes.iter().map(|e| {
        let mut ct = chain.ciphertext(e.index).unwrap();
        if e.index == 2 {
            ct[5] ^= 0x80;
        }
        Ok::<_, ()>((e.clone(), Some(ct)))
    });
    let err = verify_chain(items, 2).unwrap().unwrap_err();
    assert_eq!((err.index, err.reason), (2, VerifyReason::HashMismatch));
}

/// A verifying chain reader on two threads.
fn two_threads() -> ChainReaderOptions<'static> {
    ChainReaderOptions {
        parallelism: 2,
        ..ChainReaderOptions::default()
    }
}
