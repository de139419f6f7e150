//! The agent's pipeline for sources that can be replayed (JSON lines files,
//! MCAP bags): decode → field rules → signed package → batch → one continuous
//! chain per topic in the spool → directory destinations.
//!
//! Exactly once, whatever kills the process: a topic's batch is signed when it
//! is sealed into a chunk (so sequence numbers are handed out only to what is
//! committed), the chunk is written durably, and only then is the state file
//! replaced (see [`crate::state`]). A restart replays each source from its
//! beginning, skips what its topics have committed, and continues the chains.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sealstream_core::chunk::{utc_now_seconds, ChainConfig, ChainWriter};
use sealstream_core::json::{self, Map, Value};
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey};
use sealstream_core::layout::{ciphertext_name, envelope_name, DirectorySink, FileError};
use sealstream_core::package::{PackageSigner, UnsignedPayload};

use crate::config::{DataEventMap, Destination, JsonlInput, Source, Topic};
use crate::mcap_source::{format_log_time, McapSource, TimePrecision};
use crate::state::{AgentState, StateError, TopicState};

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

struct TopicRun {
    topic: Topic,
    chain_dir: PathBuf,
    writer: ChainWriter<DirectorySink>,
    batch: Vec<(u64, UnsignedPayload)>,
    batch_bytes: u64,
    batch_started: Option<Instant>,
}

/// The agent over replayable sources.
pub struct Agent {
    map: DataEventMap,
    state: AgentState,
    signer: PackageSigner,
    runs: BTreeMap<String, TopicRun>,
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

impl Agent {
    /// Prepare a run: load the committed state and reopen every topic's chain.
    pub fn open(map: DataEventMap) -> Result<Agent, AgentError> {
        for (i, d) in map.destinations.iter().enumerate() {
            if !matches!(d, Destination::Directory { .. }) {
                return Err(AgentError::Unsupported(format!(
                    "destinations[{i}]: only directory destinations are delivered by this version of `agent run`"
                )));
            }
        }
        let spool = map.spool.dir.clone();
        std::fs::create_dir_all(&spool).map_err(|e| FileError::new(&spool, e))?;
        let state = AgentState::load(&spool)?;
        let signer = PackageSigner::new(
            copy_key(&map.machine.signing_key),
            &map.machine.did.to_string(),
            Some(map.machine.key_id.clone()),
            map.machine.field_key.clone(),
        )?;
        let mut runs = BTreeMap::new();
        for topic in &map.topics {
            let chain_dir = spool.join("chains").join(topic_dir_name(&topic.name));
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
            runs.insert(
                topic.name.clone(),
                TopicRun {
                    topic: topic.clone(),
                    chain_dir,
                    writer,
                    batch: Vec::new(),
                    batch_bytes: 0,
                    batch_started: None,
                },
            );
        }
        Ok(Agent {
            map,
            state,
            signer,
            runs,
        })
    }

    /// Read every source to its end, commit everything, deliver to the
    /// destinations, and report per topic.
    pub fn run_to_end(
        &mut self,
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<TopicReport>, AgentError> {
        let sources: Vec<(String, Source)> = self
            .map
            .sources
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, source) in sources {
            if !self.map.topics.iter().any(|t| t.source == name) {
                continue;
            }
            match &source {
                Source::Jsonl { input } => {
                    let reader: Box<dyn BufRead> = match input {
                        JsonlInput::Stdin => Box::new(BufReader::new(std::io::stdin())),
                        JsonlInput::File(p) => {
                            Box::new(BufReader::new(std::fs::File::open(p).map_err(|e| {
                                AgentError::Source {
                                    name: name.clone(),
                                    message: format!("{}: {e}", p.display()),
                                }
                            })?))
                        }
                    };
                    for (position, line) in reader.lines().enumerate() {
                        let line = line.map_err(|e| AgentError::Source {
                            name: name.clone(),
                            message: e.to_string(),
                        })?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        self.accept(&name, jsonl_input(position as u64, &line), log)?;
                    }
                }
                Source::Mcap { path } => {
                    let messages = McapSource::open(path).map_err(|e| AgentError::Source {
                        name: name.clone(),
                        message: e.to_string(),
                    })?;
                    for (position, item) in messages.enumerate() {
                        let input = match item {
                            Ok(m) => Input {
                                position: position as u64,
                                captured_at: format_log_time(m.log_time_ns, TimePrecision::Nanos),
                                topic: m.topic,
                                fields: m.fields.map_err(|e| e.to_string()),
                            },
                            Err(e) => {
                                return Err(AgentError::Source {
                                    name: name.clone(),
                                    message: e.to_string(),
                                })
                            }
                        };
                        self.accept(&name, input, log)?;
                    }
                }
                Source::Mqtt(_) => {
                    return Err(AgentError::Unsupported(format!(
                        "source {name}: MQTT sources are not run by this version of `agent run`"
                    )))
                }
            }
        }
        let names: Vec<String> = self.runs.keys().cloned().collect();
        for name in names {
            self.seal(&name, log)?;
        }
        Ok(self.report())
    }

    fn accept(
        &mut self,
        source: &str,
        input: Input,
        log: &mut dyn FnMut(&str),
    ) -> Result<(), AgentError> {
        let targets: Vec<String> = self
            .runs
            .values()
            .filter(|r| r.topic.source == source && r.topic.matches(&input.topic))
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
        for name in targets {
            let committed = self
                .state
                .topics
                .get(&name)
                .and_then(|t| t.committed_through);
            if committed.is_some_and(|c| input.position <= c) {
                continue; // already in the chain
            }
            let fields = match &input.fields {
                Ok(f) => f.clone(),
                Err(why) => {
                    log(&format!(
                        "topic {name}: skipped message {} of source {source}: {why}",
                        input.position
                    ));
                    self.state.topics.entry(name.clone()).or_default().skipped += 1;
                    continue;
                }
            };
            let run = self.runs.get_mut(&name).expect("a run per topic");
            let size =
                json::write::to_python_compact(&Value::Object(fields.clone())).len() as u64 + 400;
            run.batch_started.get_or_insert_with(Instant::now);
            run.batch.push((
                input.position,
                UnsignedPayload {
                    topic: name.clone(),
                    fields,
                    captured_at: input.captured_at.clone(),
                },
            ));
            run.batch_bytes += size;
            let c = &self.map.chunking;
            let full = run.batch.len() as u64 >= c.max_messages
                || run.batch_bytes >= c.max_bytes
                || run.batch_started.is_some_and(|t| t.elapsed() >= c.max_age);
            if full {
                self.seal(&name, log)?;
            }
        }
        Ok(())
    }

    /// Sign the topic's batch, seal it as one chunk, write it durably, commit the state.
    fn seal(&mut self, name: &str, log: &mut dyn FnMut(&str)) -> Result<(), AgentError> {
        let run = self.runs.get_mut(name).expect("a run per topic");
        if run.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut run.batch);
        run.batch_bytes = 0;
        run.batch_started = None;
        let mut topic_state = self.state.topics.get(name).cloned().unwrap_or_default();
        let mut next_sequence = self.state.next_sequence;
        let mut lines = Vec::with_capacity(batch.len() * 400);
        let mut last_position = topic_state.committed_through;
        let mut packages = 0u64;
        for (position, payload) in &batch {
            last_position = Some(*position);
            match self.signer.build(
                payload,
                &run.topic.rules,
                &run.topic.schema_version,
                next_sequence,
            ) {
                Ok(p) => {
                    lines.extend_from_slice(p.to_json_line().as_bytes());
                    lines.push(b'\n');
                    next_sequence += 1;
                    packages += 1;
                }
                Err(e) => {
                    log(&format!("topic {name}: skipped message {position}: {e}"));
                    topic_state.skipped += 1;
                }
            }
        }
        if packages > 0 {
            run.writer.seal_chunk(lines)?;
            run.writer.flush()?;
            topic_state.chain = run.writer.state().clone();
        }
        topic_state.committed_through = last_position;
        topic_state.packages += packages;
        self.state.next_sequence = next_sequence;
        self.state.topics.insert(name.to_string(), topic_state);
        self.state.save(&self.map.spool.dir)?;
        self.deliver(name)?;
        Ok(())
    }

    /// Copy committed chunks the directory destinations do not have yet.
    fn deliver(&mut self, name: &str) -> Result<(), AgentError> {
        let run = &self.runs[name];
        let topic_state = self.state.topics.entry(name.to_string()).or_default();
        let head = topic_state.chain.next_index;
        for (i, d) in self.map.destinations.iter().enumerate() {
            let Destination::Directory { path, .. } = d else {
                continue;
            };
            let dest = path.join(topic_dir_name(name));
            std::fs::create_dir_all(&dest).map_err(|e| FileError::new(&dest, e))?;
            let from = topic_state.delivered.get(&i).copied().unwrap_or(0);
            for index in from..head {
                for file in [ciphertext_name(index), envelope_name(index)] {
                    let bytes = std::fs::read(run.chain_dir.join(&file))
                        .map_err(|e| FileError::new(run.chain_dir.join(&file), e))?;
                    sealstream_core::layout::write_atomic(&dest.join(&file), &bytes)
                        .map_err(|e| FileError::new(dest.join(&file), e))?;
                }
            }
            topic_state.delivered.insert(i, head);
        }
        if self
            .map
            .destinations
            .iter()
            .any(|d| matches!(d, Destination::Directory { .. }))
        {
            self.state.save(&self.map.spool.dir)?;
        }
        Ok(())
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
                }
            })
            .collect()
    }

    /// The spool directory of a topic's chain.
    pub fn chain_dir(&self, topic: &str) -> Option<&Path> {
        self.runs.get(topic).map(|r| r.chain_dir.as_path())
    }
}

/// A JSON line `{"topic", "capturedAt"?, "fields" | "payload"}`.
fn jsonl_input(position: u64, line: &str) -> Input {
    let parsed = json::parse(line.as_bytes()).map_err(|e| format!("invalid JSON: {e}"));
    let (topic, captured_at, fields) = match &parsed {
        Ok(Value::Object(o)) => (
            o.get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            o.get("capturedAt")
                .and_then(Value::as_str)
                .map_or_else(utc_now_seconds, str::to_string),
            o.get("fields")
                .or_else(|| o.get("payload"))
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| "fields: required object".to_string()),
        ),
        Ok(_) => (
            String::new(),
            utc_now_seconds(),
            Err("expected a JSON object".to_string()),
        ),
        Err(e) => (String::new(), utc_now_seconds(), Err(e.clone())),
    };
    Input {
        position,
        topic,
        captured_at,
        fields,
    }
}
