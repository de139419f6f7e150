//! The examples in docs/formats.md are real and exact: the dataset verifies,
//! its signed bytes are those documented, and the inclusion proof checks out.
//! (The license receipt example is checked in sealstream-api's tests.)

use std::path::{Path, PathBuf};

use sealstream_core::chunk::ChunkEnvelope;
use sealstream_core::dataset::{chunk_leaf, hash_hex, DatasetManifest, InclusionProof};
use sealstream_core::json;
use sealstream_core::merkle;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(examples().join(name)).unwrap()
}

#[test]
fn dataset_example_verifies_and_signed_bytes_are_exact() {
    let m = DatasetManifest::parse(&read("dataset.json")).unwrap();
    m.verify_signatures().unwrap();
    assert_eq!(
        m.signed_bytes().as_bytes(),
        read("dataset.signed-bytes.txt").as_slice()
    );
    // The written form is what the docs show.
    assert_eq!(
        m.to_pretty_json().as_bytes(),
        read("dataset.json").as_slice()
    );
    let doc = std::fs::read_to_string(examples().join("../formats.md")).unwrap();
    assert!(doc.contains(&String::from_utf8(read("dataset.signed-bytes.txt")).unwrap()));
}

#[test]
fn merkle_root_and_proof_of_the_example() {
    let m = DatasetManifest::parse(&read("dataset.json")).unwrap();
    let envs: Vec<ChunkEnvelope> = (0..3)
        .map(|i| ChunkEnvelope::parse(&read(&format!("chunk-{i}.json"))).unwrap())
        .collect();
    let leaves: Vec<_> = envs
        .iter()
        .map(|e| chunk_leaf(&e.chunk_id).unwrap())
        .collect();
    assert_eq!(hash_hex(&merkle::root(&leaves)), m.merkle_root);
    let proof =
        InclusionProof::from_json(&json::parse(&read("inclusion-proof.json")).unwrap()).unwrap();
    let root: [u8; 32] = hex::decode(&m.merkle_root[2..])
        .unwrap()
        .try_into()
        .unwrap();
    assert!(merkle::verify_inclusion(
        &leaves[1],
        1,
        3,
        &proof.path,
        &root
    ));
    assert_eq!(
        hash_hex(&leaves[0]),
        "0x06bcadeeea01fa9ee79b01cb6d05f4d5d38bcfe6cf38fe22726d5895038af33c"
    );
}
