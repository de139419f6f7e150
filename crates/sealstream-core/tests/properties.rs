//! Property tests: JSON round trips, package forms, chain round trips (also
//! across a save/resume boundary) and access file sharding.
//!
//! The random seed is fixed (so runs are deterministic); set
//! `SEALSTREAM_TEST_SEED` to explore others. Failures are not persisted to
//! files; proptest prints the minimal failing input.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use common::sorted;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use sealstream_core::access::{
    read_access_file, AccessEntry, AccessFile, AccessFileBuilder, Buyer, ACCESS_SCHEMA_VERSION,
};
use sealstream_core::chunk::{
    recipient_type, sha256_hex, verify_chain, ChainConfig, ChainItem, ChainReader,
    ChainReaderOptions, ChainState, ChainSummary, ChainVerifier, ChainWriter, KeyRecipient,
    SealedChunk, WRAP_ALGORITHM,
};
use sealstream_core::json::write::{to_python_compact, to_python_pretty};
use sealstream_core::json::{self, canonical, Map, Number, Value};
use sealstream_core::keys::{ChainSigningKey, RecipientSecretKey};

const MACHINE_DID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1";
const BUYER_ID: &str = "did:peaq:0x000000000000000000000000000000000000b0b0";

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(sealstream_testkit::test_seed("properties")),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------ JSON

fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => any::<char>(),
        1 => proptest::char::range('\u{0}', '\u{7f}'),
        1 => proptest::char::range('\u{10000}', '\u{10FFFF}'),
        1 => prop::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{0}', '\u{1f}', '\u{7f}',
            '\u{80}', '\u{ff}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{d7ff}', '\u{e000}',
            '\u{fffd}', '\u{ffff}', '\u{10000}', '\u{1f600}', '\u{1f916}', '\u{10ffff}', '.',
            'ü', '東',
        ]),
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop::collection::vec(arb_char(), 0..12).prop_map(|c| c.into_iter().collect())
}

fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        // Integers of any size, as Python keeps them.
        "-?[1-9][0-9]{15,80}".prop_map(|t| Number::from_int_text(&t).unwrap()),
        Just(Number::from(0u64)),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-1e6f64..1e6).prop_filter_map("finite", Number::from_f64),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-7,
            1e16,
            1e21,
            1e22,
            5e-324,
            2.2250738585072014e-308,
            1.7976931348623157e308,
            -1.7976931348623157e308,
            9007199254740993.0,
            123456789012345680.0,
            0.30000000000000004,
        ])
        .prop_map(|f| Number::from_f64(f).unwrap()),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number().prop_map(Value::Number),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((arb_string(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map>())),
        ]
    })
}

fn parse(text: &str) -> Value {
    json::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn compact_json_round_trips(v in arb_value()) {
        let text = to_python_compact(&v);
        prop_assert!(text.is_ascii());
        let back = parse(&text);
        prop_assert_eq!(&back, &v);
        // Value equality ignores key order and the sign of zero: the text does not.
        prop_assert_eq!(to_python_compact(&back), text);
    }

    /// A package's line and signed bytes, written from its fields, are the
    /// value forms exactly (`to_json` and `signable`, written as JSON).
    #[test]
    fn package_forms_written_from_fields_are_the_value_forms(
        payload in prop::collection::vec((arb_string(), arb_value()), 0..8),
        did in arb_string(),
        timestamp in arb_string(),
        schema in arb_string(),
        sequence in arb_number(),
        signature in arb_string(),
        key_id in arb_string(),
    ) {
        let package = sealstream_core::package::DataPackage {
            did,
            timestamp,
            schema_version: schema,
            sequence_number: sequence,
            payload: payload.into_iter().collect::<Map>(),
            signature,
            signing_key_id: key_id,
        };
        prop_assert_eq!(package.to_json_line(), to_python_compact(&package.to_json()));
        prop_assert_eq!(package.signed_bytes(), canonical::python(&package.signable()));
    }

    #[test]
    fn pretty_json_round_trips(v in arb_value()) {
        let text = to_python_pretty(&v);
        let back = parse(&text);
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(to_python_compact(&back), to_python_compact(&v));
    }

    #[test]
    fn canonical_json_is_sorted_compact_and_idempotent(v in arb_value()) {
        let canon = canonical::python(&v);
        prop_assert!(canon.is_ascii());
        let expected = sorted(&v);
        // Canonical form = compact form of the key-sorted value.
        prop_assert_eq!(&canon, &to_python_compact(&expected));
        let back = parse(&canon);
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(to_python_compact(&back), to_python_compact(&expected));
        // Idempotent through parse.
        prop_assert_eq!(canonical::python(&back), canon);
    }

    /// Wide objects (past the 32 keys sorted on the stack), in random,
    /// sorted and reverse order of keys: the canonical form sorts them all.
    #[test]
    fn canonical_json_sorts_wide_objects_in_any_order(
        keys in prop::collection::btree_set(arb_string(), 0..48),
        order in 0u8..3,
        shuffle in any::<u64>(),
    ) {
        let mut keys: Vec<String> = keys.into_iter().collect();
        match order {
            0 => {}
            1 => keys.reverse(),
            _ => {
                // A deterministic shuffle from the drawn seed.
                let mut state = shuffle | 1;
                for i in (1..keys.len()).rev() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    keys.swap(i, (state % (i as u64 + 1)) as usize);
                }
            }
        }
        let v = Value::Object(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), Value::Number(Number::from(i as u64))))
                .collect::<Map>(),
        );
        prop_assert_eq!(canonical::python(&v), to_python_compact(&sorted(&v)));
    }

    #[test]
    fn big_integers_keep_their_text(t in "-?[1-9][0-9]{0,120}") {
        let v = parse(&t);
        prop_assert_eq!(v.as_number().and_then(Number::as_int_text), Some(t.as_str()));
        prop_assert_eq!(canonical::python(&v), t);
    }

    #[test]
    fn finite_doubles_round_trip_bit_for_bit(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let v = Value::Number(Number::from_f64(f).unwrap());
        let back = parse(&to_python_compact(&v));
        let g = back.as_number().and_then(Number::as_f64).unwrap();
        prop_assert_eq!(g.to_bits(), f.to_bits());
    }
}

// ------------------------------------------------------------------ chains

struct Keys {
    signing: String,
    owner: Arc<RecipientSecretKey>,
}

fn keys() -> Keys {
    Keys {
        signing: "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f".into(),
        owner: Arc::new(
            RecipientSecretKey::from_hex(
                "51b48b68b1a9f4a820f7fb161053d09345b11e4eef1b81b2847556789e0db8e3",
                "owner",
            )
            .unwrap(),
        ),
    }
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

/// Write `data` onto the chain at `state`, in pieces of random sizes (or
/// through `copy_from`), collecting the chunks.
fn write(
    keys: &Keys,
    state: ChainState,
    chunk_size: usize,
    data: &[u8],
    seed: u64,
    out: &mut Vec<SealedChunk>,
) -> ChainSummary {
    let mut config = ChainConfig::new(
        ChainSigningKey::from_hex(&keys.signing, "chain").unwrap(),
        MACHINE_DID,
        &format!("{MACHINE_DID}#keys-1"),
        vec![sealstream_core::chunk::Recipient::new(
            "owner-1",
            "owner",
            keys.owner.public_key(),
        )],
    );
    config.chunk_size = chunk_size;
    config.parallelism = 1 + (seed % 3) as usize;
    let sink = |c: SealedChunk| {
        out.push(c);
        Ok::<(), Infallible>(())
    };
    let mut writer = ChainWriter::new(config, state, sink).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    if rng.gen_bool(0.3) {
        assert_eq!(writer.copy_from(data).unwrap(), data.len() as u64);
    } else {
        let mut rest = data;
        while !rest.is_empty() {
            let n = rng.gen_range(1..=rest.len().min(2 * chunk_size + 1));
            writer.write(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
    }
    writer.finish().unwrap().0
}

fn verify_all(chunks: &[SealedChunk]) -> ChainState {
    let items = chunks
        .iter()
        .map(|c| Ok::<_, Infallible>((c.envelope.clone(), Some(c.ciphertext.clone()))));
    verify_chain(items, 2).unwrap().unwrap()
}

fn decrypt_all(keys: &Keys, chunks: &[SealedChunk]) -> Vec<u8> {
    let items = chunks.iter().map(|c| {
        let entry = c.envelope.recipient_of_type("owner").unwrap().clone();
        Ok::<_, Infallible>(ChainItem {
            envelope: c.envelope.clone(),
            key: entry,
            ciphertext: c.ciphertext.clone(),
        })
    });
    let mut out = Vec::new();
    let options = ChainReaderOptions {
        parallelism: 2,
        ..ChainReaderOptions::default()
    };
    let mut reader = ChainReader::new(items, keys.owner.clone(), options);
    std::io::Read::read_to_end(&mut reader, &mut out).unwrap();
    let summary = reader.finish().unwrap();
    assert_eq!(summary.chunks as usize, chunks.len());
    assert_eq!(summary.bytes as usize, out.len());
    assert_eq!(summary.output_hash, sha256_hex(&out));
    out
}

/// Chunk size 1..8192 and an input of 0..50 000 bytes, at most ~64 chunks;
/// tiny chunk sizes, empty inputs and exact multiples of the chunk size are
/// drawn often.
fn arb_chain_case() -> impl Strategy<Value = (usize, usize, u64)> {
    prop_oneof![1usize..=16, 1usize..8192].prop_flat_map(|chunk_size| {
        let max_len = (chunk_size * 64).min(50_000);
        let len = prop_oneof![
            Just(0usize),
            (1..=max_len / chunk_size).prop_map(move |k| k * chunk_size),
            0..=max_len,
        ];
        (Just(chunk_size), len, any::<u64>())
    })
}

/// Where to cut an input of `len` bytes for a save/resume: at either end, at
/// a chunk boundary, or anywhere.
fn cut_at(len: usize, chunk_size: usize, mode: u8, fraction: f64) -> usize {
    let anywhere = ((len as f64) * fraction) as usize;
    match mode {
        0 => 0,
        1 => len,
        2 => anywhere / chunk_size * chunk_size,
        _ => anywhere,
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn chains_round_trip((chunk_size, len, seed) in arb_chain_case()) {
        let keys = keys();
        let input = data(len, seed);
        let mut chunks = Vec::new();
        let summary = write(&keys, ChainState::new(), chunk_size, &input, seed, &mut chunks);
        let expected_chunks = len.div_ceil(chunk_size).max(1);
        prop_assert_eq!(chunks.len(), expected_chunks);
        prop_assert_eq!(summary.chunks as usize, expected_chunks);
        prop_assert_eq!(summary.bytes as usize, len);
        prop_assert_eq!(&summary.source_hash, &sha256_hex(&input));
        for (i, c) in chunks.iter().enumerate() {
            prop_assert_eq!(c.envelope.index, i as u64);
            let slice = &input[(i * chunk_size).min(len)..((i + 1) * chunk_size).min(len)];
            prop_assert_eq!(c.ciphertext.len(), slice.len() + 16);
            prop_assert_eq!(&c.envelope.plaintext_hash, &sha256_hex(slice));
        }
        prop_assert_eq!(verify_all(&chunks), summary.state);
        prop_assert_eq!(decrypt_all(&keys, &chunks), input);
    }

    #[test]
    fn chains_continue_across_a_save_and_resume(
        (chunk_size, len, seed) in arb_chain_case(),
        mode in 0u8..4,
        fraction in 0.0f64..=1.0,
    ) {
        let keys = keys();
        let input = data(len, seed);
        let split = cut_at(len, chunk_size, mode, fraction);
        let mut chunks = Vec::new();
        let first = write(&keys, ChainState::new(), chunk_size, &input[..split], seed, &mut chunks);
        let first_count = chunks.len();
        prop_assert_eq!(first_count, split.div_ceil(chunk_size).max(1));
        // The state is saved as JSON and read back, as between two runs.
        let saved = json::write::to_python_compact(&first.state.to_json());
        let resumed = ChainState::from_json(&parse(&saved)).unwrap();
        prop_assert_eq!(&resumed, &first.state);
        let second = write(&keys, resumed.clone(), chunk_size, &input[split..], seed ^ 1, &mut chunks);
        let second_count = chunks.len() - first_count;
        prop_assert_eq!(second_count, (len - split).div_ceil(chunk_size));
        prop_assert_eq!(second.chunks as usize, second_count);
        if second_count == 0 {
            prop_assert_eq!(&second.state, &first.state);
        }
        // One chain, end to end; the second part also verifies on its own from the saved state.
        prop_assert_eq!(verify_all(&chunks), second.state.clone());
        let mut verifier = ChainVerifier::resuming(resumed);
        for c in &chunks[first_count..] {
            verifier.push(&c.envelope, Some(&c.ciphertext)).unwrap();
        }
        prop_assert_eq!(verifier.finish().unwrap(), second.state);
        prop_assert_eq!(decrypt_all(&keys, &chunks), input);
    }
}

// ------------------------------------------------------------------ access files

/// The size the SDK measures: `json.dumps(asdict(file), separators=(",", ":"))`
/// of its snake_case model, with `file_name` and a per-entry `schema_version`.
fn sdk_size(f: &AccessFile) -> usize {
    let s = |t: &str| Value::from(t);
    let entries = f
        .entries
        .iter()
        .map(|e| {
            let b = &e.buyer;
            let buyer: Map = [
                ("recipient_id", s(&b.recipient_id)),
                ("recipient_type", s(&b.recipient_type)),
                ("algorithm", s(&b.algorithm)),
                ("public_key_hex", s(&b.public_key_hex)),
                ("wrapped_key_hex", s(&b.wrapped_key_hex)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let entry: Map = [
                ("chunk_id", s(&e.chunk_id)),
                ("buyer", Value::Object(buyer)),
                ("schema_version", s(ACCESS_SCHEMA_VERSION)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            Value::Object(entry)
        })
        .collect();
    let file: Map = [
        ("schema_version", s(ACCESS_SCHEMA_VERSION)),
        ("file_name", s(&f.file_name)),
        ("buyer_public_key_hex", s(&f.buyer_public_key_hex)),
        ("entries", Value::Array(entries)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    to_python_compact(&Value::Object(file)).len()
}

/// Maximum file size, whether the key text has `0x`, the buyer key, and per
/// entry a seed for its bytes and another recipient id if it is not the buyer's.
type AccessCase = (usize, bool, [u8; 32], Vec<(u64, Option<String>)>);

fn arb_access_case() -> impl Strategy<Value = AccessCase> {
    (
        1usize..5000,
        any::<bool>(),
        any::<[u8; 32]>(),
        prop::collection::vec(
            (
                any::<u64>(),
                prop::option::weighted(0.2, arb_string().prop_map(|s| format!("id{s}"))),
            ),
            0..40,
        ),
    )
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn access_files_shard_entries_in_order((max, prefixed, key, specs) in arb_access_case()) {
        let key_text = if prefixed { format!("0x{}", hex::encode(key)) } else { hex::encode(key) };
        let buyer = Buyer::new(BUYER_ID, &key_text).unwrap();
        let entries: Vec<AccessEntry> = specs
            .iter()
            .map(|(seed, other_id)| {
                let bytes = data(32 + 80, *seed);
                AccessEntry {
                    chunk_id: format!("0x{}", hex::encode(&bytes[..32])),
                    buyer: KeyRecipient {
                        // Most entries are the buyer's; some carry another (non-empty, unicode) id.
                        recipient_id: other_id.clone().unwrap_or_else(|| BUYER_ID.into()),
                        recipient_type: recipient_type::BUYER.into(),
                        algorithm: WRAP_ALGORITHM.into(),
                        public_key_hex: key_text.clone(),
                        wrapped_key_hex: hex::encode(&bytes[32..]),
                    },
                }
            })
            .collect();
        let mut builder = AccessFileBuilder::new(&buyer, max).unwrap();
        let mut files = Vec::new();
        for e in &entries {
            files.extend(builder.push(e.clone()));
        }
        files.extend(builder.finish());

        prop_assert_eq!(files.is_empty(), entries.is_empty());
        let concatenated: Vec<AccessEntry> =
            files.iter().flat_map(|f| f.entries.iter().cloned()).collect();
        prop_assert_eq!(&concatenated, &entries);
        for (i, f) in files.iter().enumerate() {
            prop_assert_eq!(&f.file_name, &format!("{key_text}-{}.json", i + 1));
            prop_assert_eq!(&f.buyer_public_key_hex, &key_text);
            prop_assert!(!f.entries.is_empty());
            let bytes = f.to_bytes();
            // Only a file of a single entry may exceed the maximum (the SDK's
            // measure is larger than the written file, so this is loose).
            if f.entries.len() > 1 {
                prop_assert!(bytes.len() <= max, "file {} of {} entries: {} > {max}", i + 1, f.entries.len(), bytes.len());
            }
            // Reading back gives exactly the entries of the buyer, by chunk id.
            let mut found = HashMap::new();
            let n = read_access_file(&bytes, BUYER_ID, &mut found).unwrap();
            let mine: Vec<&AccessEntry> =
                f.entries.iter().filter(|e| e.buyer.recipient_id == BUYER_ID).collect();
            prop_assert_eq!(n, mine.len());
            prop_assert_eq!(found.len(), mine.len());
            for e in mine {
                prop_assert_eq!(found.get(&e.chunk_id), Some(&e.buyer));
            }
        }
        // Files are cut exactly as the SDK cuts them: each file of several
        // entries fits its SDK-measured size, and each file is as full as
        // possible (the next file's first entry would not have fit).
        for f in &files {
            if f.entries.len() > 1 {
                prop_assert!(sdk_size(f) <= max);
            }
        }
        for pair in files.windows(2) {
            let mut merged = pair[0].clone();
            merged.entries.push(pair[1].entries[0].clone());
            prop_assert!(sdk_size(&merged) > max);
        }
    }
}
