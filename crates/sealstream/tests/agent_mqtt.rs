//! The MQTT source against a real broker (Debian's mosquitto, started here)
//! fed by a third-party publisher (paho-mqtt from PyPI): wildcard
//! subscriptions, JSON payloads, bad payloads skipped and counted, a broker
//! restart (reconnection, subscriptions renewed), an agent SIGKILLed right
//! after a burst and messages published while it is down (the persistent
//! session keeps them), and SIGTERM sealing the open chunks. Every message
//! must arrive exactly once, with the field rules applied, sequence numbers
//! without gaps, in chains that verify, with dataset manifests per window.
//! Over `mqtts`, the agent verifies the broker's certificate (rustls on
//! aws-lc-rs) and refuses one it cannot trust.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::agent::{chain_dirs, check_datasets, packages, write_map};
use common::*;
use sealstream_core::json::{self, Value};
use sealstream_testkit::mosquitto::{Authority, Broker};
use sealstream_testkit::{reference_python, wait};

/// A running `sealstream agent run`, its stderr collected.
struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        Agent::spawn(config, None)
    }

    /// Started with `ca` as the only trusted certificate authority (the
    /// platform's store is read from `SSL_CERT_FILE` when it is set).
    fn start_trusting(config: &Path, ca: &Path) -> Agent {
        Agent::spawn(config, Some(ca))
    }

    fn spawn(config: &Path, ca: Option<&Path>) -> Agent {
        let mut c = sealstream();
        c.args(["agent", "run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(ca) = ca {
            c.env("SSL_CERT_FILE", ca).env_remove("SSL_CERT_DIR");
        }
        let mut child = c.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Agent { child, log }
    }

    fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn wait_log(&self, needle: &str, times: usize) {
        self.wait(&format!("{times}× {needle:?} in the agent's log"), || {
            self.count(needle) >= times
        });
    }

    /// Wait for `ready`; on timeout, fail showing the agent's log.
    fn wait(&self, what: &str, ready: impl FnMut() -> bool) {
        wait::until_or(what, ready, || {
            format!("agent log:\n{}", self.log.lock().unwrap().join("\n"))
        });
    }

    fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent's Data Event Map in `dir`, its MQTT source at `url`.
fn write_config(dir: &Path, url: &str) -> PathBuf {
    let rest = format!(
        r#"sources:
  broker: {{type: mqtt, url: "{url}", clientId: sealstream-test-robot, qos: 1}}
topics:
  - name: telemetry
    source: broker
    match: "factory/+/telemetry/#"
    rules:
      - {{fieldPath: lat, action: anonymize, anonymizeStrategy: generalize}}
      - {{fieldPath: secret, action: exclude}}
      - {{fieldPath: operator, action: anonymize, anonymizeStrategy: hash}}
  - name: alerts
    source: broker
    match: factory/alerts
destinations:
  - {{type: directory, path: out}}
"#
    );
    write_map(dir, ("1MiB", 50), "1s", "", &rest)
}

/// Messages `from..from+telemetry` on telemetry topics and `alerts` more on
/// the alerts topic (ids continue), plus the extra raw payloads given.
struct Batch {
    lines: Vec<String>,
}

impl Batch {
    fn new(first_id: u64, telemetry: u64, alerts: u64) -> Batch {
        let mut lines = Vec::new();
        for i in first_id..first_id + telemetry {
            let payload = format!(
                r#"{{"i":{i},"lat":52.{i:04},"secret":"s{i}","operator":"op{i}","temp":{}}}"#,
                20 + i % 7
            );
            let topic = format!("factory/line{}/telemetry/temp", i % 3);
            lines.push(line(&topic, &payload));
        }
        for i in first_id + telemetry..first_id + telemetry + alerts {
            lines.push(line(
                "factory/alerts",
                &format!(r#"{{"i":{i},"level":"warn"}}"#),
            ));
        }
        Batch { lines }
    }

    fn raw(mut self, topic: &str, payload: &str) -> Batch {
        self.lines.push(line(topic, payload));
        self
    }

    fn publish(&self, dir: &Path, port: u16) {
        let file = dir.join("messages.jsonl");
        std::fs::write(&file, self.lines.join("\n") + "\n").unwrap();
        let python = reference_python();
        let mut c = Command::new(python);
        c.arg(repo_root().join("crates/sealstream/tests/support/mqtt_publish.py"))
            .arg("127.0.0.1")
            .arg(port.to_string())
            .arg(&file);
        run_ok(c, "paho-mqtt publisher");
    }
}

fn line(topic: &str, payload: &str) -> String {
    let mut o = json::Map::new();
    o.insert("topic".into(), topic.into());
    o.insert("payload".into(), payload.into());
    json::write::to_python_compact(&Value::Object(o))
}

fn status(config: &Path) -> Value {
    let mut c = sealstream();
    c.args(["agent", "status", "--json", "--config"])
        .arg(config);
    json::parse(&run_ok(c, "agent status").stdout).unwrap()
}

/// (committed packages, skipped) over all topics.
fn committed(config: &Path) -> (u64, u64) {
    let s = status(config);
    let mut sum = (0, 0);
    for t in s.as_object().unwrap()["topics"].as_array().unwrap() {
        let t = t.as_object().unwrap();
        sum.0 += t["packages"].as_number().unwrap().as_u64().unwrap();
        sum.1 += t["skipped"].as_number().unwrap().as_u64().unwrap();
    }
    sum
}

/// Messages in the source's journal (received and acknowledged).
fn journaled(dir: &Path) -> usize {
    let mut n = 0;
    for sub in std::fs::read_dir(dir.join("spool/journal"))
        .into_iter()
        .flatten()
    {
        for seg in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let text = std::fs::read_to_string(seg.unwrap().path()).unwrap();
            n += text
                .lines()
                .filter_map(|l| json::parse(l.as_bytes()).ok())
                .count();
        }
    }
    n
}

#[test]
fn mqtt_through_broker_restart_agent_crash_and_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut broker = Broker::start(t);
    let config = write_config(t, &format!("mqtt://127.0.0.1:{}", broker.port));
    let mut agent = Agent::start(&config);
    agent.wait_log("subscribed to", 1);

    // 1. Wildcards, two topics, bad payloads skipped and counted; a topic
    //    nobody subscribed to never arrives. 100 + 50 fill three chunks.
    Batch::new(0, 100, 50)
        .raw("factory/line9/telemetry/x", "not JSON")
        .raw("factory/line9/telemetry/y", "[1,2]")
        .raw("warehouse/other", r#"{"i":999999}"#)
        .publish(t, broker.port);
    agent.wait("150 packages and 2 skipped", || {
        committed(&config) == (150, 2)
    });

    // 2. The broker restarts without persistence: the agent reconnects and
    //    subscribes again.
    broker.restart();
    agent.wait_log("subscribed to", 2);
    Batch::new(150, 50, 50).publish(t, broker.port);
    agent.wait("250 packages", || committed(&config).0 == 250);

    // 3. SIGKILL right after a burst (wherever the agent is with it), then
    //    more messages while it is down: the broker keeps them for its session.
    Batch::new(250, 100, 50).publish(t, broker.port);
    agent.signal("-KILL");
    Batch::new(400, 50, 50).publish(t, broker.port);
    let mut agent = Agent::start(&config);
    agent.wait_log("session resumed", 1);
    agent.wait("500 packages", || committed(&config).0 == 500);

    // 4. Open chunks (7 + 3 packages, below maxMessages, maxAge 1h) are
    //    sealed on SIGTERM.
    Batch::new(500, 7, 3).publish(t, broker.port);
    agent.wait("all 512 messages journaled", || journaled(t) >= 512);
    let status_code = agent.signal("-TERM");
    assert!(
        status_code.success(),
        "SIGTERM exits cleanly: {status_code}"
    );
    assert_eq!(
        committed(&config),
        (510, 2),
        "open chunks sealed on SIGTERM"
    );
    let s = status(&config);
    assert_eq!(
        s.as_object().unwrap()["lastSequence"]
            .as_number()
            .unwrap()
            .as_u64(),
        Some(509)
    );

    // Every message exactly once, rules applied, sequence numbers 0..510,
    // chains that verify, dataset manifests over a prefix of each chain.
    let mut seen = BTreeSet::new();
    let mut sequences = Vec::new();
    for (name, chain) in chain_dirs(&t.join("out")) {
        let mut v = sealstream();
        v.args(["verify", "--chunk-dir"]).arg(&chain);
        run_ok(v, &format!("verify {name}"));
        check_datasets(&chain);
        for p in packages(&chain) {
            assert!(p.verify().is_valid(), "{name}: package signature");
            let i = p.payload["i"].as_number().unwrap().as_u64().unwrap();
            assert!(seen.insert(i), "{name}: message {i} twice");
            if name.starts_with("telemetry") {
                assert!(!p.payload.contains_key("secret"), "excluded field present");
                assert!(p.payload["lat"].as_object().is_some(), "lat generalized");
                assert_ne!(
                    p.payload["operator"].as_str(),
                    Some(format!("op{i}").as_str()),
                    "operator hashed"
                );
            } else {
                assert_eq!(p.payload["level"].as_str(), Some("warn"));
            }
            sequences.push(p.sequence_number.as_u64().unwrap());
        }
    }
    assert_eq!(seen, (0..510).collect(), "every message exactly once");
    sequences.sort_unstable();
    assert_eq!(
        sequences,
        (0..510).collect::<Vec<u64>>(),
        "no gaps or repeats"
    );
}

#[test]
fn mqtts_verifies_the_broker_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let broker = Broker::start_with_tls(t);
    let tls = broker.tls.as_ref().unwrap();
    let config = write_config(t, &format!("mqtts://localhost:{}", tls.port));

    // A broker whose certificate comes from an authority the agent does not
    // trust: refused, and retried.
    let stranger = Authority::new(t, "stranger-ca");
    let agent = Agent::start_trusting(&config, &stranger.cert);
    agent.wait_log("invalid peer certificate", 1);
    assert_eq!(agent.count("connected to"), 0);
    drop(agent);

    // Trusted: connected, subscribed, and the messages (published on the
    // broker's plain listener) arrive.
    let mut agent = Agent::start_trusting(&config, &tls.authority.cert);
    agent.wait_log("subscribed to", 1);
    Batch::new(0, 50, 0).publish(t, broker.port);
    agent.wait("50 packages", || committed(&config).0 == 50);
    let status_code = agent.signal("-TERM");
    assert!(
        status_code.success(),
        "SIGTERM exits cleanly: {status_code}"
    );
    assert_eq!(committed(&config), (50, 0));
}
