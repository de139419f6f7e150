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
    agent_status, chain_dirs, check_jsonl_output as check_output, chunk_plaintexts,
    machine_sections, run_agent_ok, write_jsonl_input as write_input, JsonlMap,
};
use common::*;
use sealstream_core::json;
use sealstream_core::package::DataPackage;

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
/// the open chunks are sealed and the run ends. Standard input is not
/// replayed: a second run's lines are new, and all of them are sealed
/// after the first run's (they once were skipped as "already committed",
/// their line numbers being the first run's).
#[test]
fn jsonl_from_standard_input() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = write_config(t, 100);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("path: input.jsonl", "path: \"-\"");
    std::fs::write(&config, text).unwrap();
    write_input(t, 500);
    let lines: Vec<String> = std::fs::read_to_string(t.join("input.jsonl"))
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    // 501 lines: message 10 is followed by a line that is not JSON.
    let (first, second) = lines.split_at(251);
    for (i, part) in [first, second].into_iter().enumerate() {
        let path = t.join(format!("part{i}.jsonl"));
        std::fs::write(&path, part.concat()).unwrap();
        let mut c = sealstream();
        c.args(["--quiet", "agent", "run", "--config"])
            .arg(&config)
            .stdin(std::fs::File::open(&path).unwrap());
        run_ok(c, &format!("agent run < part{i}.jsonl"));
    }
    check_output(t, 500);
}

/// Issue 14, item 18: `chunking.maxBytes` bounds the plaintext of a chunk,
/// the signed packages as they are in it, whatever the field rules make of
/// a message (ten hashed fields turn a message of about 100 bytes into a
/// package of about 1.4 KB). A package larger than maxBytes goes alone into
/// a chunk of its own. Before, the raw message plus 400 bytes was counted,
/// and chunks held several times maxBytes.
#[test]
fn chunk_plaintext_stays_within_chunking_max_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let machine = machine_sections(t);
    let rules: String = (0..10)
        .map(|k| {
            format!("      - {{fieldPath: f{k}, action: anonymize, anonymizeStrategy: hash}}\n")
        })
        .collect();
    let config = t.join("map.yaml");
    std::fs::write(
        &config,
        format!(
            "{machine}chunking:\n  maxBytes: 16KiB\n  maxMessages: 1000\n  maxAge: 1h\n\
             spool:\n  dir: spool\nsources:\n  lines: {{type: jsonl, path: input.jsonl}}\n\
             topics:\n  - name: /t\n    source: lines\n    rules:\n{rules}\
             destinations:\n  - {{type: directory, path: out}}\n"
        ),
    )
    .unwrap();
    let n = 300;
    let big = 150;
    let mut input = String::new();
    for i in 0..n {
        let fields: String = (0..10).map(|k| format!(",\"f{k}\":{i}")).collect();
        let blob = if i == big {
            format!(",\"blob\":\"{}\"", "x".repeat(20_000))
        } else {
            String::new()
        };
        input.push_str(&format!(
            "{{\"topic\":\"/t\",\"capturedAt\":\"2026-11-21T10:00:00Z\",\"fields\":{{\"i\":{i}{fields}{blob}}}}}\n"
        ));
    }
    std::fs::write(t.join("input.jsonl"), input).unwrap();
    let mut c = sealstream();
    c.args(["--quiet", "agent", "run", "--config"]).arg(&config);
    run_ok(c, "agent run");

    let (_, chain) = chain_dirs(&t.join("out")).into_iter().next().unwrap();
    let mut v = sealstream();
    v.args(["verify", "--chunk-dir"]).arg(&chain);
    run_ok(v, "verify");
    let max = 16 * 1024;
    let mut ids = Vec::new();
    let mut total = 0;
    let chunks = chunk_plaintexts(&chain);
    for (index, plaintext) in &chunks {
        total += plaintext.len();
        let lines: Vec<&[u8]> = plaintext
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let these: Vec<u64> = lines
            .iter()
            .map(|l| {
                let p = DataPackage::from_json(&json::parse(l).unwrap()).unwrap();
                p.payload["i"].as_number().unwrap().as_u64().unwrap()
            })
            .collect();
        if these.contains(&big) {
            assert_eq!(these, [big], "chunk {index}: the large package is alone");
        } else {
            assert!(
                plaintext.len() <= max,
                "chunk {index}: {} plaintext bytes, maxBytes {max}",
                plaintext.len()
            );
        }
        ids.extend(these);
    }
    assert_eq!(
        ids,
        (0..n).collect::<Vec<_>>(),
        "every message once, in order"
    );
    // Bounded, not needlessly small: the chunks besides the large one are
    // filled to more than half on average.
    assert!(
        chunks.len() <= total / (max / 2) + 2,
        "{} chunks for {total} bytes",
        chunks.len()
    );
}

/// The delivery state of the single directory destination, per topic, as
/// `agent status` shows it: (destination id, chunks delivered, chunks).
fn delivered_per_topic(config: &Path) -> Vec<(Vec<String>, u64, u64)> {
    let s = agent_status(config);
    s["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let t = t.as_object().unwrap();
            let d = t["deliveredChunks"].as_object().unwrap();
            let n = |v: &json::Value| v.as_number().unwrap().as_u64().unwrap();
            (
                d.keys().cloned().collect(),
                d.values().map(n).min().unwrap_or(0),
                n(&t["chunks"]),
            )
        })
        .collect()
}

/// Issue 14, item 20: a destination is known by its canonical target, not
/// by how the path to the Data Event Map was spelled. Run with the map's
/// absolute path, then with a relative one: what was delivered is still
/// known as delivered, and the run ends. Before, the relative spelling was
/// a new destination that had received nothing, and the run waited forever
/// for chunks that had left the spool.
#[test]
fn destination_identity_ignores_the_config_path_spelling() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = write_config(t, 100);
    write_input(t, 300);
    let mut c = sealstream();
    c.current_dir("/")
        .args(["agent", "run", "--config"])
        .arg(&config);
    run_agent_ok(c, &t.join("run1.log"));

    let relative = |extra: &[&str]| {
        let mut c = sealstream();
        c.current_dir(t).args(["agent", "run"]).args(extra);
        c.args(["--config", "map.yaml"]);
        c
    };
    run_agent_ok(relative(&["--no-wait"]), &t.join("run2.log"));
    for (ids, delivered, chunks) in delivered_per_topic(&config) {
        assert_eq!(ids.len(), 1, "one destination: {ids:?}");
        assert_eq!(delivered, chunks, "{ids:?}: everything delivered");
    }
    run_agent_ok(relative(&[]), &t.join("run3.log"));
    check_output(t, 300);
}

/// Issue 14, item 20: a spool whose `delivery.json` names a destination the
/// way earlier versions did (`directory ./out`, the path as resolved from
/// a relative map path) keeps its delivery state under the canonical name.
#[test]
fn delivery_recorded_under_an_old_destination_name_still_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = write_config(t, 100);
    write_input(t, 300);
    let mut c = sealstream();
    c.current_dir(t)
        .args(["agent", "run", "--config", "map.yaml"]);
    run_agent_ok(c, &t.join("run1.log"));
    // Rename the destination in delivery.json to the old spelling.
    let path = t.join("spool/delivery.json");
    let delivery = json::parse(&std::fs::read(&path).unwrap()).unwrap();
    let dests = delivery.as_object().unwrap()["destinations"]
        .as_object()
        .unwrap();
    assert_eq!(dests.len(), 1, "{dests:?}");
    let mut renamed = json::Map::new();
    renamed.insert("directory ./out".to_string(), dests[0].clone());
    let mut top = json::Map::new();
    top.insert("destinations".to_string(), json::Value::Object(renamed));
    std::fs::write(
        &path,
        json::write::to_python_pretty(&json::Value::Object(top)),
    )
    .unwrap();

    let absolute = |extra: &[&str]| {
        let mut c = sealstream();
        c.current_dir("/").args(["agent", "run"]).args(extra);
        c.arg("--config").arg(&config);
        c
    };
    run_agent_ok(absolute(&["--no-wait"]), &t.join("run2.log"));
    let log = std::fs::read_to_string(t.join("run2.log")).unwrap();
    assert!(
        log.contains("what was recorded as delivered to \"directory ./out\" is now recorded for destination directory /"),
        "{log}"
    );
    for (ids, delivered, chunks) in delivered_per_topic(&config) {
        assert_eq!(ids.len(), 1, "one destination: {ids:?}");
        assert!(!ids[0].contains("./"), "canonical name: {ids:?}");
        assert_eq!(delivered, chunks, "{ids:?}: everything delivered");
    }
    run_agent_ok(absolute(&[]), &t.join("run3.log"));
    check_output(t, 300);
}
