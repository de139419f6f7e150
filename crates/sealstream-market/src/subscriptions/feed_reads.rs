//! Feeds' reads of the chunks newly granted to them, gathered into one
//! statement on PostgreSQL.
//!
//! A chunk granted to a thousand subscriptions wakes a thousand feeds, and
//! each reads what was granted to it ([`db::granted_chunks`]): alone, a
//! thousand statements per chunk, each a round trip, a plan and a row
//! conversion in the server. On PostgreSQL these reads go through one
//! reader per process, in the manner of a group commit: a feed queues its
//! read and waits; the reader takes every read queued (up to
//! [`MAX_GATHERED`]) and answers them with one statement
//! ([`db::granted_chunks_of_many`]). A read waiting alone goes at once;
//! reads that come while a statement runs go together in the next.
//!
//! If the gathered statement fails, the reader is gone, or it has not
//! answered within [`PATIENCE`], each feed reads for itself (and meets the
//! database's error, if it is the database's).
//! SQLite reads directly: its reads are in the process, without a round
//! trip, and it was never the slower there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::db;
pub use super::db::{GrantedRead, WrappedGrant};
use crate::ingest::db::ChunkRow;
use crate::store::{DbError, Engine, Store};

/// Reads answered by one statement at most.
pub(crate) const MAX_GATHERED: usize = 256;
/// Reads queued for the reader at most; a feed beyond it waits to queue.
const QUEUE: usize = 4096;
/// How long a feed waits for the reader before it reads alone (a reader
/// stuck on a statement holds up every feed of the process, not one).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The rows of one read: chunks and their grants, by index.
pub type GrantedRows = Vec<(ChunkRow, WrappedGrant)>;

/// A read queued for the reader.
struct Request {
    read: GrantedRead,
    limit: i64,
    /// The rows, or `None`: read for yourself.
    reply: oneshot::Sender<Option<GrantedRows>>,
}

/// The reader of one process (started at its first read, and again if it
/// has gone: its runtime ended).
#[derive(Debug, Default)]
pub struct FeedReads {
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    counts: Arc<Counts>,
}

/// What the reads came to, for `/metrics`.
#[derive(Debug, Default)]
struct Counts {
    /// Reads answered by a gathered statement.
    gathered: AtomicU64,
    /// Reads answered alone (SQLite, or the gathered statement failed).
    alone: AtomicU64,
    /// Gathered statements run.
    statements: AtomicU64,
}

/// [`FeedReads::counts`]: reads answered gathered and alone, and the
/// statements that answered the gathered ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedReadCounts {
    /// Reads answered by a gathered statement.
    pub gathered: u64,
    /// Reads answered by a statement of their own.
    pub alone: u64,
    /// Gathered statements run.
    pub statements: u64,
}

impl FeedReads {
    /// The reads so far.
    pub fn counts(&self) -> FeedReadCounts {
        FeedReadCounts {
            gathered: self.counts.gathered.load(Ordering::Relaxed),
            alone: self.counts.alone.load(Ordering::Relaxed),
            statements: self.counts.statements.load(Ordering::Relaxed),
        }
    }

    /// The grants of `read.id` after `read.after`, each with its chunk, by
    /// index, at most `limit`: [`db::granted_chunks`], gathered with other
    /// feeds' reads on PostgreSQL.
    pub async fn granted_chunks(
        &self,
        store: &Store,
        read: GrantedRead,
        limit: i64,
    ) -> Result<GrantedRows, DbError> {
        if store.engine() == Engine::Postgres {
            let queue = self.queue(store);
            let (reply, answer) = oneshot::channel();
            let request = Request {
                read: read.clone(),
                limit,
                reply,
            };
            let gathered = async {
                queue.send(request).await.ok()?;
                answer.await.ok()?
            };
            if let Ok(Some(rows)) = tokio::time::timeout(PATIENCE, gathered).await {
                return Ok(rows);
            }
        }
        self.counts.alone.fetch_add(1, Ordering::Relaxed);
        db::granted_chunks(
            store.pool(),
            &read.id,
            (&read.machine_did, &read.topic),
            read.after,
            limit,
        )
        .await
    }

    /// The reader's queue, the reader started if it is not running.
    fn queue(&self, store: &Store) -> mpsc::Sender<Request> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match &*queue {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => {
                let (sender, receiver) = mpsc::channel(QUEUE);
                tokio::spawn(run(store.pool().clone(), receiver, self.counts.clone()));
                *queue = Some(sender.clone());
                sender
            }
        }
    }
}

/// The reader: answers the queued reads, as many at a time as are queued
/// (up to [`MAX_GATHERED`]), until every sender is gone.
async fn run(pool: sqlx::AnyPool, mut queue: mpsc::Receiver<Request>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(MAX_GATHERED);
    while queue.recv_many(&mut batch, MAX_GATHERED).await > 0 {
        // A feed that stopped waiting (its connection closed) is not read.
        batch.retain(|r: &Request| !r.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let limit = batch.iter().map(|r| r.limit).max().unwrap_or(0);
        let (reads, answers): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|r| (r.read, (r.limit, r.reply)))
            .unzip();
        match db::granted_chunks_of_many(&pool, &reads, limit).await {
            Ok(found) => {
                counts.statements.fetch_add(1, Ordering::Relaxed);
                let n = u64::try_from(found.len()).unwrap_or(u64::MAX);
                counts.gathered.fetch_add(n, Ordering::Relaxed);
                for ((limit, reply), mut rows) in answers.into_iter().zip(found) {
                    rows.truncate(usize::try_from(limit).unwrap_or(0));
                    let _ = reply.send(Some(rows));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reads = reads.len(), "gathered feed read failed; each feed reads alone");
                for (_, reply) in answers {
                    let _ = reply.send(None);
                }
            }
        }
    }
}
