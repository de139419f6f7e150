//! A 100,000-message ROS 2 bag (written by mcap-ros2-support, not by us)
//! through `sealstream agent run`, then `grant`, `consume` and
//! `package verify`: 100,000 signed packages with the field rules applied.

mod common;

use std::process::Command;

use common::agent::{machine_sections, only_chain};
use common::*;
use sealstream_testkit::reference_python;

#[test]
fn hundred_thousand_message_bag_to_verified_packages() {
    let n: usize = std::env::var("SEALSTREAM_BAG_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/big_bag.py");
    let status = Command::new(reference_python())
        .arg(script)
        .arg(t.join("run.mcap"))
        .arg(n.to_string())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "writing the bag (needs rosbags and mcap-ros2-support: scripts/setup-test-peers)"
    );

    let machine = machine_sections(t);
    std::fs::write(
        t.join("map.yaml"),
        format!(
            "{machine}sources:\n  bag: {{type: mcap, path: run.mcap}}\n\
             topics:\n  - name: /gps/fix\n    source: bag\n    schemaVersion: \"2.0.0\"\n    rules:\n\
             \x20     - {{fieldPath: latitude, action: anonymize, anonymizeStrategy: generalize}}\n\
             \x20     - {{fieldPath: longitude, action: anonymize, anonymizeStrategy: generalize}}\n\
             \x20     - {{fieldPath: position_covariance, action: exclude}}\n\
             destinations:\n  - {{type: directory, path: out}}\n"
        ),
    )
    .unwrap();
    let mut c = sealstream();
    c.args(["--quiet", "agent", "run", "--config"])
        .arg(t.join("map.yaml"));
    run_ok(c, "agent run");

    let chain = only_chain(&t.join("out"));
    let access = t.join("access");
    let mut c = sealstream();
    c.arg("--quiet");
    grant_args(&mut c, &chain, &access, 512_000);
    run_ok(c, "grant");
    let out = t.join("packages.jsonl");
    let mut c = sealstream();
    c.args(["--quiet", "consume", "--chunk-dir"])
        .arg(&chain)
        .arg("--data-dir")
        .arg(&chain);
    c.arg("--access-dir").arg(&access).arg("--output").arg(&out);
    c.args(["--buyer-id", BUYER_ID])
        .arg("--buyer-private-key-file")
        .arg(keyfile("buyer.x25519.sk"));
    run_ok(c, "consume");

    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), n, "one package per message");
    for (i, line) in text.lines().enumerate().step_by(997) {
        let v = sealstream_core::json::parse(line.as_bytes()).unwrap();
        let p = v.as_object().unwrap();
        let payload = p["payload"].as_object().unwrap();
        assert!(
            !payload.contains_key("position_covariance"),
            "line {i}: excluded"
        );
        assert_eq!(
            payload["latitude"].as_object().unwrap()["strategy"],
            "generalize".into(),
            "line {i}"
        );
        assert_eq!(p["schemaVersion"], "2.0.0".into());
        assert!(
            p["timestamp"].as_str().unwrap().starts_with("2026-"),
            "capture time from the bag's log time"
        );
    }
    let mut c = sealstream();
    c.args(["--quiet", "package", "verify"]).arg(&out);
    run_ok(c, "package verify of every package");
}

/// Undecodable CDR, invalid JSON and a payload a rule refuses, in a bag
/// written by third-party tools: each is logged with its topic and position,
/// counted, and skipped; the run goes on and commits everything else.
#[test]
fn bad_messages_are_logged_counted_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/bad_bag.py");
    let status = Command::new(reference_python())
        .arg(script)
        .arg(t.join("bad.mcap"))
        .status()
        .unwrap();
    assert!(status.success(), "writing the bag");
    let machine = machine_sections(t);
    std::fs::write(
        t.join("map.yaml"),
        format!(
            "{machine}sources:\n  bag: {{type: mcap, path: bad.mcap}}\n\
             topics:\n  - name: /gps/fix\n    source: bag\n    rules:\n\
             \x20     - {{fieldPath: latitude, action: anonymize, anonymizeStrategy: generalize}}\n\
             \x20 - name: /events\n    source: bag\n    rules:\n\
             \x20     - {{fieldPath: v, action: anonymize, anonymizeStrategy: generalize}}\n\
             destinations:\n  - {{type: directory, path: out}}\n"
        ),
    )
    .unwrap();
    let mut c = sealstream();
    c.args(["agent", "run", "--config"]).arg(t.join("map.yaml"));
    let out = run_ok(c, "agent run");
    let log = String::from_utf8_lossy(&out.stderr);
    let skips: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("skipped message"))
        .collect();
    assert_eq!(skips.len(), 4, "four bad messages logged:\n{log}");
    assert_eq!(
        skips
            .iter()
            .filter(|l| l.starts_with("topic /gps/fix: "))
            .count(),
        2,
        "undecodable CDR, with the topic:\n{log}"
    );
    assert!(
        skips
            .iter()
            .any(|l| l.starts_with("topic /events: ") && l.contains("JSON payload")),
        "{log}"
    );
    assert!(
        skips
            .iter()
            .any(|l| l.starts_with("topic /events: ") && l.contains(": v: number out of range")),
        "{log}"
    );
    // Each names its position in the bag (its message number).
    for l in &skips {
        let n = l.split("skipped message ").nth(1).unwrap();
        assert!(
            n.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<u64>()
                .is_ok(),
            "{l}"
        );
    }

    let mut c = sealstream();
    c.args(["agent", "status", "--json", "--config"])
        .arg(t.join("map.yaml"));
    let s = sealstream_core::json::parse(&run_ok(c, "agent status").stdout).unwrap();
    let counts: Vec<(String, u64, u64)> = s.as_object().unwrap()["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let t = t.as_object().unwrap();
            let n = |k: &str| t[k].as_number().unwrap().as_u64().unwrap();
            (
                t["topic"].as_str().unwrap().to_string(),
                n("packages"),
                n("skipped"),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("/gps/fix".to_string(), 18, 2),
            ("/events".to_string(), 8, 2)
        ]
    );
}
