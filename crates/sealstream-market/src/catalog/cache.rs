//! Answers of catalog searches, kept in memory while the catalog is
//! unchanged.
//!
//! A text search ranks every listing it matches (FTS5's `bm25`, PostgreSQL's
//! `ts_rank`), so its cost grows with the catalog: tens of milliseconds at
//! 100,000 listings. Most traffic repeats a few searches, so each answer is
//! kept under its query (the SQL text and its parameters) together with the
//! catalog generation it was computed at: the `catalog_generation` counter
//! (migration 0022), which every change to a listing or a dataset moves in
//! its own transaction, on whichever replica it happens. An answer is served
//! only while the counter still holds its generation; reading the counter is
//! one primary-key lookup.
//!
//! The generation is read before the query runs, so a change that commits
//! between the two leaves an entry tagged with the older generation, which
//! the next search finds stale. The entries are bounded in bytes
//! ([`CACHE_BYTES`]); the least recently used go first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sealstream_api::catalog::CatalogPage;

/// Most bytes of answers (estimated) kept per server process.
pub const CACHE_BYTES: u64 = 32 << 20;

/// One kept answer.
struct Entry {
    generation: i64,
    page: Arc<CatalogPage>,
}

/// The kept answers and their hit counts.
pub struct CatalogCache {
    entries: moka::sync::Cache<String, Arc<Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for CatalogCache {
    fn default() -> Self {
        CatalogCache::with_capacity(CACHE_BYTES)
    }
}

impl std::fmt::Debug for CatalogCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogCache")
            .field("entries", &self.entries.entry_count())
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
            .finish()
    }
}

/// An estimate of the memory an answer takes.
fn weight(key: &str, page: &CatalogPage) -> u32 {
    let items: usize = page
        .items
        .iter()
        .map(|i| {
            256 + i.id.len()
                + i.title.len()
                + i.description_excerpt.len()
                + i.tags.iter().map(|t| t.len() + 24).sum::<usize>()
                + i.machine_did.len()
                + i.topic.len()
                + i.merkle_root.len()
                + i.dataset_id.len()
        })
        .sum();
    u32::try_from(key.len() + items + 128).unwrap_or(u32::MAX)
}

impl CatalogCache {
    /// A cache of at most `bytes` (estimated); 0 keeps nothing.
    pub fn with_capacity(bytes: u64) -> CatalogCache {
        CatalogCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|key: &String, entry: &Arc<Entry>| weight(key, &entry.page))
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The answer kept for `key` if it was computed at `generation`.
    pub fn get(&self, key: &str, generation: i64) -> Option<Arc<CatalogPage>> {
        let found = self
            .entries
            .get(key)
            .filter(|e| e.generation == generation)
            .map(|e| e.page.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `page`, computed at `generation`, for `key`.
    pub fn insert(&self, key: String, generation: i64, page: Arc<CatalogPage>) {
        self.entries
            .insert(key, Arc::new(Entry { generation, page }));
    }

    /// Searches answered from the cache, and searches that ran.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(title: &str) -> Arc<CatalogPage> {
        Arc::new(CatalogPage {
            items: Vec::new(),
            next_cursor: Some(title.to_string()),
        })
    }

    #[test]
    fn an_answer_is_served_only_at_its_generation() {
        let cache = CatalogCache::default();
        assert!(cache.get("q", 1).is_none());
        cache.insert("q".into(), 1, page("a"));
        assert_eq!(cache.get("q", 1).unwrap().next_cursor.as_deref(), Some("a"));
        assert!(cache.get("q", 2).is_none(), "a newer generation misses");
        assert!(cache.get("other", 1).is_none());
        cache.insert("q".into(), 2, page("b"));
        assert_eq!(cache.get("q", 2).unwrap().next_cursor.as_deref(), Some("b"));
        assert!(cache.get("q", 1).is_none(), "the older answer is replaced");
        assert_eq!(cache.counts(), (2, 4));
    }

    #[test]
    fn a_cache_of_no_bytes_keeps_nothing() {
        let cache = CatalogCache::with_capacity(0);
        cache.insert("q".into(), 1, page("a"));
        cache.entries.run_pending_tasks();
        assert!(cache.get("q", 1).is_none());
    }
}
