//! `scripts/demo`, the README's first command, run as a newcomer runs it (with
//! the binary Cargo built for the tests instead of a release build): the whole
//! market flow with the CLI only — invoice payment, and with `--evm` an
//! on-chain payment on a local anvil, then in both a live subscription
//! followed while the robot streams, revoked, and its cut-off notice — and
//! the local-only flow.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use sealstream_core::json::{self, Value};
use sealstream_testkit::anvil::anvil_binary;
use sealstream_testkit::binary::sealstream_binary;

fn demo(args: &[&str], out: &Path) -> Output {
    let output = Command::new(repo_root().join("scripts/demo"))
        .args(args)
        .arg(out)
        .env("SEALSTREAM_BIN", sealstream_binary())
        .env("SEALSTREAM_ANVIL", anvil_binary())
        .env_remove("SEALSTREAM_SERVER")
        .env_remove("DEMO_LIVE_FIXES")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/demo {args:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The servers the demo started (the market, anvil) are gone once it has
/// exited: nothing listens on the ports it printed.
fn assert_stopped(output: &Output) {
    let text = String::from_utf8_lossy(&output.stdout);
    let mut ports = 0;
    for line in text.lines() {
        for marker in ["listening on http://", "anvil on http://"] {
            if let Some(rest) = line.trim().strip_prefix(marker) {
                let addr = rest
                    .split(|c: char| c.is_whitespace() || c == ';')
                    .next()
                    .unwrap();
                assert!(
                    std::net::TcpStream::connect(addr).is_err(),
                    "{addr} still answers after scripts/demo exited"
                );
                ports += 1;
            }
        }
    }
    assert!(ports > 0, "no server address in the demo's output:\n{text}");
}

/// Every step the demo promises is shown, in order.
fn assert_steps(output: &Output, steps: &[&str]) {
    let text = String::from_utf8_lossy(&output.stdout);
    let mut from = 0;
    for step in steps {
        match text[from..].find(step) {
            Some(at) => from += at + step.len(),
            None => panic!("scripts/demo did not show {step:?} (in order):\n{text}"),
        }
    }
}

const MARKET_STEPS: &[&str] = &[
    "keys for the three roles",
    "the market server on embedded defaults",
    "the owner registers it",
    "the robot's agent",
    "makes a signed dataset",
    "a buyer searches the catalog and checks a sample",
    "the buyer orders",
    "grant daemon",
    "the buyer downloads and consumes",
    "verifies the market's signed license receipt",
    "live GPS topic /gps/live by subscription",
    "the buyer subscribes",
    "the buyer follows the subscription while the robot's agent streams 1200 live GPS fixes",
    "the follower holds all 1200 fixes",
    "peer to peer: a private DHT's bootstrap node",
    "p2p follower: sub_",
    "the peer-to-peer follower holds the same 1200 packages, byte for byte",
    "the seller revokes the subscription",
    "invalid (revoked): revoked: demo over",
    "p2p follower: sub_",
    "1200 live /gps/live packages followed",
    "the buyer verifies the market's signed cut-off notice",
    "== done in",
];

/// The owner's field rules (`demo/gps-fix.rules.json`, and the same for
/// `/gps/live`) held on the fix `line`, a package as JSON: the frame id
/// hashed, `status.service` dropped, the covariance encrypted.
fn assert_owner_rules(line: &str) {
    assert!(
        line.contains("\"frame_id\":{\"__anonymized\":true"),
        "{line}"
    );
    assert!(!line.contains("\"service\""), "{line}");
    assert!(
        line.contains("\"position_covariance\":{\"__encrypted\":true"),
        "{line}"
    );
}

fn parse_file(path: &Path) -> Value {
    json::parse(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

fn text_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {path:?}"))
}

/// The demo's live subscription (`DIR/live.jsonl`, `DIR/cutoff.json`): the
/// buyer's follower wrote each of the 1,200 fixes the robot streamed on
/// `/gps/live` once, in order, each a package the robot signed under the
/// owner's field rules, with the robot's sequence numbers going on from the
/// bag's 19,800 messages; the market's cut-off notice verifies against the
/// key that signed the license receipt, says the seller revoked this buyer's
/// subscription of that topic, and its last chunk entitled is the last one
/// the follower wrote.
fn assert_live_subscription(out: &Path) {
    let live = out.join("live.jsonl");
    // Followed peer to peer too: the same packages, byte for byte.
    assert!(
        std::fs::read(&live).unwrap() == std::fs::read(out.join("live-p2p.jsonl")).unwrap(),
        "live-p2p.jsonl differs from live.jsonl"
    );
    let mut verify = sealstream();
    verify.args(["--quiet", "package", "verify"]).arg(&live);
    run_ok(verify, "package verify live.jsonl");
    let machine = std::fs::read_to_string(out.join("robot/machine.did")).unwrap();
    let text = std::fs::read_to_string(&live).unwrap();
    let sequences: Vec<u64> = text
        .lines()
        .map(|line| {
            let package = json::parse(line.as_bytes()).unwrap();
            assert_eq!(text_at(&package, &["did"]), machine.trim(), "{line}");
            assert_owner_rules(line);
            package
                .get("sequenceNumber")
                .and_then(Value::as_u64)
                .unwrap()
        })
        .collect();
    assert_eq!(sequences, (19_800..21_000).collect::<Vec<u64>>());

    let receipt = parse_file(&out.join("receipt.json"));
    let market_key = text_at(&receipt, &["signature", "publicKeyHex"]);
    let mut verify = sealstream();
    verify
        .args(["receipt", "verify"])
        .arg(out.join("cutoff.json"))
        .args(["--server-key", market_key]);
    run_ok(verify, "receipt verify cutoff.json");
    let notice = parse_file(&out.join("cutoff.json"));
    assert_eq!(
        text_at(&notice, &["schemaVersion"]),
        "sealstream.subscription-cutoff.v1"
    );
    let cutoff = notice.get("cutoff").unwrap();
    assert_eq!(text_at(cutoff, &["reason"]), "revoked");
    assert_eq!(text_at(cutoff, &["detail"]), "demo over");
    assert_eq!(text_at(cutoff, &["topic"]), "/gps/live");
    assert_eq!(text_at(cutoff, &["machineDid"]), machine.trim());
    let buyer = std::fs::read_to_string(out.join("buyer/buyer.did")).unwrap();
    assert_eq!(text_at(cutoff, &["buyerDid"]), buyer.trim());
    let state = std::fs::read_to_string(out.join("live.jsonl.follow-state")).unwrap();
    let recorded = |key: &str| -> u64 {
        state
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the follow state:\n{state}"))
    };
    // Every chunk of the topic from the first: it had none when the
    // subscription began.
    assert_eq!(recorded("first"), 0, "{state}");
    assert!(recorded("index") >= 1, "one chunk only:\n{state}");
    assert_eq!(
        cutoff.get("lastIndexEntitled").and_then(Value::as_u64),
        Some(recorded("index")),
        "{state}"
    );
}

#[test]
fn the_demo_runs_the_whole_market_flow_with_an_invoice() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo-out");
    let output = demo(&[], &out);
    assert_steps(&output, MARKET_STEPS);
    assert_stopped(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("invoice rail"));
    // The buyer's bytes are the robot's signed packages: 18,000 fixes.
    let received = std::fs::read_to_string(out.join("received.jsonl")).unwrap();
    assert_eq!(received.lines().count(), 18_000);
    for line in received.lines() {
        assert_owner_rules(line);
    }
    assert_live_subscription(&out);
    // The server was stopped with the script.
    let log = std::fs::read_to_string(out.join("market.log")).unwrap();
    assert!(!log.is_empty());
}

/// With `--evm --ros2`: paid on chain, and the live fixes published on ROS 2
/// (rmw_zenoh) by a GPS driver node, which the agent joins as a node.
#[test]
fn the_demo_pays_on_chain_with_evm_and_streams_ros2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo-out");
    let output = demo(&["--evm", "--ros2"], &out);
    assert_steps(&output, MARKET_STEPS);
    assert_stopped(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("the buyer pays on chain"));
    assert!(
        stdout.contains("publishes sensor_msgs/msg/NavSatFix on /gps/live"),
        "{stdout}"
    );
    assert!(
        stdout.contains("agent: source robot: in the ROS graph as node /sealstream_agent"),
        "{stdout}"
    );
    assert!(stdout.contains(": 0 gap records"), "{stdout}");
    let received = std::fs::read_to_string(out.join("received.jsonl")).unwrap();
    assert_eq!(received.lines().count(), 18_000);
    assert_live_subscription(&out);
}

#[test]
fn the_local_demo_round_trips_a_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo-out");
    let output = Command::new(repo_root().join("scripts/demo"))
        .args(["--local"])
        .arg(&out)
        .env("SEALSTREAM_BIN", sealstream_binary())
        .env("DEMO_BYTES", "2000000")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/demo --local: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_steps(
        &output,
        &[
            "keys",
            "sign every reading",
            "publish the packages",
            "verify the chain",
            "grant the buyer",
            "consume as the buyer",
            "the buyer received exactly what was published",
        ],
    );
    assert_eq!(
        std::fs::read(out.join("packages.jsonl")).unwrap(),
        std::fs::read(out.join("received.jsonl")).unwrap()
    );
}

#[test]
fn the_demo_refuses_an_unknown_option() {
    let output = Command::new(repo_root().join("scripts/demo"))
        .arg("--nope")
        .env("SEALSTREAM_BIN", sealstream_binary())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown option --nope"));
}
