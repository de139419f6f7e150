//! What ROS 2's Zenoh middleware (`rmw_zenoh`) puts on the wire, as far as a
//! subscriber needs it: the key expression of a topic's data, the attachment
//! of each sample (publisher sequence number, source time, global id) and the
//! liveliness tokens by which nodes and their endpoints appear in the ROS
//! graph.
//!
//! Sources: ros2/rmw_zenoh `docs/design.md` and `rmw_zenoh_cpp/src/detail/`
//! (`attachment_helpers.cpp`, `liveliness_utils.cpp`, `qos.cpp`); the
//! attachment is zenoh-ext's serialisation of `(int64, int64, uint8[16])`.
//!
//! - Data key: `<domain>/<topic without the leading '/'>/<dds type>/<type hash>`,
//!   e.g. `0/gps/fix/sensor_msgs::msg::dds_::NavSatFix_/RIHS01_6222…`.
//! - Attachment (33 bytes): `i64 LE sequence | i64 LE source time (ns since
//!   the epoch) | 0x10 | 16 bytes global id`.
//! - Node token: `@ros2_lv/<domain>/<zid>/<nid>/<nid>/NN/<enclave>/<namespace>/<node>`;
//!   subscription token: `@ros2_lv/<domain>/<zid>/<nid>/<eid>/MS/<enclave>/<namespace>/<node>/<topic>/<dds type>/<type hash>/<qos>`,
//!   names mangled (`/` → `%`, empty → `%`).

/// The prefix of every liveliness token of the ROS graph.
pub const LIVELINESS_PREFIX: &str = "@ros2_lv";

/// The type hash rmw_zenoh writes when it has none.
pub const NO_TYPE_HASH: &str = "TypeHashNotSupported";

/// `sensor_msgs/msg/NavSatFix` (or `sensor_msgs/NavSatFix`) →
/// `sensor_msgs::msg::dds_::NavSatFix_`; `None` for a name of another shape.
pub fn dds_type_name(ros_type: &str) -> Option<String> {
    let parts: Vec<&str> = ros_type.split('/').collect();
    let (pkg, name) = match parts.as_slice() {
        [pkg, "msg", name] | [pkg, name] => (*pkg, *name),
        _ => return None,
    };
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (word(pkg) && word(name)).then(|| format!("{pkg}::msg::dds_::{name}_"))
}

/// `sensor_msgs::msg::dds_::NavSatFix_` → `sensor_msgs/msg/NavSatFix`.
pub fn ros_type_name(dds: &str) -> Option<String> {
    let (pkg, rest) = dds.split_once("::msg::dds_::")?;
    let name = rest.strip_suffix('_')?;
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (word(pkg) && word(name)).then(|| format!("{pkg}/msg/{name}"))
}

/// A data key expression taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicKey {
    /// The ROS topic, with its leading `/` (`/gps/fix`).
    pub topic: String,
    /// The message type as `pkg/msg/Type`.
    pub ros_type: String,
    /// The type hash (`RIHS01_…`, or [`NO_TYPE_HASH`]).
    pub type_hash: String,
}

/// Parse the key expression of a sample published on `domain_id`; `None`
/// if it is not one (another domain, or a type that is not a message type).
pub fn parse_topic_key(domain_id: u32, key: &str) -> Option<TopicKey> {
    let rest = key
        .strip_prefix(&domain_id.to_string())?
        .strip_prefix('/')?;
    let (rest, hash) = rest.rsplit_once('/')?;
    let (topic, dds) = rest.rsplit_once('/')?;
    if topic.is_empty() || hash.is_empty() {
        return None;
    }
    Some(TopicKey {
        topic: format!("/{topic}"),
        ros_type: ros_type_name(dds)?,
        type_hash: hash.to_string(),
    })
}

/// The key expression a subscriber declares for `matcher` (a ROS topic,
/// with MQTT-style wildcards `+` for one level and `#` for any number) and
/// a type (any type when `None`), any type hash.
pub fn subscription_key(domain_id: u32, matcher: &str, ros_type: Option<&str>) -> String {
    let topic: Vec<&str> = matcher
        .trim_matches('/')
        .split('/')
        .map(|level| match level {
            "+" => "*",
            "#" => "**",
            other => other,
        })
        .collect();
    let ty = ros_type
        .and_then(dds_type_name)
        .unwrap_or_else(|| "*".to_string());
    format!("{domain_id}/{}/{ty}/*", topic.join("/"))
}

/// The attachment rmw_zenoh puts on every sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The publisher's sequence number (from 1, +1 per publish).
    pub sequence: i64,
    /// When the publisher published it, nanoseconds since the Unix epoch.
    pub source_timestamp_ns: i64,
    /// The publisher's global id.
    pub gid: [u8; 16],
}

impl Attachment {
    /// Read an attachment; `None` if it is not exactly the 33-byte form
    /// (older rmw_zenoh releases wrote another one).
    pub fn parse(bytes: &[u8]) -> Option<Attachment> {
        if bytes.len() != 33 || bytes[16] != 16 {
            return None;
        }
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_le_bytes(b)
        };
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&bytes[17..]);
        Some(Attachment {
            sequence: i64_at(0),
            source_timestamp_ns: i64_at(8),
            gid,
        })
    }

    /// The 33 bytes, as rmw_zenoh writes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33);
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.source_timestamp_ns.to_le_bytes());
        out.push(16);
        out.extend_from_slice(&self.gid);
        out
    }

    /// The global id in lowercase hex (32 digits).
    pub fn gid_hex(&self) -> String {
        hex_lower(&self.gid)
    }
}

/// Bytes in lowercase hex (a global id as the agent writes it).
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Reliability of a subscription (ROS 2 QoS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reliability {
    /// Every message, retransmitted if lost (the default).
    #[default]
    Reliable,
    /// Lost messages are not retransmitted.
    BestEffort,
}

/// The QoS a subscription announces (durability is volatile, history keep-last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qos {
    /// Reliability.
    pub reliability: Reliability,
    /// History depth (keep last N).
    pub depth: u32,
}

impl Default for Qos {
    /// Reliable, depth 10 (ROS 2's default for subscriptions).
    fn default() -> Self {
        Qos {
            reliability: Reliability::Reliable,
            depth: 10,
        }
    }
}

impl Qos {
    /// The QoS field of a liveliness token: `R:D:H,depth:dl_s,dl_ns:ls_s,ls_ns:L,lease_s,lease_ns`,
    /// each part empty when it is rmw_zenoh's default (reliable, volatile,
    /// keep-last, depth 42, infinite deadline and lifespan, automatic liveliness).
    pub fn token_text(&self) -> String {
        let r = match self.reliability {
            Reliability::Reliable => "",
            Reliability::BestEffort => "2",
        };
        let depth = if self.depth == 42 {
            String::new()
        } else {
            self.depth.to_string()
        };
        format!("{r}::,{depth}:,:,:,,")
    }
}

/// A name as it appears in a token: `/` becomes `%`, and an empty name is `%`.
pub fn mangle(name: &str) -> String {
    if name.is_empty() {
        "%".to_string()
    } else {
        name.replace('/', "%")
    }
}

/// Who the tokens are about: a node of a Zenoh session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeName<'a> {
    /// The ROS domain.
    pub domain_id: u32,
    /// The session's Zenoh id in lowercase hex.
    pub zid: &'a str,
    /// The node's id within the session.
    pub node_id: u64,
    /// The security enclave (`""` for none).
    pub enclave: &'a str,
    /// The namespace (`/` for the root).
    pub namespace: &'a str,
    /// The node's name.
    pub name: &'a str,
}

impl NodeName<'_> {
    fn head(&self, entity_id: u64, kind: &str) -> String {
        let namespace = if self.namespace == "/" {
            ""
        } else {
            self.namespace
        };
        format!(
            "{LIVELINESS_PREFIX}/{}/{}/{}/{entity_id}/{kind}/{}/{}/{}",
            self.domain_id,
            self.zid,
            self.node_id,
            mangle(self.enclave),
            mangle(namespace),
            mangle(self.name)
        )
    }

    /// The node's own token.
    pub fn node_token(&self) -> String {
        self.head(self.node_id, "NN")
    }

    /// The token of one of its subscriptions (`entity_id` unique in the session).
    pub fn subscription_token(
        &self,
        entity_id: u64,
        topic: &str,
        ros_type: &str,
        type_hash: &str,
        qos: &Qos,
    ) -> Option<String> {
        Some(format!(
            "{}/{}/{}/{type_hash}/{}",
            self.head(entity_id, "MS"),
            mangle(topic),
            dds_type_name(ros_type)?,
            qos.token_text()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_both_ways() {
        let dds = "sensor_msgs::msg::dds_::NavSatFix_";
        assert_eq!(dds_type_name("sensor_msgs/msg/NavSatFix").unwrap(), dds);
        assert_eq!(dds_type_name("sensor_msgs/NavSatFix").unwrap(), dds);
        assert_eq!(ros_type_name(dds).unwrap(), "sensor_msgs/msg/NavSatFix");
        assert!(dds_type_name("a/srv/B/c").is_none());
        assert!(dds_type_name("a b/C").is_none());
        assert!(ros_type_name("sensor_msgs::msg::NavSatFix").is_none());
    }

    #[test]
    fn keys_parse_and_subscriptions_cover_them() {
        let key = "0/robot1/gps/fix/sensor_msgs::msg::dds_::NavSatFix_/RIHS01_62223ab3";
        let k = parse_topic_key(0, key).unwrap();
        assert_eq!(k.topic, "/robot1/gps/fix");
        assert_eq!(k.ros_type, "sensor_msgs/msg/NavSatFix");
        assert_eq!(k.type_hash, "RIHS01_62223ab3");
        assert!(parse_topic_key(1, key).is_none());
        assert!(parse_topic_key(0, "0/x").is_none());
        assert_eq!(
            subscription_key(0, "/gps/fix", Some("sensor_msgs/msg/NavSatFix")),
            "0/gps/fix/sensor_msgs::msg::dds_::NavSatFix_/*"
        );
        assert_eq!(
            subscription_key(7, "/robot/+/fix", None),
            "7/robot/*/fix/*/*"
        );
        assert_eq!(subscription_key(0, "/robot/#", None), "0/robot/**/*/*");
    }

    #[test]
    fn the_attachment_is_rmw_zenohs() {
        // As captured from an eclipse-zenoh publisher serialising (Int64(1), Int64(ts), 16 bytes).
        let bytes =
            hex::decode("01000000000000001468e90e255fee181021d98a1fa3fec7d01427854f7bea31e3")
                .unwrap();
        let a = Attachment::parse(&bytes).unwrap();
        assert_eq!(a.sequence, 1);
        assert_eq!(a.source_timestamp_ns, 0x18ee5f250ee96814);
        assert_eq!(a.gid_hex(), "21d98a1fa3fec7d01427854f7bea31e3");
        assert_eq!(a.encode(), bytes);
        assert!(Attachment::parse(&bytes[..32]).is_none());
        assert!(Attachment::parse(b"sequence_number").is_none());
    }

    #[test]
    fn tokens_as_design_md_shows_them() {
        let node = NodeName {
            domain_id: 2,
            zid: "aac3178e146ba6f1fc6e6a4085e77f21",
            node_id: 0,
            enclave: "",
            namespace: "/",
            name: "listener",
        };
        assert_eq!(
            node.node_token(),
            "@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/0/NN/%/%/listener"
        );
        let hash = "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18";
        assert_eq!(
            node.subscription_token(10, "/chatter", "std_msgs/msg/String", hash, &Qos::default())
                .unwrap(),
            format!("@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/10/MS/%/%/listener/%chatter/std_msgs::msg::dds_::String_/{hash}/::,10:,:,:,,")
        );
        let be = Qos {
            reliability: Reliability::BestEffort,
            depth: 5,
        };
        assert_eq!(be.token_text(), "2::,5:,:,:,,");
        let ns = NodeName {
            namespace: "/robot1",
            ..node
        };
        assert!(ns.node_token().ends_with("/NN/%/%robot1/listener"));
    }
}
