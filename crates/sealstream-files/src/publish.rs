//! Publish a stream into a directory in the reference layout, as
//! `peaqos stream publish` does: `chunk-N.json`, `chunk-N.bin`, `manifest.json`.
//!
//! The input is streamed (memory stays near `4 × parallelism × chunk_size`);
//! files are staged and moved into the directory only when the whole chain and
//! its manifest are written, so a failed publish leaves nothing behind.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::layout::{write_atomic, DirectorySink, FileError, WriteMode};
use crate::staging::Staging;
use sealstream_core::chunk::{
    ChainConfig, ChainState, ChainWriter, ChunkSink, PublishManifest, SealedChunk, WriteError,
};
use sealstream_core::dataset::{DatasetBuilder, DatasetInfo, DatasetManifest};
use sealstream_core::gap::{Gap, GapScanner};
use sealstream_core::json::Map;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey};
use sealstream_core::ValidationError;

/// How to sign a `dataset.json` written next to `manifest.json`.
#[derive(Debug, Default)]
pub struct DatasetSigning {
    /// The machine's secp256k1 key: an EIP-191 signature verifiable from the DID alone.
    pub machine_key: Option<MachineSigningKey>,
    /// The chain key: an Ed25519 signature.
    pub chain_key: Option<ChainSigningKey>,
    /// Topic, capture times, schema version, samples (chunk size, source
    /// hash and gaps are filled in: the gap records are found in the input).
    pub info: DatasetInfo,
}

/// A sink that records what a dataset commits to on the way to another sink.
struct Recording<S> {
    inner: S,
    dataset: DatasetBuilder,
}

impl<S: ChunkSink> ChunkSink for Recording<S> {
    type Error = S::Error;
    fn put(&mut self, chunk: SealedChunk) -> Result<(), S::Error> {
        self.dataset
            .push(&chunk.envelope)
            .expect("the chain writer makes 32-byte chunk ids");
        self.inner.put(chunk)
    }
    fn finish(&mut self) -> Result<(), S::Error> {
        self.inner.finish()
    }
}

/// What [`publish_to_dir`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishSummary {
    /// The manifest written.
    pub manifest: PublishManifest,
    /// Path of `manifest.json`.
    pub manifest_path: PathBuf,
    /// Plaintext bytes read.
    pub bytes: u64,
    /// The dataset manifest written, if one was asked for.
    pub dataset: Option<DatasetManifest>,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The configuration is invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Reading the input failed.
    #[error("reading input: {0}")]
    Read(#[source] io::Error),
    /// Writing output failed.
    #[error(transparent)]
    Write(#[from] FileError),
    /// The chain writer failed in a way this version does not name.
    #[error("writing the chain: {0}")]
    Chain(String),
}

/// A reader that reports how many bytes went through it.
struct Counting<'a, R> {
    inner: R,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Chunk, encrypt, sign and link `input` into `out_dir` (created if missing);
/// with `dataset`, also write a signed `dataset.json`.
/// `progress` is called with the number of input bytes read, as they are read.
pub fn publish_to_dir<R: Read>(
    input: R,
    config: ChainConfig,
    out_dir: &Path,
    dataset: Option<DatasetSigning>,
    progress: &mut dyn FnMut(u64),
) -> Result<PublishSummary, PublishError> {
    let mut publisher = Publisher::new(config, out_dir, dataset)?;
    publisher.copy_from(Counting {
        inner: input,
        progress,
    })?;
    publisher.finish()
}

/// A publish fed piece by piece: [`Publisher::write`] (or
/// [`Publisher::copy_from`]) the stream, then [`Publisher::finish`], which
/// writes the manifest (and the signed dataset) and moves the chain into its
/// directory. Dropped unfinished, it leaves nothing in the directory (the
/// staging directory is removed).
pub struct Publisher {
    writer: ChainWriter<Recording<DirectorySink>>,
    staging: Staging,
    out_dir: PathBuf,
    machine_did: String,
    chunk_size: u64,
    dataset: Option<DatasetSigning>,
    gaps: Option<(GapScanner, Vec<Result<Gap, String>>)>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("out_dir", &self.out_dir)
            .field("machine_did", &self.machine_did)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Start a publish of a new chain into `out_dir` (staged beside it until
    /// [`Publisher::finish`]).
    pub fn new(
        config: ChainConfig,
        out_dir: &Path,
        dataset: Option<DatasetSigning>,
    ) -> Result<Self, PublishError> {
        if let Some(d) = &dataset {
            if d.machine_key.is_none() && d.chain_key.is_none() {
                return Err(ValidationError::new(
                    "dataset",
                    "needs a machine key or a chain key to sign with",
                )
                .into());
            }
            if let Some(k) = &d.chain_key {
                if k.public_key() != config.signing_key.public_key() {
                    return Err(ValidationError::new(
                        "dataset chain key",
                        "is not the chain signing key",
                    )
                    .into());
                }
            }
        }
        let machine_did = config.machine_did.clone();
        let chunk_size = config.chunk_size as u64;
        let staging = Staging::new(out_dir)?;
        // Staged and committed as a whole: no per-file sync (it would dominate
        // the run time) or rename. Two I/O threads: creating a file is the slow
        // part on many filesystems, and one thread's wait overlaps the other's.
        let sink = Recording {
            inner: DirectorySink::new(staging.path())?
                .mode(WriteMode::Staged)
                .io_threads(2),
            dataset: DatasetBuilder::new(),
        };
        let writer = ChainWriter::new(config, ChainState::new(), sink)?;
        // The dataset states the gap records in the chunks: found on the way in.
        let gaps = dataset.as_ref().map(|_| (GapScanner::new(), Vec::new()));
        Ok(Publisher {
            writer,
            staging,
            out_dir: out_dir.to_path_buf(),
            machine_did,
            chunk_size,
            dataset,
            gaps,
        })
    }

    /// Append bytes to the stream.
    pub fn write(&mut self, data: &[u8]) -> Result<(), PublishError> {
        if let Some((scanner, found)) = &mut self.gaps {
            found.extend(scanner.push(data));
        }
        self.writer.write(data).map_err(PublishError::Write)
    }

    /// Read `input` to its end into the stream; returns the bytes read.
    pub fn copy_from<R: Read>(&mut self, input: R) -> Result<u64, PublishError> {
        let gaps = &mut self.gaps;
        let mut input = Scanning { inner: input, gaps };
        self.writer.copy_from(&mut input).map_err(|e| match e {
            WriteError::Read(e) => PublishError::Read(e),
            WriteError::Sink(e) => PublishError::Write(e),
            // `WriteError` is non-exhaustive: a later failure is reported by its text.
            other => PublishError::Chain(other.to_string()),
        })
    }

    /// Seal the last chunk, write `manifest.json` (and `dataset.json`), and
    /// move the chain into its directory.
    pub fn finish(self) -> Result<PublishSummary, PublishError> {
        let Publisher {
            writer,
            staging,
            out_dir,
            machine_did,
            chunk_size,
            dataset,
            gaps,
        } = self;
        let (summary, sink) = writer.finish()?;
        let gaps = match gaps {
            None => Vec::new(),
            Some((scanner, mut found)) => {
                found.extend(scanner.finish());
                found
                    .into_iter()
                    .collect::<Result<Vec<Gap>, String>>()
                    .map_err(|e| ValidationError::new("input", e))?
            }
        };
        let manifest = PublishManifest {
            source_hash: summary.source_hash,
            total_chunks: summary.state.next_index,
            chunk_size,
            machine_did,
            created_at: sealstream_core::utc::now(),
            extra: Map::new(),
        };
        let staged_manifest = staging.path().join("manifest.json");
        write_atomic(&staged_manifest, manifest.to_pretty_json().as_bytes())
            .map_err(|e| FileError::new(&staged_manifest, e))?;
        let dataset = match dataset {
            None => None,
            Some(d) => {
                let mut info = d.info;
                info.chunk_size = chunk_size;
                info.source_hash = manifest.source_hash.clone();
                info.gaps = gaps;
                let mut m = sink
                    .dataset
                    .finish(info)
                    .expect("a chain has at least one chunk");
                if let Some(k) = &d.machine_key {
                    m.sign_eip191(k)?;
                }
                if let Some(k) = &d.chain_key {
                    m.sign_ed25519(k)?;
                }
                let path = staging.path().join("dataset.json");
                write_atomic(&path, m.to_pretty_json().as_bytes())
                    .map_err(|e| FileError::new(&path, e))?;
                Some(m)
            }
        };
        staging.commit()?;
        if dataset.is_none() {
            // A dataset.json of an earlier publish would describe another chain.
            let stale = out_dir.join("dataset.json");
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|e| FileError::new(&stale, e))?;
            }
        }
        remove_stale_chunks(&out_dir, manifest.total_chunks)?;
        Ok(PublishSummary {
            manifest,
            manifest_path: out_dir.join("manifest.json"),
            bytes: summary.bytes,
            dataset,
        })
    }
}

/// A reader that finds the gap records in what goes through it (when asked to).
struct Scanning<'a, R> {
    inner: R,
    gaps: &'a mut Option<(GapScanner, Vec<Result<Gap, String>>)>,
}

impl<R: Read> Read for Scanning<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((scanner, found)) = self.gaps.as_mut() {
            found.extend(scanner.push(&buf[..n]));
        }
        Ok(n)
    }
}

/// Remove `chunk-N.json`/`chunk-N.bin` with `N >= total` left by an earlier,
/// longer chain in the same directory, so the directory holds one chain.
fn remove_stale_chunks(dir: &Path, total: u64) -> Result<(), FileError> {
    for entry in std::fs::read_dir(dir).map_err(|e| FileError::new(dir, e))? {
        let entry = entry.map_err(|e| FileError::new(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let index = name
            .strip_prefix("chunk-")
            .and_then(|rest| {
                rest.strip_suffix(".json")
                    .or_else(|| rest.strip_suffix(".bin"))
            })
            .and_then(|n| n.parse::<u64>().ok());
        if matches!(index, Some(i) if i >= total) {
            std::fs::remove_file(entry.path()).map_err(|e| FileError::new(entry.path(), e))?;
        }
    }
    Ok(())
}
