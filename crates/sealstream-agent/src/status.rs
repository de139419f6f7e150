//! What `sealstream agent status` shows: per topic the packages, chunks,
//! skipped messages and delivery progress (per destination, by its identity,
//! see [`crate::sink::identity`]); the last sequence number; the
//! spool's size; each destination's health; what live ROS 2 sources
//! received and dropped at their queue in the last run.
//!
//! A running agent writes `<spool>/status.json` about once a second (and on
//! exit) with what only it knows, destination health; [`collect`] combines it
//! with the committed state (`state.json`) and delivery progress
//! (`delivery.json`), which are authoritative whether the agent runs or not.

use std::path::{Path, PathBuf};

use sealstream_core::json::{self, Map, Value};
use sealstream_files::layout::write_replace;

use std::sync::atomic::Ordering;

use crate::config::{DataEventMap, Source, WhenFull};
use crate::forward::{self, Outbox};
use crate::pipeline::topic_dir_name;
use crate::ros2_live::Ros2Counters;
use crate::sink::identity::{identity, legacy_identities};
use crate::spool::{dataset_range, file_len, live_chunk_bytes, lowest_chunk};
use crate::state::AgentState;

/// `<spool>/status.json`.
pub fn path(spool: &Path) -> PathBuf {
    spool.join("status.json")
}

fn opt_str(v: &Option<String>) -> Value {
    v.as_deref().map(Value::from).unwrap_or(Value::Null)
}

/// Write `<spool>/status.json` (not fsynced: it is a view, not state).
/// `live`: what the live ROS 2 sources received and dropped at their queue.
pub fn write(
    map: &DataEventMap,
    outbox: &Outbox,
    live: &Ros2Counters,
    running: bool,
) -> std::io::Result<()> {
    let mut m = Map::new();
    m.insert("running".into(), running.into());
    m.insert("pid".into(), Value::from(u64::from(std::process::id())));
    m.insert("updatedAt".into(), sealstream_core::utc::now().into());
    m.insert("spoolBytes".into(), Value::from(outbox.spool_bytes()));
    m.insert("droppedThisRun".into(), Value::from(outbox.dropped()));
    if map.sources.values().any(|s| matches!(s, Source::Ros2(_))) {
        let mut l = Map::new();
        l.insert(
            "received".into(),
            Value::from(live.received.load(Ordering::Relaxed)),
        );
        l.insert(
            "droppedAtQueue".into(),
            Value::from(live.dropped.load(Ordering::Relaxed)),
        );
        m.insert("liveThisRun".into(), Value::Object(l));
    }
    let health = outbox
        .health()
        .iter()
        .map(|h| {
            let mut o = Map::new();
            o.insert("destination".into(), h.destination.as_str().into());
            o.insert("ok".into(), h.ok.map(Value::from).unwrap_or(Value::Null));
            o.insert("lastError".into(), opt_str(&h.last_error));
            o.insert("lastDeliveredAt".into(), opt_str(&h.last_delivered_at));
            o.insert("failures".into(), Value::from(h.failures));
            o.insert("stopped".into(), h.stopped.into());
            Value::Object(o)
        })
        .collect();
    m.insert("destinations".into(), Value::Array(health));
    write_replace(
        &path(&map.spool.dir),
        json::write::to_python_pretty(&Value::Object(m)).as_bytes(),
        false,
    )
}

/// The status of the agent of `map`, from its spool: see the module docs.
pub fn collect(map: &DataEventMap) -> Result<Value, String> {
    let spool = &map.spool.dir;
    let state = AgentState::load(spool).map_err(|e| e.to_string())?;
    let delivery = forward::load_delivery(spool)?;
    let live: Option<Value> = std::fs::read(path(spool))
        .ok()
        .and_then(|b| json::parse(&b).ok());
    let live_obj = live.as_ref().and_then(Value::as_object);
    let running = live_obj
        .and_then(|o| o.get("running"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
        && live_obj
            .and_then(|o| o.get("pid"))
            .and_then(Value::as_number)
            .and_then(|n| n.as_u64())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    let ids: Vec<String> = map.destinations.iter().map(identity).collect();
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut topics = Vec::new();
    for t in &map.topics {
        let s = state.topics.get(&t.name).cloned().unwrap_or_default();
        let mut o = Map::new();
        o.insert("topic".into(), t.name.as_str().into());
        o.insert("source".into(), t.source.as_str().into());
        o.insert("packages".into(), Value::from(s.packages));
        o.insert("chunks".into(), Value::from(s.chain.next_index));
        o.insert("skipped".into(), Value::from(s.skipped));
        o.insert("gaps".into(), Value::from(s.gaps));
        o.insert("missing".into(), Value::from(s.missing));
        o.insert(
            "committedThrough".into(),
            s.committed_through.map(Value::from).unwrap_or(Value::Null),
        );
        // Per configured destination, by its identity (names recorded by
        // earlier versions count for the destination they stand for).
        let mut delivered = Map::new();
        for id in &ids {
            let chunks = delivery
                .iter()
                .filter(|(name, _)| {
                    *name == id || legacy_identities(name, &[&cwd, &map.base_dir]).contains(id)
                })
                .filter_map(|(_, per)| per.get(&t.name).map(|d| d.chunks))
                .max()
                .unwrap_or(0);
            delivered.insert(id.clone(), Value::from(chunks));
        }
        o.insert("deliveredChunks".into(), Value::Object(delivered));
        topics.push(Value::Object(o));
    }
    // What the cap counts: committed chunks not yet everywhere, manifests.
    let chunk_bytes: u64 = map
        .topics
        .iter()
        .map(|t| {
            let dir_name = topic_dir_name(&t.name);
            let head = state.topics.get(&t.name).map_or(0, |s| s.chain.next_index);
            let chains = spool.join("chains").join(&dir_name);
            let datasets = spool.join("datasets").join(&dir_name);
            let manifests: u64 = std::fs::read_dir(&datasets)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_str().and_then(dataset_range).is_some())
                .map(|e| file_len(&e.path()))
                .sum();
            live_chunk_bytes(&chains, lowest_chunk(&chains, head), head) + manifests
        })
        .sum();
    let mut sp = Map::new();
    sp.insert("dir".into(), spool.display().to_string().into());
    sp.insert("bytes".into(), Value::from(chunk_bytes));
    sp.insert("maxBytes".into(), Value::from(map.spool.max_bytes));
    sp.insert(
        "whenFull".into(),
        match map.spool.when_full {
            WhenFull::Block => "block",
            WhenFull::DropOldest => "drop-oldest",
        }
        .into(),
    );
    sp.insert(
        "journalBytes".into(),
        Value::from(forward::dir_bytes(&spool.join("journal"))),
    );
    let mut m = Map::new();
    m.insert("machineDid".into(), map.machine.did.to_string().into());
    m.insert("running".into(), running.into());
    m.insert(
        "updatedAt".into(),
        live_obj
            .and_then(|o| o.get("updatedAt"))
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert(
        "lastSequence".into(),
        state
            .next_sequence
            .checked_sub(1)
            .map(Value::from)
            .unwrap_or(Value::Null),
    );
    m.insert("topics".into(), Value::Array(topics));
    m.insert("spool".into(), Value::Object(sp));
    if let Some(live) = live_obj.and_then(|o| o.get("liveThisRun")) {
        m.insert("liveThisRun".into(), live.clone());
    }
    m.insert(
        "destinations".into(),
        live_obj
            .and_then(|o| o.get("destinations"))
            .cloned()
            .unwrap_or(Value::Array(Vec::new())),
    );
    Ok(Value::Object(m))
}
