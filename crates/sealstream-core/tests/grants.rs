//! Grants made on several threads: the same entries, in chain order, as
//! one thread makes, each opening to the chunk's committed key; the first
//! failure in chain order is the one reported, whichever thread meets it.
//! A `GrantStream` cuts the same access files as one thread does.

use std::sync::Arc;

use sealstream_core::access::{
    grant_entries_as, grant_entry, AccessFile, AccessFileBuilder, Buyer, GrantError, GrantStream,
};
use sealstream_core::chunk::{
    recipient_type, ChainConfig, ChainState, ChainWriter, ChunkEnvelope, Recipient, SealedChunk,
};
use sealstream_core::keys::{ChainSigningKey, RecipientSecretKey};
use sha2::{Digest, Sha256};

fn chain(
    n: usize,
    owner: &RecipientSecretKey,
    operator: &RecipientSecretKey,
) -> Vec<ChunkEnvelope> {
    let mut config = ChainConfig::new(
        ChainSigningKey::generate(),
        "did:peaq:0x0000000000000000000000000000000000000001",
        "did:peaq:0x0000000000000000000000000000000000000001#keys-1",
        vec![
            Recipient::new("owner-1", "owner", owner.public_key()),
            Recipient::new("operator-1", "operator", operator.public_key()),
        ],
    );
    config.parallelism = 2;
    let mut sealed = Vec::new();
    let mut writer = ChainWriter::new(config, ChainState::new(), |c: SealedChunk| {
        sealed.push(c.envelope);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    for i in 0..n {
        writer
            .seal_chunk(format!("reading {i}").into_bytes())
            .unwrap();
    }
    let _ = writer.finish().unwrap();
    sealed
}

#[test]
fn threads_grant_what_one_thread_grants_in_chain_order() {
    let (owner, operator) = (
        RecipientSecretKey::generate(),
        RecipientSecretKey::generate(),
    );
    let envelopes = chain(40, &owner, &operator);
    let buyer_key = RecipientSecretKey::generate();
    let buyer = Buyer::new("buyer-1", &buyer_key.public_key().to_hex()).unwrap();
    for (kind, secret) in [
        (recipient_type::OWNER, &owner),
        (recipient_type::OPERATOR, &operator),
    ] {
        let one = grant_entries_as(&envelopes, kind, secret, &buyer, 1).unwrap();
        let four = grant_entries_as(&envelopes, kind, secret, &buyer, 4).unwrap();
        assert_eq!(one.len(), 40);
        for ((a, b), envelope) in one.iter().zip(&four).zip(&envelopes) {
            assert_eq!(a.chunk_id, envelope.chunk_id);
            assert_eq!(b.chunk_id, envelope.chunk_id);
            for entry in [a, b] {
                let sealed = hex::decode(&entry.buyer.wrapped_key_hex).unwrap();
                let key = sealstream_core::sealed_box::open(&sealed, &buyer_key).unwrap();
                let commitment = format!("sha256:{}", hex::encode(Sha256::digest(&key[..])));
                assert_eq!(commitment, envelope.encryption.key_commitment);
            }
        }
    }
}

#[test]
fn the_first_failure_in_chain_order_is_reported() {
    let (owner, operator) = (
        RecipientSecretKey::generate(),
        RecipientSecretKey::generate(),
    );
    let mut envelopes = chain(40, &owner, &operator);
    let other = RecipientSecretKey::generate();
    for index in [30, 17] {
        // Chunk `index`'s operator entry wrapped for somebody else.
        let forged = chain(1, &other, &other).remove(0);
        let entry = envelopes[index]
            .encryption
            .key_recipients
            .iter_mut()
            .find(|r| r.recipient_type == recipient_type::OPERATOR)
            .unwrap();
        entry.wrapped_key_hex = forged.encryption.key_recipients[1].wrapped_key_hex.clone();
    }
    let buyer = Buyer::new("buyer-1", &other.public_key().to_hex()).unwrap();
    for threads in [1, 2, 4, 8] {
        assert_eq!(
            grant_entries_as(
                &envelopes,
                recipient_type::OPERATOR,
                &operator,
                &buyer,
                threads
            ),
            Err(GrantError::Unwrap {
                index: 17,
                recipient_type: "operator"
            })
        );
    }
    // The owner's entries are intact.
    assert!(grant_entries_as(&envelopes, recipient_type::OWNER, &owner, &buyer, 4).is_ok());
}

/// Names and chunk ids of access files (the wrapped keys are random).
fn shape(files: &[AccessFile]) -> Vec<(String, Vec<String>)> {
    files
        .iter()
        .map(|f| {
            let ids = f.entries.iter().map(|e| e.chunk_id.clone()).collect();
            (f.file_name.clone(), ids)
        })
        .collect()
}

#[test]
fn a_grant_stream_cuts_the_files_one_thread_cuts() {
    let owner = RecipientSecretKey::generate();
    let envelopes = chain(40, &owner, &RecipientSecretKey::generate());
    let buyer_key = RecipientSecretKey::generate();
    let buyer = Buyer::new("buyer-1", &buyer_key.public_key().to_hex()).unwrap();
    let mut builder = AccessFileBuilder::new(&buyer, 2048).unwrap();
    let mut expected = Vec::new();
    for e in &envelopes {
        expected.extend(builder.push(grant_entry(e, &owner, &buyer).unwrap()));
    }
    expected.extend(builder.finish());
    assert!(expected.len() > 3, "the files must be cut");
    let owner = Arc::new(owner);
    for threads in [1, 4] {
        let grant = GrantStream::new(Arc::clone(&owner), &buyer, 2048, threads).unwrap();
        let (mut files, mut progress) = (Vec::new(), 0);
        let chunks = grant
            .run(
                envelopes.iter().cloned().map(Ok::<_, GrantError>),
                &mut |f| {
                    files.push(f);
                    Ok(())
                },
                &mut |n| progress += n,
            )
            .unwrap();
        assert_eq!((chunks, progress), (40, 40));
        assert_eq!(shape(&files), shape(&expected), "{threads} threads");
    }
    assert!(GrantStream::new(Arc::clone(&owner), &buyer, 0, 2).is_err());
}

#[test]
fn a_grant_stream_stops_at_the_first_error_in_chain_order() {
    let owner = RecipientSecretKey::generate();
    let mut envelopes = chain(40, &owner, &RecipientSecretKey::generate());
    let other = RecipientSecretKey::generate();
    // Chunk 9's owner entry wrapped for somebody else.
    let forged = chain(1, &other, &other).remove(0);
    envelopes[9].encryption.key_recipients[0].wrapped_key_hex =
        forged.encryption.key_recipients[0].wrapped_key_hex.clone();
    let buyer = Buyer::new("buyer-1", &other.public_key().to_hex()).unwrap();
    let owner = Arc::new(owner);
    let grant = GrantStream::new(Arc::clone(&owner), &buyer, 512_000, 4).unwrap();
    let mut progress = 0;
    let result = grant.run(
        envelopes.iter().cloned().map(Ok::<_, GrantError>),
        &mut |_| Ok(()),
        &mut |n| progress += n,
    );
    assert_eq!(
        result,
        Err(GrantError::Unwrap {
            index: 9,
            recipient_type: "owner"
        })
    );
    assert_eq!(progress, 9);
    // The source's own error stops it too, before any file is complete.
    let grant = GrantStream::new(owner, &buyer, 512_000, 4).unwrap();
    let source = envelopes[..3]
        .iter()
        .cloned()
        .map(Ok)
        .chain([Err(GrantError::KeyCommitment { index: 3 })]);
    let mut files = 0;
    let result = grant.run(
        source,
        &mut |_| {
            files += 1;
            Ok(())
        },
        &mut |_| {},
    );
    assert_eq!(result, Err(GrantError::KeyCommitment { index: 3 }));
    assert_eq!(files, 0);
}
