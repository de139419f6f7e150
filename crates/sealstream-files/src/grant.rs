//! Grant a buyer access to a chain directory, as `peaqos stream grant`
//! does: every chunk key re-wrapped from the owner to the buyer
//! ([`sealstream_core::access::GrantStream`]), written as
//! `<buyerPublicKeyHex>-<n>.json` files that are staged and moved into place
//! only when all are written.

use std::path::Path;
use std::sync::Arc;

use sealstream_core::access::{AccessFile, Buyer, GrantError, GrantStream};
use sealstream_core::keys::RecipientSecretKey;
use sealstream_core::ValidationError;

use crate::layout::{list_chain, read_envelope, write_atomic, FileError, ReadChainError};
use crate::staging::Staging;

/// What [`grant_dir`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantSummary {
    /// Chunks granted.
    pub chunks: u64,
    /// Files written, in order, with their sizes in bytes.
    pub files: Vec<(String, u64)>,
}

/// Why [`grant_dir`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantDirError {
    /// The chunk directory is unreadable or inconsistent.
    #[error(transparent)]
    Chain(#[from] ReadChainError),
    /// A chunk key could not be re-wrapped.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// Writing output failed.
    #[error(transparent)]
    Write(#[from] FileError),
    /// An option is invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
}

/// Grant `buyer` access to every chunk in `chunk_dir` with the owner's key,
/// writing `<buyerPublicKeyHex>-<n>.json` files into `out_dir` as
/// `peaqos stream grant` does. Re-wrapping runs on `parallelism` threads;
/// files are staged and moved into place only when all are written.
pub fn grant_dir(
    chunk_dir: &Path,
    owner: Arc<RecipientSecretKey>,
    buyer: &Buyer,
    max_file_size: usize,
    out_dir: &Path,
    parallelism: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<GrantSummary, GrantDirError> {
    let list = list_chain(chunk_dir)?;
    let grant = GrantStream::new(owner, buyer, max_file_size, parallelism)?;
    let staging = Staging::new(out_dir)?;
    let staged = staging.path().to_path_buf();
    let mut files = Vec::new();
    let mut write_file = |file: AccessFile| -> Result<(), GrantDirError> {
        let bytes = file.to_bytes();
        let path = staged.join(&file.file_name);
        write_atomic(&path, &bytes).map_err(|e| FileError::new(&path, e))?;
        files.push((file.file_name, bytes.len() as u64));
        Ok(())
    };
    // Each envelope is read and parsed on the workers, beside its re-wrap.
    let paths = list.into_iter().map(|(_, path)| path);
    let chunks = grant.run_loading(
        paths,
        |path| read_envelope(&path).map_err(GrantDirError::from),
        &mut write_file,
        progress,
    )?;
    staging.commit()?;
    Ok(GrantSummary { chunks, files })
}
