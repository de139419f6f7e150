//! Tampering with chunk chains: every change to a ciphertext or to an
//! envelope field that peaq.stream v1 protects is detected, at the right
//! chunk index and for the right reason.
//!
//! Verification (no keys) checks, per chunk and in this order (src/chunk/verify.rs,
//! the reference's `verify_chunk_chain`): index is the position, previousChunkId
//! links, ciphertext present, ciphertext hashes to encryptedDataHash, chunkId
//! recomputes, machineDid/keyId non-blank, publicKeyHex/value parse, Ed25519
//! signature over encryptedDataHash. Decryption (src/chunk/decrypt.rs) checks:
//! cipher name, nonce, unwrap, keyCommitment, AEAD tag, plaintextHash.
//!
//! What v1 does NOT protect (peaq-stream-v1.md §6), so is not asserted as detected:
//! - `storageRef`: not hashed, not signed and not part of the chunk id; anyone
//!   can rewrite it and the chain still verifies and decrypts. A reader must not
//!   trust it for anything but locating the ciphertext, whose hash is checked.
//! - `signature.algorithm`, non-blank changes of `signature.machineDid` /
//!   `signature.keyId`, and the metadata of key recipients (`recipientId`,
//!   `recipientType`, `algorithm`, `publicKeyHex`): unsigned, ignored by the
//!   reference's verifier too (pinned by `unsigned_metadata_is_outside_v1_integrity`).
//! - Dropping the tail of a chain, or reordering chunks and recomputing index,
//!   previousChunkId and chunkId: only the ciphertext hash is signed.

use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;

use sealstream_core::chunk::{
    compute_chunk_id, decrypt_chunk, sha256_hex, verify_chain, ChainConfig, ChainReadError,
    ChainReader, ChainReaderOptions, ChainState, ChainVerifier, ChainWriter, ChunkEnvelope,
    DecryptError, EnvelopeParseError, SealedChunk, VerifyError, VerifyReason, TAG_LEN,
};
use sealstream_core::keys::{ChainSigningKey, RecipientSecretKey};
use sealstream_testkit::chain::reader_items;

// Test-only keys of fixtures/peaq-stream-v1/keys.json.
const CHAIN_SK: &str = "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f";
const OWNER_SK: &str = "51b48b68b1a9f4a820f7fb161053d09345b11e4eef1b81b2847556789e0db8e3";
const OPERATOR_SK: &str = "55d2dd87b598809c409f62265dc90af21da7e0d6324be3ce02fe2f176cc42494";
const MACHINE_SK: &str = "d0902044283b808dda950c8e58a2f0336b8a6ce6916e358a6497d17a32c6d6b4";
const STRANGER_SK: &str = "d356d600ed0d3dc0242282228afafceed4cfd3e88061eaf7580808e618293b86";
const MACHINE_DID: &str = "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1";

/// The owner, operator and machine keys, in envelope recipient order.
fn recipient_keys() -> Vec<Arc<RecipientSecretKey>> {
    [OWNER_SK, OPERATOR_SK, MACHINE_SK]
        .iter()
        .map(|hex| Arc::new(RecipientSecretKey::from_hex(hex, "recipient").unwrap()))
        .collect()
}

/// Deterministic, non-repeating test input.
fn input(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Write `data` as a chain of `chunk_size` slices, in memory.
fn build_chain(data: &[u8], chunk_size: usize) -> Vec<SealedChunk> {
    let keys = recipient_keys();
    let recipients = ChainConfig::default_recipients(
        keys[0].public_key(),
        keys[1].public_key(),
        keys[2].public_key(),
    );
    let mut config = ChainConfig::new(
        ChainSigningKey::from_hex(CHAIN_SK, "chain").unwrap(),
        MACHINE_DID,
        &format!("{MACHINE_DID}#keys-1"),
        recipients,
    );
    config.chunk_size = chunk_size;
    config.parallelism = 2;
    let mut chunks = Vec::new();
    let sink = |c: SealedChunk| {
        chunks.push(c);
        Ok::<(), Infallible>(())
    };
    let mut writer = ChainWriter::new(config, ChainState::new(), sink).unwrap();
    writer.write(data).unwrap();
    let summary = writer.finish().unwrap().0;
    assert_eq!(summary.chunks as usize, chunks.len());
    chunks
}

/// Verify with the parallel `verify_chain` and the sequential `ChainVerifier`,
/// which must agree.
fn verify(chunks: &[SealedChunk]) -> Result<ChainState, VerifyError> {
    verify_items(
        chunks
            .iter()
            .map(|c| (c.envelope.clone(), Some(c.ciphertext.clone())))
            .collect(),
    )
}

fn verify_items(items: Vec<(ChunkEnvelope, Option<Vec<u8>>)>) -> Result<ChainState, VerifyError> {
    let mut sequential = ChainVerifier::new();
    let mut seq_result = Ok(());
    for (env, ct) in &items {
        seq_result = sequential.push(env, ct.as_deref());
        if seq_result.is_err() {
            break;
        }
    }
    let seq_result = seq_result.and_then(|()| sequential.finish());
    let parallel = verify_chain(items.into_iter().map(Ok::<_, Infallible>), 2).unwrap();
    assert_eq!(
        parallel, seq_result,
        "verify_chain and ChainVerifier disagree"
    );
    parallel
}

fn fails_at(index: u64, reason: VerifyReason) -> Result<ChainState, VerifyError> {
    Err(VerifyError { index, reason })
}

/// Decrypt the whole chain with recipient `who`'s entry and key.
fn decrypt(chunks: &[SealedChunk], who: usize) -> Result<Vec<u8>, (u64, DecryptError)> {
    let key = recipient_keys().swap_remove(who);
    let items = reader_items(chunks, |e| &e.encryption.key_recipients[who]);
    // Decryption alone: what it catches without the chain's verification.
    let options = ChainReaderOptions {
        verify: false,
        parallelism: 2,
        ..ChainReaderOptions::default()
    };
    let mut reader = ChainReader::new(items, key, options);
    let mut out = Vec::new();
    loop {
        match reader.next_chunk() {
            Ok(Some(plaintext)) => out.extend_from_slice(&plaintext),
            Ok(None) => break,
            Err(ChainReadError::Decrypt { index, error }) => return Err((index, error)),
            Err(e) => panic!("unexpected chain reader error: {e}"),
        }
    }
    let summary = reader.finish().unwrap();
    assert_eq!(summary.bytes as usize, out.len());
    assert_eq!(summary.output_hash, sha256_hex(&out));
    Ok(out)
}

/// Envelope text round trip, so every mutation is one a file could carry.
fn reparse(env: &ChunkEnvelope) -> ChunkEnvelope {
    let back = ChunkEnvelope::parse(env.to_pretty_json().as_bytes()).unwrap();
    assert_eq!(&back, env);
    back
}

/// Change one hex digit at `pos` (counted from the end when negative) to another.
fn alter_hex(s: &str, pos: isize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let i = if pos < 0 {
        chars.len() - pos.unsigned_abs()
    } else {
        pos as usize
    };
    chars[i] = if chars[i] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

/// Positions to flip in a ciphertext of `len` bytes: all of them if short,
/// else at least 64 spread ones including the first, the last and every tag byte.
fn flip_positions(len: usize) -> Vec<usize> {
    if len <= 300 {
        return (0..len).collect();
    }
    let mut positions: Vec<usize> = (0..64).map(|i| i * (len - 1) / 63).collect();
    positions.extend(len - TAG_LEN..len);
    positions.extend([1, len - TAG_LEN - 1, len / 2]);
    positions.sort_unstable();
    positions.dedup();
    assert!(positions.len() >= 64);
    positions
}

#[test]
fn untouched_chains_verify_and_decrypt_for_every_recipient() {
    for (len, chunk_size) in [(0, 64), (1, 64), (64, 64), (3 * 48 + 5, 48), (9000, 4096)] {
        let data = input(len);
        let chunks = build_chain(&data, chunk_size);
        assert_eq!(chunks.len(), len.div_ceil(chunk_size).max(1));
        let state = verify(&chunks).unwrap();
        assert_eq!(state, ChainState::after(&chunks.last().unwrap().envelope));
        for who in 0..3 {
            assert_eq!(decrypt(&chunks, who).unwrap(), data, "recipient {who}");
        }
    }
}

/// Check a flipped/truncated/extended ciphertext at chunk `k`: verification
/// reports HashMismatch at `k`; with encryptedDataHash and chunkId "fixed up"
/// the signature no longer holds, and decryption fails with Cipher.
fn check_bad_ciphertext(chunks: &[SealedChunk], k: usize, bad: Vec<u8>, what: &str) {
    let mut tampered = chunks.to_vec();
    tampered[k].ciphertext = bad;
    assert_eq!(
        verify(&tampered),
        fails_at(k as u64, VerifyReason::HashMismatch),
        "{what}"
    );
    let hash = sha256_hex(&tampered[k].ciphertext);
    let env = &mut tampered[k].envelope;
    env.encrypted_data_hash = hash;
    env.chunk_id = compute_chunk_id(
        env.previous_chunk_id.as_deref(),
        &env.encrypted_data_hash,
        env.index,
    );
    assert_eq!(
        verify(&tampered),
        fails_at(k as u64, VerifyReason::InvalidSignature),
        "{what}, hash fixed up"
    );
    let owner = recipient_keys().swap_remove(0);
    let env = &tampered[k].envelope;
    assert_eq!(
        decrypt_chunk(
            env,
            &env.encryption.key_recipients[0],
            &owner,
            tampered[k].ciphertext.clone()
        ),
        Err(DecryptError::Cipher),
        "{what}, hash fixed up"
    );
}

#[test]
fn every_flipped_ciphertext_byte_is_a_hash_mismatch_at_its_chunk() {
    // Ciphertexts of 64, 64, 64 and 21 bytes (slice + 16-byte tag).
    let chunks = build_chain(&input(3 * 48 + 5), 48);
    assert_eq!(chunks.len(), 4);
    for k in 0..chunks.len() {
        let len = chunks[k].ciphertext.len();
        for pos in 0..len {
            for mask in [0x01u8, 0x80] {
                let mut bad = chunks[k].ciphertext.clone();
                bad[pos] ^= mask;
                check_bad_ciphertext(
                    &chunks,
                    k,
                    bad,
                    &format!("chunk {k} byte {pos} ^ {mask:#x}"),
                );
            }
        }
    }
}

#[test]
fn flipped_bytes_of_large_ciphertexts_are_detected() {
    // Ciphertexts of 4112, 4112 and 116 bytes.
    let chunks = build_chain(&input(2 * 4096 + 100), 4096);
    assert_eq!(chunks.len(), 3);
    for k in 0..chunks.len() {
        let len = chunks[k].ciphertext.len();
        for pos in flip_positions(len) {
            let mut bad = chunks[k].ciphertext.clone();
            bad[pos] ^= 0x40;
            check_bad_ciphertext(&chunks, k, bad, &format!("chunk {k} byte {pos}/{len}"));
        }
    }
}

#[test]
fn truncated_and_extended_ciphertexts_are_detected() {
    let chunks = build_chain(&input(3 * 48 + 5), 48);
    for k in 0..chunks.len() {
        let ct = &chunks[k].ciphertext;
        let mut cases: Vec<(String, Vec<u8>)> = vec![
            ("truncated by one".into(), ct[..ct.len() - 1].to_vec()),
            ("tag only".into(), ct[ct.len() - TAG_LEN..].to_vec()),
            ("shorter than a tag".into(), ct[..TAG_LEN - 1].to_vec()),
            ("empty".into(), Vec::new()),
            ("tag removed".into(), ct[..ct.len() - TAG_LEN].to_vec()),
        ];
        let mut longer = ct.clone();
        longer.push(0);
        cases.push(("one byte appended".into(), longer));
        for (what, bad) in cases {
            check_bad_ciphertext(&chunks, k, bad, &format!("chunk {k}: {what}"));
        }
    }
}

#[test]
fn missing_or_misplaced_ciphertexts_are_detected() {
    let chunks = build_chain(&input(3 * 48 + 5), 48);
    for k in 0..chunks.len() {
        let mut items: Vec<_> = chunks
            .iter()
            .map(|c| (c.envelope.clone(), Some(c.ciphertext.clone())))
            .collect();
        items[k].1 = None;
        assert_eq!(
            verify_items(items),
            fails_at(k as u64, VerifyReason::MissingCiphertext),
            "chunk {k}"
        );
        // The next chunk's ciphertext in place of this one.
        let mut tampered = chunks.clone();
        tampered[k].ciphertext = chunks[(k + 1) % chunks.len()].ciphertext.clone();
        assert_eq!(
            verify(&tampered),
            fails_at(k as u64, VerifyReason::HashMismatch),
            "chunk {k}"
        );
    }
}

/// What a change to an envelope field must lead to.
#[derive(Clone, Debug)]
enum Expect {
    /// Verification fails at the changed chunk for this reason.
    Verify(VerifyReason),
    /// Verification passes; decryption with any recipient fails at the changed chunk.
    DecryptAll(DecryptError),
    /// Verification passes; decryption with these recipients fails at the
    /// changed chunk, the others still decrypt everything.
    DecryptSome(Vec<usize>, DecryptError),
}

/// A named change to an envelope.
type Change = (&'static str, Box<dyn Fn(&mut ChunkEnvelope)>);

type Mutation = (String, Box<dyn Fn(&mut ChunkEnvelope)>, Expect);

fn mutation(name: &str, f: impl Fn(&mut ChunkEnvelope) + 'static, expect: Expect) -> Mutation {
    (name.to_string(), Box::new(f), expect)
}

/// One change to a text field of an envelope.
#[derive(Clone)]
enum Edit {
    /// Another hex digit at this position ([`alter_hex`]).
    Digit(isize),
    /// The empty string.
    Clear,
    /// Upper case.
    Upper,
    /// Without its first `n` characters (a prefix such as `0x`).
    DropPrefix(usize),
    /// Cut to `n` characters.
    Truncate(usize),
    /// One character less.
    Pop,
    /// With this appended.
    Push(&'static str),
    /// The first character replaced by this.
    First(&'static str),
    /// This value instead.
    Set(String),
}

impl Edit {
    fn apply(&self, text: &mut String) {
        match self {
            Edit::Digit(pos) => *text = alter_hex(text, *pos),
            Edit::Clear => text.clear(),
            Edit::Upper => *text = text.to_uppercase(),
            Edit::DropPrefix(n) => *text = text[*n..].to_string(),
            Edit::Truncate(n) => text.truncate(*n),
            Edit::Pop => {
                text.pop();
            }
            Edit::Push(tail) => text.push_str(tail),
            Edit::First(head) => text.replace_range(0..1, head),
            Edit::Set(value) => *text = value.clone(),
        }
    }
}

/// Labelled edits of one field.
type Edits = Vec<(&'static str, Edit)>;

/// The text field of an envelope that `field` names.
type Field = Rc<dyn Fn(&mut ChunkEnvelope) -> &mut String>;

/// A [`Field`] from a closure, with the lifetimes a field accessor has.
fn field(get: impl Fn(&mut ChunkEnvelope) -> &mut String + 'static) -> Field {
    Rc::new(get)
}

/// The mutations of text field `name` by each of `edits` (a label and the
/// edit), all expected to lead to `expect`.
fn field_mutations(name: &str, get: &Field, edits: Edits, expect: Expect) -> Vec<Mutation> {
    edits
        .into_iter()
        .map(|(label, edit)| {
            let get = Rc::clone(get);
            mutation(
                &format!("{name} {label}"),
                move |e| edit.apply(get(e)),
                expect.clone(),
            )
        })
        .collect()
}

/// Every protected field of chunk `k` of `chunks`, changed in several ways,
/// with the outcome the order of checks gives.
fn mutations(chunks: &[SealedChunk], k: usize) -> Vec<Mutation> {
    use DecryptError as D;
    use Edit::*;
    use Expect::{DecryptAll, DecryptSome, Verify};
    use VerifyReason as V;
    let other = chunks[(k + 1) % chunks.len()].envelope.clone();
    let stranger_pk = RecipientSecretKey::from_hex(STRANGER_SK, "stranger")
        .unwrap()
        .public_key()
        .to_hex();
    let owner_chain_pk = ChainSigningKey::from_hex(OWNER_SK, "other")
        .unwrap()
        .public_key()
        .to_hex();
    let mut m = Vec::new();
    // chunkId: linkage is fine, the id does not recompute.
    m.extend(field_mutations(
        "chunkId",
        &field(|e| &mut e.chunk_id),
        vec![
            ("last digit", Digit(-1)),
            ("first digit", Digit(2)),
            ("empty", Clear),
            ("upper case", Upper),
            ("without 0x", DropPrefix(2)),
            ("of another chunk", Set(other.chunk_id.clone())),
        ],
        Verify(V::ChunkIdMismatch),
    ));
    // index: reported as not sequential, with the index found.
    m.extend([
        mutation(
            "index + 1",
            |e| e.index += 1,
            Verify(V::IndexNotSequential {
                found: k as u64 + 1,
            }),
        ),
        mutation(
            "index + 1000",
            |e| e.index += 1000,
            Verify(V::IndexNotSequential {
                found: k as u64 + 1000,
            }),
        ),
        mutation(
            "index max",
            |e| e.index = u64::MAX,
            Verify(V::IndexNotSequential { found: u64::MAX }),
        ),
    ]);
    // encryptedDataHash: the ciphertext no longer matches it.
    m.extend(field_mutations(
        "encryptedDataHash",
        &field(|e| &mut e.encrypted_data_hash),
        vec![
            ("last digit", Digit(-1)),
            ("empty", Clear),
            ("upper case", Upper),
            ("without 0x", DropPrefix(2)),
        ],
        Verify(V::HashMismatch),
    ));
    // plaintextHash: unsigned, so verification passes; decryption checks it last.
    m.extend(field_mutations(
        "plaintextHash",
        &field(|e| &mut e.plaintext_hash),
        vec![
            ("last digit", Digit(-1)),
            ("empty", Clear),
            ("upper case", Upper),
        ],
        DecryptAll(D::PlaintextHash),
    ));
    // encryption.algorithm: checked before anything else when decrypting.
    m.extend(field_mutations(
        "encryption.algorithm",
        &field(|e| &mut e.encryption.algorithm),
        vec![("another cipher", Set("aes-256-gcm".into()))],
        DecryptAll(D::UnsupportedCipher),
    ));
    // encryption.nonce: another valid nonce fails the tag; a malformed one is BadNonce.
    let nonce = field(|e| &mut e.encryption.nonce);
    m.extend(field_mutations(
        "nonce",
        &nonce,
        vec![
            ("last digit", Digit(-1)),
            ("first digit", Digit(0)),
            ("of another chunk", Set(other.encryption.nonce.clone())),
        ],
        DecryptAll(D::Cipher),
    ));
    m.extend(field_mutations(
        "nonce",
        &nonce,
        vec![
            ("empty", Clear),
            ("23 bytes", Truncate(46)),
            ("25 bytes", Push("00")),
            ("not hex", First("g")),
        ],
        DecryptAll(D::BadNonce),
    ));
    // encryption.keyCommitment: the opened key does not match it.
    m.extend(field_mutations(
        "keyCommitment",
        &field(|e| &mut e.encryption.key_commitment),
        vec![
            ("last digit", Digit(-1)),
            ("empty", Clear),
            ("without prefix", DropPrefix(7)),
            ("upper case", Upper),
            (
                "of another chunk",
                Set(other.encryption.key_commitment.clone()),
            ),
        ],
        DecryptAll(D::KeyCommitment),
    ));
    // signature block: identity fields, then key and value, then the signature.
    let signature_fields: Vec<(&str, Field, Edits)> = vec![
        (
            "signature.value",
            field(|e| &mut e.signature.value),
            vec![
                ("last digit", Digit(-1)),
                ("first digit", Digit(0)),
                ("empty", Clear),
                ("truncated", Truncate(126)),
                ("not hex", First("z")),
                ("of another chunk", Set(other.signature.value.clone())),
            ],
        ),
        (
            "signature.publicKeyHex",
            field(|e| &mut e.signature.public_key_hex),
            vec![
                ("last digit", Digit(-1)),
                ("first digit", Digit(0)),
                ("empty", Clear),
                ("another valid key", Set(owner_chain_pk)),
            ],
        ),
        (
            "signature.machineDid",
            field(|e| &mut e.signature.machine_did),
            vec![("empty", Clear), ("blank", Set(" \t\n".into()))],
        ),
        (
            "signature.keyId",
            field(|e| &mut e.signature.key_id),
            vec![("empty", Clear), ("blank", Set("\u{3000}".into()))],
        ),
    ];
    for (name, get, edits) in signature_fields {
        m.extend(field_mutations(
            name,
            &get,
            edits,
            Verify(V::InvalidSignature),
        ));
    }
    // Swapped wrapped keys: each recipient gets a box it cannot open.
    m.push(mutation(
        "owner and operator wrapped keys swapped",
        |e| {
            let r = &mut e.encryption.key_recipients;
            let owner = std::mem::take(&mut r[0].wrapped_key_hex);
            r[0].wrapped_key_hex = std::mem::replace(&mut r[1].wrapped_key_hex, owner);
        },
        DecryptSome(vec![0, 1], D::Unwrap),
    ));
    m.push(mutation(
        "owner's wrapped key for a stranger's public key text",
        move |e| {
            // Only the key text changes: it is not used to open the box (see
            // `unsigned_metadata_is_outside_v1_integrity`), so this is not detected...
            e.encryption.key_recipients[0].public_key_hex = stranger_pk.clone();
            // ...but a changed box is.
            let w = &mut e.encryption.key_recipients[0].wrapped_key_hex;
            *w = alter_hex(w, 10);
        },
        DecryptSome(vec![0], D::Unwrap),
    ));
    // Each recipient's wrapped key: only that recipient is affected.
    for who in 0..3 {
        let name = format!("keyRecipients[{who}].wrappedKeyHex");
        let wrapped = field(move |e| &mut e.encryption.key_recipients[who].wrapped_key_hex);
        m.extend(field_mutations(
            &name,
            &wrapped,
            vec![
                ("ephemeral key", Digit(0)),
                ("MAC", Digit(70)),
                ("sealed key", Digit(-1)),
                ("empty", Clear),
                ("truncated", Truncate(158)),
                ("odd length", Pop),
            ],
            DecryptSome(vec![who], D::Unwrap),
        ));
        // Opens (same recipient) but holds another chunk's key.
        let foreign = other.encryption.key_recipients[who].wrapped_key_hex.clone();
        m.extend(field_mutations(
            &name,
            &wrapped,
            vec![("of another chunk", Set(foreign))],
            DecryptSome(vec![who], D::KeyCommitment),
        ));
    }
    // previousChunkId: the first chunk must have none; later ones must link.
    if k == 0 {
        let id = other.chunk_id.clone();
        m.push(mutation(
            "previousChunkId set on the first chunk",
            move |e| e.previous_chunk_id = Some(id.clone()),
            Verify(V::FirstHasPrevious),
        ));
        m.push(mutation(
            "previousChunkId empty on the first chunk",
            |e| e.previous_chunk_id = Some(String::new()),
            Verify(V::FirstHasPrevious),
        ));
    } else {
        m.push(mutation(
            "previousChunkId last digit",
            |e| e.previous_chunk_id = e.previous_chunk_id.as_deref().map(|p| alter_hex(p, -1)),
            Verify(V::BrokenLink),
        ));
        m.push(mutation(
            "previousChunkId empty",
            |e| e.previous_chunk_id = Some(String::new()),
            Verify(V::BrokenLink),
        ));
        m.push(mutation(
            "previousChunkId null",
            |e| e.previous_chunk_id = None,
            Verify(V::BrokenLink),
        ));
        m.push(mutation(
            "previousChunkId upper case",
            |e| e.previous_chunk_id = e.previous_chunk_id.as_deref().map(str::to_uppercase),
            Verify(V::BrokenLink),
        ));
        m.push(mutation(
            "index - 1",
            |e| e.index -= 1,
            Verify(V::IndexNotSequential {
                found: k as u64 - 1,
            }),
        ));
    }
    m
}

#[test]
fn every_envelope_field_change_is_detected_with_its_reason_and_index() {
    let chunks = build_chain(&input(3 * 48 + 5), 48);
    let n = chunks.len();
    let data = input(3 * 48 + 5);
    let mut checked = 0;
    for k in 0..n {
        for (name, change, expect) in mutations(&chunks, k) {
            let mut tampered = chunks.clone();
            change(&mut tampered[k].envelope);
            assert_ne!(
                tampered[k].envelope, chunks[k].envelope,
                "{name}: no change"
            );
            tampered[k].envelope = reparse(&tampered[k].envelope);
            let at = k as u64;
            match expect {
                Expect::Verify(reason) => {
                    assert_eq!(verify(&tampered), fails_at(at, reason), "chunk {k}: {name}");
                }
                Expect::DecryptAll(error) => {
                    verify(&tampered).unwrap_or_else(|e| panic!("chunk {k}: {name}: {e}"));
                    for who in 0..3 {
                        assert_eq!(
                            decrypt(&tampered, who),
                            Err((at, error)),
                            "chunk {k}: {name}: recipient {who}"
                        );
                    }
                }
                Expect::DecryptSome(targets, error) => {
                    verify(&tampered).unwrap_or_else(|e| panic!("chunk {k}: {name}: {e}"));
                    for who in 0..3 {
                        let expected = if targets.contains(&who) {
                            Err((at, error))
                        } else {
                            Ok(data.clone())
                        };
                        assert_eq!(
                            decrypt(&tampered, who),
                            expected,
                            "chunk {k}: {name}: recipient {who}"
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 4 * 60, "only {checked} cases checked");
}

#[test]
fn unsigned_metadata_is_outside_v1_integrity() {
    // v1 signs only encryptedDataHash, and the reference's verifier ignores
    // these fields too: changing them is not detected, by design (§6). A
    // signed layer above v1 must cover them if they matter. storageRef belongs
    // here as well (see the module documentation); it is deliberately not asserted.
    let data = input(3 * 48 + 5);
    let chunks = build_chain(&data, 48);
    let changes: Vec<Change> = vec![
        (
            "signature.algorithm",
            Box::new(|e| e.signature.algorithm = "rsa".into()),
        ),
        (
            "signature.machineDid",
            Box::new(|e| e.signature.machine_did = "did:peaq:0x0".into()),
        ),
        (
            "signature.keyId",
            Box::new(|e| e.signature.key_id = "other#keys-9".into()),
        ),
        (
            "recipient ids",
            Box::new(|e| e.encryption.key_recipients[0].recipient_id = "x".into()),
        ),
        (
            "recipient types",
            Box::new(|e| e.encryption.key_recipients[1].recipient_type = "buyer".into()),
        ),
        (
            "recipient algorithm",
            Box::new(|e| e.encryption.key_recipients[2].algorithm = "none".into()),
        ),
        (
            "recipient key text",
            Box::new(|e| e.encryption.key_recipients[0].public_key_hex.clear()),
        ),
    ];
    for (name, change) in changes {
        let mut tampered = chunks.clone();
        for c in &mut tampered {
            change(&mut c.envelope);
            c.envelope = reparse(&c.envelope);
        }
        assert!(verify(&tampered).is_ok(), "{name}");
        for who in 0..3 {
            assert_eq!(decrypt(&tampered, who).as_ref(), Ok(&data), "{name}: {who}");
        }
    }
}

#[test]
fn dropped_chunks_are_detected_except_at_the_tail() {
    let chunks = build_chain(&input(3 * 48 + 5), 48);
    let n = chunks.len();
    for k in 0..n {
        let mut tampered = chunks.clone();
        tampered.remove(k);
        if k + 1 < n {
            // The chunk after the gap sits at position k with index k + 1.
            assert_eq!(
                verify(&tampered),
                fails_at(
                    k as u64,
                    VerifyReason::IndexNotSequential {
                        found: k as u64 + 1
                    }
                ),
                "drop {k}"
            );
        } else {
            // Truncating the tail is invisible to v1 (§6): nothing signs the chain head.
            assert_eq!(
                verify(&tampered),
                Ok(ChainState::after(&chunks[k - 1].envelope))
            );
        }
    }
}

#[test]
fn swapped_duplicated_and_relinked_chunks() {
    let data = input(3 * 48 + 5);
    let chunks = build_chain(&data, 48);
    let n = chunks.len();
    for k in 0..n - 1 {
        let mut swapped = chunks.clone();
        swapped.swap(k, k + 1);
        assert_eq!(
            verify(&swapped),
            fails_at(
                k as u64,
                VerifyReason::IndexNotSequential {
                    found: k as u64 + 1
                }
            ),
            "swap {k}"
        );
        // Swapped with the indexes fixed: the link breaks (or the first chunk has a previous id).
        let mut reindexed = swapped.clone();
        reindexed[k].envelope.index = k as u64;
        reindexed[k + 1].envelope.index = k as u64 + 1;
        let reason = if k == 0 {
            VerifyReason::FirstHasPrevious
        } else {
            VerifyReason::BrokenLink
        };
        assert_eq!(
            verify(&reindexed),
            fails_at(k as u64, reason),
            "swap {k}, reindexed"
        );
    }
    for k in 0..n {
        let mut duplicated = chunks.clone();
        duplicated.insert(k + 1, chunks[k].clone());
        assert_eq!(
            verify(&duplicated),
            fails_at(
                k as u64 + 1,
                VerifyReason::IndexNotSequential { found: k as u64 }
            ),
            "duplicate {k}"
        );
    }
    // Reordering with index, previousChunkId and chunkId all recomputed passes
    // v1 verification (§6): only the ciphertext hash is signed. Decryption then
    // yields the slices in the new order.
    let mut relinked: Vec<SealedChunk> = chunks.iter().rev().cloned().collect();
    let mut previous: Option<String> = None;
    for (i, c) in relinked.iter_mut().enumerate() {
        let e = &mut c.envelope;
        e.index = i as u64;
        e.previous_chunk_id = previous.clone();
        e.chunk_id = compute_chunk_id(previous.as_deref(), &e.encrypted_data_hash, e.index);
        previous = Some(e.chunk_id.clone());
    }
    assert!(verify(&relinked).is_ok());
    let expected: Vec<u8> = data.chunks(48).rev().flatten().copied().collect();
    assert_eq!(decrypt(&relinked, 0).unwrap(), expected);
}

#[test]
fn empty_chain_is_refused_and_resumed_chain_may_be_empty() {
    assert_eq!(verify(&[]), fails_at(0, VerifyReason::Empty));
    assert_eq!(
        ChainVerifier::new().finish(),
        fails_at(0, VerifyReason::Empty)
    );
    // An empty continuation of a verified chain is not an error.
    let chunks = build_chain(&input(100), 48);
    let state = verify(&chunks).unwrap();
    assert_eq!(
        ChainVerifier::resuming(state.clone()).finish(),
        Ok(state.clone())
    );
    // A continuation must continue: chunks of the chain itself do not.
    let mut resumed = ChainVerifier::resuming(state);
    assert_eq!(
        resumed.push(&chunks[0].envelope, Some(&chunks[0].ciphertext)),
        Err(VerifyError {
            index: chunks.len() as u64,
            reason: VerifyReason::IndexNotSequential { found: 0 }
        })
    );
    // Decrypting nothing writes nothing.
    assert_eq!(decrypt(&[], 0), Ok(Vec::new()));
}

#[test]
fn tampered_envelope_text_is_refused_by_the_parser() {
    let chunks = build_chain(&input(10), 48);
    let text = chunks[0].envelope.to_pretty_json();
    // (case, text replaced, replacement, field named); the replaced text
    // stands once in the envelope, or is replaced where it first stands.
    let cases = [
        (
            "schemaVersion",
            "peaq.stream.chunks.v1",
            "peaq.stream.chunks.v2",
            "schemaVersion",
        ),
        (
            "index as a string",
            "\"index\": 0",
            "\"index\": \"0\"",
            "index",
        ),
        ("negative index", "\"index\": 0", "\"index\": -1", "index"),
        (
            "fractional index",
            "\"index\": 0",
            "\"index\": 0.0",
            "index",
        ),
        (
            "nonce as a number",
            "\"nonce\": \"",
            "\"nonce\": 1, \"x\": \"",
            "encryption.nonce",
        ),
        ("missing chunkId", "\"chunkId\"", "\"chunkID\"", "chunkId"),
        (
            "recipients not a list",
            "\"keyRecipients\": [",
            "\"keyRecipients\": \"x\", \"old\": [",
            "encryption.keyRecipients",
        ),
        (
            "wrapped key missing",
            "\"wrappedKeyHex\"",
            "\"wrappedKey\"",
            "encryption.keyRecipients[0].wrappedKeyHex",
        ),
    ];
    for (name, from, to, field) in cases {
        let bad = text.replacen(from, to, 1);
        assert_ne!(bad, text, "{name}: no change");
        match ChunkEnvelope::parse(bad.as_bytes()) {
            Err(EnvelopeParseError::Invalid(e)) => assert_eq!(e.field, field, "{name}: {e}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let truncated = &text.as_bytes()[..text.len() / 2];
    assert!(matches!(
        ChunkEnvelope::parse(truncated),
        Err(EnvelopeParseError::Json(_))
    ));
    // Still a valid envelope after an unknown field is added: v1 readers ignore extras.
    let extra = text.replacen('{', "{\"extra\": 1,", 1);
    assert_eq!(
        ChunkEnvelope::parse(extra.as_bytes()).unwrap(),
        chunks[0].envelope
    );
}

/// The reference's verifier reads `signature.publicKeyHex` and `signature.value`
/// with `parse_hex_bytes` (optional lower-case `0x`, no whitespace, no `0X`) and
/// blank checks with Python's `str.strip()`, which also strips U+001C..U+001F.
/// sealstream reads them the same way (`keys::parse_hex_exact`, `keys::is_blank`):
/// these fail with InvalidSignature, as in the reference (regression test).
#[test]
fn signature_fields_are_read_as_strictly_as_the_reference() {
    let chunks = build_chain(&input(10), 48);
    let changes: Vec<Change> = vec![
        (
            "publicKeyHex with a trailing newline",
            Box::new(|e| e.signature.public_key_hex.push('\n')),
        ),
        (
            "publicKeyHex with leading spaces",
            Box::new(|e| e.signature.public_key_hex.insert_str(0, "  ")),
        ),
        (
            "publicKeyHex with 0X",
            Box::new(|e| e.signature.public_key_hex.insert_str(0, "0X")),
        ),
        (
            "value with a trailing newline",
            Box::new(|e| e.signature.value.push('\n')),
        ),
        (
            "value with 0X",
            Box::new(|e| e.signature.value.insert_str(0, "0X")),
        ),
        (
            "machineDid U+001F",
            Box::new(|e| e.signature.machine_did = "\u{1f}".into()),
        ),
        (
            "keyId U+001C",
            Box::new(|e| e.signature.key_id = "\u{1c}".into()),
        ),
    ];
    let mut accepted = Vec::new();
    for (name, change) in changes {
        let mut tampered = chunks.clone();
        change(&mut tampered[0].envelope);
        if verify(&tampered) != fails_at(0, VerifyReason::InvalidSignature) {
            accepted.push(name);
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

/// The reference decrypts with `parse_hex_bytes(nonce)` (no whitespace, no `0X`);
/// `decrypt_chunk` reads it the same way (`keys::parse_hex_exact`), so these
/// fail with BadNonce (regression test).
#[test]
fn nonce_is_read_as_strictly_as_the_reference() {
    let chunks = build_chain(&input(10), 48);
    let mut accepted = Vec::new();
    for (name, nonce) in [
        (
            "trailing newline",
            format!("{}\n", chunks[0].envelope.encryption.nonce),
        ),
        (
            "leading space",
            format!(" {}", chunks[0].envelope.encryption.nonce),
        ),
        ("0X", format!("0X{}", chunks[0].envelope.encryption.nonce)),
    ] {
        let mut tampered = chunks.clone();
        tampered[0].envelope.encryption.nonce = nonce;
        if decrypt(&tampered, 0) != Err((0, DecryptError::BadNonce)) {
            accepted.push(name);
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}
