//! What a signed dataset adds to publishing: the Merkle root over the chunk
//! ids (computed as chunks are written) and the manifest's signatures, on a
//! 256 MiB input with the default 256 KiB chunks, against the same chain
//! without them. Also the cost of one inclusion proof.
//!
//! `cargo bench -p sealstream-core --bench dataset`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sealstream_core::chunk::{ChainConfig, ChainState, ChainWriter, SealedChunk};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo, InclusionProof};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};

const INPUT: usize = 256 << 20;

fn config(chain: &ChainSigningKey, did: &str) -> ChainConfig {
    let r = || RecipientSecretKey::generate().public_key();
    ChainConfig::new(
        ChainSigningKey::from_hex(&chain.to_hex_secret(), "k").unwrap(),
        did,
        &format!("{did}#keys-1"),
        ChainConfig::default_recipients(r(), r(), r()),
    )
}

fn publish(
    input: &[u8],
    chain: &ChainSigningKey,
    machine: &MachineSigningKey,
    with_dataset: bool,
) -> usize {
    let did = Did::of_key(machine).to_string();
    let mut dataset = DatasetBuilder::new();
    let mut bytes = 0usize;
    let sink = |c: SealedChunk| -> Result<(), ()> {
        if with_dataset {
            dataset.push(&c.envelope).unwrap();
        }
        bytes += c.ciphertext.len();
        Ok(())
    };
    let mut w = ChainWriter::new(config(chain, &did), ChainState::new(), sink).unwrap();
    w.write(input).unwrap();
    let (summary, _sink) = w.finish().unwrap();
    if with_dataset {
        let info = DatasetInfo {
            source_hash: summary.source_hash,
            chunk_size: 262_144,
            ..DatasetInfo::default()
        };
        let mut m = dataset.finish(info).unwrap();
        m.sign_eip191(machine).unwrap();
        m.sign_ed25519(chain).unwrap();
        criterion::black_box(m.to_pretty_json());
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let input: Vec<u8> = (0..INPUT).map(|i| (i as u8).wrapping_mul(31)).collect();
    let chain = ChainSigningKey::generate();
    let machine = MachineSigningKey::generate();
    let mut g = c.benchmark_group("publish_256MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(INPUT as u64));
    g.bench_function("chain", |b| {
        b.iter(|| publish(&input, &chain, &machine, false))
    });
    g.bench_function("chain_with_signed_dataset", |b| {
        b.iter(|| publish(&input, &chain, &machine, true))
    });
    g.finish();

    let ids: Vec<String> = (0..1024u32).map(|i| format!("0x{}", hex_of(i))).collect();
    let mut g = c.benchmark_group("inclusion_proof");
    g.bench_function("one_proof_1024_chunks", |b| {
        b.iter(|| InclusionProof::build(&ids, 0, 517).unwrap())
    });
    g.finish();
}

fn hex_of(i: u32) -> String {
    format!("{:064x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15)
}

criterion_group!(benches, bench);
criterion_main!(benches);
