//! Secret keys never show up in errors or `Debug` output.
//!
//! Secret keys (and truncated or mangled copies of their hex, as a user might
//! paste them into the wrong place) are fed through every failing path the
//! public API has: key parsing of every kind, decryption and grants with wrong
//! keys, field decryption, package signing, field rules, envelope / access
//! file / package / state / manifest documents that carry the secret (file
//! reading is checked in sealstream-files' tests). No `Display`, `Debug` or
//! `{:#?}` of any resulting error, nor the `Debug` of key types,
//! `PackageSigner` or `ChainConfig`, may contain the secret: neither whole
//! nor any 16-hex-digit window of it, in any letter case.

use std::collections::HashMap;
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;

use sealstream_core::access::{
    grant_entry, read_access_file, AccessFileBuilder, Buyer, ACCESS_SCHEMA_VERSION,
};
use sealstream_core::chunk::{
    decrypt_chunk, ChainConfig, ChainReader, ChainReaderOptions, ChainState, ChainWriter,
    ChunkEnvelope, PublishManifest, Recipient, SealedChunk, CHUNK_SCHEMA_VERSION,
};
use sealstream_core::identity::{Did, Eip191Signature, EvmAddress};
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::{
    parse_hex_array, parse_hex_bytes, ChainPublicKey, ChainSigningKey, FieldKey, MachineSigningKey,
    RecipientPublicKey, RecipientSecretKey,
};
use sealstream_core::package::{DataPackage, PackageSigner, UnsignedPayload};
use sealstream_core::rules::{decrypt_field, encrypt_field, TopicRules};
use sealstream_testkit::chain::reader_items;
use sealstream_testkit::secrets::{contains_secret, Watch};

// Test-only keys of fixtures/peaq-stream-v1/keys.json.
const MACHINE_SK: &str = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";
const MACHINE_DID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1";
const CHAIN_SK: &str = "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f";
const FIELD_KEY: &str = "c84fcf398735bf46fad738fb45ffa606d05e9f01c5886c959abf79ef4e10d01c";
const OWNER_SK: &str = "51b48b68b1a9f4a820f7fb161053d09345b11e4eef1b81b2847556789e0db8e3";
const BUYER_SK: &str = "8172f3ac295975267ef814ec7f3f717d455e5a8587ba8f1d280caa43d39fc9c9";
const STRANGER_SK: &str = "d356d600ed0d3dc0242282228afafceed4cfd3e88061eaf7580808e618293b86";

#[test]
fn the_detector_finds_windows_in_any_case() {
    let s = OWNER_SK;
    assert!(contains_secret(s, s));
    assert!(contains_secret(&s.to_uppercase(), s));
    assert!(contains_secret(&format!("x {} y", &s[20..36]), s));
    assert!(!contains_secret(&format!("x {} y", &s[20..35]), s));
    assert!(!contains_secret("nothing to see", s));
}

/// Truncated, extended and mangled forms of a secret's hex, as input text.
fn variants(hex: &str) -> Vec<String> {
    let h = hex.trim_start_matches("0x").to_ascii_lowercase();
    let mut v = vec![
        h.clone(),
        format!("0x{h}"),
        format!("0X{h}"),
        h.to_uppercase(),
        format!(" \n{h}\n"),
        h[..62].to_string(),
        h[..63].to_string(),
        format!("0x{}", &h[..62]),
        format!("{h}00"),
        format!("{h}0"),
        format!("{h}{h}"),
        h[..48].to_string(),
        h[..40].to_string(),
        h[2..].to_string(),
        format!("0x0x{h}"),
        format!("\"{h}\""),
        format!("{}\u{e9}{}", &h[..32], &h[33..]),
        format!("{} {}", &h[..32], &h[32..]),
        format!("{}-{}", &h[..32], &h[32..]),
    ];
    for i in [0, 1, 31, 62, 63] {
        for bad in ['g', 'z', 'G', ' ', '\0', 'x'] {
            let mut m: Vec<char> = h.chars().collect();
            m[i] = bad;
            v.push(m.into_iter().collect());
        }
    }
    v
}

/// [`Watch::maybe`] of each parse, named `what(text)`.
macro_rules! watch_parses {
    ($w:expr, $text:expr, $($what:literal => $parse:expr,)+) => {
        $( $w.maybe(&format!("{}({:?})", $what, $text), $parse); )+
    };
}

/// [`Watch::debug`] of each secret key type that parses `text`: a secret
/// that parses must still print redacted.
macro_rules! watch_parsed_keys {
    ($w:expr, $text:expr, $($ty:ident),+) => {
        $(
            if let Ok(k) = $ty::from_hex($text, "k") {
                $w.debug(&format!(concat!(stringify!($ty), " debug({:?})"), $text), &k);
            }
        )+
    };
}

/// Feed text through every key, address, DID and hex parser.
fn parse_everything(w: &mut Watch, text: &str) {
    watch_parses!(w, text,
        "FieldKey" => FieldKey::from_hex(text, "field_key"),
        "RecipientSecretKey" => RecipientSecretKey::from_hex(text, "owner_private_key"),
        "RecipientPublicKey" => RecipientPublicKey::from_hex(text, "buyer_public_key"),
        "ChainSigningKey" => ChainSigningKey::from_hex(text, "chain_key"),
        "ChainPublicKey" => ChainPublicKey::from_hex(text, "publicKeyHex"),
        "MachineSigningKey" => MachineSigningKey::from_hex(text, "signing_key"),
        "hex20" => parse_hex_array::<20>(text, "address"),
        "hex24" => parse_hex_array::<24>(text, "nonce"),
        "hex32" => parse_hex_array::<32>(text, "key"),
        "hex64" => parse_hex_array::<64>(text, "signature"),
        "hex65" => parse_hex_array::<65>(text, "signature"),
        "hex bytes" => parse_hex_bytes(text, "wrappedKeyHex"),
        "EvmAddress" => EvmAddress::parse(text, "address"),
        "EvmAddress 0x" => EvmAddress::parse(&format!("0x{text}"), "address"),
        "Did" => Did::parse(text, "did"),
        "Did prefix" => Did::parse(&format!("did:peaq:0x{text}"), "did"),
        "Did::from_str" => Did::from_str(text),
        "Eip191Signature" => Eip191Signature::from_hex(text, "signature"),
        "Buyer" => Buyer::new("did:peaq:0xb0b", text),
        "Recipient" => Recipient::from_text("owner-1", "owner", text, "owner_public_key"),
    );
    watch_parsed_keys!(
        w,
        text,
        FieldKey,
        RecipientSecretKey,
        ChainSigningKey,
        MachineSigningKey
    );
}

/// The fixture keys and a freshly generated set, all watched.
struct Keys {
    machine: Vec<String>,
    chain: Vec<String>,
    field: Vec<String>,
    recipient: Vec<String>,
}

fn watched_keys(w: &mut Watch) -> Keys {
    let gen_machine = MachineSigningKey::generate().to_hex_secret().to_string();
    let gen_chain = ChainSigningKey::generate().to_hex_secret().to_string();
    let gen_field = FieldKey::generate().to_hex_secret().to_string();
    let gen_recipient = RecipientSecretKey::generate().to_hex_secret().to_string();
    let keys = Keys {
        machine: vec![MACHINE_SK.into(), gen_machine],
        chain: vec![CHAIN_SK.into(), gen_chain],
        field: vec![FIELD_KEY.into(), gen_field],
        recipient: vec![
            OWNER_SK.into(),
            BUYER_SK.into(),
            STRANGER_SK.into(),
            gen_recipient,
        ],
    };
    for (kind, list) in [
        ("machine", &keys.machine),
        ("chain", &keys.chain),
        ("field", &keys.field),
        ("recipient", &keys.recipient),
    ] {
        for (i, hex) in list.iter().enumerate() {
            w.add(&format!("{kind}[{i}]"), hex);
        }
    }
    keys
}

/// Each hex key of `$list` parsed as `$ty`: it gives its hex back and
/// prints redacted; then the further checks of `|key| { … }`, if given.
macro_rules! round_trip_keys {
    ($w:expr, $list:expr, $ty:ident $(, |$key:ident| $more:block)?) => {
        for hex in &$list {
            let k = $ty::from_hex(hex, stringify!($ty)).unwrap();
            assert_eq!(k.to_hex_secret().as_str(), hex.as_str());
            $w.debug(stringify!($ty), &k);
            $(
                let $key = k;
                $more
            )?
        }
    };
}

#[test]
fn key_parsing_errors_never_quote_the_key() {
    let mut w = Watch::new();
    let keys = watched_keys(&mut w);
    let all: Vec<&String> = keys
        .machine
        .iter()
        .chain(&keys.chain)
        .chain(&keys.field)
        .chain(&keys.recipient)
        .collect();
    for hex in all {
        for text in variants(hex) {
            parse_everything(&mut w, &text);
        }
    }
    // Keys of every type round-trip through to_hex_secret and print redacted.
    round_trip_keys!(w, keys.machine, MachineSigningKey);
    round_trip_keys!(w, keys.chain, ChainSigningKey);
    round_trip_keys!(w, keys.field, FieldKey, |k| {
        w.debug("FieldKey clone", &k.clone());
    });
    round_trip_keys!(w, keys.recipient, RecipientSecretKey, |k| {
        w.debug("RecipientSecretKey in Arc", &Arc::new(k));
    });
    // Invalid secp256k1 scalars (zero, the group order) name the field only.
    for bad in [
        "0".repeat(64),
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141".into(),
        "f".repeat(64),
    ] {
        w.fails("secp256k1 range", MachineSigningKey::from_hex(&bad, "k"));
    }
    assert!(w.checked > 10_000, "only {} outputs checked", w.checked);
}

fn signing_key(hex: &str) -> ChainSigningKey {
    ChainSigningKey::from_hex(hex, "chain").unwrap()
}

/// A chain of three chunks whose keys are wrapped to `owner`.
fn chain(chain_sk: &str, owner: &RecipientSecretKey) -> Vec<SealedChunk> {
    let other = RecipientSecretKey::generate().public_key();
    let mut config = ChainConfig::new(
        signing_key(chain_sk),
        MACHINE_DID,
        &format!("{MACHINE_DID}#keys-1"),
        ChainConfig::default_recipients(owner.public_key(), other, other),
    );
    config.chunk_size = 16;
    config.parallelism = 1;
    let mut chunks = Vec::new();
    let mut writer = ChainWriter::new(config, ChainState::new(), |c: SealedChunk| {
        chunks.push(c);
        Ok::<(), Infallible>(())
    })
    .unwrap();
    writer.write(&[7u8; 40]).unwrap();
    let _summary = writer.finish().unwrap().0;
    chunks
}

#[test]
fn wrong_keys_in_decrypt_grant_and_field_decryption_are_not_echoed() {
    let mut w = Watch::new();
    let keys = watched_keys(&mut w);
    let owner = RecipientSecretKey::from_hex(&keys.recipient[0], "owner").unwrap();
    let buyer = Buyer::new(
        "did:peaq:0xb0b",
        &RecipientSecretKey::from_hex(&keys.recipient[1], "buyer")
            .unwrap()
            .public_key()
            .to_hex(),
    )
    .unwrap();
    let chunks = chain(&keys.chain[0], &owner);
    for wrong_hex in keys.recipient.iter().skip(1) {
        let wrong = Arc::new(RecipientSecretKey::from_hex(wrong_hex, "wrong").unwrap());
        for c in &chunks {
            let env = &c.envelope;
            let owner_entry = &env.encryption.key_recipients[0];
            w.fails(
                "decrypt_chunk wrong key",
                decrypt_chunk(env, owner_entry, &wrong, c.ciphertext.clone()),
            );
            w.fails("grant wrong owner", grant_entry(env, &wrong, &buyer));
            // Envelope fields replaced by the secret itself.
            for (field, change) in secret_in_envelope(wrong_hex) {
                let mut e = env.clone();
                change(&mut e);
                w.maybe(
                    &format!("decrypt with {field} = secret"),
                    decrypt_chunk(
                        &e,
                        &e.encryption.key_recipients[0],
                        &owner,
                        c.ciphertext.clone(),
                    ),
                );
                w.maybe(
                    &format!("grant with {field} = secret"),
                    grant_entry(&e, &owner, &buyer),
                );
            }
        }
        let items = reader_items(&chunks, |e| &e.encryption.key_recipients[0]);
        let options = ChainReaderOptions {
            parallelism: 2,
            ..ChainReaderOptions::default()
        };
        let mut reader = ChainReader::new(items, wrong.clone(), options);
        w.fails("chain reader wrong key", reader.next_chunk());
        let mut plaintext = Vec::new();
        w.fails(
            "chain reader wrong key, read",
            std::io::Read::read_to_end(&mut reader, &mut plaintext),
        );
        let mut no_owner = chunks[0].envelope.clone();
        no_owner.encryption.key_recipients.remove(0);
        w.fails(
            "grant without owner",
            grant_entry(&no_owner, &wrong, &buyer),
        );
    }
    // Field decryption with the wrong key, and with broken wrappers.
    let right = FieldKey::from_hex(&keys.field[0], "field").unwrap();
    let wrong = FieldKey::from_hex(&keys.field[1], "field").unwrap();
    let secret_value = Value::from(keys.recipient[0].as_str());
    let wrapper = encrypt_field(&secret_value, &right);
    assert_eq!(decrypt_field(&wrapper, &right).unwrap(), secret_value);
    w.fails("decrypt_field wrong key", decrypt_field(&wrapper, &wrong));
    let mut broken = wrapper.as_object().unwrap().clone();
    for (name, value) in [
        ("ciphertext", Value::from(keys.field[0].as_str())),
        ("ciphertext", Value::from(format!("{}!", keys.field[0]))),
        ("algorithm", Value::from(keys.field[0].as_str())),
        ("__encrypted", Value::from(keys.field[0].as_str())),
    ] {
        let old = broken.insert(name.into(), value).unwrap();
        w.fails(
            &format!("decrypt_field with {name} = secret"),
            decrypt_field(&Value::Object(broken.clone()), &right),
        );
        broken.insert(name.into(), old);
    }
    w.fails(
        "decrypt_field of the secret",
        decrypt_field(&secret_value, &right),
    );
}

/// A named change to a chain configuration.
type ConfigChange = (&'static str, Box<dyn Fn(&mut ChainConfig)>);

type EnvelopeChange = (&'static str, Box<dyn Fn(&mut ChunkEnvelope)>);

/// Each hex field of an envelope set to `secret` (wrong length or meaning everywhere).
fn secret_in_envelope(secret: &str) -> Vec<EnvelopeChange> {
    let s = secret.to_string();
    let with = |f: fn(&mut ChunkEnvelope, String)| -> Box<dyn Fn(&mut ChunkEnvelope)> {
        let s = s.clone();
        Box::new(move |e| f(e, s.clone()))
    };
    vec![
        ("nonce", with(|e, s| e.encryption.nonce = s)),
        (
            "nonce prefix",
            with(|e, s| e.encryption.nonce = s[..48].to_string()),
        ),
        (
            "keyCommitment",
            with(|e, s| e.encryption.key_commitment = s),
        ),
        (
            "keyCommitment sha256:",
            with(|e, s| e.encryption.key_commitment = format!("sha256:{s}")),
        ),
        (
            "wrappedKeyHex",
            with(|e, s| e.encryption.key_recipients[0].wrapped_key_hex = s),
        ),
        (
            "wrappedKeyHex 80 bytes",
            with(|e, s| {
                e.encryption.key_recipients[0].wrapped_key_hex = format!("{s}{s}{}", &s[..32])
            }),
        ),
        (
            "recipientType",
            with(|e, s| e.encryption.key_recipients[0].recipient_type = s),
        ),
        ("algorithm", with(|e, s| e.encryption.algorithm = s)),
        ("plaintextHash", with(|e, s| e.plaintext_hash = s)),
    ]
}

#[test]
fn documents_carrying_the_secret_fail_without_quoting_it() {
    let mut w = Watch::new();
    let keys = watched_keys(&mut w);
    let owner = RecipientSecretKey::from_hex(&keys.recipient[0], "owner").unwrap();
    let chunks = chain(&keys.chain[0], &owner);
    let envelope = chunks[1].envelope.to_json();
    let all: Vec<String> = keys
        .machine
        .iter()
        .chain(&keys.chain)
        .chain(&keys.field)
        .chain(&keys.recipient)
        .map(|h| h.trim_start_matches("0x").to_string())
        .collect();
    for s in &all {
        // Raw JSON syntax errors next to, inside and after the secret.
        for doc in [
            format!("{{\"key\": \"{s}"),
            format!("{{\"key\": \"{s}\\q\"}}"),
            format!("{{\"key\": {s}}}"),
            format!("[{s}]"),
            s.clone(),
            format!("\"{s}\" \"{s}\""),
            format!("{{\"{s}\" 1}}"),
            format!("{{\"{s}\": }}"),
            format!("{{\"a\": \"{s}\\u12\"}}"),
            format!("{{\"a\": \"{}\u{1}{}\"}}", &s[..32], &s[32..]),
            format!("{{\"a\": [\"{s}\",]}}"),
            format!("0x{s}"),
            format!("1{s}"),
            format!("-{s}"),
        ] {
            w.maybe("json::parse", json::parse(doc.as_bytes()));
            w.maybe("ChunkEnvelope::parse", ChunkEnvelope::parse(doc.as_bytes()));
            w.maybe(
                "read_access_file",
                read_access_file(doc.as_bytes(), "b", &mut HashMap::new()),
            );
        }
        // Invalid UTF-8 inside a string that holds the secret.
        let mut bytes = format!("{{\"a\": \"{s}").into_bytes();
        bytes.extend_from_slice(b"\xff\"}");
        w.fails("invalid UTF-8", json::parse(&bytes));

        // Envelopes: each field replaced by the secret (or a wrongly typed value).
        let obj = envelope.as_object().unwrap();
        for path in envelope_paths(obj, "") {
            for replacement in [
                Value::from(s.as_str()),
                Value::from(format!("0x{s}")),
                Value::Array(vec![Value::from(s.as_str())]),
                Value::Object(Map::from_iter([(s.clone(), Value::from(s.as_str()))])),
                Value::Null,
            ] {
                let doc = replace_at(&envelope, &path, replacement);
                let text = json::write::to_python_pretty(&doc);
                match ChunkEnvelope::parse(text.as_bytes()) {
                    Err(e) => w.error(&format!("envelope {path}"), &e),
                    Ok(env) => {
                        let entry = env.encryption.key_recipients[0].clone();
                        w.maybe(
                            &format!("decrypt envelope {path}"),
                            decrypt_chunk(&env, &entry, &owner, chunks[1].ciphertext.clone()),
                        );
                    }
                }
            }
        }

        // Access files.
        let entry = |chunk_id: Value, wrapped: Value| {
            obj_of(vec![
                ("chunkId", chunk_id),
                (
                    "buyer",
                    obj_of(vec![
                        ("recipientId", Value::from("b")),
                        ("recipientType", Value::from("buyer")),
                        ("algorithm", Value::from("x25519-sealedbox")),
                        ("publicKeyHex", Value::from(s.as_str())),
                        ("wrappedKeyHex", wrapped),
                    ]),
                ),
            ])
        };
        let access_docs = [
            obj_of(vec![("schemaVersion", Value::from(s.as_str()))]),
            obj_of(vec![
                ("schemaVersion", Value::from(ACCESS_SCHEMA_VERSION)),
                ("buyerPublicKeyHex", Value::from(s.as_str())),
            ]),
            obj_of(vec![
                ("schemaVersion", Value::from(ACCESS_SCHEMA_VERSION)),
                ("buyerPublicKeyHex", Value::from(s.as_str())),
                ("entries", Value::from(s.as_str())),
            ]),
            obj_of(vec![
                ("schemaVersion", Value::from(ACCESS_SCHEMA_VERSION)),
                ("buyerPublicKeyHex", Value::from(s.as_str())),
                (
                    "entries",
                    Value::Array(vec![
                        entry(Value::from("0x01"), Value::from(s.as_str())),
                        entry(Value::from(s.as_str()), Value::from("")),
                    ]),
                ),
            ]),
            obj_of(vec![
                ("schemaVersion", Value::from(ACCESS_SCHEMA_VERSION)),
                ("buyerPublicKeyHex", Value::from("x")),
                (
                    "entries",
                    Value::Array(vec![entry(Value::from(""), Value::from(s.as_str()))]),
                ),
            ]),
            obj_of(vec![
                ("schemaVersion", Value::from(ACCESS_SCHEMA_VERSION)),
                ("buyerPublicKeyHex", Value::from("x")),
                (
                    "entries",
                    Value::Array(vec![entry(Value::from("0x01"), Value::from(1u64))]),
                ),
            ]),
            obj_of(vec![
                ("schemaVersion", Value::from(ACCESS_SCHEMA_VERSION)),
                ("buyerPublicKeyHex", Value::from("x")),
                ("entries", Value::Array(vec![Value::from(s.as_str())])),
            ]),
        ];
        for doc in access_docs {
            let bytes = json::write::to_python_compact(&doc).into_bytes();
            w.fails(
                "read_access_file",
                read_access_file(&bytes, "b", &mut HashMap::new()),
            );
            w.fails(
                "read_access_file truncated",
                read_access_file(&bytes[..bytes.len() - 1], "b", &mut HashMap::new()),
            );
        }

        // Packages: from_json errors and verification failures.
        let package = obj_of(vec![
            ("did", Value::from(format!("did:peaq:0x{s}"))),
            ("timestamp", Value::from("2026-01-01T00:00:00Z")),
            ("schemaVersion", Value::from("1")),
            ("sequenceNumber", Value::from(1u64)),
            ("payload", obj_of(vec![("secret", Value::from(s.as_str()))])),
            ("signature", Value::from(format!("0x{s}"))),
            ("signingKeyId", Value::from(s.as_str())),
        ]);
        let p = package.as_object().unwrap();
        for name in [
            "did",
            "timestamp",
            "schemaVersion",
            "sequenceNumber",
            "payload",
            "signature",
            "signingKeyId",
        ] {
            let mut broken = p.clone();
            broken.insert(name.into(), Value::Array(vec![Value::from(s.as_str())]));
            w.fails(
                &format!("package {name}"),
                DataPackage::from_json(&Value::Object(broken)),
            );
        }
        let mut pkg = DataPackage::from_json(&package).unwrap();
        for (did, signature) in [
            (format!("did:peaq:0x{s}"), format!("0x{s}")),
            (MACHINE_DID.to_string(), format!("0x{s}")),
            (MACHINE_DID.to_string(), format!("0x{s}{s}1b")),
            (MACHINE_DID.to_string(), format!("0x{s}{s}1c")),
            (MACHINE_DID.to_string(), format!("0x{s}{s}05")),
            (format!("did:peaq:0x{}", &s[..40]), format!("0x{s}{s}1b")),
        ] {
            pkg.did = did;
            pkg.signature = signature;
            let v = pkg.verify();
            assert!(!v.is_valid());
            // `signer_did` echoes the package's own (public) did field; the
            // reason must not echo anything.
            w.fails("package verify", v.outcome);
        }

        // Rules documents.
        let rules_docs = [
            obj_of(vec![("topic", Value::from(1u64))]),
            obj_of(vec![("defaultAction", Value::from(s.as_str()))]),
            obj_of(vec![("rules", Value::from(s.as_str()))]),
            obj_of(vec![("rules", Value::Array(vec![Value::from(s.as_str())]))]),
            rules_doc(vec![("fieldPath", Value::from(1u64))]),
            rules_doc(vec![
                ("fieldPath", Value::from("a")),
                ("action", Value::from(s.as_str())),
            ]),
            rules_doc(vec![
                ("fieldPath", Value::from("a")),
                ("action", Value::from("anonymize")),
                ("anonymizeStrategy", Value::from(s.as_str())),
            ]),
            rules_doc(vec![
                ("fieldPath", Value::from("a")),
                ("action", Value::from("anonymize")),
            ]),
        ];
        for doc in rules_docs {
            w.fails("TopicRules::from_json", TopicRules::from_json(&doc));
        }

        // Chain state and manifest documents.
        for doc in [
            obj_of(vec![
                ("nextIndex", Value::from(0u64)),
                ("previousChunkId", Value::from(s.as_str())),
            ]),
            obj_of(vec![("nextIndex", Value::from(s.as_str()))]),
            obj_of(vec![
                ("nextIndex", Value::from(3u64)),
                (
                    "previousChunkId",
                    Value::Array(vec![Value::from(s.as_str())]),
                ),
            ]),
            Value::from(s.as_str()),
        ] {
            w.fails("ChainState::from_json", ChainState::from_json(&doc));
        }
        for doc in [
            obj_of(vec![("schemaVersion", Value::from(s.as_str()))]),
            obj_of(vec![
                ("schemaVersion", Value::from(CHUNK_SCHEMA_VERSION)),
                ("sourceHash", Value::from(s.as_str())),
                ("machineDid", Value::from(s.as_str())),
            ]),
            obj_of(vec![
                ("schemaVersion", Value::from(CHUNK_SCHEMA_VERSION)),
                ("sourceHash", Value::from(s.as_str())),
                ("totalChunks", Value::from(s.as_str())),
            ]),
        ] {
            w.fails(
                "PublishManifest::from_json",
                PublishManifest::from_json(&doc),
            );
        }
    }
}

fn obj_of(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn rules_doc(rule: Vec<(&str, Value)>) -> Value {
    obj_of(vec![
        ("topic", Value::from("/t")),
        ("rules", Value::Array(vec![obj_of(rule)])),
    ])
}

/// Dot paths (with `[i]` for arrays) of every leaf of an envelope.
fn envelope_paths(map: &Map, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in map {
        let p = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(m) => out.extend(envelope_paths(m, &p)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Object(m) => out.extend(envelope_paths(m, &format!("{p}[{i}]"))),
                        _ => out.push(format!("{p}[{i}]")),
                    }
                }
            }
            _ => out.push(p),
        }
    }
    out
}

/// `value` with the leaf at `path` (as [`envelope_paths`] writes it) replaced.
fn replace_at(value: &Value, path: &str, replacement: Value) -> Value {
    let mut out = value.clone();
    let mut current = &mut out;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (
                k,
                Some(rest.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (part, None),
        };
        current = match current {
            Value::Object(m) => m.get_mut(key).unwrap(),
            _ => unreachable!(),
        };
        if let Some(i) = index {
            current = match current {
                Value::Array(a) => &mut a[i],
                _ => unreachable!(),
            };
        }
    }
    *current = replacement;
    out
}

#[test]
fn signer_and_config_debug_and_validation_errors_are_redacted() {
    let mut w = Watch::new();
    let keys = watched_keys(&mut w);
    for (machine_hex, field_hex) in keys.machine.iter().zip(&keys.field) {
        let key = || MachineSigningKey::from_hex(machine_hex, "machine").unwrap();
        let field = || Some(FieldKey::from_hex(field_hex, "field").unwrap());
        let did = Did::of_key(&key()).to_string();
        // Mismatched, malformed and secret-carrying DIDs; blank key ids.
        let other_did = Did::of_key(&MachineSigningKey::generate()).to_string();
        let secret_did = format!("did:peaq:0x{}", &machine_hex.trim_start_matches("0x")[..40]);
        for (d, key_id) in [
            (other_did.clone(), None),
            (secret_did.clone(), None),
            (format!("did:peaq:{machine_hex}"), None),
            (machine_hex.clone(), None),
            (did.clone(), Some(" ".to_string())),
        ] {
            w.fails(
                &format!("PackageSigner::new({d})"),
                PackageSigner::new(key(), &d, key_id, field()),
            );
        }
        let signer = PackageSigner::new(key(), &did, None, field()).unwrap();
        w.debug("PackageSigner", &signer);
        let no_field_key = PackageSigner::new(key(), &did, None, None).unwrap();
        w.debug("PackageSigner without field key", &no_field_key);

        // Build errors: empty schema version, encrypt without a field key,
        // numbers generalize cannot bucket; the payload carries secrets.
        let mut fields = Map::new();
        for (i, hex) in keys.recipient.iter().enumerate() {
            fields.insert(format!("f{i}"), Value::from(hex.as_str()));
        }
        fields.insert(
            "huge".into(),
            Value::Number(json::Number::from_f64(1.7976931348623157e308).unwrap()),
        );
        let payload = UnsignedPayload {
            topic: "/t".into(),
            fields,
            captured_at: "2026-01-01T00:00:00Z".into(),
        };
        let encrypt = TopicRules::from_json(&rules_doc(vec![
            ("fieldPath", Value::from("f0")),
            ("action", Value::from("encrypt")),
        ]))
        .unwrap();
        let generalize = TopicRules::from_json(&rules_doc(vec![
            ("fieldPath", Value::from("huge")),
            ("action", Value::from("anonymize")),
            ("anonymizeStrategy", Value::from("generalize")),
        ]))
        .unwrap();
        w.fails(
            "build with empty schema",
            signer.build(&payload, &encrypt, " ", 1),
        );
        w.fails(
            "build encrypt without key",
            no_field_key.build(&payload, &encrypt, "1", 1),
        );
        w.fails(
            "build generalize out of range",
            signer.build(&payload, &generalize, "1", 1),
        );
        w.fails(
            "apply encrypt without key",
            encrypt.apply(&payload.fields, None),
        );
        // A successful package carries the payload as given, but f0 only encrypted.
        let ok = signer.build(&payload, &encrypt, "1", 1).unwrap();
        assert!(!contains_secret(&ok.to_json_line(), &keys.recipient[0]));
        assert!(contains_secret(&ok.to_json_line(), &keys.recipient[1]));
    }

    // ChainConfig: Debug, and validation errors of the writer.
    for chain_hex in &keys.chain {
        let owner = RecipientSecretKey::from_hex(&keys.recipient[0], "owner").unwrap();
        let config = || {
            let mut c = ChainConfig::new(
                signing_key(chain_hex),
                MACHINE_DID,
                "key-1",
                vec![Recipient::new("owner-1", "owner", owner.public_key())],
            );
            c.parallelism = 1;
            c
        };
        w.debug("ChainConfig", &config());
        let broken: Vec<ConfigChange> = vec![
            ("chunk size", Box::new(|c| c.chunk_size = 0)),
            ("machine did", Box::new(|c| c.machine_did = " ".into())),
            ("key id", Box::new(|c| c.key_id.clear())),
            ("recipients", Box::new(|c| c.recipients.clear())),
            ("recipient id", Box::new(|c| c.recipients[0].id.clear())),
        ];
        for (name, change) in broken {
            let mut c = config();
            change(&mut c);
            w.debug(&format!("ChainConfig {name}"), &c);
            let sink = |_: SealedChunk| Ok::<(), Infallible>(());
            match ChainWriter::new(c, ChainState::new(), sink) {
                Ok(_) => panic!("{name}: expected an error"),
                Err(e) => w.error(&format!("ChainWriter::new {name}"), &e),
            }
        }
        let buyer = Buyer::new("b", &owner.public_key().to_hex()).unwrap();
        w.fails("AccessFileBuilder", AccessFileBuilder::new(&buyer, 0));
    }
}
