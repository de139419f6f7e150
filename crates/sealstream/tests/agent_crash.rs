//! The agent's spool across crashes (issue 14): what a kill leaves behind is
//! cleaned up at the next start and never counts against the spool's cap;
//! the forwarder prunes a chunk's files in an order a kill cannot strand; a
//! chunk or dataset manifest reaches a destination only once `state.json`
//! commits it (crashes injected at exactly that point with the test-only
//! `SEALSTREAM_AGENT_KILL_AT`); and 50 random SIGKILLs with a 1 MiB spool
//! end, after one more run, with every message delivered exactly once.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent::{
    agent_status, chain_dirs, check_jsonl_output, committed_heads, files_under, killed,
    run_agent_ok, spawn_logged, temp_files, wait_exit, write_jsonl_input, JsonlMap,
};
use common::*;
use sealstream_core::json::Value;

fn agent_run(config: &Path) -> Command {
    let mut c = sealstream();
    c.args(["agent", "run", "--config"]).arg(config);
    c
}

fn u64_at(v: &Value) -> u64 {
    v.as_number().unwrap().as_u64().unwrap()
}

/// The bytes of chunks and manifests `agent status` counts in the spool.
fn status_spool_bytes(config: &Path) -> u64 {
    u64_at(&agent_status(config)["spool"].as_object().unwrap()["bytes"])
}

/// The topic directories under `<root>` (spool `chains/`, a destination).
fn topic_dirs(root: &Path) -> Vec<PathBuf> {
    chain_dirs(root).into_values().collect()
}

/// Every file left in the spool's chain and dataset directories.
fn spooled(spool: &Path) -> Vec<PathBuf> {
    let mut files = files_under(&spool.join("chains"));
    files.extend(files_under(&spool.join("datasets")));
    files
}

/// An agent of 50 messages a chunk on `n` JSON lines under `t`, run (log
/// `run1.log`) until it kills itself at `kill_at` (the test-only
/// `SEALSTREAM_AGENT_KILL_AT`): its configuration.
fn run_until_killed_at(t: &Path, n: usize, kill_at: &str) -> PathBuf {
    let config = JsonlMap {
        max_messages: 50,
        ..JsonlMap::default()
    }
    .write(t);
    write_jsonl_input(t, n);
    let log = t.join("run1.log");
    let mut c = agent_run(&config);
    c.env("SEALSTREAM_AGENT_KILL_AT", kill_at);
    let mut agent = spawn_logged(c, &log);
    let status = wait_exit(&mut agent, &log);
    assert!(killed(status), "killed at the kill point: {status}");
    config
}

/// Asserts that `files` is empty: `what` is why it must be.
fn assert_no_files(files: Vec<PathBuf>, what: &str) {
    assert_eq!(files, Vec::<PathBuf>::new(), "{what}");
}

/// Issue 14, item 17: temporary files of interrupted writes (in the spool and
/// at a directory destination) and a `.bin` whose `.json` an interrupted
/// prune had removed are deleted at the next start, and the spool's size
/// counts only live chunks. Before, they stayed for good and counted: with
/// enough of them the agent waited forever for a spool that would never
/// drain ("spool full" with every chunk delivered).
#[test]
fn start_removes_what_kills_left_and_counts_only_live_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = JsonlMap {
        chunk_bytes: "64KiB",
        spool_bytes: "1MiB",
        ..JsonlMap::default()
    }
    .write(t);
    write_jsonl_input(t, 300);
    run_agent_ok(agent_run(&config), &t.join("run1.log"));
    let spool = t.join("spool");
    assert!(spooled(&spool).is_empty(), "all delivered, spool empty");

    // What kills during writes and prunes leave behind: 1000 KiB of it,
    // nearly all of the 1 MiB cap.
    let chains = topic_dirs(&spool.join("chains"));
    let heads = committed_heads(&spool);
    let head = heads.values().copied().min().unwrap();
    let junk = |path: &Path, kib: usize| std::fs::write(path, vec![7u8; kib * 1024]).unwrap();
    junk(&chains[0].join(format!(".chunk-{head}.bin.tmp-4242")), 500);
    junk(&chains[0].join("chunk-0.bin"), 300); // its chunk-0.json already pruned
    junk(&chains[1].join("chunk-1.bin"), 199);
    junk(&chains[1].join(".chunk-1.json.tmp-4243"), 1);
    let datasets = spool.join("datasets").join(chains[0].file_name().unwrap());
    std::fs::create_dir_all(&datasets).unwrap();
    junk(&datasets.join(".dataset-0-3.json.tmp-4244"), 1);
    junk(&spool.join(".state.json.tmp-4245"), 1);
    junk(&spool.join(".delivery.json.tmp-4246"), 1);
    let out = topic_dirs(&t.join("out"));
    junk(&out[0].join(".chunk-0.bin.tmp-4247"), 10);
    junk(&out[1].join(".chunk-1.json.tmp-4248"), 1);

    // More input: the agent must get on with it, not wait for room.
    write_jsonl_input(t, 600);
    let log = t.join("run2.log");
    run_agent_ok(agent_run(&config), &log);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("spool full"), "{log}");
    assert_no_files(temp_files(t), "no temp files");
    assert_no_files(spooled(&spool), "no orphans");
    assert_eq!(
        status_spool_bytes(&config),
        0,
        "status counts live chunks only"
    );
    check_jsonl_output(t, 600);
}

/// Issue 14, item 17: the forwarder removes a delivered chunk's ciphertext
/// before its envelope, so a kill between the two leaves the envelope, by
/// which the next start finds and finishes the chunk; never a `.bin` that
/// nothing refers to.
#[test]
fn prune_removes_the_envelope_last() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = run_until_killed_at(t, 600, "prune-between-files");
    let spool = t.join("spool");
    // The first prune was of some topic's chunk 0, which the destination
    // has: one of its two spool files is left. (Another topic's chunk 0 may
    // have been half written when the process died: not a pruned one.)
    let left: Vec<&str> = topic_dirs(&spool.join("chains"))
        .iter()
        .filter(|dir| {
            let delivered = t.join("out").join(dir.file_name().unwrap());
            delivered.join("chunk-0.json").exists()
        })
        .filter_map(|dir| {
            match (
                dir.join("chunk-0.bin").exists(),
                dir.join("chunk-0.json").exists(),
            ) {
                (true, false) => Some("chunk-0.bin"),
                (false, true) => Some("chunk-0.json"),
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        left,
        ["chunk-0.json"],
        "killed after the .bin went, before the .json"
    );

    run_agent_ok(agent_run(&config), &t.join("run2.log"));
    assert_no_files(spooled(&spool), "no orphans");
    assert_eq!(status_spool_bytes(&config), 0);
    check_jsonl_output(t, 600);
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
    let config = run_until_killed_at(t, 600, "after-seal-before-commit:3");

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
    let config = run_until_killed_at(t, 300, "after-dataset-before-commit");
    let manifests: Vec<_> = files_under(&t.join("out"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("dataset-")
        })
        .collect();
    assert_no_files(manifests, "no manifest delivered");

    write_jsonl_input(t, 600);
    run_agent_ok(agent_run(&config), &t.join("run2.log"));
    check_jsonl_output(t, 600);
}

/// Issue 14, the fault test: 50 SIGKILLs at random moments (seeded:
/// `SEALSTREAM_TEST_SEED`) of `agent run` with a 1 MiB spool, then one run
/// to the end. Whatever the moments, every message is delivered exactly
/// once (sequence numbers without gaps, chains that verify), the spool holds
/// no chunk once all is delivered, and no temporary file is left in the
/// spool or at the destination.
#[test]
fn fifty_random_sigkills_with_a_1mib_spool_deliver_every_message_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut n = 20_000;
    let config = JsonlMap {
        chunk_bytes: "256KiB",
        max_messages: 1000,
        spool_bytes: "1MiB",
    }
    .write(t);
    write_jsonl_input(t, n);
    let mut rng = SplitMix64::new(test_seed("fifty_random_sigkills"));
    let started = Instant::now();
    let mut kills = 0;
    let mut runs = 0;
    let log = t.join("agent.log");
    while kills < 50 {
        runs += 1;
        assert!(
            runs <= 200,
            "only {kills} of 200 runs were still going when killed"
        );
        let delay = Duration::from_millis(rng.in_range(5..400));
        let mut agent = spawn_logged(agent_run(&config), &log);
        std::thread::sleep(delay);
        if agent.0.try_wait().unwrap().is_none() {
            agent.0.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = wait_exit(&mut agent, &log);
        assert!(
            status.success() || killed(status),
            "run {runs}: {status}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if status.success() {
            // It got through the whole input before its kill: more input.
            n += 5_000;
            write_jsonl_input(t, n);
        }
    }
    eprintln!(
        "{kills} SIGKILLs in {runs} runs over {n} messages, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    run_agent_ok(agent_run(&config), &log);
    eprintln!("done after {:.1} s", started.elapsed().as_secs_f64());

    check_jsonl_output(t, n);
    let spool = t.join("spool");
    assert_no_files(spooled(&spool), "spool drained");
    assert_eq!(status_spool_bytes(&config), 0, "spool drained");
    assert_no_files(temp_files(t), "no temp files");
}
