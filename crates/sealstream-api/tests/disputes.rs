//! Dispute evidence (`sealstream.dispute-evidence.v1`): each kind of fault
//! checked offline, valid and not, on chunks sealed by the core's chain
//! writer and a dataset signed by its machine.

use sealstream_api::disputes::{
    parse, verify, DisputeEvidence, EvidenceError, EvidenceKind, DISPUTE_EVIDENCE_SCHEMA,
};
use sealstream_core::access::{access_entry, open_chunk_key, Buyer};
use sealstream_core::chunk::{
    ChainConfig, ChainState, ChainWriter, ChunkKey, KeyRecipient, Recipient, SealedChunk,
};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo, DatasetManifest, InclusionProof};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use serde_json::{json, Value};

struct Machine {
    key: MachineSigningKey,
    chain_key: ChainSigningKey,
    did: String,
    owner: RecipientSecretKey,
}

fn machine() -> Machine {
    let key = MachineSigningKey::generate();
    Machine {
        did: Did::of_key(&key).to_string(),
        key,
        chain_key: ChainSigningKey::generate(),
        owner: RecipientSecretKey::generate(),
    }
}

fn seal(m: &Machine, plaintexts: &[&str]) -> Vec<SealedChunk> {
    let mut config = ChainConfig::new(
        ChainSigningKey::from_hex(&m.chain_key.to_hex_secret(), "chain key").unwrap(),
        &m.did,
        &format!("{}#keys-1", m.did),
        vec![Recipient::new("owner-1", "owner", m.owner.public_key())],
    );
    config.parallelism = 1;
    let mut chunks = Vec::new();
    let mut writer = ChainWriter::new(config, ChainState::new(), |c: SealedChunk| {
        chunks.push(c);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    for p in plaintexts {
        writer.seal_chunk(p.as_bytes().to_vec()).unwrap();
    }
    let _ = writer.finish().unwrap();
    chunks
}

fn dataset(m: &Machine, chunks: &[SealedChunk]) -> DatasetManifest {
    let mut b = DatasetBuilder::new();
    for c in chunks {
        b.push(&c.envelope).unwrap();
    }
    let mut manifest = b
        .finish(DatasetInfo {
            source_hash: format!("0x{}", "00".repeat(32)),
            ..DatasetInfo::default()
        })
        .unwrap();
    manifest.sign_eip191(&m.key).unwrap();
    manifest.sign_ed25519(&m.chain_key).unwrap();
    manifest
}

fn wire<T: AsRef<str>>(pretty: T) -> Value {
    serde_json::from_str(pretty.as_ref()).unwrap()
}

fn evidence(
    kind: EvidenceKind,
    manifest: &DatasetManifest,
    chunk: &SealedChunk,
) -> DisputeEvidence {
    DisputeEvidence {
        schema_version: DISPUTE_EVIDENCE_SCHEMA.into(),
        order_id: "ord_1".into(),
        kind,
        dataset: wire(manifest.to_pretty_json()),
        envelope: wire(chunk.envelope.to_pretty_json()),
        ciphertext_hex: Some(hex::encode(&chunk.ciphertext)),
        access: None,
        buyer_secret_key_hex: None,
        proof: None,
        statement: None,
    }
}

fn not_a_fault(e: &DisputeEvidence) -> String {
    match verify(e) {
        Err(EvidenceError::NotAFault(why)) => why,
        other => panic!("expected no fault, got {other:?}"),
    }
}

const TEXTS: [&str; 3] = ["scan 0: ok", "scan 1: ok", "scan 2: ok"];

#[test]
fn a_ciphertext_that_is_not_the_signed_one_is_a_fault() {
    let m = machine();
    let chunks = seal(&m, &TEXTS);
    let manifest = dataset(&m, &chunks);
    let good = evidence(EvidenceKind::CiphertextHash, &manifest, &chunks[1]);
    assert!(not_a_fault(&good).contains("hashes to the envelope's"));

    let mut bad = good.clone();
    let mut ct = chunks[1].ciphertext.clone();
    ct[0] ^= 1;
    bad.ciphertext_hex = Some(hex::encode(&ct));
    let fault = verify(&bad).unwrap();
    assert_eq!(fault.kind, EvidenceKind::CiphertextHash);
    assert_eq!(fault.chunk_index, 1);
    assert_eq!(fault.merkle_root, manifest.merkle_root);
    // The evidence survives its JSON form.
    let text = serde_json::to_vec(&bad).unwrap();
    assert_eq!(parse(&text).unwrap(), bad);

    // An envelope altered after signing proves nothing.
    let mut forged = bad.clone();
    forged.envelope["encryptedDataHash"] = json!(format!("0x{}", "ab".repeat(32)));
    assert!(not_a_fault(&forged).contains("signature"));
    // Nor one signed by another machine.
    let other = machine();
    let other_chunks = seal(&other, &TEXTS);
    let mut stranger = bad.clone();
    stranger.envelope = wire(other_chunks[1].envelope.to_pretty_json());
    assert!(not_a_fault(&stranger).contains("not signed by the dataset's machine"));
    // Nor a chunk outside the dataset's range.
    let short = dataset(&m, &chunks[..1]);
    let mut outside = bad.clone();
    outside.dataset = wire(short.to_pretty_json());
    assert!(not_a_fault(&outside).contains("outside the dataset's range"));
}

/// The buyer's access entry: the chunk key opened by the owner and sealed
/// to the buyer (a good grant), or another key sealed to them (a bad one).
fn grant(m: &Machine, chunk: &SealedChunk, buyer: &RecipientSecretKey, honest: bool) -> Value {
    let b = Buyer::new("did:peaq:0xbuyer", &buyer.public_key().to_hex()).unwrap();
    let key = if honest {
        open_chunk_key(&chunk.envelope, "owner", &m.owner).unwrap()
    } else {
        ChunkKey::generate()
    };
    let entry = access_entry(&chunk.envelope, &key, &b);
    json!({"chunkId": entry.chunk_id, "buyer": wire(key_recipient_json(&entry.buyer))})
}

fn key_recipient_json(k: &KeyRecipient) -> String {
    json!({
        "recipientId": k.recipient_id,
        "recipientType": k.recipient_type,
        "algorithm": k.algorithm,
        "publicKeyHex": k.public_key_hex,
        "wrappedKeyHex": k.wrapped_key_hex,
    })
    .to_string()
}

#[test]
fn a_granted_key_that_does_not_decrypt_is_a_fault() {
    let m = machine();
    let chunks = seal(&m, &TEXTS);
    let manifest = dataset(&m, &chunks);
    let buyer = RecipientSecretKey::generate();
    let mut e = evidence(EvidenceKind::DecryptFailure, &manifest, &chunks[2]);
    e.buyer_secret_key_hex = Some(buyer.to_hex_secret().to_string());

    e.access = Some(grant(&m, &chunks[2], &buyer, true));
    assert!(not_a_fault(&e).contains("decrypts"));

    e.access = Some(grant(&m, &chunks[2], &buyer, false));
    let fault = verify(&e).unwrap();
    assert_eq!(fault.kind, EvidenceKind::DecryptFailure);
    assert!(fault.detail.contains("keyCommitment"), "{}", fault.detail);

    // Another secret than the one the entry is sealed to: nothing shown.
    let mut wrong_secret = e.clone();
    wrong_secret.buyer_secret_key_hex =
        Some(RecipientSecretKey::generate().to_hex_secret().to_string());
    assert!(not_a_fault(&wrong_secret).contains("not the one the access entry"));
    // A ciphertext altered by the buyer is not a decryption failure.
    let mut altered = e.clone();
    let mut ct = chunks[2].ciphertext.clone();
    ct[3] ^= 0x80;
    altered.ciphertext_hex = Some(hex::encode(ct));
    assert!(not_a_fault(&altered).contains("ciphertext-hash"));
    // An entry of another chunk.
    let mut other_chunk = e.clone();
    other_chunk.access = Some(grant(&m, &chunks[1], &buyer, false));
    assert!(not_a_fault(&other_chunk).contains("another chunk"));
    // Missing parts are malformed, not "no fault".
    let mut missing = e.clone();
    missing.buyer_secret_key_hex = None;
    assert!(matches!(
        verify(&missing),
        Err(EvidenceError::Malformed { field, .. }) if field == "buyerSecretKeyHex"
    ));
}

#[test]
fn a_signed_chunk_the_root_does_not_commit_to_is_a_fault() {
    let m = machine();
    let chunks = seal(&m, &TEXTS);
    let manifest = dataset(&m, &chunks);
    let ids: Vec<String> = chunks.iter().map(|c| c.envelope.chunk_id.clone()).collect();
    let proof = InclusionProof::build(&ids, 0, 1).unwrap();
    let proof_json = wire(sealstream_core::json::write::to_python_pretty(
        &proof.to_json(),
    ));

    // The chunk in the root: no fault.
    let mut e = evidence(EvidenceKind::NotInRoot, &manifest, &chunks[1]);
    e.ciphertext_hex = None;
    e.proof = Some(proof_json.clone());
    assert!(not_a_fault(&e).contains("this very chunk"));

    // The same machine signed another chunk 1 (a second chain).
    let fork = seal(&m, &["scan 0: ok", "scan 1: OTHER", "scan 2: ok"]);
    let mut forked = e.clone();
    forked.envelope = wire(fork[1].envelope.to_pretty_json());
    let fault = verify(&forked).unwrap();
    assert_eq!(fault.kind, EvidenceKind::NotInRoot);
    assert_eq!(fault.chunk_id, fork[1].envelope.chunk_id);

    // A forged proof does not lead to the root.
    let mut forged = forked.clone();
    let mut p = proof_json.clone();
    p["chunkId"] = json!(format!("0x{}", "cd".repeat(32)));
    forged.proof = Some(p);
    assert!(not_a_fault(&forged).contains("does not lead"));
    // A proof of another index.
    let mut elsewhere = forked.clone();
    elsewhere.proof = Some(wire(sealstream_core::json::write::to_python_pretty(
        &InclusionProof::build(&ids, 0, 2).unwrap().to_json(),
    )));
    assert!(not_a_fault(&elsewhere).contains("not of the envelope's index"));
}

#[test]
fn malformed_evidence_is_named() {
    for (text, field) in [
        (&b"{"[..], "(document)"),
        (b"{} trailing", "(document)"),
        (br#"{"schemaVersion": 1}"#, "schemaVersion"),
        (
            br#"{"schemaVersion":"x","orderId":"o","kind":"nope","dataset":{},"envelope":{}}"#,
            "kind",
        ),
        (
            br#"{"schemaVersion":"x","orderId":"o","kind":"not-in-root","dataset":{},"envelope":{},"extra":1}"#,
            "extra",
        ),
    ] {
        match parse(text) {
            Err(EvidenceError::Malformed { field: f, reason }) => {
                assert!(f == field || reason.contains(field), "{f}: {reason} vs {field}")
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(text)),
        }
    }
    let e = parse(
        br#"{"schemaVersion":"sealstream.dispute-evidence.v0","orderId":"o","kind":"not-in-root","dataset":{},"envelope":{}}"#,
    )
    .unwrap();
    assert!(
        matches!(verify(&e), Err(EvidenceError::Malformed { field, .. }) if field == "schemaVersion")
    );
}
