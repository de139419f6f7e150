//! Storage limits on uploads (docs/market-design.md, "Limits"): per-owner
//! quotas of ciphertext bytes and chunks, and a floor of free disk space.
//!
//! - **Usage** is what the owner's machines hold: the sum of the `chains`
//!   rows (`bytes`, `chunk_count`) of every machine registered to the
//!   owner, so it follows the chains and needs no counter of its own
//!   (read by `ingest::db::owner_usage`).
//! - **Quotas** are checked twice per chunk upload: before any ciphertext
//!   is read (no room for one more chunk: refused at once; the bytes left
//!   bound the streaming), and again with the chunk's size inside the
//!   transaction that stores it. That transaction serialises the owner's
//!   uploads: SQLite's `BEGIN IMMEDIATE` holds the one write lock, and on
//!   PostgreSQL a transaction-scoped advisory lock on the owner is taken
//!   first (`ingest::db::lock_owner`). So concurrent uploads never store
//!   more than the quota.
//! - **The disk floor** is checked before an upload (chunk or grant) is
//!   accepted: uploads are refused while a local disk the server writes
//!   to (the object directory, and the data directory holding a SQLite
//!   database) has less free space than the floor. An S3 object store and
//!   a PostgreSQL database are not measured.
//!
//! Refusals are 507 naming the limit (`owner-quota-bytes`,
//! `owner-quota-chunks`, `min-free-disk`); the message gives the limit and
//! the owner's usage, never the free space left.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::store::Engine;

/// Default quota of ciphertext bytes per owner: 16 GiB.
pub const DEFAULT_OWNER_QUOTA_BYTES: u64 = 16 << 30;
/// Default quota of chunks per owner.
pub const DEFAULT_OWNER_QUOTA_CHUNKS: u64 = 1_000_000;
/// Default floor of free disk space: 1 GiB.
pub const DEFAULT_MIN_FREE_DISK: u64 = 1 << 30;

/// What an owner's machines hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Ciphertext bytes.
    pub bytes: u64,
    /// Chunks.
    pub chunks: u64,
}

/// The per-owner quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Ciphertext bytes.
    pub bytes: u64,
    /// Chunks.
    pub chunks: u64,
}

impl Quotas {
    /// The quotas of `state`'s configuration.
    pub fn of(state: &AppState) -> Quotas {
        Quotas {
            bytes: state.config.owner_quota_bytes,
            chunks: state.config.owner_quota_chunks,
        }
    }

    /// Before the ciphertext is read: room for one more chunk? Returns the
    /// bytes left.
    pub fn room(&self, state: &AppState, owner: &str, usage: Usage) -> ApiResult<u64> {
        if usage.chunks >= self.chunks {
            return Err(self.chunks_refusal(state, owner, usage));
        }
        if usage.bytes >= self.bytes {
            return Err(self.bytes_refusal(state, owner, usage, None));
        }
        Ok(self.bytes - usage.bytes)
    }

    /// Inside the storing transaction: may a chunk of `size` bytes be
    /// added to `usage`?
    pub fn admit(&self, state: &AppState, owner: &str, usage: Usage, size: u64) -> ApiResult<()> {
        if usage.chunks >= self.chunks {
            return Err(self.chunks_refusal(state, owner, usage));
        }
        if usage.bytes.saturating_add(size) > self.bytes {
            return Err(self.bytes_refusal(
                state,
                owner,
                usage,
                Some(format!("this chunk is {size} bytes")),
            ));
        }
        Ok(())
    }

    fn chunks_refusal(&self, state: &AppState, owner: &str, usage: Usage) -> ApiError {
        refusal(
            state,
            "owner-quota-chunks",
            owner,
            format!(
                "the owner's machines hold {} of {} chunks allowed (owner-quota-chunks)",
                usage.chunks, self.chunks
            ),
        )
    }

    /// The refusal of a chunk that would take `owner` over its byte quota;
    /// `detail` says by how much when it is known.
    pub fn bytes_refusal(
        &self,
        state: &AppState,
        owner: &str,
        usage: Usage,
        detail: Option<String>,
    ) -> ApiError {
        let mut message = format!(
            "the owner's machines hold {} of {} ciphertext bytes allowed (owner-quota-bytes)",
            usage.bytes, self.bytes
        );
        if let Some(d) = detail {
            message.push_str("; ");
            message.push_str(&d);
        }
        refusal(state, "owner-quota-bytes", owner, message)
    }
}

/// A 507 naming `limit`, logged at warn (at most once a second).
fn refusal(state: &AppState, limit: &'static str, owner: &str, message: String) -> ApiError {
    state.metrics.refused(limit);
    if let Some(held_back) = state.refusal_log.allow() {
        let owner = crate::logs::Pseudonym::of(owner);
        tracing::warn!(limit, %owner, held_back, "upload refused: {message}");
    }
    ApiError::new(StatusCode::INSUFFICIENT_STORAGE, Some(limit), message)
}

/// The local directories uploads fill: the object directory (unless the
/// objects are in S3) and, with SQLite, the data directory.
pub fn disk_paths(state: &AppState) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = state.objects.local_dir() {
        paths.push(dir.to_path_buf());
    }
    if state.store.engine() == Engine::Sqlite {
        paths.push(state.config.data_dir.clone());
    }
    paths
}

/// Free bytes on the file system of `path`, for an unprivileged writer.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    #[cfg(unix)]
    {
        let stat = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        // `fsblkcnt_t` and `c_ulong` are not u64 on every Unix.
        #[allow(clippy::unnecessary_cast)]
        Ok((stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(u64::MAX)
    }
}

/// Refuses an upload while a disk it would fill has less free space than
/// `min_free_disk` (0: no floor).
pub fn check_free_disk(state: &AppState) -> ApiResult<()> {
    let floor = state.config.min_free_disk;
    if floor == 0 {
        return Ok(());
    }
    for path in disk_paths(state) {
        let free = free_space(&path).map_err(|e| {
            ApiError::internal("free disk space", format!("{}: {e}", path.display()))
        })?;
        if free < floor {
            state.metrics.refused("min-free-disk");
            if let Some(held_back) = state.refusal_log.allow() {
                tracing::warn!(
                    limit = "min-free-disk",
                    path = %path.display(),
                    free,
                    floor,
                    held_back,
                    "upload refused: free disk space below the floor"
                );
            }
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                Some("min-free-disk"),
                format!(
                    "the server is short of disk space: uploads are refused while less than \
                     {floor} bytes are free (min-free-disk)"
                ),
            ));
        }
    }
    Ok(())
}
