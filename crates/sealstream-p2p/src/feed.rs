//! The wire of sealstream's own live feeds, Dazaar-style
//! (`/sealstream/feed/1` and `/sealstream/blocks/1`; docs/p2p.md).
//!
//! A seller serves each feed (a machine's topic: a chain that grows) under
//! its peer identity; the feed's DHT key is [`feed_key`] of the seller's
//! peer id and the feed's name. Messages are one JSON object per line
//! (compact, keys sorted), at most [`MAX_MESSAGE_BYTES`] each:
//!
//! - on `/sealstream/feed/1`, buyer → seller: [`Message::Hello`], signed by
//!   the buyer's peer identity over [`hello_payload`] (the seller, the
//!   feed, the buyer's X25519 key, the subscription and the first index
//!   wanted), so a hello cannot be replayed by another peer or to another
//!   seller. Seller → buyer: [`Message::Valid`] (the entitlement's times,
//!   and the per-buyer head key signed by the seller's identity over
//!   [`head_key_payload`]) or [`Message::Invalid`] (the reason); then, in
//!   index order, [`Message::Key`] (the chunk key wrapped to the buyer's
//!   key), [`Message::Chunk`] (envelope and ciphertext, unless the buyer
//!   takes data from relays) and [`Message::Head`] (length and last chunk
//!   id, signed by the per-buyer head key over [`head_payload`]). When the
//!   entitlement ends, an [`Message::Invalid`] says why and no key follows.
//! - on `/sealstream/blocks/1`, anyone → a peer holding ciphertext (the
//!   seller or a relay): [`Message::Get`] of one index, answered by
//!   [`Message::Chunk`] or [`Message::Missing`]. Blocks carry no keys: the
//!   buyer checks each against the chunk id the seller's key message named.
//!
//! Everything read here comes from a peer: decoding never panics, a message
//! that breaks the format is refused naming the field, and no peer text is
//! echoed in an error.

use base64::Engine as _;
use sealstream_core::chunk::{ChunkEnvelope, KeyRecipient};
use sealstream_core::json::{self, canonical, Map, Value};
use sha2::{Digest, Sha256};

/// The feed protocol (a buyer's session with the seller).
pub const PROTOCOL: &str = "/sealstream/feed/1";
/// The block protocol (ciphertext by index, from the seller or a relay).
pub const BLOCKS_PROTOCOL: &str = "/sealstream/blocks/1";
/// The largest message, in bytes, without its newline: a chunk of up to
/// 12 MiB of ciphertext fits (base64) with its envelope.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The most bytes of a hello, a get or any message of a buyer.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// A message of the feed or block protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The buyer's request for a feed session.
    Hello(Hello),
    /// The seller's acceptance: the entitlement as it stands.
    Valid(Valid),
    /// The seller's refusal (at hello) or the end of the entitlement.
    Invalid {
        /// Why (the subscription's state and reason, never a secret).
        reason: String,
        /// The subscription's state, if one was found.
        state: Option<String>,
        /// Whether asking again later may succeed (the seller is busy, the
        /// market unreachable, the session replaced): the buyer reconnects.
        retry: bool,
    },
    /// The seller's challenge: a random nonce sealed (X25519 sealed box) to
    /// the hello's buyer key; only its holder can answer.
    Challenge {
        /// The sealed nonce (hex).
        sealed: String,
    },
    /// The buyer's answer: the nonce opened (hex).
    Proof {
        /// The nonce (hex).
        nonce: String,
    },
    /// One chunk's key, wrapped to the buyer's key.
    Key {
        /// The chunk's index.
        index: u64,
        /// Its id (the buyer takes data for this index only if it has this id).
        chunk_id: String,
        /// [`envelope_hash`] of its envelope: data from a relay must carry
        /// this very envelope (its unsigned fields included).
        envelope_hash: String,
        /// The wrapped key (`recipientType` `buyer`).
        buyer: KeyRecipient,
    },
    /// One chunk's envelope and ciphertext.
    Chunk {
        /// The envelope (its index is the chunk's).
        envelope: Box<ChunkEnvelope>,
        /// The ciphertext.
        ciphertext: Vec<u8>,
    },
    /// The feed's length and last chunk id, signed by the per-buyer head key.
    Head(Head),
    /// A request for the chunk at `index` of a feed.
    Get {
        /// The seller's peer id.
        seller: String,
        /// The feed.
        feed: String,
        /// The index wanted.
        index: u64,
    },
    /// The peer does not hold that chunk (yet).
    Missing {
        /// The index asked for.
        index: u64,
    },
}

/// A buyer's hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The seller's peer id (the hello is for this seller only).
    pub seller: String,
    /// The feed's name.
    pub feed: String,
    /// The subscription (`sub_…`) that entitles the buyer.
    pub subscription: String,
    /// The buyer's X25519 public key (hex): the keys are wrapped to it.
    pub buyer_key: String,
    /// The first index the buyer wants (after what it verified already).
    pub from: u64,
    /// Whether the seller sends the chunks' data too (`false`: the buyer
    /// takes data from relays and the seller's block protocol).
    pub inline: bool,
    /// The buyer's peer identity's signature over [`hello_payload`] (hex).
    pub signature: String,
}

/// The seller's acceptance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Valid {
    /// The subscription's state (`active`, `grace`).
    pub state: String,
    /// The end of the last paid period (UTC), if any.
    pub paid_through: Option<String>,
    /// Until when the subscription may be renewed (UTC).
    pub grace_until: Option<String>,
    /// Seconds until `grace_until`.
    pub seconds_left: Option<u64>,
    /// The end of access once it has one (UTC).
    pub access_ends: Option<String>,
    /// The per-buyer head key (Ed25519 public key, hex).
    pub head_key: String,
    /// The seller identity's signature over [`head_key_payload`] (hex).
    pub head_key_signature: String,
    /// How many chunks the feed has now.
    pub length: u64,
}

/// A signed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Chunks `0..length` are in the feed.
    pub length: u64,
    /// The id of chunk `length - 1` (chunk ids chain, so it commits to
    /// every chunk before it).
    pub chunk_id: String,
    /// The head key's signature over [`head_payload`] (hex).
    pub signature: String,
}

/// A message that breaks the format: the field and what is wrong (never
/// the peer's text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct MessageError {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl From<crate::fields::Fault> for MessageError {
    fn from((field, problem): crate::fields::Fault) -> MessageError {
        MessageError::new(field, problem)
    }
}

impl MessageError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> MessageError {
        MessageError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

fn opt(o: &mut Map, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        o.insert(key.into(), v.as_str().into());
    }
}

impl Message {
    /// The message as a JSON object.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        match self {
            Message::Hello(h) => {
                o.insert("type".into(), "hello".into());
                o.insert("seller".into(), h.seller.as_str().into());
                o.insert("feed".into(), h.feed.as_str().into());
                o.insert("subscription".into(), h.subscription.as_str().into());
                o.insert("buyerKey".into(), h.buyer_key.as_str().into());
                o.insert("from".into(), Value::from(h.from));
                o.insert("inline".into(), Value::Bool(h.inline));
                o.insert("signature".into(), h.signature.as_str().into());
            }
            Message::Valid(v) => {
                o.insert("type".into(), "valid".into());
                o.insert("state".into(), v.state.as_str().into());
                opt(&mut o, "paidThrough", &v.paid_through);
                opt(&mut o, "graceUntil", &v.grace_until);
                if let Some(s) = v.seconds_left {
                    o.insert("secondsLeft".into(), Value::from(s));
                }
                opt(&mut o, "accessEnds", &v.access_ends);
                o.insert("headKey".into(), v.head_key.as_str().into());
                o.insert(
                    "headKeySignature".into(),
                    v.head_key_signature.as_str().into(),
                );
                o.insert("length".into(), Value::from(v.length));
            }
            Message::Invalid {
                reason,
                state,
                retry,
            } => {
                o.insert("type".into(), "invalid".into());
                o.insert("reason".into(), reason.as_str().into());
                opt(&mut o, "state", state);
                o.insert("retry".into(), Value::Bool(*retry));
            }
            Message::Challenge { sealed } => {
                o.insert("type".into(), "challenge".into());
                o.insert("sealed".into(), sealed.as_str().into());
            }
            Message::Proof { nonce } => {
                o.insert("type".into(), "proof".into());
                o.insert("nonce".into(), nonce.as_str().into());
            }
            Message::Key {
                index,
                chunk_id,
                envelope_hash,
                buyer,
            } => {
                o.insert("type".into(), "key".into());
                o.insert("index".into(), Value::from(*index));
                o.insert("chunkId".into(), chunk_id.as_str().into());
                o.insert("envelopeHash".into(), envelope_hash.as_str().into());
                o.insert("buyer".into(), buyer.to_json());
            }
            Message::Chunk {
                envelope,
                ciphertext,
            } => {
                o.insert("type".into(), "chunk".into());
                o.insert("index".into(), Value::from(envelope.index));
                o.insert("envelope".into(), envelope.to_json());
                o.insert(
                    "ciphertextB64".into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(ciphertext)
                        .into(),
                );
            }
            Message::Head(h) => {
                o.insert("type".into(), "head".into());
                o.insert("length".into(), Value::from(h.length));
                o.insert("chunkId".into(), h.chunk_id.as_str().into());
                o.insert("signature".into(), h.signature.as_str().into());
            }
            Message::Get {
                seller,
                feed,
                index,
            } => {
                o.insert("type".into(), "get".into());
                o.insert("seller".into(), seller.as_str().into());
                o.insert("feed".into(), feed.as_str().into());
                o.insert("index".into(), Value::from(*index));
            }
            Message::Missing { index } => {
                o.insert("type".into(), "missing".into());
                o.insert("index".into(), Value::from(*index));
            }
        }
        Value::Object(o)
    }

    /// The message's line (compact JSON, keys sorted, ASCII), with its newline.
    pub fn encode(&self) -> Vec<u8> {
        let mut line = canonical::python(&self.to_json()).into_bytes();
        line.push(b'\n');
        line
    }

    /// Read one line (without its newline). Extra keys are ignored.
    pub fn decode(line: &[u8]) -> Result<Message, MessageError> {
        if line.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::new("message", "too long"));
        }
        let value = json::parse(line).map_err(|_| MessageError::new("message", "not JSON"))?;
        let o = value
            .as_object()
            .ok_or_else(|| MessageError::new("message", "not a JSON object"))?;
        let text = |k: &str| crate::fields::text(o, k).map_err(MessageError::from);
        let opt_text = |k: &str| crate::fields::opt_text(o, k).map_err(MessageError::from);
        let count = |k: &str| crate::fields::count(o, k).map_err(MessageError::from);
        let flag =
            |k: &str, default| crate::fields::flag(o, k, default).map_err(MessageError::from);
        match o.get("type").and_then(Value::as_str) {
            Some("hello") => Ok(Message::Hello(Hello {
                seller: text("seller")?,
                feed: text("feed")?,
                subscription: text("subscription")?,
                buyer_key: text("buyerKey")?,
                from: count("from")?,
                inline: flag("inline", true)?,
                signature: text("signature")?,
            })),
            Some("valid") => Ok(Message::Valid(Valid {
                state: text("state")?,
                paid_through: opt_text("paidThrough")?,
                grace_until: opt_text("graceUntil")?,
                seconds_left: match o.get("secondsLeft") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(count("secondsLeft")?),
                },
                access_ends: opt_text("accessEnds")?,
                head_key: text("headKey")?,
                head_key_signature: text("headKeySignature")?,
                length: count("length")?,
            })),
            Some("invalid") => Ok(Message::Invalid {
                reason: text("reason")?,
                state: opt_text("state")?,
                retry: flag("retry", false)?,
            }),
            Some("challenge") => Ok(Message::Challenge {
                sealed: text("sealed")?,
            }),
            Some("proof") => Ok(Message::Proof {
                nonce: text("nonce")?,
            }),
            Some("key") => Ok(Message::Key {
                index: count("index")?,
                chunk_id: text("chunkId")?,
                envelope_hash: text("envelopeHash")?,
                buyer: KeyRecipient::from_json(
                    o.get("buyer")
                        .ok_or_else(|| MessageError::new("buyer", "required object"))?,
                    "buyer",
                )
                .map_err(|e| MessageError::new(e.field, e.constraint))?,
            }),
            Some("chunk") => {
                let envelope = ChunkEnvelope::from_json(
                    o.get("envelope")
                        .ok_or_else(|| MessageError::new("envelope", "required object"))?,
                )
                .map_err(|e| MessageError::new(format!("envelope.{}", e.field), e.constraint))?;
                if count("index")? != envelope.index {
                    return Err(MessageError::new("index", "not the envelope's index"));
                }
                let ciphertext = base64::engine::general_purpose::STANDARD
                    .decode(text("ciphertextB64")?)
                    .map_err(|_| MessageError::new("ciphertextB64", "not base64"))?;
                Ok(Message::Chunk {
                    envelope: Box::new(envelope),
                    ciphertext,
                })
            }
            Some("head") => Ok(Message::Head(Head {
                length: count("length")?,
                chunk_id: text("chunkId")?,
                signature: text("signature")?,
            })),
            Some("get") => Ok(Message::Get {
                seller: text("seller")?,
                feed: text("feed")?,
                index: count("index")?,
            }),
            Some("missing") => Ok(Message::Missing {
                index: count("index")?,
            }),
            Some(_) => Err(MessageError::new(
                "type",
                "not a message of /sealstream/feed/1",
            )),
            None => Err(MessageError::new("type", "required string")),
        }
    }
}

/// SHA-256 (hex) of an envelope's canonical JSON (keys sorted, compact):
/// it covers the fields the chunk's signature does not (the nonce, the key
/// commitment, the recipients).
pub fn envelope_hash(envelope: &ChunkEnvelope) -> String {
    hex::encode(Sha256::digest(
        canonical::python(&envelope.to_json()).as_bytes(),
    ))
}

/// Whether `id` can be an entitlement's id: 1 to 128 characters of
/// `[A-Za-z0-9_.-]` (so that it is safe to log and to put in a URL path).
pub fn check_entitlement_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 128 {
        return Err("1 to 128 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("letters, digits, _ and -");
    }
    Ok(())
}

/// The DHT key a seller announces a feed under: SHA-256 of
/// `"sealstream/feed/1\0" || seller peer id bytes || "\0" || feed name`.
pub fn feed_key(seller_peer_id_bytes: &[u8], feed: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sealstream/feed/1\0");
    h.update(seller_peer_id_bytes);
    h.update(b"\0");
    h.update(feed.as_bytes());
    h.finalize().into()
}

/// `"sealstream/feed/1 LABEL"`, then each field as its length (4 bytes,
/// big-endian) and its bytes: no two field lists give the same bytes.
fn payload(label: &str, fields: &[&str]) -> Vec<u8> {
    let mut out = format!("sealstream/feed/1 {label}").into_bytes();
    for f in fields {
        let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// The bytes a buyer's peer identity signs in its hello.
pub fn hello_payload(h: &Hello) -> Vec<u8> {
    payload(
        "hello",
        &[
            &h.seller,
            &h.feed,
            &h.subscription,
            &h.buyer_key.to_ascii_lowercase(),
            &h.from.to_string(),
            if h.inline { "inline" } else { "blocks" },
        ],
    )
}

/// The bytes the seller's identity signs to vouch for a per-buyer head key.
pub fn head_key_payload(seller: &str, feed: &str, buyer_key: &str, head_key: &str) -> Vec<u8> {
    payload(
        "head-key",
        &[seller, feed, &buyer_key.to_ascii_lowercase(), head_key],
    )
}

/// The bytes a per-buyer head key signs for a head.
pub fn head_payload(seller: &str, feed: &str, length: u64, chunk_id: &str) -> Vec<u8> {
    payload("head", &[seller, feed, &length.to_string(), chunk_id])
}

/// A feed name as it may be served: 1 to 256 printable ASCII characters.
pub fn check_feed_name(feed: &str) -> Result<(), &'static str> {
    if feed.is_empty() || feed.len() > 256 {
        return Err("1 to 256 characters");
    }
    if !feed.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err("printable ASCII without spaces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_as_written() {
        let hello = Message::Hello(Hello {
            seller: "12D3KooWseller".into(),
            feed: "/gps/fix".into(),
            subscription: "sub_1".into(),
            buyer_key: "ab".repeat(32),
            from: 7,
            inline: false,
            signature: "cd".repeat(64),
        });
        let valid = Message::Valid(Valid {
            state: "active".into(),
            paid_through: Some("2026-12-05T00:00:00Z".into()),
            grace_until: None,
            seconds_left: Some(60),
            access_ends: None,
            head_key: "ef".repeat(32),
            head_key_signature: "01".repeat(64),
            length: 3,
        });
        let key = Message::Key {
            index: 2,
            chunk_id: "0xabc".into(),
            envelope_hash: "ef".repeat(32),
            buyer: KeyRecipient {
                recipient_id: "buyer-1".into(),
                recipient_type: "buyer".into(),
                algorithm: "x25519-sealedbox".into(),
                public_key_hex: "ab".repeat(32),
                wrapped_key_hex: "00".repeat(80),
            },
        };
        let others = [
            Message::Invalid {
                reason: "revoked: fraud".into(),
                state: Some("revoked".into()),
                retry: false,
            },
            Message::Challenge {
                sealed: "ab".repeat(80),
            },
            Message::Proof {
                nonce: "cd".repeat(32),
            },
            Message::Head(Head {
                length: 3,
                chunk_id: "0xabc".into(),
                signature: "02".repeat(64),
            }),
            Message::Get {
                seller: "s".into(),
                feed: "f".into(),
                index: 9,
            },
            Message::Missing { index: 9 },
        ];
        for m in [hello, valid, key].iter().chain(others.iter()) {
            let line = m.encode();
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(&Message::decode(&line[..line.len() - 1]).unwrap(), m);
        }
    }

    #[test]
    fn bad_messages_name_the_field_and_never_echo_the_peer() {
        let cases: [(&[u8], &str); 5] = [
            (b"{\"type\":\"secret-type\"}", "type"),
            (b"[1]", "message"),
            (
                b"{\"type\":\"get\",\"seller\":\"s\",\"feed\":\"f\",\"index\":-1}",
                "index",
            ),
            (b"{\"type\":\"hello\",\"seller\":\"s\"}", "feed"),
            (b"not json at all", "message"),
        ];
        for (line, field) in cases {
            let e = Message::decode(line).unwrap_err();
            assert_eq!(e.field, field, "{}", String::from_utf8_lossy(line));
            assert!(!e.to_string().contains("secret"));
        }
    }

    #[test]
    fn signed_payloads_bind_every_field() {
        let h = Hello {
            seller: "s".into(),
            feed: "f".into(),
            subscription: "sub".into(),
            buyer_key: "AB".into(),
            from: 0,
            inline: true,
            signature: String::new(),
        };
        let base = hello_payload(&h);
        let mut other = h.clone();
        other.from = 1;
        assert_ne!(hello_payload(&other), base);
        other = h.clone();
        other.inline = false;
        assert_ne!(hello_payload(&other), base);
        other = h.clone();
        other.buyer_key = "ab".into();
        assert_eq!(hello_payload(&other), base, "hex case does not matter");
        assert_ne!(
            head_payload("s", "f", 1, "0x1"),
            head_payload("s", "f", 2, "0x1")
        );
        assert_ne!(feed_key(b"a", "f"), feed_key(b"b", "f"));
        assert_ne!(feed_key(b"a", "f"), feed_key(b"a", "g"));
    }

    #[test]
    fn fields_cannot_slide_into_each_other() {
        assert_ne!(payload("x", &["a\nb", "c"]), payload("x", &["a", "b\nc"]));
        assert_ne!(payload("x", &["ab", ""]), payload("x", &["a", "b"]));
    }

    #[test]
    fn entitlement_ids_are_bounded() {
        assert!(check_entitlement_id("sub_0123abcd").is_ok());
        assert!(check_entitlement_id("ord_x-1").is_ok());
        for bad in ["", "a/b", "..", "sub 1", "\u{1b}[31m", &"a".repeat(129)] {
            assert!(check_entitlement_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn feed_names_are_bounded() {
        assert!(check_feed_name("/gps/fix").is_ok());
        assert!(check_feed_name("").is_err());
        assert!(check_feed_name("a b").is_err());
        assert!(check_feed_name(&"a".repeat(257)).is_err());
    }
}
