//! Writing a Data Event Map (`sealstream agent init`): from a machine's
//! keys (its `keys.json` and key files, as `keys generate` writes them),
//! source specifications and destinations, the YAML text of a map that
//! [`DataEventMap::parse`](super::DataEventMap::parse) accepts.
//!
//! A source specification ([`SourceSpec`]) is one string:
//!
//! - `jsonl:PATH` — a file of JSON lines (`-`: standard input);
//! - `mcap:PATH` — a ROS 2 bag, an `.mcap` file or a rosbag2 directory;
//! - `mqtt://HOST[:PORT]/FILTER` or `mqtts://HOST[:PORT]/FILTER` — a broker
//!   and one topic filter (MQTT wildcards allowed; the filter is everything
//!   after the `/` that ends the address, so `mqtt://h//sensor/gps` is the
//!   topic `/sensor/gps`).
//! - `ros2://HOST:PORT/TOPIC` — a live ROS 2 graph through the Zenoh
//!   endpoint `tcp/HOST:PORT` (the robot's `rmw_zenohd` router, or a
//!   publisher's listening peer) and one ROS topic, any type (`+` and `#`
//!   wildcards allowed): `ros2://localhost:7447/gps/fix` is `/gps/fix`.
//!
//! Each may end with `@TOPIC[,TOPIC…]`: for files and bags the topics to
//! seal (default: every topic found in the file or bag), for a broker the
//! name of the topic its filter feeds (default: the filter), for a ROS 2
//! endpoint the name of the topic (default: the ROS topic).

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use sealstream_core::json::{self, Value};
use sealstream_core::rules::TopicRules;

/// A source as `agent init --source` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `jsonl:PATH[@TOPIC,…]`.
    Jsonl {
        /// The file, or `-` for standard input.
        path: String,
        /// The topics named after `@` (empty: find them in the file).
        topics: Vec<String>,
    },
    /// `mcap:PATH[@TOPIC,…]`.
    Mcap {
        /// The `.mcap` file or rosbag2 directory.
        path: String,
        /// The topics named after `@` (empty: every topic of the bag).
        topics: Vec<String>,
    },
    /// `mqtt://HOST[:PORT]/FILTER[@NAME]` (or `mqtts://`).
    Mqtt {
        /// The broker's URL, scheme and address only.
        url: String,
        /// The topic filter.
        filter: String,
        /// The topic's name (default: the filter).
        name: Option<String>,
    },
    /// `ros2://HOST:PORT/TOPIC[@NAME]`.
    Ros2 {
        /// The Zenoh endpoint, `tcp/HOST:PORT`.
        endpoint: String,
        /// The ROS topic, with its leading `/`.
        topic: String,
        /// The topic's name (default: the ROS topic).
        name: Option<String>,
    },
}

/// Why a source specification was refused.
#[derive(Debug, thiserror::Error)]
#[error("--source {spec}: {message}")]
pub struct SpecError {
    /// The specification as given.
    pub spec: String,
    /// What is wrong with it.
    pub message: String,
}

/// The forms `--source` takes, for messages.
pub const SOURCE_FORMS: &str =
    "jsonl:PATH, mcap:PATH, mqtt://HOST[:PORT]/FILTER or mqtts://HOST[:PORT]/FILTER, ros2://HOST:PORT/TOPIC, each optionally followed by @TOPIC[,TOPIC…]";

impl std::str::FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<SourceSpec, SpecError> {
        let err = |message: String| SpecError {
            spec: spec.to_string(),
            message,
        };
        let (body, names) = match spec.rsplit_once('@') {
            Some((body, names)) => {
                let names: Vec<String> = names.split(',').map(str::to_string).collect();
                if names.iter().any(|n| n.trim().is_empty() || n.trim() != n) {
                    return Err(err(
                        "expected @TOPIC[,TOPIC…] with non-empty topic names".into()
                    ));
                }
                (body, names)
            }
            None => (spec, Vec::new()),
        };
        if let Some(path) = body.strip_prefix("jsonl:") {
            if path.is_empty() {
                return Err(err("jsonl: needs a path (or - for standard input)".into()));
            }
            return Ok(SourceSpec::Jsonl {
                path: path.to_string(),
                topics: names,
            });
        }
        if let Some(path) = body.strip_prefix("mcap:") {
            if path.is_empty() {
                return Err(err(
                    "mcap: needs the path of an .mcap file or a rosbag2 directory".into(),
                ));
            }
            return Ok(SourceSpec::Mcap {
                path: path.to_string(),
                topics: names,
            });
        }
        for scheme in ["mqtt://", "mqtts://"] {
            if let Some(rest) = body.strip_prefix(scheme) {
                let Some((address, filter)) = rest.split_once('/') else {
                    return Err(err(format!(
                        "expected {scheme}HOST[:PORT]/FILTER (the topic filter after the address)"
                    )));
                };
                if address.is_empty() || filter.is_empty() {
                    return Err(err(format!(
                        "expected {scheme}HOST[:PORT]/FILTER (the topic filter after the address)"
                    )));
                }
                if names.len() > 1 {
                    return Err(err("a broker filter feeds one topic: @NAME names it".into()));
                }
                return Ok(SourceSpec::Mqtt {
                    url: format!("{scheme}{address}"),
                    filter: filter.to_string(),
                    name: names.into_iter().next(),
                });
            }
        }
        if let Some(rest) = body.strip_prefix("ros2://") {
            const SHAPE: &str =
                "expected ros2://HOST:PORT/TOPIC (a Zenoh endpoint, then the ROS topic)";
            let Some((address, topic)) = rest.split_once('/') else {
                return Err(err(SHAPE.into()));
            };
            let endpoint = format!("tcp/{address}");
            if topic.is_empty() || !super::endpoints::valid_zenoh_endpoint(&endpoint) {
                return Err(err(SHAPE.into()));
            }
            if names.len() > 1 {
                return Err(err("a ROS 2 topic feeds one topic: @NAME names it".into()));
            }
            return Ok(SourceSpec::Ros2 {
                endpoint,
                topic: format!("/{}", topic.trim_start_matches('/')),
                name: names.into_iter().next(),
            });
        }
        Err(err(format!("expected {SOURCE_FORMS}")))
    }
}

/// The public parts of a machine's keys, from its `keys.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineKeys {
    /// `machineDid`.
    pub did: String,
    /// `machineKeyId`, if keys.json has one.
    pub key_id: Option<String>,
    /// `ownerPublicKeyHex`.
    pub owner: String,
    /// `operatorPublicKeyHex`.
    pub operator: String,
    /// `machinePublicKeyHex`.
    pub machine: String,
}

impl MachineKeys {
    /// Read the content of a machine's `keys.json`; `Err` names the field
    /// that is missing, or the role the file is for when it is not a
    /// machine's.
    pub fn from_keys_json(value: &Value) -> Result<MachineKeys, String> {
        let text = |name: &str| -> Result<String, String> {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("{name}: missing (is this a machine's keys.json?)"))
        };
        match value.get("role").and_then(Value::as_str) {
            None | Some("machine") => {}
            Some(role) => {
                return Err(format!(
                    "role: these are {} keys (keys generate --role {role}); a Data Event Map needs a machine's (keys generate)",
                    if role == "owner" { "an owner's" } else { "a buyer's" }
                ))
            }
        }
        Ok(MachineKeys {
            did: text("machineDid")?,
            key_id: value
                .get("machineKeyId")
                .and_then(Value::as_str)
                .map(str::to_string),
            owner: text("ownerPublicKeyHex")?,
            operator: text("operatorPublicKeyHex")?,
            machine: text("machinePublicKeyHex")?,
        })
    }
}

/// A topic a source feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPlan {
    /// The topic's name (of its packages and chain).
    pub name: String,
    /// The topic on the source, when it differs from the name.
    pub matcher: Option<String>,
}

/// A source of the map, with its topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePlan {
    /// Its name in `sources`.
    pub name: String,
    /// Its `type` and location.
    pub kind: SourceKind,
    /// The topics it feeds.
    pub topics: Vec<TopicPlan>,
}

/// A source's type and location, as written into the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// `{type: jsonl, path}`.
    Jsonl(String),
    /// `{type: mcap, path}`.
    Mcap(String),
    /// `{type: ros2, connect: [ENDPOINT]}`.
    Ros2(String),
    /// `{type: mqtt, url}`.
    Mqtt(String),
}

/// A destination, as written into the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationPlan {
    /// `{type: directory, path}`.
    Directory(String),
    /// `{type: object-store, url}`.
    ObjectStore(String),
    /// `{type: market, url}`.
    Market(String),
}

/// Everything a written map holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPlan {
    /// The machine's public parts.
    pub keys: MachineKeys,
    /// Where `keys.json` was read (named in a comment).
    pub keys_json: String,
    /// `machine.signingKeyFile`, as written.
    pub signing_key_file: String,
    /// `machine.chainKeyFile`, as written.
    pub chain_key_file: String,
    /// `machine.fieldKeyFile`, as written, if the machine has one.
    pub field_key_file: Option<String>,
    /// `spool.dir`, as written.
    pub spool_dir: String,
    /// The sources, in order.
    pub sources: Vec<SourcePlan>,
    /// The destinations, in order.
    pub destinations: Vec<DestinationPlan>,
    /// Field rules of some topics (`topic` names which), written under them.
    pub rules: Vec<TopicRules>,
}

/// `text` as a YAML double-quoted scalar.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl MapPlan {
    /// The map's YAML text, with comments that say what each part is and
    /// where to add field rules.
    pub fn render(&self) -> String {
        let mut y = String::new();
        let k = &self.keys;
        let _ = writeln!(
            y,
            "# A Data Event Map written by `sealstream agent init` (docs/data-event-map.md).\n\
             # Relative paths are relative to this file's directory.\n\
             # Check it: sealstream agent check --config FILE\n\
             # Run it:   sealstream agent run --config FILE\n"
        );
        let _ = writeln!(y, "# The machine, from {}.", self.keys_json);
        y.push_str("machine:\n");
        let _ = writeln!(y, "  did: {}", quote(&k.did));
        if let Some(id) = k
            .key_id
            .as_deref()
            .filter(|id| *id != format!("{}#keys-1", k.did))
        {
            let _ = writeln!(y, "  keyId: {}", quote(id));
        }
        let _ = writeln!(y, "  signingKeyFile: {}", quote(&self.signing_key_file));
        let _ = writeln!(y, "  chainKeyFile: {}", quote(&self.chain_key_file));
        match &self.field_key_file {
            Some(f) => {
                let _ = writeln!(y, "  fieldKeyFile: {}   # for `encrypt` field rules", quote(f));
            }
            None => y.push_str(
                "  # fieldKeyFile: field.aes256.key   # needed once a rule or defaultAction encrypts\n",
            ),
        }
        y.push_str("\n# Who every chunk key is wrapped for (X25519 public keys).\nrecipients:\n");
        let _ = writeln!(y, "  owner: {}", quote(&k.owner));
        let _ = writeln!(y, "  operator: {}", quote(&k.operator));
        let _ = writeln!(y, "  machine: {}", quote(&k.machine));
        y.push_str(
            "\n# When a chunk is cut: whichever limit is reached first (the defaults).\n\
             chunking:\n  maxBytes: 256KiB\n  maxMessages: 1000\n  maxAge: 5s\n\
             \n# Optional: a signed dataset manifest per topic per window.\n\
             # datasets:\n#   window: 1h\n\
             \n# The crash-safe store-and-forward spool.\nspool:\n",
        );
        let _ = writeln!(y, "  dir: {}", quote(&self.spool_dir));
        y.push_str("  maxBytes: 1GiB\n  whenFull: block   # or drop-oldest\n");
        y.push_str("\n# Where messages come from, by name.\nsources:\n");
        for s in &self.sources {
            let (kind, field, value) = match &s.kind {
                SourceKind::Jsonl(p) => ("jsonl", "path", p),
                SourceKind::Mcap(p) => ("mcap", "path", p),
                SourceKind::Mqtt(u) => ("mqtt", "url", u),
                SourceKind::Ros2(endpoint) => {
                    let _ = writeln!(
                        y,
                        "  {}: {{type: ros2, connect: [{}]}}",
                        s.name,
                        quote(endpoint)
                    );
                    continue;
                }
            };
            let _ = writeln!(
                y,
                "  {}: {{type: {kind}, {field}: {}}}",
                s.name,
                quote(value)
            );
        }
        y.push_str(
            "\n# What to seal: each topic is one chain of signed packages. Field rules\n\
             # (include, exclude, encrypt, anonymize) go under each topic, e.g.\n\
             #   defaultAction: include\n\
             #   rules:\n\
             #     - {fieldPath: latitude, action: anonymize, anonymizeStrategy: generalize}\n\
             topics:\n",
        );
        for s in &self.sources {
            for t in &s.topics {
                let _ = writeln!(y, "  - name: {}", quote(&t.name));
                let _ = writeln!(y, "    source: {}", s.name);
                if let Some(m) = &t.matcher {
                    let _ = writeln!(y, "    match: {}", quote(m));
                }
                if let Some(rules) = self.rules.iter().find(|r| r.topic == t.name) {
                    render_rules(&mut y, rules);
                }
            }
        }
        y.push_str("\n# Where sealed chunks go.\ndestinations:\n");
        for d in &self.destinations {
            let (kind, field, value) = match d {
                DestinationPlan::Directory(p) => ("directory", "path", p),
                DestinationPlan::ObjectStore(u) => ("object-store", "url", u),
                DestinationPlan::Market(u) => ("market", "url", u),
            };
            let _ = writeln!(y, "  - {{type: {kind}, {field}: {}}}", quote(value));
        }
        y
    }
}

/// A topic's `defaultAction` and `rules`, as the map writes them.
fn render_rules(y: &mut String, rules: &TopicRules) {
    if let Some(action) = rules.default_action {
        let _ = writeln!(y, "    defaultAction: {}", action.as_str());
    }
    if rules.rules.is_empty() {
        return;
    }
    y.push_str("    rules:\n");
    for r in &rules.rules {
        let _ = write!(
            y,
            "      - {{fieldPath: {}, action: {}",
            quote(&r.field_path),
            r.action.as_str()
        );
        if let Some(strategy) = r.anonymize_strategy {
            let _ = write!(y, ", anonymizeStrategy: {}", strategy.as_str());
        }
        y.push_str("}\n");
    }
}

/// Check that every rules file names a topic the sources feed, once.
pub fn check_rules_topics(rules: &[TopicRules], sources: &[SourcePlan]) -> Result<(), String> {
    let topics: Vec<&str> = sources
        .iter()
        .flat_map(|s| s.topics.iter().map(|t| t.name.as_str()))
        .collect();
    for (i, r) in rules.iter().enumerate() {
        if !topics.contains(&r.topic.as_str()) {
            return Err(format!(
                "--rules: topic {:?} is not one the sources feed ({})",
                r.topic,
                topics.join(", ")
            ));
        }
        if rules[..i].iter().any(|o| o.topic == r.topic) {
            return Err(format!("--rules: topic {:?} has two rules files", r.topic));
        }
    }
    Ok(())
}

/// Group source specifications into named sources: one per file or bag,
/// one per broker (the filters of one broker share its connection). Names
/// are `lines`, `bag`, `broker`, then `lines-2`, `bag-2` … `topics_of`
/// finds the topics of a file or bag the specification does not name
/// (`Err`: why not). Topic names must come out unique.
pub fn plan_sources(
    specs: &[SourceSpec],
    mut topics_of: impl FnMut(&SourceSpec) -> Result<Vec<String>, String>,
    mut path_of: impl FnMut(&str) -> String,
) -> Result<Vec<SourcePlan>, String> {
    let mut out: Vec<SourcePlan> = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut next_name = |base: &'static str| {
        let n = counts.entry(base).or_insert(0);
        *n += 1;
        if *n == 1 {
            base.to_string()
        } else {
            format!("{base}-{n}")
        }
    };
    for spec in specs {
        match spec {
            SourceSpec::Jsonl { path, topics } | SourceSpec::Mcap { path, topics } => {
                let names = if topics.is_empty() {
                    topics_of(spec)?
                } else {
                    topics.clone()
                };
                let (base, kind) = match spec {
                    SourceSpec::Jsonl { .. } => (
                        "lines",
                        SourceKind::Jsonl(if path == "-" {
                            "-".to_string()
                        } else {
                            path_of(path)
                        }),
                    ),
                    _ => ("bag", SourceKind::Mcap(path_of(path))),
                };
                out.push(SourcePlan {
                    name: next_name(base),
                    kind,
                    topics: names
                        .into_iter()
                        .map(|name| TopicPlan {
                            name,
                            matcher: None,
                        })
                        .collect(),
                });
            }
            SourceSpec::Ros2 {
                endpoint,
                topic,
                name,
            } => {
                let plan = TopicPlan {
                    name: name.clone().unwrap_or_else(|| topic.clone()),
                    matcher: name.as_ref().filter(|n| *n != topic).map(|_| topic.clone()),
                };
                match out
                    .iter_mut()
                    .find(|s| s.kind == SourceKind::Ros2(endpoint.clone()))
                {
                    Some(source) => source.topics.push(plan),
                    None => out.push(SourcePlan {
                        name: next_name("robot"),
                        kind: SourceKind::Ros2(endpoint.clone()),
                        topics: vec![plan],
                    }),
                }
            }
            SourceSpec::Mqtt { url, filter, name } => {
                let topic = TopicPlan {
                    name: name.clone().unwrap_or_else(|| filter.clone()),
                    matcher: name
                        .as_ref()
                        .filter(|n| *n != filter)
                        .map(|_| filter.clone()),
                };
                match out
                    .iter_mut()
                    .find(|s| s.kind == SourceKind::Mqtt(url.clone()))
                {
                    Some(source) => source.topics.push(topic),
                    None => out.push(SourcePlan {
                        name: next_name("broker"),
                        kind: SourceKind::Mqtt(url.clone()),
                        topics: vec![topic],
                    }),
                }
            }
        }
    }
    let mut seen = std::collections::BTreeMap::<&str, &str>::new();
    for s in &out {
        for t in &s.topics {
            if let Some(other) = seen.insert(&t.name, &s.name) {
                return Err(format!(
                    "topic {} comes from sources {other} and {}: name the topics of one with @TOPIC",
                    t.name, s.name
                ));
            }
        }
    }
    Ok(out)
}

/// The distinct `topic` values of a JSON lines stream, in order of first
/// appearance (lines that are not JSON objects with a string `topic` are
/// passed over; the agent reports them when it runs). At most `limit`.
pub fn jsonl_topics(input: impl std::io::BufRead, limit: usize) -> Result<Vec<String>, String> {
    let mut topics: Vec<String> = Vec::new();
    for line in input.split(b'\n') {
        let line = line.map_err(|e| e.to_string())?;
        let Ok(value) = json::parse(&line) else {
            continue;
        };
        if let Some(topic) = value.get("topic").and_then(Value::as_str) {
            if !topics.iter().any(|t| t == topic) {
                if topics.len() == limit {
                    return Err(format!(
                        "more than {limit} topics: name the ones to seal with @TOPIC[,TOPIC…]"
                    ));
                }
                topics.push(topic.to_string());
            }
        }
    }
    Ok(topics)
}

/// `path` made absolute against `cwd`, with `.` and `..` resolved lexically.
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in cwd.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `target` relative to the directory `base` (both absolute and lexically
/// normal, see [`absolute`]), with `..` where needed; `target` itself when
/// they share nothing but the root.
pub fn relative(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common <= 1 {
        return target.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let p = |s: &str| s.parse::<SourceSpec>();
        assert_eq!(
            p("jsonl:-@/a,/b").unwrap(),
            SourceSpec::Jsonl {
                path: "-".into(),
                topics: vec!["/a".into(), "/b".into()]
            }
        );
        assert_eq!(
            p("mcap:run1.mcap").unwrap(),
            SourceSpec::Mcap {
                path: "run1.mcap".into(),
                topics: vec![]
            }
        );
        assert_eq!(
            p("ros2://localhost:7447/gps/fix").unwrap(),
            SourceSpec::Ros2 {
                endpoint: "tcp/localhost:7447".into(),
                topic: "/gps/fix".into(),
                name: None,
            }
        );
        assert_eq!(
            p("ros2://127.0.0.1:7448/robot1/+/fix@fixes").unwrap(),
            SourceSpec::Ros2 {
                endpoint: "tcp/127.0.0.1:7448".into(),
                topic: "/robot1/+/fix".into(),
                name: Some("fixes".into()),
            }
        );
        for bad in [
            "ros2://localhost/gps",
            "ros2://localhost:7447/",
            "ros2://h:1/a@x,y",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(
            p("mqtt://127.0.0.1:1883//sensor/gps").unwrap(),
            SourceSpec::Mqtt {
                url: "mqtt://127.0.0.1:1883".into(),
                filter: "/sensor/gps".into(),
                name: None
            }
        );
        assert_eq!(
            p("mqtts://broker/factory/+/telemetry/#@factory/telemetry").unwrap(),
            SourceSpec::Mqtt {
                url: "mqtts://broker".into(),
                filter: "factory/+/telemetry/#".into(),
                name: Some("factory/telemetry".into())
            }
        );
        for bad in [
            "run1.mcap",
            "jsonl:",
            "mqtt://host",
            "mqtt://host/",
            "jsonl:a@",
            "mqtt://h/t@a,b",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(p("csv:x").unwrap_err().to_string().contains("jsonl:PATH"));
    }

    #[test]
    fn relative_paths() {
        let r = |t: &str, b: &str| relative(Path::new(t), Path::new(b));
        assert_eq!(r("/w/keys/a.sk", "/w/agent"), Path::new("../keys/a.sk"));
        assert_eq!(r("/w/agent/spool", "/w/agent"), Path::new("spool"));
        assert_eq!(r("/w/agent", "/w/agent"), Path::new("."));
        assert_eq!(r("/x/y", "/w"), Path::new("/x/y"));
        assert_eq!(
            absolute(Path::new("../k/./a"), Path::new("/w/d")),
            Path::new("/w/k/a")
        );
    }

    #[test]
    fn brokers_are_shared_and_topic_names_unique() {
        let specs: Vec<SourceSpec> = [
            "mqtt://h:1883/a/#@a",
            "mqtt://h:1883/b",
            "jsonl:x.jsonl",
            "jsonl:y.jsonl@c",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let plan = plan_sources(&specs, |_| Ok(vec!["/x".into()]), str::to_string).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[0].name, "broker");
        assert_eq!(
            plan[0].topics,
            [
                TopicPlan {
                    name: "a".into(),
                    matcher: Some("a/#".into())
                },
                TopicPlan {
                    name: "b".into(),
                    matcher: None
                }
            ]
        );
        assert_eq!(
            (plan[1].name.as_str(), plan[2].name.as_str()),
            ("lines", "lines-2")
        );
        let clash: Vec<SourceSpec> = ["jsonl:x.jsonl", "mcap:b.mcap"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let e = plan_sources(&clash, |_| Ok(vec!["/x".into()]), str::to_string).unwrap_err();
        assert!(
            e.contains("topic /x comes from sources lines and bag"),
            "{e}"
        );
    }

    #[test]
    fn jsonl_topics_in_order_of_appearance() {
        let text = b"{\"topic\":\"/b\"}\nnot json\n{\"topic\":\"/a\"}\n{\"topic\":\"/b\"}\n";
        assert_eq!(jsonl_topics(&text[..], 10).unwrap(), ["/b", "/a"]);
        assert!(jsonl_topics(&text[..], 1).is_err());
    }

    #[test]
    fn keys_of_another_role_are_refused() {
        let v = json::parse(br#"{"role": "buyer", "buyerDid": "did:peaq:0x00"}"#).unwrap();
        let e = MachineKeys::from_keys_json(&v).unwrap_err();
        assert!(e.contains("a buyer's keys"), "{e}");
        let v = json::parse(
            br#"{"machineDid": "d", "ownerPublicKeyHex": "o", "operatorPublicKeyHex": "p"}"#,
        )
        .unwrap();
        assert!(MachineKeys::from_keys_json(&v)
            .unwrap_err()
            .starts_with("machinePublicKeyHex: missing"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\x0a\"");
    }
}
