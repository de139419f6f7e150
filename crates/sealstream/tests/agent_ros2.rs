//! The live ROS 2 source against a publisher that shares none of the agent's
//! code: eclipse-zenoh (the Zenoh project's Python binding) on rmw_zenoh's
//! key expressions, attachments and liveliness tokens, with payloads and type
//! hashes from rosbags (an independent CDR and ROS 2 type system). The
//! publisher listens; the agent connects to it, as it connects to a robot's
//! `rmw_zenohd` router.
//!
//! - NavSatFix, Imu, Twist and a custom message from a `.msg` file arrive
//!   live and the decrypted packages equal the published messages field by
//!   field, in order, with the publisher's source times.
//! - The agent's node and subscription tokens are seen by a liveliness
//!   subscriber on `@ros2_lv/**`.
//! - The agent SIGKILLed while the publisher goes on, then restarted: the
//!   chain holds one signed gap for exactly the sequence numbers it never
//!   committed, and every other message exactly once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::agent::{chain_dirs, check_datasets, packages, spawn_logged, wait_exit, write_map};
use common::*;
use sealstream_core::gap::{Gap, GapReason};
use sealstream_core::json::{self, canonical, Value};
use sealstream_core::package::DataPackage;
use sealstream_core::utc;
use sealstream_testkit::{free_port, reference_python, wait};

const CUSTOM: &str = "\
# A custom message of the test robot
int32 MAX_LEVEL=100
std_msgs/Header header
string name
float32 level
int32[3] counts
uint8[] raw
bool ok
";

/// One message as the publisher published it.
#[derive(Debug)]
struct Published {
    topic: String,
    sequence: u64,
    gid: String,
    timestamp_ns: u64,
    fields: Value,
}

fn published(out: &Path) -> Vec<Published> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| {
            let v = json::parse(l.as_bytes()).unwrap();
            let o = v.as_object().unwrap();
            let n = |k: &str| o[k].as_number().unwrap().as_u64().unwrap();
            Published {
                topic: o["topic"].as_str().unwrap().to_string(),
                sequence: n("sequence"),
                gid: o["gid"].as_str().unwrap().to_string(),
                timestamp_ns: n("timestamp_ns"),
                fields: o["fields"].clone(),
            }
        })
        .collect()
}

/// The publisher, started on `plan`, appending what it publishes to `out`.
fn start_publisher(dir: &Path, plan: &str, out: &Path) -> std::process::Child {
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, plan).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ros2_publish.py");
    Command::new(reference_python())
        .arg(script)
        .arg(&plan_path)
        .arg(out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("publisher.log")).unwrap())
        .spawn()
        .unwrap()
}

fn publisher_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("publisher.log")).unwrap_or_default()
}

/// The Data Event Map: a ros2 source connecting to `port`.
fn write_config(dir: &Path, port: u16, topics: &str) -> PathBuf {
    let msgs = dir.join("msgs/sealstream_test/msg");
    std::fs::create_dir_all(&msgs).unwrap();
    std::fs::write(msgs.join("Reading.msg"), CUSTOM).unwrap();
    let rest = format!(
        "sources:\n  robot:\n    type: ros2\n    connect: [\"tcp/127.0.0.1:{port}\"]\n    listen: []\n    messages: [msgs]\n\
         topics:\n{topics}destinations:\n  - {{type: directory, path: out}}\n"
    );
    let path = write_map(dir, ("256KiB", 1000), "1h", "", &rest);
    // Chunks cut by age too, so that what is received is committed soon.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("maxAge: 1h", "maxAge: 1s");
    std::fs::write(&path, text).unwrap();
    path
}

fn agent(config: &Path, log: &Path) -> common::agent::Running {
    let mut c = sealstream();
    c.args(["agent", "run", "--config"]).arg(config);
    spawn_logged(c, log)
}

fn stop(agent: &mut common::agent::Running, log: &Path) {
    let ok = Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = wait_exit(agent, log);
    assert!(
        status.success(),
        "agent: {status}\n{}",
        std::fs::read_to_string(log).unwrap()
    );
}

fn text(v: &Value) -> String {
    canonical::python(v)
}

/// Data packages and gap records of a chain, in order.
fn split(chain: &Path) -> (Vec<DataPackage>, Vec<Gap>) {
    let mut data = Vec::new();
    let mut gaps = Vec::new();
    for p in packages(chain) {
        assert!(p.verify().is_valid(), "every package's signature holds");
        match Gap::from_package(&p) {
            Some(g) => gaps.push(g.unwrap()),
            None => data.push(p),
        }
    }
    (data, gaps)
}

#[test]
fn live_messages_arrive_field_by_field_and_the_agent_is_in_the_ros_graph() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let out = d.join("published.jsonl");
    let plan = format!(
        r#"{{"listen": "tcp/127.0.0.1:{port}", "domain": 0,
            "messages": [{{"type": "sealstream_test/msg/Reading", "path": "{}"}}],
            "topics": [{{"topic": "/gps/fix", "type": "sensor_msgs/msg/NavSatFix"}},
                       {{"topic": "/imu", "type": "sensor_msgs/msg/Imu"}},
                       {{"topic": "/cmd_vel", "type": "geometry_msgs/msg/Twist"}},
                       {{"topic": "/robot1/reading", "type": "sealstream_test/msg/Reading"}}],
            "count": 60, "rate": 0, "liveliness_out": "{}"}}"#,
        d.join("msgs/sealstream_test/msg/Reading.msg").display(),
        d.join("liveliness.json").display()
    );
    let config = write_config(
        d,
        port,
        "  - {name: /gps/fix, source: robot, type: sensor_msgs/msg/NavSatFix, qos: {reliability: best-effort, depth: 5}}\n\
         \x20 - {name: /imu, source: robot, type: sensor_msgs/msg/Imu}\n\
         \x20 - {name: cmd_vel, source: robot, match: /cmd_vel}\n\
         \x20 - {name: readings, source: robot, match: \"/+/reading\", type: sealstream_test/msg/Reading}\n",
    );
    let check = sealstream()
        .args(["agent", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let mut publisher = start_publisher(d, &plan, &out);
    let log = d.join("agent.log");
    let mut run = agent(&config, &log);
    let status = publisher.wait().unwrap();
    assert!(
        status.success(),
        "publisher: {}\nagent: {}",
        publisher_log(d),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let sent = published(&out);
    assert_eq!(sent.len(), 240);
    // Everything sent is committed (chunks cut by age, 1 s) before the stop.
    wait::until_or(
        "the agent committing all 240 messages",
        || {
            let s = common::agent::agent_status(&config);
            s.get("topics").and_then(Value::as_array).map(|t| {
                t.iter()
                    .filter_map(|t| t.get("packages").and_then(Value::as_number))
                    .filter_map(|n| n.as_u64())
                    .sum::<u64>()
            }) == Some(240)
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    stop(&mut run, &log);

    // The agent's node and its subscriptions, as rmw_zenoh announces them.
    let tokens = std::fs::read_to_string(d.join("liveliness.json")).unwrap();
    let tokens = json::parse(tokens.as_bytes()).unwrap();
    let tokens: Vec<&str> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let node = tokens
        .iter()
        .find(|t| t.ends_with("/NN/%/%/sealstream_agent"))
        .unwrap_or_else(|| panic!("the agent's node token in {tokens:?}"));
    let zid = node.split('/').nth(2).unwrap();
    let gps = format!(
        "@ros2_lv/0/{zid}/0/1/MS/%/%/sealstream_agent/%gps%fix/sensor_msgs::msg::dds_::NavSatFix_/RIHS01_62223ab3fe210a15976021da7afddc9e200dc9ec75231c1b6a557fc598a65404/2::,5:,:,:,,"
    );
    assert!(tokens.contains(&gps.as_str()), "{gps} in {tokens:?}");
    assert!(
        tokens
            .iter()
            .any(|t| t
                .contains("/MS/%/%/sealstream_agent/%imu/sensor_msgs::msg::dds_::Imu_/RIHS01_")),
        "{tokens:?}"
    );

    // Field by field, in order, per topic.
    let chains = chain_dirs(&d.join("out"));
    let by_topic = [
        ("/gps/fix", "/gps/fix"),
        ("/imu", "/imu"),
        ("cmd_vel", "/cmd_vel"),
        ("readings", "/robot1/reading"),
    ];
    for (name, ros_topic) in by_topic {
        let chain = chains
            .iter()
            .find(|(k, _)| **k == sealstream_agent::pipeline::topic_dir_name(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("a chain for {name} in {chains:?}"));
        let (data, gaps) = split(&chain);
        assert!(gaps.is_empty(), "{name}: no gaps: {gaps:?}");
        let expected: Vec<&Published> = sent.iter().filter(|p| p.topic == ros_topic).collect();
        assert_eq!(data.len(), expected.len(), "{name}");
        for (p, e) in data.iter().zip(&expected) {
            assert_eq!(
                text(&Value::Object(p.payload.clone())),
                text(&e.fields),
                "{name} message {}",
                e.sequence
            );
            assert_eq!(
                p.timestamp,
                utc::format_nanos(e.timestamp_ns, utc::Fraction::Nanos)
            );
        }
        check_datasets(&chain);
    }
}

#[test]
fn a_killed_agent_leaves_one_signed_gap_of_exactly_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let out = d.join("published.jsonl");
    let total = 1500u64;
    let plan = format!(
        r#"{{"listen": "tcp/127.0.0.1:{port}",
            "topics": [{{"topic": "/gps/fix", "type": "sensor_msgs/msg/NavSatFix"}}],
            "count": {total}, "rate": 250}}"#
    );
    let config = write_config(
        d,
        port,
        "  - {name: /gps/fix, source: robot, type: sensor_msgs/msg/NavSatFix}\n",
    );
    // Chunks of 100 messages: the kill finds some committed, some not.
    let text_map = std::fs::read_to_string(&config)
        .unwrap()
        .replace("maxMessages: 1000", "maxMessages: 100");
    std::fs::write(&config, text_map).unwrap();
    let mut publisher = start_publisher(d, &plan, &out);
    let log1 = d.join("agent1.log");
    let mut first = agent(&config, &log1);
    wait::until_or(
        "400 messages published",
        || published(&out).len() >= 400,
        || publisher_log(d),
    );
    first.0.kill().unwrap();
    let status = wait_exit(&mut first, &log1);
    assert!(common::agent::killed(status));
    let killed_at = published(&out).len() as u64;
    // The publisher goes on while the agent is down.
    wait::until_or(
        "300 more messages published while the agent is down",
        || published(&out).len() as u64 >= killed_at + 300,
        || publisher_log(d),
    );
    let log2 = d.join("agent2.log");
    let mut second = agent(&config, &log2);
    let status = publisher.wait().unwrap();
    assert!(status.success(), "publisher: {}", publisher_log(d));
    let sent = published(&out);
    assert_eq!(sent.len() as u64, total);
    let last = sent.last().unwrap();
    let last_fields = text(&last.fields);
    let chain_dir = d
        .join("spool/chains")
        .join(sealstream_agent::pipeline::topic_dir_name("/gps/fix"));
    // The restarted agent has the publisher's last message before it stops.
    wait::until_or(
        "the last message committed",
        || {
            std::fs::read_to_string(d.join("spool/state.json"))
                .is_ok_and(|s| s.contains(&format!("\"sequence\": {total}")))
        },
        || std::fs::read_to_string(&log2).unwrap_or_default(),
    );
    stop(&mut second, &log2);
    let _ = chain_dir;

    let chain = chain_dirs(&d.join("out"))
        .into_values()
        .next()
        .expect("a chain");
    let check = sealstream()
        .args(["verify", "--chunk-dir"])
        .arg(&chain)
        .output()
        .unwrap();
    assert!(check.status.success(), "verify: {}", stderr(&check));
    let (data, gaps) = split(&chain);
    // Which publisher message each package is (its fields are unique).
    let index: BTreeMap<String, &Published> = sent.iter().map(|p| (text(&p.fields), p)).collect();
    let sequences: Vec<u64> = data
        .iter()
        .map(|p| index[&text(&Value::Object(p.payload.clone()))].sequence)
        .collect();
    // One gap for the time the agent was down. On a loaded machine the middleware may
    // also drop a live sample now and then (best-effort delivery); the agent records
    // each such loss as a `NotReceived` gap, which is right, so they are allowed here —
    // but every message must still be accounted for exactly once.
    let offline: Vec<_> = gaps
        .iter()
        .filter(|g| g.reason == GapReason::AgentOffline)
        .collect();
    assert_eq!(offline.len(), 1, "one offline gap: {gaps:?}");
    assert!(
        gaps.iter()
            .all(|g| g.reason == GapReason::AgentOffline || g.reason == GapReason::NotReceived),
        "only the offline gap and dropped samples: {gaps:?}"
    );
    let gap = offline[0];
    assert_eq!(gap.publisher.as_deref(), Some(last.gid.as_str()));
    assert_eq!(gap.source_topic, "/gps/fix");
    let (a, b) = gap.sequences.expect("the sequence range");
    // Every number from 1 to the last exactly once: a package, or in a gap.
    let missing: Vec<(u64, u64)> = gaps
        .iter()
        .map(|g| g.sequences.expect("the sequence range"))
        .collect();
    let expected: Vec<u64> = (1..=total)
        .filter(|n| !missing.iter().any(|(x, y)| x <= n && n <= y))
        .collect();
    assert_eq!(sequences, expected, "gaps {missing:?}");
    assert!(
        a <= killed_at && b > killed_at,
        "the gap spans the kill: {a}..={b}, killed after {killed_at} were published"
    );
    // The gap sits in the chain where the messages are missing, and names
    // the times of the messages around it.
    let after = sent.iter().find(|p| p.sequence == a - 1).unwrap();
    let before = sent.iter().find(|p| p.sequence == b + 1).unwrap();
    assert_eq!(
        gap.after.as_deref(),
        Some(utc::format_nanos(after.timestamp_ns, utc::Fraction::Nanos).as_str())
    );
    assert_eq!(
        gap.before.as_deref(),
        Some(utc::format_nanos(before.timestamp_ns, utc::Fraction::Nanos).as_str())
    );
    assert!(last_fields.contains("latitude"));
    // `agent status` counts it.
    let status = common::agent::agent_status(&config);
    let topic = status["topics"].as_array().unwrap()[0].as_object().unwrap();
    assert_eq!(
        topic["gaps"].as_number().unwrap().as_u64(),
        Some(gaps.len() as u64)
    );
    assert_eq!(
        topic["missing"].as_number().unwrap().as_u64(),
        gaps.iter().map(|g| g.missing()).sum::<Option<u64>>()
    );
}

#[test]
fn a_blocked_pipeline_never_blocks_the_middleware_and_its_drops_are_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let out = d.join("published.jsonl");
    let total = 8000u64;
    let plan = format!(
        r#"{{"listen": "tcp/127.0.0.1:{port}",
            "topics": [{{"topic": "/gps/fix", "type": "sensor_msgs/msg/NavSatFix"}}],
            "count": {total}, "rate": 4000}}"#
    );
    // The only destination is a market nobody runs, and the spool holds one
    // chunk with `whenFull: block`: the pipeline stops taking messages, and
    // the source's queue (8 samples) overflows.
    let market = free_port();
    let rest = format!(
        "sources:\n  robot:\n    type: ros2\n    connect: [\"tcp/127.0.0.1:{port}\"]\n    queue: 8\n\
         topics:\n  - {{name: /gps/fix, source: robot, type: sensor_msgs/msg/NavSatFix}}\n\
         destinations:\n  - {{type: market, url: \"http://127.0.0.1:{market}\"}}\n"
    );
    let config = write_map(
        d,
        ("64KiB", 1000),
        "1h",
        "  maxBytes: 64KiB\n  whenFull: block\n",
        &rest,
    );
    let mut publisher = start_publisher(d, &plan, &out);
    let log = d.join("agent.log");
    let mut run = agent(&config, &log);
    let status = publisher.wait().unwrap();
    assert!(status.success(), "publisher: {}", publisher_log(d));
    assert_eq!(published(&out).len() as u64, total);
    wait::until_or(
        "the spool full",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("spool full")
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    // Stopping seals what the agent holds, the drops included.
    stop(&mut run, &log);
    let sent = published(&out);
    let chain = d
        .join("spool/chains")
        .join(sealstream_agent::pipeline::topic_dir_name("/gps/fix"));
    let (data, gaps) = split(&chain);
    let index: BTreeMap<String, &Published> = sent.iter().map(|p| (text(&p.fields), p)).collect();
    let mut seen: Vec<(u64, u64)> = data
        .iter()
        .map(|p| {
            let s = index[&text(&Value::Object(p.payload.clone()))].sequence;
            (s, s)
        })
        .collect();
    assert!(!gaps.is_empty(), "drops were recorded");
    for g in &gaps {
        assert_eq!(g.reason, GapReason::AgentOverloaded, "{g}");
        assert_eq!(g.publisher.as_deref(), Some(sent[0].gid.as_str()));
        seen.push(g.sequences.expect("numbered"));
    }
    // Every number exactly once, in a package or a gap, in chain order.
    seen.sort_unstable();
    let mut next = 1;
    for (a, b) in seen {
        assert_eq!(a, next, "no hole or overlap before {a}");
        next = b + 1;
    }
    assert_eq!(next, total + 1);
    let missing: u64 = gaps.iter().filter_map(Gap::missing).sum();
    assert_eq!(data.len() as u64 + missing, total);
    // `agent status` tells what the run received and dropped at its queue.
    let status = common::agent::agent_status(&config);
    let live = status["liveThisRun"].as_object().expect("liveThisRun");
    let count = |k: &str| live[k].as_number().unwrap().as_u64().unwrap();
    assert_eq!(count("received"), total);
    assert_eq!(count("droppedAtQueue"), missing);
}
