//! The receipt log's costs (issue 21): the primitives a proof is made of
//! (ristretto255 decompression and compression, one node's combination, a
//! commitment) and a period-total proof made and verified over logs of
//! 1,000, 10,000 and 100,000 receipts — what the market does per request
//! (`GET /v1/receipt-log/total`, which also signs a head over the same
//! leaves) and what `market audit verify-total` does.
//!
//! `cargo bench -p sealstream-api --bench receipt_log`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use rand_core::OsRng;
use sealstream_api::receipts::log::{
    commit, random_blinding, LeafOpening, LogHead, LogLeaf, SumNode, TotalProof, MARKET_LOG,
};
use sealstream_core::keys::ReceiptSigningKey;
use sealstream_core::merkle::TreeNode;
use sha2::{Digest, Sha256};

const CURRENCIES: [&str; 3] = ["invoice:EUR:2", "invoice:USD:2", "evm:8453:native:18"];

fn log(n: usize) -> (Vec<LeafOpening>, Vec<SumNode>) {
    let openings: Vec<LeafOpening> = (0..n)
        .map(|i| {
            let currency = CURRENCIES[i % 3].to_string();
            let amount = 1_000 + (i as u128 * 7_919) % 1_000_000;
            let blinding = random_blinding(&mut OsRng);
            LeafOpening {
                leaf: LogLeaf {
                    epoch: 1_000 + i as u64 / 50,
                    receipt_digest: Sha256::digest(i.to_be_bytes()).into(),
                    commitment: commit(&currency, amount, &blinding).compress(),
                },
                currency,
                amount,
                blinding,
            }
        })
        .collect();
    let nodes = openings.iter().map(|o| o.leaf.node().unwrap()).collect();
    (openings, nodes)
}

fn time(epoch: u64) -> String {
    sealstream_core::utc::format_seconds((epoch * 3600) as i64)
}

fn primitives(c: &mut Criterion) {
    let (openings, nodes) = log(2);
    let point = openings[0].leaf.commitment;
    let decompressed = point.decompress().unwrap();
    let mut g = c.benchmark_group("receipt_log_primitives");
    g.bench_function("ristretto_decompress", |b| {
        b.iter(|| black_box(point).decompress())
    });
    g.bench_function("ristretto_compress", |b| {
        b.iter(|| black_box(decompressed).compress())
    });
    g.bench_function("node_combine", |b| {
        b.iter(|| SumNode::combine(black_box(&nodes[0]), black_box(&nodes[1])))
    });
    g.bench_function("leaf_node", |b| {
        b.iter(|| black_box(&openings[0].leaf).node())
    });
    g.bench_function("commit", |b| {
        b.iter(|| commit(black_box("invoice:EUR:2"), 12_345, &openings[0].blinding))
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let key = ReceiptSigningKey::from_bytes(&[7u8; 32]);
    let mut g = c.benchmark_group("receipt_log_total");
    g.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        let (openings, _) = log(n);
        let last = openings.last().unwrap().leaf.epoch;
        let (from, to) = (
            time(1_000 + (last - 1_000) / 3),
            time(last - (last - 1_000) / 3),
        );
        // What the server does per request: the leaves' nodes, a head
        // signed over them, and the proof.
        g.bench_with_input(BenchmarkId::new("head_and_prove", n), &n, |b, _| {
            b.iter(|| {
                let nodes: Vec<SumNode> = openings.iter().map(|o| o.leaf.node().unwrap()).collect();
                let head = LogHead::of(MARKET_LOG, &nodes, 3600, &time(last + 10))
                    .sign(&key)
                    .unwrap();
                TotalProof::prove(head, &openings, &from, &to).unwrap()
            })
        });
        let nodes: Vec<SumNode> = openings.iter().map(|o| o.leaf.node().unwrap()).collect();
        let head = LogHead::of(MARKET_LOG, &nodes, 3600, &time(last + 10))
            .sign(&key)
            .unwrap();
        let proof = TotalProof::prove(head, &openings, &from, &to).unwrap();
        let text = proof.to_json_pretty();
        eprintln!(
            "n = {n}: {} items, {} bytes of JSON, {} receipts in the period",
            proof.items.len(),
            text.len(),
            proof.end - proof.start
        );
        g.bench_with_input(BenchmarkId::new("parse_and_verify", n), &n, |b, _| {
            b.iter(|| {
                TotalProof::parse(text.as_bytes())
                    .unwrap()
                    .verify(None)
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, primitives, proofs);
criterion_main!(benches);
