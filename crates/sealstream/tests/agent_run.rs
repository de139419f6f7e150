//! `sealstream agent run` end to end: JSON lines in, one continuous signed
//! chain per topic out; and crash safety — SIGKILL at many points while it
//! ingests, restart each time, and every message appears exactly once, with
//! sequence numbers without gaps or repeats, in chains that verify.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::agent::{chain_dirs, check_datasets, machine_sections, packages};
use common::*;
use sealstream_core::json;
use sealstream_core::layout::list_chain;

fn write_config(dir: &Path, max_messages: u64) -> PathBuf {
    let machine = machine_sections(dir);
    let config = format!(
        r#"{machine}chunking:
  maxBytes: 1MiB
  maxMessages: {max_messages}
  maxAge: 1h
datasets:
  window: 1h
spool:
  dir: spool
sources:
  lines: {{type: jsonl, path: input.jsonl}}
topics:
  - name: /gps
    source: lines
    rules:
      - {{fieldPath: lat, action: anonymize, anonymizeStrategy: generalize}}
      - {{fieldPath: secret, action: exclude}}
      - {{fieldPath: note, action: anonymize, anonymizeStrategy: hash}}
  - name: /imu
    source: lines
destinations:
  - {{type: directory, path: out}}
"#
    );
    let path = dir.join("map.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

fn write_input(dir: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        let topic = if i % 3 == 0 { "/imu" } else { "/gps" };
        text.push_str(&format!(
            "{{\"topic\":\"{topic}\",\"capturedAt\":\"2026-11-21T10:00:00.{i:06}Z\",\"fields\":{{\"i\":{i},\"lat\":52.5{i},\"secret\":\"s{i}\",\"note\":\"n{i}\"}}}}\n"
        ));
        if i == 10 {
            text.push_str("this line is not JSON\n");
        }
    }
    std::fs::write(dir.join("input.jsonl"), text).unwrap();
}

fn check_output(dir: &Path, n: usize) {
    // Every message exactly once, across both topics; sequence numbers 0..n without gaps.
    let mut seen = BTreeSet::new();
    let mut sequences = Vec::new();
    for (name, chain) in chain_dirs(&dir.join("out")) {
        let mut v = sealstream();
        v.args(["verify", "--chunk-dir"]).arg(&chain);
        run_ok(v, &format!("verify {name}"));
        // The run ended with every source read: its dataset windows closed,
        // and their manifests cover the whole chain.
        assert_eq!(
            check_datasets(&chain),
            list_chain(&chain).unwrap().len() as u64,
            "{name}: dataset manifests cover the chain"
        );
        for p in packages(&chain) {
            assert!(p.verify().is_valid(), "{name}: package signature");
            let i = p.payload["i"].as_number().unwrap().as_u64().unwrap();
            assert!(seen.insert(i), "{name}: message {i} appears twice");
            if name.starts_with("gps") {
                assert!(
                    !p.payload.contains_key("secret"),
                    "{name}: excluded field present"
                );
                assert!(
                    p.payload["lat"].as_object().is_some(),
                    "{name}: rules applied"
                );
            } else {
                assert!(
                    p.payload.contains_key("secret"),
                    "{name}: no rules, all fields"
                );
            }
            sequences.push(p.sequence_number.as_u64().unwrap());
        }
    }
    assert_eq!(seen.len(), n, "every message once");
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        (0..n as u64).collect::<Vec<_>>(),
        "sequence numbers without gaps or repeats"
    );
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
