//! The Data Event Map: the documented example loads, and every kind of
//! problem is reported with its line and field path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sealstream_agent::config::{
    ConfigError, DataEventMap, Destination, JsonlInput, ObjectStoreLocation, Source, WhenFull,
};
use sealstream_core::rules::{Action, AnonymizeStrategy, FieldRule};
use sealstream_testkit::fixture::{DID, MACHINE_SK, OWNER_PK};
use sealstream_testkit::repo_root;

const CHAIN_SK: &str = "1f6350a24055b23b7abc6aaaa4466007a95bf4807826b6810a79dfe06af8f45f";
const FIELD_KEY: &str = "c84fcf398735bf46fad738fb45ffa606d05e9f01c5886c959abf79ef4e10d01c";

/// A minimal valid map; tests edit single lines of it, so line numbers are fixed.
const BASE: &str = "\
machine:
  did: did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1
  signingKeyFile: keys/machine.sk
  chainKeyFile: keys/chain.sk
recipients:
  owner: aaa52adfb12f7a161e2d502386cd3cb2eff0dbe38e90c70085a0872229a3b946
  operator: 36691395f47b6c441acedea1e0bd38a58c7e8119fdc59b39f4c3687fb880106f
  machine: 8c8bf93ac82af74d7526fd1473cc752f352fbb5f8e472bcba67ec7877e4c3f2b
sources:
  bag: {type: mcap, path: run1.mcap}
topics:
  - name: /gps/fix
    source: bag
destinations:
  - {type: directory, path: out/}
";

/// A directory with the test key files under `keys/` (both naming schemes).
fn key_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for (name, text) in [
        ("machine.sk", MACHINE_SK),
        ("chain.sk", CHAIN_SK),
        ("field.key", FIELD_KEY),
        ("machine.secp256k1.sk", MACHINE_SK),
        ("chain.ed25519.sk", CHAIN_SK),
        ("field.aes256.key", FIELD_KEY),
    ] {
        std::fs::write(keys.join(name), format!("{text}\n")).unwrap();
    }
    dir
}

fn parse(text: &str) -> Result<DataEventMap, ConfigError> {
    let dir = key_dir();
    DataEventMap::parse(text, dir.path())
}

/// The problems of `text`, as displayed.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let lines: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
            assert_eq!(e.to_string(), lines.join("\n"));
            lines
        }
    }
}

/// `BASE` with `from` replaced by `to` (which must occur exactly once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from}");
    BASE.replacen(from, to, 1)
}

fn example_path() -> PathBuf {
    repo_root().join("docs/examples/data-event-map.yaml")
}

#[test]
fn documented_example_loads() {
    let dir = key_dir();
    let config = dir.path().join("data-event-map.yaml");
    std::fs::copy(example_path(), &config).unwrap();
    let map = DataEventMap::load(&config).unwrap();
    let base = dir.path();

    assert_eq!(map.base_dir, base);
    assert_eq!(map.machine.did.to_string(), DID);
    assert_eq!(map.machine.key_id, format!("{DID}#keys-1"));
    assert_eq!(
        map.machine.signing_key_file,
        base.join("keys/machine.secp256k1.sk")
    );
    assert!(map.machine.field_key.is_some());
    assert_eq!(map.recipients.owner.to_hex(), OWNER_PK);
    let chain = map.recipients.chain_recipients();
    let ids: Vec<&str> = chain.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["owner-1", "operator-1", "machine-1", "auditor-1"]);
    assert_eq!(chain[3].recipient_type, "auditor");

    assert_eq!(map.chunking.max_bytes, 262_144);
    assert_eq!(map.chunking.max_messages, 1000);
    assert_eq!(map.chunking.max_age, Duration::from_secs(5));
    assert_eq!(map.datasets.unwrap().window, Duration::from_secs(3600));
    assert_eq!(map.spool.dir, base.join("spool/"));
    assert_eq!(map.spool.max_bytes, 1 << 30);
    assert_eq!(map.spool.when_full, WhenFull::Block);

    assert_eq!(
        map.sources["bag"],
        Source::Mcap {
            path: base.join("run1.mcap")
        }
    );
    let Source::Mqtt(mqtt) = &map.sources["broker"] else {
        panic!("broker is not mqtt")
    };
    assert_eq!(
        (mqtt.host.as_str(), mqtt.port, mqtt.tls, mqtt.qos),
        ("127.0.0.1", 1883, false, 1)
    );
    assert_eq!(mqtt.client_id, "robot-1");
    assert_eq!(
        map.sources["lines"],
        Source::Jsonl {
            input: JsonlInput::Stdin
        }
    );

    let Source::Ros2(robot) = &map.sources["robot"] else {
        panic!("robot is not ros2")
    };
    assert_eq!(robot.connect, ["tcp/localhost:7447"]);
    assert_eq!(robot.domain_id, 0);

    assert_eq!(map.topics.len(), 4);
    let imu = map.topic("/imu").unwrap().ros2.clone().unwrap();
    assert_eq!(imu.ros_type.as_deref(), Some("sensor_msgs/msg/Imu"));
    let gps = map.topic("/gps/fix").unwrap();
    assert_eq!(gps.source, "bag");
    assert_eq!(gps.schema_version, "1.0.0");
    assert_eq!(gps.rules.topic, "/gps/fix");
    assert_eq!(gps.rules.default_action, Some(Action::Include));
    assert_eq!(
        gps.rules.rules[0],
        FieldRule {
            field_path: "latitude".into(),
            action: Action::Anonymize,
            anonymize_strategy: Some(AnonymizeStrategy::Generalize),
        }
    );
    assert!(gps.rules.needs_field_key());
    let telemetry = map.topic("factory/telemetry").unwrap();
    assert!(telemetry.matches("factory/line-3/telemetry/arm/1"));
    assert!(!telemetry.matches("factory/line-3/status"));
    let events = map.topic("events").unwrap();
    assert_eq!(events.matcher, "events");
    assert_eq!(events.rules.default_action, Some(Action::Encrypt));

    assert_eq!(map.destinations.len(), 3);
    assert_eq!(
        map.destinations[1],
        Destination::ObjectStore {
            url: "s3://robot-data/fleet-1".into(),
            location: ObjectStoreLocation::S3 {
                bucket: "robot-data".into(),
                prefix: "fleet-1".into()
            }
        }
    );
}

#[test]
fn minimal_map_gets_defaults() {
    let map = parse(BASE).unwrap();
    assert_eq!(map.chunking.max_bytes, 256 * 1024);
    assert_eq!(map.chunking.max_age, Duration::from_secs(5));
    assert!(map.datasets.is_none());
    assert_eq!(map.spool.when_full, WhenFull::Block);
    assert!(map.spool.dir.ends_with("spool"));
    let topic = &map.topics[0];
    assert_eq!(topic.matcher, "/gps/fix");
    assert_eq!(topic.schema_version, "1.0.0");
    assert_eq!(topic.rules.default_action, None);
    assert!(topic.rules.rules.is_empty());
    assert!(map.machine.field_key.is_none());
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let text = edit(
        "  chainKeyFile: keys/chain.sk\n",
        "  chainKeyFile: [keys/chain.sk\n",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("line 5: invalid YAML (column "), "{p:?}");
}

#[test]
fn empty_document_and_wrong_root() {
    assert_eq!(problems(""), ["line 1: the Data Event Map is empty"]);
    assert_eq!(
        problems("- a\n- b\n"),
        ["line 1: expected a mapping, got a list"]
    );
}

#[test]
fn unknown_field_with_suggestion() {
    let text = edit(
        "sources:\n",
        "chunking:\n  maxByte: 1MiB\n  window: 5s\nsources:\n",
    );
    assert_eq!(
        problems(&text),
        [
            "line 10: chunking.maxByte: unknown field (did you mean maxBytes?)",
            "line 11: chunking.window: unknown field (expected one of: maxBytes, maxMessages, maxAge)",
        ]
    );
    let text = edit("  did: ", "  signing_key_file: x\n  did: ");
    assert_eq!(
        problems(&text),
        ["line 2: machine.signing_key_file: unknown field (did you mean signingKeyFile?)"]
    );
}

#[test]
fn duplicate_key() {
    let text = edit("    source: bag\n", "    source: bag\n    source: bag\n");
    assert_eq!(
        problems(&text),
        ["line 14: topics[0].source: duplicate field (first at line 13)"]
    );
}

#[test]
fn wrong_types() {
    let text = edit("sources:\n", "chunking: 5\nsources:\n");
    assert_eq!(
        problems(&text),
        ["line 9: chunking: expected a mapping, got an integer"]
    );
    let text = edit(
        "sources:\n",
        "chunking: {maxMessages: ten, maxAge: [1]}\nsources:\n",
    );
    assert_eq!(
        problems(&text),
        [
            "line 9: chunking.maxMessages: expected a positive integer, got a string",
            "line 9: chunking.maxAge: expected a duration: an integer with a unit ms, s, m or h (e.g. 500ms, 5s, 2m)",
        ]
    );
    let text = edit("  - name: /gps/fix\n", "  - name: {a: 1}\n");
    assert_eq!(
        problems(&text),
        ["line 12: topics[0].name: expected a string, got a mapping"]
    );
    let text = edit(
        "topics:\n  - name: /gps/fix\n    source: bag\n",
        "topics: {}\n",
    );
    assert_eq!(
        problems(&text),
        ["line 11: topics: expected a list, got a mapping"]
    );
}

#[test]
fn missing_required_sections_and_fields() {
    let text = edit("destinations:\n  - {type: directory, path: out/}\n", "");
    assert_eq!(problems(&text), ["line 1: destinations: required"]);
    let text = edit(
        "  did: did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1\n",
        "",
    );
    assert_eq!(problems(&text), ["line 1: machine.did: required"]);
    let text = edit("  owner: ", "  owner:\n  ownr: ");
    assert_eq!(
        problems(&text),
        [
            "line 6: recipients.owner: required, got nothing",
            "line 7: recipients.ownr: unknown field (did you mean owner?)",
        ]
    );
    let text = edit(
        "destinations:\n  - {type: directory, path: out/}\n",
        "destinations: []\n",
    );
    assert_eq!(
        problems(&text),
        ["line 14: destinations: at least one destination is required"]
    );
}

#[test]
fn bad_did_and_key_id() {
    let text = edit(
        "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1\n",
        "did:peaq:0x3d91\n",
    );
    assert_eq!(
        problems(&text),
        ["line 2: machine.did: expected did:peaq:0x followed by 40 hex digits"]
    );
    let other = "did:peaq:0x0000000000000000000000000000000000000001";
    let text = edit(
        "  signingKeyFile",
        &format!("  keyId: {other}#keys-1\n  signingKeyFile"),
    );
    assert_eq!(
        problems(&text),
        ["line 3: machine.keyId: must start with machine.did"]
    );
    let text = edit(
        "  signingKeyFile",
        &format!("  keyId: {DID}\n  signingKeyFile"),
    );
    assert_eq!(
        problems(&text),
        ["line 3: machine.keyId: expected the machine DID followed by #fragment (did:peaq:0x…#keys-1)"]
    );
}

#[test]
fn bad_recipient_keys() {
    let text = edit(OWNER_PK, "aaa52adfb1");
    assert_eq!(
        problems(&text),
        ["line 6: recipients.owner: expected 32 bytes as hex (64 hex digits, optional 0x), got 10 hex digits"]
    );
    let text = edit(OWNER_PK, &"0".repeat(64));
    assert_eq!(
        problems(&text),
        ["line 6: recipients.owner: not a usable X25519 public key (small order)"]
    );
    let text = edit(
        "sources:\n",
        &format!(
            "  extra:\n    - {{id: owner-1, type: auditor, publicKey: {OWNER_PK}}}\n    \
             - {{id: a, type: Auditor, publicKey: {OWNER_PK}}}\n    \
             - {{id: a, type: auditor, publicKey: {OWNER_PK}}}\nsources:\n"
        ),
    );
    assert_eq!(
        problems(&text),
        [
            "line 10: recipients.extra[0].id: \"owner-1\" is the id of a built-in recipient",
            "line 11: recipients.extra[1].type: expected lowercase letters, digits and hyphens (e.g. auditor)",
            "line 12: recipients.extra[2].id: duplicate recipient id (first at line 11)",
        ]
    );
}

#[test]
fn key_file_problems() {
    let missing = edit("keys/chain.sk", "keys/nope.sk");
    assert_eq!(
        problems(&missing),
        ["line 4: machine.chainKeyFile: cannot read keys/nope.sk: no such file"]
    );

    let dir = key_dir();
    let short = &CHAIN_SK[..62];
    std::fs::write(dir.path().join("keys/short.sk"), short).unwrap();
    let err = DataEventMap::parse(&edit("keys/chain.sk", "keys/short.sk"), dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 4: machine.chainKeyFile: keys/short.sk: expected 32 bytes as hex (64 hex digits, optional 0x), got 62 hex digits"
    );
    assert!(!format!("{err} {err:?}").contains(short));

    // A valid secp256k1 key of another machine.
    let other = "0x0000000000000000000000000000000000000000000000000000000000000001";
    std::fs::write(dir.path().join("keys/other.sk"), other).unwrap();
    let err =
        DataEventMap::parse(&edit("keys/machine.sk", "keys/other.sk"), dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: machine.signingKeyFile: keys/other.sk holds the key of \
         did:peaq:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf, not of machine.did"
    );

    // Not a secp256k1 key at all (zero).
    std::fs::write(dir.path().join("keys/zero.sk"), "0".repeat(64)).unwrap();
    let err =
        DataEventMap::parse(&edit("keys/machine.sk", "keys/zero.sk"), dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: machine.signingKeyFile: keys/zero.sk: not a valid secp256k1 private key"
    );

    // One key for two purposes.
    let same = edit("keys/chain.sk", "keys/machine.sk");
    assert_eq!(
        problems(&same),
        ["line 4: machine.chainKeyFile: holds the same key as machine.signingKeyFile; use a separate key for each purpose"]
    );
}

#[test]
fn unknown_source() {
    let text = edit("    source: bag\n", "    source: cam\n");
    assert_eq!(
        problems(&text),
        ["line 13: topics[0].source: no source named \"cam\""]
    );
    let text = edit("    source: bag\n", "    source: bags\n");
    assert_eq!(
        problems(&text),
        ["line 13: topics[0].source: no source named \"bags\" (did you mean \"bag\"?)"]
    );
}

#[test]
fn duplicate_topic_names() {
    let text = edit(
        "destinations:",
        "  - {name: /imu, source: bag}\n  - {name: /gps/fix, source: bag}\ndestinations:",
    );
    assert_eq!(
        problems(&text),
        ["line 15: topics[2].name: duplicate topic name (first at line 12)"]
    );
}

#[test]
fn rule_problems() {
    let text = edit(
        "    source: bag\n",
        "    source: bag\n    rules:\n      \
         - {fieldPath: latitude, action: anonymize}\n      \
         - {fieldPath: gps, action: include, anonymizeStrategy: hash}\n      \
         - {fieldPath: gps.altitude, action: exclude}\n      \
         - {fieldPath: a..b, action: delete}\n      \
         - {fieldPath: speed, action: anonymize, anonymizeStrategy: blur}\n",
    );
    assert_eq!(
        problems(&text),
        [
            "line 15: topics[0].rules[0].anonymizeStrategy: required when action is anonymize",
            "line 16: topics[0].rules[1].anonymizeStrategy: only allowed when action is anonymize",
            "line 17: topics[0].rules[2].fieldPath: never applies: topics[0].rules[1] (gps) comes first and covers it; put the more specific rule first",
            "line 18: topics[0].rules[3].fieldPath: expected a dot-separated path without empty parts (e.g. gps.latitude)",
            "line 18: topics[0].rules[3].action: expected one of include, exclude, encrypt, anonymize",
            "line 19: topics[0].rules[4].anonymizeStrategy: expected one of hash, generalize, redact",
        ]
    );
}

#[test]
fn default_action_anonymize_refused() {
    let text = edit(
        "    source: bag\n",
        "    source: bag\n    defaultAction: anonymize\n",
    );
    assert_eq!(
        problems(&text),
        ["line 14: topics[0].defaultAction: anonymize cannot be a default action (it needs a strategy); use include, exclude or encrypt"]
    );
}

#[test]
fn encrypt_needs_field_key() {
    let text = edit(
        "    source: bag\n",
        "    source: bag\n    rules:\n      - {fieldPath: a, action: include}\n      - {fieldPath: b, action: encrypt}\n",
    );
    assert_eq!(
        problems(&text),
        ["line 16: topics[0].rules[1].action: encrypt needs machine.fieldKeyFile, which is not set"]
    );
    let with_key = text.replace(
        "  chainKeyFile: keys/chain.sk\n",
        "  chainKeyFile: keys/chain.sk\n  fieldKeyFile: keys/field.key\n",
    );
    assert!(parse(&with_key).unwrap().machine.field_key.is_some());
}

#[test]
fn sizes_durations_and_choices() {
    let text = edit(
        "sources:\n",
        "chunking: {maxBytes: 0, maxAge: 5}\nspool: {maxBytes: 10 kb, whenFull: drop_oldest}\nsources:\n",
    );
    assert_eq!(
        problems(&text),
        [
            "line 9: chunking.maxBytes: must be greater than 0",
            "line 9: chunking.maxAge: expected a duration: an integer with a unit ms, s, m or h (e.g. 500ms, 5s, 2m)",
            "line 10: spool.maxBytes: expected a size: bytes as an integer, or an integer with a unit B, KiB, MiB, GiB, KB, MB, GB (e.g. 256KiB)",
            "line 10: spool.whenFull: expected one of block, drop-oldest (did you mean drop-oldest?)",
        ]
    );
    let text = edit(
        "sources:\n",
        "chunking: {maxBytes: 2MiB}\nspool:\n  maxBytes: 1MiB\nsources:\n",
    );
    assert_eq!(
        problems(&text),
        ["line 11: spool.maxBytes: must be at least chunking.maxBytes"]
    );
}

#[test]
fn source_problems() {
    let text = edit(
        "  bag: {type: mcap, path: run1.mcap}\n",
        "  bag: {type: mcap, path: run1.mcap, url: \"mqtt://x\"}\n  \
         b: {type: mqtt, url: \"mqtt://user:secret@host\", qos: 3}\n  \
         c: {type: mqtt, url: \"http://host\"}\n  \
         d: {type: ros, path: x}\n",
    );
    let p = problems(&text);
    assert_eq!(
        p,
        [
            "line 10: sources.bag.url: not a field of type mcap (expected: path)",
            "line 11: sources.b.url: credentials in the URL are not supported",
            "line 11: sources.b.qos: expected 0, 1 or 2",
            "line 12: sources.c.url: expected mqtt://host[:port] or mqtts://host[:port]",
            "line 13: sources.d.type: expected one of mcap, mqtt, ros2, jsonl (did you mean ros2?)",
        ]
    );
    assert!(!p.join("\n").contains("secret"));
}

#[test]
fn match_wildcards() {
    let text = edit("    source: bag\n", "    source: bag\n    match: /gps/+\n");
    assert_eq!(
        problems(&text),
        ["line 14: topics[0].match: wildcards + and # are only allowed for mqtt and ros2 sources"]
    );
    let mqtt = edit(
        "  bag: {type: mcap, path: run1.mcap}",
        "  bag: {type: mqtt, url: \"mqtts://broker\"}",
    );
    let bad = mqtt.replace("    source: bag\n", "    source: bag\n    match: a/#/b\n");
    assert_eq!(
        problems(&bad),
        ["line 14: topics[0].match: invalid MQTT filter: + and # must each be a whole level, and # only the last"]
    );
    let good = mqtt.replace("    source: bag\n", "    source: bag\n    match: a/+/#\n");
    let map = parse(&good).unwrap();
    let Source::Mqtt(source) = &map.sources["bag"] else {
        panic!()
    };
    assert_eq!((source.port, source.tls, source.qos), (8883, true, 1));
    assert_eq!(source.client_id, "sealstream-3d9141c9");
    assert!(map.topics[0].matches("a/b/c/d"));
    assert!(map.topics[0].matches("a/b"));
    assert!(!map.topics[0].matches("a"));
}

#[test]
fn destination_problems() {
    let text = edit(
        "  - {type: directory, path: out/}\n",
        "  - {type: directory, path: out/}\n  \
         - {type: object-store, url: \"ftp://x\"}\n  \
         - {type: market, url: \"http://\", path: x}\n  \
         - {type: directory, path: out/}\n  \
         - {type: object-store, url: \"file:///srv/objects\"}\n",
    );
    assert_eq!(
        problems(&text),
        [
            "line 16: destinations[1].url: expected s3://bucket/prefix or file:///absolute/path",
            "line 17: destinations[2].path: not a field of type market (expected: url)",
            "line 17: destinations[2].url: expected http://host[:port][/path] or https://…",
            "line 18: destinations[3]: duplicate of destinations[0]",
        ]
    );
}

#[test]
fn all_problems_are_reported_together_in_line_order() {
    let text = BASE
        .replace(
            "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1\n",
            "peaq\n",
        )
        .replace("keys/chain.sk", "keys/missing.sk")
        .replace(OWNER_PK, "xyz")
        .replace(
            "    source: bag\n",
            "    source: cam\n    schemaversion: \"1\"\n",
        )
        .replace("type: directory", "type: dir");
    let p = problems(&text);
    assert_eq!(
        p,
        [
            "line 2: machine.did: expected did:peaq:0x followed by 40 hex digits",
            "line 4: machine.chainKeyFile: cannot read keys/missing.sk: no such file",
            "line 6: recipients.owner: expected 32 bytes as hex (64 hex digits, optional 0x), got 3 hex digits",
            "line 13: topics[0].source: no source named \"cam\"",
            "line 14: topics[0].schemaversion: unknown field (did you mean schemaVersion?)",
            "line 16: destinations[0].type: expected one of directory, object-store, market, p2p",
        ]
    );
}

#[test]
fn secrets_never_printed() {
    let dir = key_dir();
    let with_field = edit(
        "  chainKeyFile: keys/chain.sk\n",
        "  chainKeyFile: keys/chain.sk\n  fieldKeyFile: keys/field.key\n",
    );
    let map = DataEventMap::parse(&with_field, dir.path()).unwrap();
    let debug = format!("{map:?}");
    for secret in [&MACHINE_SK[2..], CHAIN_SK, FIELD_KEY] {
        assert!(!debug.contains(secret));
    }
    assert!(debug.contains("MachineSigningKey(..)"));

    // A key file holding a near-key: the error names the file, not the content.
    let almost = &FIELD_KEY[..60];
    std::fs::write(dir.path().join("keys/field.key"), almost).unwrap();
    let err = DataEventMap::parse(&with_field, dir.path()).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(almost));
}

#[test]
fn unreadable_config_file() {
    let err = DataEventMap::load("/nonexistent/data-event-map.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with("cannot read the Data Event Map /nonexistent/data-event-map.yaml: "));
}

#[test]
fn documentation_embeds_the_example() {
    let example = std::fs::read_to_string(example_path()).unwrap();
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/data-event-map.md"),
    )
    .unwrap();
    assert!(
        doc.contains(&format!("```yaml\n{example}```")),
        "docs/data-event-map.md must embed docs/examples/data-event-map.yaml verbatim"
    );
}

#[test]
fn anchors_and_aliases_share_rules() {
    let text = edit(
        "    source: bag\n",
        "    source: bag\n    rules: &private\n      - {fieldPath: name, action: exclude}\n  \
         - {name: /imu, source: bag, rules: *private}\n",
    );
    let map = parse(&text).unwrap();
    assert_eq!(map.topics[1].rules.rules, map.topics[0].rules.rules);
    assert_eq!(map.topics[1].rules.topic, "/imu");
}

#[test]
fn one_document_only() {
    let text = format!("{BASE}---\nmachine: {{}}\n");
    assert_eq!(
        problems(&text),
        ["line 16: invalid YAML (column 1): only one YAML document is allowed"]
    );
}

/// A map with one ros2 source (`source` its fields) and `topics`, checked in
/// a directory that also holds `msgs/` with custom message definitions.
fn ros2_problems(source: &str, topics: &str) -> (Result<DataEventMap, ConfigError>, Vec<String>) {
    let dir = key_dir();
    let msgs = dir.path().join("msgs/robot_msgs/msg");
    std::fs::create_dir_all(&msgs).unwrap();
    std::fs::write(msgs.join("Battery.msg"), "float32 level\nstring<=8 id\n").unwrap();
    std::fs::write(
        msgs.join("Status.msg"),
        "robot_msgs/Battery battery\nstd_msgs/Header header\n",
    )
    .unwrap();
    let bad = dir.path().join("bad/pkg/msg");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("Broken.msg"), "float32\n").unwrap();
    let text = BASE
        .replace(
            "  bag: {type: mcap, path: run1.mcap}\n",
            &format!("  bag: {{type: mcap, path: run1.mcap}}\n  robot: {{type: ros2{source}}}\n"),
        )
        .replace(
            "topics:\n  - name: /gps/fix\n    source: bag\n",
            &format!("topics:\n{topics}"),
        );
    let result = DataEventMap::parse(&text, dir.path());
    let problems = match &result {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    };
    (result, problems)
}

#[test]
fn ros2_source_defaults_types_and_qos() {
    use sealstream_agent::ros2::rmw_zenoh::Reliability;
    let (map, problems) = ros2_problems(
        ", messages: [msgs]",
        "  - {name: /gps/fix, source: robot, type: sensor_msgs/msg/NavSatFix, qos: {reliability: best-effort, depth: 5}}\n  \
         - {name: status, source: robot, match: \"/+/status\", type: robot_msgs/Status}\n  \
         - {name: all, source: robot, match: \"/robot1/#\"}\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let map = map.unwrap();
    let Source::Ros2(r) = &map.sources["robot"] else {
        panic!("a ros2 source")
    };
    assert_eq!(r.domain_id, 0);
    assert_eq!(r.connect, ["tcp/localhost:7447"]);
    assert!(r.listen.is_empty());
    assert_eq!(
        (r.node.as_str(), r.namespace.as_str()),
        ("sealstream_agent", "/")
    );
    assert_eq!(r.queue, 16384);
    assert!(r.library.contains("robot_msgs/msg/Status"));
    assert!(r.library.contains("sensor_msgs/msg/Imu"));
    let gps = map.topic("/gps/fix").unwrap().ros2.clone().unwrap();
    assert_eq!(gps.ros_type.as_deref(), Some("sensor_msgs/msg/NavSatFix"));
    assert_eq!(
        (gps.qos.reliability, gps.qos.depth),
        (Reliability::BestEffort, 5)
    );
    let status = map.topic("status").unwrap().ros2.clone().unwrap();
    assert_eq!(status.ros_type.as_deref(), Some("robot_msgs/msg/Status"));
    assert_eq!(status.qos.reliability, Reliability::Reliable);
    assert_eq!(
        map.topic("all").unwrap().ros2.clone().unwrap().ros_type,
        None
    );
    // Topics of other sources have no ROS 2 part.
    assert!(map.topic("/gps/fix").is_some());
}

#[test]
fn ros2_source_problems() {
    let (_, p) = ros2_problems(
        ", domainId: 300, connect: [\"tcp/127.0.0.1\", \"udp/1.2.3.4:7447\"], node: 9lives, namespace: robot1, queue: 0, middleware: dds",
        "  - {name: /gps/fix, source: robot}\n",
    );
    assert_eq!(
        p,
        [
            "line 11: sources.robot.middleware: expected one of zenoh",
            "line 11: sources.robot.domainId: expected an integer from 0 to 232",
            "line 11: sources.robot.connect[0]: expected a Zenoh TCP endpoint tcp/HOST:PORT (tcp/127.0.0.1:7447, tcp/[::1]:7447, tcp/localhost:7447)",
            "line 11: sources.robot.connect[1]: expected a Zenoh TCP endpoint tcp/HOST:PORT (tcp/127.0.0.1:7447, tcp/[::1]:7447, tcp/localhost:7447)",
            "line 11: sources.robot.node: expected a ROS node name: letters, digits and _, not starting with a digit",
            "line 11: sources.robot.namespace: expected / or an absolute ROS namespace (/robot1, /fleet/robot1)",
            "line 11: sources.robot.queue: must be greater than 0",
        ]
    );
    let (_, p) = ros2_problems(
        ", connect: [], listen: []",
        "  - {name: /gps/fix, source: robot}\n",
    );
    assert_eq!(
        p,
        ["line 11: sources.robot.connect: connect and listen are both empty: the agent would reach no publisher"]
    );
    let (_, p) = ros2_problems(
        ", messages: [nowhere, bad]",
        "  - {name: /gps/fix, source: robot}\n",
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("line 11: sources.robot.messages[0]: cannot read "),
        "{p:?}"
    );
    assert!(
        p[1].starts_with("line 11: sources.robot.messages[1]: ") && p[1].contains("Broken.msg"),
        "{p:?}"
    );
    let (_, p) = ros2_problems(
        "",
        "  - {name: a, source: robot, match: gps/fix}\n  \
         - {name: b, source: robot, match: /x, type: robot_msgs/msg/Battery}\n  \
         - {name: c, source: robot, match: /y, type: not-a-type}\n  \
         - {name: d, source: robot, match: /z, qos: {reliability: sometimes, depth: 0}}\n  \
         - {name: e, source: bag, type: std_msgs/msg/String}\n  \
         - {name: f, source: robot, match: /g, schemaVersion: sealstream.gap.v1}\n  \
         - {name: g, source: robot}\n",
    );
    assert_eq!(
        p,
        [
            "line 13: topics[0].match: a ROS 2 topic is absolute: it starts with /",
            "line 14: topics[1].type: no definition of robot_msgs/Battery: add its .msg file to the source's messages",
            "line 15: topics[2].type: expected a message type pkg/msg/Type",
            "line 16: topics[3].qos.reliability: expected one of reliable, best-effort",
            "line 16: topics[3].qos.depth: must be greater than 0",
            "line 17: topics[4].type: only for topics of ros2 sources",
            "line 18: topics[5].schemaVersion: reserved for the agent's gap records",
            "line 19: topics[6].match: required for a ros2 source when the name is not a ROS topic (/…)",
        ]
    );
}

#[test]
fn p2p_destinations_take_defaults_and_name_every_problem() {
    let text = edit(
        "  - {type: directory, path: out/}\n",
        "  - {type: p2p, path: feeds, identityFile: keys/p2p.sk, market: \"http://127.0.0.1:8700\", recipientKeyFile: keys/machine.x25519.sk}\n",
    );
    let map = parse(&text).unwrap();
    let [Destination::P2p(p)] = map.destinations.as_slice() else {
        panic!("{:?}", map.destinations)
    };
    assert!(p.path.ends_with("feeds"), "{}", p.path.display());
    assert_eq!(p.listen, "/ip4/127.0.0.1/tcp/0");
    assert!(p.bootstrap.is_empty());
    assert_eq!(p.revalidate, Duration::from_secs(30));
    assert_eq!(p.max_sessions, 64);
    assert_eq!(p.market, "http://127.0.0.1:8700");
    let p = problems(&edit(
        "  - {type: directory, path: out/}\n",
        "  - {type: p2p, path: feeds, listen: \"tcp 4001\", bootstrap: [\"/ip4/1.2.3.4/tcp/4001\"], market: \"ftp://x\", revalidate: 10ms, maxSessions: 0, url: \"http://x\"}\n",
    ));
    assert_eq!(
        p,
        [
            "line 15: destinations[0].url: not a field of type p2p (expected: path, listen, bootstrap, identityFile, market, recipientKeyFile, revalidate, maxSessions)",
            "line 15: destinations[0].listen: expected a multiaddr (/ip4/0.0.0.0/tcp/4001)",
            "line 15: destinations[0].bootstrap[0]: expected a multiaddr ending in /p2p/<peer id> (/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…)",
            "line 15: destinations[0].identityFile: required",
            "line 15: destinations[0].recipientKeyFile: required",
            "line 15: destinations[0].market: expected http://host[:port][/path] or https://…",
            "line 15: destinations[0].revalidate: at least 1s",
            "line 15: destinations[0].maxSessions: must be greater than 0",
        ]
    );
}
