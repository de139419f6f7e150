//! Criterion benchmarks of the hot paths: chunk chains (build, verify,
//! decrypt), signed packages with field rules (sign, verify) and buyer
//! re-wraps. See BENCHMARKS.md at the repository root for the figures.
//!
//! Inputs are the reference fixtures (`fixtures/peaq-stream-v1`, or
//! `SEALSTREAM_FIXTURES`); chain benchmarks use 64 MiB of in-memory data.
//! `SEALSTREAM_BENCH_MIB` changes the chain size.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sealstream_core::access::{grant_entry, Buyer};
use sealstream_core::chunk::{
    recipient_type, verify_chain, ChainConfig, ChainItem, ChainReader, ChainReaderOptions,
    ChainState, ChainWriter, SealedChunk,
};
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::{
    ChainSigningKey, FieldKey, MachineSigningKey, RecipientPublicKey, RecipientSecretKey,
};
use sealstream_core::package::{DataPackage, PackageSigner, UnsignedPayload};
use sealstream_core::pool::default_parallelism;
use sealstream_core::rules::TopicRules;
use sealstream_testkit::fixture::BUYER_ID;
use sealstream_testkit::fixtures;

/// Packages (or re-wraps) per iteration of the two-thread batch benchmarks.
const BATCH: usize = 2_000;
/// Threads of the batch benchmarks (the target machine has two cores).
const BATCH_THREADS: usize = 2;

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    json::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn chain_mib() -> usize {
    std::env::var("SEALSTREAM_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

/// The fixture keys.
struct Keys {
    doc: Map,
}

impl Keys {
    fn load() -> Keys {
        let doc = read_json(&fixtures().join("keys.json"))
            .as_object()
            .expect("keys.json is an object")
            .clone();
        Keys { doc }
    }

    fn text(&self, who: &str, field: &str) -> &str {
        self.doc[who].as_object().expect(who)[field]
            .as_str()
            .expect(field)
    }

    fn chain_key(&self) -> ChainSigningKey {
        ChainSigningKey::from_hex(self.text("chainSigning", "privateKeyHex"), "chain").unwrap()
    }

    fn machine_key(&self) -> MachineSigningKey {
        MachineSigningKey::from_hex(self.text("machineSigning", "privateKeyHex"), "machine")
            .unwrap()
    }

    fn did(&self) -> &str {
        self.text("machineSigning", "did")
    }

    fn field_key(&self) -> FieldKey {
        let text = self.doc["fieldEncryptionKeyHex"].as_str().unwrap();
        FieldKey::from_hex(text, "field key").unwrap()
    }

    fn public(&self, who: &str) -> RecipientPublicKey {
        RecipientPublicKey::from_hex(self.text(who, "publicKeyHex"), who).unwrap()
    }

    fn secret(&self, who: &str) -> RecipientSecretKey {
        RecipientSecretKey::from_hex(self.text(who, "privateKeyHex"), who).unwrap()
    }

    fn chain_config(&self, parallelism: usize) -> ChainConfig {
        let recipients = ChainConfig::default_recipients(
            self.public("owner"),
            self.public("operator"),
            self.public("machine"),
        );
        let did = self.did();
        let mut config =
            ChainConfig::new(self.chain_key(), did, &format!("{did}#keys-1"), recipients);
        config.parallelism = parallelism;
        config
    }
}

/// Deterministic, incompressible-looking input.
fn input(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Build a chain with `parallelism` workers, giving every chunk to `sink`.
fn build_chain<F>(keys: &Keys, data: &[u8], parallelism: usize, sink: F) -> u64
where
    F: FnMut(SealedChunk) -> Result<(), Infallible>,
{
    let mut writer =
        ChainWriter::new(keys.chain_config(parallelism), ChainState::new(), sink).unwrap();
    writer.copy_from(data).unwrap();
    let (summary, _) = writer.finish().unwrap();
    summary.bytes
}

fn build_chunks(keys: &Keys, data: &[u8]) -> Vec<SealedChunk> {
    let mut chunks = Vec::new();
    build_chain(keys, data, default_parallelism(), |c: SealedChunk| {
        chunks.push(c);
        Ok(())
    });
    chunks
}

fn bench_chain(c: &mut Criterion) {
    let keys = Keys::load();
    let data = input(chain_mib() << 20);
    let mut group = c.benchmark_group("chain");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(data.len() as u64));

    let cores = default_parallelism();
    group.bench_function(format!("build/{}MiB/{cores}-workers", chain_mib()), |b| {
        b.iter(|| {
            build_chain(&keys, &data, cores, |c: SealedChunk| {
                drop(c);
                Ok(())
            })
        })
    });
    group.bench_function(format!("build/{}MiB/1-worker+reader", chain_mib()), |b| {
        b.iter(|| {
            build_chain(&keys, &data, 1, |c: SealedChunk| {
                drop(c);
                Ok(())
            })
        })
    });

    let chunks = build_chunks(&keys, &data);
    group.bench_function(format!("verify/{}MiB/2-threads", chain_mib()), |b| {
        b.iter_batched(
            || {
                chunks
                    .iter()
                    .map(|c| Ok::<_, Infallible>((c.envelope.clone(), Some(c.ciphertext.clone()))))
                    .collect::<Vec<_>>()
            },
            |items| verify_chain(items, 2).unwrap().unwrap(),
            BatchSize::PerIteration,
        )
    });

    let owner = Arc::new(keys.secret("owner"));
    group.bench_function(format!("decrypt/{}MiB/2-threads", chain_mib()), |b| {
        b.iter_batched(
            || {
                chunks
                    .iter()
                    .map(|c| {
                        let entry = c
                            .envelope
                            .recipient_of_type(recipient_type::OWNER)
                            .unwrap()
                            .clone();
                        Ok::<_, Infallible>(ChainItem {
                            envelope: c.envelope.clone(),
                            key: entry,
                            ciphertext: c.ciphertext.clone(),
                        })
                    })
                    .collect::<Vec<_>>()
            },
            |items| decrypt_all(items, &owner, 2),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// One package fixture: its input, rules and the reference's signed package.
struct PackageCase {
    name: &'static str,
    payload: UnsignedPayload,
    rules: TopicRules,
    schema_version: String,
    sequence_number: u64,
}

impl PackageCase {
    fn load(name: &'static str) -> PackageCase {
        let dir = fixtures().join("packages");
        let input = read_json(&dir.join(format!("{name}.input.json")));
        let input = input.as_object().unwrap();
        PackageCase {
            name,
            payload: UnsignedPayload {
                topic: input["topic"].as_str().unwrap().into(),
                fields: input["fields"].as_object().unwrap().clone(),
                captured_at: input["capturedAt"].as_str().unwrap().into(),
            },
            rules: TopicRules::from_json(&read_json(&dir.join(format!("{name}.rules.json"))))
                .unwrap(),
            schema_version: input["schemaVersion"].as_str().unwrap().into(),
            sequence_number: input["sequenceNumber"]
                .as_number()
                .and_then(json::Number::as_u64)
                .unwrap(),
        }
    }

    fn sign(&self, signer: &PackageSigner, seq: u64) -> DataPackage {
        signer
            .build(&self.payload, &self.rules, &self.schema_version, seq)
            .unwrap()
    }
}

fn package_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("packages"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".package.json").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Run `work(i)` for `i` in `0..n`, split over `threads` scoped threads.
fn split<F: Fn(usize) + Sync>(n: usize, threads: usize, work: F) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            s.spawn(move || (t..n).step_by(threads).for_each(work));
        }
    });
}

fn bench_packages(c: &mut Criterion) {
    let keys = Keys::load();
    let signer =
        PackageSigner::new(keys.machine_key(), keys.did(), None, Some(keys.field_key())).unwrap();
    let cases = [
        PackageCase::load("gps_basic"),
        PackageCase::load("nested_precedence"),
    ];

    let mut group = c.benchmark_group("package-sign");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    for case in &cases {
        group.bench_function(case.name, |b| {
            b.iter(|| case.sign(&signer, case.sequence_number))
        });
    }
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for case in &cases {
        group.bench_function(
            format!("{}/batch-{BATCH_THREADS}-threads", case.name),
            |b| b.iter(|| split(BATCH, BATCH_THREADS, |i| drop(case.sign(&signer, i as u64)))),
        );
    }
    group.finish();

    // Verify the reference's own packages, and ours built with the same rules.
    let dir = fixtures().join("packages");
    let fixture_packages: Vec<(String, DataPackage)> = package_names()
        .into_iter()
        .map(|name| {
            let pkg = DataPackage::from_json(&read_json(&dir.join(format!("{name}.package.json"))))
                .unwrap();
            assert!(pkg.verify().is_valid(), "{name} verifies");
            (name, pkg)
        })
        .collect();
    let mut group = c.benchmark_group("package-verify");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    for (name, pkg) in &fixture_packages {
        if name == "gps_basic" || name == "nested_precedence" {
            group.bench_function(name.as_str(), |b| b.iter(|| pkg.verify()));
        }
    }
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function(format!("all-fixtures/batch-{BATCH_THREADS}-threads"), |b| {
        b.iter(|| {
            split(BATCH, BATCH_THREADS, |i| {
                let (_, pkg) = &fixture_packages[i % fixture_packages.len()];
                assert!(pkg.verify().is_valid());
            })
        })
    });
    group.finish();
}

fn bench_rewrap(c: &mut Criterion) {
    let keys = Keys::load();
    // A small chain: re-wrapping does not look at the ciphertext.
    let chunks = build_chunks(&keys, &input(4 * 262_144));
    let envelope = &chunks[1].envelope;
    let owner = keys.secret("owner");
    let buyer = Buyer::new(BUYER_ID, keys.text("buyer", "publicKeyHex")).unwrap();

    let mut group = c.benchmark_group("rewrap");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    group.bench_function("grant_entry", |b| {
        b.iter(|| grant_entry(envelope, &owner, &buyer).unwrap())
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function(format!("grant_entry/batch-{BATCH_THREADS}-threads"), |b| {
        b.iter(|| {
            split(BATCH, BATCH_THREADS, |i| {
                let env = &chunks[i % chunks.len()].envelope;
                drop(grant_entry(env, &owner, &buyer).unwrap());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_chain, bench_packages, bench_rewrap);
criterion_main!(benches);

/// Decrypts every item (no verification: the decrypt benchmark) and
/// returns the plaintext bytes.
fn decrypt_all(
    items: Vec<Result<ChainItem, Infallible>>,
    owner: &Arc<sealstream_core::keys::RecipientSecretKey>,
    parallelism: usize,
) -> u64 {
    let options = ChainReaderOptions {
        verify: false,
        parallelism,
        ..ChainReaderOptions::default()
    };
    let mut reader = ChainReader::new(items, Arc::clone(owner), options);
    while let Some(plaintext) = reader.next_chunk().unwrap() {
        std::hint::black_box(plaintext);
    }
    reader.finish().unwrap().bytes
}
