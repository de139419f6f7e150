//! The queue from the source threads to the pipeline, bounded twice: by a
//! number of events and by the memory the messages in it take.
//!
//! A count alone does not bound memory: a decoded `NavSatFix` takes about
//! 2 KiB of heap, a large JSON message megabytes. So every message is
//! weighed ([`Value::approx_heap_bytes`](sealstream_core::json::Value::approx_heap_bytes))
//! as it is sent, and a sender waits while the messages queued weigh more
//! than the budget. One message heavier than the whole budget still goes
//! through, alone, so that no message is refused for its size here.
//!
//! A live source's own buffer (the ROS 2 source's sample queue, the MQTT
//! broker's session) absorbs bursts in front of this queue; file sources
//! simply wait.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use crate::pipeline::SourceEvent;

/// The most events queued at once.
pub const QUEUE_EVENTS: usize = 1024;

/// The most message memory queued at once (as weighed), in bytes.
pub const QUEUE_BYTES: usize = 1024 * 1024;

/// What an event other than a message is weighed at.
const EVENT_WEIGHT: usize = 128;

#[derive(Debug, Default)]
struct Budget {
    /// Weight queued.
    queued: usize,
    /// Senders waiting for room.
    waiting: usize,
    /// The receiver is gone.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    budget: Mutex<Budget>,
    room: Condvar,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pipeline is gone: nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct Closed;

/// The sending side; cloned for every source thread.
#[derive(Debug, Clone)]
pub struct SourceSender {
    inner: crossbeam_channel::Sender<(SourceEvent, usize)>,
    shared: Arc<Shared>,
}

/// The pipeline's side.
#[derive(Debug)]
pub struct SourceReceiver {
    inner: crossbeam_channel::Receiver<(SourceEvent, usize)>,
    shared: Arc<Shared>,
}

/// A queue of at most `events` events weighing at most `bytes` (but for a
/// single heavier message).
pub fn source_queue(events: usize, bytes: usize) -> (SourceSender, SourceReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(events.max(1));
    let shared = Arc::new(Shared {
        budget: Mutex::new(Budget::default()),
        room: Condvar::new(),
        limit: bytes.max(1),
    });
    (
        SourceSender {
            inner: tx,
            shared: Arc::clone(&shared),
        },
        SourceReceiver { inner: rx, shared },
    )
}

/// What an event is weighed at.
fn weight(event: &SourceEvent) -> usize {
    match event {
        SourceEvent::Message { source, input } => {
            EVENT_WEIGHT
                + source.len()
                + input.topic.len()
                + input.captured_at.len()
                + match &input.fields {
                    Ok(fields) => sealstream_core::json::map_heap_bytes(fields),
                    Err(why) => why.len(),
                }
        }
        _ => EVENT_WEIGHT,
    }
}

impl SourceSender {
    /// Send `event`, waiting for room; `Err` if the pipeline is gone.
    pub fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        let weight = weight(&event);
        {
            let mut budget = self.shared.lock();
            while budget.queued > 0 && budget.queued + weight > self.shared.limit && !budget.closed
            {
                budget.waiting += 1;
                budget = self
                    .shared
                    .room
                    .wait(budget)
                    .unwrap_or_else(PoisonError::into_inner);
                budget.waiting -= 1;
            }
            if budget.closed {
                return Err(Closed);
            }
            budget.queued += weight;
        }
        self.inner.send((event, weight)).map_err(|_| {
            self.shared.lock().queued -= weight;
            Closed
        })
    }
}

impl SourceReceiver {
    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<SourceEvent, RecvTimeoutError> {
        let (event, weight) = self.inner.recv_timeout(timeout)?;
        let mut budget = self.shared.lock();
        budget.queued -= weight;
        if budget.waiting > 0 {
            self.shared.room.notify_all();
        }
        Ok(event)
    }
}

impl Drop for SourceReceiver {
    fn drop(&mut self) {
        let mut budget = self.shared.lock();
        budget.closed = true;
        self.shared.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Input;
    use sealstream_core::json::{Map, Value};

    fn message(note_bytes: usize) -> SourceEvent {
        let mut fields = Map::new();
        fields.insert("note".into(), Value::from("x".repeat(note_bytes)));
        SourceEvent::Message {
            source: "src".into(),
            input: Input {
                position: 0,
                topic: "/t".into(),
                captured_at: "2026-12-06T00:00:00Z".into(),
                fields: Ok(fields),
                route: None,
                origin: None,
            },
        }
    }

    #[test]
    fn a_sender_waits_while_the_queue_is_over_its_bytes() {
        let (tx, rx) = source_queue(100, 10_000);
        tx.send(message(6_000)).unwrap();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let t = {
            let tx = tx.clone();
            std::thread::spawn(move || {
                tx.send(message(6_000)).unwrap();
                done_tx.send(()).unwrap();
            })
        };
        // The second message does not fit beside the first: it waits
        // (by state, not by time: it cannot be sent until one is taken).
        assert!(done_rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(5)),
            Ok(SourceEvent::Message { .. })
        ));
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        t.join().unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn one_message_heavier_than_the_budget_still_goes_alone() {
        let (tx, rx) = source_queue(100, 1_000);
        tx.send(message(50_000)).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
        tx.send(message(50_000)).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn a_waiting_sender_is_released_when_the_pipeline_is_gone() {
        let (tx, rx) = source_queue(100, 10_000);
        tx.send(message(9_000)).unwrap();
        let t = {
            let tx = tx.clone();
            std::thread::spawn(move || tx.send(message(9_000)).is_err())
        };
        drop(rx);
        assert!(
            t.join().unwrap(),
            "the send fails once the receiver is gone"
        );
        assert!(tx.send(message(1)).is_err());
    }
}
