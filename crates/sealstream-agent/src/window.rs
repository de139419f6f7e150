//! Signed dataset manifests per time window (`datasets.window` in the Data
//! Event Map).
//!
//! Per topic, the chunks sealed within one window (aligned to the Unix epoch:
//! a `1h` window runs from one full hour to the next) form one dataset. Its
//! manifest (`sealstream.dataset.v1`, see `docs/formats.md`) commits to the
//! range's chunk ids (Merkle root), its plaintext (`sourceHash`) and capture
//! times, and is signed by the machine's key (EIP-191) and chain key
//! (Ed25519). It is written to `<spool>/datasets/<topic-dir>/dataset-<first>-<last>.json`
//! and delivered with the chunks.
//!
//! The open window survives restarts: its builder is saved with the topic's
//! committed state after every chunk, in O(log n) space
//! ([`sealstream_core::dataset::ResumableDataset`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sealstream_core::dataset::{DatasetInfo, ResumableDataset};
use sealstream_core::json::{Map, Number, Value};
use sealstream_files::layout::{read_envelope, write_atomic};

use crate::config::DataEventMap;
use crate::forward::dataset_name;
use crate::pipeline::{topic_dir_name, AgentError};
use crate::state::AgentState;

/// One topic's open window.
#[derive(Clone, Debug, Default)]
struct Open {
    /// Start of the window, Unix seconds (`None` until its first chunk).
    started: Option<u64>,
    dataset: ResumableDataset,
    first_captured_at: Option<String>,
    last_captured_at: Option<String>,
}

/// The open windows of every topic.
#[derive(Debug)]
pub struct Windows {
    window: Option<Duration>,
    open: BTreeMap<String, Open>,
}

/// The wall clock's seconds since the epoch (window starts are multiples of
/// the window length from the epoch).
fn now_secs() -> u64 {
    u64::try_from(sealstream_core::utc::now_unix()).unwrap_or(0)
}

impl Windows {
    /// The windows of `map`'s topics, restored from the committed state.
    pub fn new(map: &DataEventMap, state: &AgentState) -> Result<Windows, AgentError> {
        let mut open = BTreeMap::new();
        for t in &map.topics {
            let restored = match state.topics.get(&t.name).and_then(|s| s.window.as_ref()) {
                None => Open::default(),
                Some(v) => restore(v).map_err(|e| {
                    AgentError::Dataset(format!(
                        "{}: topics.{}.window: {e}",
                        AgentState::path(&map.spool.dir).display(),
                        t.name
                    ))
                })?,
            };
            open.insert(t.name.clone(), restored);
        }
        Ok(Windows {
            window: map.datasets.map(|d| d.window),
            open,
        })
    }

    /// The first chunk index of the topic's open window, if it has one.
    pub fn open_first(&self, topic: &str) -> Option<u64> {
        self.open.get(topic).and_then(|o| o.dataset.first_index())
    }

    /// Whether datasets are configured.
    pub fn enabled(&self) -> bool {
        self.window.is_some()
    }

    /// Add a chunk just sealed (its envelope at `envelope`, its plaintext)
    /// to the topic's open window.
    pub fn push(
        &mut self,
        topic: &str,
        envelope: &Path,
        plaintext: &[u8],
        captured: (Option<String>, Option<String>),
    ) -> Result<(), AgentError> {
        let Some(window) = self.window else {
            return Ok(());
        };
        let open = self.open.entry(topic.to_string()).or_default();
        let env = read_envelope(envelope).map_err(|e| AgentError::Dataset(e.to_string()))?;
        open.dataset
            .push(&env, plaintext)
            .map_err(|e| AgentError::Dataset(format!("topic {topic}: dataset window: {e}")))?;
        if open.started.is_none() {
            let w = window.as_secs().max(1);
            open.started = Some(now_secs() / w * w);
        }
        if open.first_captured_at.is_none() {
            open.first_captured_at = captured.0;
        }
        if captured.1.is_some() {
            open.last_captured_at = captured.1;
        }
        Ok(())
    }

    /// Whether the topic's window has ended and holds chunks.
    pub fn due(&self, topic: &str) -> bool {
        let (Some(window), Some(open)) = (self.window, self.open.get(topic)) else {
            return false;
        };
        open.started
            .is_some_and(|s| now_secs() >= s + window.as_secs().max(1))
            && open.dataset.count() > 0
    }

    /// The saved form of the topic's open window (for the state file).
    pub fn saved(&self, topic: &str) -> Option<Value> {
        let open = self.open.get(topic)?;
        let started = open.started?;
        let mut m = Map::new();
        m.insert("startedAt".into(), Value::from(started));
        m.insert("dataset".into(), open.dataset.to_json());
        for (k, v) in [
            ("firstCapturedAt", &open.first_captured_at),
            ("lastCapturedAt", &open.last_captured_at),
        ] {
            m.insert(
                k.into(),
                v.as_deref().map(Value::from).unwrap_or(Value::Null),
            );
        }
        Some(Value::Object(m))
    }

    /// Close the topic's window if it holds chunks: sign its manifest, write
    /// it to the spool, start a new window. Returns (first, last, file).
    pub fn close(
        &mut self,
        topic: &str,
        map: &DataEventMap,
    ) -> Result<Option<(u64, u64, PathBuf)>, AgentError> {
        if self.window.is_none() {
            return Ok(None);
        }
        let Some(open) = self.open.get(topic) else {
            return Ok(None);
        };
        let (Some(first), Some(next)) = (open.dataset.first_index(), open.dataset.next_index())
        else {
            return Ok(None);
        };
        let schema = map
            .topic(topic)
            .map(|t| t.schema_version.clone())
            .unwrap_or_default();
        let mut manifest = open
            .dataset
            .finish(DatasetInfo {
                topic: Some(topic.to_string()),
                data_schema_version: Some(schema),
                first_captured_at: open.first_captured_at.clone(),
                last_captured_at: open.last_captured_at.clone(),
                chunk_size: 0,
                source_hash: String::new(),
                sample_chunk_indexes: Vec::new(),
            })
            .ok_or_else(|| AgentError::Dataset(format!("topic {topic}: empty dataset")))?;
        manifest.sign_eip191(&map.machine.signing_key)?;
        manifest.sign_ed25519(&map.machine.chain_key)?;
        let last = next - 1;
        let dir = map.spool.dir.join("datasets").join(topic_dir_name(topic));
        std::fs::create_dir_all(&dir)
            .map_err(|e| AgentError::Dataset(format!("{}: {e}", dir.display())))?;
        let path = dir.join(dataset_name(first, last));
        write_atomic(&path, manifest.to_pretty_json().as_bytes())
            .map_err(|e| AgentError::Dataset(format!("{}: {e}", path.display())))?;
        self.open.insert(topic.to_string(), Open::default());
        Ok(Some((first, last, path)))
    }
}

fn restore(v: &Value) -> Result<Open, String> {
    let o = v.as_object().ok_or("expected an object")?;
    Ok(Open {
        started: o
            .get("startedAt")
            .and_then(Value::as_number)
            .and_then(Number::as_u64),
        dataset: ResumableDataset::from_json(o.get("dataset").ok_or("dataset: required")?)
            .map_err(|e| format!("dataset: {e}"))?,
        first_captured_at: o
            .get("firstCapturedAt")
            .and_then(Value::as_str)
            .map(str::to_string),
        last_captured_at: o
            .get("lastCapturedAt")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}
