//! Reading the endpoints of the Data Event Map: `sources` and `destinations`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sealstream_core::identity::Did;

use super::check::{index, join, Checker, MapReader};
use super::read::resolve;
use super::yaml::{Kind, Node};
use super::{
    Destination, JsonlInput, MqttSource, ObjectStoreLocation, P2pDestination, Ros2Source, Source,
};
use crate::ros2::library::MessageLibrary;

const SOURCE_TYPES: &[&str] = &["mcap", "mqtt", "ros2", "jsonl"];
const SOURCE_KEYS: &[&str] = &[
    "type",
    "path",
    "url",
    "clientId",
    "qos",
    "middleware",
    "domainId",
    "connect",
    "listen",
    "node",
    "namespace",
    "messages",
    "queue",
];
const ROS2_KEYS: &[&str] = &[
    "middleware",
    "domainId",
    "connect",
    "listen",
    "node",
    "namespace",
    "messages",
    "queue",
];
/// The default endpoint of a `ros2` source: the local `rmw_zenohd` router.
const DEFAULT_ZENOH_CONNECT: &str = "tcp/localhost:7447";
/// The default `queue` of a `ros2` source.
const DEFAULT_ROS2_QUEUE: u64 = 16384;
const DESTINATION_TYPES: &[&str] = &["directory", "object-store", "market", "p2p"];
const DESTINATION_KEYS: &[&str] = &[
    "type",
    "path",
    "url",
    "listen",
    "bootstrap",
    "identityFile",
    "market",
    "recipientKeyFile",
    "revalidate",
    "maxSessions",
];
const P2P_KEYS: &[&str] = &[
    "path",
    "listen",
    "bootstrap",
    "identityFile",
    "market",
    "recipientKeyFile",
    "revalidate",
    "maxSessions",
];
/// The listen address of a `p2p` destination when none is given.
pub const DEFAULT_P2P_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

pub(super) type SourceKinds = BTreeMap<String, Option<&'static str>>;

/// The sources, and every source name with its type (if valid), so that
/// topics can be checked against sources that have problems of their own.
pub(super) fn sources(
    c: &mut Checker,
    node: &Node,
    line: usize,
    base: &Path,
    did: Option<Did>,
) -> (Option<BTreeMap<String, Source>>, Option<SourceKinds>) {
    let Some(m) = c.map(node, "sources", line, &[]) else {
        return (None, None);
    };
    let mut kinds = SourceKinds::new();
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (name, key, value) in m.entries() {
        let path = join("sources", name);
        let source = source(c, value, key.line, &path, base, did);
        kinds.insert(name.to_string(), source.as_ref().map(Source::kind));
        match source {
            Some(source) => {
                out.insert(name.to_string(), source);
            }
            None => ok = false,
        }
    }
    if kinds.is_empty() {
        c.report(line, "sources", "at least one source is required");
        return (None, Some(kinds));
    }
    (ok.then_some(out), Some(kinds))
}

/// Read the `type` of a source or destination, then check every other key
/// is one that type takes.
fn typed<'a>(
    c: &mut Checker,
    m: &MapReader<'a>,
    types: &[&'static str],
    keys_of: impl Fn(&str) -> &'static [&'static str],
) -> Option<&'static str> {
    let kind = m
        .required(c, "type")
        .and_then(|n| c.choice(n, &m.at("type"), types))?;
    let allowed = keys_of(kind);
    for (name, key, _) in m.entries() {
        if name != "type" && !allowed.contains(&name) {
            c.report(
                key.line,
                &m.at(name),
                format!(
                    "not a field of type {kind} (expected: {})",
                    allowed.join(", ")
                ),
            );
        }
    }
    Some(kind)
}

fn source(
    c: &mut Checker,
    node: &Node,
    line: usize,
    path: &str,
    base: &Path,
    did: Option<Did>,
) -> Option<Source> {
    let m = c.map(node, path, line, SOURCE_KEYS)?;
    let kind = typed(c, &m, SOURCE_TYPES, |kind| match kind {
        "mqtt" => &["url", "clientId", "qos"],
        "ros2" => ROS2_KEYS,
        _ => &["path"],
    })?;
    match kind {
        "ros2" => ros2(c, &m, base).map(Source::Ros2),
        "mcap" => {
            let text = m
                .required(c, "path")
                .and_then(|n| c.string(n, &m.at("path")))?;
            Some(Source::Mcap {
                path: resolve(base, &text),
            })
        }
        "jsonl" => {
            let text = m
                .required(c, "path")
                .and_then(|n| c.string(n, &m.at("path")))?;
            Some(Source::Jsonl {
                input: if text == "-" {
                    JsonlInput::Stdin
                } else {
                    JsonlInput::File(resolve(base, &text))
                },
            })
        }
        _ => {
            let url = m.required(c, "url").and_then(|n| {
                let text = c.string(n, &m.at("url"))?;
                match parse_mqtt_url(&text) {
                    Ok(parts) => Some((text, parts)),
                    Err(message) => {
                        c.report(n.line, &m.at("url"), message);
                        None
                    }
                }
            });
            let client_id = match m.get("clientId") {
                Some(n) => c.string(n, &m.at("clientId")),
                None => Some(match did {
                    Some(did) => {
                        let hex = did.address().to_checksum().to_ascii_lowercase();
                        format!("sealstream-{}", &hex[2..10])
                    }
                    None => "sealstream".to_string(),
                }),
            };
            let qos = match m.get("qos") {
                None => Some(1),
                Some(n) => match &n.kind {
                    Kind::Scalar { text, plain: true }
                        if matches!(text.as_str(), "0" | "1" | "2") =>
                    {
                        text.parse().ok()
                    }
                    _ => {
                        c.report(n.line, &m.at("qos"), "expected 0, 1 or 2");
                        None
                    }
                },
            };
            let (url, (host, port, tls)) = url?;
            Some(Source::Mqtt(MqttSource {
                url,
                host,
                port,
                tls,
                client_id: client_id?,
                qos: qos?,
            }))
        }
    }
}

/// A `ros2` source's fields.
fn ros2(c: &mut Checker, m: &MapReader<'_>, base: &Path) -> Option<Ros2Source> {
    let middleware = match m.get("middleware") {
        None => Some("zenoh"),
        Some(n) => c.choice(n, &m.at("middleware"), &["zenoh"]),
    };
    let domain_id = match m.get("domainId") {
        None => Some(0),
        Some(n) => match &n.kind {
            Kind::Scalar { text, plain: true } => match text.parse::<u32>() {
                Ok(d) if d <= 232 => Some(d),
                _ => {
                    c.report(
                        n.line,
                        &m.at("domainId"),
                        "expected an integer from 0 to 232",
                    );
                    None
                }
            },
            _ => {
                c.report(
                    n.line,
                    &m.at("domainId"),
                    "expected an integer from 0 to 232",
                );
                None
            }
        },
    };
    let endpoints = |c: &mut Checker, key: &str, default: &[&str]| -> Option<Vec<String>> {
        let Some(n) = m.get(key) else {
            return Some(default.iter().map(|s| s.to_string()).collect());
        };
        let items = c.list(n, &m.at(key))?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = index(&m.at(key), i);
            match c.string(item, &path) {
                Some(text) if valid_zenoh_endpoint(&text) => out.push(text),
                Some(_) => {
                    c.report(
                        item.line,
                        &path,
                        "expected a Zenoh TCP endpoint tcp/HOST:PORT (tcp/127.0.0.1:7447, tcp/[::1]:7447, tcp/localhost:7447)",
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    };
    let connect = endpoints(c, "connect", &[DEFAULT_ZENOH_CONNECT]);
    let listen = endpoints(c, "listen", &[]);
    if let (Some(a), Some(b)) = (&connect, &listen) {
        if a.is_empty() && b.is_empty() {
            c.report(
                m.key_line("connect"),
                &m.at("connect"),
                "connect and listen are both empty: the agent would reach no publisher",
            );
        }
    }
    // A string field with a default and a rule of its own.
    let checked =
        |c: &mut Checker, key: &str, default: &str, valid: fn(&str) -> bool, rule: &str| {
            let Some(n) = m.get(key) else {
                return Some(default.to_string());
            };
            let text = c.string(n, &m.at(key))?;
            if valid(&text) {
                return Some(text);
            }
            c.report(n.line, &m.at(key), rule);
            None
        };
    let node = checked(
        c,
        "node",
        "sealstream_agent",
        valid_ros_name,
        "expected a ROS node name: letters, digits and _, not starting with a digit",
    );
    let namespace = checked(
        c,
        "namespace",
        "/",
        |text| {
            text == "/"
                || (text.starts_with('/')
                    && !text.ends_with('/')
                    && text[1..].split('/').all(valid_ros_name))
        },
        "expected / or an absolute ROS namespace (/robot1, /fleet/robot1)",
    );
    let library = match m.get("messages") {
        None => Some(MessageLibrary::shipped()),
        Some(n) => messages(c, n, &m.at("messages"), base),
    };
    let queue = match m.get("queue") {
        None => Some(DEFAULT_ROS2_QUEUE),
        Some(n) => c.positive_integer(n, &m.at("queue")),
    };
    middleware?;
    Some(Ros2Source {
        domain_id: domain_id?,
        connect: connect?,
        listen: listen?,
        node: node?,
        namespace: namespace?,
        library: library?,
        queue: usize::try_from(queue?).unwrap_or(usize::MAX),
    })
}

/// `tcp/HOST:PORT`.
pub(super) fn valid_zenoh_endpoint(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("tcp/") else {
        return false;
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// A ROS name token: `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn valid_ros_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
        && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// The shipped message definitions plus those of `messages`: `.msg` files,
/// or directories searched for them. A file's type is `pkg/msg/Name` from
/// `…/pkg/msg/Name.msg` (or `…/pkg/Name.msg`).
fn messages(c: &mut Checker, node: &Node, path: &str, base: &Path) -> Option<MessageLibrary> {
    let items = c.list(node, path)?;
    let mut library = MessageLibrary::shipped();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = index(path, i);
        let Some(text) = c.string(item, &at) else {
            ok = false;
            continue;
        };
        let target = resolve(base, &text);
        let mut files = Vec::new();
        if let Err(e) = msg_files(&target, &mut files) {
            c.report(
                item.line,
                &at,
                format!("cannot read {}: {e}", target.display()),
            );
            ok = false;
            continue;
        }
        if files.is_empty() {
            c.report(
                item.line,
                &at,
                format!("no .msg file in {}", target.display()),
            );
            ok = false;
        }
        for file in files {
            let Some(type_name) = msg_type_name(&file) else {
                c.report(
                    item.line,
                    &at,
                    format!(
                        "{}: cannot tell the package: put it in PKG/msg/Name.msg",
                        file.display()
                    ),
                );
                ok = false;
                continue;
            };
            let added = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|def| library.add(&type_name, &def).map_err(|e| e.to_string()));
            if let Err(e) = added {
                c.report(item.line, &at, format!("{}: {e}", file.display()));
                ok = false;
            }
        }
    }
    ok.then_some(library)
}

fn msg_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            msg_files(&entry, out)?;
        } else if entry.extension().is_some_and(|x| x == "msg") {
            out.push(entry);
        }
    }
    Ok(())
}

/// `…/pkg/msg/Name.msg` or `…/pkg/Name.msg` → `pkg/msg/Name`.
fn msg_type_name(file: &Path) -> Option<String> {
    let name = file.file_stem()?.to_str()?;
    let parent = file.parent()?;
    let pkg_dir = if parent.file_name()? == "msg" {
        parent.parent()?
    } else {
        parent
    };
    let pkg = pkg_dir.file_name()?.to_str()?;
    (valid_ros_name(pkg) && valid_ros_name(name)).then(|| format!("{pkg}/msg/{name}"))
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` → (host, port, tls).
fn parse_mqtt_url(text: &str) -> Result<(String, u16, bool), String> {
    const SHAPE: &str = "expected mqtt://host[:port] or mqtts://host[:port]";
    let (scheme, rest) = text.split_once("://").ok_or(SHAPE)?;
    let tls = match scheme {
        "mqtt" => false,
        "mqtts" => true,
        _ => return Err(SHAPE.into()),
    };
    if rest.contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(format!("{SHAPE} (no path)"));
    }
    let (host, port) = split_host_port(authority).ok_or(SHAPE)?;
    let port = match port {
        None => {
            if tls {
                8883
            } else {
                1883
            }
        }
        Some(p) => p,
    };
    Ok((host, port, tls))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
    };
    Some((host.to_string(), port))
}

pub(super) fn destinations(c: &mut Checker, node: &Node, base: &Path) -> Option<Vec<Destination>> {
    let items = c.list(node, "destinations")?;
    if items.is_empty() {
        c.report(
            node.line,
            "destinations",
            "at least one destination is required",
        );
        return None;
    }
    let mut out: Vec<(Destination, usize)> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = index("destinations", i);
        match destination(c, item, &path, base) {
            Some(d) => {
                if let Some(j) = out.iter().position(|(seen, _)| *seen == d) {
                    c.report(item.line, &path, format!("duplicate of destinations[{j}]"));
                    ok = false;
                } else {
                    out.push((d, i));
                }
            }
            None => ok = false,
        }
    }
    ok.then(|| out.into_iter().map(|(d, _)| d).collect())
}

fn destination(c: &mut Checker, node: &Node, path: &str, base: &Path) -> Option<Destination> {
    let m = c.map(node, path, node.line, DESTINATION_KEYS)?;
    let kind = typed(c, &m, DESTINATION_TYPES, |kind| match kind {
        "directory" => &["path"],
        "p2p" => P2P_KEYS,
        _ => &["url"],
    })?;
    if kind == "p2p" {
        return p2p(c, &m, base).map(Destination::P2p);
    }
    if kind == "directory" {
        let text = m
            .required(c, "path")
            .and_then(|n| c.string(n, &m.at("path")))?;
        return Some(Destination::Directory {
            path: resolve(base, &text),
        });
    }
    let n = m.required(c, "url")?;
    let url = c.string(n, &m.at("url"))?;
    let parsed = if kind == "object-store" {
        parse_object_store_url(&url).map(|location| Destination::ObjectStore {
            url: url.clone(),
            location,
        })
    } else {
        parse_http_url(&url).map(|()| Destination::Market { url: url.clone() })
    };
    parsed
        .map_err(|message| c.report(n.line, &m.at("url"), message))
        .ok()
}

/// A `p2p` destination's fields.
fn p2p(c: &mut Checker, m: &MapReader<'_>, base: &Path) -> Option<P2pDestination> {
    let path = m
        .required(c, "path")
        .and_then(|n| c.string(n, &m.at("path")))
        .map(|p| resolve(base, &p));
    let multiaddr = |c: &mut Checker, n: &Node, at: &str, with_peer: bool| -> Option<String> {
        let text = c.string(n, at)?;
        let ends_with_peer = text.rsplit('/').nth(1) == Some("p2p");
        if !text.starts_with('/')
            || text.contains(char::is_whitespace)
            || (with_peer && !ends_with_peer)
        {
            c.report(
                n.line,
                at,
                if with_peer {
                    "expected a multiaddr ending in /p2p/<peer id> (/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…)"
                } else {
                    "expected a multiaddr (/ip4/0.0.0.0/tcp/4001)"
                },
            );
            return None;
        }
        Some(text)
    };
    let listen = match m.get("listen") {
        None => Some(DEFAULT_P2P_LISTEN.to_string()),
        Some(n) => multiaddr(c, n, &m.at("listen"), false),
    };
    let bootstrap = match m.get("bootstrap") {
        None => Some(Vec::new()),
        Some(n) => {
            let items = c.list(n, &m.at("bootstrap"));
            items.and_then(|items| {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match multiaddr(c, item, &index(&m.at("bootstrap"), i), true) {
                        Some(a) => out.push(a),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            })
        }
    };
    let file = |c: &mut Checker, key: &str| {
        m.required(c, key)
            .and_then(|n| c.string(n, &m.at(key)))
            .map(|p| resolve(base, &p))
    };
    let identity_file = file(c, "identityFile");
    let recipient_key_file = file(c, "recipientKeyFile");
    let market = m.required(c, "market").and_then(|n| {
        let url = c.string(n, &m.at("market"))?;
        parse_http_url(&url)
            .map_err(|message| c.report(n.line, &m.at("market"), message))
            .ok()
            .map(|()| url)
    });
    let revalidate = match m.get("revalidate") {
        None => Some(Duration::from_secs(30)),
        Some(n) => c.duration(n, &m.at("revalidate")).and_then(|d| {
            if d >= Duration::from_secs(1) {
                Some(d)
            } else {
                c.report(n.line, &m.at("revalidate"), "at least 1s");
                None
            }
        }),
    };
    let max_sessions = match m.get("maxSessions") {
        None => Some(64),
        Some(n) => c.positive_integer(n, &m.at("maxSessions")),
    };
    Some(P2pDestination {
        path: path?,
        listen: listen?,
        bootstrap: bootstrap?,
        identity_file: identity_file?,
        market: market?,
        recipient_key_file: recipient_key_file?,
        revalidate: revalidate?,
        max_sessions: max_sessions?,
    })
}

fn parse_object_store_url(url: &str) -> Result<ObjectStoreLocation, String> {
    const SHAPE: &str = "expected s3://bucket/prefix or file:///absolute/path";
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '.' || ch == '-')
            && bucket.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && bucket.ends_with(|ch: char| ch.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(format!(
                "{SHAPE} (a bucket name is 3 to 63 lowercase letters, digits, dots and hyphens)"
            ));
        }
        Ok(ObjectStoreLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    } else if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(SHAPE.into());
        }
        Ok(ObjectStoreLocation::File {
            path: PathBuf::from(rest),
        })
    } else {
        Err(SHAPE.into())
    }
}

fn parse_http_url(url: &str) -> Result<(), String> {
    const SHAPE: &str = "expected http://host[:port][/path] or https://…";
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or(SHAPE)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    split_host_port(authority).map(|_| ()).ok_or(SHAPE.into())
}
