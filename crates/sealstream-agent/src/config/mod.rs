//! The agent's configuration: the **Data Event Map**, a YAML file that says
//! who the machine is, who may decrypt its chunks, where data comes from,
//! which field rules apply to each topic, and where sealed chunks go.
//!
//! [`DataEventMap::load`] reads and validates the whole file, including the
//! key files it names, and reports every problem it finds at once, each as
//! `line N: path: message` (see [`Problem`]). The format is described in
//! `docs/data-event-map.md`.
//!
//! Secrets stay secret: key files are read but their content never appears in
//! a problem, and the loaded keys print as `Kind(..)` in `Debug`.

mod check;
mod endpoints;
pub mod init;
mod keyfile;
mod read;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sealstream_core::chunk::{recipient_type, Recipient};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, FieldKey, MachineSigningKey, RecipientPublicKey};
use sealstream_core::rules::TopicRules;

/// A validated Data Event Map.
#[derive(Debug)]
pub struct DataEventMap {
    /// The directory relative paths were resolved against (the config file's directory).
    pub base_dir: PathBuf,
    /// The machine's identity and keys.
    pub machine: Machine,
    /// Who every chunk key is wrapped for.
    pub recipients: Recipients,
    /// When a chunk is cut.
    pub chunking: Chunking,
    /// Signed dataset manifests, if configured.
    pub datasets: Option<Datasets>,
    /// The crash-safe store-and-forward spool.
    pub spool: Spool,
    /// Sources by name.
    pub sources: BTreeMap<String, Source>,
    /// Topics, in file order; names are unique.
    pub topics: Vec<Topic>,
    /// Where sealed chunks are delivered (at least one).
    pub destinations: Vec<Destination>,
}

impl DataEventMap {
    /// Read and validate the Data Event Map at `path`; relative paths in it
    /// are relative to the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<DataEventMap, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::parse(&text, &base_dir)
    }

    /// Validate Data Event Map `text`; relative paths in it are relative to `base_dir`.
    /// Key files are read (and checked) here.
    pub fn parse(text: &str, base_dir: &Path) -> Result<DataEventMap, ConfigError> {
        read::document(text, base_dir)
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }
}

/// The machine: its identity and the keys it signs and encrypts with.
#[derive(Debug)]
pub struct Machine {
    /// The machine's DID; the address of [`Machine::signing_key`].
    pub did: Did,
    /// The key id written into signatures (default `<did>#keys-1`).
    pub key_id: String,
    /// Where the secp256k1 package signing key was read from.
    pub signing_key_file: PathBuf,
    /// Where the Ed25519 chain signing key was read from.
    pub chain_key_file: PathBuf,
    /// Where the AES-256 field key was read from, if configured.
    pub field_key_file: Option<PathBuf>,
    /// secp256k1 key of the EIP-191 package signatures.
    pub signing_key: MachineSigningKey,
    /// Ed25519 key of the chunk signatures.
    pub chain_key: ChainSigningKey,
    /// AES-256-GCM key of `encrypt` field rules.
    pub field_key: Option<FieldKey>,
}

/// The X25519 public keys every chunk key is wrapped for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipients {
    /// The data owner (recipient id `owner-1`).
    pub owner: RecipientPublicKey,
    /// The operator (recipient id `operator-1`).
    pub operator: RecipientPublicKey,
    /// The machine itself (recipient id `machine-1`).
    pub machine: RecipientPublicKey,
    /// Further recipients.
    pub extra: Vec<ExtraRecipient>,
}

impl Recipients {
    /// The recipients in the form the chain writer takes, owner, operator and
    /// machine first (ids `owner-1`, `operator-1`, `machine-1`), then the extras.
    pub fn chain_recipients(&self) -> Vec<Recipient> {
        let mut out = vec![
            Recipient::new("owner-1", recipient_type::OWNER, self.owner),
            Recipient::new("operator-1", recipient_type::OPERATOR, self.operator),
            Recipient::new("machine-1", recipient_type::MACHINE, self.machine),
        ];
        out.extend(
            self.extra
                .iter()
                .map(|r| Recipient::new(r.id.clone(), r.recipient_type.clone(), r.public_key)),
        );
        out
    }
}

/// One more recipient of every chunk key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraRecipient {
    /// Recipient id, unique among all recipients.
    pub id: String,
    /// Recipient type (`auditor`, …).
    pub recipient_type: String,
    /// The X25519 public key.
    pub public_key: RecipientPublicKey,
}

/// When the agent cuts a chunk: whichever limit is reached first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunking {
    /// Plaintext bytes per chunk at most.
    pub max_bytes: u64,
    /// Packages per chunk at most.
    pub max_messages: u64,
    /// Age of the oldest package in an open chunk at most.
    pub max_age: Duration,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            max_bytes: 256 * 1024,
            max_messages: 1000,
            max_age: Duration::from_secs(5),
        }
    }
}

/// Signed dataset manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datasets {
    /// One signed dataset manifest per topic per window.
    pub window: Duration,
}

/// The crash-safe store-and-forward spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spool {
    /// The spool directory (resolved against the config's directory).
    pub dir: PathBuf,
    /// Bytes the spool may hold.
    pub max_bytes: u64,
    /// What happens when it is full.
    pub when_full: WhenFull,
}

/// What the agent does when the spool is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Stop reading sources until sinks drain the spool (`block`).
    Block,
    /// Delete the oldest spooled chunks not yet delivered, and log it (`drop-oldest`).
    DropOldest,
}

/// Where messages come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A ROS 2 bag in MCAP: a `.mcap` file or a rosbag2 directory (`type: mcap`).
    Mcap {
        /// The file or directory (resolved against the config's directory).
        path: PathBuf,
    },
    /// An MQTT broker (`type: mqtt`).
    Mqtt(MqttSource),
    /// A live ROS 2 graph (`type: ros2`).
    Ros2(Ros2Source),
    /// JSON lines `{"topic": …, "capturedAt": …, "fields": {…}}` (`type: jsonl`; `payload` is accepted for `fields`).
    Jsonl {
        /// Standard input or a file.
        input: JsonlInput,
    },
}

impl Source {
    /// The `type` name of this source.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Mcap { .. } => "mcap",
            Source::Mqtt(_) => "mqtt",
            Source::Ros2(_) => "ros2",
            Source::Jsonl { .. } => "jsonl",
        }
    }
}

/// An MQTT broker to subscribe to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttSource {
    /// The URL as written (`mqtt://host:1883`, `mqtts://host`).
    pub url: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 1883, or 8883 for `mqtts`).
    pub port: u16,
    /// Whether to connect with TLS (`mqtts`).
    pub tls: bool,
    /// Client id (default `sealstream-` + the machine address in lowercase hex).
    pub client_id: String,
    /// Subscription QoS, 0, 1 or 2 (default 1).
    pub qos: u8,
}

/// A live ROS 2 graph, reached through its Zenoh middleware (`rmw_zenoh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ros2Source {
    /// The ROS domain id (0 to 232; default 0).
    pub domain_id: u32,
    /// Zenoh endpoints to connect to (default `tcp/localhost:7447`, the local `rmw_zenohd` router).
    pub connect: Vec<String>,
    /// Zenoh endpoints to listen on, for publishers that connect to the agent (default none).
    pub listen: Vec<String>,
    /// The agent's node name in the ROS graph (default `sealstream_agent`).
    pub node: String,
    /// The node's namespace (default `/`).
    pub namespace: String,
    /// The message definitions: the shipped ones and those of `messages`.
    pub library: crate::ros2::library::MessageLibrary,
    /// Messages held between the middleware and the pipeline (default 16384); when
    /// full, new messages are dropped, counted and recorded as gaps.
    pub queue: usize,
}

/// The ROS 2 part of a topic of a `ros2` source.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ros2Topic {
    /// The message type (`pkg/msg/Type`); `None`: any type the library defines.
    pub ros_type: Option<String>,
    /// The QoS the subscription announces.
    pub qos: crate::ros2::rmw_zenoh::Qos,
}

/// Where a `jsonl` source reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonlInput {
    /// Standard input (`path: "-"`).
    Stdin,
    /// A file (resolved against the config's directory).
    File(PathBuf),
}

/// A topic: which source messages it takes, and its field rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    /// Unique name; the topic of its packages and chain.
    pub name: String,
    /// The name of its source.
    pub source: String,
    /// The topic on the source; MQTT wildcards `+` and `#` for MQTT sources.
    pub matcher: String,
    /// The `schemaVersion` of its packages (default `1.0.0`).
    pub schema_version: String,
    /// Its field rules (`rules.topic` is [`Topic::name`]).
    pub rules: TopicRules,
    /// Type and QoS, for a topic of a `ros2` source.
    pub ros2: Option<Ros2Topic>,
}

impl Topic {
    /// Whether a message on `source_topic` belongs to this topic: equality,
    /// or MQTT filter semantics when the matcher has `+` or `#` (only MQTT
    /// sources may have them). Wildcards at the start do not match topics
    /// starting with `$`, as in MQTT.
    pub fn matches(&self, source_topic: &str) -> bool {
        mqtt_filter_matches(&self.matcher, source_topic)
    }
}

/// MQTT topic filter matching (`+` one level, `#` the rest, including none).
pub(crate) fn mqtt_filter_matches(filter: &str, topic: &str) -> bool {
    if filter == topic {
        return true;
    }
    if (filter.starts_with('+') || filter.starts_with('#')) && topic.starts_with('$') {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        if part == "#" {
            return true;
        }
        match levels.next() {
            Some(level) if part == "+" || part == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// Where sealed chunks are delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A local directory (`type: directory`).
    Directory {
        /// The directory (resolved against the config's directory).
        path: PathBuf,
    },
    /// An object store (`type: object-store`); endpoint and credentials
    /// come from the environment.
    ObjectStore {
        /// The URL as written.
        url: String,
        /// The parsed location.
        location: ObjectStoreLocation,
    },
    /// A sealstream market server (`type: market`).
    Market {
        /// The server's base URL (`http://` or `https://`).
        url: String,
    },
    /// The agent's own peer-to-peer feeds (`type: p2p`; docs/p2p.md).
    P2p(P2pDestination),
}

/// A `p2p` destination: the chunks are kept in `path` (as a `directory`
/// destination keeps them) and each topic is served from there as a live
/// feed, its subscribers checked with the market, signing in as the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P2pDestination {
    /// Where the chains are kept (resolved against the config's directory).
    pub path: PathBuf,
    /// The multiaddr to listen on.
    pub listen: String,
    /// DHT bootstrap peers (`/…/p2p/<peer id>`).
    pub bootstrap: Vec<String>,
    /// The node's identity (created 0600 if missing).
    pub identity_file: PathBuf,
    /// The market the subscriptions are checked with.
    pub market: String,
    /// The machine recipient's X25519 secret: it opens the chunk keys.
    pub recipient_key_file: PathBuf,
    /// How often each buyer's subscription is checked again.
    pub revalidate: Duration,
    /// The most buyer sessions at once.
    pub max_sessions: u64,
}

/// Where in an object store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectStoreLocation {
    /// `s3://bucket/prefix`: an S3-compatible bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix without leading or trailing `/` (may be empty).
        prefix: String,
    },
    /// `file:///path`: a local directory laid out as the object store.
    File {
        /// The absolute path.
        path: PathBuf,
    },
}

/// Why a Data Event Map was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the Data Event Map {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file breaks the format; every problem found, in line order.
    #[error("{}", ProblemList(problems))]
    Invalid {
        /// The problems, one per line of the message.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found (empty for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One problem: the line (1-based), the field path and what is wrong.
/// Displays as `line N: path: message` (`line N: message` without a path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The line of the offending key or value.
    pub line: usize,
    /// The field path (`topics[2].rules[0].action`); empty for YAML syntax errors.
    pub path: String,
    /// What is wrong; never contains key material.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}: {}: {}", self.line, self.path, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mqtt_filter_matches as m;

    #[test]
    fn mqtt_filters() {
        assert!(m("/gps/fix", "/gps/fix"));
        assert!(m("a/+/c", "a/b/c"));
        assert!(!m("a/+/c", "a/b/d"));
        assert!(m("a/#", "a"));
        assert!(m("a/#", "a/b/c"));
        assert!(m("#", "x/y"));
        assert!(!m("#", "$SYS/x"));
        assert!(!m("a/+", "a/b/c"));
        assert!(m("+/+", "/x"));
    }
}
