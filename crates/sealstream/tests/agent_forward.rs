//! Store and forward against a real S3-compatible server (moto): with the
//! object store unreachable the spool grows up to its cap, then the
//! `whenFull` policy applies and is logged — `block` stops reading until the
//! store returns and everything drains, in order, to a chain that verifies;
//! `drop-oldest` drops the oldest chunks, says which, and delivers the rest.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent::{
    check_datasets, packages, spawn_logged, wait_exit, write_map, Running, PATIENCE,
};
use common::moto::{MotoServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use common::*;
use sealstream_core::json::{self, Value};
use sealstream_files::layout::list_chain;

const MESSAGES: u64 = 600;

fn write_config(dir: &Path, when_full: &str) -> PathBuf {
    let mut input = String::new();
    for i in 0..MESSAGES {
        input.push_str(&format!(
            "{{\"topic\":\"/arm/joints\",\"capturedAt\":\"2026-11-21T10:00:00.{i:06}Z\",\"fields\":{{\"i\":{i},\"pos\":[0.{i},1.{i},2.{i}],\"secret\":\"s{i}\"}}}}\n"
        ));
    }
    std::fs::write(dir.join("input.jsonl"), input).unwrap();
    let spool = format!("  maxBytes: 48KiB\n  whenFull: {when_full}\n");
    write_map(
        dir,
        ("16KiB", 20),
        "1h",
        &spool,
        r#"sources:
  lines: {type: jsonl, path: input.jsonl}
topics:
  - name: /arm/joints
    source: lines
    rules:
      - {fieldPath: secret, action: exclude}
destinations:
  - {type: object-store, url: "s3://robot-data/fleet-1"}
"#,
    )
}

/// `sealstream agent …` with the S3 endpoint and test credentials.
fn agent_command(port: u16, args: &[&str], config: &Path) -> Command {
    let mut c = sealstream();
    c.args(["agent"])
        .args(args)
        .arg("--config")
        .arg(config)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_REGION", "us-east-1");
    c
}

fn status(port: u16, config: &Path) -> json::Map {
    let out = run_ok(agent_command(port, &["status", "--json"], config), "status");
    match json::parse(&out.stdout).unwrap() {
        Value::Object(o) => o,
        other => panic!("status: {other:?}"),
    }
}

fn u64_at(v: &Value) -> u64 {
    v.as_number().unwrap().as_u64().unwrap()
}

fn spawn_agent(port: u16, config: &Path, extra: &[&str], log: &Path) -> Running {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    spawn_logged(agent_command(port, &args, config), log)
}

/// Download the topic's objects from the bucket into `dir` (flat chain layout).
fn download(moto: &MotoServer, dir: &Path) -> PathBuf {
    let chain = dir.join("downloaded");
    std::fs::create_dir_all(&chain).unwrap();
    for (key, bytes) in moto.objects("robot-data") {
        let (prefix, rest) = key.split_once('/').unwrap();
        assert_eq!(prefix, "fleet-1", "{key}");
        let (topic_dir, name) = rest.split_once('/').unwrap();
        assert!(topic_dir.starts_with("arm_joints-"), "{key}");
        std::fs::write(chain.join(name), bytes).unwrap();
    }
    chain
}

fn log_lines(log: &Path, needle: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn block_waits_at_the_cap_and_drains_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = write_config(t, "block");
    let port = free_port(); // nothing listens there yet
    let log = t.join("agent.log");
    let mut agent = spawn_agent(port, &config, &[], &log);

    // The store is unreachable: the spool fills up to its cap and the agent waits.
    let start = Instant::now();
    while log_lines(&log, "spool full").is_empty() {
        assert!(start.elapsed() < PATIENCE, "no 'spool full' in the log");
        assert!(agent.0.try_wait().unwrap().is_none(), "agent exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The forwarder's failures show in the status.
    let mut s = status(port, &config);
    let sink_ok = |s: &json::Map| {
        s["destinations"]
            .as_array()
            .and_then(|d| d.first())
            .and_then(Value::as_object)
            .and_then(|d| d.get("ok").cloned())
    };
    while sink_ok(&s) != Some(Value::Bool(false)) {
        assert!(
            start.elapsed() < PATIENCE,
            "status never showed the failing sink"
        );
        std::thread::sleep(Duration::from_millis(100));
        s = status(port, &config);
    }
    let spool = s["spool"].as_object().unwrap();
    let bytes = u64_at(&spool["bytes"]);
    assert!(
        bytes > 0 && bytes <= 48 * 1024,
        "spool within its cap: {bytes}"
    );
    let dest = &s["destinations"].as_array().unwrap()[0];
    let dest = dest.as_object().unwrap();
    assert_eq!(dest["ok"], Value::Bool(false), "sink reported unhealthy");
    assert!(dest["lastError"]
        .as_str()
        .unwrap()
        .contains("s3://robot-data/fleet-1"));
    let topic = s["topics"].as_array().unwrap()[0]
        .as_object()
        .unwrap()
        .clone();
    assert!(u64_at(&topic["packages"]) < MESSAGES, "reading stopped");

    // The store comes back: everything drains, the agent finishes.
    let moto = MotoServer::start_on(port);
    moto.create_bucket("robot-data");
    let exit = wait_exit(&mut agent, &log);
    assert!(exit.success(), "agent run: {exit}");
    assert!(!log_lines(&log, "spool has room again").is_empty());

    let chain = download(&moto, t);
    let mut v = sealstream();
    v.args(["verify", "--chunk-dir"]).arg(&chain);
    run_ok(v, "verify the delivered chain");
    let chunks = list_chain(&chain).unwrap().len() as u64;
    assert_eq!(chunks, MESSAGES / 20);
    assert_eq!(check_datasets(&chain), chunks, "dataset manifest delivered");
    let ids: Vec<u64> = packages(&chain)
        .iter()
        .map(|p| {
            assert!(!p.payload.contains_key("secret"));
            u64_at(&p.payload["i"])
        })
        .collect();
    assert_eq!(
        ids,
        (0..MESSAGES).collect::<Vec<_>>(),
        "all, once, in order"
    );

    // Delivered chunks left the spool; status agrees.
    let s = status(port, &config);
    assert_eq!(u64_at(&s["spool"].as_object().unwrap()["bytes"]), 0);
    let topic = s["topics"].as_array().unwrap()[0]
        .as_object()
        .unwrap()
        .clone();
    let delivered = topic["deliveredChunks"].as_object().unwrap();
    assert_eq!(
        delivered.values().map(u64_at).collect::<Vec<_>>(),
        vec![chunks]
    );
}

#[test]
fn drop_oldest_drops_logs_and_delivers_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = write_config(t, "drop-oldest");
    let port = free_port();
    let log = t.join("agent.log");
    // Unreachable store, and no waiting for it: the whole input is read.
    let mut agent = spawn_agent(port, &config, &["--no-wait"], &log);
    assert!(wait_exit(&mut agent, &log).success());
    let dropped: Vec<u64> = log_lines(&log, "dropped chunk")
        .iter()
        .map(|l| {
            l.split("dropped chunk ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(!dropped.is_empty(), "chunks were dropped");
    assert_eq!(
        dropped,
        (0..dropped.len() as u64).collect::<Vec<_>>(),
        "the oldest first"
    );
    let s = status(port, &config);
    assert!(u64_at(&s["spool"].as_object().unwrap()["bytes"]) <= 48 * 1024);

    // The store returns; a second run delivers what the spool kept.
    let moto = MotoServer::start_on(port);
    moto.create_bucket("robot-data");
    let log2 = t.join("agent2.log");
    let mut agent = spawn_agent(port, &config, &[], &log2);
    assert!(wait_exit(&mut agent, &log2).success());
    let chain = download(&moto, t);
    let delivered: BTreeSet<u64> = std::fs::read_dir(&chain)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("chunk-")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    let total = MESSAGES / 20;
    let expected: BTreeSet<u64> = (dropped.len() as u64..total).collect();
    assert_eq!(
        delivered, expected,
        "every chunk not dropped, and only those"
    );
}
