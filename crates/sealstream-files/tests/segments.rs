//! Consuming a dataset sold out of the middle of a chain (chunks 1..=2 of
//! 0..=3, as a market releases a dataset made by range): the segment starts
//! where its signed `dataset.json` says, links on from its first chunk, and
//! decrypts to exactly those chunks' plaintext. Without `dataset.json` the
//! directory is a chain missing chunk 0; a dataset signed by the machine's
//! owner needs that owner accepted as signer.

use std::path::Path;
use std::sync::Arc;

use sealstream_core::access::{grant_entry, AccessFileBuilder, Buyer};
use sealstream_core::chunk::{
    sha256_hex, ChainConfig, ChainState, ChainWriter, Recipient, SealedChunk,
};
use sealstream_core::dataset::{
    DatasetBuilder, DatasetInfo, DatasetManifest, DatasetMismatch, SignatureError,
};
use sealstream_core::identity::Did;
use sealstream_core::json::write::to_python_pretty;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_files::consume::{consume_to_file, ConsumeError, ConsumeRequest};
use sealstream_files::layout::{ciphertext_name, envelope_name, list_chain_from, ReadChainError};

const CHUNK: usize = 1000;

struct Chain {
    machine: MachineSigningKey,
    owner: RecipientSecretKey,
    chunks: Vec<SealedChunk>,
    data: Vec<u8>,
}

fn chain() -> Chain {
    let machine = MachineSigningKey::generate();
    let owner = RecipientSecretKey::generate();
    let did = Did::of_key(&machine).to_string();
    let mut config = ChainConfig::new(
        ChainSigningKey::generate(),
        &did,
        &format!("{did}#keys-1"),
        vec![Recipient::new("owner-1", "owner", owner.public_key())],
    );
    config.chunk_size = CHUNK;
    config.parallelism = 2;
    let data: Vec<u8> = (0..4 * CHUNK).map(|i| (i * 13 % 256) as u8).collect();
    let mut chunks = Vec::new();
    let mut w = ChainWriter::new(
        config,
        ChainState::new(),
        |c: SealedChunk| -> Result<(), ()> {
            chunks.push(c);
            Ok(())
        },
    )
    .unwrap();
    w.write(&data).unwrap();
    let (_summary, _sink) = w.finish().unwrap();
    assert_eq!(chunks.len(), 4);
    Chain {
        machine,
        owner,
        chunks,
        data,
    }
}

/// Chunks `range` of the chain in `dir/chunks`, the buyer's access files in
/// `dir/access`, and (when `signer` is given) `dataset.json` over them.
fn segment(
    c: &Chain,
    dir: &Path,
    range: std::ops::RangeInclusive<usize>,
    signer: Option<&MachineSigningKey>,
    buyer: &Buyer,
) {
    let chunks = dir.join("chunks");
    let access = dir.join("access");
    std::fs::create_dir_all(&chunks).unwrap();
    std::fs::create_dir_all(&access).unwrap();
    let mut builder = DatasetBuilder::new();
    let mut files = AccessFileBuilder::new(buyer, 512_000).unwrap();
    let mut written = Vec::new();
    for chunk in &c.chunks[range.clone()] {
        let e = &chunk.envelope;
        std::fs::write(
            chunks.join(envelope_name(e.index)),
            to_python_pretty(&e.to_json()),
        )
        .unwrap();
        std::fs::write(chunks.join(ciphertext_name(e.index)), &chunk.ciphertext).unwrap();
        builder.push(e).unwrap();
        written.extend(files.push(grant_entry(e, &c.owner, buyer).unwrap()));
    }
    written.extend(files.finish());
    for f in written {
        std::fs::write(access.join(&f.file_name), f.to_bytes()).unwrap();
    }
    if let Some(key) = signer {
        let plain = &c.data[range.start() * CHUNK..(range.end() + 1) * CHUNK];
        let mut m: DatasetManifest = builder
            .finish(DatasetInfo {
                topic: Some("/t".into()),
                source_hash: sha256_hex(plain),
                ..DatasetInfo::default()
            })
            .unwrap();
        if Did::of_key(key) == Did::of_key(&c.machine) {
            m.sign_eip191(key).unwrap();
        } else {
            m.sign_eip191_as(key);
        }
        std::fs::write(chunks.join("dataset.json"), to_python_pretty(&m.to_json())).unwrap();
    }
}

fn consume(
    dir: &Path,
    buyer_key: &RecipientSecretKey,
    signers: &[String],
) -> Result<Vec<u8>, ConsumeError> {
    let out = dir.join("out.bin");
    let request = ConsumeRequest {
        chunk_dir: &dir.join("chunks"),
        data_dir: &dir.join("chunks"),
        access_dir: &dir.join("access"),
        buyer_id: "buyer-1",
        buyer_key: Arc::new(RecipientSecretKey::from_hex(&buyer_key.to_hex_secret(), "k").unwrap()),
        verify: true,
        dataset_signers: signers,
        parallelism: 2,
    };
    consume_to_file(&request, &out, &mut |_| {}, &mut |_| {})?;
    Ok(std::fs::read(out).unwrap())
}

fn buyer() -> (RecipientSecretKey, Buyer) {
    let key = RecipientSecretKey::generate();
    let b = Buyer::new("buyer-1", &key.public_key().to_hex()).unwrap();
    (key, b)
}

#[test]
fn a_segment_with_its_dataset_consumes_to_exactly_its_chunks() {
    let c = chain();
    let (key, b) = buyer();
    let tmp = tempfile::tempdir().unwrap();
    segment(&c, tmp.path(), 1..=2, Some(&c.machine), &b);
    assert_eq!(
        consume(tmp.path(), &key, &[]).unwrap(),
        c.data[CHUNK..3 * CHUNK]
    );
    // Listed from its first index; a gap is named.
    assert_eq!(
        list_chain_from(&tmp.path().join("chunks"), 1)
            .unwrap()
            .len(),
        2
    );
    std::fs::remove_file(tmp.path().join("chunks").join(envelope_name(1))).unwrap();
    assert!(matches!(
        consume(tmp.path(), &key, &[]),
        Err(ConsumeError::Chain(ReadChainError::Missing {
            index: 1,
            ..
        }))
    ));
}

#[test]
fn without_its_dataset_a_segment_is_a_chain_missing_chunk_0() {
    let c = chain();
    let (key, b) = buyer();
    let tmp = tempfile::tempdir().unwrap();
    segment(&c, tmp.path(), 1..=2, None, &b);
    assert!(matches!(
        consume(tmp.path(), &key, &[]),
        Err(ConsumeError::Chain(ReadChainError::Missing {
            index: 0,
            ..
        }))
    ));
    assert!(!tmp.path().join("out.bin").exists());
}

#[test]
fn an_owner_signed_segment_needs_the_owner_accepted() {
    let c = chain();
    let (key, b) = buyer();
    let owner = MachineSigningKey::generate();
    let owner_did = Did::of_key(&owner).to_string();
    let tmp = tempfile::tempdir().unwrap();
    segment(&c, tmp.path(), 2..=3, Some(&owner), &b);
    match consume(tmp.path(), &key, &[]) {
        Err(ConsumeError::Dataset {
            mismatch: DatasetMismatch::Signature(SignatureError::Eip191Signer { signer, .. }),
            ..
        }) => assert_eq!(signer, owner_did),
        other => panic!("{other:?}"),
    }
    let stranger = Did::of_key(&MachineSigningKey::generate()).to_string();
    assert!(consume(tmp.path(), &key, &[stranger]).is_err());
    assert_eq!(
        consume(tmp.path(), &key, &[owner_did]).unwrap(),
        c.data[2 * CHUNK..]
    );
}

#[test]
fn a_segment_cannot_pass_for_another_range() {
    // dataset.json of chunks 1..=2 beside chunks 2..=3: the first chunk is
    // not the one the dataset starts with.
    let c = chain();
    let (key, b) = buyer();
    let tmp = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    segment(&c, other.path(), 1..=2, Some(&c.machine), &b);
    segment(&c, tmp.path(), 2..=3, None, &b);
    std::fs::copy(
        other.path().join("chunks/dataset.json"),
        tmp.path().join("chunks/dataset.json"),
    )
    .unwrap();
    assert!(consume(tmp.path(), &key, &[]).is_err());
    assert!(!tmp.path().join("out.bin").exists());
}
