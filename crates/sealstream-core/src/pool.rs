//! An ordered worker pool: jobs go out to threads, results come back in
//! submission order, and at most `max_in_flight` jobs exist at once, so memory
//! stays bounded by `max_in_flight` × job size whatever the input size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

/// The number of worker threads to use by default: the machine's cores.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `f` over every item on up to `threads` scoped threads (contiguous runs of
/// items, one run per thread), the results in the items' order: for work
/// that is all in memory already, where [`OrderedPool`]'s bounded streaming
/// is not needed. One thread, or fewer than two items, runs on the caller's.
pub fn map_in_order<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut parts: Vec<Vec<T>> = Vec::new();
    let mut items = items.into_iter();
    loop {
        let part: Vec<T> = items.by_ref().take(per).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

/// Jobs of type `I` run by worker threads into results of type `O`, handed
/// back in submission order, with at most `max_in_flight` jobs queued,
/// running or waiting for delivery.
pub struct OrderedPool<I: Send + 'static, O: Send + 'static> {
    jobs: Option<Sender<(u64, I)>>,
    results: Receiver<(u64, O)>,
    workers: Vec<JoinHandle<()>>,
    next_submit: u64,
    next_deliver: u64,
    pending: BTreeMap<u64, O>,
    max_in_flight: usize,
}

impl<I: Send + 'static, O: Send + 'static> OrderedPool<I, O> {
    /// `threads` workers running `work`; at most `max_in_flight` jobs queued,
    /// running or waiting for delivery.
    pub fn new(
        threads: usize,
        max_in_flight: usize,
        work: impl Fn(I) -> O + Send + Sync + 'static,
    ) -> Self {
        let threads = threads.max(1);
        let max_in_flight = max_in_flight.max(threads);
        let (job_tx, job_rx) = bounded::<(u64, I)>(max_in_flight);
        let (res_tx, res_rx) = bounded::<(u64, O)>(max_in_flight);
        let work = Arc::new(work);
        let workers = (0..threads)
            .map(|n| {
                let job_rx = job_rx.clone();
                let res_tx = res_tx.clone();
                let work = Arc::clone(&work);
                std::thread::Builder::new()
                    .name(format!("sealstream-worker-{n}"))
                    .spawn(move || {
                        for (seq, item) in job_rx {
                            if res_tx.send((seq, work(item))).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        OrderedPool {
            jobs: Some(job_tx),
            results: res_rx,
            workers,
            next_submit: 0,
            next_deliver: 0,
            pending: BTreeMap::new(),
            max_in_flight,
        }
    }

    fn in_flight(&self) -> usize {
        (self.next_submit - self.next_deliver) as usize
    }

    /// Wait for the next result in order.
    fn next_in_order(&mut self) -> O {
        loop {
            if let Some(out) = self.pending.remove(&self.next_deliver) {
                self.next_deliver += 1;
                return out;
            }
            match self.results.recv() {
                Ok((seq, out)) => {
                    self.pending.insert(seq, out);
                }
                Err(_) => panic!("a sealstream worker thread died"),
            }
        }
    }

    /// Submit a job; first deliver (in order) as many results as needed to
    /// stay within the in-flight bound.
    pub fn submit<E>(
        &mut self,
        item: I,
        deliver: &mut impl FnMut(O) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.in_flight() >= self.max_in_flight {
            let out = self.next_in_order();
            deliver(out)?;
        }
        // Deliver whatever is already done, so the sink sees results early.
        while let Some(out) = self.pending.remove(&self.next_deliver) {
            self.next_deliver += 1;
            deliver(out)?;
        }
        let seq = self.next_submit;
        self.next_submit += 1;
        self.jobs
            .as_ref()
            .expect("pool used after finish")
            .send((seq, item))
            .expect("worker threads alive while the pool is");
        Ok(())
    }

    /// Whether nothing is in flight.
    pub fn idle(&self) -> bool {
        self.in_flight() == 0
    }

    /// The next result in order, waiting for it; `None` when nothing is in
    /// flight.
    pub fn next_result(&mut self) -> Option<O> {
        (self.in_flight() > 0).then(|| self.next_in_order())
    }

    /// The next result in order if it is done, without waiting.
    pub fn try_next_result(&mut self) -> Option<O> {
        while let Ok((seq, out)) = self.results.try_recv() {
            self.pending.insert(seq, out);
        }
        let out = self.pending.remove(&self.next_deliver)?;
        self.next_deliver += 1;
        Some(out)
    }

    /// Deliver every outstanding result in order.
    pub fn drain<E>(&mut self, deliver: &mut impl FnMut(O) -> Result<(), E>) -> Result<(), E> {
        while self.in_flight() > 0 {
            let out = self.next_in_order();
            deliver(out)?;
        }
        Ok(())
    }
}

impl<I: Send + 'static, O: Send + 'static> Drop for OrderedPool<I, O> {
    fn drop(&mut self) {
        // Closing the job channel ends the workers once the queue is empty;
        // reading (and discarding) results until every worker has dropped its
        // sender unblocks any worker waiting to deliver.
        self.jobs.take();
        while self.results.recv().is_ok() {}
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order() {
        let mut pool = OrderedPool::new(4, 8, |x: u64| {
            std::thread::sleep(std::time::Duration::from_micros((x * 7919) % 500));
            x * 2
        });
        let mut got = Vec::new();
        let mut deliver = |x: u64| -> Result<(), ()> {
            got.push(x);
            Ok(())
        };
        for i in 0..200 {
            pool.submit(i, &mut deliver).unwrap();
        }
        pool.drain(&mut deliver).unwrap();
        assert_eq!(got, (0..200).map(|x| x * 2).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_early_does_not_hang() {
        let mut pool = OrderedPool::new(2, 4, |x: u64| x);
        let mut fail = |_x: u64| -> Result<(), &'static str> { Err("sink refused") };
        let mut result = Ok(());
        for i in 0..10 {
            result = pool.submit(i, &mut fail);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err("sink refused"));
        drop(pool);
    }
}
