//! The buyer's side of live feeds: [`subscribe`].
//!
//! The buyer finds the feed's providers in the DHT under
//! [`crate::feed::feed_key`] of the seller's peer id, keeps the seller
//! (whose peer id Noise authenticates on every connection) for the feed
//! session and treats any other provider as a relay: a source of
//! ciphertext only, used when asked ([`SubscribeConfig::relays`]). Every
//! chunk, from the seller or a relay, must be the one the seller's key
//! message named (its chunk id), link to the chunk before it, carry a valid
//! Ed25519 signature by the chain's one signing key, and hash to its
//! `encryptedDataHash`; a block that fails is reported and fetched from the
//! next peer. Heads must be signed by the per-buyer head key the seller
//! vouched for, and name the last chunk accepted. When the connection to
//! the seller drops, the buyer reconnects and asks for the chunks after its
//! last verified one.

use std::time::{Duration, Instant};

use libp2p::{kad, PeerId, StreamProtocol};
use rand_core::RngCore;
use sealstream_core::chunk::{
    decrypt_chunk, sha256_hex, verify_signed, ChunkEnvelope, KeyRecipient,
};
use sealstream_core::keys::RecipientSecretKey;

use super::stream::{verify_by_key, verify_by_peer, Messages};
use super::{parse_addrs, parse_peer, MAX_RECONNECT_WAIT};
use crate::feed::{self, Hello, Message, Valid, BLOCKS_PROTOCOL, MAX_MESSAGE_BYTES};
use crate::node::{Identity, Node, NodeError, Options};
use crate::reference::ErrorCode;

/// The last chunk a buyer accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// Its index.
    pub index: u64,
    /// Its id (the next chunk must link to it).
    pub chunk_id: String,
}

/// What a buyer follows.
pub struct SubscribeConfig {
    /// The seller's peer id.
    pub seller: String,
    /// The feed.
    pub feed: String,
    /// The subscription that entitles the buyer.
    pub subscription: String,
    /// The buyer's X25519 keys: the last is presented in the hello (the
    /// key in force), each chunk is opened with the one it is wrapped to.
    pub buyer_keys: Vec<RecipientSecretKey>,
    /// DHT bootstrap peers; the seller and relays are found through them.
    pub bootstrap: Vec<String>,
    /// The seller's address, to dial without the DHT.
    pub seller_addr: Option<String>,
    /// Resume after this chunk.
    pub after: Option<Position>,
    /// Take chunk data from relays (other providers of the feed), keys
    /// from the seller.
    pub relays: bool,
    /// Give up when the seller stays unreachable this long.
    pub reconnect_for: Duration,
}

impl std::fmt::Debug for SubscribeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeConfig")
            .field("seller", &self.seller)
            .field("feed", &self.feed)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

/// What happens as the buyer follows.
#[derive(Debug)]
pub enum Event<'a> {
    /// The DHT's providers of the feed: whether the seller is among them,
    /// and the others (relays, or impostors: never trusted for the feed).
    Providers {
        /// Whether the seller announced the feed.
        seller: bool,
        /// Other providers.
        others: Vec<String>,
    },
    /// The seller accepted (again, on every revalidation).
    Valid(&'a Valid),
    /// A chunk checked and opened.
    Chunk {
        /// Its envelope.
        envelope: &'a ChunkEnvelope,
        /// Its ciphertext.
        ciphertext: &'a [u8],
        /// Its plaintext.
        plaintext: &'a [u8],
        /// The peer its data came from.
        from: &'a str,
    },
    /// A relay's block failed its checks (or the relay failed): it is
    /// dropped and the block is fetched from the next peer.
    RelayRejected {
        /// The relay.
        peer: String,
        /// The index.
        index: u64,
        /// What failed.
        problem: String,
    },
    /// The connection to the seller dropped; reconnecting.
    Disconnected {
        /// Why.
        problem: String,
    },
}

/// How a subscription ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The seller's reason.
    pub reason: String,
    /// The subscription's state, if the seller gave it.
    pub state: Option<String>,
    /// The last chunk accepted.
    pub last: Option<Position>,
}

/// The most relays a buyer tries, taken at random among the providers.
pub const MAX_RELAYS: usize = 8;
/// A block must arrive within this from the `get`.
pub const GET_WITHIN: Duration = Duration::from_secs(20);

/// A chunk as the seller's `key` names it.
struct Named {
    index: u64,
    chunk_id: String,
    envelope_hash: String,
    buyer: KeyRecipient,
}

struct Relay {
    peer: PeerId,
    stream: Option<Messages>,
    bad: bool,
}

struct Follow<'c> {
    config: &'c SubscribeConfig,
    seller: PeerId,
    last: Option<Position>,
    signer: Option<String>,
    head_key: Option<String>,
    pending: Option<Named>,
    relays: Vec<Relay>,
    seller_blocks: Option<Messages>,
}

fn protocol(problem: impl Into<String>) -> NodeError {
    NodeError::Protocol {
        code: ErrorCode::UnauthorizedChunk,
        problem: problem.into(),
    }
}

impl Follow<'_> {
    /// The checks of a chunk's data against the key message and the chain.
    fn check(
        &self,
        envelope: &ChunkEnvelope,
        ciphertext: &[u8],
        named: &Named,
    ) -> Result<(), String> {
        let index = named.index;
        if envelope.index != index || envelope.chunk_id != named.chunk_id {
            return Err(format!(
                "chunk {index}: not the chunk the seller named ({})",
                named.chunk_id
            ));
        }
        if feed::envelope_hash(envelope) != named.envelope_hash {
            return Err(format!(
                "chunk {index}: not the envelope the seller named (an unsigned field differs)"
            ));
        }
        verify_signed(envelope).map_err(|e| format!("chunk {index}: envelope: {e:?}"))?;
        if sha256_hex(ciphertext) != envelope.encrypted_data_hash {
            return Err(format!(
                "chunk {index}: the ciphertext does not hash to encryptedDataHash"
            ));
        }
        if let Some(key) = &self.signer {
            if *key != envelope.signature.public_key_hex {
                return Err(format!(
                    "chunk {index}: signed by another key than the chain"
                ));
            }
        }
        if let Some(last) = &self.last {
            if Some(index) != last.index.checked_add(1) {
                return Err(format!("chunk {index} follows chunk {}", last.index));
            }
            if envelope.previous_chunk_id.as_deref() != Some(last.chunk_id.as_str()) {
                return Err(format!(
                    "chunk {index} does not link to chunk {}",
                    last.index
                ));
            }
        }
        Ok(())
    }

    /// Open a checked chunk and hand it over.
    fn accept(
        &mut self,
        envelope: ChunkEnvelope,
        ciphertext: Vec<u8>,
        wrapped: &KeyRecipient,
        from: &str,
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), String>,
    ) -> Result<(), NodeError> {
        let index = envelope.index;
        let secret = self
            .config
            .buyer_keys
            .iter()
            .find(|k| {
                wrapped
                    .public_key_hex
                    .eq_ignore_ascii_case(&k.public_key().to_hex())
            })
            .ok_or_else(|| {
                protocol(format!(
                    "chunk {index}: wrapped to a key this buyer does not hold"
                ))
            })?;
        let plaintext = decrypt_chunk(&envelope, wrapped, secret, ciphertext.clone())
            .map_err(|e| protocol(format!("chunk {index}: {e}")))?;
        on_event(Event::Chunk {
            envelope: &envelope,
            ciphertext: &ciphertext,
            plaintext: &plaintext,
            from,
        })
        .map_err(NodeError::Sink)?;
        self.signer = Some(envelope.signature.public_key_hex.clone());
        self.last = Some(Position {
            index,
            chunk_id: envelope.chunk_id,
        });
        Ok(())
    }

    /// Ask one block stream for `index`.
    fn get(
        m: &mut Messages,
        seller: &str,
        feed: &str,
        index: u64,
    ) -> Result<Option<(ChunkEnvelope, Vec<u8>)>, String> {
        m.send(&Message::Get {
            seller: seller.to_string(),
            feed: feed.to_string(),
            index,
        })
        .map_err(|e| e.to_string())?;
        match m.recv(MAX_MESSAGE_BYTES) {
            Ok(Some(Message::Chunk {
                envelope,
                ciphertext,
            })) => Ok(Some((*envelope, ciphertext))),
            Ok(Some(Message::Missing { .. })) => Ok(None),
            Ok(Some(_)) => Err("answered a get with another message".into()),
            Ok(None) => Err("closed the stream".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Ask `m` for `index`, within [`GET_WITHIN`].
    fn get_within(
        m: &mut Messages,
        seller: &str,
        feed: &str,
        index: u64,
    ) -> Result<Option<(ChunkEnvelope, Vec<u8>)>, String> {
        m.set_deadline(Some(GET_WITHIN));
        let got = Self::get(m, seller, feed, index);
        m.set_deadline(None);
        got
    }

    /// The data of chunk `named.index`: from the relays in turn, then from
    /// the seller. A relay that fails a check, or cannot answer, is
    /// reported and not asked again.
    fn fetch(
        &mut self,
        node: &Node,
        named: &Named,
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), String>,
    ) -> Result<(ChunkEnvelope, Vec<u8>, String), NodeError> {
        let index = named.index;
        let seller = self.seller.to_string();
        let feed = self.config.feed.clone();
        let open = |peer: PeerId, wait: Duration| {
            node.open(peer, StreamProtocol::new(BLOCKS_PROTOCOL), wait)
                .map(|s| Messages::new(node.rt.handle().clone(), s))
        };
        for r in 0..self.relays.len() {
            if self.relays[r].bad {
                continue;
            }
            let peer = self.relays[r].peer;
            // A stream kept from an earlier get may have been closed while
            // idle: on failure it is opened again, once.
            let mut attempts = if self.relays[r].stream.is_some() {
                2
            } else {
                1
            };
            let problem = loop {
                attempts -= 1;
                if self.relays[r].stream.is_none() {
                    match open(peer, Duration::from_secs(5)) {
                        Ok(m) => self.relays[r].stream = Some(m),
                        Err(e) => break Some(format!("unreachable: {e}")),
                    }
                }
                let m = self.relays[r].stream.as_mut().expect("opened above");
                match Self::get_within(m, &seller, &feed, index) {
                    Ok(None) => break None,
                    Ok(Some((envelope, ciphertext))) => {
                        match self.check(&envelope, &ciphertext, named) {
                            Ok(()) => return Ok((envelope, ciphertext, peer.to_string())),
                            Err(p) => break Some(p),
                        }
                    }
                    Err(p) => {
                        self.relays[r].stream = None;
                        if attempts == 0 {
                            break Some(p);
                        }
                    }
                }
            };
            let Some(problem) = problem else { continue };
            self.relays[r].bad = true;
            self.relays[r].stream = None;
            on_event(Event::RelayRejected {
                peer: peer.to_string(),
                index,
                problem,
            })
            .map_err(NodeError::Sink)?;
        }
        let mut attempts = if self.seller_blocks.is_some() { 2 } else { 1 };
        loop {
            attempts -= 1;
            if self.seller_blocks.is_none() {
                self.seller_blocks = Some(open(self.seller, Duration::from_secs(10))?);
            }
            let m = self.seller_blocks.as_mut().expect("opened above");
            match Self::get_within(m, &seller, &feed, index) {
                Ok(Some((envelope, ciphertext))) => {
                    self.check(&envelope, &ciphertext, named)
                        .map_err(protocol)?;
                    return Ok((envelope, ciphertext, seller));
                }
                Ok(None) => {
                    return Err(protocol(format!(
                        "the seller does not have chunk {index} it sent a key for"
                    )))
                }
                Err(p) => {
                    self.seller_blocks = None;
                    if attempts == 0 {
                        return Err(NodeError::Transport(format!("the seller's blocks: {p}")));
                    }
                }
            }
        }
    }
}

/// Why one connection to the seller ended.
enum Drop {
    /// The seller ended the feed (`invalid`).
    Ended(Ended),
    /// The connection failed: reconnect.
    Lost(String),
}

/// Follow a feed until the seller ends it (see the module documentation).
/// `on_event` hears of everything; an error it returns stops the follow.
pub fn subscribe(
    config: &SubscribeConfig,
    identity: &Identity,
    on_event: &mut dyn FnMut(Event<'_>) -> Result<(), String>,
) -> Result<Ended, NodeError> {
    let seller = parse_peer(&config.seller, "seller")?;
    feed::check_feed_name(&config.feed).map_err(|p| NodeError::Config {
        field: "feed",
        problem: p.into(),
    })?;
    let Some(presented) = config.buyer_keys.last() else {
        return Err(NodeError::Config {
            field: "buyer key",
            problem: "required".into(),
        });
    };
    let buyer_key = presented.public_key().to_hex();
    let bootstrap = parse_addrs(&config.bootstrap, "bootstrap", true)?;
    let dial = match &config.seller_addr {
        Some(a) => {
            let addr = parse_addrs(std::slice::from_ref(a), "seller addr", true)?.remove(0);
            if !matches!(addr.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(p)) if p == seller)
            {
                return Err(NodeError::Config {
                    field: "seller addr",
                    problem: "must end in the seller's /p2p/<peer id>".into(),
                });
            }
            Some(addr)
        }
        None => None,
    };
    if bootstrap.is_empty() && dial.is_none() {
        return Err(NodeError::Config {
            field: "bootstrap",
            problem: "give DHT bootstrap peers, or the seller's address".into(),
        });
    }
    let dht = !bootstrap.is_empty();
    let node = Node::start(
        identity,
        Options {
            listen: None,
            dial,
            dht: dht.then_some(bootstrap),
        },
    )?;
    let mut follow = Follow {
        config,
        seller,
        last: config.after.clone(),
        signer: None,
        head_key: None,
        pending: None,
        relays: Vec::new(),
        seller_blocks: None,
    };
    if dht {
        let providers = node.find_providers(kad::RecordKey::new(&feed::feed_key(
            &seller.to_bytes(),
            &config.feed,
        )));
        let has_seller = providers.contains(&seller);
        let others: Vec<PeerId> = providers
            .iter()
            .copied()
            .filter(|p| *p != seller && *p != node.peer_id)
            .collect();
        on_event(Event::Providers {
            seller: has_seller,
            others: others.iter().map(ToString::to_string).collect(),
        })
        .map_err(NodeError::Sink)?;
        if config.relays {
            // At most MAX_RELAYS, at random: planted providers cannot crowd
            // out the others by their order.
            let mut others = others;
            for i in (1..others.len()).rev() {
                let j = (rand_core::OsRng.next_u64() % (i as u64 + 1)) as usize;
                others.swap(i, j);
            }
            others.truncate(MAX_RELAYS);
            follow.relays = others
                .into_iter()
                .map(|peer| Relay {
                    peer,
                    stream: None,
                    bad: false,
                })
                .collect();
        }
        if !has_seller {
            // Not announced (yet): look its address up directly.
            node.find_peer(seller);
        }
    }
    let mut lost_since: Option<Instant> = None;
    let mut wait = Duration::from_millis(250);
    loop {
        let problem = match node.open(
            seller,
            StreamProtocol::new(feed::PROTOCOL),
            Duration::from_secs(10),
        ) {
            Ok(stream) => {
                let mut m = Messages::new(node.rt.handle().clone(), stream);
                match session(&mut follow, &node, &mut m, &buyer_key, on_event)? {
                    Drop::Ended(ended) => {
                        m.finish();
                        return Ok(ended);
                    }
                    Drop::Lost(p) => {
                        // A session that got as far as `valid` starts the
                        // reconnection clock anew; a refusal to come back
                        // later does not.
                        if follow.head_key.take().is_some() {
                            lost_since = None;
                            wait = Duration::from_millis(250);
                        }
                        p
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        let since = *lost_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= config.reconnect_for {
            return Err(NodeError::Timeout("the seller stayed unreachable"));
        }
        on_event(Event::Disconnected { problem }).map_err(NodeError::Sink)?;
        std::thread::sleep(wait);
        wait = (wait * 2).min(MAX_RECONNECT_WAIT);
        follow.seller_blocks = None;
        if dht {
            node.find_peer(seller);
        }
    }
}

/// One connection's session with the seller.
fn session(
    follow: &mut Follow<'_>,
    node: &Node,
    m: &mut Messages,
    buyer_key: &str,
    on_event: &mut dyn FnMut(Event<'_>) -> Result<(), String>,
) -> Result<Drop, NodeError> {
    let config = follow.config;
    let seller = follow.seller.to_string();
    let inline = !follow.relays.iter().any(|r| !r.bad);
    let mut hello = Hello {
        seller: seller.clone(),
        feed: config.feed.clone(),
        subscription: config.subscription.clone(),
        buyer_key: buyer_key.to_string(),
        from: follow
            .last
            .as_ref()
            .map_or(0, |p| p.index.saturating_add(1)),
        inline,
        signature: String::new(),
    };
    let signature = node
        .keypair
        .sign(&feed::hello_payload(&hello))
        .map_err(|e| NodeError::Transport(format!("signing the hello: {e}")))?;
    hello.signature = hex::encode(signature);
    if let Err(e) = m.send(&Message::Hello(hello)) {
        return Ok(Drop::Lost(e.to_string()));
    }
    follow.pending = None;
    loop {
        let message = match m.recv(MAX_MESSAGE_BYTES) {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(Drop::Lost("the seller closed the stream".into())),
            Err(
                e @ (super::stream::RecvError::Io(_)
                | super::stream::RecvError::Timeout
                | super::stream::RecvError::Truncated),
            ) => return Ok(Drop::Lost(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        match message {
            Message::Valid(v) => {
                let vouched = verify_by_peer(
                    &follow.seller,
                    &feed::head_key_payload(&seller, &config.feed, buyer_key, &v.head_key),
                    &v.head_key_signature,
                );
                if !vouched {
                    return Err(protocol("valid: the head key is not signed by the seller"));
                }
                follow.head_key = Some(v.head_key.clone());
                on_event(Event::Valid(&v)).map_err(NodeError::Sink)?;
            }
            // Busy, the market unreachable, a newer connection: later.
            Message::Invalid {
                reason,
                retry: true,
                ..
            } => return Ok(Drop::Lost(format!("the seller: {reason}"))),
            Message::Invalid { reason, state, .. } => {
                return Ok(Drop::Ended(Ended {
                    reason,
                    state,
                    last: follow.last.clone(),
                }))
            }
            Message::Challenge { sealed } => {
                let Some(secret) = config.buyer_keys.last() else {
                    return Err(protocol("a challenge without a buyer key"));
                };
                let opened = hex::decode(&sealed)
                    .ok()
                    .and_then(|b| sealstream_core::sealed_box::open(&b, secret))
                    .ok_or_else(|| protocol("challenge: it does not open with the buyer key"))?;
                if let Err(e) = m.send(&Message::Proof {
                    nonce: hex::encode(&opened[..]),
                }) {
                    return Ok(Drop::Lost(e.to_string()));
                }
            }
            Message::Key {
                index,
                chunk_id,
                envelope_hash,
                buyer,
            } => {
                if follow.head_key.is_none() {
                    return Err(protocol("a key before valid"));
                }
                if let Some(last) = &follow.last {
                    if index <= last.index {
                        return Err(protocol(format!("chunk {index} sent again")));
                    }
                }
                let named = Named {
                    index,
                    chunk_id,
                    envelope_hash,
                    buyer,
                };
                if inline {
                    follow.pending = Some(named);
                } else {
                    match follow.fetch(node, &named, on_event) {
                        Ok((envelope, ciphertext, from)) => {
                            follow.accept(envelope, ciphertext, &named.buyer, &from, on_event)?
                        }
                        // The network, not the data: reconnect and resume.
                        Err(e @ (NodeError::Transport(_) | NodeError::Timeout(_))) => {
                            return Ok(Drop::Lost(e.to_string()))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Message::Chunk {
                envelope,
                ciphertext,
            } => {
                let Some(named) = follow.pending.take() else {
                    return Err(protocol("a chunk without its key"));
                };
                follow
                    .check(&envelope, &ciphertext, &named)
                    .map_err(protocol)?;
                follow.accept(*envelope, ciphertext, &named.buyer, &seller, on_event)?;
            }
            Message::Head(h) => {
                let key = follow.head_key.as_deref().unwrap_or_default();
                if !verify_by_key(
                    key,
                    &feed::head_payload(&seller, &config.feed, h.length, &h.chunk_id),
                    &h.signature,
                ) {
                    return Err(protocol("head: not signed by this buyer's head key"));
                }
                let matches = follow.last.as_ref().is_some_and(|l| {
                    l.index.checked_add(1) == Some(h.length) && l.chunk_id == h.chunk_id
                });
                if !matches {
                    return Err(protocol(format!(
                        "head: length {} does not name the last chunk accepted",
                        h.length
                    )));
                }
            }
            Message::Hello(_)
            | Message::Get { .. }
            | Message::Missing { .. }
            | Message::Proof { .. } => {
                return Err(protocol("a message the seller does not send"));
            }
        }
    }
}
