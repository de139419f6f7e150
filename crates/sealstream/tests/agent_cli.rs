//! `sealstream agent check` on the documented Data Event Map (as shipped,
//! with its keys in docs/examples/keys), and on a broken one; `sealstream
//! agent init` writing maps that pass `agent check` and run.

mod common;

use std::path::Path;

use common::*;

fn setup(dir: &Path) {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let example = repo_root().join("docs/examples/data-event-map.yaml");
    std::fs::copy(example, dir.join("map.yaml")).unwrap();
    std::fs::write(
        dir.join("keys/machine.secp256k1.sk"),
        "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761",
    )
    .unwrap();
    std::fs::copy(
        keyfile("chain.ed25519.sk"),
        dir.join("keys/chain.ed25519.sk"),
    )
    .unwrap();
    std::fs::write(
        dir.join("keys/field.aes256.key"),
        "c84fcf398735bf46fad738fb45ffa606d05e9f01c5886c959abf79ef4e10d01c",
    )
    .unwrap();
}

/// `agent check --json` of `config`, asserting it is valid.
fn check_valid(config: &Path) -> sealstream_core::json::Value {
    let mut c = sealstream();
    c.args(["agent", "check", "--json", "--config"]).arg(config);
    let out = run_ok(c, "agent check");
    let v = sealstream_core::json::parse(&out.stdout).unwrap();
    assert_eq!(
        v.as_object().unwrap()["valid"],
        sealstream_core::json::Value::Bool(true)
    );
    v
}

#[test]
fn the_documented_example_is_valid_as_shipped() {
    check_valid(&repo_root().join("docs/examples/data-event-map.yaml"));
}

#[test]
fn the_documented_example_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    check_valid(&tmp.path().join("map.yaml"));
}

#[test]
fn every_problem_is_reported_with_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let text = std::fs::read_to_string(tmp.path().join("map.yaml")).unwrap();
    let broken = text
        .replacen(
            "anonymizeStrategy: generalize",
            "anonymizeStrateg: generalize",
            1,
        )
        .replacen("maxAge: 5s", "maxAge: 5", 1);
    std::fs::write(tmp.path().join("bad.yaml"), broken).unwrap();
    let mut c = sealstream();
    c.current_dir(tmp.path())
        .args(["agent", "check", "--config", "bad.yaml"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml: line "), "{stderr}");
    assert!(
        stderr.contains(": chunking.maxAge: expected a duration"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains(": topics[0].rules[0].anonymizeStrategy: required when action is anonymize"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean anonymizeStrategy?"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: bad.yaml: "),
        "{stderr}"
    );
}

fn generate_keys(dir: &Path, role: &str) {
    let mut c = sealstream();
    c.args([
        "--quiet",
        "keys",
        "generate",
        "--role",
        role,
        "--output-dir",
    ])
    .arg(dir);
    run_ok(c, "keys generate");
}

fn init(cwd: &Path, args: &[&str]) -> std::process::Output {
    sealstream()
        .current_dir(cwd)
        .args(["agent", "init"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn agent_init_writes_a_map_that_checks_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    generate_keys(&t.join("keys"), "machine");
    std::fs::create_dir_all(t.join("data")).unwrap();
    let mut input = String::new();
    for i in 0..50 {
        let topic = if i % 2 == 0 { "/gps" } else { "/imu" };
        input.push_str(&format!(
            "{{\"topic\":\"{topic}\",\"capturedAt\":\"2026-11-21T10:00:{:02}Z\",\"fields\":{{\"i\":{i}}}}}\n",
            i % 60
        ));
    }
    std::fs::write(t.join("data/readings.jsonl"), input).unwrap();
    // Written in a sub-directory: its paths are relative to it.
    let out = init(
        t,
        &[
            "--keys",
            "keys",
            "--source",
            "jsonl:data/readings.jsonl",
            "--directory",
            "agent/out",
            "--output",
            "agent/map.yaml",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Wrote agent/map.yaml (valid)"), "{stderr}");
    assert!(stderr.contains("/gps, /imu"), "{stderr}");
    let map = t.join("agent/map.yaml");
    let text = std::fs::read_to_string(&map).unwrap();
    assert!(
        text.contains("signingKeyFile: \"../keys/machine.secp256k1.sk\""),
        "{text}"
    );
    assert!(
        text.contains("fieldKeyFile: \"../keys/field.aes256.key\""),
        "{text}"
    );
    assert!(
        text.contains("{type: jsonl, path: \"../data/readings.jsonl\"}"),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&map).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let checked = check_valid(&map);
    let keys =
        sealstream_core::json::parse(&std::fs::read(t.join("keys/keys.json")).unwrap()).unwrap();
    assert_eq!(checked.get("machineDid"), keys.get("machineDid"));

    // It runs as written: both topics, every message, a chain that verifies.
    let mut c = sealstream();
    c.args(["--json", "agent", "run", "--config"]).arg(&map);
    let report = sealstream_core::json::parse(&run_ok(c, "agent run").stdout).unwrap();
    let topics = report.get("topics").and_then(|v| v.as_array()).unwrap();
    assert_eq!(topics.len(), 2);
    for topic in topics {
        assert_eq!(
            topic
                .get("packages")
                .and_then(|v| v.as_number())
                .and_then(|n| n.as_u64()),
            Some(25)
        );
    }
    for chain in std::fs::read_dir(t.join("agent/out")).unwrap() {
        let mut v = sealstream();
        v.args(["verify", "--chunk-dir"]).arg(chain.unwrap().path());
        run_ok(v, "verify");
    }

    // Never over an existing file without --force; with it, replaced.
    let again = [
        "--keys",
        "keys",
        "--source",
        "jsonl:-@/a",
        "--directory",
        "out",
        "--output",
        "agent/map.yaml",
    ];
    let out = init(t, &again);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("agent/map.yaml: already exists; pass --force to replace it"));
    assert_eq!(std::fs::read_to_string(&map).unwrap(), text);
    let mut forced = again.to_vec();
    forced.push("--force");
    let out = init(t, &forced);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replaced = std::fs::read_to_string(&map).unwrap();
    assert!(
        replaced.contains("{type: jsonl, path: \"-\"}"),
        "{replaced}"
    );
    check_valid(&map);
}

#[test]
fn agent_init_writes_field_rules_that_the_run_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    generate_keys(&t.join("keys"), "machine");
    let mut input = String::new();
    for i in 0..20 {
        let topic = if i % 2 == 0 { "/gps" } else { "/imu" };
        input.push_str(&format!(
            "{{\"topic\":\"{topic}\",\"capturedAt\":\"2026-11-21T10:00:{i:02}Z\",\"fields\":{{\"lat\":52.5,\"id\":\"r{i}\",\"cov\":[1,2],\"keep\":{i}}}}}\n"
        ));
    }
    std::fs::write(t.join("readings.jsonl"), input).unwrap();
    std::fs::write(
        t.join("gps.rules.json"),
        r#"{"topic": "/gps", "defaultAction": "include", "rules": [
            {"fieldPath": "id", "action": "anonymize", "anonymizeStrategy": "hash"},
            {"fieldPath": "lat", "action": "exclude"},
            {"fieldPath": "cov", "action": "encrypt"}]}"#,
    )
    .unwrap();
    let args = |rules: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec![
            "--keys",
            "keys",
            "--source",
            "jsonl:readings.jsonl",
            "--directory",
            "out",
            "--output",
            "map.yaml",
        ];
        for r in rules {
            a.extend(["--rules", r]);
        }
        a
    };
    let out = init(t, &args(&["gps.rules.json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map = t.join("map.yaml");
    let text = std::fs::read_to_string(&map).unwrap();
    assert!(text.contains("    defaultAction: include\n    rules:\n      - {fieldPath: \"id\", action: anonymize, anonymizeStrategy: hash}\n"), "{text}");
    let checked = check_valid(&map);
    let rules: Vec<u64> = checked
        .get("topics")
        .and_then(|v| v.as_array())
        .unwrap()
        .iter()
        .map(|t| {
            t.get("rules")
                .and_then(|v| v.as_number())
                .and_then(|n| n.as_u64())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(rules.iter().sum::<u64>(), 3, "{checked:?}");

    // The checked map is what runs: both chains are made and verify.
    let mut c = sealstream();
    c.args(["--quiet", "agent", "run", "--config"]).arg(&map);
    run_ok(c, "agent run");
    let mut seen = 0;
    for chain in std::fs::read_dir(t.join("out")).unwrap() {
        let mut v = sealstream();
        v.args(["--quiet", "verify", "--chunk-dir"])
            .arg(chain.unwrap().path());
        run_ok(v, "verify");
        seen += 1;
    }
    assert_eq!(seen, 2);

    // A rules file whose topic the sources do not feed, or two for one topic.
    std::fs::remove_file(&map).unwrap();
    std::fs::write(
        t.join("other.rules.json"),
        r#"{"topic": "/lidar", "rules": []}"#,
    )
    .unwrap();
    for (rules, expected) in [
        (
            &["other.rules.json"][..],
            "--rules: topic \"/lidar\" is not one the sources feed (/gps, /imu)",
        ),
        (
            &["gps.rules.json", "gps.rules.json"][..],
            "--rules: topic \"/gps\" has two rules files",
        ),
    ] {
        let out = init(t, &args(rules));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!map.exists());
    }
}

#[test]
fn agent_init_names_every_source_and_destination_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    generate_keys(&t.join("keys"), "machine");
    let out = init(
        t,
        &[
            "--json",
            "--keys",
            "keys",
            "--source",
            "mcap:run1.mcap@/gps/fix,/imu",
            "--source",
            "mqtt://127.0.0.1:1883/factory/+/telemetry/#@factory/telemetry",
            "--source",
            "mqtt://127.0.0.1:1883//robot/arm",
            "--source",
            "jsonl:-@events",
            "--market",
            "http://127.0.0.1:8080",
            "--object-store",
            "s3://robot-data/fleet-1",
            "--directory",
            "out",
            "--spool",
            "/var/tmp/sealstream-spool",
            "--output",
            "map.yaml",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = sealstream_core::json::parse(&out.stdout).unwrap();
    let sources = printed.get("sources").and_then(|v| v.as_array()).unwrap();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s.get("name").and_then(|v| v.as_str()).unwrap())
        .collect();
    assert_eq!(names, ["bag", "broker", "lines"], "one source per broker");
    let map = t.join("map.yaml");
    let text = std::fs::read_to_string(&map).unwrap();
    for expected in [
        "bag: {type: mcap, path: \"run1.mcap\"}",
        "broker: {type: mqtt, url: \"mqtt://127.0.0.1:1883\"}",
        "  - name: \"factory/telemetry\"\n    source: broker\n    match: \"factory/+/telemetry/#\"",
        "  - name: \"/robot/arm\"\n    source: broker\n",
        "  - {type: market, url: \"http://127.0.0.1:8080\"}",
        "  - {type: object-store, url: \"s3://robot-data/fleet-1\"}",
        "  - {type: directory, path: \"out\"}",
        "  dir: \"/var/tmp/sealstream-spool\"",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    let checked = check_valid(&map);
    assert_eq!(
        checked
            .get("topics")
            .and_then(|v| v.as_array())
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        checked
            .get("destinations")
            .and_then(|v| v.as_number())
            .and_then(|n| n.as_u64()),
        Some(3)
    );
}

#[test]
fn agent_init_refuses_what_it_cannot_make_a_map_of() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    generate_keys(&t.join("keys"), "machine");
    generate_keys(&t.join("owner"), "owner");
    let refused = |args: &[&str], expected: &str, code: i32| {
        let out = init(t, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!t.join("map.yaml").exists());
    };
    refused(
        &[
            "--keys",
            "owner",
            "--source",
            "jsonl:-@a",
            "--directory",
            "out",
            "--output",
            "map.yaml",
        ],
        "owner/keys.json: role: these are an owner's keys (keys generate --role owner)",
        1,
    );
    refused(
        &[
            "--keys",
            "keys",
            "--source",
            "jsonl:-",
            "--directory",
            "out",
            "--output",
            "map.yaml",
        ],
        "standard input cannot be read ahead; name its topics: jsonl:-@TOPIC",
        1,
    );
    refused(
        &[
            "--keys",
            "keys",
            "--source",
            "mcap:missing.mcap",
            "--directory",
            "out",
            "--output",
            "map.yaml",
        ],
        "--source mcap:missing.mcap: ",
        1,
    );
    refused(
        &[
            "--keys",
            "keys",
            "--source",
            "jsonl:-@a",
            "--output",
            "map.yaml",
        ],
        "name at least one destination",
        1,
    );
    refused(
        &[
            "--keys",
            "keys",
            "--source",
            "csv:x",
            "--directory",
            "out",
            "--output",
            "map.yaml",
        ],
        "expected jsonl:PATH, mcap:PATH",
        64,
    );
    refused(
        &[
            "--keys",
            "keys",
            "--source",
            "jsonl:-@/a",
            "--source",
            "mqtt://h:1883//a",
            "--directory",
            "out",
            "--output",
            "map.yaml",
        ],
        "topic /a comes from sources lines and broker",
        1,
    );
    // A destination the map refuses: nothing is written either.
    refused(
        &[
            "--keys",
            "keys",
            "--source",
            "jsonl:-@a",
            "--object-store",
            "s3://X",
            "--output",
            "map.yaml",
        ],
        "does not validate (1 problem); nothing was written",
        1,
    );
}
