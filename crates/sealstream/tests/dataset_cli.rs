//! Datasets through the CLI: publish with a signed dataset.json, verify and
//! consume check it; a chain with its last chunk removed is consumed by the
//! reference (truncated output, exit 0) and refused by sealstream; proofs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use sealstream_core::chunk::{ChainConfig, ChainState, ChainWriter, PublishManifest, Recipient};
use sealstream_core::json::Map;
use sealstream_core::keys::{ChainSigningKey, RecipientPublicKey};
use sealstream_files::layout::{write_atomic, DirectorySink};

fn publish_with_dataset(input: &Path, out: &Path, chunk_size: usize) {
    let mut c = sealstream();
    publish_args(&mut c, input, out, chunk_size);
    c.arg("--dataset-key-file").arg(machine_key_file()).args([
        "--topic",
        "/sensor/gps",
        "--sample-chunks",
        "0,2",
    ]);
    run_ok(c, "publish with dataset");
}

fn machine_key_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd/data/keys/machine.secp256k1.sk")
}

fn code(mut c: Command) -> (Option<i32>, String) {
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn truncated_chain_reference_writes_truncated_file_sealstream_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let input = input_of(5 * 4096, 3);
    std::fs::write(t.join("input.bin"), &input).unwrap();
    let chain = t.join("chain");
    publish_with_dataset(&t.join("input.bin"), &chain, 4096);
    let access = t.join("access");
    let mut c = sealstream();
    grant_args(&mut c, &chain, &access, 512_000);
    run_ok(c, "grant");

    let mut v = sealstream();
    v.args(["verify", "--require-dataset", "--json", "--chunk-dir"])
        .arg(&chain);
    let out = run_ok(v, "verify with dataset");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"datasetChecked\": true"));

    // Remove the last chunk: the rest is still a valid v1 chain.
    std::fs::remove_file(chain.join("chunk-4.json")).unwrap();
    std::fs::remove_file(chain.join("chunk-4.bin")).unwrap();

    let theirs = t.join("theirs.bin");
    let mut c = peaqos();
    c.arg("stream");
    consume_args(&mut c, &chain, &access, &theirs);
    run_ok(c, "the reference consumes the truncated chain");
    assert_eq!(
        std::fs::read(&theirs).unwrap(),
        input[..4 * 4096],
        "the reference wrote a truncated file"
    );

    let ours = t.join("ours.bin");
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &ours);
    let (status, stderr) = code(c);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("totalChunks"), "{stderr}");
    assert!(!ours.exists());

    // Even with manifest.json "fixed" to 4 chunks, the dataset and sourceHash refuse it.
    let mut m = PublishManifest::from_json(
        &sealstream_core::json::parse(&std::fs::read(chain.join("manifest.json")).unwrap())
            .unwrap(),
    )
    .unwrap();
    m.total_chunks = 4;
    write_atomic(&chain.join("manifest.json"), m.to_pretty_json().as_bytes()).unwrap();
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &ours);
    let (status, stderr) = code(c);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("dataset.json: chunkCount"), "{stderr}");
    assert!(!ours.exists());
    let mut v = sealstream();
    v.args(["verify", "--chunk-dir"]).arg(&chain);
    let (status, stderr) = code(v);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("chunkCount: the dataset commits to 5 chunks, the chain has 4"),
        "{stderr}"
    );

    // Without a dataset, the sourceHash still refuses it.
    std::fs::remove_file(chain.join("dataset.json")).unwrap();
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &ours);
    let (status, stderr) = code(c);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("sourceHash"), "{stderr}");
    assert!(!ours.exists());
    let mut v = sealstream();
    v.args(["verify", "--require-dataset", "--chunk-dir"])
        .arg(&chain);
    let (status, stderr) = code(v);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("no dataset.json"), "{stderr}");
}

#[test]
fn inclusion_proof_of_one_chunk_without_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("input.bin"), input_of(9 * 1000 + 5, 1)).unwrap();
    let chain = t.join("chain");
    publish_with_dataset(&t.join("input.bin"), &chain, 1000);
    // Only the dataset, the proof and one chunk travel.
    let lone = t.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    for f in ["dataset.json", "chunk-6.json", "chunk-6.bin"] {
        std::fs::copy(chain.join(f), lone.join(f)).unwrap();
    }
    let mut c = sealstream();
    c.args(["dataset", "prove", "--index", "6", "--chunk-dir"])
        .arg(&chain)
        .arg("--output")
        .arg(lone.join("proof.json"));
    run_ok(c, "prove");
    let verify_chunk = |envelope: &str, data: &str| {
        let mut c = sealstream();
        c.args(["dataset", "verify-chunk"]).current_dir(&lone);
        c.args([
            "--dataset",
            "dataset.json",
            "--proof",
            "proof.json",
            "--envelope",
            envelope,
            "--data",
            data,
        ]);
        code(c)
    };
    assert_eq!(verify_chunk("chunk-6.json", "chunk-6.bin").0, Some(0));
    // Another chunk with this proof, or a flipped byte, fails.
    std::fs::copy(chain.join("chunk-5.json"), lone.join("chunk-5.json")).unwrap();
    std::fs::copy(chain.join("chunk-5.bin"), lone.join("chunk-5.bin")).unwrap();
    let (status, stderr) = verify_chunk("chunk-5.json", "chunk-5.bin");
    assert_eq!(status, Some(1));
    assert!(
        stderr.contains("proof: for another chunk index"),
        "{stderr}"
    );
    let mut bytes = std::fs::read(lone.join("chunk-6.bin")).unwrap();
    bytes[10] ^= 1;
    std::fs::write(lone.join("chunk-6.bin"), bytes).unwrap();
    let (status, stderr) = verify_chunk("chunk-6.json", "chunk-6.bin");
    assert_eq!(status, Some(1));
    assert!(
        stderr.contains("ciphertext does not match encryptedDataHash"),
        "{stderr}"
    );
}

/// Append chunks to an existing chain directory with the library (the agent's
/// way of growing a chain), updating manifest.json.
fn grow(dir: &Path, extra: &[u8], chunk_size: usize) {
    let list = sealstream_files::layout::list_chain(dir).unwrap();
    let last = sealstream_files::layout::read_envelope(&list.last().unwrap().1).unwrap();
    let key = ChainSigningKey::from_hex(
        &std::fs::read_to_string(keyfile("chain.ed25519.sk")).unwrap(),
        "k",
    )
    .unwrap();
    let recipients = vec![
        Recipient::new(
            "owner-1",
            "owner",
            RecipientPublicKey::from_hex(OWNER_PK, "o").unwrap(),
        ),
        Recipient::new(
            "operator-1",
            "operator",
            RecipientPublicKey::from_hex(OPERATOR_PK, "o").unwrap(),
        ),
        Recipient::new(
            "machine-1",
            "machine",
            RecipientPublicKey::from_hex(MACHINE_PK, "m").unwrap(),
        ),
    ];
    let mut config = ChainConfig::new(key, DID, KEY_ID, recipients);
    config.chunk_size = chunk_size;
    let mut w = ChainWriter::new(
        config,
        ChainState::after(&last),
        DirectorySink::new(dir).unwrap(),
    )
    .unwrap();
    w.write(extra).unwrap();
    let (summary, _) = w.finish().unwrap();
    let m = PublishManifest {
        source_hash: "0x00".into(),
        total_chunks: summary.state.next_index,
        chunk_size: chunk_size as u64,
        machine_did: DID.into(),
        created_at: "2026-11-21T00:00:00Z".into(),
        extra: Map::new(),
    };
    write_atomic(&dir.join("manifest.json"), m.to_pretty_json().as_bytes()).unwrap();
}

#[test]
fn growing_dataset_extension_proofs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("input.bin"), input_of(3 * 500, 5)).unwrap();
    let chain = t.join("chain");
    publish_with_dataset(&t.join("input.bin"), &chain, 500);
    std::fs::copy(chain.join("dataset.json"), t.join("old.json")).unwrap();

    grow(&chain, &input_of(4 * 500, 6), 500);
    let mut c = sealstream();
    c.args(["dataset", "sign", "--chunk-dir"])
        .arg(&chain)
        .arg("--key-file")
        .arg(machine_key_file());
    c.arg("--chain-key-file").arg(keyfile("chain.ed25519.sk"));
    run_ok(c, "dataset sign of the grown chain");
    let mut c = sealstream();
    c.args(["dataset", "prove-extension", "--chunk-dir"])
        .arg(&chain)
        .arg("--old")
        .arg(t.join("old.json"));
    // `--out`: the older spelling of `--output`, kept as a hidden alias.
    c.arg("--out").arg(t.join("ext.json"));
    run_ok(c, "prove-extension");
    let mut c = sealstream();
    c.args(["dataset", "verify-extension"])
        .arg(t.join("old.json"))
        .arg(chain.join("dataset.json"));
    c.arg("--proof").arg(t.join("ext.json"));
    run_ok(c, "verify-extension");

    // A rewritten history: republish different data, sign, try to prove.
    let rewritten = t.join("rewritten");
    std::fs::write(t.join("other.bin"), input_of(7 * 500, 8)).unwrap();
    publish_with_dataset(&t.join("other.bin"), &rewritten, 500);
    let mut c = sealstream();
    c.args(["dataset", "prove-extension", "--chunk-dir"])
        .arg(&rewritten)
        .arg("--old")
        .arg(t.join("old.json"));
    let (status, stderr) = code(c);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("history rewritten"), "{stderr}");
    // And the valid proof does not make the rewritten dataset an extension.
    let mut c = sealstream();
    c.args(["dataset", "verify-extension"])
        .arg(t.join("old.json"))
        .arg(rewritten.join("dataset.json"));
    c.arg("--proof").arg(t.join("ext.json"));
    let (status, stderr) = code(c);
    assert_eq!(status, Some(1), "{stderr}");
}
