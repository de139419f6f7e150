//! The agent's signing workers: a sealed batch is numbered and signed in
//! the background, in parts, one per core, by threads that live as long as
//! the agent. The batch itself is shared, not split or copied: each part is
//! a range of it, and only the signed lines come back.

use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use sealstream_core::package::PackageSigner;
use sealstream_core::pool::OrderedPool;

use crate::batch::Pending;

/// Below this many packages a part is not worth a second core.
const MIN_PART: usize = 64;

/// A part of a batch: its range of messages and the number its first
/// package gets; once signed, its packages' lines (each with its newline),
/// `None` if signing panicked.
struct Part {
    batch: Arc<Vec<Pending>>,
    range: Range<usize>,
    base: u64,
    lines: Option<Vec<Vec<u8>>>,
}

/// A batch in flight: the batch and how many parts it was cut into.
struct InFlight {
    batch: Arc<Vec<Pending>>,
    parts: usize,
}

/// Long-lived signing threads; at most two batches at a time, so the next
/// batch is signed while the one before is committed.
pub(crate) struct Signing {
    pool: OrderedPool<Part, Part>,
    threads: usize,
    /// Batches in flight, oldest first.
    batches: VecDeque<InFlight>,
    /// Parts back, in order (the oldest batch's first).
    ready: VecDeque<Part>,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("threads", &self.threads)
            .field("batches", &self.batches.len())
            .finish_non_exhaustive()
    }
}

impl Signing {
    /// `threads` signing threads for `signer`.
    pub(crate) fn new(signer: Arc<PackageSigner>, threads: usize) -> Self {
        let threads = threads.max(1);
        let pool = OrderedPool::new(threads, 2 * threads, move |mut part: Part| {
            let signed = catch_unwind(AssertUnwindSafe(|| {
                let mut lines = Vec::with_capacity(part.range.len());
                let mut number = part.base;
                for pending in &part.batch[part.range.clone()] {
                    if let Ok(package) = &pending.package {
                        let mut line = signer.signed_line(package, number).into_bytes();
                        number += 1;
                        line.push(b'\n');
                        lines.push(line);
                    }
                }
                lines
            }));
            part.lines = signed.ok();
            part
        });
        Signing {
            pool,
            threads,
            batches: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// Number the batch's packages from `base` in order and start signing
    /// them. At most one batch may be in flight already.
    pub(crate) fn start(&mut self, batch: Vec<Pending>, base: u64) {
        assert!(self.batches.len() < 2, "at most two batches at a time");
        let packages = batch.iter().filter(|p| p.package.is_ok()).count();
        let parts = self.threads.min(packages / MIN_PART + 1);
        let per = batch.len().div_ceil(parts).max(1);
        let batch = Arc::new(batch);
        let mut base = base;
        let mut submitted = 0;
        let mut start = 0;
        while start < batch.len() {
            let range = start..(start + per).min(batch.len());
            start = range.end;
            let numbered = batch[range.clone()]
                .iter()
                .filter(|p| p.package.is_ok())
                .count() as u64;
            let part = Part {
                batch: Arc::clone(&batch),
                range,
                base,
                lines: None,
            };
            self.pool
                .submit(
                    part,
                    // At most two batches of `threads` parts are in
                    // flight, so the pool is never full; kept in order if so.
                    &mut |done: Part| -> Result<(), std::convert::Infallible> {
                        self.ready.push_back(done);
                        Ok(())
                    },
                )
                .unwrap_or_else(|never| match never {});
            submitted += 1;
            base += numbered;
        }
        self.batches.push_back(InFlight {
            batch,
            parts: submitted,
        });
    }

    /// Whether the oldest batch's signatures are all done (without waiting).
    pub(crate) fn done(&mut self) -> bool {
        let Some(parts) = self.batches.front().map(|b| b.parts) else {
            return true;
        };
        while self.ready.len() < parts {
            match self.pool.try_next_result() {
                Some(part) => self.ready.push_back(part),
                None => return false,
            }
        }
        true
    }

    /// The oldest batch back and its packages' signed lines in order,
    /// waiting for them; `None` if signing failed or no batch is in flight.
    pub(crate) fn finish(&mut self) -> Option<(Vec<Pending>, Vec<Vec<u8>>)> {
        let InFlight { batch, parts } = self.batches.pop_front()?;
        while self.ready.len() < parts {
            let part = self.pool.next_result()?;
            self.ready.push_back(part);
        }
        let mut lines = Vec::with_capacity(batch.len());
        let mut failed = false;
        for part in self.ready.drain(..parts) {
            match part.lines {
                Some(l) => lines.extend(l),
                None => failed = true,
            }
        }
        // Every part is back and dropped: the batch is ours again.
        let batch = Arc::into_inner(batch)?;
        (!failed).then_some((batch, lines))
    }
}
