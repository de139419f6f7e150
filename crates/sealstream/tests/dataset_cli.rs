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

/// Two gap records, as the agent seals them.
fn two_gaps() -> Vec<sealstream_core::gap::Gap> {
    use sealstream_core::gap::{Gap, GapReason};
    vec![
        Gap {
            reason: GapReason::AgentOffline,
            source_topic: "/gps/fix".into(),
            after: Some("2026-12-05T10:00:01.250000000Z".into()),
            before: Some("2026-12-05T10:00:04.010000000Z".into()),
            publisher: Some("21d98a1fa3fec7d01427854f7bea31e3".into()),
            sequences: Some((126, 401)),
            chunks: None,
        },
        Gap {
            reason: GapReason::SpoolDropped,
            source_topic: "/gps/fix".into(),
            after: None,
            before: None,
            publisher: None,
            sequences: None,
            chunks: Some((7, 9)),
        },
    ]
}

/// Signed package lines: data packages with `gaps` sealed among them as gap
/// records (one after the 5th package, the next after the 12th).
fn package_lines_with(gaps: &[sealstream_core::gap::Gap]) -> Vec<u8> {
    use sealstream_core::gap::GAP_SCHEMA_VERSION;
    use sealstream_core::json::Value;
    use sealstream_core::keys::MachineSigningKey;
    use sealstream_core::package::PackageSigner;
    let key = MachineSigningKey::from_hex(sealstream_testkit::fixture::MACHINE_SK, "k").unwrap();
    let signer = PackageSigner::new(key, DID, None, None).unwrap();
    let mut out = Vec::new();
    let mut gaps = gaps.iter();
    for seq in 0..20u64 {
        let (fields, schema) = if seq == 5 || seq == 12 {
            match gaps.next() {
                Some(g) => (g.to_fields(), GAP_SCHEMA_VERSION),
                None => continue,
            }
        } else {
            let mut m = Map::new();
            m.insert("latitude".into(), Value::from(format!("48.{seq:03}")));
            m.insert("seq".into(), Value::from(seq));
            (m, "1.0.0")
        };
        let p = signer.sign_processed(fields, "2026-12-05T10:00:00Z", schema, seq);
        out.extend_from_slice(p.to_json_line().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Re-sign `chain`'s dataset.json with `gaps` in place of its own.
fn resign_with_gaps(chain: &Path, gaps: Vec<sealstream_core::gap::Gap>) {
    use sealstream_core::dataset::DatasetManifest;
    use sealstream_core::keys::MachineSigningKey;
    let path = chain.join("dataset.json");
    let mut m = DatasetManifest::parse(&std::fs::read(&path).unwrap()).unwrap();
    m.gaps = gaps;
    m.signatures.clear();
    m.sign_eip191(
        &MachineSigningKey::from_hex(sealstream_testkit::fixture::MACHINE_SK, "k").unwrap(),
    )
    .unwrap();
    write_atomic(&path, m.to_pretty_json().as_bytes()).unwrap();
}

#[test]
fn gaps_are_stated_by_the_dataset_listed_by_verify_and_checked_by_consume() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let gaps = two_gaps();
    let input = package_lines_with(&gaps);
    std::fs::write(t.join("input.jsonl"), &input).unwrap();
    // Chunks of 700 bytes cut the package lines: records span chunks.
    let chain = t.join("chain");
    publish_with_dataset(&t.join("input.jsonl"), &chain, 700);
    let manifest = sealstream_core::dataset::DatasetManifest::parse(
        &std::fs::read(chain.join("dataset.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.gaps, gaps);
    assert!(manifest.chunk_count > 5, "{}", manifest.chunk_count);

    // verify lists them from dataset.json alone; they are no failure.
    let mut v = sealstream();
    v.args(["verify", "--require-dataset", "--chunk-dir"])
        .arg(&chain);
    let out = run_ok(v, "verify a dataset with gaps");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dataset.json states 2 gaps"), "{stderr}");
    for g in &gaps {
        assert!(stderr.contains(&format!("  gap: {g}")), "{stderr}");
    }
    let mut v = sealstream();
    v.args(["verify", "--json", "--chunk-dir"]).arg(&chain);
    let out = run_ok(v, "verify --json");
    let json = sealstream_core::json::parse(&out.stdout).unwrap();
    let listed = json.as_object().unwrap()["gaps"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].as_object().unwrap(), &gaps[1].to_fields());

    // consume reports each record it decrypts, and they match the dataset.
    let access = t.join("access");
    let mut c = sealstream();
    grant_args(&mut c, &chain, &access, 512_000);
    run_ok(c, "grant");
    let ours = t.join("ours.jsonl");
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &ours);
    let out = run_ok(c, "consume a chain with gap records");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for g in &gaps {
        assert!(
            stderr.contains(&format!(": {g}")) && stderr.contains("Gap recorded in chunk "),
            "{stderr}"
        );
    }
    assert!(stderr.contains("Gaps:         2 gap records"), "{stderr}");
    assert_eq!(std::fs::read(&ours).unwrap(), input);
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &t.join("json.jsonl"));
    c.arg("--json");
    let out = run_ok(c, "consume --json");
    let json = sealstream_core::json::parse(&out.stdout).unwrap();
    let found = json.as_object().unwrap()["gaps"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].as_object().unwrap(), &gaps[0].to_fields());

    // A dataset that leaves a gap out (signed again, so the signature
    // holds) is refused by consume, which writes nothing.
    resign_with_gaps(&chain, gaps[..1].to_vec());
    let refused = t.join("refused.jsonl");
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &refused);
    let (status, stderr) = code(c);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "dataset.json: gaps: the dataset lists 1 gap, the decrypted chunks hold 2 gap records"
        ),
        "{stderr}"
    );
    assert!(!refused.exists());
    // verify cannot see the chunks' plaintext: it lists what the dataset states.
    let mut v = sealstream();
    v.args(["verify", "--chunk-dir"]).arg(&chain);
    let out = run_ok(v, "verify lists the stated gap");
    assert!(String::from_utf8_lossy(&out.stderr).contains("dataset.json states 1 gap "));

    // So is one that states a gap the chunks do not hold, in another order,
    // or none at all.
    for stated in [
        vec![gaps[0].clone(), gaps[1].clone(), gaps[1].clone()],
        vec![gaps[1].clone(), gaps[0].clone()],
        Vec::new(),
    ] {
        resign_with_gaps(&chain, stated);
        let mut c = sealstream();
        consume_args(&mut c, &chain, &access, &refused);
        let (status, stderr) = code(c);
        assert_eq!(status, Some(2), "{stderr}");
        assert!(stderr.contains("dataset.json: gaps: "), "{stderr}");
        assert!(!refused.exists());
    }

    // `dataset sign` states the gaps only when it can decrypt the chunks:
    // without a recipient key its dataset states none, and consume refuses it.
    let sign = |recipient: Option<&str>| {
        let mut c = sealstream();
        c.args(["dataset", "sign", "--chunk-dir"])
            .arg(&chain)
            .arg("--key-file")
            .arg(machine_key_file());
        if let Some(k) = recipient {
            c.arg("--recipient-private-key-file").arg(keyfile(k));
        }
        run_ok(c, "dataset sign");
        sealstream_core::dataset::DatasetManifest::parse(
            &std::fs::read(chain.join("dataset.json")).unwrap(),
        )
        .unwrap()
    };
    assert!(sign(None).gaps.is_empty());
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &refused);
    let (status, stderr) = code(c);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr
            .contains("dataset.json: gaps: the dataset lists 0 gaps, the decrypted chunks hold 2"),
        "{stderr}"
    );
    assert_eq!(sign(Some("owner.x25519.sk")).gaps, gaps);
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &refused);
    run_ok(c, "consume the chain signed with its gaps");
    std::fs::remove_file(&refused).unwrap();
    // A key that is not a recipient's is refused, naming the file.
    let mut c = sealstream();
    c.args(["dataset", "sign", "--chunk-dir"])
        .arg(&chain)
        .arg("--key-file")
        .arg(machine_key_file())
        .arg("--recipient-private-key-file")
        .arg(keyfile("buyer.x25519.sk"));
    let (status, stderr) = code(c);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("not a recipient of this chunk"), "{stderr}");

    // Unverified, the records are still reported; nothing is compared.
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &refused);
    c.arg("--skip-verify");
    let out = run_ok(c, "consume --skip-verify");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Gaps:         2 gap records"));
}

#[test]
fn a_gap_package_whose_payload_is_not_a_gap_is_refused() {
    use sealstream_core::gap::GAP_SCHEMA_VERSION;
    use sealstream_core::json::Value;
    use sealstream_core::keys::MachineSigningKey;
    use sealstream_core::package::PackageSigner;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut input = package_lines_with(&two_gaps()[..1]);
    let key = MachineSigningKey::from_hex(sealstream_testkit::fixture::MACHINE_SK, "k").unwrap();
    let mut fields = two_gaps()[0].to_fields();
    fields.insert("reason".into(), Value::from("tired"));
    let bad = PackageSigner::new(key, DID, None, None)
        .unwrap()
        .sign_processed(fields, "2026-12-05T10:00:00Z", GAP_SCHEMA_VERSION, 99);
    input.extend_from_slice(bad.to_json_line().as_bytes());
    input.push(b'\n');
    std::fs::write(t.join("input.jsonl"), &input).unwrap();

    // A dataset cannot state it: publish with a dataset refuses the input.
    let mut c = sealstream();
    publish_args(&mut c, t.join("input.jsonl"), &t.join("refused"), 700);
    c.arg("--dataset-key-file").arg(machine_key_file());
    let (status, stderr) = code(c);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("gap record: reason: "), "{stderr}");
    assert!(!t.join("refused").join("dataset.json").exists());

    // Published without a dataset, a verifying consume refuses it; unverified it passes.
    let chain = t.join("chain");
    let mut c = sealstream();
    publish_args(&mut c, t.join("input.jsonl"), &chain, 700);
    run_ok(c, "publish without a dataset");
    let access = t.join("access");
    let mut c = sealstream();
    grant_args(&mut c, &chain, &access, 512_000);
    run_ok(c, "grant");
    let out = t.join("out.jsonl");
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &out);
    let (status, stderr) = code(c);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains(": gap record: reason: ")
            && stderr.contains(
                "(a package of schemaVersion sealstream.gap.v1 whose payload is not a gap)"
            ),
        "{stderr}"
    );
    assert!(!out.exists());
    let mut c = sealstream();
    consume_args(&mut c, &chain, &access, &out);
    c.arg("--skip-verify");
    let done = run_ok(c, "consume --skip-verify");
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("Gaps:         1 gap record, listed above")
    );
    assert_eq!(std::fs::read(&out).unwrap(), input);
}
