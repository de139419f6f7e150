//! Store and forward: the spool holds every sealed chunk (and dataset
//! manifest) until each destination has it; a forwarder thread copies them,
//! per topic in chain order, and deletes them from the spool once every
//! destination has them.
//!
//! A destination that fails is retried with exponential backoff (0.5 s up to
//! 30 s) while the others go on. One that refuses for good (a permanent
//! [`SinkError`](crate::sink::SinkError): a market's HTTP 4xx other than 408
//! and 429) is stopped for the rest of the run: logged once, shown in its
//! health, not waited for; what it lacks stays in the spool. What each destination has received is kept
//! in `<spool>/delivery.json`, replaced atomically after every object, so a
//! restart resumes where delivery stopped (an object may be sent twice, never
//! skipped; sinks replace objects whole).
//!
//! Delivered chunks leave the spool ciphertext first, envelope last, so a
//! crash between the two leaves the envelope, by which the next start finds
//! the chunk and removes the rest (see [`crate::spool`]).
//!
//! The spool's size is tracked here ([`Outbox::spool_bytes`]); when it reaches
//! its cap, the pipeline either waits for the forwarder ([`Outbox::wait_below`],
//! `whenFull: block`) or drops the oldest undelivered chunk
//! ([`Outbox::drop_oldest`], `whenFull: drop-oldest`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sealstream_core::json::{self, Map, Number, Value};
use sealstream_files::layout::{ciphertext_name, envelope_name, write_atomic};

use crate::sink::{Delivery, Sink};
use crate::spool::{file_len, live_chunk_bytes};

/// How far one destination has received one topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The next chunk index to send.
    pub chunks: u64,
    /// The first chunk index of the next dataset manifest to send.
    pub datasets: u64,
}

/// A destination's health, for `agent status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The destination, as in logs.
    pub destination: String,
    /// Whether the last attempt succeeded (`None`: nothing tried yet).
    pub ok: Option<bool>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// When the last object was delivered (UTC).
    pub last_delivered_at: Option<String>,
    /// Failed attempts in a row.
    pub failures: u64,
    /// The destination refused for good ([`SinkError::permanent`](crate::sink::SinkError::permanent)):
    /// nothing more is sent to it in this run; `last_error` says why.
    pub stopped: bool,
}

/// One topic's chain in the spool.
#[derive(Clone, Debug)]
pub struct TopicOutbox {
    /// The directory name of the topic at destinations (`<name>-<hash>`).
    pub dir_name: String,
    /// The spool directory of its chain.
    pub chain_dir: PathBuf,
    /// The spool directory of its dataset manifests.
    pub dataset_dir: PathBuf,
    /// Chunks committed (the next index).
    pub head: u64,
    /// The spool holds chunks from this index on.
    pub pruned: u64,
    /// Dataset manifests in the spool: (first index, last index).
    pub datasets: Vec<(u64, u64)>,
}

/// The name of a dataset manifest file.
pub fn dataset_name(first: u64, last: u64) -> String {
    format!("dataset-{first}-{last}.json")
}

struct Inner {
    topics: BTreeMap<String, TopicOutbox>,
    /// Per destination id, per topic.
    delivery: BTreeMap<String, BTreeMap<String, Delivered>>,
    health: Vec<Health>,
    dropped: u64,
    shutdown: bool,
}

/// What the pipeline and the forwarder share.
pub struct Outbox {
    spool: PathBuf,
    ids: Vec<String>,
    start_notes: Vec<String>,
    inner: Mutex<Inner>,
    changed: Condvar,
    bytes: AtomicU64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("spool", &self.spool)
            .field("destinations", &self.ids)
            .finish_non_exhaustive()
    }
}

/// `<spool>/delivery.json`.
pub fn delivery_path(spool: &Path) -> PathBuf {
    spool.join("delivery.json")
}

/// Read `<spool>/delivery.json` (empty if there is none).
pub fn load_delivery(
    spool: &Path,
) -> Result<BTreeMap<String, BTreeMap<String, Delivered>>, String> {
    let path = delivery_path(spool);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse_delivery(&bytes, &path)
}

/// Parse the content of a `delivery.json` (per destination id, per topic);
/// `path` only names the file in errors. Reads what [`delivery_json_bytes`]
/// writes back to an equal map.
pub fn parse_delivery(
    bytes: &[u8],
    path: &Path,
) -> Result<BTreeMap<String, BTreeMap<String, Delivered>>, String> {
    let v = json::parse(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    let n = |o: &Map, k: &str| o.get(k).and_then(Value::as_number).and_then(Number::as_u64);
    for (dest, topics) in v
        .as_object()
        .and_then(|o| o.get("destinations"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let mut per = BTreeMap::new();
        for (topic, d) in topics.as_object().into_iter().flatten() {
            let d = d.as_object().ok_or_else(|| {
                format!(
                    "{}: destinations.{dest}.{topic}: expected an object",
                    path.display()
                )
            })?;
            per.insert(
                topic.clone(),
                Delivered {
                    chunks: n(d, "chunks").unwrap_or(0),
                    datasets: n(d, "datasets").unwrap_or(0),
                },
            );
        }
        out.insert(dest.clone(), per);
    }
    Ok(out)
}

/// Carry delivery progress recorded under the names of earlier versions
/// over to the destinations' identities `ids` (see [`crate::sink::identity`]).
/// A recorded name that is not one of `ids` but stands for one (among the
/// candidates `resolve` gives) is merged into it, per topic the further
/// progress (both reached the same place), and removed; `delivery.json` is
/// then rewritten. Names that stand for none are kept. Returns one log line
/// per name carried over.
pub fn migrate_delivery(
    spool: &Path,
    ids: &[String],
    resolve: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<String>, String> {
    let mut delivery = load_delivery(spool)?;
    let mut notes = Vec::new();
    let names: Vec<String> = delivery
        .keys()
        .filter(|k| !ids.contains(k))
        .cloned()
        .collect();
    for name in names {
        let Some(id) = resolve(&name).into_iter().find(|c| ids.contains(c)) else {
            continue;
        };
        let old = delivery.remove(&name).unwrap_or_default();
        let entry = delivery.entry(id.clone()).or_default();
        for (topic, d) in old {
            let e = entry.entry(topic).or_default();
            e.chunks = e.chunks.max(d.chunks);
            e.datasets = e.datasets.max(d.datasets);
        }
        notes.push(format!(
            "delivery.json: what was recorded as delivered to {name:?} is now recorded for destination {id}"
        ));
    }
    if !notes.is_empty() {
        save_delivery(spool, &delivery)?;
    }
    Ok(notes)
}

fn save_delivery(
    spool: &Path,
    delivery: &BTreeMap<String, BTreeMap<String, Delivered>>,
) -> Result<(), String> {
    let path = delivery_path(spool);
    write_atomic(&path, &delivery_json_bytes(delivery))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The content of `delivery.json`: pretty-printed JSON
/// `{"destinations": {<id>: {<topic>: {"chunks": …, "datasets": …}}}}`.
pub fn delivery_json_bytes(delivery: &BTreeMap<String, BTreeMap<String, Delivered>>) -> Vec<u8> {
    let mut dests = Map::new();
    for (dest, topics) in delivery {
        let mut t = Map::new();
        for (name, d) in topics {
            let mut o = Map::new();
            o.insert("chunks".into(), Value::from(d.chunks));
            o.insert("datasets".into(), Value::from(d.datasets));
            t.insert(name.clone(), Value::Object(o));
        }
        dests.insert(dest.clone(), Value::Object(t));
    }
    let mut m = Map::new();
    m.insert("destinations".into(), Value::Object(dests));
    json::write::to_python_pretty(&Value::Object(m)).into_bytes()
}

/// The bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

enum Item {
    Chunk(u64),
    Dataset(u64, u64),
}

impl Outbox {
    /// The shared outbox over `topics` (their spooled chunks start at
    /// `pruned`) for destinations with these ids (their descriptions).
    pub fn new(
        spool: &Path,
        destination_ids: Vec<String>,
        topics: BTreeMap<String, TopicOutbox>,
    ) -> Result<Outbox, String> {
        let mut delivery = load_delivery(spool)?;
        let mut start_notes = Vec::new();
        // Earlier versions could deliver a chunk before committing it; after
        // a crash there, the chunk is sealed again, differently, and must
        // replace what the destination got.
        for (name, t) in &topics {
            for id in &destination_ids {
                let Some(d) = delivery.get_mut(id).and_then(|x| x.get_mut(name)) else {
                    continue;
                };
                if d.chunks > t.head {
                    start_notes.push(format!(
                        "destination {id}: topic {name}: chunks {}..={} were delivered but never committed (an earlier version delivered before committing); they are sealed again and will be delivered again",
                        t.head,
                        d.chunks - 1
                    ));
                    d.chunks = t.head;
                }
            }
        }
        // Chunks that left the spool before a destination was configured
        // (or was known by this name) cannot reach it: say so, and go on
        // from the spool's oldest chunk instead of waiting for them forever.
        for (name, t) in &topics {
            for id in &destination_ids {
                let d = delivery
                    .entry(id.clone())
                    .or_default()
                    .entry(name.clone())
                    .or_default();
                if d.chunks < t.pruned {
                    start_notes.push(format!(
                        "destination {id}: topic {name}: chunks {}..={} left the spool before this destination received them; it will not get them, and gets chunk {} on",
                        d.chunks,
                        t.pruned - 1,
                        t.pruned
                    ));
                    d.chunks = t.pruned;
                }
            }
        }
        let health = destination_ids
            .iter()
            .map(|id| Health {
                destination: id.clone(),
                ..Health::default()
            })
            .collect();
        // Only what the outbox will deliver counts against the cap: the
        // chunks `pruned..head` and the listed manifests, not whatever else
        // an interrupted run may have left in the directories.
        let bytes = topics
            .values()
            .map(|t| {
                live_chunk_bytes(&t.chain_dir, t.pruned, t.head)
                    + t.datasets
                        .iter()
                        .map(|(a, b)| file_len(&t.dataset_dir.join(dataset_name(*a, *b))))
                        .sum::<u64>()
            })
            .sum();
        Ok(Outbox {
            spool: spool.to_path_buf(),
            bytes: AtomicU64::new(bytes),
            ids: destination_ids,
            start_notes,
            inner: Mutex::new(Inner {
                topics,
                delivery,
                health,
                dropped: 0,
                shutdown: false,
            }),
            changed: Condvar::new(),
        })
    }

    /// What [`Outbox::new`] found and corrected in the spool, one log line each.
    pub fn start_notes(&self) -> &[String] {
        &self.start_notes
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of sealed chunks and dataset manifests in the spool (what its
    /// cap limits; journals of live sources and state files are not counted).
    pub fn spool_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Account for bytes written to (positive) or removed from the spool.
    pub fn add_bytes(&self, n: i64) {
        if n >= 0 {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            let n = n.unsigned_abs();
            let _ = self
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(n))
                });
        }
    }

    /// A topic's chain grew to `head` chunks, adding `bytes` to the spool.
    pub fn committed(&self, topic: &str, head: u64, bytes: u64) {
        self.add_bytes(bytes as i64);
        let mut inner = self.lock();
        if let Some(t) = inner.topics.get_mut(topic) {
            t.head = head;
        }
        drop(inner);
        self.changed.notify_all();
    }

    /// A dataset manifest over chunks `first..=last` was written to the spool.
    pub fn dataset_written(&self, topic: &str, first: u64, last: u64, bytes: u64) {
        self.add_bytes(bytes as i64);
        let mut inner = self.lock();
        if let Some(t) = inner.topics.get_mut(topic) {
            if !t.datasets.contains(&(first, last)) {
                t.datasets.push((first, last));
                t.datasets.sort_unstable();
            }
        }
        drop(inner);
        self.changed.notify_all();
    }

    /// Per destination, how far it has received `topic`.
    pub fn delivered(&self, topic: &str) -> Vec<(String, Delivered)> {
        let inner = self.lock();
        self.ids
            .iter()
            .map(|id| {
                let d = inner
                    .delivery
                    .get(id)
                    .and_then(|t| t.get(topic))
                    .copied()
                    .unwrap_or_default();
                (id.clone(), d)
            })
            .collect()
    }

    /// Destination health, in configuration order.
    pub fn health(&self) -> Vec<Health> {
        self.lock().health.clone()
    }

    /// Chunks dropped from the spool undelivered (`whenFull: drop-oldest`) in this run.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Whether every destination still served (not stopped) has every
    /// committed chunk and manifest.
    pub fn drained(&self) -> bool {
        let inner = self.lock();
        inner.topics.iter().all(|(name, t)| {
            self.ids
                .iter()
                .zip(&inner.health)
                .filter(|(_, h)| !h.stopped)
                .all(|(id, _)| {
                    let d = inner
                        .delivery
                        .get(id)
                        .and_then(|x| x.get(name))
                        .copied()
                        .unwrap_or_default();
                    d.chunks >= t.head && t.datasets.iter().all(|(first, _)| d.datasets > *first)
                })
        })
    }

    /// Wait until the spool holds at most `limit` bytes, `stop` is set, or
    /// `timeout` has passed. Returns whether the spool is within `limit`.
    pub fn wait_below(&self, limit: u64, stop: &AtomicBool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        while self.spool_bytes() > limit && !stop.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            inner = self
                .changed
                .wait_timeout(inner, left.min(Duration::from_millis(200)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        self.spool_bytes() <= limit
    }

    /// Wait until every destination has everything, or `timeout` has
    /// passed. Returns whether everything was delivered.
    pub fn wait_drained_for(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.drained() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let inner = self.lock();
            let _ = self
                .changed
                .wait_timeout(inner, left.min(Duration::from_millis(200)))
                .unwrap_or_else(|p| p.into_inner());
        }
        true
    }

    /// Wait until every destination has everything, or `stop` is set.
    pub fn wait_drained(&self, stop: &AtomicBool) {
        while !self.drained() && !stop.load(Ordering::Relaxed) {
            let inner = self.lock();
            let _ = self
                .changed
                .wait_timeout(inner, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Delete the oldest chunk still in the spool (by its envelope's
    /// modification time), marking it as passed for every destination that
    /// lacks it. Returns the topic, the index, and the destinations that
    /// never got it; `None` if the spool holds no chunk.
    pub fn drop_oldest(&self) -> Option<(String, u64, Vec<String>)> {
        let mut inner = self.lock();
        let (name, index) = inner
            .topics
            .iter()
            .filter(|(_, t)| t.pruned < t.head)
            .map(|(name, t)| {
                let modified = std::fs::metadata(t.chain_dir.join(envelope_name(t.pruned)))
                    .and_then(|m| m.modified())
                    .ok();
                (modified, name.clone(), t.pruned)
            })
            .min()
            .map(|(_, name, index)| (name, index))?;
        let mut missed = Vec::new();
        for id in &self.ids {
            let d = inner
                .delivery
                .entry(id.clone())
                .or_default()
                .entry(name.clone())
                .or_default();
            if d.chunks <= index {
                d.chunks = index + 1;
                missed.push(id.clone());
            }
        }
        let _ = save_delivery(&self.spool, &inner.delivery);
        let t = inner.topics.get_mut(&name).expect("chosen above");
        let mut freed = 0;
        for file in [ciphertext_name(index), envelope_name(index)] {
            let path = t.chain_dir.join(file);
            freed += file_len(&path);
            let _ = std::fs::remove_file(&path);
        }
        t.pruned = index + 1;
        inner.dropped += 1;
        drop(inner);
        self.add_bytes(-(freed as i64));
        self.changed.notify_all();
        Some((name, index, missed))
    }

    /// Ask the forwarder to stop after its current object.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.changed.notify_all();
    }

    /// The next object destination `d` lacks, per topic in name order.
    fn next_item(&self, d: usize) -> Option<(String, TopicOutbox, Item)> {
        let inner = self.lock();
        for (name, t) in &inner.topics {
            let got = inner
                .delivery
                .get(&self.ids[d])
                .and_then(|x| x.get(name))
                .copied()
                .unwrap_or_default();
            let next_chunk = got.chunks.max(t.pruned);
            if next_chunk < t.head {
                return Some((name.clone(), t.clone(), Item::Chunk(next_chunk)));
            }
            if let Some((first, last)) = t
                .datasets
                .iter()
                .find(|(first, last)| *first >= got.datasets && *last < got.chunks)
            {
                return Some((name.clone(), t.clone(), Item::Dataset(*first, *last)));
            }
        }
        None
    }

    fn delivered_item(&self, d: usize, topic: &str, item: &Item) -> Result<(), String> {
        let mut inner = self.lock();
        let entry = inner
            .delivery
            .entry(self.ids[d].clone())
            .or_default()
            .entry(topic.to_string())
            .or_default();
        match item {
            Item::Chunk(i) => entry.chunks = entry.chunks.max(i + 1),
            Item::Dataset(first, _) => entry.datasets = entry.datasets.max(first + 1),
        }
        let h = &mut inner.health[d];
        h.ok = Some(true);
        h.last_error = None;
        h.failures = 0;
        h.last_delivered_at = Some(sealstream_core::utc::now());
        save_delivery(&self.spool, &inner.delivery)
    }

    fn failed(&self, d: usize, message: String) -> u64 {
        let mut inner = self.lock();
        let h = &mut inner.health[d];
        h.ok = Some(false);
        h.last_error = Some(message);
        h.failures += 1;
        h.failures
    }

    /// Destination `d` refused for good: mark it stopped, and wake whoever
    /// waits for the destinations (they no longer wait for this one).
    fn stop(&self, d: usize, message: String) {
        self.failed(d, message);
        self.lock().health[d].stopped = true;
        self.changed.notify_all();
    }

    /// The destinations stopped in this run because they refused for good:
    /// (destination, why).
    pub fn stopped(&self) -> Vec<(String, String)> {
        self.lock()
            .health
            .iter()
            .filter(|h| h.stopped)
            .map(|h| {
                (
                    h.destination.clone(),
                    h.last_error.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Delete from the spool what every destination has.
    fn prune(&self) {
        let mut freed = 0;
        let mut inner = self.lock();
        let inner = &mut *inner;
        for (name, t) in inner.topics.iter_mut() {
            let got: Vec<Delivered> = self
                .ids
                .iter()
                .map(|id| {
                    inner
                        .delivery
                        .get(id)
                        .and_then(|x| x.get(name))
                        .copied()
                        .unwrap_or_default()
                })
                .collect();
            let all_chunks = got.iter().map(|d| d.chunks).min().unwrap_or(0).min(t.head);
            while t.pruned < all_chunks {
                // The envelope last: while it is there, a restart finds the
                // chunk and finishes pruning it (see `crate::spool`).
                for (k, file) in [ciphertext_name(t.pruned), envelope_name(t.pruned)]
                    .into_iter()
                    .enumerate()
                {
                    let path = t.chain_dir.join(file);
                    freed += file_len(&path);
                    let _ = std::fs::remove_file(&path);
                    if k == 0 {
                        crate::killpoint::reached(crate::killpoint::PRUNE_BETWEEN_FILES, || true);
                    }
                }
                t.pruned += 1;
            }
            let all_datasets = got.iter().map(|d| d.datasets).min().unwrap_or(0);
            t.datasets.retain(|(first, last)| {
                if *first < all_datasets {
                    let path = t.dataset_dir.join(dataset_name(*first, *last));
                    freed += file_len(&path);
                    let _ = std::fs::remove_file(&path);
                    false
                } else {
                    true
                }
            });
        }
        if freed > 0 {
            self.add_bytes(-(freed as i64));
            self.changed.notify_all();
        }
    }
}

/// Read a spooled object: (key at the destination, bytes). `None` if it was
/// dropped meanwhile.
/// Objects to put: (key at the destination, bytes).
type Objects = Vec<(String, Vec<u8>)>;

fn read_item(topic: &TopicOutbox, item: &Item) -> Result<Option<Objects>, String> {
    let files: Vec<(PathBuf, String)> = match item {
        Item::Chunk(i) => [ciphertext_name(*i), envelope_name(*i)]
            .into_iter()
            .map(|f| (topic.chain_dir.join(&f), f))
            .collect(),
        Item::Dataset(first, last) => {
            let f = dataset_name(*first, *last);
            vec![(topic.dataset_dir.join(&f), f)]
        }
    };
    let mut out = Vec::new();
    for (path, name) in files {
        match std::fs::read(&path) {
            Ok(bytes) => out.push((format!("{}/{name}", topic.dir_name), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(Some(out))
}

/// Start the forwarder thread over `sinks` (in the order of the outbox's ids).
/// `log` receives one line per event worth a log line.
pub fn spawn(
    outbox: Arc<Outbox>,
    mut sinks: Vec<Box<dyn Sink>>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sealstream-forwarder".into())
        .spawn(move || {
            let mut retry_at: Vec<Option<Instant>> = vec![None; sinks.len()];
            let mut stopped = vec![false; sinks.len()];
            loop {
                if outbox.lock().shutdown {
                    return;
                }
                let mut progressed = false;
                for d in 0..sinks.len() {
                    if stopped[d] || retry_at[d].is_some_and(|t| Instant::now() < t) {
                        continue;
                    }
                    // A bounded round per destination, so others get their turn.
                    for _ in 0..64 {
                        if outbox.lock().shutdown {
                            return;
                        }
                        let Some((topic, t, item)) = outbox.next_item(d) else {
                            break;
                        };
                        // Err: (why, whether for good).
                        let result = read_item(&t, &item).map_err(|m| (m, false)).and_then(|files| {
                            let Some(files) = files else {
                                return Ok(());
                            };
                            let delivery = match (&item, files.as_slice()) {
                                (Item::Chunk(index), [bin, json]) => Delivery::Chunk {
                                    index: *index,
                                    ciphertext: (&bin.0, &bin.1),
                                    envelope: (&json.0, &json.1),
                                },
                                (Item::Dataset(first, last), [manifest]) => Delivery::Dataset {
                                    first: *first,
                                    last: *last,
                                    manifest: (&manifest.0, &manifest.1),
                                },
                                _ => return Err(("internal: unexpected spool item".into(), false)),
                            };
                            sinks[d]
                                .deliver(&topic, &delivery)
                                .map_err(|e| (e.message, e.permanent))
                        });
                        let result = result.and_then(|()| {
                            outbox.delivered_item(d, &topic, &item).map_err(|m| (m, false))
                        });
                        match result {
                            Ok(()) => {
                                if retry_at[d].take().is_some() {
                                    log(&format!(
                                        "destination {}: reachable again, delivering",
                                        outbox.ids[d]
                                    ));
                                }
                                progressed = true;
                            }
                            Err((message, true)) => {
                                log(&format!(
                                    "destination {}: {message}; refused for good: stopped, not retried in this run (what it lacks stays in the spool for the next run)",
                                    outbox.ids[d]
                                ));
                                outbox.stop(d, message);
                                stopped[d] = true;
                                break;
                            }
                            Err((message, false)) => {
                                let failures = outbox.failed(d, message.clone());
                                let backoff = Duration::from_millis(500)
                                    .saturating_mul(1 << failures.min(6))
                                    .min(Duration::from_secs(30));
                                log(&format!(
                                    "destination {}: {message}; retrying in {:.1} s",
                                    outbox.ids[d],
                                    backoff.as_secs_f64()
                                ));
                                retry_at[d] = Some(Instant::now() + backoff);
                                break;
                            }
                        }
                    }
                }
                outbox.prune();
                if !progressed {
                    let wake = retry_at
                        .iter()
                        .flatten()
                        .min()
                        .map_or(Duration::from_secs(1), |t| {
                            t.saturating_duration_since(Instant::now())
                        })
                        .clamp(Duration::from_millis(10), Duration::from_millis(100));
                    let inner = outbox.lock();
                    if inner.shutdown {
                        return;
                    }
                    let _ = outbox
                        .changed
                        .wait_timeout(inner, wake)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        })
        .expect("spawn the forwarder thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkError;

    /// A sink that records puts, and fails while `down` is set.
    struct Recording {
        puts: Arc<Mutex<Vec<String>>>,
        down: Arc<AtomicBool>,
    }

    impl Sink for Recording {
        fn describe(&self) -> String {
            "recording".into()
        }
        fn put(&mut self, key: &str, _bytes: &[u8]) -> Result<(), SinkError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(SinkError::new(format!("recording: {key}: down")));
            }
            self.puts.lock().unwrap().push(key.to_string());
            Ok(())
        }
    }

    fn spool_chunk(dir: &Path, index: u64) {
        std::fs::write(dir.join(ciphertext_name(index)), vec![7u8; 100]).unwrap();
        std::fs::write(dir.join(envelope_name(index)), vec![b'{'; 50]).unwrap();
    }

    /// Topic `t` spooled in `spool` (`chains/t-1`) with chunks `0..head`
    /// written `gap` apart, and the outbox of `destinations` over it: its
    /// chain directory, its topic and the outbox.
    fn spooled(
        spool: &Path,
        head: u64,
        gap: Duration,
        destinations: &[&str],
    ) -> (PathBuf, TopicOutbox, Outbox) {
        let chain_dir = spool.join("chains/t-1");
        std::fs::create_dir_all(&chain_dir).unwrap();
        for i in 0..head {
            spool_chunk(&chain_dir, i);
            std::thread::sleep(gap);
        }
        let topic = TopicOutbox {
            dir_name: "t-1".into(),
            chain_dir: chain_dir.clone(),
            dataset_dir: spool.join("datasets/t-1"),
            head,
            pruned: 0,
            datasets: Vec::new(),
        };
        let outbox = Outbox::new(
            spool,
            destinations.iter().map(|d| d.to_string()).collect(),
            BTreeMap::from([("t".to_string(), topic.clone())]),
        )
        .unwrap();
        (chain_dir, topic, outbox)
    }

    /// Starts the forwarder of `outbox` to `sinks`, its log lines collected
    /// in the vector returned.
    fn forward(
        outbox: &Arc<Outbox>,
        sinks: Vec<Box<dyn Sink>>,
    ) -> (std::thread::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let l = lines.clone();
        let handle = spawn(
            outbox.clone(),
            sinks,
            Arc::new(move |s: &str| l.lock().unwrap().push(s.into())),
        );
        (handle, lines)
    }

    #[test]
    fn delivers_in_order_after_failures_prunes_and_resumes() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path();
        let (chain_dir, topic, outbox) = spooled(spool, 3, Duration::ZERO, &["recording"]);
        let outbox = Arc::new(outbox);
        assert_eq!(outbox.spool_bytes(), 450);
        let puts = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(true));
        let sink = Recording {
            puts: puts.clone(),
            down: down.clone(),
        };
        let (handle, lines) = forward(&outbox, vec![Box::new(sink)]);
        // Down: nothing delivered, the failure is in the health and the log.
        while outbox.health()[0].ok != Some(false) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(puts.lock().unwrap().is_empty());
        assert!(outbox.health()[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("down"));
        // Back: everything, in chain order, ciphertext before envelope.
        down.store(false, Ordering::Relaxed);
        let stop = AtomicBool::new(false);
        outbox.wait_drained(&stop);
        assert_eq!(
            *puts.lock().unwrap(),
            [
                "t-1/chunk-0.bin",
                "t-1/chunk-0.json",
                "t-1/chunk-1.bin",
                "t-1/chunk-1.json",
                "t-1/chunk-2.bin",
                "t-1/chunk-2.json"
            ]
        );
        // Delivered chunks leave the spool.
        while outbox.spool_bytes() > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(std::fs::read_dir(&chain_dir).unwrap().next().is_none());
        outbox.shutdown();
        handle.join().unwrap();
        assert!(lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("reachable again")));
        // A restart reads what was delivered: nothing is sent again.
        let again = Outbox::new(
            spool,
            vec!["recording".into()],
            BTreeMap::from([("t".to_string(), TopicOutbox { pruned: 3, ..topic })]),
        )
        .unwrap();
        assert!(again.drained());
        assert_eq!(again.delivered("t")[0].1.chunks, 3);
    }

    /// A sink that refuses every object for good.
    struct Refusing;

    impl Sink for Refusing {
        fn describe(&self) -> String {
            "refusing".into()
        }
        fn put(&mut self, key: &str, _bytes: &[u8]) -> Result<(), SinkError> {
            Err(SinkError::permanent(format!(
                "refusing: {key}: 404 not registered"
            )))
        }
    }

    #[test]
    fn a_destination_refusing_for_good_is_stopped_and_not_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let (chain_dir, _, outbox) =
            spooled(tmp.path(), 2, Duration::ZERO, &["refusing", "recording"]);
        let outbox = Arc::new(outbox);
        let puts = Arc::new(Mutex::new(Vec::new()));
        let recording = Recording {
            puts: puts.clone(),
            down: Arc::new(AtomicBool::new(false)),
        };
        let (handle, lines) = forward(&outbox, vec![Box::new(Refusing), Box::new(recording)]);
        // The other destination gets everything; the run does not wait for
        // the stopped one.
        let stop = AtomicBool::new(false);
        outbox.wait_drained(&stop);
        assert_eq!(puts.lock().unwrap().len(), 4);
        while outbox.stopped().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        outbox.shutdown();
        handle.join().unwrap();
        let health = outbox.health();
        assert!(health[0].stopped && !health[1].stopped);
        assert_eq!(health[0].failures, 1, "tried once, not retried");
        assert_eq!(
            outbox.stopped(),
            [(
                "refusing".to_string(),
                "refusing: t-1/chunk-0.bin: 404 not registered".to_string()
            )]
        );
        let logged = lines.lock().unwrap().clone();
        assert_eq!(
            logged
                .iter()
                .filter(|l| l.contains("refused for good"))
                .count(),
            1,
            "{logged:?}"
        );
        // What the stopped destination lacks stays in the spool.
        assert!(chain_dir.join(envelope_name(0)).exists());
        assert_eq!(outbox.spool_bytes(), 300);
    }

    #[test]
    fn progress_under_an_old_name_is_carried_over() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path();
        let record =
            |chunks, datasets| BTreeMap::from([("t".to_string(), Delivered { chunks, datasets })]);
        let delivery = BTreeMap::from([
            ("old a".to_string(), record(7, 1)),
            ("a".to_string(), record(5, 2)),
            ("unknown".to_string(), record(1, 0)),
        ]);
        save_delivery(spool, &delivery).unwrap();
        let ids = vec!["a".to_string(), "b".to_string()];
        let notes = migrate_delivery(spool, &ids, |name| {
            vec![name.trim_start_matches("old ").to_string()]
        })
        .unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        let after = load_delivery(spool).unwrap();
        assert_eq!(
            after["a"]["t"],
            Delivered {
                chunks: 7,
                datasets: 2
            }
        );
        assert_eq!(after["unknown"]["t"].chunks, 1, "kept");
        assert!(!after.contains_key("old a"));
        assert!(migrate_delivery(spool, &ids, |_| Vec::new())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn delivery_beyond_the_head_is_taken_back_and_before_the_spool_passed() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path();
        let mut delivery = BTreeMap::new();
        delivery.insert(
            "a".to_string(),
            BTreeMap::from([(
                "t".to_string(),
                Delivered {
                    chunks: 5,
                    datasets: 0,
                },
            )]),
        );
        save_delivery(spool, &delivery).unwrap();
        let topic = TopicOutbox {
            dir_name: "t-1".into(),
            chain_dir: spool.join("chains/t-1"),
            dataset_dir: spool.join("datasets/t-1"),
            head: 3,
            pruned: 3,
            datasets: Vec::new(),
        };
        let outbox = Outbox::new(
            spool,
            vec!["a".into(), "b".into()],
            BTreeMap::from([("t".to_string(), topic)]),
        )
        .unwrap();
        assert_eq!(outbox.delivered("t")[0].1.chunks, 3);
        let notes = outbox.start_notes();
        assert!(
            notes[0].contains(
                "destination a: topic t: chunks 3..=4 were delivered but never committed"
            ),
            "{notes:?}"
        );
        // A destination the spool has no record of cannot get what left it:
        // it goes on from the spool's oldest chunk (here: none left yet).
        assert_eq!(outbox.delivered("t")[1].1.chunks, 3);
        assert!(
            notes[1].contains("destination b: topic t: chunks 0..=2 left the spool"),
            "{notes:?}"
        );
        assert!(outbox.drained());
    }

    #[test]
    fn drop_oldest_marks_and_frees() {
        let tmp = tempfile::tempdir().unwrap();
        let (chain_dir, _, outbox) = spooled(tmp.path(), 2, Duration::from_millis(20), &["a", "b"]);
        let (topic, index, missed) = outbox.drop_oldest().unwrap();
        assert_eq!((topic.as_str(), index), ("t", 0));
        assert_eq!(missed, ["a", "b"]);
        assert_eq!(outbox.spool_bytes(), 150);
        assert!(!chain_dir.join(envelope_name(0)).exists());
        assert_eq!(outbox.drop_oldest().unwrap().1, 1);
        assert!(outbox.drop_oldest().is_none());
        assert!(outbox.drained());
    }
}
