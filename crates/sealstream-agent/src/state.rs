//! The agent's persisted state: what is committed to the chains.
//!
//! One file, `<spool>/state.json`, replaced atomically after every chunk is
//! durably written. A chunk (or dataset manifest) becomes visible to the
//! forwarder only after the state that commits it is saved, so no
//! destination ever receives something a restart could seal differently. It holds the machine's next sequence number, and per topic
//! the chain head, the source position of the last message committed to the
//! chain, and the open dataset window. (Delivery progress is kept by the
//! forwarder, in `delivery.json`.) On restart, sources
//! resume from these positions and already-committed messages are skipped, so
//! every input message lands in its chain exactly once and sequence numbers
//! have no gaps or repeats, however the previous run ended.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sealstream_core::chunk::ChainState;
use sealstream_core::json::{self, Map, Number, Value};
use sealstream_files::layout::write_atomic;

/// Committed state of one topic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicState {
    /// The chain head.
    pub chain: ChainState,
    /// Source position of the last message committed (`None`: nothing yet).
    pub committed_through: Option<u64>,
    /// Packages committed.
    pub packages: u64,
    /// Messages skipped as bad (undecodable, or breaking a rule).
    pub skipped: u64,
    /// Gap records committed (see [`sealstream_core::gap`]).
    pub gaps: u64,
    /// Messages those gap records say are missing (where they give a range).
    pub missing: u64,
    /// The open dataset window (see [`crate::window`]), if any.
    pub window: Option<Value>,
    /// Per live publisher (ROS 2 global id in hex): the last of its
    /// sequence numbers the chain accounts for (a package or a gap), and
    /// that message's time. A restart records a gap from here.
    pub publishers: BTreeMap<String, PublisherMark>,
}

/// Where a publisher's numbering stands in a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherMark {
    /// The publisher's last sequence number accounted for.
    pub sequence: u64,
    /// The time of that message (ISO 8601).
    pub at: String,
}

/// How many publishers a topic remembers (the least recently heard of go first).
pub const MAX_PUBLISHERS: usize = 256;

/// The whole agent state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentState {
    /// The next package sequence number of the machine.
    pub next_sequence: u64,
    /// Per topic name.
    pub topics: BTreeMap<String, TopicState>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a state file.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn u64_of(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_number).and_then(Number::as_u64)
}

fn publishers(v: Option<&Value>) -> Result<BTreeMap<String, PublisherMark>, String> {
    let mut out = BTreeMap::new();
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let o = v.as_object().ok_or("expected an object")?;
    for (gid, mark) in o {
        let m = mark
            .as_object()
            .ok_or_else(|| format!("{gid}: expected an object"))?;
        out.insert(
            gid.clone(),
            PublisherMark {
                sequence: u64_of(m.get("sequence"))
                    .ok_or_else(|| format!("{gid}.sequence: required"))?,
                at: m
                    .get("at")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{gid}.at: required"))?
                    .to_string(),
            },
        );
    }
    Ok(out)
}

impl AgentState {
    /// `<spool>/state.json`.
    pub fn path(spool: &Path) -> PathBuf {
        spool.join("state.json")
    }

    /// Load the state, or a fresh one if there is none yet.
    pub fn load(spool: &Path) -> Result<AgentState, StateError> {
        let path = Self::path(spool);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AgentState::default()),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        Self::parse(&bytes, &path)
    }

    /// Parse the content of a state file; `path` only names the file in
    /// errors ([`StateError::Invalid`]). Reads what [`AgentState::to_json_bytes`]
    /// writes back to an equal state.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<AgentState, StateError> {
        let invalid = |message: String| StateError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let v = json::parse(bytes).map_err(|e| invalid(e.to_string()))?;
        let o = v
            .as_object()
            .ok_or_else(|| invalid("expected an object".into()))?;
        let next_sequence = u64_of(o.get("nextSequence"))
            .ok_or_else(|| invalid("nextSequence: required".into()))?;
        let mut topics = BTreeMap::new();
        for (name, t) in o
            .get("topics")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let t = t
                .as_object()
                .ok_or_else(|| invalid(format!("topics.{name}: expected an object")))?;
            let chain = ChainState::from_json(t.get("chain").unwrap_or(&Value::Null))
                .map_err(|e| invalid(format!("topics.{name}.chain: {e}")))?;
            topics.insert(
                name.clone(),
                TopicState {
                    chain,
                    committed_through: u64_of(t.get("committedThrough")),
                    packages: u64_of(t.get("packages")).unwrap_or(0),
                    skipped: u64_of(t.get("skipped")).unwrap_or(0),
                    gaps: u64_of(t.get("gaps")).unwrap_or(0),
                    missing: u64_of(t.get("missing")).unwrap_or(0),
                    window: t.get("window").filter(|w| !w.is_null()).cloned(),
                    publishers: publishers(t.get("publishers"))
                        .map_err(|e| invalid(format!("topics.{name}.publishers: {e}")))?,
                },
            );
        }
        Ok(AgentState {
            next_sequence,
            topics,
        })
    }

    /// Replace the state file atomically (temporary file, fsync, rename,
    /// fsync of the spool directory) with [`AgentState::to_json_bytes`]:
    /// once this returns, the new state is the committed one, even across a
    /// power loss.
    pub fn save(&self, spool: &Path) -> Result<(), StateError> {
        let path = Self::path(spool);
        write_atomic(&path, &self.to_json_bytes())
            .and_then(|()| crate::spool::sync_dir(spool))
            .map_err(|source| StateError::Io { path, source })
    }

    /// The content of the state file: pretty-printed JSON
    /// `{"nextSequence": …, "topics": {<name>: {"chain": …, "committedThrough": …,
    /// "packages": …, "skipped": …, "window": …}}}` (`window` only when open).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut topics = Map::new();
        for (name, t) in &self.topics {
            let mut o = Map::new();
            o.insert("chain".into(), t.chain.to_json());
            o.insert(
                "committedThrough".into(),
                t.committed_through.map(Value::from).unwrap_or(Value::Null),
            );
            o.insert("packages".into(), Value::from(t.packages));
            o.insert("skipped".into(), Value::from(t.skipped));
            if t.gaps > 0 {
                o.insert("gaps".into(), Value::from(t.gaps));
                o.insert("missing".into(), Value::from(t.missing));
            }
            if let Some(w) = &t.window {
                o.insert("window".into(), w.clone());
            }
            if !t.publishers.is_empty() {
                let mut p = Map::new();
                for (gid, mark) in &t.publishers {
                    let mut m = Map::new();
                    m.insert("sequence".into(), Value::from(mark.sequence));
                    m.insert("at".into(), Value::from(mark.at.as_str()));
                    p.insert(gid.clone(), Value::Object(m));
                }
                o.insert("publishers".into(), Value::Object(p));
            }
            topics.insert(name.clone(), Value::Object(o));
        }
        let mut m = Map::new();
        m.insert("nextSequence".into(), Value::from(self.next_sequence));
        m.insert("topics".into(), Value::Object(topics));
        json::write::to_python_pretty(&Value::Object(m)).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(AgentState::load(dir.path()).unwrap(), AgentState::default());
        let mut s = AgentState {
            next_sequence: 42,
            ..AgentState::default()
        };
        let mut t = TopicState {
            chain: ChainState {
                next_index: 3,
                previous_chunk_id: Some("0xab".into()),
            },
            committed_through: Some(99),
            packages: 40,
            skipped: 2,
            gaps: 1,
            missing: 276,
            ..TopicState::default()
        };
        t.window = Some(Value::from(7u64));
        t.publishers.insert(
            "21d98a1fa3fec7d01427854f7bea31e3".into(),
            PublisherMark {
                sequence: 41,
                at: "2026-12-05T10:00:00.000000001Z".into(),
            },
        );
        s.topics.insert("/gps".into(), t);
        s.save(dir.path()).unwrap();
        assert_eq!(AgentState::load(dir.path()).unwrap(), s);
    }
}
