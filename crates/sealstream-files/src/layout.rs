//! The reference's directory layout of a published chain: `chunk-N.json`
//! (pretty envelope), `chunk-N.bin` (ciphertext), `manifest.json`.
//!
//! Every file is written to a temporary name in the same directory, synced,
//! and renamed into place, so a reader never sees a partial file and a crash
//! leaves either the old state or the new one; except in a staging directory,
//! which is committed as a whole ([`WriteMode::Staged`]).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sealstream_core::chunk::{ChunkEnvelope, ChunkSink, EnvelopeParseError, SealedChunk};
use sealstream_core::pool::{default_parallelism, map_in_order};

/// Write `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, true)
}

/// The directory a file at `path` is in (`.` for a bare name) and its
/// name: where a temporary file to rename onto it goes. An error for a
/// path without a file name (`/`, `..`).
pub fn dir_and_name(path: &Path) -> io::Result<(&Path, &std::ffi::OsStr)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok((dir, name))
}

/// Write `bytes` to `path` atomically (temporary file, fsync, rename),
/// readable and writable by its user only (0600 on Unix): a receipt, which
/// names its buyer and what they paid.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, true, true)
}

/// Write `bytes` to `path` through a temporary file and a rename; with
/// `durable`, the data is synced to disk before the rename.
pub fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    write_with(path, bytes, durable, false)
}

/// [`write_replace`], the file created 0600 (on Unix) when `private`.
fn write_with(path: &Path, bytes: &[u8], durable: bool, private: bool) -> io::Result<()> {
    let (dir, name) = dir_and_name(path)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_data()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `chunk-N.json` of index `n`.
pub fn envelope_name(index: u64) -> String {
    format!("chunk-{index}.json")
}

/// `chunk-N.bin` of index `n`.
pub fn ciphertext_name(index: u64) -> String {
    format!("chunk-{index}.bin")
}

/// An I/O failure with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: io::Error,
}

impl FileError {
    /// Attach `path` to an I/O error.
    pub fn new(path: impl Into<PathBuf>, source: io::Error) -> Self {
        FileError {
            path: path.into(),
            source,
        }
    }
}

/// A [`ChunkSink`] that writes the reference layout into a directory.
///
/// With [`DirectorySink::io_threads`], files are written by a small pool of
/// I/O threads (bounded queue; errors surface at the next `put` or at
/// `finish`), which helps on filesystems where creating a file is slow.
#[derive(Debug)]
pub struct DirectorySink {
    dir: PathBuf,
    written: u64,
    mode: WriteMode,
    io: Option<IoPool>,
}

/// How a [`DirectorySink`] writes each file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteMode {
    /// To a temporary name, synced to disk, and renamed into place: a reader
    /// never sees a partial file and a crash keeps the file whole.
    #[default]
    Durable,
    /// Created under its own name (which must not exist) and written in
    /// place, without a sync: for a staging directory that is committed as a
    /// whole ([`crate::staging::Staging`]) and can be produced again.
    Staged,
}

impl WriteMode {
    fn write(self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match self {
            WriteMode::Durable => write_replace(path, bytes, true),
            WriteMode::Staged => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?
                .write_all(bytes),
        }
    }
}

/// Files waiting per I/O thread: enough that a slow file creation (the
/// filesystem can take a millisecond now and then) does not stop the
/// chain writer.
const IO_QUEUE_PER_THREAD: usize = 4;

#[derive(Debug)]
struct IoPool {
    jobs: Option<crossbeam_channel::Sender<(PathBuf, Vec<u8>)>>,
    errors: crossbeam_channel::Receiver<FileError>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl IoPool {
    fn new(n: usize, mode: WriteMode) -> Self {
        let (job_tx, job_rx) =
            crossbeam_channel::bounded::<(PathBuf, Vec<u8>)>(IO_QUEUE_PER_THREAD * n.max(1));
        let (err_tx, err_rx) = crossbeam_channel::unbounded();
        let threads = (0..n.max(1))
            .map(|i| {
                let job_rx = job_rx.clone();
                let err_tx = err_tx.clone();
                std::thread::Builder::new()
                    .name(format!("sealstream-io-{i}"))
                    .spawn(move || {
                        for (path, bytes) in job_rx {
                            if let Err(e) = mode.write(&path, &bytes) {
                                let _ = err_tx.send(FileError::new(path, e));
                            }
                        }
                    })
                    .expect("spawning an I/O thread")
            })
            .collect();
        IoPool {
            jobs: Some(job_tx),
            errors: err_rx,
            threads,
        }
    }

    fn check(&self) -> Result<(), FileError> {
        match self.errors.try_recv() {
            Ok(e) => Err(e),
            Err(_) => Ok(()),
        }
    }

    fn send(&self, path: PathBuf, bytes: Vec<u8>) -> Result<(), FileError> {
        self.check()?;
        self.jobs
            .as_ref()
            .expect("I/O pool open until finish")
            .send((path, bytes))
            .map_err(|_| FileError::new("", io::Error::other("I/O threads stopped")))
    }

    fn finish(&mut self) -> Result<(), FileError> {
        self.jobs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.check()
    }
}

impl Drop for IoPool {
    fn drop(&mut self) {
        self.jobs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl DirectorySink {
    /// Write into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, FileError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| FileError::new(&dir, e))?;
        Ok(DirectorySink {
            dir,
            written: 0,
            mode: WriteMode::Durable,
            io: None,
        })
    }

    /// How each file is written (default: [`WriteMode::Durable`]). Set it
    /// before [`DirectorySink::io_threads`].
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Write files on `n` background I/O threads.
    pub fn io_threads(mut self, n: usize) -> Self {
        self.io = Some(IoPool::new(n, self.mode));
        self
    }

    /// Chunks written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl ChunkSink for DirectorySink {
    type Error = FileError;
    fn put(&mut self, chunk: SealedChunk) -> Result<(), FileError> {
        let index = chunk.envelope.index;
        let bin = self.dir.join(ciphertext_name(index));
        let json = self.dir.join(envelope_name(index));
        let envelope = chunk.envelope.to_pretty_json().into_bytes();
        match &self.io {
            Some(io) => {
                io.send(bin, chunk.ciphertext)?;
                io.send(json, envelope)?;
            }
            None => {
                // Ciphertext first: an envelope on disk always has its ciphertext.
                self.mode
                    .write(&bin, &chunk.ciphertext)
                    .map_err(|e| FileError::new(&bin, e))?;
                self.mode
                    .write(&json, &envelope)
                    .map_err(|e| FileError::new(&json, e))?;
            }
        }
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), FileError> {
        match &mut self.io {
            Some(io) => io.finish(),
            None => Ok(()),
        }
    }
}

/// Why a chain directory could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadChainError {
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] FileError),
    /// An envelope is malformed.
    #[error("{}: {source}", path.display())]
    Envelope {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: EnvelopeParseError,
    },
    /// No `chunk-*.json` at all.
    #[error("{}: no chunk files (chunk-*.json) found", dir.display())]
    NoChunks {
        /// The directory.
        dir: PathBuf,
    },
    /// Two envelopes claim the same index.
    #[error("{}: duplicate chunk at index {index}", path.display())]
    Duplicate {
        /// The second file with that index.
        path: PathBuf,
        /// The index.
        index: u64,
    },
    /// An index between the first (0, or a dataset's `firstIndex`) and the
    /// highest is missing.
    #[error("{}: missing chunk at index {index}", dir.display())]
    Missing {
        /// The directory.
        dir: PathBuf,
        /// The first missing index.
        index: u64,
    },
}

/// The envelope files of a chain directory, ordered by the index inside each
/// envelope (as the reference orders them), checked to be 0..n without gaps
/// or duplicates. Only the file list and indexes are kept in memory; read the
/// envelopes again with [`read_envelope`] while streaming.
pub fn list_chain(dir: &Path) -> Result<Vec<(u64, PathBuf)>, ReadChainError> {
    list_chain_from(dir, 0)
}

/// As [`list_chain`], for a segment of a chain that starts at index
/// `first` (a dataset sold out of the middle of a chain): the indexes must
/// be `first..first + n` without gaps or duplicates.
pub fn list_chain_from(dir: &Path, first: u64) -> Result<Vec<(u64, PathBuf)>, ReadChainError> {
    let mut paths = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| FileError::new(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FileError::new(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("chunk-") && name.ends_with(".json") {
            paths.push(entry.path());
        }
    }
    // Each envelope states its index: read on all cores.
    let mut found = map_in_order(paths, default_parallelism(), |path| {
        read_envelope(&path).map(|env| (env.index, path))
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    if found.is_empty() {
        return Err(ReadChainError::NoChunks {
            dir: dir.to_path_buf(),
        });
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    for pair in found.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(ReadChainError::Duplicate {
                path: pair[1].1.clone(),
                index: pair[1].0,
            });
        }
    }
    for (offset, (index, _)) in found.iter().enumerate() {
        let expected = first + offset as u64;
        if *index != expected {
            return Err(ReadChainError::Missing {
                dir: dir.to_path_buf(),
                index: expected,
            });
        }
    }
    Ok(found)
}

/// Read and parse one envelope file.
pub fn read_envelope(path: &Path) -> Result<ChunkEnvelope, ReadChainError> {
    let bytes = fs::read(path).map_err(|e| FileError::new(path, e))?;
    ChunkEnvelope::parse(&bytes).map_err(|source| ReadChainError::Envelope {
        path: path.to_path_buf(),
        source,
    })
}

/// Read a ciphertext file; `Ok(None)` if it does not exist.
pub fn read_ciphertext(data_dir: &Path, index: u64) -> Result<Option<Vec<u8>>, FileError> {
    let mut bytes = Vec::new();
    Ok(read_ciphertext_into(data_dir, index, &mut bytes)?.then_some(bytes))
}

/// [`read_ciphertext`] into `buf` (emptied first; its allocation is kept
/// when large enough): `Ok(false)` if the file does not exist.
pub fn read_ciphertext_into(
    data_dir: &Path,
    index: u64,
    buf: &mut Vec<u8>,
) -> Result<bool, FileError> {
    let path = data_dir.join(ciphertext_name(index));
    buf.clear();
    let read = fs::File::open(&path).and_then(|mut file| {
        let size = file.metadata()?.len();
        buf.reserve(usize::try_from(size).unwrap_or(0));
        file.read_to_end(buf)
    });
    match read {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FileError::new(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_writes_are_0600_and_replace_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.pdf");
        write_atomic(&path, b"old").unwrap();
        write_atomic_private(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_ciphertext_is_read_into_a_kept_buffer() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ciphertext_name(0)), vec![7u8; 5000]).unwrap();
        fs::write(dir.path().join(ciphertext_name(1)), b"short").unwrap();
        let mut buf = Vec::new();
        assert!(read_ciphertext_into(dir.path(), 0, &mut buf).unwrap());
        assert_eq!(buf, vec![7u8; 5000]);
        let allocation = buf.as_ptr();
        // A smaller file replaces the contents in the same allocation.
        assert!(read_ciphertext_into(dir.path(), 1, &mut buf).unwrap());
        assert_eq!(buf, b"short");
        assert_eq!(buf.as_ptr(), allocation);
        // A missing file is no error, and leaves the buffer empty.
        assert!(!read_ciphertext_into(dir.path(), 2, &mut buf).unwrap());
        assert!(buf.is_empty());
        assert_eq!(read_ciphertext(dir.path(), 2).unwrap(), None);
        assert_eq!(
            read_ciphertext(dir.path(), 1).unwrap().as_deref(),
            Some(&b"short"[..])
        );
    }
}
