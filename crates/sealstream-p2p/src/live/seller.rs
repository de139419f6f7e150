//! The seller's side of live feeds: [`FeedServer`].
//!
//! Each feed is a chain directory that grows (an agent's `directory`
//! destination, a publish output). A chunk's time is when its envelope
//! appeared there (the file's modification time, in Unix seconds): the
//! seller's clock for entitlements, as the market's acceptance time is the
//! market's. A buyer's session:
//!
//! 1. the hello must name this seller and a served feed, carry a 32-byte
//!    X25519 key and be signed by the peer that opened the stream;
//! 2. the entitlement ([`Entitlements::check`]) must be in force and list
//!    that key; otherwise `invalid{reason}`;
//! 3. one session per buyer key: a newer one replaces the older, which is
//!    told so;
//! 4. `valid`, then from the index asked for, each chunk the entitlement
//!    covers: its key wrapped to the buyer key in force at the chunk's
//!    time, the chunk (unless the buyer takes data from relays), and a head
//!    signed by the per-buyer head key;
//! 5. the entitlement is checked again every `revalidate` and before any
//!    chunk past its known end; once it has ended, the chunks before its end
//!    are sent, then `invalid{reason}`, and no further key.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use libp2p::identity::Keypair;
use libp2p::{kad, Multiaddr, PeerId, StreamProtocol};
use sealstream_core::access::{access_entry, open_chunk_key, Buyer};
use sealstream_core::chunk::recipient_type;
use sealstream_core::keys::RecipientSecretKey;
use sealstream_files::layout;
use sha2::{Digest, Sha256};

use super::parse_addrs;
use super::relay::{read_chunk, serve_blocks};
use super::stream::{verify_by_peer, Messages};
use crate::feed::{self, Head, Hello, Message, Valid, BLOCKS_PROTOCOL, MAX_REQUEST_BYTES};
use crate::node::{Identity, Node, NodeError, Options, HANDSHAKE_TIMEOUT};

/// How often the feed directories are looked at for new chunks.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// The most sessions (feed and block streams) served at once by default.
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// How often a session checks its entitlement again by default.
pub const DEFAULT_REVALIDATE: Duration = Duration::from_secs(30);

/// Which chunks from before the subscription's start it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum History {
    /// None.
    None,
    /// All of them.
    All,
    /// The last `n` of them.
    Last(u64),
}

/// An entitlement as the seller's source of truth states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlement {
    /// The subscription's state (`active`, `grace`, `lapsed`, …).
    pub state: String,
    /// Whether the state is final (no renewal can extend it).
    pub is_final: bool,
    /// Why it ended or is not in force (shown to the buyer).
    pub reason: Option<String>,
    /// Unix seconds from which chunks are covered (the first payment).
    pub active_from: Option<i64>,
    /// Unix seconds at which coverage ends, if it does (the access end once
    /// final, `T + G` while renewable).
    pub ends: Option<i64>,
    /// `T` (UTC text), for the buyer's display.
    pub paid_through: Option<String>,
    /// `T + G` (UTC text), for the buyer's display.
    pub grace_until: Option<String>,
    /// The access end (UTC text), once it has one.
    pub access_ends: Option<String>,
    /// Seconds until `T + G`.
    pub seconds_left: Option<u64>,
    /// History before `active_from`.
    pub history: History,
    /// The buyer keys (X25519, hex) with the Unix second each applies from,
    /// oldest first (the first applies to every chunk before the second).
    pub keys: Vec<(i64, String)>,
    /// The access entries' recipient id.
    pub recipient_id: String,
}

/// What the seller decides for one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    /// Wrap its key to this buyer key.
    Send(String),
    /// Not covered (before the start, outside history): skip it.
    Skip,
    /// Past the known end of a renewable entitlement: check again first.
    Recheck,
    /// Past the end of a final one: the feed ends here for this buyer.
    Ended,
}

impl Entitlement {
    /// Whether it covers anything now (`active` or `grace`), or still has
    /// chunks due (final with an end).
    fn in_force(&self) -> bool {
        self.active_from.is_some() && (!self.is_final || self.ends.is_some())
    }

    fn key_at(&self, t: i64) -> Option<&str> {
        let mut key = self.keys.first().map(|k| k.1.as_str());
        for (from, k) in self.keys.iter().skip(1) {
            if *from <= t {
                key = Some(k);
            }
        }
        key
    }

    /// Chunk `index`, accepted at `t`; `first_live` is the first index
    /// accepted at or after `active_from`.
    fn decide(&self, index: u64, t: i64, first_live: u64) -> Decision {
        let Some(from) = self.active_from else {
            return Decision::Ended;
        };
        if t < from {
            let covered = match self.history {
                History::None => false,
                History::All => true,
                History::Last(n) => index + n >= first_live,
            };
            return match (covered, self.keys.first()) {
                (true, Some(k)) => Decision::Send(k.1.clone()),
                _ => Decision::Skip,
            };
        }
        match self.ends {
            Some(end) if t >= end => {
                if self.is_final {
                    Decision::Ended
                } else {
                    Decision::Recheck
                }
            }
            _ => match self.key_at(t) {
                Some(k) => Decision::Send(k.to_string()),
                None => Decision::Skip,
            },
        }
    }
}

/// Why [`Entitlements::check`] gives no entitlement. The text is shown to
/// the buyer: no secret in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// There is none (no such subscription, another feed's, …).
    Refused(String),
    /// It cannot be checked now (the market is unreachable): a hello is
    /// refused, a running session keeps what it last knew (and sends no
    /// key past that entitlement's known end).
    Unavailable(String),
}

/// The seller's source of truth for entitlements (the market's API in the
/// CLI). Called from session threads; may block.
pub trait Entitlements: Send + Sync {
    /// The entitlement of subscription `subscription` to feed `feed`.
    fn check(&self, feed: &str, subscription: &str) -> Result<Entitlement, Denied>;
}

/// What the server reports as it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A buyer's session was accepted.
    Accepted {
        /// The buyer's peer id.
        peer: String,
        /// The subscription.
        subscription: String,
        /// The feed.
        feed: String,
    },
    /// A hello was refused, or a session ended with `invalid`.
    Invalid {
        /// The peer id.
        peer: String,
        /// The subscription named, if any.
        subscription: String,
        /// Why.
        reason: String,
    },
    /// A session ended.
    Closed {
        /// The buyer's peer id.
        peer: String,
        /// The subscription.
        subscription: String,
        /// Keys sent in it.
        keys: u64,
    },
}

/// One session's line in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// The buyer's peer id.
    pub peer: String,
    /// The subscription.
    pub subscription: String,
    /// The feed.
    pub feed: String,
    /// The entitlement's state as last checked.
    pub state: String,
    /// The next index to send.
    pub next: u64,
    /// Keys sent.
    pub keys: u64,
}

/// What a server is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The server's address (with `/p2p/<peer id>`).
    pub addr: String,
    /// Feeds and their lengths.
    pub feeds: Vec<(String, u64)>,
    /// Sessions open.
    pub sessions: Vec<SessionStatus>,
    /// Peers connected and the DHT's routing table size.
    pub peers: usize,
    /// The DHT routing table's size.
    pub routing_table: usize,
}

/// A feed: a chain directory that grows, and its chunks' times.
struct FeedDir {
    name: String,
    dir: PathBuf,
    /// The first index in the directory.
    base: u64,
    /// Times (Unix seconds) of chunks `base..`.
    times: Mutex<Vec<i64>>,
    grew: Condvar,
    /// When the last complete scan started (Unix seconds).
    scanned: AtomicI64,
}

impl FeedDir {
    fn len(&self) -> u64 {
        self.base + self.times.lock().expect("feed lock").len() as u64
    }

    fn time(&self, index: u64) -> Option<i64> {
        let i = usize::try_from(index.checked_sub(self.base)?).ok()?;
        self.times.lock().expect("feed lock").get(i).copied()
    }

    /// The first index accepted at or after `t`.
    fn first_at_or_after(&self, t: i64) -> u64 {
        let times = self.times.lock().expect("feed lock");
        self.base + times.partition_point(|x| *x < t) as u64
    }

    /// Look for chunks that appeared; wake the sessions if any did.
    fn scan(&self) {
        let started = now_unix();
        let mut next = self.len();
        let mut found = Vec::new();
        loop {
            let envelope = self.dir.join(layout::envelope_name(next));
            let Ok(meta) = std::fs::metadata(&envelope) else {
                break;
            };
            if !self.dir.join(layout::ciphertext_name(next)).exists() {
                break;
            }
            let t = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            found.push(t);
            next += 1;
        }
        if !found.is_empty() {
            let mut times = self.times.lock().expect("feed lock");
            // Times never go back: a file touched later keeps its order.
            let mut last = times.last().copied().unwrap_or(i64::MIN);
            for t in found {
                last = last.max(t);
                times.push(last);
            }
            drop(times);
            self.grew.notify_all();
        }
        self.scanned.store(started, Ordering::SeqCst);
    }

    /// Whether every chunk written before `t` (by its file's time) is
    /// known: a scan started well after `t` (a chunk's file is written,
    /// then renamed into place, so its time can precede its appearance).
    fn complete_before(&self, t: i64) -> bool {
        self.scanned.load(Ordering::SeqCst) >= t.saturating_add(2)
    }

    /// Wait until the feed is longer than `len` or `wait` passes.
    fn wait_longer(&self, len: u64, wait: Duration) {
        let times = self.times.lock().expect("feed lock");
        if self.base + times.len() as u64 > len {
            return;
        }
        let _ = self.grew.wait_timeout(times, wait);
    }
}

/// What a feed server serves.
#[derive(Clone, Debug)]
pub struct FeedServerConfig {
    /// Feeds: (name, chain directory).
    pub feeds: Vec<(String, PathBuf)>,
    /// Where to listen (a dialable address).
    pub listen: String,
    /// DHT bootstrap peers (`/…/p2p/<id>`); none: the DHT is not joined
    /// and buyers dial the server's address.
    pub bootstrap: Vec<String>,
    /// Join the DHT even without bootstrap peers (as its first node).
    pub dht: bool,
    /// How often each session checks its entitlement again.
    pub revalidate: Duration,
    /// The most sessions at once.
    pub max_sessions: usize,
}

struct Session {
    generation: u64,
    status: SessionStatus,
}

struct Shared {
    keypair: Keypair,
    seed: [u8; 32],
    seller: String,
    feeds: Vec<Arc<FeedDir>>,
    owner: RecipientSecretKey,
    entitlements: Arc<dyn Entitlements>,
    events: Arc<dyn Fn(ServerEvent) + Send + Sync>,
    revalidate: Duration,
    max_sessions: usize,
    open: AtomicUsize,
    generation: AtomicU64,
    /// By buyer key.
    sessions: Mutex<HashMap<String, Session>>,
    /// Peers that had a valid session: they may fetch blocks.
    entitled_peers: Mutex<HashSet<PeerId>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

/// A running feed server (see the module documentation).
pub struct FeedServer {
    node: Node,
    addr: Multiaddr,
    shared: Arc<Shared>,
    announced: bool,
}

impl std::fmt::Debug for FeedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedServer")
            .field("addr", &self.addr.to_string())
            .finish_non_exhaustive()
    }
}

fn first_index(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_prefix("chunk-")?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .min()
        .unwrap_or(0)
}

/// The per-buyer head key: an Ed25519 key derived from the seller's seed,
/// the feed and the buyer's key (Dazaar's rekeyed feed).
fn head_keypair(seed: &[u8; 32], feed: &str, buyer_key: &str) -> Keypair {
    let mut h = Sha256::new();
    h.update(b"sealstream/feed/1 head-key\0");
    h.update(seed);
    h.update(feed.as_bytes());
    h.update(b"\0");
    h.update(buyer_key.to_ascii_lowercase().as_bytes());
    let mut bytes: [u8; 32] = h.finalize().into();
    let key = Keypair::ed25519_from_bytes(&mut bytes).expect("32 bytes are an Ed25519 secret");
    zeroize::Zeroize::zeroize(&mut bytes);
    key
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl FeedServer {
    /// Check the feeds, listen, join the DHT and announce every feed, and
    /// serve. `owner` opens the chunk keys (the chain's `owner` recipient);
    /// `events` hears of sessions.
    pub fn start(
        config: FeedServerConfig,
        identity: &Identity,
        owner: RecipientSecretKey,
        entitlements: Arc<dyn Entitlements>,
        events: Arc<dyn Fn(ServerEvent) + Send + Sync>,
    ) -> Result<FeedServer, NodeError> {
        if config.feeds.is_empty() {
            return Err(NodeError::Config {
                field: "feed",
                problem: "give at least one feed (NAME=DIR)".into(),
            });
        }
        let mut feeds = Vec::new();
        for (name, dir) in &config.feeds {
            feed::check_feed_name(name).map_err(|p| NodeError::Config {
                field: "feed",
                problem: format!("{name:?}: {p}"),
            })?;
            if !dir.is_dir() {
                return Err(NodeError::Chain(format!(
                    "{}: no such directory (feed {name})",
                    dir.display()
                )));
            }
            if feeds.iter().any(|f: &Arc<FeedDir>| f.name == *name) {
                return Err(NodeError::Config {
                    field: "feed",
                    problem: format!("{name:?} given twice"),
                });
            }
            let f = Arc::new(FeedDir {
                name: name.clone(),
                dir: dir.clone(),
                base: first_index(dir),
                times: Mutex::new(Vec::new()),
                grew: Condvar::new(),
                scanned: AtomicI64::new(i64::MIN),
            });
            f.scan();
            feeds.push(f);
        }
        let listen = parse_addrs(std::slice::from_ref(&config.listen), "listen", false)?.remove(0);
        let bootstrap = parse_addrs(&config.bootstrap, "bootstrap", true)?;
        let dht_joined = !bootstrap.is_empty();
        let dht = (config.dht || dht_joined).then_some(bootstrap);
        let mut node = Node::start(
            identity,
            Options {
                listen: Some(listen),
                dial: None,
                dht,
            },
        )?;
        let addr = node
            .listen_addr()?
            .with(libp2p::multiaddr::Protocol::P2p(node.peer_id));
        let seller = node.peer_id.to_string();
        let shared = Arc::new(Shared {
            keypair: node.keypair.clone(),
            seed: *identity.seed(),
            seller,
            feeds,
            owner,
            entitlements,
            events,
            revalidate: config.revalidate.max(Duration::from_millis(100)),
            max_sessions: config.max_sessions.max(1),
            open: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            entitled_peers: Mutex::new(HashSet::new()),
        });
        // The directory watcher.
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("sealstream-feed-watch".into())
            .spawn(move || {
                while let Some(s) = weak.upgrade() {
                    for f in &s.feeds {
                        f.scan();
                    }
                    drop(s);
                    std::thread::sleep(WATCH_EVERY);
                }
            })
            .map_err(|e| NodeError::Transport(format!("thread: {e}")))?;
        for (protocol, blocks) in [(feed::PROTOCOL, false), (BLOCKS_PROTOCOL, true)] {
            let mut incoming = node
                .control
                .accept(StreamProtocol::new(protocol))
                .map_err(|e| NodeError::Transport(e.to_string()))?;
            let (handle, shared) = (node.rt.handle().clone(), shared.clone());
            node.rt.spawn(async move {
                while let Some((peer, stream)) = incoming.next().await {
                    let (handle, shared) = (handle.clone(), shared.clone());
                    let messages = Messages::new(handle, stream);
                    if shared.open.fetch_add(1, Ordering::SeqCst) >= shared.max_sessions {
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                        std::thread::spawn(move || {
                            let mut m = messages;
                            let _ = m.send(&Message::Invalid {
                                reason: "the seller is serving as many sessions as it may: try again later".into(),
                                state: None,
                            });
                            m.finish();
                        });
                        continue;
                    }
                    std::thread::spawn(move || {
                        if blocks {
                            shared.blocks_session(peer, messages);
                        } else {
                            shared.feed_session(peer, messages);
                        }
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
        // Announce once serving: a buyer that finds the feed can follow it.
        let mut announced = dht_joined;
        for f in &shared.feeds {
            if dht_joined {
                announced &= node.provide(kad::RecordKey::new(&feed::feed_key(
                    &node.peer_id.to_bytes(),
                    &f.name,
                )));
            }
        }
        Ok(FeedServer {
            node,
            addr,
            shared,
            announced,
        })
    }

    /// The address buyers dial (with `/p2p/<peer id>`).
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The seller's peer id.
    pub fn peer_id(&self) -> String {
        self.shared.seller.clone()
    }

    /// Whether every feed's announcement reached a DHT peer at start (they
    /// are repeated after every bootstrap).
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// What the server is doing now.
    pub fn status(&self) -> Status {
        let (peers, table) = self.node.peers();
        let mut sessions: Vec<SessionStatus> = self
            .shared
            .sessions
            .lock()
            .expect("sessions lock")
            .values()
            .map(|s| s.status.clone())
            .collect();
        sessions.sort_by(|a, b| (&a.feed, &a.subscription).cmp(&(&b.feed, &b.subscription)));
        Status {
            addr: self.addr(),
            feeds: self
                .shared
                .feeds
                .iter()
                .map(|f| (f.name.clone(), f.len()))
                .collect(),
            sessions,
            peers: peers.len(),
            routing_table: table,
        }
    }
}

/// Why a session stops.
enum Stop {
    /// Tell the buyer, then close.
    Invalid(String, Option<String>),
    /// The stream failed: just close.
    Gone,
}

impl Shared {
    fn feed(&self, name: &str) -> Option<&Arc<FeedDir>> {
        self.feeds.iter().find(|f| f.name == name)
    }

    /// Blocks for peers that have had a valid session (any other gets
    /// `missing` for everything).
    fn blocks_session(&self, peer: PeerId, messages: Messages) {
        let allowed = self
            .entitled_peers
            .lock()
            .expect("peers lock")
            .contains(&peer);
        serve_blocks(messages, &|seller, feed, index| match self.feed(feed) {
            Some(f) if allowed && seller == self.seller && index < f.len() => {
                read_chunk(&f.dir, index)
            }
            _ => None,
        });
    }

    fn feed_session(&self, peer: PeerId, mut m: Messages) {
        m.set_timeout(HANDSHAKE_TIMEOUT);
        let hello = match m.recv(MAX_REQUEST_BYTES) {
            Ok(Some(Message::Hello(h))) => h,
            Ok(_) | Err(_) => {
                let _ = m.send(&Message::Invalid {
                    reason: "expected a hello".into(),
                    state: None,
                });
                m.finish();
                (self.events)(ServerEvent::Invalid {
                    peer: peer.to_string(),
                    subscription: String::new(),
                    reason: "expected a hello".into(),
                });
                return;
            }
        };
        m.set_timeout(crate::node::IO_TIMEOUT);
        let subscription = hello.subscription.clone();
        let mut keys = 0u64;
        let stop = self.serve_hello(peer, &hello, &mut m, &mut keys);
        match stop {
            Stop::Invalid(reason, state) => {
                let _ = m.send(&Message::Invalid {
                    reason: reason.clone(),
                    state,
                });
                (self.events)(ServerEvent::Invalid {
                    peer: peer.to_string(),
                    subscription: subscription.clone(),
                    reason,
                });
            }
            Stop::Gone => {}
        }
        m.finish();
        (self.events)(ServerEvent::Closed {
            peer: peer.to_string(),
            subscription,
            keys,
        });
    }

    /// Check a hello and serve the session; returns why it stops.
    fn serve_hello(&self, peer: PeerId, hello: &Hello, m: &mut Messages, keys: &mut u64) -> Stop {
        let invalid = |r: &str| Stop::Invalid(r.to_string(), None);
        if hello.seller != self.seller {
            return invalid("this hello is for another seller");
        }
        let Some(feed) = self.feed(&hello.feed).cloned() else {
            return invalid("no such feed here");
        };
        if hello.buyer_key.len() != 64 || hex::decode(&hello.buyer_key).is_err() {
            return invalid("buyerKey: expected 64 hex digits (an X25519 public key)");
        }
        if !verify_by_peer(&peer, &feed::hello_payload(hello), &hello.signature) {
            return invalid("signature: not the connecting peer's signature of this hello");
        }
        // The entitlement this check answers is the market's as of its start.
        let checked_from = now_unix();
        let mut ent = match self.entitlements.check(&feed.name, &hello.subscription) {
            Ok(e) => e,
            Err(Denied::Refused(reason)) => return invalid(&reason),
            Err(Denied::Unavailable(why)) => {
                return invalid(&format!(
                    "the seller cannot check the subscription now ({why}): try again later"
                ))
            }
        };
        let buyer_key = hello.buyer_key.to_ascii_lowercase();
        if !ent
            .keys
            .iter()
            .any(|k| k.1.eq_ignore_ascii_case(&buyer_key))
        {
            return invalid("buyerKey: not a buyer key of this subscription");
        }
        if !ent.in_force() {
            let reason = ent
                .reason
                .clone()
                .unwrap_or_else(|| format!("the subscription is {}", ent.state));
            return Stop::Invalid(reason, Some(ent.state));
        }
        // One session per buyer key: this one replaces any other.
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.sessions.lock().expect("sessions lock").insert(
            buyer_key.clone(),
            Session {
                generation,
                status: SessionStatus {
                    peer: peer.to_string(),
                    subscription: hello.subscription.clone(),
                    feed: feed.name.clone(),
                    state: ent.state.clone(),
                    next: hello.from,
                    keys: 0,
                },
            },
        );
        let result = self.stream_feed(
            peer,
            hello,
            &feed,
            &buyer_key,
            generation,
            &mut ent,
            checked_from,
            m,
            keys,
        );
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions
            .get(&buyer_key)
            .is_some_and(|s| s.generation == generation)
        {
            sessions.remove(&buyer_key);
        }
        result
    }

    fn valid(&self, ent: &Entitlement, feed: &FeedDir, head_key: &str, signature: &str) -> Message {
        Message::Valid(Valid {
            state: ent.state.clone(),
            paid_through: ent.paid_through.clone(),
            grace_until: ent.grace_until.clone(),
            seconds_left: ent.seconds_left,
            access_ends: ent.access_ends.clone(),
            head_key: head_key.to_string(),
            head_key_signature: signature.to_string(),
            length: feed.len(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn stream_feed(
        &self,
        peer: PeerId,
        hello: &Hello,
        feed: &FeedDir,
        buyer_key: &str,
        generation: u64,
        ent: &mut Entitlement,
        checked_from: i64,
        m: &mut Messages,
        keys: &mut u64,
    ) -> Stop {
        let head = head_keypair(&self.seed, &feed.name, buyer_key);
        let head_key = match head.public().try_into_ed25519() {
            Ok(k) => hex::encode(k.to_bytes()),
            Err(_) => return Stop::Gone,
        };
        let vouch = match self.keypair.sign(&feed::head_key_payload(
            &self.seller,
            &feed.name,
            buyer_key,
            &head_key,
        )) {
            Ok(s) => hex::encode(s),
            Err(_) => return Stop::Gone,
        };
        if m.send(&self.valid(ent, feed, &head_key, &vouch)).is_err() {
            return Stop::Gone;
        }
        self.entitled_peers.lock().expect("peers lock").insert(peer);
        (self.events)(ServerEvent::Accepted {
            peer: peer.to_string(),
            subscription: hello.subscription.clone(),
            feed: feed.name.clone(),
        });
        let mut checked = Instant::now();
        // The entitlement as known is the market's as of this second (the
        // start of the last check that answered): a key goes out only for
        // a chunk that appeared before it, so no chunk after the end (a
        // revocation, say) gets a key, however late the check. The hello's
        // check is the first: chunks that appeared before it need no other
        // (without it, every session waited for a second check before its
        // first key).
        let mut fresh_as_of = checked_from;
        let mut next = hello.from.max(feed.base);
        // Ok(true): answered; Ok(false): the market could not be asked.
        let recheck = |ent: &mut Entitlement,
                       checked: &mut Instant,
                       fresh_as_of: &mut i64|
         -> Result<bool, Stop> {
            *checked = Instant::now();
            let started = now_unix();
            match self.entitlements.check(&feed.name, &hello.subscription) {
                Ok(e) => {
                    *ent = e;
                    *fresh_as_of = started;
                    Ok(true)
                }
                Err(Denied::Refused(reason)) => Err(Stop::Invalid(reason, None)),
                Err(Denied::Unavailable(_)) => Ok(false),
            }
        };
        loop {
            let replaced = self
                .sessions
                .lock()
                .expect("sessions lock")
                .get(buyer_key)
                .is_none_or(|s| s.generation != generation);
            if replaced {
                return Stop::Invalid(
                    "another connection with this buyer key replaced this one".into(),
                    None,
                );
            }
            if checked.elapsed() >= self.revalidate {
                if let Err(stop) = recheck(ent, &mut checked, &mut fresh_as_of) {
                    return stop;
                }
                // A fresh state for the buyer (and a probe of the stream).
                if m.send(&self.valid(ent, feed, &head_key, &vouch)).is_err() {
                    return Stop::Gone;
                }
            }
            // Whether a chunk waits for the next second's check.
            let mut waiting = false;
            let len = feed.len();
            while next < len {
                let Some(t) = feed.time(next) else { break };
                if fresh_as_of <= t {
                    // Known only as of before the chunk: ask again, once
                    // the chunk's second has passed.
                    if now_unix() <= t || checked.elapsed() < Duration::from_millis(200) {
                        waiting = true;
                        break;
                    }
                    match recheck(ent, &mut checked, &mut fresh_as_of) {
                        Err(stop) => return stop,
                        Ok(false) => {
                            waiting = true;
                            break;
                        }
                        Ok(true) => {}
                    }
                }
                let first_live = ent
                    .active_from
                    .map_or(u64::MAX, |f| feed.first_at_or_after(f));
                match ent.decide(next, t, first_live) {
                    Decision::Send(key_hex) => {
                        if let Err(stop) =
                            self.send_chunk(feed, next, &key_hex, ent, hello.inline, &head, m)
                        {
                            return stop;
                        }
                        *keys += 1;
                        next += 1;
                        if let Some(s) = self
                            .sessions
                            .lock()
                            .expect("sessions lock")
                            .get_mut(buyer_key)
                        {
                            s.status.next = next;
                            s.status.keys = *keys;
                            s.status.state = ent.state.clone();
                        }
                    }
                    Decision::Skip => next += 1,
                    // Past the end known as of a fresh check of a renewable
                    // entitlement: the market's sweep is late; ask again
                    // later.
                    Decision::Recheck => {
                        waiting = true;
                        break;
                    }
                    Decision::Ended => {
                        return Stop::Invalid(ended_reason(ent), Some(ent.state.clone()));
                    }
                }
            }
            // A final entitlement whose end has passed, with every chunk
            // before it sent: the feed ends for this buyer.
            let over = ent
                .ends
                .is_none_or(|e| e <= now_unix() && feed.complete_before(e));
            if ent.is_final && over && next >= feed.len() {
                return Stop::Invalid(ended_reason(ent), Some(ent.state.clone()));
            }
            if !ent.in_force() {
                return Stop::Invalid(ended_reason(ent), Some(ent.state.clone()));
            }
            let wait = if waiting {
                Duration::from_millis(200)
            } else {
                self.revalidate
                    .saturating_sub(checked.elapsed())
                    .min(Duration::from_secs(1))
            };
            if waiting {
                std::thread::sleep(wait);
            } else {
                feed.wait_longer(next, wait.max(Duration::from_millis(10)));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_chunk(
        &self,
        feed: &FeedDir,
        index: u64,
        key_hex: &str,
        ent: &Entitlement,
        inline: bool,
        head: &Keypair,
        m: &mut Messages,
    ) -> Result<(), Stop> {
        let Some((envelope, ciphertext)) = read_chunk(&feed.dir, index) else {
            return Err(Stop::Invalid(
                format!("chunk {index} is unavailable at the seller"),
                None,
            ));
        };
        let key = open_chunk_key(&envelope, recipient_type::OWNER, &self.owner).map_err(|e| {
            Stop::Invalid(format!("the seller cannot open chunk {index}: {e}"), None)
        })?;
        let buyer = Buyer::new(&ent.recipient_id, key_hex).map_err(|_| {
            Stop::Invalid(
                "the subscription's buyer key is not an X25519 key".into(),
                None,
            )
        })?;
        let entry = access_entry(&envelope, &key, &buyer);
        let chunk_id = envelope.chunk_id.clone();
        let send = |msg: &Message, m: &mut Messages| m.send(msg).map_err(|_| Stop::Gone);
        send(
            &Message::Key {
                index,
                chunk_id: chunk_id.clone(),
                buyer: entry.buyer,
            },
            m,
        )?;
        if inline {
            send(
                &Message::Chunk {
                    envelope: Box::new(envelope),
                    ciphertext,
                },
                m,
            )?;
        }
        let signature = head
            .sign(&feed::head_payload(
                &self.seller,
                &feed.name,
                index + 1,
                &chunk_id,
            ))
            .map(hex::encode)
            .map_err(|_| Stop::Gone)?;
        send(
            &Message::Head(Head {
                length: index + 1,
                chunk_id,
                signature,
            }),
            m,
        )
    }
}

fn ended_reason(ent: &Entitlement) -> String {
    match (&ent.reason, &ent.access_ends) {
        (Some(r), Some(at)) => format!(
            "the subscription is {} ({r}); access ended at {at}",
            ent.state
        ),
        (Some(r), None) => format!("the subscription is {} ({r})", ent.state),
        (None, Some(at)) => format!("the subscription is {}; access ended at {at}", ent.state),
        (None, None) => format!("the subscription is {}", ent.state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(history: History, ends: Option<i64>, is_final: bool) -> Entitlement {
        Entitlement {
            state: "active".into(),
            is_final,
            reason: None,
            active_from: Some(100),
            ends,
            paid_through: None,
            grace_until: None,
            access_ends: None,
            seconds_left: None,
            history,
            keys: vec![(i64::MIN, "k1".into()), (200, "k2".into())],
            recipient_id: "b".into(),
        }
    }

    #[test]
    fn chunks_are_decided_by_time_history_and_key() {
        let e = ent(History::None, Some(300), false);
        assert_eq!(e.decide(0, 50, 5), Decision::Skip);
        assert_eq!(e.decide(5, 100, 5), Decision::Send("k1".into()));
        assert_eq!(e.decide(6, 200, 5), Decision::Send("k2".into()));
        assert_eq!(e.decide(7, 300, 5), Decision::Recheck);
        let f = ent(History::None, Some(300), true);
        assert_eq!(f.decide(7, 300, 5), Decision::Ended);
        assert_eq!(f.decide(6, 299, 5), Decision::Send("k2".into()));
        let all = ent(History::All, None, false);
        assert_eq!(all.decide(0, 1, 5), Decision::Send("k1".into()));
        assert_eq!(all.decide(9, 10_000, 5), Decision::Send("k2".into()));
        let last2 = ent(History::Last(2), None, false);
        assert_eq!(last2.decide(2, 1, 5), Decision::Skip);
        assert_eq!(last2.decide(3, 1, 5), Decision::Send("k1".into()));
        assert_eq!(last2.decide(4, 1, 5), Decision::Send("k1".into()));
        let mut unpaid = ent(History::All, None, false);
        unpaid.active_from = None;
        assert!(!unpaid.in_force());
        assert_eq!(unpaid.decide(0, 1, 0), Decision::Ended);
    }

    #[test]
    fn head_keys_differ_per_buyer_and_feed_and_are_stable() {
        let seed = [7u8; 32];
        let a = head_keypair(&seed, "f", "AA").public();
        assert_eq!(a, head_keypair(&seed, "f", "aa").public());
        assert_ne!(a, head_keypair(&seed, "f", "bb").public());
        assert_ne!(a, head_keypair(&seed, "g", "aa").public());
        assert_ne!(a, head_keypair(&[8u8; 32], "f", "aa").public());
    }
}
