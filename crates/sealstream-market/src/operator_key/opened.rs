//! Chunk keys the granter opened with an operator key, kept in memory for
//! the next order of the same dataset.
//!
//! Granting an order re-wraps every chunk key of its dataset: one X25519
//! unwrap (with the envelope read from the store and parsed first) and one
//! seal to the buyer per chunk. The unwrap and the parse give the same
//! result for every buyer of the dataset, so the opened keys of a dataset
//! of at most [`MAX_KEPT_CHUNKS`] chunks are kept, under the dataset and
//! the operator public key that opened them, and later orders only seal.
//!
//! What is kept is what the server can open at any time while it holds the
//! operator key; it never reaches the disk, each key is wiped when its
//! entry goes ([`ChunkKey`] zeroizes on drop), entries go after
//! [`IDLE`] without use or when [`KEPT_BYTES`] would be exceeded (least
//! recently used first), and all go when any operator key is registered,
//! replaced or revoked ([`OpenedKeys::forget_all`]); a revoked key also
//! stops the granter before it looks here, as the key is no longer found.

use std::sync::Arc;
use std::time::Duration;

use sealstream_core::chunk::ChunkKey;

/// Largest dataset whose opened keys are kept (larger ones are granted a
/// page at a time, nothing kept): about 8 MiB of keys and ids.
pub const MAX_KEPT_CHUNKS: u64 = 65_536;

/// Most bytes (estimated) of opened keys kept.
pub const KEPT_BYTES: u64 = 64 << 20;

/// How long an unused entry is kept.
pub const IDLE: Duration = Duration::from_secs(600);

/// The opened keys of one dataset, in chain order: (chunk id, key).
pub type DatasetKeys = Arc<Vec<(String, ChunkKey)>>;

/// The kept keys, by (dataset id, operator public key hex).
pub struct OpenedKeys {
    entries: moka::sync::Cache<(String, String), DatasetKeys>,
}

impl std::fmt::Debug for OpenedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedKeys")
            .field("datasets", &self.entries.entry_count())
            .finish()
    }
}

impl Default for OpenedKeys {
    fn default() -> Self {
        OpenedKeys {
            entries: moka::sync::Cache::builder()
                .max_capacity(KEPT_BYTES)
                .weigher(
                    |(dataset, operator): &(String, String), keys: &DatasetKeys| {
                        let ids: usize = keys.iter().map(|(id, _)| id.len() + 64).sum();
                        u32::try_from(dataset.len() + operator.len() + ids).unwrap_or(u32::MAX)
                    },
                )
                .time_to_idle(IDLE)
                .build(),
        }
    }
}

impl OpenedKeys {
    /// The keys of `dataset` opened with the operator key `operator_hex`.
    pub fn get(&self, dataset: &str, operator_hex: &str) -> Option<DatasetKeys> {
        self.entries
            .get(&(dataset.to_string(), operator_hex.to_string()))
    }

    /// Keeps the keys of `dataset` opened with `operator_hex`.
    pub fn insert(&self, dataset: &str, operator_hex: &str, keys: DatasetKeys) {
        self.entries
            .insert((dataset.to_string(), operator_hex.to_string()), keys);
    }

    /// Forgets every kept key (an operator key was registered, replaced or
    /// revoked).
    pub fn forget_all(&self) {
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
    }

    /// How many datasets' keys are kept.
    pub fn datasets(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_by_dataset_and_operator_and_forgotten_on_demand() {
        let kept = OpenedKeys::default();
        let keys: DatasetKeys = Arc::new(vec![("c0".into(), ChunkKey::generate())]);
        kept.insert("ds", "op", keys.clone());
        assert!(Arc::ptr_eq(&kept.get("ds", "op").unwrap(), &keys));
        assert!(kept.get("ds", "other operator").is_none());
        assert!(kept.get("other dataset", "op").is_none());
        assert_eq!(kept.datasets(), 1);
        kept.forget_all();
        assert!(kept.get("ds", "op").is_none());
        assert_eq!(kept.datasets(), 0);
        assert!(!format!("{kept:?}").contains("c0"));
    }
}
