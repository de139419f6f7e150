//! sealstream's extras on chain directories (the reference layout: `chunk-N.json`,
//! `chunk-N.bin`, `manifest.json`, and sealstream's signed `dataset.json`):
//!
//! - [`ChainWriter`]: a streaming publish — `write()` bytes as they come, `finish()`;
//!   memory stays near `4 × parallelism × chunk_size` whatever the input;
//! - [`ChainReader`]: a streaming consume — iterate plaintext chunks as they are verified
//!   and decrypted (on a background thread, two chunks ahead);
//! - [`verify_dir`]: the chain, its manifest (truncation, appended chunks) and its signed
//!   dataset (re-linking, a different head) in one call;
//! - [`prove_inclusion`] / [`verify_inclusion`]: Merkle proofs of one chunk in a dataset.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyDict;
use sealstream_core::access::Buyer;
use sealstream_core::chunk::{verify_chain, ChainConfig, ChunkEnvelope, Recipient};
use sealstream_core::dataset::{
    verify_chunk_allowing, DatasetInfo, DatasetManifest, DatasetVerifier, InclusionProof,
};
use sealstream_core::json::{self, Value};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientSecretKey};
use sealstream_core::pool::default_parallelism;
use sealstream_files::consume::{
    consume_chunks, read_dataset, read_manifest, ConsumeError, ConsumeRequest, ConsumeSummary,
};
use sealstream_files::layout::{list_chain, read_ciphertext, read_envelope};
use sealstream_files::publish::{DatasetSigning, PublishSummary, Publisher};

use crate::error::{chain, from_core};
use crate::value::to_py;

fn parallelism(p: Option<usize>) -> usize {
    p.filter(|&n| n > 0).unwrap_or_else(default_parallelism)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A streaming publish into a chain directory.
///
/// `ChainWriter(out_dir, *, owner_public_key_hex, operator_public_key_hex,
/// machine_public_key_hex, signing_private_key_hex, machine_did, machine_key_id=None,
/// chunk_size=262144, machine_private_key_hex=None, parallelism=None)`. `write(data)`
/// appends bytes, `write_file(path)` a file's contents, `finish()` seals the last chunk,
/// writes `manifest.json` and a signed `dataset.json` (Ed25519 with the chain key, and
/// EIP-191 with the machine key when given) and moves the chain into `out_dir`; it
/// returns `{"manifest": …, "dataset": …, "bytes": n}`. Until then the chain is staged:
/// a writer dropped unfinished leaves nothing in `out_dir`. Usable as a context manager
/// (`finish()` on a clean exit).
#[pyclass(module = "sealstream._native")]
pub struct ChainWriter {
    inner: Mutex<Option<Publisher>>,
    result: Mutex<Option<Py<PyAny>>>,
}

impl ChainWriter {
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&mut Publisher) -> Result<R, sealstream_files::publish::PublishError> + Send,
    ) -> PyResult<R> {
        let mut publisher = lock(&self.inner)
            .take()
            .ok_or_else(|| chain("the chain writer is finished"))?;
        let (publisher, result) = py.detach(move || {
            let r = op(&mut publisher);
            (publisher, r)
        });
        *lock(&self.inner) = Some(publisher);
        result.map_err(chain)
    }
}

#[pymethods]
impl ChainWriter {
    #[new]
    #[pyo3(signature = (out_dir, *, owner_public_key_hex, operator_public_key_hex, machine_public_key_hex, signing_private_key_hex, machine_did, machine_key_id=None, chunk_size=262_144, machine_private_key_hex=None, parallelism=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        out_dir: PathBuf,
        owner_public_key_hex: &str,
        operator_public_key_hex: &str,
        machine_public_key_hex: &str,
        signing_private_key_hex: &str,
        machine_did: &str,
        machine_key_id: Option<String>,
        chunk_size: usize,
        machine_private_key_hex: Option<&str>,
        parallelism: Option<usize>,
    ) -> PyResult<Self> {
        let recipients = vec![
            Recipient::from_text(
                "owner-1",
                "owner",
                owner_public_key_hex,
                "owner_public_key_hex",
            ),
            Recipient::from_text(
                "operator-1",
                "operator",
                operator_public_key_hex,
                "operator_public_key_hex",
            ),
            Recipient::from_text(
                "machine-1",
                "machine",
                machine_public_key_hex,
                "machine_public_key_hex",
            ),
        ]
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(from_core)?;
        let signing = ChainSigningKey::from_hex(signing_private_key_hex, "signing_private_key_hex")
            .map_err(from_core)?;
        let chain_key =
            ChainSigningKey::from_hex(signing_private_key_hex, "signing_private_key_hex")
                .map_err(from_core)?;
        let machine_key = machine_private_key_hex
            .map(|k| MachineSigningKey::from_hex(k, "machine_private_key_hex"))
            .transpose()
            .map_err(from_core)?;
        let key_id = machine_key_id.unwrap_or_else(|| format!("{machine_did}#keys-1"));
        let mut config = ChainConfig::new(signing, machine_did, &key_id, recipients);
        config.chunk_size = chunk_size;
        config.parallelism = self::parallelism(parallelism);
        let dataset = DatasetSigning {
            machine_key,
            chain_key: Some(chain_key),
            info: DatasetInfo::default(),
        };
        let publisher = Publisher::new(config, &out_dir, Some(dataset)).map_err(chain)?;
        Ok(ChainWriter {
            inner: Mutex::new(Some(publisher)),
            result: Mutex::new(None),
        })
    }

    /// Append bytes (any bytes-like object) to the stream.
    fn write(&self, py: Python<'_>, data: PyBackedBytes) -> PyResult<()> {
        self.run(py, move |p| p.write(&data))
    }

    /// Append the contents of the file at `path`, read in a streaming way. Returns the
    /// number of bytes read.
    fn write_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        let file = std::fs::File::open(&path)
            .map_err(|e| chain(format!("{}: cannot read ({e})", path.display())))?;
        self.run(py, move |p| p.copy_from(file))
    }

    /// Seal the last chunk, write the manifest and dataset, move the chain into place.
    fn finish(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(done) = lock(&self.result).as_ref() {
            return Ok(done.clone_ref(py));
        }
        let publisher = lock(&self.inner)
            .take()
            .ok_or_else(|| chain("the chain writer is finished"))?;
        let summary = py.detach(move || publisher.finish()).map_err(chain)?;
        let out = publish_summary(py, &summary)?.into_any().unbind();
        *lock(&self.result) = Some(out.clone_ref(py));
        Ok(out)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// On a clean exit, `finish()`; after an exception, discard the staged chain.
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        if exc_type.is_none() {
            self.finish(py)?;
        } else {
            lock(&self.inner).take();
        }
        Ok(false)
    }
}

fn publish_summary<'py>(py: Python<'py>, s: &PublishSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("manifest", to_py(py, &s.manifest.to_json())?)?;
    d.set_item(
        "dataset",
        match &s.dataset {
            Some(m) => to_py(py, &m.to_json())?,
            None => py.None().into_bound(py),
        },
    )?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("manifest_path", s.manifest_path.clone())?;
    Ok(d)
}

enum Message {
    Chunk(Vec<u8>),
    Done(Result<ConsumeSummary, String>),
}

/// A streaming consume of a chain directory: iterate to get each chunk's plaintext.
///
/// `ChainReader(chunk_dir, *, access_dir, buyer_id, private_key_hex, data_dir=None,
/// verify=True, dataset_signers=(), parallelism=None)`. Chunks are verified (hash, id,
/// signature, link, and the signed dataset when there is one) and decrypted on a
/// background thread, at most two ahead of the caller. The checks of the whole — chunk
/// count, the manifest's and the dataset's `sourceHash` — come after the last chunk:
/// iteration ends with an exception if they fail, so treat the data as unverified until
/// the loop has ended normally. `summary` is then `{"chunks", "bytes", "source_hash",
/// "output_hash", "verified"}`.
#[pyclass(module = "sealstream._native")]
pub struct ChainReader {
    rx: Receiver<Message>,
    done: Mutex<Option<Result<Py<PyAny>, String>>>,
}

#[pymethods]
impl ChainReader {
    #[new]
    #[pyo3(signature = (chunk_dir, *, access_dir, buyer_id, private_key_hex, data_dir=None, verify=true, dataset_signers=Vec::new(), parallelism=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        chunk_dir: PathBuf,
        access_dir: PathBuf,
        buyer_id: String,
        private_key_hex: &str,
        data_dir: Option<PathBuf>,
        verify: bool,
        dataset_signers: Vec<String>,
        parallelism: Option<usize>,
    ) -> PyResult<Self> {
        let key = Arc::new(
            RecipientSecretKey::from_hex(
                private_key_hex
                    .strip_prefix("0x")
                    .unwrap_or(private_key_hex),
                "private_key_hex",
            )
            .map_err(from_core)?,
        );
        let data_dir = data_dir.unwrap_or_else(|| chunk_dir.clone());
        let threads = self::parallelism(parallelism);
        let (tx, rx) = bounded(2);
        std::thread::Builder::new()
            .name("sealstream-chain-reader".into())
            .spawn(move || {
                let req = ConsumeRequest {
                    chunk_dir: &chunk_dir,
                    data_dir: &data_dir,
                    access_dir: &access_dir,
                    buyer_id: &buyer_id,
                    buyer_key: key,
                    verify,
                    dataset_signers: &dataset_signers,
                    parallelism: threads,
                };
                let result = consume_chunks(
                    &req,
                    &mut |plaintext: &[u8]| {
                        tx.send(Message::Chunk(plaintext.to_vec()))
                            .map_err(|_| ConsumeError::Reader("the reader was closed".into()))
                    },
                    &mut |_| {},
                );
                let _ = tx.send(Message::Done(result.map_err(|e| e.to_string())));
            })
            .map_err(|e| chain(format!("cannot start the reader thread ({e})")))?;
        Ok(ChainReader {
            rx,
            done: Mutex::new(None),
        })
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(done) = lock(&self.done).as_ref() {
            return Err(match done {
                Ok(_) => PyStopIteration::new_err(()),
                Err(message) => chain(message),
            });
        }
        let rx = &self.rx;
        let message = py.detach(|| rx.recv());
        match message {
            Ok(Message::Chunk(plaintext)) => Ok(pyo3::types::PyBytes::new(py, &plaintext)
                .into_any()
                .unbind()),
            Ok(Message::Done(Ok(summary))) => {
                let d = PyDict::new(py);
                d.set_item("chunks", summary.chunks)?;
                d.set_item("bytes", summary.bytes)?;
                d.set_item("source_hash", summary.source_hash)?;
                d.set_item("output_hash", summary.output_hash)?;
                d.set_item("verified", summary.verified)?;
                *lock(&self.done) = Some(Ok(d.into_any().unbind()));
                Err(PyStopIteration::new_err(()))
            }
            Ok(Message::Done(Err(message))) => {
                *lock(&self.done) = Some(Err(message.clone()));
                Err(chain(message))
            }
            Err(_) => {
                let message = "the reader thread stopped".to_string();
                *lock(&self.done) = Some(Err(message.clone()));
                Err(chain(message))
            }
        }
    }

    /// What was read, once iteration has ended normally (else `None`).
    #[getter]
    fn summary(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match lock(&self.done).as_ref() {
            Some(Ok(d)) => Some(d.clone_ref(py)),
            _ => None,
        }
    }
}

/// Verify a chain directory as a whole: every chunk (hash, id, Ed25519 signature, link),
/// the manifest's `totalChunks` (chunks dropped or appended), and the signed dataset when
/// `dataset.json` is there (required with `require_dataset`): its signatures, count, root,
/// first and head chunk ids — so a truncated, extended or re-linked chain fails.
/// Returns `{"valid", "total_chunks", "reason", "failed_at_index", "dataset_checked"}`.
#[pyfunction]
#[pyo3(signature = (chunk_dir, data_dir=None, require_dataset=false, dataset_signers=Vec::new(), parallelism=None))]
pub fn verify_dir<'py>(
    py: Python<'py>,
    chunk_dir: PathBuf,
    data_dir: Option<PathBuf>,
    require_dataset: bool,
    dataset_signers: Vec<String>,
    parallelism: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let data_dir = data_dir.unwrap_or_else(|| chunk_dir.clone());
    let threads = self::parallelism(parallelism);
    let outcome = py.detach(|| {
        check_dir(
            &chunk_dir,
            &data_dir,
            require_dataset,
            &dataset_signers,
            threads,
        )
    });
    let d = PyDict::new(py);
    match outcome {
        Ok(DirOutcome {
            chunks,
            failure,
            dataset_checked,
        }) => {
            d.set_item("valid", failure.is_none())?;
            d.set_item("total_chunks", chunks)?;
            let (reason, at) = failure.unzip();
            d.set_item("reason", reason)?;
            d.set_item("failed_at_index", at.flatten())?;
            d.set_item("dataset_checked", dataset_checked)?;
        }
        Err(message) => return Err(chain(message)),
    }
    Ok(d)
}

struct DirOutcome {
    chunks: u64,
    failure: Option<(String, Option<u64>)>,
    dataset_checked: bool,
}

fn check_dir(
    chunk_dir: &Path,
    data_dir: &Path,
    require_dataset: bool,
    signers: &[String],
    threads: usize,
) -> Result<DirOutcome, String> {
    let list = list_chain(chunk_dir).map_err(|e| e.to_string())?;
    let chunks = list.len() as u64;
    let items = list.iter().map(|(index, path)| {
        let envelope = read_envelope(path).map_err(|e| e.to_string())?;
        let ciphertext = read_ciphertext(data_dir, *index).map_err(|e| e.to_string())?;
        Ok::<_, String>((envelope, ciphertext))
    });
    let fail = |reason: String, at: Option<u64>| {
        Ok(DirOutcome {
            chunks,
            failure: Some((reason, at)),
            dataset_checked: false,
        })
    };
    if let Err(e) = verify_chain(items, threads)? {
        return fail(e.reason.to_string(), Some(e.index));
    }
    match read_manifest(chunk_dir).map_err(|e| e.to_string())? {
        Some(m) if m.total_chunks != chunks => {
            return fail(
                format!(
                    "manifest.json: totalChunks is {}, the chain has {chunks} chunks (chunks dropped or appended)",
                    m.total_chunks
                ),
                None,
            )
        }
        _ => {}
    }
    let dataset = match read_dataset(chunk_dir) {
        Ok(d) => d,
        Err(e) => return fail(e.to_string(), None),
    };
    let Some(dataset) = dataset else {
        if require_dataset {
            return fail(
                "dataset.json: missing (a signed dataset is required)".into(),
                None,
            );
        }
        return Ok(DirOutcome {
            chunks,
            failure: None,
            dataset_checked: false,
        });
    };
    let signers: Vec<&str> = signers.iter().map(String::as_str).collect();
    let mut check = match DatasetVerifier::allowing(&dataset, &signers) {
        Ok(c) => c,
        Err(e) => return fail(format!("dataset.json: {e}"), None),
    };
    for (index, path) in &list {
        let envelope = read_envelope(path).map_err(|e| e.to_string())?;
        if let Err(e) = check.push(&envelope) {
            return fail(format!("dataset.json: {e}"), Some(*index));
        }
    }
    if let Err(e) = check.finish() {
        return fail(format!("dataset.json: {e}"), None);
    }
    Ok(DirOutcome {
        chunks,
        failure: None,
        dataset_checked: true,
    })
}

/// The inclusion proof (JSON text) of chunk `index` of the signed dataset in `chunk_dir`.
#[pyfunction]
pub fn prove_inclusion(py: Python<'_>, chunk_dir: PathBuf, index: u64) -> PyResult<String> {
    py.detach(|| {
        let dataset = read_dataset(&chunk_dir)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: no dataset.json", chunk_dir.display()))?;
        let list = sealstream_files::layout::list_chain_from(&chunk_dir, dataset.first_index)
            .map_err(|e| e.to_string())?;
        let ids = list
            .iter()
            .take(usize::try_from(dataset.chunk_count).unwrap_or(usize::MAX))
            .map(|(_, p)| {
                read_envelope(p)
                    .map(|e| e.chunk_id)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = index
            .checked_sub(dataset.first_index)
            .ok_or_else(|| format!("index: the dataset starts at chunk {}", dataset.first_index))?;
        let proof =
            InclusionProof::build(&ids, dataset.first_index, leaf).map_err(|e| e.to_string())?;
        Ok::<_, String>(json::write::to_python_compact(&proof.to_json()))
    })
    .map_err(chain)
}

fn parse_json(text: &str, what: &str) -> PyResult<Value> {
    json::parse(text.as_bytes()).map_err(|e| chain(format!("{what}: {e}")))
}

/// Check one chunk (envelope JSON and ciphertext) against a signed dataset (JSON) with its
/// inclusion proof (JSON), without any other chunk: the dataset's signatures (by its
/// machine, or one of `dataset_signers`), the chunk's hash, id and signature, that the
/// dataset's chain key signed it, and the Merkle path to the signed root. Raises on
/// failure.
#[pyfunction]
#[pyo3(signature = (dataset_json, proof_json, envelope_json, ciphertext, dataset_signers=Vec::new()))]
pub fn verify_inclusion(
    py: Python<'_>,
    dataset_json: &str,
    proof_json: &str,
    envelope_json: &str,
    ciphertext: PyBackedBytes,
    dataset_signers: Vec<String>,
) -> PyResult<()> {
    let dataset = DatasetManifest::from_json(&parse_json(dataset_json, "dataset")?)
        .map_err(|e| chain(format!("dataset: {e}")))?;
    let proof = InclusionProof::from_json(&parse_json(proof_json, "proof")?)
        .map_err(|e| chain(format!("proof: {e}")))?;
    let envelope = ChunkEnvelope::from_json(&parse_json(envelope_json, "envelope")?)
        .map_err(|e| chain(format!("envelope: {e}")))?;
    let signers: Vec<&str> = dataset_signers.iter().map(String::as_str).collect();
    py.detach(|| verify_chunk_allowing(&dataset, &proof, &envelope, &ciphertext, &signers))
        .map_err(|e| chain(format!("chunk {}: {e}", envelope.index)))
}

/// Grant a buyer every chunk of `chunk_dir` with the owner's key, writing
/// `<buyer_public_key_hex>-<n>.json` access files into `out_dir` (as `peaqos stream grant`
/// does), re-wrapping on every core: `{"chunks": n, "files": [(name, size)…]}`.
#[pyfunction]
#[pyo3(signature = (chunk_dir, out_dir, *, owner_private_key_hex, buyer_recipient_id, buyer_public_key_hex, max_file_size=512_000, parallelism=None))]
#[allow(clippy::too_many_arguments)]
pub fn grant_dir<'py>(
    py: Python<'py>,
    chunk_dir: PathBuf,
    out_dir: PathBuf,
    owner_private_key_hex: &str,
    buyer_recipient_id: &str,
    buyer_public_key_hex: &str,
    max_file_size: usize,
    parallelism: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let owner = Arc::new(
        RecipientSecretKey::from_hex(
            owner_private_key_hex
                .strip_prefix("0x")
                .unwrap_or(owner_private_key_hex),
            "owner_private_key_hex",
        )
        .map_err(from_core)?,
    );
    let buyer = Buyer::new(buyer_recipient_id, buyer_public_key_hex).map_err(from_core)?;
    let threads = self::parallelism(parallelism);
    let summary = py
        .detach(|| {
            sealstream_files::grant::grant_dir(
                &chunk_dir,
                owner,
                &buyer,
                max_file_size,
                &out_dir,
                threads,
                &mut |_| {},
            )
        })
        .map_err(chain)?;
    let d = PyDict::new(py);
    d.set_item("chunks", summary.chunks)?;
    d.set_item("files", summary.files)?;
    Ok(d)
}

/// Register this module's functions and classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ChainWriter>()?;
    m.add_class::<ChainReader>()?;
    m.add_function(wrap_pyfunction!(verify_dir, m)?)?;
    m.add_function(wrap_pyfunction!(grant_dir, m)?)?;
    m.add_function(wrap_pyfunction!(prove_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(verify_inclusion, m)?)?;
    Ok(())
}
