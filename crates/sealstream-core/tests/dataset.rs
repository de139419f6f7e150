//! Datasets: the tamper matrix that v1 misses, inclusion proofs for every
//! index, consistency proofs for every size pair, signatures from the DID alone.

use proptest::prelude::*;
use sealstream_core::chunk::{
    compute_chunk_id, verify_chain, ChainState, ChainWriter, ChunkEnvelope, SealedChunk,
};
use sealstream_core::dataset::{
    verify_chunk, verify_extension, ChunkProofError, ConsistencyProof, DatasetBuilder, DatasetInfo,
    DatasetManifest, DatasetMismatch, DatasetSignature, DatasetVerifier, ExtensionError,
    InclusionProof, SignatureError,
};
use sealstream_core::identity::Did;
use sealstream_core::json::{self, Value};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey};
use sealstream_core::merkle;

// The fixtures' machine and chain keys.
use sealstream_testkit::fixture::{
    chain_signing_key as chain_key, machine_signing_key as machine, FixtureKeys,
};

fn build_chain(data: &[u8], chunk_size: usize) -> Vec<SealedChunk> {
    // The fixtures' machine, chain key and recipients.
    let mut config = FixtureKeys::load().chain_config(2);
    config.chunk_size = chunk_size;
    let mut out = Vec::new();
    let mut w = ChainWriter::new(
        config,
        ChainState::new(),
        |c: SealedChunk| -> Result<(), ()> {
            out.push(c);
            Ok(())
        },
    )
    .unwrap();
    w.write(data).unwrap();
    let (_summary, _sink) = w.finish().unwrap();
    out
}

fn signed_dataset(chunks: &[SealedChunk]) -> DatasetManifest {
    let mut b = DatasetBuilder::new();
    for c in chunks {
        b.push(&c.envelope).unwrap();
    }
    let info = DatasetInfo {
        topic: Some("/t".into()),
        source_hash: "0x00".into(),
        ..DatasetInfo::default()
    };
    let mut m = b.finish(info).unwrap();
    m.sign_eip191(&machine()).unwrap();
    m.sign_ed25519(&chain_key()).unwrap();
    m
}

/// v1 verification of a chain of (envelope, ciphertext).
fn v1(chunks: &[SealedChunk]) -> bool {
    let items = chunks
        .iter()
        .map(|c| Ok::<_, ()>((c.envelope.clone(), Some(c.ciphertext.clone()))));
    verify_chain(items, 2).unwrap().is_ok()
}

fn dataset_check(
    manifest: &DatasetManifest,
    chunks: &[SealedChunk],
) -> Result<(), DatasetMismatch> {
    let mut v = DatasetVerifier::new(manifest)?;
    for c in chunks {
        v.push(&c.envelope)?;
    }
    v.finish()
}

/// What an attacker does to make a modified chain pass v1: renumber and relink.
fn relink(chunks: &mut [SealedChunk]) {
    let mut prev: Option<String> = None;
    for (i, c) in chunks.iter_mut().enumerate() {
        let e = &mut c.envelope;
        e.index = i as u64;
        e.previous_chunk_id = prev.clone();
        e.chunk_id = compute_chunk_id(prev.as_deref(), &e.encrypted_data_hash, e.index);
        prev = Some(e.chunk_id.clone());
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn tamper_matrix_v1_passes_dataset_check_fails() {
    let original = build_chain(&data(6 * 100, 1), 100);
    assert_eq!(original.len(), 6);
    let manifest = signed_dataset(&original);
    assert!(v1(&original));
    dataset_check(&manifest, &original).expect("the untouched chain matches its dataset");

    // Another chain of the same machine (same keys), for substitution.
    let other = build_chain(&data(6 * 100, 2), 100);

    type Attack = (&'static str, Box<dyn Fn(&mut Vec<SealedChunk>)>);
    let attacks: Vec<Attack> = vec![
        (
            "drop a middle chunk",
            Box::new(|c| {
                c.remove(2);
            }),
        ),
        (
            "drop the last chunk",
            Box::new(|c| {
                c.pop();
            }),
        ),
        ("swap two chunks", Box::new(|c| c.swap(1, 3))),
        (
            "append a foreign chunk",
            Box::new(move |c| c.push(build_chain(b"foreign", 100).remove(0))),
        ),
        (
            "substitute a chunk from another chain of the same machine",
            {
                let donor = other[3].clone();
                Box::new(move |c| c[3] = donor.clone())
            },
        ),
    ];
    for (name, attack) in attacks {
        let mut chain = original.clone();
        attack(&mut chain);
        relink(&mut chain);
        assert!(
            v1(&chain),
            "{name}: v1 verification alone passes (the hole)"
        );
        let err = dataset_check(&manifest, &chain).expect_err(name);
        let expected_field = match name {
            "drop a middle chunk" | "drop the last chunk" | "append a foreign chunk" => {
                "chunkCount"
            }
            _ => "merkleRoot",
        };
        assert!(
            err.to_string().starts_with(expected_field),
            "{name}: reason names {expected_field}: {err}"
        );
    }

    // Without relinking, dropping the last chunk still passes v1 (a truncated chain
    // is a valid chain); the dataset check catches it.
    let mut truncated = original.clone();
    truncated.pop();
    assert!(v1(&truncated));
    assert!(matches!(
        dataset_check(&manifest, &truncated),
        Err(DatasetMismatch::ChunkCount {
            expected: 6,
            found: 5
        })
    ));
}

#[test]
fn changing_any_field_of_dataset_json_is_detected() {
    let chunks = build_chain(&data(500, 3), 100);
    let manifest = signed_dataset(&chunks);
    let doc = manifest.to_json();
    let obj = doc.as_object().unwrap();
    for key in obj.keys().filter(|k| k.as_str() != "signatures") {
        let mut changed = obj.clone();
        let v = changed.get_mut(key).unwrap();
        *v = match v {
            Value::String(s) if s.starts_with("0x") => {
                Value::String(format!("0x{}", "ab".repeat(32)))
            }
            Value::String(s) => Value::String(format!("{s}x")),
            Value::Number(n) => Value::from(n.as_u64().unwrap() + 1),
            Value::Null => Value::from("added"),
            Value::Array(a) => {
                let mut a = a.clone();
                a.push(Value::from(1u64));
                Value::Array(a)
            }
            other => panic!("unexpected {other:?}"),
        };
        // Fields with a fixed vocabulary fail to parse; the rest fail the signatures.
        match DatasetManifest::from_json(&Value::Object(changed)) {
            Err(e) => assert_eq!(e.field, *key, "{key}: {e}"),
            Ok(m) => {
                let err = dataset_check(&m, &chunks).expect_err(key);
                assert!(matches!(err, DatasetMismatch::Signature(_)), "{key}: {err}");
                let text = err.to_string();
                assert!(
                    text.starts_with("signatures[") || text.starts_with(key.as_str()),
                    "{key}: {text}"
                );
            }
        }
    }
    // Dropping the signatures, or adding an unsigned field.
    let mut unsigned = manifest.clone();
    unsigned.signatures.clear();
    assert_eq!(
        dataset_check(&unsigned, &chunks),
        Err(DatasetMismatch::Signature(SignatureError::Unsigned))
    );
    let mut extra = obj.clone();
    extra.insert("price".into(), Value::from(1u64));
    assert_eq!(
        DatasetManifest::from_json(&Value::Object(extra))
            .unwrap_err()
            .field,
        "price"
    );
}

#[test]
fn signatures_verify_from_the_did_alone_and_fail_for_another_key() {
    let chunks = build_chain(&data(300, 4), 100);
    let mut b = DatasetBuilder::new();
    for c in &chunks {
        b.push(&c.envelope).unwrap();
    }
    let mut only_eip191 = b.finish(DatasetInfo::default()).unwrap();
    only_eip191.sign_eip191(&machine()).unwrap();
    // Round trip through JSON: nothing but the document and the DID in it.
    let read = DatasetManifest::parse(only_eip191.to_pretty_json().as_bytes()).unwrap();
    read.verify_signatures().unwrap();

    // Signed by another secp256k1 key: refused when signing, and a forged one fails.
    let stranger = MachineSigningKey::generate();
    let mut forged = only_eip191.clone();
    assert!(forged.sign_eip191(&stranger).is_err());
    forged.signatures.clear();
    let did = forged.machine_did.clone();
    forged.machine_did = Did::of_key(&stranger).to_string();
    forged.sign_eip191(&stranger).unwrap();
    forged.machine_did = did.clone();
    // Its signature names the stranger, who is not the machine.
    assert_eq!(
        forged.verify_signatures(),
        Err(SignatureError::Eip191Signer {
            position: 0,
            signer: Did::of_key(&stranger).to_string()
        })
    );
    // Relabelled as the machine's, it does not recover the machine.
    if let DatasetSignature::Eip191 { signer, .. } = &mut forged.signatures[0] {
        *signer = did.clone();
    }
    assert!(matches!(
        forged.verify_signatures(),
        Err(SignatureError::Eip191 { position: 0, .. })
    ));

    // An Ed25519 signature by another key fails.
    let mut ed = only_eip191.clone();
    ed.signatures.clear();
    ed.chain_public_key_hex = ChainSigningKey::generate().public_key().to_hex();
    assert!(ed.sign_ed25519(&chain_key()).is_err());
    let other = ChainSigningKey::generate();
    ed.chain_public_key_hex = other.public_key().to_hex();
    ed.sign_ed25519(&other).unwrap();
    ed.chain_public_key_hex = chain_key().public_key().to_hex();
    assert!(matches!(
        ed.verify_signatures(),
        Err(SignatureError::Ed25519 { position: 0 })
    ));
}

fn ids(chunks: &[SealedChunk]) -> Vec<String> {
    chunks.iter().map(|c| c.envelope.chunk_id.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every index of chains of 1 to 1,000 chunks has a proof that verifies,
    /// and the proof fails for a wrong index, envelope, ciphertext or root.
    #[test]
    fn inclusion_proofs_for_every_index(n in 1usize..=1000) {
        let chunks = build_chain(&data(n, n as u8), 1);
        prop_assert_eq!(chunks.len(), n);
        let manifest = signed_dataset(&chunks);
        let chunk_ids = ids(&chunks);
        let other_manifest = signed_dataset(&build_chain(&data(n, n as u8 ^ 0x55), 1));
        for i in 0..n {
            let proof = InclusionProof::build(&chunk_ids, 0, i as u64).unwrap();
            let c = &chunks[i];
            prop_assert_eq!(verify_chunk(&manifest, &proof, &c.envelope, &c.ciphertext), Ok(()));
            // Same proof through its JSON form.
            let back = InclusionProof::from_json(&json::parse(json::write::to_python_compact(&proof.to_json()).as_bytes()).unwrap()).unwrap();
            prop_assert_eq!(&back, &proof);
            // Wrong root: another dataset of the same machine.
            prop_assert!(verify_chunk(&other_manifest, &proof, &c.envelope, &c.ciphertext).is_err());
            // Wrong ciphertext.
            let mut ct = c.ciphertext.clone();
            ct[0] ^= 1;
            prop_assert!(matches!(verify_chunk(&manifest, &proof, &c.envelope, &ct), Err(ChunkProofError::Chunk(_))));
            if n > 1 {
                // Wrong index: the proof of another chunk.
                let j = (i + 1) % n;
                let d = &chunks[j];
                prop_assert_eq!(verify_chunk(&manifest, &proof, &d.envelope, &d.ciphertext), Err(ChunkProofError::Index));
                // Wrong envelope claiming this index (its own chunk id no longer matches its content).
                let mut env: ChunkEnvelope = d.envelope.clone();
                env.index = i as u64;
                prop_assert!(verify_chunk(&manifest, &proof, &env, &d.ciphertext).is_err());
                // Tampered path.
                let mut bad = proof.clone();
                bad.path[0][0] ^= 1;
                prop_assert_eq!(verify_chunk(&manifest, &bad, &c.envelope, &c.ciphertext), Err(ChunkProofError::Root));
            }
        }
    }
}

#[test]
fn consistency_for_every_size_pair_up_to_200() {
    let leaves: Vec<merkle::Hash> = (0..200u64)
        .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
        .collect();
    for n in 1..=200usize {
        let new_root = merkle::root(&leaves[..n]);
        for m in 1..=n {
            let proof = merkle::consistency_proof(&leaves[..n], m).unwrap();
            let old_root = merkle::root(&leaves[..m]);
            assert!(
                merkle::verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof),
                "{m} -> {n}"
            );
            if m < n {
                // A rewritten history: another leaf among the first m.
                let mut rewritten = leaves[..n].to_vec();
                rewritten[(m * 7919) % m] = merkle::leaf_hash(b"rewritten");
                let forged_new = merkle::root(&rewritten);
                let forged_proof = merkle::consistency_proof(&rewritten, m).unwrap();
                assert!(
                    !merkle::verify_consistency(
                        m as u64,
                        n as u64,
                        &old_root,
                        &forged_new,
                        &forged_proof
                    ),
                    "{m} -> {n}"
                );
                assert!(
                    !merkle::verify_consistency(m as u64, n as u64, &old_root, &forged_new, &proof),
                    "{m} -> {n}"
                );
            }
        }
    }
}

#[test]
fn a_growing_dataset_provably_extends_its_past() {
    // One continuous chain written in two batches; a dataset after each.
    let all = build_chain(&data(40, 9), 1);
    let old = signed_dataset(&all[..17]);
    let new = signed_dataset(&all);
    let proof = ConsistencyProof::build(&ids(&all), 17).unwrap();
    assert_eq!(verify_extension(&old, &new, &proof), Ok(()));
    let back = ConsistencyProof::from_json(
        &json::parse(json::write::to_python_compact(&proof.to_json()).as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(back, proof);

    // A rewritten history: the same machine republishes different chunks.
    let rewritten = build_chain(&data(40, 10), 1);
    let fake_new = signed_dataset(&rewritten);
    let fake_proof = ConsistencyProof::build(&ids(&rewritten), 17).unwrap();
    assert!(verify_extension(&old, &fake_new, &fake_proof).is_err());
    // Reversed, or with the wrong proof.
    assert!(verify_extension(&new, &old, &proof).is_err());
    let mut bad = proof.clone();
    bad.path[0][5] ^= 1;
    assert_eq!(
        verify_extension(&old, &new, &bad),
        Err(ExtensionError::NotAnExtension)
    );

    // The gaps of the shared chunks come first in the newer dataset.
    let gap = |first: u64| sealstream_core::gap::Gap {
        reason: sealstream_core::gap::GapReason::NotReceived,
        source_topic: "/t".into(),
        after: None,
        before: None,
        publisher: None,
        sequences: Some((first, first + 2)),
        chunks: None,
    };
    let with_gaps = |chunks: &[SealedChunk], gaps: Vec<sealstream_core::gap::Gap>| {
        let mut m = signed_dataset(chunks);
        m.gaps = gaps;
        m.signatures.clear();
        m.sign_eip191(&machine()).unwrap();
        m
    };
    let old_g = with_gaps(&all[..17], vec![gap(1)]);
    for (new_gaps, ok) in [
        (vec![gap(1)], true),
        (vec![gap(1), gap(9)], true),
        (vec![], false),
        (vec![gap(9), gap(1)], false),
        (vec![gap(2)], false),
    ] {
        let got = verify_extension(&old_g, &with_gaps(&all, new_gaps.clone()), &proof);
        if ok {
            assert_eq!(got, Ok(()), "{new_gaps:?}");
        } else {
            assert_eq!(got, Err(ExtensionError::Gaps), "{new_gaps:?}");
        }
    }
    // An older dataset without gaps is extended by one that states some.
    assert_eq!(
        verify_extension(&old, &with_gaps(&all, vec![gap(9)]), &proof),
        Ok(())
    );
}
