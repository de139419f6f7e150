//! Consume a purchased chain as `peaqos stream consume` does: read the chunk,
//! access and data directories, verify the chain, decrypt every chunk with
//! the buyer's key, and reassemble the plaintext in index order.
//!
//! One streaming pass: ciphertexts are read once, hashed, signature-checked
//! and decrypted on worker threads, linked and written in order on the
//! caller's thread. The output goes to a temporary file that is renamed onto
//! the destination only if everything checks out — including, beyond the
//! reference, the manifest's `sourceHash` when there is one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::layout::{
    list_chain_from, read_ciphertext_into, read_envelope, FileError, ReadChainError,
};
use crate::staging::TempFile;
use sealstream_core::access::{read_access_file, AccessReadError};
use sealstream_core::chunk::{
    ChainItem, ChainReadError, ChainReadSummary, ChainReader, ChainReaderOptions, ChainState,
    DecryptError, KeyRecipient, PublishManifest, VerifyError,
};
use sealstream_core::dataset::{DatasetManifest, DatasetMismatch, DatasetVerifier};
use sealstream_core::gap::{Gap, GapScanner};
use sealstream_core::json;
use sealstream_core::keys::RecipientSecretKey;

/// Where the inputs are and who reads them.
#[derive(Debug)]
pub struct ConsumeRequest<'a> {
    /// Directory of `chunk-N.json` (and `manifest.json`).
    pub chunk_dir: &'a Path,
    /// Directory of `chunk-N.bin`.
    pub data_dir: &'a Path,
    /// Directory of buyer access files (`*.json`).
    pub access_dir: &'a Path,
    /// The buyer id the access entries are for.
    pub buyer_id: &'a str,
    /// The buyer's X25519 secret key.
    pub buyer_key: Arc<RecipientSecretKey>,
    /// Verify the chain (hashes, links, ids, signatures) while decrypting.
    pub verify: bool,
    /// DIDs whose EIP-191 signature of `dataset.json` is accepted besides
    /// the machine's (the owner who signed its machine's dataset).
    pub dataset_signers: &'a [String],
    /// Worker threads.
    pub parallelism: usize,
}

/// What [`consume_to_file`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeSummary {
    /// Chunks decrypted.
    pub chunks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The manifest's `sourceHash` (empty if there is no manifest).
    pub source_hash: String,
    /// `0x` + SHA-256 of the output.
    pub output_hash: String,
    /// Whether the chain was verified.
    pub verified: bool,
    /// The gap records (`sealstream.gap.v1`) found in the decrypted chunks,
    /// in chain order.
    pub gaps: Vec<Gap>,
}

/// A gap record found while consuming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundGap {
    /// The chunk its line ends in.
    pub chunk: u64,
    /// The gap.
    pub gap: Gap,
}

/// Why a consume failed. Each names the file or chunk concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// The chunk directory is unreadable or inconsistent.
    #[error(transparent)]
    Chain(#[from] ReadChainError),
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// No access files at all.
    #[error("{}: no buyer access files (*.json) found", .0.display())]
    NoAccessFiles(PathBuf),
    /// An access file is malformed.
    #[error("{}: {source}", path.display())]
    AccessFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: AccessReadError,
    },
    /// The manifest is malformed.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A chunk has no ciphertext file.
    #[error("{}: missing encrypted data for chunk {index}", path.display())]
    MissingCiphertext {
        /// The expected file.
        path: PathBuf,
        /// The chunk index.
        index: u64,
    },
    /// No access entry for a chunk.
    #[error("no buyer access for chunk {index} ({chunk_id}) for buyer {buyer_id}")]
    NoAccess {
        /// The chunk index.
        index: u64,
        /// The chunk id.
        chunk_id: String,
        /// The buyer id looked for.
        buyer_id: String,
    },
    /// The chain reader failed in a way this version does not name.
    #[error("reading the chain: {0}")]
    Reader(String),
    /// The chain does not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A chunk does not decrypt.
    #[error("chunk {index}: {error}")]
    Decrypt {
        /// The chunk index.
        index: u64,
        /// What went wrong.
        error: DecryptError,
    },
    /// The chain is not the one `dataset.json` commits to.
    #[error("{}: {mismatch}", path.display())]
    Dataset {
        /// The dataset manifest.
        path: PathBuf,
        /// What differs.
        mismatch: DatasetMismatch,
    },
    /// A data package in the chunks names the gap schema
    /// (`sealstream.gap.v1`) but its payload is not a gap (checked when
    /// verifying).
    #[error("chunk {chunk}: {message} (a package of schemaVersion sealstream.gap.v1 whose payload is not a gap)")]
    GapRecord {
        /// The chunk its line ends in.
        chunk: u64,
        /// What is wrong.
        message: String,
    },
    /// The reassembled bytes do not hash to the manifest's `sourceHash`.
    #[error("reassembled data does not match sourceHash of {}", manifest.display())]
    SourceHash {
        /// The manifest.
        manifest: PathBuf,
    },
}

/// Read all access entries of `buyer_id` in `access_dir` (files sorted by name).
pub fn read_access_dir(
    access_dir: &Path,
    buyer_id: &str,
) -> Result<HashMap<String, KeyRecipient>, ConsumeError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(access_dir)
        .map_err(|e| FileError::new(access_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    if paths.is_empty() {
        return Err(ConsumeError::NoAccessFiles(access_dir.to_path_buf()));
    }
    paths.sort();
    let mut access = HashMap::new();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| FileError::new(&path, e))?;
        read_access_file(&bytes, buyer_id, &mut access)
            .map_err(|source| ConsumeError::AccessFile { path, source })?;
    }
    Ok(access)
}

/// The publish manifest, if `chunk_dir/manifest.json` exists.
pub fn read_manifest(chunk_dir: &Path) -> Result<Option<PublishManifest>, ConsumeError> {
    let path = chunk_dir.join("manifest.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::new(path, e).into()),
    };
    let value = json::parse(&bytes).map_err(|e| ConsumeError::Manifest {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let manifest = PublishManifest::from_json(&value).map_err(|e| ConsumeError::Manifest {
        path,
        message: e.to_string(),
    })?;
    Ok(Some(manifest))
}

/// The dataset manifest, if `chunk_dir/dataset.json` exists.
pub fn read_dataset(chunk_dir: &Path) -> Result<Option<DatasetManifest>, ConsumeError> {
    let path = chunk_dir.join("dataset.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::new(path, e).into()),
    };
    DatasetManifest::parse(&bytes)
        .map(Some)
        .map_err(|e| ConsumeError::Manifest {
            path,
            message: e.to_string(),
        })
}

/// Written plaintext buffers kept by [`consume_to_file`] to read the next
/// ciphertexts into. Without them the allocator gives some of their memory
/// back to the kernel and faults it in again, which is slow on a VM whose
/// host takes freed memory back. They add at most four chunks to the
/// reader's `4 × parallelism`.
const RECYCLED_BUFFERS: usize = 4;

/// Verify, decrypt and reassemble into `output` (atomically).
/// `progress` is called with the number of plaintext bytes written, and
/// `on_gap` with each gap record in the plaintext as it is found (before the
/// rest is checked: a failure afterwards does not take it back). When
/// verifying, the gap records found must be the `gaps` of `dataset.json`.
pub fn consume_to_file(
    req: &ConsumeRequest<'_>,
    output: &Path,
    progress: &mut dyn FnMut(u64),
    on_gap: &mut dyn FnMut(&FoundGap),
) -> Result<ConsumeSummary, ConsumeError> {
    let mut tmp = TempFile::new(output)?;
    let summary = {
        // Small plaintexts are gathered; one of 64 KiB or more (a chunk of
        // the default size) goes to the file as it is, without a copy.
        let mut out = BufWriter::with_capacity(64 << 10, &mut tmp);
        let buffers = RefCell::new(Vec::with_capacity(RECYCLED_BUFFERS));
        let summary = consume_owned(
            req,
            &mut |plaintext: Vec<u8>| {
                out.write_all(&plaintext)
                    .map_err(|e| FileError::new(output, e))?;
                progress(plaintext.len() as u64);
                let mut kept = buffers.borrow_mut();
                if kept.len() < RECYCLED_BUFFERS {
                    kept.push(plaintext);
                }
                Ok(())
            },
            on_gap,
            Some(&buffers),
        )?;
        out.flush().map_err(|e| FileError::new(output, e))?;
        summary
    };
    tmp.commit()?;
    Ok(summary)
}

/// Verify and decrypt the chain of `req`, giving each chunk's plaintext to
/// `deliver` in chain order as soon as it is decrypted (and, when verifying,
/// verified), with at most `4 × parallelism` chunks in memory.
///
/// What can only be checked at the end — the manifest's and the dataset's
/// `sourceHash`, the dataset's gaps — is checked after the last chunk: until
/// this returns `Ok`, what was delivered is not known to be the whole chain.
/// An error from `deliver` stops the read and is returned.
pub fn consume_chunks(
    req: &ConsumeRequest<'_>,
    deliver: &mut dyn FnMut(&[u8]) -> Result<(), ConsumeError>,
    on_gap: &mut dyn FnMut(&FoundGap),
) -> Result<ConsumeSummary, ConsumeError> {
    consume_owned(req, &mut |plaintext| deliver(&plaintext), on_gap, None)
}

/// [`consume_chunks`] giving each plaintext away; ciphertexts are read into
/// the buffers left in `recycled` while it has some.
fn consume_owned(
    req: &ConsumeRequest<'_>,
    deliver: &mut dyn FnMut(Vec<u8>) -> Result<(), ConsumeError>,
    on_gap: &mut dyn FnMut(&FoundGap),
    recycled: Option<&RefCell<Vec<Vec<u8>>>>,
) -> Result<ConsumeSummary, ConsumeError> {
    // A dataset manifest, when present, is checked as the chain streams by;
    // it also says where the chain starts: a dataset sold out of the middle
    // of a chain starts at its `firstIndex`, pinned by its `firstChunkId`
    // and root. Without verification it only gives that start.
    let dataset = if req.verify {
        read_dataset(req.chunk_dir)?
    } else {
        read_dataset(req.chunk_dir).ok().flatten()
    };
    let first = dataset.as_ref().map_or(0, |d| d.first_index);
    let list = list_chain_from(req.chunk_dir, first)?;
    let access = read_access_dir(req.access_dir, req.buyer_id)?;
    let manifest = read_manifest(req.chunk_dir)?;
    if let Some(m) = &manifest {
        if m.total_chunks != list.len() as u64 {
            return Err(ConsumeError::Manifest {
                path: req.chunk_dir.join("manifest.json"),
                message: format!(
                    "totalChunks is {}, the chain has {} chunks (chunks dropped or appended)",
                    m.total_chunks,
                    list.len()
                ),
            });
        }
    }
    let source_hash = manifest.map(|m| m.source_hash);
    let dataset = if req.verify { dataset } else { None };
    let dataset_path = req.chunk_dir.join("dataset.json");
    let dataset_check = match &dataset {
        Some(d) => Some(
            DatasetVerifier::allowing(
                d,
                &req.dataset_signers
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
            .map_err(|mismatch| ConsumeError::Dataset {
                path: dataset_path.clone(),
                mismatch,
            })?,
        ),
        None => None,
    };
    // Every chunk needs its ciphertext before anything is decrypted.
    for (index, _) in &list {
        let path = req.data_dir.join(crate::layout::ciphertext_name(*index));
        if !path.is_file() {
            return Err(ConsumeError::MissingCiphertext {
                path,
                index: *index,
            });
        }
    }
    // A segment links on from its first chunk's previousChunkId, which the
    // chunk id (and so the dataset's firstChunkId and root) commits to.
    let start = match (first, list.first()) {
        (0, _) | (_, None) => None,
        (_, Some((_, path))) => Some(ChainState {
            next_index: first,
            previous_chunk_id: read_envelope(path)?.previous_chunk_id,
        }),
    };
    let items = list.iter().map(|(index, path)| {
        let envelope = read_envelope(path)?;
        let key =
            access
                .get(&envelope.chunk_id)
                .cloned()
                .ok_or_else(|| ConsumeError::NoAccess {
                    index: *index,
                    chunk_id: envelope.chunk_id.clone(),
                    buyer_id: req.buyer_id.to_string(),
                })?;
        let mut ciphertext = recycled
            .and_then(|r| r.borrow_mut().pop())
            .unwrap_or_default();
        if !read_ciphertext_into(req.data_dir, *index, &mut ciphertext)? {
            return Err(ConsumeError::MissingCiphertext {
                path: req.data_dir.join(crate::layout::ciphertext_name(*index)),
                index: *index,
            });
        }
        Ok(ChainItem {
            envelope,
            key,
            ciphertext,
        })
    });
    let mut reader = ChainReader::new(
        items,
        Arc::clone(&req.buyer_key),
        ChainReaderOptions {
            verify: req.verify,
            start,
            dataset: dataset_check,
            parallelism: req.parallelism,
        },
    );

    let mut scanner = GapScanner::new();
    let mut gaps = Vec::new();
    let mut found = |chunk: u64, result: Result<Gap, String>| match result {
        Ok(gap) => {
            let found = FoundGap { chunk, gap };
            on_gap(&found);
            gaps.push(found.gap);
            Ok(())
        }
        // Without verification a malformed record is passed over.
        Err(_) if !req.verify => Ok(()),
        Err(message) => Err(ConsumeError::GapRecord { chunk, message }),
    };
    {
        let mut chunk = first;
        loop {
            let plaintext = match reader.next_chunk() {
                Ok(Some(plaintext)) => plaintext,
                Ok(None) => break,
                Err(e) => return Err(consume_error(e, &dataset_path)),
            };
            for result in scanner.push(&plaintext) {
                found(chunk, result)?;
            }
            deliver(plaintext)?;
            chunk += 1;
        }
        if let Some(result) = scanner.finish() {
            found(chunk.saturating_sub(1), result)?;
        }
    }
    let ChainReadSummary {
        chunks,
        bytes,
        output_hash,
    } = reader
        .finish()
        .map_err(|e| consume_error(e, &dataset_path))?;
    if let Some(d) = &dataset {
        if d.source_hash != output_hash {
            return Err(ConsumeError::Dataset {
                path: dataset_path,
                mismatch: DatasetMismatch::SourceHash,
            });
        }
        d.check_gaps(&gaps)
            .map_err(|mismatch| ConsumeError::Dataset {
                path: dataset_path.clone(),
                mismatch,
            })?;
    }
    if let Some(expected) = &source_hash {
        if *expected != output_hash {
            return Err(ConsumeError::SourceHash {
                manifest: req.chunk_dir.join("manifest.json"),
            });
        }
    }
    Ok(ConsumeSummary {
        chunks,
        bytes,
        source_hash: source_hash.unwrap_or_default(),
        output_hash,
        verified: req.verify,
        gaps,
    })
}

/// A reader's failure as a consume error (the dataset's named by its file).
fn consume_error(error: ChainReadError<ConsumeError>, dataset: &Path) -> ConsumeError {
    match error {
        ChainReadError::Source(e) => e,
        ChainReadError::Verify(e) => ConsumeError::Verify(e),
        ChainReadError::Decrypt { index, error } => ConsumeError::Decrypt { index, error },
        ChainReadError::Dataset(mismatch) => ConsumeError::Dataset {
            path: dataset.to_path_buf(),
            mismatch,
        },
        // The loop stops at the first error and finishes only at the end, so
        // `Stopped` and `NotReadToEnd` do not occur; `ChainReadError` is
        // non-exhaustive: anything else is reported by its text.
        other => ConsumeError::Reader(other.to_string()),
    }
}
