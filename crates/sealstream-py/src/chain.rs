//! Chunk chains in memory, as the reference's `build_chunk_chain`, `verify_chunk_chain`,
//! `decrypt_chunk`, `create_buyer_access_entry`, `build_buyer_access_files` and
//! `compute_chunk_id` take and return them.
//!
//! Chunks cross the boundary as the reference's dataclasses (read by attribute, so any
//! object with the same attributes works) and come back as nested tuples in the
//! dataclasses' field order, from which `sealstream._dropin` builds the dataclasses of the
//! family in use. The caller's keys are checked in Python first, with the reference's
//! messages; what reaches this module is well-formed.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyTuple};
use sealstream_core::access::{self, AccessEntry, AccessFileBuilder, Buyer, GrantError};
use sealstream_core::chunk::{
    self, check_link, check_self, ChainConfig, ChainState, ChainWriter, ChunkEncryption,
    ChunkEnvelope, ChunkSignature, DecryptError, KeyRecipient, Recipient, SealedChunk,
    VerifyReason,
};
use sealstream_core::keys::{ChainSigningKey, RecipientPublicKey, RecipientSecretKey};
use sealstream_core::pool::{default_parallelism, map_in_order};

use crate::error::{from_core, signing, validation};

fn attr_str(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    obj.getattr(name)?.extract()
}

fn attr_opt_str(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    let v = obj.getattr(name)?;
    if v.is_none() {
        Ok(None)
    } else {
        v.extract().map(Some)
    }
}

/// A `KeyRecipient` (by attribute).
pub fn read_recipient(obj: &Bound<'_, PyAny>) -> PyResult<KeyRecipient> {
    Ok(KeyRecipient {
        recipient_id: attr_str(obj, "recipient_id")?,
        recipient_type: attr_str(obj, "recipient_type")?,
        algorithm: attr_str(obj, "algorithm")?,
        public_key_hex: attr_str(obj, "public_key_hex")?,
        wrapped_key_hex: attr_str(obj, "wrapped_key_hex")?,
    })
}

/// A `Chunk` (by attribute).
pub fn read_chunk(obj: &Bound<'_, PyAny>) -> PyResult<ChunkEnvelope> {
    let enc = obj.getattr("encryption")?;
    let sig = obj.getattr("signature")?;
    let mut recipients = Vec::new();
    for r in enc.getattr("key_recipients")?.try_iter()? {
        recipients.push(read_recipient(&r?)?);
    }
    let index: i128 = obj.getattr("index")?.extract()?;
    Ok(ChunkEnvelope {
        schema_version: attr_str(obj, "schema_version")?,
        chunk_id: attr_str(obj, "chunk_id")?,
        previous_chunk_id: attr_opt_str(obj, "previous_chunk_id")?,
        // A negative index can never be a position: it fails the sequence check.
        index: u64::try_from(index).unwrap_or(u64::MAX),
        encrypted_data_hash: attr_str(obj, "encrypted_data_hash")?,
        plaintext_hash: attr_str(obj, "plaintext_hash")?,
        storage_ref: attr_opt_str(obj, "storage_ref")?,
        encryption: ChunkEncryption {
            algorithm: attr_str(&enc, "algorithm")?,
            nonce: attr_str(&enc, "nonce")?,
            key_commitment: attr_str(&enc, "key_commitment")?,
            key_recipients: recipients,
        },
        signature: ChunkSignature {
            algorithm: attr_str(&sig, "algorithm")?,
            machine_did: attr_str(&sig, "machine_did")?,
            key_id: attr_str(&sig, "key_id")?,
            public_key_hex: attr_str(&sig, "public_key_hex")?,
            value: attr_str(&sig, "value")?,
        },
    })
}

/// `KeyRecipient` fields as a tuple.
pub fn recipient_tuple<'py>(py: Python<'py>, r: &KeyRecipient) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            &r.recipient_id,
            &r.recipient_type,
            &r.algorithm,
            &r.public_key_hex,
            &r.wrapped_key_hex,
        ],
    )
}

/// `Chunk` fields as nested tuples (encryption and signature as tuples of their fields,
/// recipients as a tuple of tuples).
pub fn chunk_tuple<'py>(py: Python<'py>, e: &ChunkEnvelope) -> PyResult<Bound<'py, PyTuple>> {
    let recipients = e
        .encryption
        .key_recipients
        .iter()
        .map(|r| recipient_tuple(py, r))
        .collect::<PyResult<Vec<_>>>()?;
    let encryption = (
        &e.encryption.algorithm,
        &e.encryption.nonce,
        &e.encryption.key_commitment,
        PyTuple::new(py, recipients)?,
    )
        .into_pyobject(py)?;
    let s = &e.signature;
    let signature = (
        &s.algorithm,
        &s.machine_did,
        &s.key_id,
        &s.public_key_hex,
        &s.value,
    )
        .into_pyobject(py)?;
    (
        &e.schema_version,
        &e.chunk_id,
        e.previous_chunk_id.as_deref(),
        e.index,
        &e.encrypted_data_hash,
        &e.plaintext_hash,
        e.storage_ref.as_deref(),
        encryption,
        signature,
    )
        .into_pyobject(py)
}

/// Build a chain from `data` (the reference's `build_chunk_chain` after its checks):
/// returns `(source_hash, [chunk tuple…], [ciphertext bytes…])`. Sealing runs on every
/// core without the GIL; each ciphertext becomes a `bytes` as it is delivered, so the
/// ciphertext is held once.
#[pyfunction]
#[pyo3(signature = (data, chunk_size, recipients, signing_private_key_hex, machine_did, machine_key_id))]
pub fn build_chain<'py>(
    py: Python<'py>,
    data: PyBackedBytes,
    chunk_size: usize,
    recipients: Vec<(String, String, String)>,
    signing_private_key_hex: &str,
    machine_did: &str,
    machine_key_id: &str,
) -> PyResult<Bound<'py, PyTuple>> {
    let key = ChainSigningKey::from_hex(signing_private_key_hex, "signing_private_key_hex")
        .map_err(|_| signing("Invalid signing private key length"))?;
    let recipients = recipients
        .into_iter()
        .map(|(id, kind, text)| Recipient::from_text(id, kind, &text, "public_key_hex"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            validation(
                "Invalid X25519 public key length",
                "public_key_hex",
                "32-byte X25519 public key",
            )
        })?;
    let mut config = ChainConfig::new(key, machine_did, machine_key_id, recipients);
    config.chunk_size = chunk_size;
    let mut envelopes: Vec<ChunkEnvelope> = Vec::new();
    let mut ciphertexts: Vec<Py<PyBytes>> = Vec::new();
    let summary = py.detach(|| -> PyResult<_> {
        let sink = |c: SealedChunk| -> Result<(), PyErr> {
            let bytes = Python::attach(|py| PyBytes::new(py, &c.ciphertext).unbind());
            ciphertexts.push(bytes);
            envelopes.push(c.envelope);
            Ok(())
        };
        let mut writer = ChainWriter::new(config, ChainState::new(), sink).map_err(from_core)?;
        writer.write(&data)?;
        let (summary, _) = writer.finish()?;
        Ok(summary)
    })?;
    let chunks = envelopes
        .iter()
        .map(|e| chunk_tuple(py, e))
        .collect::<PyResult<Vec<_>>>()?;
    (
        summary.source_hash,
        PyList::new(py, chunks)?,
        PyList::new(py, ciphertexts)?,
    )
        .into_pyobject(py)
}

/// `(valid, total_chunks, reason, failed_at_index)` of `ChunkChainVerificationResult`.
type ChainCheck = (bool, Option<usize>, Option<&'static str>, Option<usize>);

/// Verify chunks against their ciphertexts (the reference's `verify_chunk_chain`, same
/// checks in the same order, same reasons): `(valid, total_chunks, reason, failed_at)`.
/// Hashes and signatures are checked on every core without the GIL.
#[pyfunction]
pub fn verify_chain<'py>(
    py: Python<'py>,
    chunks: &Bound<'py, PyAny>,
    encrypted_data: &Bound<'py, PyAny>,
) -> PyResult<ChainCheck> {
    let mut items: Vec<(ChunkEnvelope, Option<PyBackedBytes>)> = Vec::new();
    let get = encrypted_data.getattr("get")?;
    for c in chunks.try_iter()? {
        let c = c?;
        let envelope = read_chunk(&c)?;
        let data = get.call1((c.getattr("index")?,))?;
        let data = if data.is_none() {
            None
        } else {
            Some(data.extract::<PyBackedBytes>()?)
        };
        items.push((envelope, data));
    }
    if items.is_empty() {
        return Ok((
            false,
            None,
            Some(VerifyReason::Empty.reference_reason()),
            Some(0),
        ));
    }
    let failure = py.detach(|| first_failure(&items));
    Ok(match failure {
        None => (true, Some(items.len()), None, None),
        Some((position, reason)) => (false, None, Some(reason.reference_reason()), Some(position)),
    })
}

/// The first chunk, in chain order, that fails: its link first, then its own checks.
fn first_failure(
    items: &[(ChunkEnvelope, Option<PyBackedBytes>)],
) -> Option<(usize, VerifyReason)> {
    let own = map_in_order(
        items.iter().collect(),
        default_parallelism(),
        |(e, data)| check_self(e, data.as_deref()),
    );
    let mut state = ChainState::new();
    for (position, ((envelope, _), result)) in items.iter().zip(own).enumerate() {
        if envelope.index != position as u64 {
            return Some((
                position,
                VerifyReason::IndexNotSequential {
                    found: envelope.index,
                },
            ));
        }
        if let Err(reason) = check_link(&state, envelope).and(result) {
            return Some((position, reason));
        }
        state = ChainState::after(envelope);
    }
    None
}

fn decrypt_error(e: DecryptError) -> PyErr {
    match e {
        DecryptError::Unwrap => validation(
            "Failed to unwrap per-chunk encryption key",
            "wrapped_key_hex",
            "valid sealed box for recipient key pair",
        ),
        DecryptError::KeyCommitment => validation(
            "Recovered chunk key does not match key_commitment",
            "key_commitment",
            "sha256 digest of per-chunk encryption key",
        ),
        DecryptError::PlaintextHash => validation(
            "Decrypted chunk data does not match plaintext_hash",
            "plaintext_hash",
            "sha-256 digest of decrypted plaintext",
        ),
        DecryptError::BadNonce => signing("Invalid XChaCha20 nonce length"),
        DecryptError::UnsupportedCipher => signing("Unsupported chunk encryption algorithm"),
        _ => signing("Failed to decrypt chunk ciphertext"),
    }
}

/// Decrypt one chunk (the reference's `decrypt_chunk` after its key checks).
#[pyfunction]
pub fn decrypt<'py>(
    py: Python<'py>,
    chunk: &Bound<'py, PyAny>,
    recipient_private_key_hex: &str,
    recipient_entry: &Bound<'py, PyAny>,
    encrypted_data: PyBackedBytes,
) -> PyResult<Bound<'py, PyBytes>> {
    let envelope = read_chunk(chunk)?;
    let entry = read_recipient(recipient_entry)?;
    let secret =
        RecipientSecretKey::from_hex(recipient_private_key_hex, "recipient_private_key_hex")
            .map_err(from_core)?;
    // Straight into the `bytes` returned: no copy of the ciphertext, no buffer in between.
    let Some(len) = encrypted_data.len().checked_sub(chunk::TAG_LEN) else {
        // Shorter than its tag: the key checks first, as the reference makes them.
        let short = chunk::decrypt_chunk(&envelope, &entry, &secret, encrypted_data.to_vec());
        return Err(decrypt_error(short.err().unwrap_or(DecryptError::Cipher)));
    };
    PyBytes::new_with(py, len, |out| {
        py.detach(|| chunk::decrypt_chunk_into(&envelope, &entry, &secret, &encrypted_data, out))
            .map_err(decrypt_error)
    })
}

fn grant_error(e: GrantError) -> PyErr {
    match e {
        GrantError::NoRecipient { .. } => validation(
            "Owner key recipient not found on chunk",
            "key_recipients",
            "owner recipient entry",
        ),
        GrantError::KeyCommitment { .. } => decrypt_error(DecryptError::KeyCommitment),
        _ => decrypt_error(DecryptError::Unwrap),
    }
}

/// The buyer as the reference takes it: id and key text verbatim.
fn buyer(id: &str, public_key_hex: &str) -> PyResult<Buyer> {
    let body = public_key_hex.strip_prefix("0x").unwrap_or(public_key_hex);
    if body.is_empty()
        || !body.len().is_multiple_of(2)
        || !body.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(validation(
            "Invalid hex encoding",
            "public_key_hex",
            "even-length hexadecimal string",
        ));
    }
    let public_key =
        RecipientPublicKey::from_hex(public_key_hex, "public_key_hex").map_err(|_| {
            validation(
                "Invalid X25519 public key length",
                "public_key_hex",
                "32-byte X25519 public key",
            )
        })?;
    Ok(Buyer {
        id: id.to_string(),
        public_key,
        public_key_text: public_key_hex.to_string(),
    })
}

fn entry_tuple<'py>(py: Python<'py>, e: &AccessEntry) -> PyResult<Bound<'py, PyTuple>> {
    (&e.chunk_id, recipient_tuple(py, &e.buyer)?).into_pyobject(py)
}

/// Re-wrap the chunk key of each chunk to a buyer: `[(chunk_id, recipient tuple)…]`.
/// On every core without the GIL; the first failure in chain order is raised.
#[pyfunction]
pub fn grant_entries<'py>(
    py: Python<'py>,
    chunks: &Bound<'py, PyAny>,
    owner_private_key_hex: &str,
    buyer_recipient_id: &str,
    buyer_public_key_hex: &str,
) -> PyResult<Bound<'py, PyList>> {
    let (entries, _) = grant_all(
        py,
        chunks,
        owner_private_key_hex,
        buyer_recipient_id,
        buyer_public_key_hex,
    )?;
    entry_list(py, &entries)
}

fn entry_list<'py>(py: Python<'py>, entries: &[AccessEntry]) -> PyResult<Bound<'py, PyList>> {
    let tuples = entries
        .iter()
        .map(|e| entry_tuple(py, e))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, tuples)
}

fn read_chunks(chunks: &Bound<'_, PyAny>) -> PyResult<Vec<ChunkEnvelope>> {
    chunks.try_iter()?.map(|c| read_chunk(&c?)).collect()
}

/// Re-wrap every chunk's key (by attribute from `chunks`) to the buyer, with the
/// reference's checks in its order; the entries, and the buyer they are for.
fn grant_all(
    py: Python<'_>,
    chunks: &Bound<'_, PyAny>,
    owner_private_key_hex: &str,
    buyer_recipient_id: &str,
    buyer_public_key_hex: &str,
) -> PyResult<(Vec<AccessEntry>, Buyer)> {
    let envelopes = &read_chunks(chunks)?;
    // The reference looks for the owner's entry before it parses any key.
    if let Some(e) = envelopes
        .iter()
        .find(|e| e.recipient_of_type("owner").is_none())
    {
        return Err(grant_error(GrantError::NoRecipient {
            index: e.index,
            recipient_type: "owner",
        }));
    }
    let secret = Arc::new(
        RecipientSecretKey::from_hex(owner_private_key_hex, "owner_private_key_hex")
            .map_err(from_core)?,
    );
    // The reference opens the first chunk's key before it reads the buyer's key.
    if let Some(first) = envelopes.first() {
        access::open_chunk_key(first, "owner", &secret).map_err(grant_error)?;
    }
    let buyer = buyer(buyer_recipient_id, buyer_public_key_hex)?;
    let entries = py
        .detach(|| {
            access::grant_entries_as(envelopes, "owner", &secret, &buyer, default_parallelism())
        })
        .map_err(grant_error)?;
    Ok((entries, buyer))
}

/// The reference's `build_buyer_access_files`: entries for every chunk, cut into files of
/// at most `max_file_size` bytes as the reference measures them:
/// `[(file_name, buyer_public_key_hex, [(chunk_id, recipient tuple)…])…]`.
#[pyfunction]
pub fn access_files<'py>(
    py: Python<'py>,
    chunks: &Bound<'py, PyAny>,
    owner_private_key_hex: &str,
    buyer_recipient_id: &str,
    buyer_public_key_hex: &str,
    max_file_size: usize,
) -> PyResult<Bound<'py, PyList>> {
    let (entries, buyer) = grant_all(
        py,
        chunks,
        owner_private_key_hex,
        buyer_recipient_id,
        buyer_public_key_hex,
    )?;
    let mut builder = AccessFileBuilder::new(&buyer, max_file_size.max(1)).map_err(from_core)?;
    let mut files = Vec::new();
    for entry in entries {
        files.extend(builder.push(entry));
    }
    files.extend(builder.finish());
    let out = PyList::empty(py);
    for f in files {
        out.append((
            f.file_name,
            f.buyer_public_key_hex,
            entry_list(py, &f.entries)?,
        ))?;
    }
    Ok(out)
}

/// `"0x"` + SHA-256 of `"{previous or ''}|{encrypted_data_hash}|{index}"`.
#[pyfunction]
#[pyo3(signature = (previous_chunk_id, encrypted_data_hash, index))]
pub fn compute_chunk_id(
    previous_chunk_id: Option<&str>,
    encrypted_data_hash: &str,
    index: &Bound<'_, PyAny>,
) -> PyResult<String> {
    // The reference formats the index with Python's str(): any int, even a negative one.
    let text = index.str()?;
    let material = format!(
        "{}|{}|{}",
        previous_chunk_id.unwrap_or(""),
        encrypted_data_hash,
        text.to_cow()?
    );
    Ok(chunk::sha256_hex(material.as_bytes()))
}

/// The Ed25519 public key (hex) of a 32-byte private key (hex).
#[pyfunction]
pub fn ed25519_public_key(private_key_hex: &str) -> PyResult<String> {
    let key = ChainSigningKey::from_hex(private_key_hex, "signing_private_key_hex")
        .map_err(|_| signing("Invalid signing private key length"))?;
    Ok(key.public_key().to_hex())
}

/// Register this module's functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(build_chain, m)?)?;
    m.add_function(wrap_pyfunction!(verify_chain, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(grant_entries, m)?)?;
    m.add_function(wrap_pyfunction!(access_files, m)?)?;
    m.add_function(wrap_pyfunction!(compute_chunk_id, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_public_key, m)?)?;
    Ok(())
}
