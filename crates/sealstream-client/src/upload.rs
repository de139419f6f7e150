//! Uploading a chain directory (`chunk-N.json` and `chunk-N.bin`, in the
//! reference layout) to the server, from the first chunk it does not hold,
//! then its `dataset.json`: `sealstream market upload` and
//! `sealstream publish --to`.

use crate::market::{with_retries, ClientError, MarketClient};

/// What [`upload_chain_dir`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainUpload {
    /// Chunks in the directory.
    pub chunks: u64,
    /// Chunks the server stored now.
    pub stored: u64,
    /// Chunks the server already held (skipped or accepted as duplicates).
    pub already_held: u64,
    /// The dataset id, when `dataset.json` was uploaded.
    pub dataset_id: Option<String>,
}

/// Why a chain directory could not be uploaded.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The directory's chain could not be read.
    #[error(transparent)]
    Read(#[from] sealstream_files::layout::ReadChainError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The server refused or could not be reached (after retries).
    #[error("chunk {index}: {source}")]
    Chunk {
        /// The chain index.
        index: u64,
        /// The failure.
        source: ClientError,
    },
    /// The server refused `dataset.json` or could not be reached.
    #[error("dataset.json: {0}")]
    Dataset(ClientError),
    /// The server could not be asked what it holds.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Uploads the chain in `dir` (`chunk-N.json` and `chunk-N.bin`, in the
/// reference layout) as `topic`, from the first chunk the server does not
/// hold yet, then `dataset.json` if present. Each request is retried up to
/// `attempts` times on transient failures; `progress` hears each chunk's
/// ciphertext size, `log` each retry.
pub fn upload_chain_dir(
    client: &mut MarketClient,
    topic: &str,
    dir: &std::path::Path,
    attempts: u32,
    progress: &mut dyn FnMut(u64),
    log: &mut dyn FnMut(&str),
) -> Result<ChainUpload, UploadError> {
    use sealstream_files::layout::{ciphertext_name, list_chain};
    let chain = list_chain(dir)?;
    let (count, head) = with_retries(
        attempts,
        || client.chain_head(topic),
        |e, wait| log(&format!("{e}; retrying in {:.1} s", wait.as_secs_f64())),
    )?;
    // Skip what the server holds only when it is this chain: its head is
    // our chunk at the same index. Otherwise send everything and let the
    // server judge (the same chunks are accepted again; another chain's
    // are refused with the reason).
    let held = match (count.checked_sub(1), head) {
        (Some(last), Some(head)) => match chain.iter().find(|(i, _)| *i == last) {
            Some((_, path)) => {
                let envelope = sealstream_files::layout::read_envelope(path)?;
                if envelope.chunk_id == head {
                    count
                } else {
                    0
                }
            }
            None => 0,
        },
        _ => 0,
    };
    let mut summary = ChainUpload {
        chunks: chain.len() as u64,
        ..ChainUpload::default()
    };
    let read = |path: std::path::PathBuf| {
        std::fs::read(&path).map_err(|source| UploadError::File {
            path: path.display().to_string(),
            source,
        })
    };
    for (index, envelope_path) in &chain {
        if *index < held {
            summary.already_held += 1;
            continue;
        }
        let envelope = read(envelope_path.clone())?;
        let ciphertext = read(dir.join(ciphertext_name(*index)))?;
        let uploaded = with_retries(
            attempts,
            || client.upload_chunk(topic, *index, &envelope, &ciphertext),
            |e, wait| {
                log(&format!(
                    "chunk {index}: {e}; retrying in {:.1} s",
                    wait.as_secs_f64()
                ))
            },
        )
        .map_err(|source| UploadError::Chunk {
            index: *index,
            source,
        })?;
        if uploaded.stored {
            summary.stored += 1;
        } else {
            summary.already_held += 1;
        }
        progress(ciphertext.len() as u64);
    }
    let dataset = dir.join("dataset.json");
    if dataset.is_file() {
        let bytes = read(dataset)?;
        let id = with_retries(
            attempts,
            || client.upload_dataset(&bytes),
            |e, wait| {
                log(&format!(
                    "dataset.json: {e}; retrying in {:.1} s",
                    wait.as_secs_f64()
                ))
            },
        )
        .map_err(UploadError::Dataset)?;
        summary.dataset_id = Some(id);
    }
    Ok(summary)
}
