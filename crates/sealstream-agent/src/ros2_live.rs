//! The live ROS 2 source: the agent joins the robot's ROS graph through its
//! Zenoh middleware (`rmw_zenoh`), subscribes to the topics of the Data Event
//! Map, and feeds the pipeline as messages are published.
//!
//! - **Zenoh**: a peer session over TCP, multicast scouting off; it connects
//!   to `connect` (by default the local `rmw_zenohd` router) and listens on
//!   `listen`, retrying lost connections in the background.
//! - **In the ROS graph**: a node token (`sealstream_agent` by default) and a
//!   subscription token per topic, as `rmw_zenoh` declares them (see
//!   [`crate::ros2::rmw_zenoh`]), so `ros2 node list` and `ros2 topic info`
//!   show the agent. A wildcard topic's tokens are declared as its concrete
//!   topics are first seen.
//! - **Decoding**: each sample's type comes from its key; its CDR payload is
//!   decoded with the message definitions of the source's library.
//! - **Backpressure**: Zenoh's callbacks never block. They put samples in a
//!   bounded queue (`queue` samples, [`QUEUE_BYTES`] of payload); when it is
//!   full a sample is dropped and counted,
//!   and the drop travels with the next sample of the same publisher (or,
//!   when none comes, is reported once the queue is empty), so the pipeline
//!   records it as a gap (see [`sealstream_core::gap`]).
//! - **Numbering**: each publisher numbers its messages; the pipeline
//!   compares them with what it has committed and records a gap for every
//!   number it never got ([`Origin`]).
//!
//! Nothing is journaled: a message received but not yet committed when the
//! agent is killed is missing from the chain, and the restarted agent
//! records it, with what it missed while down, in one gap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, TrySendError};
use sealstream_core::utc;
use zenoh::Wait;

use crate::config::{Ros2Source, Topic};
use crate::pipeline::{DropReport, Input, Log, Origin, SourceEvent};
use crate::queue::SourceSender;
use crate::ros2::cdr;
use crate::ros2::msgdef::Registry;
use crate::ros2::rihs;
use crate::ros2::rmw_zenoh::{self, Attachment, NodeName};

/// The payload bytes the queue holds at most, whatever `queue` says: a
/// sample that would take it past this is dropped (and recorded as a gap)
/// like one that finds the queue full.
pub const QUEUE_BYTES: u64 = 64 * 1024 * 1024;

/// Everything the ROS 2 source's thread needs.
pub struct Ros2Run {
    /// The source's name in the Data Event Map.
    pub name: String,
    /// Middleware settings and message definitions.
    pub source: Ros2Source,
    /// The Data Event Map's topics of this source.
    pub topics: Vec<Topic>,
    /// The position of the first message of this run (positions continue
    /// after what earlier runs committed).
    pub first_position: u64,
    /// Where inputs go.
    pub tx: SourceSender,
    /// Set when the agent stops.
    pub stop: Arc<AtomicBool>,
    /// Log lines.
    pub log: Log,
    /// Counters shared with the agent's status.
    pub counters: Arc<Ros2Counters>,
}

/// What the source has seen, for `agent status` and the benchmark.
#[derive(Debug, Default)]
pub struct Ros2Counters {
    /// Samples received from the middleware.
    pub received: AtomicU64,
    /// Samples dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// A sample on its way from a Zenoh callback to the source's thread.
struct Sample {
    /// Index of the topic (in [`Ros2Run::topics`]) whose subscription got it.
    route: usize,
    key: String,
    payload: Vec<u8>,
    attachment: Option<Attachment>,
    received_ns: i64,
    /// Sequence ranges of the same publisher dropped just before it.
    dropped_before: Vec<(u64, u64)>,
}

/// Drops not yet reported, per (route, publisher).
#[derive(Default)]
struct Ledger {
    dirty: AtomicBool,
    drops: Mutex<BTreeMap<(usize, [u8; 16]), Dropped>>,
    /// Drops of samples without an attachment (no publisher numbering), per route.
    unnumbered: Mutex<BTreeMap<usize, (u64, i64, i64, String)>>,
}

#[derive(Default)]
struct Dropped {
    ranges: Vec<(u64, u64)>,
    key: String,
    last_ns: i64,
}

impl Ledger {
    /// Record a dropped sample (with the drops it was carrying).
    fn record(&self, sample: Sample) {
        let mut guard = lock(&self.unnumbered);
        let Some(a) = sample.attachment else {
            let e = guard.entry(sample.route).or_insert((
                0,
                sample.received_ns,
                sample.received_ns,
                sample.key,
            ));
            e.0 += 1;
            e.2 = sample.received_ns;
            self.dirty.store(true, Ordering::Release);
            return;
        };
        drop(guard);
        let mut drops = lock(&self.drops);
        let entry = drops.entry((sample.route, a.gid)).or_default();
        entry.key = sample.key;
        entry.last_ns = a.source_timestamp_ns;
        let mut ranges = sample.dropped_before;
        if let Ok(seq) = u64::try_from(a.sequence) {
            ranges.push((seq, seq));
        }
        for (first, last) in ranges {
            match entry.ranges.last_mut() {
                Some(prev) if prev.1.checked_add(1) == Some(first) => prev.1 = last,
                _ => entry.ranges.push((first, last)),
            }
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// The drops of one publisher on one route, removed from the ledger.
    fn take(&self, route: usize, gid: [u8; 16]) -> Vec<(u64, u64)> {
        if !self.dirty.load(Ordering::Acquire) {
            return Vec::new();
        }
        lock(&self.drops)
            .remove(&(route, gid))
            .map(|d| d.ranges)
            .unwrap_or_default()
    }

    /// Everything not yet reported.
    #[allow(clippy::type_complexity)]
    fn take_all(
        &self,
    ) -> (
        BTreeMap<(usize, [u8; 16]), Dropped>,
        BTreeMap<usize, (u64, i64, i64, String)>,
    ) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Default::default();
        }
        (
            std::mem::take(&mut *lock(&self.drops)),
            std::mem::take(&mut *lock(&self.unnumbered)),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ns() -> i64 {
    i64::try_from(utc::now_unix_nanos()).unwrap_or(i64::MAX)
}

fn time_of(ns: i64) -> String {
    utc::format_nanos(u64::try_from(ns).unwrap_or(0), utc::Fraction::Nanos)
}

/// The Zenoh configuration of a source: a peer, multicast scouting off.
pub fn zenoh_config(source: &Ros2Source) -> Result<zenoh::Config, String> {
    let list = |v: &[String]| {
        let items: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", items.join(","))
    };
    let mut c = zenoh::Config::default();
    for (key, value) in [
        ("mode", r#""peer""#.to_string()),
        ("scouting/multicast/enabled", "false".to_string()),
        ("connect/endpoints", list(&source.connect)),
        ("listen/endpoints", list(&source.listen)),
        // A peer's defaults: endpoints not reachable yet are retried in the
        // background (1 s, then up to every 4 s), and the session starts anyway.
        ("connect/exit_on_failure", "false".to_string()),
        // Anything on the robot's network can reach a listening agent: a
        // sample larger than 64 MiB is dropped by the transport, and at most
        // 64 peers are connected at once.
        ("transport/link/rx/max_message_size", "67108864".to_string()),
        ("transport/unicast/max_sessions", "64".to_string()),
    ] {
        c.insert_json5(key, &value)
            .map_err(|e| format!("zenoh configuration {key}: {e}"))?;
    }
    Ok(c)
}

impl Ros2Run {
    /// Run until `stop` is set or the pipeline is gone.
    pub fn run(self) {
        let name = self.name.clone();
        if let Err(message) = self.run_session() {
            let _ = self.tx.send(SourceEvent::Failed {
                source: name,
                message,
            });
        }
    }

    fn run_session(&self) -> Result<(), String> {
        let config = zenoh_config(&self.source)?;
        let session = zenoh::open(config)
            .wait()
            .map_err(|e| format!("cannot start the Zenoh session: {e}"))?;
        let zid = session.zid().to_string();
        let node = NodeName {
            domain_id: self.source.domain_id,
            zid: &zid,
            node_id: 0,
            enclave: "",
            namespace: &self.source.namespace,
            name: &self.source.node,
        };
        let mut tokens = Vec::new();
        tokens.push(
            session
                .liveliness()
                .declare_token(node.node_token())
                .wait()
                .map_err(|e| format!("cannot declare the node's liveliness token: {e}"))?,
        );
        let (qtx, qrx) = crossbeam_channel::bounded::<Sample>(self.source.queue.max(1));
        let ledger = Arc::new(Ledger::default());
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let mut subscribers = Vec::new();
        let mut announced: HashSet<(usize, String, String)> = HashSet::new();
        let mut next_entity = 1u64;
        for (route, topic) in self.topics.iter().enumerate() {
            let ros2 = topic.ros2.clone().unwrap_or_default();
            let key = rmw_zenoh::subscription_key(
                self.source.domain_id,
                &topic.matcher,
                ros2.ros_type.as_deref(),
            );
            let (qtx, ledger, counters) = (qtx.clone(), ledger.clone(), self.counters.clone());
            let queued = queued_bytes.clone();
            let subscriber = session
                .declare_subscriber(&key)
                .callback(move |sample| {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    let attachment = sample
                        .attachment()
                        .and_then(|a| Attachment::parse(&a.to_bytes()));
                    let dropped_before = attachment
                        .map(|a| ledger.take(route, a.gid))
                        .unwrap_or_default();
                    let s = Sample {
                        route,
                        key: sample.key_expr().as_str().to_string(),
                        payload: sample.payload().to_bytes().into_owned(),
                        attachment,
                        received_ns: now_ns(),
                        dropped_before,
                    };
                    let len = s.payload.len() as u64;
                    let room = queued.fetch_add(len, Ordering::AcqRel) + len <= QUEUE_BYTES;
                    let refused = if room {
                        qtx.try_send(s).err().map(|e| match e {
                            TrySendError::Full(s) | TrySendError::Disconnected(s) => s,
                        })
                    } else {
                        Some(s)
                    };
                    if let Some(s) = refused {
                        queued.fetch_sub(len, Ordering::AcqRel);
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        ledger.record(s);
                    }
                })
                .wait()
                .map_err(|e| format!("cannot subscribe to {key}: {e}"))?;
            subscribers.push(subscriber);
            let exact = !topic.matcher.contains(['+', '#']);
            if let (true, Some(ty)) = (exact, &ros2.ros_type) {
                let hash = rihs::type_hash(&self.source.library, ty)
                    .unwrap_or_else(|_| rmw_zenoh::NO_TYPE_HASH.to_string());
                if let Some(t) =
                    node.subscription_token(next_entity, &topic.matcher, ty, &hash, &ros2.qos)
                {
                    next_entity += 1;
                    announced.insert((route, topic.matcher.clone(), ty.clone()));
                    tokens.push(
                        session
                            .liveliness()
                            .declare_token(t)
                            .wait()
                            .map_err(|e| format!("cannot declare a liveliness token: {e}"))?,
                    );
                }
            }
            (self.log)(&format!(
                "source {}: subscribed to {} on ROS domain {} ({key})",
                self.name, topic.matcher, self.source.domain_id
            ));
        }
        drop(qtx);
        (self.log)(&format!(
            "source {}: in the ROS graph as node {}{}{} (Zenoh id {zid}; connect {}, listen {})",
            self.name,
            self.source.namespace,
            if self.source.namespace.ends_with('/') {
                ""
            } else {
                "/"
            },
            self.source.node,
            if self.source.connect.is_empty() {
                "-".to_string()
            } else {
                self.source.connect.join(", ")
            },
            if self.source.listen.is_empty() {
                "-".to_string()
            } else {
                self.source.listen.join(", ")
            },
        ));
        let mut position = self.first_position;
        let mut registries: HashMap<String, Result<Arc<Registry>, String>> = HashMap::new();
        while !self.stop.load(Ordering::Relaxed) {
            let sample = match qrx.recv_timeout(Duration::from_millis(100)) {
                Ok(s) => {
                    queued_bytes.fetch_sub(s.payload.len() as u64, Ordering::AcqRel);
                    s
                }
                Err(RecvTimeoutError::Timeout) => {
                    // The queue is empty: drops no later sample carried are reported now.
                    if !self.report_drops(&ledger) {
                        break;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let topic = &self.topics[sample.route];
            let parsed = rmw_zenoh::parse_topic_key(self.source.domain_id, &sample.key);
            if let Some(k) = &parsed {
                let new = announced.insert((sample.route, k.topic.clone(), k.ros_type.clone()));
                if new {
                    let qos = topic.ros2.clone().unwrap_or_default().qos;
                    let hash = rihs::type_hash(&self.source.library, &k.ros_type)
                        .unwrap_or_else(|_| k.type_hash.clone());
                    if let Some(t) =
                        node.subscription_token(next_entity, &k.topic, &k.ros_type, &hash, &qos)
                    {
                        next_entity += 1;
                        if let Ok(token) = session.liveliness().declare_token(t).wait() {
                            tokens.push(token);
                        }
                    }
                }
            }
            let input = self.input(position, &sample, parsed, &mut registries);
            position += 1;
            let event = SourceEvent::Message {
                source: self.name.clone(),
                input,
            };
            if self.tx.send(event).is_err() {
                break;
            }
        }
        // Stopping: no new samples; those received and the drops not yet
        // reported still reach the pipeline, which takes them before it stops.
        drop(subscribers);
        for sample in qrx.try_iter() {
            let parsed = rmw_zenoh::parse_topic_key(self.source.domain_id, &sample.key);
            let input = self.input(position, &sample, parsed, &mut registries);
            position += 1;
            let event = SourceEvent::Message {
                source: self.name.clone(),
                input,
            };
            if self.tx.send(event).is_err() {
                break;
            }
        }
        self.report_drops(&ledger);
        drop(tokens);
        let _ = session.close().wait();
        Ok(())
    }

    /// Report the drops no later sample carried; false if the pipeline is gone.
    fn report_drops(&self, ledger: &Ledger) -> bool {
        let (numbered, unnumbered) = ledger.take_all();
        for ((route, gid), d) in numbered {
            let source_topic = rmw_zenoh::parse_topic_key(self.source.domain_id, &d.key)
                .map_or(d.key.clone(), |k| k.topic);
            for (first, last) in d.ranges {
                let event = SourceEvent::Dropped {
                    source: self.name.clone(),
                    report: DropReport {
                        topic: self.topics[route].name.clone(),
                        source_topic: source_topic.clone(),
                        publisher: Some(rmw_zenoh::hex_lower(&gid)),
                        sequences: Some((first, last)),
                        last_at: time_of(d.last_ns),
                    },
                };
                if self.tx.send(event).is_err() {
                    return false;
                }
            }
        }
        for (route, (_, _, last_ns, key)) in unnumbered {
            let source_topic = rmw_zenoh::parse_topic_key(self.source.domain_id, &key)
                .map_or(key.clone(), |k| k.topic);
            let event = SourceEvent::Dropped {
                source: self.name.clone(),
                report: DropReport {
                    topic: self.topics[route].name.clone(),
                    source_topic,
                    publisher: None,
                    sequences: None,
                    last_at: time_of(last_ns),
                },
            };
            if self.tx.send(event).is_err() {
                return false;
            }
        }
        true
    }

    /// The pipeline input of a sample: decoded with its type's definition.
    fn input(
        &self,
        position: u64,
        sample: &Sample,
        parsed: Option<rmw_zenoh::TopicKey>,
        registries: &mut HashMap<String, Result<Arc<Registry>, String>>,
    ) -> Input {
        let captured_ns = sample
            .attachment
            .map_or(sample.received_ns, |a| a.source_timestamp_ns);
        let (topic, fields) = match parsed {
            None => (
                sample.key.clone(),
                Err(format!(
                    "key {:?} is not a ROS 2 topic of domain {}",
                    sample.key, self.source.domain_id
                )),
            ),
            Some(k) => {
                let registry = registries
                    .entry(k.ros_type.clone())
                    .or_insert_with(|| {
                        self.source
                            .library
                            .registry(&k.ros_type)
                            .map(Arc::new)
                            .map_err(|e| format!("{e}: add its .msg file to the source's messages"))
                    })
                    .clone();
                let fields = registry.and_then(|r| {
                    cdr::decode(&r, &sample.payload).map_err(|e| format!("{}: {e}", k.ros_type))
                });
                (k.topic, fields)
            }
        };
        Input {
            position,
            topic,
            captured_at: time_of(captured_ns),
            fields,
            route: Some(self.topics[sample.route].name.clone()),
            origin: sample.attachment.and_then(|a| {
                Some(Origin {
                    publisher: a.gid_hex(),
                    sequence: u64::try_from(a.sequence).ok()?,
                    dropped_before: sample.dropped_before.clone(),
                })
            }),
        }
    }
}
