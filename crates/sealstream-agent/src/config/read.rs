//! Reading each section of the Data Event Map from the marked YAML tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, FieldKey, MachineSigningKey, RecipientPublicKey};
use sealstream_core::rules::{Action, AnonymizeStrategy, FieldRule, TopicRules};

use super::check::{index, suggest, Checker, MapReader};
use super::endpoints::{destinations, sources, SourceKinds};
use super::keyfile::read_key;
use super::yaml::{self, Kind, Node};
use super::{
    Chunking, ConfigError, DataEventMap, Datasets, ExtraRecipient, Machine, Problem, Recipients,
    Ros2Topic, Source, Spool, Topic, WhenFull,
};
use crate::ros2::rmw_zenoh::{Qos, Reliability};

const TOP: &[&str] = &[
    "machine",
    "recipients",
    "chunking",
    "datasets",
    "spool",
    "sources",
    "topics",
    "destinations",
];
const MACHINE: &[&str] = &[
    "did",
    "keyId",
    "signingKeyFile",
    "chainKeyFile",
    "fieldKeyFile",
];
const RECIPIENTS: &[&str] = &["owner", "operator", "machine", "extra"];
const EXTRA: &[&str] = &["id", "type", "publicKey"];
const CHUNKING: &[&str] = &["maxBytes", "maxMessages", "maxAge"];
const DATASETS: &[&str] = &["window"];
const SPOOL: &[&str] = &["dir", "maxBytes", "whenFull"];
const TOPIC: &[&str] = &[
    "name",
    "source",
    "match",
    "schemaVersion",
    "defaultAction",
    "rules",
    "type",
    "qos",
];
const QOS: &[&str] = &["reliability", "depth"];
const RULE: &[&str] = &["fieldPath", "action", "anonymizeStrategy"];

/// The default `schemaVersion` of a topic's packages.
const DEFAULT_SCHEMA_VERSION: &str = "1.0.0";
/// The default spool size.
const DEFAULT_SPOOL_BYTES: u64 = 1 << 30;
const DID_SHAPE: &str = "expected did:peaq:0x followed by 40 hex digits";

/// Parse and validate a whole document.
pub(crate) fn document(text: &str, base_dir: &Path) -> Result<DataEventMap, ConfigError> {
    let invalid = |problems| Err(ConfigError::Invalid { problems });
    let root = match yaml::parse(text) {
        Err(e) => {
            return invalid(vec![Problem {
                line: e.line,
                path: String::new(),
                message: format!("invalid YAML (column {}): {}", e.column, e.message),
            }])
        }
        Ok(None) => {
            return invalid(vec![Problem {
                line: 1,
                path: String::new(),
                message: "the Data Event Map is empty".into(),
            }])
        }
        Ok(Some(root)) => root,
    };
    let mut checker = Checker::default();
    let map = read_root(&mut checker, &root, base_dir);
    let mut problems = checker.problems;
    problems.sort_by_key(|p| p.line);
    match map {
        Some(map) if problems.is_empty() => Ok(map),
        _ if problems.is_empty() => invalid(vec![Problem {
            line: 1,
            path: String::new(),
            message: "invalid Data Event Map".into(),
        }]),
        _ => invalid(problems),
    }
}

fn read_root(c: &mut Checker, root: &Node, base: &Path) -> Option<DataEventMap> {
    let top = c.map(root, "", root.line, TOP)?;
    let (machine, has_field_key) = match top.required(c, "machine") {
        Some(n) => machine(c, n, top.key_line("machine"), base),
        None => (None, true),
    };
    let recipients = top
        .required(c, "recipients")
        .and_then(|n| recipients(c, n, top.key_line("recipients")));
    let chunking = match top.get("chunking") {
        Some(n) => chunking(c, n, top.key_line("chunking")),
        None => Some((Chunking::default(), top.line)),
    };
    let datasets = match top.get("datasets") {
        Some(n) => datasets(c, n, top.key_line("datasets")).map(Some),
        None => Some(None),
    };
    let spool = match top.get("spool") {
        Some(n) => spool(c, n, top.key_line("spool"), base),
        None => Some((
            Spool {
                dir: base.join("spool"),
                max_bytes: DEFAULT_SPOOL_BYTES,
                when_full: WhenFull::Block,
            },
            top.line,
        )),
    };
    let did = machine.as_ref().map(|m| m.did);
    let (sources, source_kinds) = match top.required(c, "sources") {
        Some(n) => sources(c, n, top.key_line("sources"), base, did),
        None => (None, None),
    };
    let topics = top
        .required(c, "topics")
        .and_then(|n| topics(c, n, source_kinds.as_ref(), sources.as_ref()));
    let destinations = top
        .required(c, "destinations")
        .and_then(|n| destinations(c, n, base));

    // Cross-section checks.
    if let (Some((chunking, _)), Some((spool, spool_line))) = (&chunking, &spool) {
        if spool.max_bytes < chunking.max_bytes {
            c.report(
                *spool_line,
                "spool.maxBytes",
                "must be at least chunking.maxBytes",
            );
        }
    }
    if let (false, Some((_, Some((line, path))))) = (has_field_key, &topics) {
        c.report(
            *line,
            path,
            "encrypt needs machine.fieldKeyFile, which is not set",
        );
    }

    Some(DataEventMap {
        base_dir: base.to_path_buf(),
        machine: machine?,
        recipients: recipients?,
        chunking: chunking?.0,
        datasets: datasets?,
        spool: spool?.0,
        sources: sources?,
        topics: topics?.0,
        destinations: destinations?,
    })
}

pub(super) fn resolve(base: &Path, text: &str) -> PathBuf {
    let path = Path::new(text);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// The machine, and whether it has a `fieldKeyFile` (true when unknown).
fn machine(c: &mut Checker, node: &Node, line: usize, base: &Path) -> (Option<Machine>, bool) {
    let Some(m) = c.map(node, "machine", line, MACHINE) else {
        return (None, true);
    };
    let has_field_key = m.get("fieldKeyFile").is_some();
    (machine_fields(c, &m, base), has_field_key)
}

fn machine_fields(c: &mut Checker, m: &MapReader<'_>, base: &Path) -> Option<Machine> {
    let did = m.required(c, "did").and_then(|n| {
        let text = c.string(n, "machine.did")?;
        match Did::parse(&text, "") {
            Ok(did) => Some(did),
            Err(_) => {
                c.report(n.line, "machine.did", DID_SHAPE);
                None
            }
        }
    });
    let key_id = match m.get("keyId") {
        None => did.map(|d| d.default_key_id()),
        Some(n) => c.string(n, "machine.keyId").and_then(|text| {
            let parsed = text
                .split_once('#')
                .filter(|(_, fragment)| {
                    !fragment.is_empty() && !fragment.contains(char::is_whitespace)
                })
                .and_then(|(left, _)| Did::parse(left, "").ok());
            match (parsed, did) {
                (None, _) => {
                    c.report(
                        n.line,
                        "machine.keyId",
                        "expected the machine DID followed by #fragment (did:peaq:0x…#keys-1)",
                    );
                    None
                }
                (Some(left), Some(did)) if left != did => {
                    c.report(n.line, "machine.keyId", "must start with machine.did");
                    None
                }
                (Some(_), _) => Some(text),
            }
        }),
    };

    let key_file = |c: &mut Checker, name: &str| -> Option<(&Node, PathBuf)> {
        let path = m.at(name);
        let n = m.required(c, name)?;
        let text = c.string(n, &path)?;
        Some((n, resolve(base, &text)))
    };
    let signing = key_file(c, "signingKeyFile").and_then(|(n, file)| {
        let shown = scalar_text(n);
        match read_key(&file, shown, |t| MachineSigningKey::from_hex(t, "")) {
            Err(message) => {
                c.report(n.line, "machine.signingKeyFile", message);
                None
            }
            Ok(key) => {
                let of_key = Did::of_key(&key);
                match did {
                    Some(did) if did != of_key => {
                        c.report(
                            n.line,
                            "machine.signingKeyFile",
                            format!("{shown} holds the key of {of_key}, not of machine.did"),
                        );
                        None
                    }
                    _ => Some((key, file, n.line)),
                }
            }
        }
    });
    let chain = key_file(c, "chainKeyFile").and_then(|(n, file)| {
        match read_key(&file, scalar_text(n), |t| ChainSigningKey::from_hex(t, "")) {
            Err(message) => {
                c.report(n.line, "machine.chainKeyFile", message);
                None
            }
            Ok(key) => Some((key, file, n.line)),
        }
    });
    let field = match m.get("fieldKeyFile") {
        None => Some(None),
        Some(n) => c.string(n, "machine.fieldKeyFile").and_then(|text| {
            let file = resolve(base, &text);
            match read_key(&file, &text, |t| FieldKey::from_hex(t, "")) {
                Err(message) => {
                    c.report(n.line, "machine.fieldKeyFile", message);
                    None
                }
                Ok(key) => Some(Some((key, file, n.line))),
            }
        }),
    };

    // One key per purpose: the same 32 bytes in two files is a mistake.
    let strip = |s: &str| s.trim_start_matches("0x").to_string();
    if let (Some((s, _, _)), Some((ch, _, line))) = (&signing, &chain) {
        if strip(&s.to_hex_secret()) == strip(&ch.to_hex_secret()) {
            c.report(
                *line,
                "machine.chainKeyFile",
                "holds the same key as machine.signingKeyFile; use a separate key for each purpose",
            );
        }
    }
    if let Some(Some((f, _, line))) = &field {
        let f = strip(&f.to_hex_secret());
        let same_as = if signing
            .as_ref()
            .is_some_and(|(s, _, _)| strip(&s.to_hex_secret()) == f)
        {
            Some("machine.signingKeyFile")
        } else if chain
            .as_ref()
            .is_some_and(|(k, _, _)| strip(&k.to_hex_secret()) == f)
        {
            Some("machine.chainKeyFile")
        } else {
            None
        };
        if let Some(other) = same_as {
            c.report(
                *line,
                "machine.fieldKeyFile",
                format!("holds the same key as {other}; use a separate key for each purpose"),
            );
        }
    }

    let (signing_key, signing_key_file, _) = signing?;
    let (chain_key, chain_key_file, _) = chain?;
    let (field_key, field_key_file) = match field? {
        Some((key, file, _)) => (Some(key), Some(file)),
        None => (None, None),
    };
    Some(Machine {
        did: did?,
        key_id: key_id?,
        signing_key_file,
        chain_key_file,
        field_key_file,
        signing_key,
        chain_key,
        field_key,
    })
}

fn scalar_text(node: &Node) -> &str {
    match &node.kind {
        Kind::Scalar { text, .. } => text,
        _ => "",
    }
}

fn public_key(c: &mut Checker, node: &Node, path: &str) -> Option<RecipientPublicKey> {
    let text = c.string(node, path)?;
    let key = RecipientPublicKey::from_hex(&text, "")
        .and_then(|k| k.check_usable("").map(|()| k))
        .map_err(|e| c.report(node.line, path, e.constraint))
        .ok()?;
    Some(key)
}

fn recipients(c: &mut Checker, node: &Node, line: usize) -> Option<Recipients> {
    let r = c.map(node, "recipients", line, RECIPIENTS)?;
    let mut fixed = [None, None, None];
    for (slot, name) in fixed.iter_mut().zip(["owner", "operator", "machine"]) {
        *slot = r
            .required(c, name)
            .and_then(|n| public_key(c, n, &r.at(name)));
    }
    let extra = match r.get("extra") {
        None => Some(Vec::new()),
        Some(n) => extra_recipients(c, n),
    };
    let [owner, operator, machine] = fixed;
    Some(Recipients {
        owner: owner?,
        operator: operator?,
        machine: machine?,
        extra: extra?,
    })
}

fn extra_recipients(c: &mut Checker, node: &Node) -> Option<Vec<ExtraRecipient>> {
    let items = c.list(node, "recipients.extra")?;
    let mut out = Vec::new();
    let mut ok = true;
    let mut ids: Vec<(String, usize)> = ["owner-1", "operator-1", "machine-1"]
        .iter()
        .map(|id| (id.to_string(), 0))
        .collect();
    for (i, item) in items.iter().enumerate() {
        let path = index("recipients.extra", i);
        let Some(r) = c.map(item, &path, item.line, EXTRA) else {
            ok = false;
            continue;
        };
        let id = r.required(c, "id").and_then(|n| {
            let id = c.string(n, &r.at("id"))?;
            match ids.iter().find(|(seen, _)| *seen == id) {
                Some((_, 0)) => {
                    c.report(
                        n.line,
                        &r.at("id"),
                        format!("{id:?} is the id of a built-in recipient"),
                    );
                    None
                }
                Some((_, first)) => {
                    c.report(
                        n.line,
                        &r.at("id"),
                        format!("duplicate recipient id (first at line {first})"),
                    );
                    None
                }
                None => {
                    ids.push((id.clone(), n.line));
                    Some(id)
                }
            }
        });
        let kind = r.required(c, "type").and_then(|n| {
            let kind = c.string(n, &r.at("type"))?;
            let valid = kind.starts_with(|ch: char| ch.is_ascii_lowercase())
                && kind
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
            if !valid {
                c.report(
                    n.line,
                    &r.at("type"),
                    "expected lowercase letters, digits and hyphens (e.g. auditor)",
                );
                return None;
            }
            Some(kind)
        });
        let key = r
            .required(c, "publicKey")
            .and_then(|n| public_key(c, n, &r.at("publicKey")));
        match (id, kind, key) {
            (Some(id), Some(recipient_type), Some(public_key)) => out.push(ExtraRecipient {
                id,
                recipient_type,
                public_key,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// Chunking, and the line of its `maxBytes` (for the spool check).
fn chunking(c: &mut Checker, node: &Node, line: usize) -> Option<(Chunking, usize)> {
    let m = c.map(node, "chunking", line, CHUNKING)?;
    let d = Chunking::default();
    let max_bytes = m
        .get("maxBytes")
        .map_or(Some(d.max_bytes), |n| c.size(n, "chunking.maxBytes"));
    let max_messages = m.get("maxMessages").map_or(Some(d.max_messages), |n| {
        c.positive_integer(n, "chunking.maxMessages")
    });
    let max_age = m
        .get("maxAge")
        .map_or(Some(d.max_age), |n| c.duration(n, "chunking.maxAge"));
    Some((
        Chunking {
            max_bytes: max_bytes?,
            max_messages: max_messages?,
            max_age: max_age?,
        },
        m.key_line("maxBytes"),
    ))
}

fn datasets(c: &mut Checker, node: &Node, line: usize) -> Option<Datasets> {
    let m = c.map(node, "datasets", line, DATASETS)?;
    let window = m
        .required(c, "window")
        .and_then(|n| c.duration(n, "datasets.window"))?;
    Some(Datasets { window })
}

/// The spool, and the line of its `maxBytes` (or of the section).
fn spool(c: &mut Checker, node: &Node, line: usize, base: &Path) -> Option<(Spool, usize)> {
    let m = c.map(node, "spool", line, SPOOL)?;
    let dir = match m.get("dir") {
        None => Some(base.join("spool")),
        Some(n) => c.string(n, "spool.dir").map(|t| resolve(base, &t)),
    };
    let max_bytes = m
        .get("maxBytes")
        .map_or(Some(DEFAULT_SPOOL_BYTES), |n| c.size(n, "spool.maxBytes"));
    let when_full = match m.get("whenFull") {
        None => Some(WhenFull::Block),
        Some(n) => c
            .choice(n, "spool.whenFull", &["block", "drop-oldest"])
            .map(|w| {
                if w == "block" {
                    WhenFull::Block
                } else {
                    WhenFull::DropOldest
                }
            }),
    };
    Some((
        Spool {
            dir: dir?,
            max_bytes: max_bytes?,
            when_full: when_full?,
        },
        m.key_line("maxBytes"),
    ))
}

/// The topics, and the line and path of the first `encrypt` among them.
#[allow(clippy::type_complexity)]
fn topics(
    c: &mut Checker,
    node: &Node,
    kinds: Option<&SourceKinds>,
    sources: Option<&BTreeMap<String, Source>>,
) -> Option<(Vec<Topic>, Option<(usize, String)>)> {
    let items = c.list(node, "topics")?;
    if items.is_empty() {
        c.report(node.line, "topics", "at least one topic is required");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut first_encrypt = None;
    for (i, item) in items.iter().enumerate() {
        let path = index("topics", i);
        match topic(
            c,
            item,
            &path,
            kinds,
            sources,
            &mut names,
            &mut first_encrypt,
        ) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some((out, first_encrypt))
}

fn topic(
    c: &mut Checker,
    node: &Node,
    path: &str,
    kinds: Option<&SourceKinds>,
    sources: Option<&BTreeMap<String, Source>>,
    names: &mut Vec<(String, usize)>,
    first_encrypt: &mut Option<(usize, String)>,
) -> Option<Topic> {
    let m = c.map(node, path, node.line, TOPIC)?;
    let name = m.required(c, "name").and_then(|n| {
        let name = c.string(n, &m.at("name"))?;
        if let Some((_, first)) = names.iter().find(|(seen, _)| *seen == name) {
            c.report(
                n.line,
                &m.at("name"),
                format!("duplicate topic name (first at line {first})"),
            );
            return None;
        }
        names.push((name.clone(), n.line));
        Some(name)
    });
    // The source's type when known; `None` also when the source is invalid.
    let mut kind = None;
    let source = m.required(c, "source").and_then(|n| {
        let source = c.string(n, &m.at("source"))?;
        let Some(kinds) = kinds else {
            return Some(source);
        };
        match kinds.get(&source) {
            Some(k) => {
                kind = *k;
                Some(source)
            }
            None => {
                let names: Vec<&str> = kinds.keys().map(String::as_str).collect();
                let message = match suggest(&source, &names) {
                    Some(s) => format!("no source named {source:?} (did you mean {s:?}?)"),
                    None => format!("no source named {source:?}"),
                };
                c.report(n.line, &m.at("source"), message);
                None
            }
        }
    });
    let matcher = match m.get("match") {
        None => name.clone(),
        Some(n) => c.string(n, &m.at("match")).and_then(|text| {
            if kind == Some("ros2") && !text.starts_with('/') {
                c.report(
                    n.line,
                    &m.at("match"),
                    "a ROS 2 topic is absolute: it starts with /",
                );
                return None;
            }
            if !text.contains(['+', '#']) {
                return Some(text);
            }
            match kind {
                Some("mqtt" | "ros2") if !valid_mqtt_filter(&text) => {
                    c.report(
                        n.line,
                        &m.at("match"),
                        "invalid MQTT filter: + and # must each be a whole level, and # only the last",
                    );
                    None
                }
                Some("mqtt" | "ros2") | None => Some(text),
                Some(_) => {
                    c.report(
                        n.line,
                        &m.at("match"),
                        "wildcards + and # are only allowed for mqtt and ros2 sources",
                    );
                    None
                }
            }
        }),
    };
    let schema_version = match m.get("schemaVersion") {
        None => Some(DEFAULT_SCHEMA_VERSION.to_string()),
        Some(n) => c.string(n, &m.at("schemaVersion")).and_then(|v| {
            if v == sealstream_core::gap::GAP_SCHEMA_VERSION {
                c.report(
                    n.line,
                    &m.at("schemaVersion"),
                    "reserved for the agent's gap records",
                );
                return None;
            }
            Some(v)
        }),
    };
    let default_action = match m.get("defaultAction") {
        None => Some(None),
        Some(n) => {
            let at = m.at("defaultAction");
            if matches!(&n.kind, Kind::Scalar { text, .. } if text == "anonymize") {
                c.report(
                    n.line,
                    &at,
                    "anonymize cannot be a default action (it needs a strategy); \
                     use include, exclude or encrypt",
                );
                None
            } else {
                c.choice(n, &at, &["include", "exclude", "encrypt"])
                    .and_then(Action::parse)
                    .map(|a| {
                        if a == Action::Encrypt && first_encrypt.is_none() {
                            *first_encrypt = Some((n.line, at.clone()));
                        }
                        Some(a)
                    })
            }
        }
    };
    let rules = match m.get("rules") {
        None => Some(Vec::new()),
        Some(n) => rules(c, n, &m.at("rules"), first_encrypt),
    };
    let ros2 = ros2_topic(c, &m, kind, source.as_deref().and_then(|s| sources?.get(s)));
    if kind == Some("ros2")
        && name.as_deref().is_some_and(|n| !n.starts_with('/'))
        && m.get("match").is_none()
    {
        c.report(
            m.key_line("name"),
            &m.at("match"),
            "required for a ros2 source when the name is not a ROS topic (/…)",
        );
    }
    let name = name?;
    Some(Topic {
        source: source?,
        matcher: matcher?,
        schema_version: schema_version?,
        rules: TopicRules {
            topic: name.clone(),
            rules: rules?,
            default_action: default_action?,
        },
        name,
        ros2: ros2?,
    })
}

/// `type` and `qos` of a topic: only for `ros2` sources. `source` is the
/// topic's source when it is valid, to check the type has a definition.
fn ros2_topic(
    c: &mut Checker,
    m: &MapReader<'_>,
    kind: Option<&str>,
    source: Option<&Source>,
) -> Option<Option<Ros2Topic>> {
    if kind.is_some() && kind != Some("ros2") {
        for key in ["type", "qos"] {
            if m.get(key).is_some() {
                c.report(
                    m.key_line(key),
                    &m.at(key),
                    "only for topics of ros2 sources",
                );
            }
        }
        return Some(None);
    }
    let ros_type = match m.get("type") {
        None => Some(None),
        Some(n) => c.string(n, &m.at("type")).and_then(|text| {
            let Some(name) = crate::ros2::msgdef::canonical_name(&text)
                .filter(|_| crate::ros2::rmw_zenoh::dds_type_name(&text).is_some())
            else {
                c.report(
                    n.line,
                    &m.at("type"),
                    "expected a message type pkg/msg/Type",
                );
                return None;
            };
            let full = match name.split_once('/') {
                Some((pkg, ty)) => format!("{pkg}/msg/{ty}"),
                None => name,
            };
            if let Some(Source::Ros2(s)) = source {
                if let Err(e) = s.library.schema(&full) {
                    c.report(
                        n.line,
                        &m.at("type"),
                        format!("{e}: add its .msg file to the source's messages"),
                    );
                    return None;
                }
            }
            Some(Some(full))
        }),
    };
    let qos = match m.get("qos") {
        None => Some(Qos::default()),
        Some(n) => {
            let q = c.map(n, &m.at("qos"), n.line, QOS)?;
            let reliability = match q.get("reliability") {
                None => Some(Reliability::Reliable),
                Some(r) => c
                    .choice(r, &q.at("reliability"), &["reliable", "best-effort"])
                    .map(|r| {
                        if r == "reliable" {
                            Reliability::Reliable
                        } else {
                            Reliability::BestEffort
                        }
                    }),
            };
            let depth = match q.get("depth") {
                None => Some(Qos::default().depth),
                Some(d) => c
                    .positive_integer(d, &q.at("depth"))
                    .and_then(|d| u32::try_from(d).ok()),
            };
            Some(Qos {
                reliability: reliability?,
                depth: depth?,
            })
        }
    };
    if kind.is_none() {
        return Some(None);
    }
    Some(Some(Ros2Topic {
        ros_type: ros_type?,
        qos: qos?,
    }))
}

fn valid_mqtt_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| {
        if level.contains('#') {
            *level == "#" && i == levels.len() - 1
        } else {
            !level.contains('+') || *level == "+"
        }
    })
}

fn rules(
    c: &mut Checker,
    node: &Node,
    path: &str,
    first_encrypt: &mut Option<(usize, String)>,
) -> Option<Vec<FieldRule>> {
    let items = c.list(node, path)?;
    let mut out: Vec<FieldRule> = Vec::new();
    // Every valid field path so far, with its rule's index, even of rules
    // with other problems, so that shadowing is reported independently.
    let mut earlier: Vec<(usize, String)> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let rule_path = index(path, i);
        let Some(m) = c.map(item, &rule_path, item.line, RULE) else {
            ok = false;
            continue;
        };
        let field_path = m.required(c, "fieldPath").and_then(|n| {
            let at = m.at("fieldPath");
            let text = c.string(n, &at)?;
            if text.split('.').any(str::is_empty) {
                c.report(
                    n.line,
                    &at,
                    "expected a dot-separated path without empty parts (e.g. gps.latitude)",
                );
                return None;
            }
            // The first rule that equals or is an ancestor of a path governs it.
            let covering = earlier.iter().find(|(_, fp)| {
                text == *fp
                    || (text.starts_with(fp.as_str())
                        && text.as_bytes().get(fp.len()) == Some(&b'.'))
            });
            if let Some((j, fp)) = covering {
                let message = if *fp == text {
                    format!("duplicate of {path}[{j}]; only the first rule for a path applies")
                } else {
                    format!(
                        "never applies: {path}[{j}] ({fp}) comes first and covers it; \
                         put the more specific rule first"
                    )
                };
                c.report(n.line, &at, message);
                return None;
            }
            earlier.push((i, text.clone()));
            Some(text)
        });
        let action = m.required(c, "action").and_then(|n| {
            let at = m.at("action");
            let action = c
                .choice(n, &at, &["include", "exclude", "encrypt", "anonymize"])
                .and_then(Action::parse)?;
            if action == Action::Encrypt && first_encrypt.is_none() {
                *first_encrypt = Some((n.line, at));
            }
            Some(action)
        });
        let strategy = match m.get("anonymizeStrategy") {
            None => Some(None),
            Some(n) => c
                .choice(
                    n,
                    &m.at("anonymizeStrategy"),
                    &["hash", "generalize", "redact"],
                )
                .and_then(AnonymizeStrategy::parse)
                .map(Some),
        };
        match (action, strategy) {
            (Some(Action::Anonymize), Some(None)) => {
                c.report(
                    m.line,
                    &m.at("anonymizeStrategy"),
                    "required when action is anonymize",
                );
                ok = false;
            }
            (Some(action), Some(Some(_))) if action != Action::Anonymize => {
                c.report(
                    m.key_line("anonymizeStrategy"),
                    &m.at("anonymizeStrategy"),
                    "only allowed when action is anonymize",
                );
                ok = false;
            }
            (Some(action), Some(anonymize_strategy)) => match field_path {
                Some(field_path) => out.push(FieldRule {
                    field_path,
                    action,
                    anonymize_strategy,
                }),
                None => ok = false,
            },
            _ => ok = false,
        }
    }
    ok.then_some(out)
}
