//! Criterion benchmarks of the hot paths: chunk chains (build, verify,
//! decrypt), signed packages with field rules (sign, verify) and buyer
//! re-wraps. See BENCHMARKS.md at the repository root for the figures.
//!
//! Inputs are the reference fixtures (`fixtures/peaq-stream-v1`, or
//! `SEALSTREAM_FIXTURES`); chain benchmarks use 64 MiB of in-memory data.
//! `SEALSTREAM_BENCH_MIB` changes the chain size.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sealstream_core::access::{grant_entry, Buyer};
use sealstream_core::chunk::{
    recipient_type, verify_chain, ChainItem, ChainReader, ChainReaderOptions, ChainState,
    ChainWriter, SealedChunk,
};
use sealstream_core::package::{DataPackage, PackageSigner};
use sealstream_core::pool::default_parallelism;
use sealstream_testkit::chain::{reader_items, verify_items, xorshift_bytes};
use sealstream_testkit::fixture::{package_names, read_json, FixtureKeys, PackageCase, BUYER_ID};
use sealstream_testkit::fixtures;

/// Packages (or re-wraps) per iteration of the two-thread batch benchmarks.
const BATCH: usize = 2_000;
/// Threads of the batch benchmarks (the target machine has two cores).
const BATCH_THREADS: usize = 2;

fn chain_mib() -> usize {
    std::env::var("SEALSTREAM_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

/// Build a chain with `parallelism` workers, giving every chunk to `sink`.
fn build_chain<F>(keys: &FixtureKeys, data: &[u8], parallelism: usize, sink: F) -> u64
where
    F: FnMut(SealedChunk) -> Result<(), Infallible>,
{
    let mut writer =
        ChainWriter::new(keys.chain_config(parallelism), ChainState::new(), sink).unwrap();
    writer.copy_from(data).unwrap();
    let (summary, _) = writer.finish().unwrap();
    summary.bytes
}

fn build_chunks(keys: &FixtureKeys, data: &[u8]) -> Vec<SealedChunk> {
    let mut chunks = Vec::new();
    build_chain(keys, data, default_parallelism(), |c: SealedChunk| {
        chunks.push(c);
        Ok(())
    });
    chunks
}

fn bench_chain(c: &mut Criterion) {
    let keys = FixtureKeys::load();
    let data = xorshift_bytes(chain_mib() << 20);
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
            || verify_items(&chunks),
            |items| verify_chain(items, 2).unwrap().unwrap(),
            BatchSize::PerIteration,
        )
    });

    let owner = Arc::new(keys.secret("owner"));
    group.bench_function(format!("decrypt/{}MiB/2-threads", chain_mib()), |b| {
        b.iter_batched(
            || {
                reader_items(&chunks, |e| {
                    e.recipient_of_type(recipient_type::OWNER).unwrap()
                })
            },
            |items| decrypt_all(items, &owner, 2),
            BatchSize::PerIteration,
        )
    });
    group.finish();
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
    let keys = FixtureKeys::load();
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
        group.bench_function(&case.name, |b| {
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
    let keys = FixtureKeys::load();
    // A small chain: re-wrapping does not look at the ciphertext.
    let chunks = build_chunks(&keys, &xorshift_bytes(4 * 262_144));
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
