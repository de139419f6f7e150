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
//! ([`sealstream_core::dataset::ResumableDataset`]), with the gap records
//! (`sealstream.gap.v1`) found in its chunks so far, which the manifest
//! states (`gaps`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sealstream_core::dataset::{DatasetInfo, ResumableDataset};
use sealstream_core::gap::Gap;
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
    /// The gap records in the window's chunks, in chain order.
    gaps: Vec<Gap>,
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
        // Found before anything changes: a chunk refused leaves the window as it was.
        let gaps = Gap::scan_plaintext(plaintext)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                AgentError::Dataset(format!(
                    "topic {topic}: chunk {}: dataset window: {e}",
                    env.index
                ))
            })?;
        open.dataset
            .push(&env, plaintext)
            .map_err(|e| AgentError::Dataset(format!("topic {topic}: dataset window: {e}")))?;
        open.gaps.extend(gaps);
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
        if !open.gaps.is_empty() {
            m.insert(
                "gaps".into(),
                Value::Array(
                    open.gaps
                        .iter()
                        .map(|g| Value::Object(g.to_fields()))
                        .collect(),
                ),
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
                gaps: open.gaps.clone(),
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
        gaps: match o.get("gaps") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or("gaps: expected an array")?
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    g.as_object()
                        .ok_or_else(|| format!("gaps[{i}]: expected an object"))
                        .and_then(|g| Gap::from_fields(g).map_err(|e| format!("gaps[{i}].{e}")))
                })
                .collect::<Result<_, _>>()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::chunk::{ChainConfig, ChainState, ChainWriter};
    use sealstream_core::dataset::DatasetManifest;
    use sealstream_core::gap::{GapReason, GAP_SCHEMA_VERSION};
    use sealstream_core::keys::{ChainSigningKey, MachineSigningKey};
    use sealstream_core::package::PackageSigner;
    use sealstream_files::layout::{envelope_name, DirectorySink};
    use sealstream_testkit::fixture::{DID, MACHINE_PK, MACHINE_SK, OPERATOR_PK, OWNER_PK};

    const CHAIN_SK: &str = "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f";

    fn map(dir: &Path) -> DataEventMap {
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("machine.sk"), format!("{MACHINE_SK}\n")).unwrap();
        std::fs::write(keys.join("chain.sk"), format!("{CHAIN_SK}\n")).unwrap();
        let text = format!(
            "machine:\n  did: {DID}\n  signingKeyFile: keys/machine.sk\n  chainKeyFile: keys/chain.sk\n\
             recipients:\n  owner: {OWNER_PK}\n  operator: {OPERATOR_PK}\n  machine: {MACHINE_PK}\n\
             sources:\n  bag: {{type: mcap, path: run1.mcap}}\n\
             topics:\n  - name: /gps/fix\n    source: bag\n\
             destinations:\n  - {{type: directory, path: out/}}\n\
             datasets:\n  window: 1h\n"
        );
        DataEventMap::parse(&text, dir).unwrap()
    }

    fn gap(first: u64) -> Gap {
        Gap {
            reason: GapReason::AgentOffline,
            source_topic: "/gps/fix".into(),
            after: Some("2026-12-05T10:00:01Z".into()),
            before: Some("2026-12-05T10:00:04Z".into()),
            publisher: None,
            sequences: Some((first, first + 9)),
            chunks: None,
        }
    }

    /// Package lines: data, then each of `gaps` as a gap record, then data.
    fn plaintext(map: &DataEventMap, gaps: &[Gap]) -> Vec<u8> {
        let signer = PackageSigner::new(
            MachineSigningKey::from_hex(MACHINE_SK, "machine").unwrap(),
            &map.machine.did.to_string(),
            None,
            None,
        )
        .unwrap();
        let mut data = Map::new();
        data.insert("x".into(), Value::from(1u64));
        let mut lines = vec![(data.clone(), "1.0.0")];
        lines.extend(gaps.iter().map(|g| (g.to_fields(), GAP_SCHEMA_VERSION)));
        lines.push((data, "1.0.0"));
        let mut out = Vec::new();
        for (i, (fields, schema)) in lines.into_iter().enumerate() {
            let p = signer.sign_processed(fields, "2026-12-05T10:00:00Z", schema, i as u64);
            out.extend_from_slice(p.to_json_line().as_bytes());
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn the_window_states_the_gaps_of_its_chunks_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let map = map(dir.path());
        let chain_dir = dir.path().join("chain");
        let config = ChainConfig::new(
            ChainSigningKey::from_hex(CHAIN_SK, "chain").unwrap(),
            DID,
            &map.machine.key_id,
            map.recipients.chain_recipients(),
        );
        let mut writer = ChainWriter::new(
            config,
            ChainState::new(),
            DirectorySink::new(&chain_dir).unwrap(),
        )
        .unwrap();
        let chunks = [
            plaintext(&map, &[gap(10)]),
            plaintext(&map, &[]),
            plaintext(&map, &[gap(30), gap(50)]),
        ];
        for c in &chunks {
            writer.seal_chunk(c.clone()).unwrap();
        }
        writer.flush().unwrap();
        let topic = "/gps/fix";
        let mut windows = Windows::new(&map, &AgentState::default()).unwrap();
        let captured = || (None, None);
        windows
            .push(
                topic,
                &chain_dir.join(envelope_name(0)),
                &chunks[0],
                captured(),
            )
            .unwrap();
        // A restart: the window comes back from its saved state.
        let saved = windows.saved(topic).unwrap();
        assert_eq!(
            saved.as_object().unwrap()["gaps"].as_array().unwrap().len(),
            1
        );
        let mut state = AgentState::default();
        state.topics.entry(topic.to_string()).or_default().window = Some(saved);
        let mut windows = Windows::new(&map, &state).unwrap();
        assert_eq!(windows.open[topic].gaps, vec![gap(10)]);
        for i in 1..3 {
            windows
                .push(
                    topic,
                    &chain_dir.join(envelope_name(i)),
                    &chunks[i as usize],
                    captured(),
                )
                .unwrap();
        }
        let (first, last, path) = windows.close(topic, &map).unwrap().unwrap();
        assert_eq!((first, last), (0, 2));
        let manifest = DatasetManifest::parse(&std::fs::read(&path).unwrap()).unwrap();
        manifest.verify_signatures().unwrap();
        assert_eq!(manifest.gaps, vec![gap(10), gap(30), gap(50)]);
        // The next window starts without them.
        assert!(windows.open[topic].gaps.is_empty());
    }

    #[test]
    fn a_saved_gap_that_does_not_parse_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let map = map(dir.path());
        let mut state = AgentState::default();
        let mut saved = Map::new();
        saved.insert("startedAt".into(), Value::from(0u64));
        saved.insert("dataset".into(), ResumableDataset::new().to_json());
        let mut bad = gap(1).to_fields();
        bad.insert("reason".into(), Value::from("tired"));
        saved.insert("gaps".into(), Value::Array(vec![Value::Object(bad)]));
        state
            .topics
            .entry("/gps/fix".to_string())
            .or_default()
            .window = Some(Value::Object(saved));
        let e = Windows::new(&map, &state).unwrap_err().to_string();
        assert!(e.contains("gaps[0].reason"), "{e}");
    }
}
