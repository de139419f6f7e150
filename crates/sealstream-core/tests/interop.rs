//! Live interop against the reference SDK (peaq-os-sdk 0.12.1) in a venv:
//! packages signed by each side verify on the other, byte for byte; canonical
//! JSON and field rules agree on randomized payloads. (Chain directories made
//! by each side are checked in sealstream-files' tests.)

mod common;

use common::{obj, random_map, random_rules, rng, sorted, strings, Peer};
use rand::Rng;
use sealstream_core::identity::Did;
use sealstream_core::json::{self, canonical, write::to_python_compact, Value};
use sealstream_core::keys::{FieldKey, MachineSigningKey};
use sealstream_core::package::{CanonicalForm, DataPackage, PackageSigner, UnsignedPayload};
use sealstream_core::rules::{decrypt_field, TopicRules};

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
