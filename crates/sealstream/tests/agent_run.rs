//! `sealstream agent run` end to end: JSON lines in, one continuous signed
//! chain per topic out; and crash safety — SIGKILL at many points while it
//! ingests, restart each time, and every message appears exactly once, with
//! sequence numbers without gaps or repeats, in chains that verify.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::agent::{
    check_jsonl_output as check_output, write_jsonl_input as write_input, JsonlMap,
};
use common::*;
use sealstream_core::json;

fn write_config(dir: &Path, max_messages: u64) -> PathBuf {
    JsonlMap {
        max_messages,
        ..JsonlMap::default()
    }
    .write(dir)
}

#[test]
fn jsonl_to_continuous_chains_with_rules_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = write_config(t, 100);
    write_input(t, 1000);
    let mut c = sealstream();
    c.args(["agent", "run", "--json", "--config"]).arg(&config);
    let out = run_ok(c, "agent run");
    let v = json::parse(&out.stdout).unwrap();
    let topics = v.as_object().unwrap()["topics"].as_array().unwrap().clone();
    let counts: HashMap<String, u64> = topics
        .iter()
        .map(|t| {
            let o = t.as_object().unwrap();
            (
                o["topic"].as_str().unwrap().to_string(),
                o["packages"].as_number().unwrap().as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts["/imu"], 334);
    assert_eq!(counts["/gps"], 666);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("source lines: skipped message 11: invalid JSON"),
        "{stderr}"
    );
    check_output(t, 1000);

    // A second run over the same input adds nothing: everything is committed.
    let mut c = sealstream();
    c.args(["agent", "run", "--json", "--config"]).arg(&config);
    run_ok(c, "agent rerun");
    check_output(t, 1000);
}

#[test]
fn sigkill_at_many_points_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let n = 20_000;
    let config = write_config(t, 50);
    write_input(t, n);
    // Kill after increasing delays (the points differ from run to run, which is
    // the point; the assertions hold whatever they are), then let it finish.
    let mut kills = 0;
    for delay_ms in [30u64, 60, 90, 120, 150, 200, 250, 300, 400, 500, 650, 800] {
        let mut c = sealstream();
        c.args(["--quiet", "agent", "run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status()
                .unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    eprintln!("killed {kills} runs before completion");
    let mut c = sealstream();
    c.args(["agent", "run", "--config"]).arg(&config);
    run_ok(c, "final agent run");
    check_output(t, n);
}

/// A `jsonl` source on standard input (`path: "-"`): read to its end, then
/// the open chunks are sealed and the run ends.
#[test]
fn jsonl_from_standard_input() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = write_config(t, 100);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("path: input.jsonl", "path: \"-\"");
    std::fs::write(&config, text).unwrap();
    write_input(t, 250);
    let mut c = sealstream();
    c.args(["--quiet", "agent", "run", "--config"])
        .arg(&config)
        .stdin(std::fs::File::open(t.join("input.jsonl")).unwrap());
    run_ok(c, "agent run < input.jsonl");
    check_output(t, 250);
}
