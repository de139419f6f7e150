//! The agent's pipeline: sources (one thread each) → decode → field rules →
//! signed package → batch → one continuous chain per topic in the spool →
//! the forwarder (see [`crate::forward`]) → destinations.
//!
//! Exactly once, whatever kills the process: a topic's batch is signed when it
//! is sealed into a chunk (so sequence numbers are handed out only to what is
//! committed), the chunk is written durably, then the state file is replaced
//! (see [`crate::state`]), and only then does the forwarder learn of the
//! chunk: no destination receives a chunk that is not committed. A restart
//! first clears what the crash left in the spool (see [`crate::spool`]), then
//! replays each source (files and bags from their beginning, live sources
//! from their journal), skips what its topics have committed, and continues
//! the chains.
//!
//! Both cores: a sealed batch is signed in the background (its packages
//! split across the cores) while the pipeline takes the next messages, and
//! it is committed when the next batch is sealed, when its signatures are
//! done at a tick (every 100 ms), before a dataset window closes, and when
//! the run ends, always before any later batch, so commits keep their
//! order. Only one batch is in flight at a time.
//!
//! A chunk is cut when its topic's batch reaches `maxMessages`, or the next
//! message would take its plaintext (the signed packages' lines) past
//! `maxBytes` (see [`crate::batch`]), or its oldest message is `maxAge` old;
//! on stop (SIGTERM) every open batch is sealed before the run returns.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use sealstream_core::chunk::{ChainConfig, ChainWriter};
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey};
use sealstream_core::package::PackageSigner;
use sealstream_core::utc;
use sealstream_files::layout::{ciphertext_name, envelope_name, DirectorySink, FileError};

use crate::batch::{Draft, Pending};
use crate::config::{DataEventMap, JsonlInput, Source, Topic, WhenFull};
use crate::forward::{self, Outbox, TopicOutbox};
use crate::journal::Journal;
use crate::mcap_source::McapSource;
use crate::mqtt::MqttRun;
use crate::queue::{source_queue, SourceSender, QUEUE_BYTES, QUEUE_EVENTS};
use crate::ros2_live::{Ros2Counters, Ros2Run};
use crate::signing::Signing;
use crate::sink::identity::{identity, legacy_identities};
use crate::sink::{self, Sink};
use crate::spool::file_len;
use crate::state::{AgentState, PublisherMark, StateError, TopicState, MAX_PUBLISHERS};
use crate::status;
use crate::window::Windows;
use sealstream_core::gap::{Gap, GapReason};

/// One decoded input message.
#[derive(Clone, Debug)]
pub struct Input {
    /// Position in its source (line or message number, from 0); replays give the same positions.
    pub position: u64,
    /// The topic on the source.
    pub topic: String,
    /// Capture time, ISO 8601.
    pub captured_at: String,
    /// The fields, or why the message could not be decoded.
    pub fields: Result<Map, String>,
    /// The one topic of the Data Event Map it is for (a subscription of a
    /// live ROS 2 source); `None`: every topic of the source that matches.
    pub route: Option<String>,
    /// Its publisher and that publisher's numbering, when the source tells.
    pub origin: Option<Origin>,
}

/// Where a live message came from: its publisher, numbering its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The publisher (ROS 2 global id in hex).
    pub publisher: String,
    /// Its sequence number for this message.
    pub sequence: u64,
    /// Sequence ranges of the same publisher the agent dropped (its queue
    /// was full) just before this message.
    pub dropped_before: Vec<(u64, u64)>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The state file.
    #[error(transparent)]
    State(#[from] StateError),
    /// Writing the spool or a destination.
    #[error(transparent)]
    File(#[from] FileError),
    /// A source could not be opened or read.
    #[error("source {name}: {message}")]
    Source {
        /// The source's name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration asks for something this command cannot do yet.
    #[error("{0}")]
    Unsupported(String),
    /// A key or option is invalid.
    #[error(transparent)]
    Validation(#[from] sealstream_core::ValidationError),
    /// The delivery state could not be read or written.
    #[error("{0}")]
    Delivery(String),
    /// A dataset manifest could not be built or written.
    #[error("{0}")]
    Dataset(String),
    /// A batch of a topic could not be signed.
    #[error("topic {topic}: {message}")]
    Signing {
        /// The topic.
        topic: String,
        /// What went wrong.
        message: String,
    },
}

/// Per-topic counts after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicReport {
    /// Topic name.
    pub name: String,
    /// Packages committed in total.
    pub packages: u64,
    /// Chunks in the chain.
    pub chunks: u64,
    /// Bad messages skipped in total.
    pub skipped: u64,
    /// The last sequence number given to a package of the machine (`None` if none yet).
    pub last_sequence: Option<u64>,
    /// Gap records in the chain (they count among the packages).
    pub gaps: u64,
    /// Messages the gap records say are missing.
    pub missing: u64,
}

/// A directory name for a topic: its name made path-safe, plus a short hash.
pub fn topic_dir_name(topic: &str) -> String {
    let safe: String = topic
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = sealstream_core::chunk::sha256_hex(topic.as_bytes());
    format!(
        "{}-{}",
        if safe.is_empty() { "topic" } else { &safe },
        &digest[2..10]
    )
}

/// What the source threads send the pipeline.
#[derive(Debug)]
pub enum SourceEvent {
    /// A message.
    Message {
        /// The source's name.
        source: String,
        /// The message.
        input: Input,
    },
    /// The source has no more messages (a file or bag at its end).
    End {
        /// The source's name.
        source: String,
    },
    /// Messages the source dropped (its queue was full) that no later
    /// message of their publisher reported.
    Dropped {
        /// The source's name.
        source: String,
        /// What was dropped.
        report: DropReport,
    },
    /// The source cannot go on.
    Failed {
        /// The source's name.
        source: String,
        /// Why.
        message: String,
    },
}

/// Messages a live source dropped, for the pipeline to record as a gap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropReport {
    /// The topic of the Data Event Map they were for.
    pub topic: String,
    /// The topic on the source.
    pub source_topic: String,
    /// The publisher, if known.
    pub publisher: Option<String>,
    /// The publisher's sequence numbers dropped, first and last, if known.
    pub sequences: Option<(u64, u64)>,
    /// The time of the last one dropped.
    pub last_at: String,
}

/// Where log lines go.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How [`Agent::run`] behaves.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Set (by SIGTERM or SIGINT, say) to stop: open chunks are sealed and
    /// committed, then the run returns.
    pub stop: Arc<AtomicBool>,
    /// When every source has ended, wait until each destination has every
    /// chunk (retrying unreachable ones) before returning. Default true.
    pub wait_for_delivery: bool,
    /// After `stop`, how long the destinations are given to receive what
    /// the stop sealed before the run returns (what they do not receive in
    /// time stays in the spool for the next run). Default
    /// [`DEFAULT_STOP_GRACE`].
    pub stop_grace: Duration,
}

/// Default [`RunOptions::stop_grace`]: 5 seconds.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            stop: Arc::new(AtomicBool::new(false)),
            wait_for_delivery: true,
            stop_grace: DEFAULT_STOP_GRACE,
        }
    }
}

/// A dataset manifest in the spool: (topic, first index, last index, bytes).
type Dataset = (String, u64, u64, u64);

/// What a commit makes visible to the forwarder, once `state.json` holds it.
#[derive(Default)]
struct Publish {
    /// Chunks: (topic, the chain's new head, bytes added to the spool).
    chunks: Vec<(String, u64, u64)>,
    /// Dataset manifests.
    datasets: Vec<Dataset>,
}

/// A sealed batch whose packages are being signed.
struct InFlight {
    /// Its topic.
    topic: String,
    /// Packages in it (messages whose rules could not be applied aside).
    packages: u64,
    /// Its estimated bytes.
    bytes: u64,
}

struct TopicRun {
    topic: Topic,
    chain_dir: PathBuf,
    writer: ChainWriter<DirectorySink>,
    batch: Vec<Pending>,
    batch_bytes: u64,
    batch_started: Option<Instant>,
    /// Live publishers' numbering as accepted (committed, then the batch).
    marks: BTreeMap<String, PublisherMark>,
    /// Publishers heard from in this run.
    heard: std::collections::HashSet<String>,
    /// Whether the chain held anything of this topic before this run.
    had_history: bool,
}

/// The agent: sources → field rules → signed packages → one chain per topic
/// in the spool → destinations.
pub struct Agent {
    map: DataEventMap,
    state: AgentState,
    signer: Arc<PackageSigner>,
    runs: BTreeMap<String, TopicRun>,
    /// The batch being signed in the background while the next messages
    /// are taken ([`Agent::seal`]); committed before anything else is.
    in_flight: Option<InFlight>,
    /// The threads that sign it.
    signing: Signing,
    outbox: Arc<Outbox>,
    sinks: Vec<Box<dyn Sink>>,
    /// Per source, the last position the pipeline has taken in whole.
    processed: BTreeMap<String, u64>,
    windows: Windows,
    spool_full_logged: bool,
    /// What the start found and corrected, for the log.
    start_notes: Vec<String>,
    /// What live ROS 2 sources received and dropped.
    ros2_counters: Arc<Ros2Counters>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn copy_key(key: &MachineSigningKey) -> MachineSigningKey {
    MachineSigningKey::from_hex(&key.to_hex_secret(), "machine.signingKeyFile")
        .expect("a valid key round-trips")
}

fn copy_chain_key(key: &ChainSigningKey) -> ChainSigningKey {
    ChainSigningKey::from_hex(&key.to_hex_secret(), "machine.chainKeyFile")
        .expect("a valid key round-trips")
}

/// `<spool>/journal/<source-dir>`: the journal of a live source.
pub fn journal_dir(spool: &Path, source: &str) -> PathBuf {
    spool.join("journal").join(topic_dir_name(source))
}

fn spooled_datasets(dir: &Path) -> Vec<(u64, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, u64)> = entries
        .flatten()
        .filter_map(|e| crate::spool::dataset_range(e.file_name().to_str()?))
        .collect();
    out.sort_unstable();
    out
}

impl Agent {
    /// Prepare a run: load the committed state, reopen every topic's chain,
    /// open the destinations.
    pub fn open(map: DataEventMap) -> Result<Agent, AgentError> {
        let mut sinks = Vec::new();
        let topics: Vec<String> = map.topics.iter().map(|t| t.name.clone()).collect();
        let machine_did = map.machine.did.to_string();
        for (i, d) in map.destinations.iter().enumerate() {
            sinks.push(
                sink::open(
                    d,
                    &sink::SinkContext {
                        machine_key: &map.machine.signing_key,
                        machine_did: &machine_did,
                        topics: &topics,
                    },
                )
                .map_err(|e| AgentError::Unsupported(format!("destinations[{i}]: {e}")))?,
            );
        }
        let spool = map.spool.dir.clone();
        crate::spool::create_private_dir(&spool).map_err(|e| FileError::new(&spool, e))?;
        let state = AgentState::load(&spool)?;
        let windows = Windows::new(&map, &state)?;
        // A manifest written for the open window before a crash kept the state
        // from recording its close: it is redone when the window closes. (Before
        // the outbox lists the spooled manifests: it must never see this one.)
        for topic in &map.topics {
            if let Some(first) = windows.open_first(&topic.name) {
                let dir = spool.join("datasets").join(topic_dir_name(&topic.name));
                for (a, b) in spooled_datasets(&dir) {
                    if a == first {
                        let path = dir.join(forward::dataset_name(a, b));
                        std::fs::remove_file(&path).map_err(|e| FileError::new(&path, e))?;
                    }
                }
            }
        }
        let signer = PackageSigner::new(
            copy_key(&map.machine.signing_key),
            &map.machine.did.to_string(),
            Some(map.machine.key_id.clone()),
            map.machine.field_key.clone(),
        )?;
        // What an interrupted run left in the spool and at directory
        // destinations goes before anything counts or delivers it.
        let heads: Vec<(String, u64)> = map
            .topics
            .iter()
            .map(|t| {
                let head = state.topics.get(&t.name).map_or(0, |s| s.chain.next_index);
                (topic_dir_name(&t.name), head)
            })
            .collect();
        let (pruned, mut start_notes) = crate::spool::recover(&spool, &heads)?;
        let dir_names: Vec<String> = heads.into_iter().map(|(d, _)| d).collect();
        for sink in &mut sinks {
            match sink.remove_stale(&dir_names) {
                Ok(0) => {}
                Ok(n) => start_notes.push(format!(
                    "destination {}: removed {n} temporary file{} of interrupted writes",
                    sink.describe(),
                    if n == 1 { "" } else { "s" }
                )),
                Err(e) => start_notes.push(format!("destination {}: {e}", sink.describe())),
            }
        }
        let mut runs = BTreeMap::new();
        let mut outboxes = BTreeMap::new();
        for topic in &map.topics {
            let dir_name = topic_dir_name(&topic.name);
            let chain_dir = spool.join("chains").join(&dir_name);
            let dataset_dir = spool.join("datasets").join(&dir_name);
            let committed = state.topics.get(&topic.name).cloned().unwrap_or_default();
            let mut config = ChainConfig::new(
                copy_chain_key(&map.machine.chain_key),
                &map.machine.did.to_string(),
                &map.machine.key_id,
                map.recipients.chain_recipients(),
            );
            config.chunk_size = usize::try_from(map.chunking.max_bytes).unwrap_or(usize::MAX);
            let writer = ChainWriter::new(
                config,
                committed.chain.clone(),
                DirectorySink::new(&chain_dir)?,
            )?;
            let head = committed.chain.next_index;
            outboxes.insert(
                topic.name.clone(),
                TopicOutbox {
                    pruned: pruned.get(&dir_name).copied().unwrap_or(head),
                    dir_name,
                    chain_dir: chain_dir.clone(),
                    datasets: spooled_datasets(&dataset_dir),
                    dataset_dir,
                    head,
                },
            );
            runs.insert(
                topic.name.clone(),
                TopicRun {
                    topic: topic.clone(),
                    chain_dir,
                    writer,
                    batch: Vec::new(),
                    batch_bytes: 0,
                    batch_started: None,
                    had_history: committed.packages > 0 || !committed.publishers.is_empty(),
                    marks: committed.publishers.clone(),
                    heard: Default::default(),
                },
            );
        }
        // Delivery progress is recorded per destination identity, its
        // canonical target (names of earlier versions carried over).
        let ids: Vec<String> = map.destinations.iter().map(identity).collect();
        for (j, id) in ids.iter().enumerate() {
            if let Some(i) = ids[..j].iter().position(|other| other == id) {
                return Err(AgentError::Unsupported(format!(
                    "destinations[{j}]: the same destination as destinations[{i}] ({id})"
                )));
            }
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        start_notes.extend(
            forward::migrate_delivery(&spool, &ids, |name| {
                legacy_identities(name, &[&cwd, &map.base_dir])
            })
            .map_err(AgentError::Delivery)?,
        );
        let outbox = Outbox::new(&spool, ids, outboxes).map_err(AgentError::Delivery)?;
        let signer = Arc::new(signer);
        Ok(Agent {
            map,
            state,
            signing: Signing::new(
                Arc::clone(&signer),
                sealstream_core::pool::default_parallelism(),
            ),
            signer,
            in_flight: None,
            runs,
            outbox: Arc::new(outbox),
            sinks,
            processed: BTreeMap::new(),
            windows,
            spool_full_logged: false,
            start_notes,
            ros2_counters: Arc::default(),
        })
    }

    /// The store-and-forward state shared with the forwarder.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Read every source — to its end for files and bags, until `stop` for
    /// live ones — commit everything, deliver to the destinations, and report
    /// per topic.
    pub fn run(&mut self, options: &RunOptions, log: Log) -> Result<Vec<TopicReport>, AgentError> {
        let stop = options.stop.clone();
        for note in self.start_notes.iter().chain(self.outbox.start_notes()) {
            log(note);
        }
        let forwarder = forward::spawn(
            self.outbox.clone(),
            std::mem::take(&mut self.sinks),
            log.clone(),
        );
        let result = self.run_sources(options, &log);
        if result.is_ok() && options.wait_for_delivery && !stop.load(Ordering::Relaxed) {
            if !self.outbox.drained() {
                log("all sources read; waiting for the destinations to receive everything");
            }
            self.outbox.wait_drained(&stop);
        } else if result.is_ok() && stop.load(Ordering::Relaxed) && !self.outbox.drained() {
            // Stopped (SIGTERM): the chunks just sealed reach reachable
            // destinations now rather than at the next run.
            self.outbox.wait_drained_for(options.stop_grace);
        }
        self.outbox.shutdown();
        let _ = forwarder.join();
        let _ = status::write(&self.map, &self.outbox, &self.ros2_counters, false);
        result.map(|()| self.report())
    }

    fn spawn_sources(
        &mut self,
        tx: &SourceSender,
        stop: &Arc<AtomicBool>,
        log: &Log,
    ) -> Result<usize, AgentError> {
        let mut spawned = 0;
        for (name, source) in self.map.sources.clone() {
            let topics: Vec<&Topic> = self
                .map
                .topics
                .iter()
                .filter(|t| t.source == name)
                .collect();
            if topics.is_empty() {
                continue;
            }
            // Replays start after what every topic of the source has committed.
            let after = self.committed_by_all(&name);
            let tx = tx.clone();
            spawned += 1;
            match source {
                Source::Jsonl { input } => {
                    // Standard input is never replayed: a run's lines are
                    // new, numbered on after the highest position any
                    // topic of the source committed (a file's are
                    // replayed, and skipped up to `after`).
                    let numbering = match input {
                        JsonlInput::Stdin => Numbering::Continue(
                            self.committed_by_any(&name)
                                .map_or(0, |c| c.saturating_add(1)),
                        ),
                        JsonlInput::File(_) => Numbering::Replay { after },
                    };
                    let n = name.clone();
                    spawn_source(&name, move || read_jsonl(&n, &input, numbering, &tx))?;
                }
                Source::Mcap { path } => {
                    let n = name.clone();
                    spawn_source(&name, move || read_mcap(&n, &path, after, &tx))?;
                }
                Source::Ros2(ros2) => {
                    let run = Ros2Run {
                        name: name.clone(),
                        source: ros2,
                        topics: topics.iter().map(|t| (*t).clone()).collect(),
                        first_position: self
                            .committed_by_any(&name)
                            .map_or(0, |c| c.saturating_add(1)),
                        tx,
                        stop: stop.clone(),
                        log: log.clone(),
                        counters: self.ros2_counters.clone(),
                    };
                    spawn_source(&name, move || run.run())?;
                }
                Source::Mqtt(mqtt) => {
                    let dir = journal_dir(&self.map.spool.dir, &name);
                    let journal = Journal::open(&dir).map_err(|e| AgentError::Source {
                        name: name.clone(),
                        message: e.to_string(),
                    })?;
                    let run = MqttRun {
                        name: name.clone(),
                        source: mqtt,
                        filters: topics.iter().map(|t| t.matcher.clone()).collect(),
                        journal,
                        replay_after: after,
                        tx,
                        stop: stop.clone(),
                        log: log.clone(),
                    };
                    spawn_source(&name, move || run.run())?;
                }
            }
        }
        Ok(spawned)
    }

    fn run_sources(&mut self, options: &RunOptions, log: &Log) -> Result<(), AgentError> {
        let stop = options.stop.clone();
        let (tx, rx) = source_queue(QUEUE_EVENTS, QUEUE_BYTES);
        let mut open_sources = self.spawn_sources(&tx, &stop, log)?;
        drop(tx);
        let tick = Duration::from_millis(100);
        let mut last_tick = Instant::now();
        let mut last_status = Instant::now() - Duration::from_secs(10);
        let mut failure = None;
        let mut ended = true;
        while open_sources > 0 {
            if stop.load(Ordering::Relaxed) {
                ended = false;
                log("stopping: sealing open chunks");
                // What the sources hand over as they stop goes into the
                // chains too (a live source cannot give it again): until they
                // are gone, or quiet for 200 ms, for 3 s at most.
                let until = Instant::now() + Duration::from_secs(3);
                while let Ok(event) = rx.recv_timeout(
                    Duration::from_millis(200).min(until.saturating_duration_since(Instant::now())),
                ) {
                    self.take(event, &stop, log)?;
                }
                break;
            }
            match rx.recv_timeout(tick) {
                Ok(event @ (SourceEvent::Message { .. } | SourceEvent::Dropped { .. })) => {
                    self.take(event, &stop, log)?;
                }
                Ok(SourceEvent::End { source }) => {
                    log(&format!("source {source}: read to its end"));
                    open_sources -= 1;
                }
                Ok(SourceEvent::Failed { source, message }) => {
                    failure = Some(AgentError::Source {
                        name: source,
                        message,
                    });
                    ended = false;
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= tick {
                last_tick = Instant::now();
                self.on_tick(&stop, log)?;
                if last_status.elapsed() >= Duration::from_secs(1) {
                    last_status = Instant::now();
                    let _ = status::write(&self.map, &self.outbox, &self.ros2_counters, true);
                }
            }
        }
        // Seal what is open (on SIGTERM too: "graceful shutdown flushes the open chunk").
        let names: Vec<String> = self.runs.keys().cloned().collect();
        for name in &names {
            self.seal(name, &stop, log)?;
        }
        self.finish_in_flight(log)?;
        if ended {
            // Every source is at its end: the open dataset windows close too.
            let mut publish = Publish::default();
            for name in &names {
                publish.datasets.extend(self.close_window(name, log)?);
            }
            self.commit(publish)?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Take a message or a drop report into the chains (other events are
    /// the run loop's).
    fn take(&mut self, event: SourceEvent, stop: &AtomicBool, log: &Log) -> Result<(), AgentError> {
        match event {
            SourceEvent::Message { source, input } => self.accept(&source, input, stop, log),
            SourceEvent::Dropped { source, report } => self.dropped(&source, report, stop, log),
            SourceEvent::End { .. } | SourceEvent::Failed { .. } => Ok(()),
        }
    }

    /// Time-driven work: seal chunks past their age, close dataset windows.
    fn on_tick(&mut self, stop: &AtomicBool, log: &Log) -> Result<(), AgentError> {
        let max_age = self.map.chunking.max_age;
        let names: Vec<String> = self.runs.keys().cloned().collect();
        for name in &names {
            let old = self.runs[name]
                .batch_started
                .is_some_and(|t| t.elapsed() >= max_age);
            if old {
                self.seal(name, stop, log)?;
            }
        }
        // A signed batch is committed by the next seal, or here once its
        // signatures are done: so a chunk waits at most about a tick.
        if self.in_flight.is_some() && self.signing.done() {
            self.finish_in_flight(log)?;
        }
        let mut publish = Publish::default();
        if names.iter().any(|name| self.windows.due(name)) {
            // A window's manifest follows the chunks it covers.
            self.finish_in_flight(log)?;
        }
        for name in &names {
            if self.windows.due(name) {
                publish.datasets.extend(self.close_window(name, log)?);
            }
        }
        if !publish.datasets.is_empty() {
            self.commit(publish)?;
        }
        Ok(())
    }

    fn accept(
        &mut self,
        source: &str,
        mut input: Input,
        stop: &AtomicBool,
        log: &Log,
    ) -> Result<(), AgentError> {
        let targets: Vec<String> = self
            .runs
            .values()
            .filter(|r| {
                r.topic.source == source
                    && match &input.route {
                        Some(route) => *route == r.topic.name,
                        None => r.topic.matches(&input.topic),
                    }
            })
            .map(|r| r.topic.name.clone())
            .collect();
        if targets.is_empty() {
            if let Err(why) = &input.fields {
                // Not even its topic could be read: report it at the source.
                log(&format!(
                    "source {source}: skipped message {}: {why}",
                    input.position
                ));
            }
        }
        let last = targets.len().saturating_sub(1);
        for (k, name) in targets.into_iter().enumerate() {
            let committed = self
                .state
                .topics
                .get(&name)
                .and_then(|t| t.committed_through);
            if committed.is_some_and(|c| input.position <= c) {
                continue; // already in the chain
            }
            let mut mark = None;
            if let Some(origin) = &input.origin {
                match self.gaps_before(&name, &input, origin) {
                    None => continue, // a repeat of what the chain accounts for
                    Some(gaps) => {
                        for gap in gaps {
                            log(&format!("topic {name}: gap recorded: {}", gap.0));
                            let pending =
                                self.gap_pending(input.position, &gap.0, &input.captured_at, gap.1);
                            self.push(&name, pending, stop, log)?;
                        }
                    }
                }
                mark = Some((
                    origin.publisher.clone(),
                    PublisherMark {
                        sequence: origin.sequence,
                        at: input.captured_at.clone(),
                    },
                ));
            }
            let fields = match &mut input.fields {
                // The last topic takes the fields; the others, a copy.
                Ok(f) if k == last => std::mem::take(f),
                Ok(f) => f.clone(),
                Err(why) if mark.is_some() => {
                    // Kept in the batch: its publisher's numbering commits with it.
                    let mut pending = Pending::skipped(input.position, why.clone());
                    pending.mark = mark;
                    self.push(&name, pending, stop, log)?;
                    continue;
                }
                Err(why) => {
                    log(&format!(
                        "topic {name}: skipped message {} of source {source} (topic {:?}): {why}",
                        input.position, input.topic
                    ));
                    self.state.topics.entry(name.clone()).or_default().skipped += 1;
                    continue;
                }
            };
            // The sequence number it may get: the next, after every package
            // waiting in any topic's batch (an estimate, see `crate::batch`).
            let run = &self.runs[&name];
            let mut pending = Pending::new(
                &self.signer,
                &self.map.machine.key_id,
                &run.topic,
                input.position,
                fields,
                &input.captured_at,
                self.sequence_estimate(),
            );
            pending.mark = mark;
            self.push(&name, pending, stop, log)?;
        }
        // Only now is the message taken by every topic it goes to.
        match self.processed.get_mut(source) {
            Some(at) => *at = input.position,
            None => {
                self.processed.insert(source.to_string(), input.position);
            }
        }
        Ok(())
    }

    /// The sequence number the next package may get: the next, after every
    /// package waiting in any topic's batch.
    fn sequence_estimate(&self) -> u64 {
        let waiting: u64 = self.runs.values().map(|r| r.batch.len() as u64).sum();
        self.next_base() + waiting
    }

    /// The sequence number the next sealed batch starts at: the next, after
    /// the batch being signed.
    fn next_base(&self) -> u64 {
        self.state.next_sequence + self.in_flight.as_ref().map_or(0, |f| f.packages)
    }

    /// A gap record for topic `name`'s batch, moving its publisher's mark to
    /// the gap's end.
    fn gap_pending(
        &self,
        position: u64,
        gap: &Gap,
        at: &str,
        mark: Option<(String, PublisherMark)>,
    ) -> Pending {
        let mut pending = Pending::gap(
            &self.signer,
            &self.map.machine.key_id,
            position,
            gap,
            at,
            self.sequence_estimate(),
        );
        pending.mark = mark;
        pending
    }

    /// The gaps a live message of topic `name` reveals before it (what its
    /// publisher numbered but the chain will not hold), with the publisher's
    /// mark after each; `None` if the chain already accounts for the message.
    /// Updates the topic's marks.
    #[allow(clippy::type_complexity)]
    fn gaps_before(
        &mut self,
        name: &str,
        input: &Input,
        origin: &Origin,
    ) -> Option<Vec<(Gap, Option<(String, PublisherMark)>)>> {
        let run = self.runs.get_mut(name).expect("a run per topic");
        let known = run.marks.get(&origin.publisher).cloned();
        let was_known = known.is_some();
        let mut expected = known.as_ref().map(|m| m.sequence.saturating_add(1));
        let after = known.map(|m| m.at);
        if expected.is_some_and(|e| origin.sequence < e) {
            return None;
        }
        let gap = |reason, (first, last): (u64, u64), after: &Option<String>| Gap {
            reason,
            source_topic: input.topic.clone(),
            after: after.clone(),
            before: Some(input.captured_at.clone()),
            publisher: Some(origin.publisher.clone()),
            sequences: Some((first, last)),
            chunks: None,
        };
        let mut gaps = Vec::new();
        let first_heard = !run.heard.contains(&origin.publisher);
        // Dropped by the agent's own queue.
        for &(a, b) in &origin.dropped_before {
            let first = expected.map_or(a, |e| a.max(e));
            if first > b || b >= origin.sequence {
                continue;
            }
            if let Some(e) = expected.filter(|e| *e < first) {
                let reason = if first_heard {
                    GapReason::AgentOffline
                } else {
                    GapReason::NotReceived
                };
                gaps.push(gap(reason, (e, first - 1), &after));
            }
            gaps.push(gap(GapReason::AgentOverloaded, (first, b), &after));
            expected = Some(b + 1);
        }
        let missed = match expected {
            Some(e) if origin.sequence > e => Some((e, origin.sequence - 1)),
            // A publisher not heard of before, numbering from past 1: the
            // chain missed its first messages, unless this topic's capture
            // starts now (its first run).
            None if origin.sequence > 1 && run.had_history => Some((1, origin.sequence - 1)),
            _ => None,
        };
        if let Some(range) = missed {
            let reason = if first_heard && (was_known || run.heard.is_empty()) {
                GapReason::AgentOffline
            } else {
                GapReason::NotReceived
            };
            gaps.push(gap(reason, range, &after));
        }
        let marks: Vec<_> = gaps
            .iter()
            .map(|g: &Gap| {
                Some((
                    origin.publisher.clone(),
                    PublisherMark {
                        sequence: g.sequences.map_or(0, |s| s.1),
                        at: input.captured_at.clone(),
                    },
                ))
            })
            .collect();
        run.heard.insert(origin.publisher.clone());
        run.marks.insert(
            origin.publisher.clone(),
            PublisherMark {
                sequence: origin.sequence,
                at: input.captured_at.clone(),
            },
        );
        Some(gaps.into_iter().zip(marks).collect())
    }

    /// Messages a source dropped that no later message reported: a gap now.
    fn dropped(
        &mut self,
        source: &str,
        report: DropReport,
        stop: &AtomicBool,
        log: &Log,
    ) -> Result<(), AgentError> {
        let DropReport {
            topic: name,
            source_topic,
            publisher,
            sequences,
            last_at,
        } = report;
        let (name, last_at) = (name.as_str(), last_at.as_str());
        let Some(run) = self.runs.get_mut(name) else {
            return Ok(());
        };
        let position = run
            .batch
            .last()
            .map(|p| p.position)
            .or_else(|| self.processed.get(source).copied())
            .or_else(|| {
                self.state
                    .topics
                    .get(name)
                    .and_then(|t| t.committed_through)
            })
            .unwrap_or(0);
        let mut gap = Gap {
            reason: GapReason::AgentOverloaded,
            source_topic,
            after: None,
            before: None,
            publisher: publisher.clone(),
            sequences,
            chunks: None,
        };
        let mut mark = None;
        if let (Some(p), Some((a, b))) = (&publisher, sequences) {
            let known = run.marks.get(p).cloned();
            let first = known.as_ref().map_or(a, |m| a.max(m.sequence + 1));
            if first > b {
                return Ok(());
            }
            gap.sequences = Some((first, b));
            gap.after = known.map(|m| m.at);
            let m = PublisherMark {
                sequence: b,
                at: last_at.to_string(),
            };
            run.marks.insert(p.clone(), m.clone());
            run.heard.insert(p.clone());
            mark = Some((p.clone(), m));
        } else {
            gap.before = Some(last_at.to_string());
        }
        log(&format!("topic {name}: gap recorded: {gap}"));
        let pending = self.gap_pending(position, &gap, last_at, mark);
        self.push(name, pending, stop, log)
    }

    /// Add a pending package to topic `name`'s batch, sealing the batch
    /// first if it would not fit and after if it is full.
    fn push(
        &mut self,
        name: &str,
        pending: Pending,
        stop: &AtomicBool,
        log: &Log,
    ) -> Result<(), AgentError> {
        let c = self.map.chunking;
        let run = &self.runs[name];
        if !run.batch.is_empty() && run.batch_bytes + pending.bytes > c.max_bytes {
            // It would not fit: what is waiting becomes a chunk first.
            self.seal(name, stop, log)?;
        }
        let run = self.runs.get_mut(name).expect("a run per topic");
        run.batch_started.get_or_insert_with(Instant::now);
        run.batch_bytes += pending.bytes;
        run.batch.push(pending);
        let full = run.batch.len() as u64 >= c.max_messages
            || run.batch_bytes >= c.max_bytes
            || run.batch_started.is_some_and(|t| t.elapsed() >= c.max_age);
        if full {
            self.seal(name, stop, log)?;
        }
        Ok(())
    }

    /// Make room in the spool for about `bytes` more, as `whenFull` says.
    fn make_room(&mut self, bytes: u64, stop: &AtomicBool, log: &Log) {
        let cap = self.map.spool.max_bytes;
        if self.outbox.spool_bytes() + bytes <= cap {
            self.spool_full_logged = false;
            return;
        }
        match self.map.spool.when_full {
            WhenFull::Block => {
                if !self.spool_full_logged {
                    log(&format!(
                        "spool full ({} of {cap} bytes): not reading sources until the destinations take chunks (whenFull: block)",
                        self.outbox.spool_bytes()
                    ));
                    self.spool_full_logged = true;
                }
                // Wait, keeping the status fresh for `agent status`.
                while !self.outbox.wait_below(
                    cap.saturating_sub(bytes),
                    stop,
                    Duration::from_secs(1),
                ) && !stop.load(Ordering::Relaxed)
                {
                    let _ = status::write(&self.map, &self.outbox, &self.ros2_counters, true);
                }
                if self.outbox.spool_bytes() + bytes <= cap {
                    log("spool has room again: reading sources");
                    self.spool_full_logged = false;
                }
            }
            WhenFull::DropOldest => {
                while self.outbox.spool_bytes() + bytes > cap {
                    match self.outbox.drop_oldest() {
                        Some((topic, index, missed)) => {
                            log(&format!(
                                "spool full: dropped chunk {index} of topic {topic}, never delivered to {} (whenFull: drop-oldest)",
                                if missed.is_empty() { "-".to_string() } else { missed.join(", ") }
                            ));
                            self.record_spool_drop(&topic, index);
                        }
                        None => break,
                    }
                }
            }
        }
    }

    /// A gap record in `topic`'s next chunk for its chunk `index`, dropped
    /// from the spool before any destination had it (merged with the gap
    /// of the chunk before, when that one is still waiting in the batch).
    fn record_spool_drop(&mut self, topic: &str, index: u64) {
        let Some(run) = self.runs.get(topic) else {
            return;
        };
        let mut first = index;
        let previous = run.batch.last().and_then(|p| {
            let package = p.package.as_ref().ok()?;
            let gap = Gap::from_package(package)?.ok()?;
            (gap.reason == GapReason::SpoolDropped && gap.chunks?.1 + 1 == index)
                .then_some(gap.chunks?.0)
        });
        if let Some(a) = previous {
            first = a;
        }
        let position = run
            .batch
            .last()
            .map(|p| p.position)
            .or_else(|| {
                self.state
                    .topics
                    .get(topic)
                    .and_then(|t| t.committed_through)
            })
            .unwrap_or(0);
        let gap = Gap {
            reason: GapReason::SpoolDropped,
            source_topic: run.topic.matcher.clone(),
            after: None,
            before: None,
            publisher: None,
            sequences: None,
            chunks: Some((first, index)),
        };
        let pending = self.gap_pending(position, &gap, &utc::now(), None);
        let run = self.runs.get_mut(topic).expect("checked above");
        if previous.is_some() {
            if let Some(old) = run.batch.pop() {
                run.batch_bytes -= old.bytes;
            }
        }
        run.batch_started.get_or_insert_with(Instant::now);
        run.batch_bytes += pending.bytes;
        run.batch.push(pending);
    }

    /// Sign the topic's batch and seal it into chunks whose plaintext is at
    /// most `chunking.maxBytes` (one chunk, unless the batch's estimate fell
    /// short; a package larger than maxBytes alone), each written durably
    /// and committed before the next.
    fn seal(&mut self, name: &str, stop: &AtomicBool, log: &Log) -> Result<(), AgentError> {
        if self.runs[name].batch.is_empty() {
            return Ok(());
        }
        // Room for this batch and the one being signed (committed before this
        // one, after this check), each with its envelope and overhead.
        let in_flight_bytes = self.in_flight.as_ref().map_or(0, |f| f.bytes + 8 * 1024);
        let estimate = self.runs[name].batch_bytes + in_flight_bytes + 8 * 1024;
        self.make_room(estimate, stop, log);
        let run = self.runs.get_mut(name).expect("a run per topic");
        let batch = std::mem::take(&mut run.batch);
        let bytes = run.batch_bytes;
        run.batch_bytes = 0;
        run.batch_started = None;
        // Numbered in batch order after the batch being signed (the numbers
        // of what a crash loses are given again), signed on every core in
        // the background while the next messages are taken; the batch
        // before this one is committed meanwhile, so commits stay in order.
        let base = self.next_base();
        let packages = batch.iter().filter(|p| p.package.is_ok()).count() as u64;
        self.signing.start(batch, base);
        let previous = self.in_flight.replace(InFlight {
            topic: name.to_string(),
            packages,
            bytes,
        });
        match previous {
            Some(previous) => self.finish_seal(previous, log),
            None => Ok(()),
        }
    }

    /// Commit the batch being signed, if any: before a dataset window
    /// closes, on every tick (so a chunk waits at most a tick for its
    /// commit), and when the run ends.
    fn finish_in_flight(&mut self, log: &Log) -> Result<(), AgentError> {
        match self.in_flight.take() {
            Some(in_flight) => self.finish_seal(in_flight, log),
            None => Ok(()),
        }
    }

    /// Cut a signed batch into chunks in order and commit each: a chunk
    /// boundary does not change the numbering, since each commit advances
    /// the next number by exactly the packages it holds.
    fn finish_seal(&mut self, in_flight: InFlight, log: &Log) -> Result<(), AgentError> {
        let InFlight { topic, .. } = in_flight;
        let name = topic.as_str();
        let (batch, lines) = self.signing.finish().ok_or_else(|| AgentError::Signing {
            topic: name.to_string(),
            message: "a signing thread failed".into(),
        })?;
        let max_bytes = self.map.chunking.max_bytes;
        let source = self.runs[name].topic.source.clone();
        let mut signed = lines.into_iter();
        let mut draft = Draft::default();
        for pending in batch {
            let package = match pending.package {
                Ok(p) => p,
                Err(why) => {
                    log(&format!(
                        "topic {name}: skipped message {} of source {source}: {why}",
                        pending.position
                    ));
                    draft.skip(pending.position);
                    draft.mark(pending.mark);
                    continue;
                }
            };
            let line = signed.next().expect("a signed line per package");
            if !draft.fits(line.len(), max_bytes) {
                self.commit_chunk(name, std::mem::take(&mut draft))?;
            }
            if line.len() as u64 > max_bytes {
                log(&format!(
                    "topic {name}: message {} of source {source} makes a package of {} bytes, more than chunking.maxBytes ({max_bytes}): it is sealed alone, in a chunk of its own",
                    pending.position,
                    line.len()
                ));
            }
            draft.push(pending.position, &line, &package.timestamp);
            draft.count_gap(&package);
            draft.mark(pending.mark);
        }
        self.commit_chunk(name, draft)
    }

    /// Seal `draft` as the topic's next chunk (if it has packages), write it
    /// durably, and commit it with the messages it takes.
    fn commit_chunk(&mut self, name: &str, draft: Draft) -> Result<(), AgentError> {
        let run = self.runs.get_mut(name).expect("a run per topic");
        let mut topic_state = self.state.topics.get(name).cloned().unwrap_or_default();
        let mut publish = Publish::default();
        if draft.packages > 0 {
            let index = run.writer.state().next_index;
            let plaintext = self.windows.enabled().then(|| draft.plaintext.clone());
            run.writer.seal_chunk(draft.plaintext)?;
            run.writer.flush()?;
            // The chunk's files are durable before any state commits them.
            crate::spool::sync_dir(&run.chain_dir)
                .map_err(|e| FileError::new(&run.chain_dir, e))?;
            topic_state.chain = run.writer.state().clone();
            let bytes = file_len(&run.chain_dir.join(envelope_name(index)))
                + file_len(&run.chain_dir.join(ciphertext_name(index)));
            if let Some(plaintext) = plaintext {
                self.windows.push(
                    name,
                    &run.chain_dir.join(envelope_name(index)),
                    &plaintext,
                    draft.captured,
                )?;
            }
            topic_state.window = self.windows.saved(name);
            publish
                .chunks
                .push((name.to_string(), topic_state.chain.next_index, bytes));
        }
        if let Some(last) = draft.last_position {
            // A gap recorded after a message shares its position: never back.
            topic_state.committed_through =
                Some(topic_state.committed_through.map_or(last, |c| c.max(last)));
        }
        if !draft.marks.is_empty() {
            topic_state.publishers.extend(draft.marks);
            forget_oldest(&mut topic_state.publishers);
            // The run's own view (marks of its batch included) stays bounded too.
            if run.marks.len() > 2 * MAX_PUBLISHERS {
                forget_oldest(&mut run.marks);
                let marks = &run.marks;
                run.heard.retain(|p| marks.contains_key(p));
            }
        }
        topic_state.packages += draft.packages;
        topic_state.skipped += draft.skipped;
        topic_state.gaps += draft.gaps.0;
        topic_state.missing += draft.gaps.1;
        self.state.next_sequence += draft.packages;
        self.state.topics.insert(name.to_string(), topic_state);
        // Topics of the same source with nothing pending (nothing in their
        // batch, and no batch of theirs being signed) have taken everything
        // the pipeline has processed of it.
        let source = self.runs[name].topic.source.clone();
        let signing = self.in_flight.as_ref().map(|f| f.topic.as_str());
        if let Some(&processed) = self.processed.get(&source) {
            for (other, run) in &self.runs {
                if run.topic.source == source
                    && run.batch.is_empty()
                    && other != name
                    && signing != Some(other.as_str())
                {
                    let t = self.state.topics.entry(other.clone()).or_default();
                    if t.committed_through.is_none_or(|c| c < processed) {
                        t.committed_through = Some(processed);
                    }
                }
            }
        }
        self.commit(publish)?;
        self.prune_journal(&source);
        Ok(())
    }

    /// Save the state (durably: it is the commit), and only then hand the
    /// forwarder what it commits. So a destination never holds a chunk or
    /// manifest that a restart would seal again, differently.
    fn commit(&mut self, publish: Publish) -> Result<(), AgentError> {
        let outbox = self.outbox.clone();
        if !publish.chunks.is_empty() {
            crate::killpoint::reached(crate::killpoint::AFTER_SEAL_BEFORE_COMMIT, || {
                outbox.drained()
            });
        }
        if !publish.datasets.is_empty() {
            crate::killpoint::reached(crate::killpoint::AFTER_DATASET_BEFORE_COMMIT, || {
                outbox.drained()
            });
        }
        self.state.save(&self.map.spool.dir)?;
        for (topic, head, bytes) in publish.chunks {
            outbox.committed(&topic, head, bytes);
        }
        for (topic, first, last, bytes) in publish.datasets {
            outbox.dataset_written(&topic, first, last, bytes);
        }
        Ok(())
    }

    /// Close the topic's dataset window: sign and spool its manifest, for
    /// the forwarder once the state records the window closed.
    fn close_window(&mut self, name: &str, log: &Log) -> Result<Option<Dataset>, AgentError> {
        let Some((first, last, path)) = self.windows.close(name, &self.map)? else {
            return Ok(None);
        };
        crate::spool::sync_dir(path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| FileError::new(&path, e))?;
        let bytes = file_len(&path);
        log(&format!(
            "topic {name}: dataset manifest for chunks {first}..={last} signed"
        ));
        if let Some(t) = self.state.topics.get_mut(name) {
            t.window = self.windows.saved(name);
        }
        Ok(Some((name.to_string(), first, last, bytes)))
    }

    /// The position each topic of `source` has committed through (`None`:
    /// nothing yet).
    fn committed_of(&self, source: &str) -> impl Iterator<Item = Option<u64>> + '_ {
        let source = source.to_string();
        self.map
            .topics
            .iter()
            .filter(move |t| t.source == source)
            .map(|t| {
                self.state
                    .topics
                    .get(&t.name)
                    .and_then(|s| s.committed_through)
            })
    }

    /// The source position every topic of `source` has committed through
    /// (`None` if one of them has committed nothing yet).
    fn committed_by_all(&self, source: &str) -> Option<u64> {
        self.committed_of(source).min().flatten()
    }

    /// The highest position any topic of `source` has committed.
    fn committed_by_any(&self, source: &str) -> Option<u64> {
        self.committed_of(source).flatten().max()
    }

    /// Delete journal segments of a live source that every topic has committed.
    fn prune_journal(&self, source: &str) {
        if !matches!(self.map.sources.get(source), Some(Source::Mqtt(_))) {
            return;
        }
        if let Some(through) = self.committed_by_all(source) {
            let _ = crate::journal::prune(&journal_dir(&self.map.spool.dir, source), through);
        }
    }

    /// Per-topic counts.
    pub fn report(&self) -> Vec<TopicReport> {
        self.runs
            .keys()
            .map(|name| {
                let t: TopicState = self.state.topics.get(name).cloned().unwrap_or_default();
                TopicReport {
                    name: name.clone(),
                    packages: t.packages,
                    chunks: t.chain.next_index,
                    skipped: t.skipped,
                    last_sequence: self.state.next_sequence.checked_sub(1),
                    gaps: t.gaps,
                    missing: t.missing,
                }
            })
            .collect()
    }

    /// The spool directory of a topic's chain (it holds the chunks not yet at every destination).
    pub fn chain_dir(&self, topic: &str) -> Option<&Path> {
        self.runs.get(topic).map(|r| r.chain_dir.as_path())
    }
}

/// Run a source's reader on a thread of its own, named after the source.
fn spawn_source(name: &str, run: impl FnOnce() + Send + 'static) -> Result<(), AgentError> {
    std::thread::Builder::new()
        .name(format!("source-{name}"))
        .spawn(run)
        .map(drop)
        .map_err(|e| AgentError::Source {
            name: "thread".into(),
            message: e.to_string(),
        })
}

/// Keep the [`MAX_PUBLISHERS`] publishers heard from most recently.
fn forget_oldest(marks: &mut BTreeMap<String, PublisherMark>) {
    while marks.len() > MAX_PUBLISHERS {
        let oldest = marks
            .iter()
            .min_by(|a, b| a.1.at.cmp(&b.1.at))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => marks.remove(&k),
            None => break,
        };
    }
}

/// How a `jsonl` source's lines get their positions.
#[derive(Clone, Copy, Debug)]
enum Numbering {
    /// A file, read from its start on every run: line `i` is position `i`,
    /// and lines up to `after` (committed by every topic) are skipped.
    Replay {
        /// The last position every topic committed.
        after: Option<u64>,
    },
    /// Standard input, which a run reads once: line `i` is position
    /// `first + i`, so that its lines follow what earlier runs committed.
    Continue(u64),
}

fn read_jsonl(name: &str, input: &JsonlInput, numbering: Numbering, tx: &SourceSender) {
    let reader: Box<dyn BufRead> = match input {
        JsonlInput::Stdin => Box::new(BufReader::new(std::io::stdin())),
        JsonlInput::File(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                let _ = tx.send(SourceEvent::Failed {
                    source: name.to_string(),
                    message: format!("{}: {e}", p.display()),
                });
                return;
            }
        },
    };
    let (first, after) = match numbering {
        Numbering::Replay { after } => (0, after),
        Numbering::Continue(first) => (first, None),
    };
    for (i, line) in reader.lines().enumerate() {
        let position = first.saturating_add(i as u64);
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(SourceEvent::Failed {
                    source: name.to_string(),
                    message: format!("line {}: {e}", i + 1),
                });
                return;
            }
        };
        if after.is_some_and(|a| position <= a) || line.trim().is_empty() {
            continue;
        }
        let event = SourceEvent::Message {
            source: name.to_string(),
            input: jsonl_input(position, &line),
        };
        if tx.send(event).is_err() {
            return;
        }
    }
    let _ = tx.send(SourceEvent::End {
        source: name.to_string(),
    });
}

fn read_mcap(name: &str, path: &Path, after: Option<u64>, tx: &SourceSender) {
    let messages = match McapSource::open(path) {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.send(SourceEvent::Failed {
                source: name.to_string(),
                message: e.to_string(),
            });
            return;
        }
    };
    for (position, item) in messages.enumerate() {
        let position = position as u64;
        let input = match item {
            Ok(_) if after.is_some_and(|a| position <= a) => continue,
            Ok(m) => Input {
                position,
                captured_at: utc::format_nanos(m.log_time_ns, utc::Fraction::Nanos),
                topic: m.topic,
                fields: m.fields.map_err(|e| e.to_string()),
                route: None,
                origin: None,
            },
            Err(e) => {
                let _ = tx.send(SourceEvent::Failed {
                    source: name.to_string(),
                    message: e.to_string(),
                });
                return;
            }
        };
        let event = SourceEvent::Message {
            source: name.to_string(),
            input,
        };
        if tx.send(event).is_err() {
            return;
        }
    }
    let _ = tx.send(SourceEvent::End {
        source: name.to_string(),
    });
}

/// A JSON line `{"topic", "capturedAt"?, "fields" | "payload"}`.
fn jsonl_input(position: u64, line: &str) -> Input {
    let parsed = json::parse(line.as_bytes()).map_err(|e| format!("invalid JSON: {e}"));
    let (topic, captured_at, fields) = match parsed {
        // The message is taken apart, not copied.
        Ok(Value::Object(mut o)) => {
            let text = |v: Option<Value>| match v {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            let fields = match o.swap_remove("fields") {
                Some(f) => Some(f),
                None => o.swap_remove("payload"),
            };
            (
                text(o.swap_remove("topic")).unwrap_or_default(),
                text(o.swap_remove("capturedAt")).unwrap_or_else(utc::now),
                match fields {
                    Some(Value::Object(f)) => Ok(f),
                    _ => Err("fields: required object".to_string()),
                },
            )
        }
        Ok(_) => (
            String::new(),
            utc::now(),
            Err("expected a JSON object".to_string()),
        ),
        Err(e) => (String::new(), utc::now(), Err(e)),
    };
    Input {
        position,
        topic,
        captured_at,
        fields,
        route: None,
        origin: None,
    }
}
