//! The agent's spool across crashes (issue 14): what a kill leaves behind is
//! cleaned up at the next start and never counts against the spool's cap;
//! the forwarder prunes a chunk's files in an order a kill cannot strand; a
//! chunk or dataset manifest reaches a destination only once `state.json`
//! commits it (crashes injected at exactly that point with the test-only
//! `SEALSTREAM_AGENT_KILL_AT`); and 50 random SIGKILLs with a 1 MiB spool
//! end, after one more run, with every message delivered exactly once.

mod common;

use std::path::Path;
use std::process::Command;

use common::agent::{
    chain_dirs, check_jsonl_output, committed_heads, files_under, killed, run_agent_ok,
    spawn_logged, wait_exit, write_jsonl_input, JsonlMap,
};
use common::*;

fn agent_run(config: &Path) -> Command {
    let mut c = sealstream();
    c.args(["agent", "run", "--config"]).arg(config);
    c
}

/// The topic directories under `<root>` (spool `chains/`, a destination).
fn topic_dirs(root: &Path) -> Vec<std::path::PathBuf> {
    chain_dirs(root).into_values().collect()
}

/// Issue 14, item 19: a chunk reaches the forwarder only once `state.json`
/// commits it. Killed between writing a chunk and committing it, after the
/// forwarder was given every chance to deliver: no destination holds a
/// chunk the state does not commit, and after a restart (which seals that
/// chunk again) the delivered chains verify. Before, the destination had
/// the uncommitted chunk (3 delivered, 2 committed), which the restart
/// seals again differently: the chain broke ("previousChunkId does not
/// match").
#[test]
fn a_chunk_reaches_destinations_only_after_its_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = JsonlMap {
        max_messages: 50,
        ..JsonlMap::default()
    }
    .write(t);
    write_jsonl_input(t, 600);
    let log = t.join("run1.log");
    let mut c = agent_run(&config);
    c.env("SEALSTREAM_AGENT_KILL_AT", "after-seal-before-commit:3");
    let mut agent = spawn_logged(c, &log);
    let status = wait_exit(&mut agent, &log);
    assert!(killed(status), "killed at the kill point: {status}");

    let heads = committed_heads(&t.join("spool"));
    let delivered: u64 = topic_dirs(&t.join("out"))
        .iter()
        .map(|d| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("chunk-") && name.ends_with(".json")
                })
                .count() as u64
        })
        .sum();
    let committed: u64 = heads.values().sum();
    assert_eq!(committed, 2, "two chunks committed before the third");
    assert!(
        delivered <= committed,
        "{delivered} chunks delivered, {committed} committed"
    );

    run_agent_ok(agent_run(&config), &t.join("run2.log"));
    check_jsonl_output(t, 600);
}

/// Issue 14, item 19, for dataset manifests: killed after a manifest is
/// written and before `state.json` records its window closed, no destination
/// has the manifest; the restarted agent goes on filling the window and
/// delivers one manifest over all of it. Before, the early manifest was
/// delivered (`dataset-0-3.json` here), and the one over the whole window
/// never was.
#[test]
fn a_dataset_manifest_reaches_destinations_only_after_its_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = JsonlMap {
        max_messages: 50,
        ..JsonlMap::default()
    }
    .write(t);
    write_jsonl_input(t, 300);
    let log = t.join("run1.log");
    let mut c = agent_run(&config);
    c.env("SEALSTREAM_AGENT_KILL_AT", "after-dataset-before-commit");
    let mut agent = spawn_logged(c, &log);
    let status = wait_exit(&mut agent, &log);
    assert!(killed(status), "killed at the kill point: {status}");
    let manifests: Vec<_> = files_under(&t.join("out"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("dataset-")
        })
        .collect();
    assert_eq!(
        manifests,
        Vec::<std::path::PathBuf>::new(),
        "no manifest delivered"
    );

    write_jsonl_input(t, 600);
    run_agent_ok(agent_run(&config), &t.join("run2.log"));
    check_jsonl_output(t, 600);
}
