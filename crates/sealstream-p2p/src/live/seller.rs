//! The seller's side of live feeds: [`FeedServer`].
//!
//! Each feed is a chain directory that grows (an agent's `directory` or
//! `p2p` destination, a mirror of the market's chain). A chunk's time is
//! its envelope file's modification time, in Unix seconds, never later than
//! the scan that found it: the seller's clock for entitlements, as the
//! market's acceptance time is the market's (a mirror stamps each file with
//! the market's time). A buyer's session:
//!
//! 1. the hello (within 10 s, at most 16 KiB) must name this seller and a
//!    served feed, carry a 32-byte X25519 key and an entitlement id of a
//!    safe shape, and be signed by the peer that opened the stream;
//! 2. the entitlement ([`Entitlements::check`]) must be in force and list
//!    that key; otherwise `invalid{reason}`;
//! 3. the buyer proves it holds that key: it opens a nonce sealed to it;
//! 4. one session per feed, entitlement and buyer key: a newer one replaces
//!    the older, which is told so (and may come back);
//! 5. `valid`, then from the index asked for, each chunk the entitlement
//!    covers: its key wrapped to the buyer key in force at the chunk's
//!    time, the chunk (unless the buyer takes data from relays), and a head
//!    signed by the per-buyer head key; for a dataset's order, only chunks
//!    that are the dataset's (its first chunk id, each linked to the one
//!    before, its head chunk id);
//! 6. a key goes out only once a check that began after the chunk's time
//!    says the chunk is covered; `valid` is repeated at least every 20 s
//!    (and after every revalidation); once the entitlement has ended, the
//!    chunks before its end are sent, then `invalid{reason}`, and no
//!    further key.
//!
//! Limits: `max_sessions` feed streams and as many block streams, at most
//! 4 streams of each kind per peer; a stream beyond them is told to come
//! back later (`invalid` with `retry`) and closed, in a task, not a thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use libp2p::identity::Keypair;
use libp2p::{kad, Multiaddr, PeerId, StreamProtocol};
use rand_core::{OsRng, RngCore};
use sealstream_core::access::{access_entry, open_chunk_key, Buyer};
use sealstream_core::chunk::{verify_signed, ChunkEnvelope};
use sealstream_core::keys::RecipientSecretKey;
use sealstream_files::layout;
use sha2::{Digest, Sha256};

use super::entitlement::Decision;
pub use super::entitlement::{DatasetRange, Denied, Entitlement, Entitlements, History};
use super::parse_addrs;
use super::relay::{read_chunk, serve_blocks};
use super::stream::{verify_by_peer, Messages};
use crate::feed::{self, Head, Hello, Message, Valid, BLOCKS_PROTOCOL, MAX_REQUEST_BYTES};
use crate::node::{Identity, Node, NodeError, Options};

/// How often the feed directories are looked at for new chunks.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// The most feed sessions (and as many block streams) at once by default.
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// How often a session checks its entitlement again by default.
pub const DEFAULT_REVALIDATE: Duration = Duration::from_secs(30);
/// The most streams of one kind (feed, blocks) one peer may hold.
pub const MAX_STREAMS_PER_PEER: usize = 4;
/// A buyer's hello, and its proof, must arrive within this.
pub const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// `valid` goes to the buyer at least this often (the buyer's reads time
/// out after 60 s).
pub const KEEPALIVE: Duration = Duration::from_secs(20);

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
    /// The first index known and the times (Unix seconds) of chunks
    /// `base..`; while no chunk is known, `base` follows the lowest index
    /// in the directory.
    chain: Mutex<(u64, Vec<i64>)>,
    grew: Condvar,
    /// When the last complete scan started (Unix seconds).
    scanned: AtomicI64,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The modification time of `path` in Unix seconds.
fn file_time(path: &std::path::Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(match modified.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => 0,
    })
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

impl FeedDir {
    fn new(name: &str, dir: &std::path::Path) -> FeedDir {
        FeedDir {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            chain: Mutex::new((first_index(dir), Vec::new())),
            grew: Condvar::new(),
            scanned: AtomicI64::new(i64::MIN),
        }
    }

    fn base(&self) -> u64 {
        self.chain.lock().expect("feed lock").0
    }

    fn len(&self) -> u64 {
        let chain = self.chain.lock().expect("feed lock");
        chain.0 + chain.1.len() as u64
    }

    fn time(&self, index: u64) -> Option<i64> {
        let chain = self.chain.lock().expect("feed lock");
        let i = usize::try_from(index.checked_sub(chain.0)?).ok()?;
        chain.1.get(i).copied()
    }

    /// The first index accepted at or after `t`.
    fn first_at_or_after(&self, t: i64) -> u64 {
        let chain = self.chain.lock().expect("feed lock");
        chain.0 + chain.1.partition_point(|x| *x < t) as u64
    }

    /// Look for chunks that appeared; wake the sessions if any did.
    fn scan(&self) {
        let started = now_unix();
        if self.chain.lock().expect("feed lock").1.is_empty() {
            // Nothing known yet: the chain starts where the directory does
            // (a destination added to a running agent starts past 0).
            let first = first_index(&self.dir);
            self.chain.lock().expect("feed lock").0 = first;
        }
        let mut next = self.len();
        let mut found = Vec::new();
        while let Some(t) = file_time(&self.dir.join(layout::envelope_name(next))) {
            if !self.dir.join(layout::ciphertext_name(next)).exists() {
                break;
            }
            // A file stamped in the future counts as found now.
            found.push(t.min(started));
            next += 1;
        }
        if !found.is_empty() {
            let mut chain = self.chain.lock().expect("feed lock");
            // Times never go back: a file touched later keeps its order.
            let mut last = chain.1.last().copied().unwrap_or(i64::MIN);
            for t in found {
                last = last.max(t);
                chain.1.push(last);
            }
            drop(chain);
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
        let chain = self.chain.lock().expect("feed lock");
        if chain.0 + chain.1.len() as u64 > len {
            return;
        }
        let _ = self.grew.wait_timeout(chain, wait);
    }
}

/// What a feed server serves.
#[derive(Clone, Debug)]
pub struct FeedServerConfig {
    /// Feeds: (name, chain directory).
    pub feeds: Vec<(String, PathBuf)>,
    /// Where to listen (a dialable address).
    pub listen: String,
    /// DHT bootstrap peers (`/…/p2p/<peer id>`); none: the DHT is not joined
    /// and buyers dial the server's address.
    pub bootstrap: Vec<String>,
    /// Join the DHT even without bootstrap peers (as its first node).
    pub dht: bool,
    /// How often each session checks its entitlement again.
    pub revalidate: Duration,
    /// The most feed sessions at once (and as many block streams).
    pub max_sessions: usize,
    /// The chunks' recipient whose key opens them (`owner` for the owner's
    /// server, `machine` for the machine's agent).
    pub granting: &'static str,
}

struct Session {
    generation: u64,
    status: SessionStatus,
}

/// Streams open, in all and per peer, of one kind.
struct Pool {
    max: usize,
    open: Mutex<(usize, HashMap<PeerId, usize>)>,
}

/// A place in a [`Pool`], given back when dropped (a panicking session
/// gives it back too).
struct Slot<'a> {
    pool: &'a Pool,
    peer: PeerId,
}

impl Pool {
    fn new(max: usize) -> Pool {
        Pool {
            max,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// Take a place for `peer`, if the pool and the peer's share have one.
    fn take(&self, peer: PeerId) -> bool {
        let mut open = self.open.lock().expect("pool lock");
        let mine = open.1.get(&peer).copied().unwrap_or(0);
        if open.0 >= self.max || mine >= MAX_STREAMS_PER_PEER {
            return false;
        }
        open.0 += 1;
        open.1.insert(peer, mine + 1);
        true
    }

    fn give_back(&self, peer: PeerId) {
        let mut open = self.open.lock().expect("pool lock");
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&peer);
            }
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.pool.give_back(self.peer);
    }
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
    granting: &'static str,
    feed_streams: Pool,
    block_streams: Pool,
    generation: AtomicU64,
    /// By feed, entitlement and buyer key.
    sessions: Mutex<HashMap<String, Session>>,
    /// Peers with a valid session open now (how many): they may fetch blocks.
    entitled_peers: Mutex<HashMap<PeerId, usize>>,
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

impl FeedServer {
    /// Check the feeds, listen, join the DHT and announce every feed, and
    /// serve. `owner` opens the chunk keys (the chain's recipient of type
    /// [`FeedServerConfig::granting`]); `events` hears of sessions.
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
        let mut feeds: Vec<Arc<FeedDir>> = Vec::new();
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
            if feeds.iter().any(|f| f.name == *name) {
                return Err(NodeError::Config {
                    field: "feed",
                    problem: format!("{name:?} given twice"),
                });
            }
            let f = Arc::new(FeedDir::new(name, dir));
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
        let max = config.max_sessions.max(1);
        let shared = Arc::new(Shared {
            keypair: node.keypair.clone(),
            seed: *identity.seed(),
            seller: node.peer_id.to_string(),
            feeds,
            owner,
            entitlements,
            events,
            revalidate: config.revalidate.max(Duration::from_millis(100)),
            granting: config.granting,
            feed_streams: Pool::new(max),
            block_streams: Pool::new(max),
            generation: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            entitled_peers: Mutex::new(HashMap::new()),
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
                    let pool_has_room = if blocks {
                        shared.block_streams.take(peer)
                    } else {
                        shared.feed_streams.take(peer)
                    };
                    if !pool_has_room {
                        // Told so in a task of its own, within a second: no
                        // thread for a stream not served.
                        tokio::spawn(refuse_busy(stream));
                        continue;
                    }
                    let messages = Messages::new(handle.clone(), stream);
                    let session = shared.clone();
                    let spawned = std::thread::Builder::new()
                        .name("sealstream-feed-session".into())
                        .spawn(move || {
                            let pool = if blocks {
                                &session.block_streams
                            } else {
                                &session.feed_streams
                            };
                            let _slot = Slot { pool, peer };
                            if blocks {
                                session.blocks_session(peer, messages);
                            } else {
                                session.feed_session(peer, messages);
                            }
                        });
                    if spawned.is_err() {
                        // No thread to be had: the place goes back.
                        if blocks {
                            shared.block_streams.give_back(peer);
                        } else {
                            shared.feed_streams.give_back(peer);
                        }
                    }
                }
            });
        }
        // Announce once serving: a buyer that finds the feed can follow it.
        let mut announced = dht_joined;
        if dht_joined {
            for f in &shared.feeds {
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

/// Tell the opener of a stream beyond the limits to come back later, and
/// close it (within a second in all).
pub(crate) async fn refuse_busy(mut stream: libp2p::Stream) {
    use futures_util::AsyncWriteExt;
    let line = Message::Invalid {
        reason: "serving as many sessions as it may: try again later".into(),
        state: None,
        retry: true,
    }
    .encode();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&line).await?;
        stream.close().await
    })
    .await;
}

/// Why a session stops.
enum Stop {
    /// Tell the buyer, then close: the reason, the state, whether to retry.
    Invalid(String, Option<String>, bool),
    /// The stream failed: just close.
    Gone,
}

impl Stop {
    /// A refusal the buyer should not retry.
    fn refused(reason: impl Into<String>) -> Stop {
        Stop::Invalid(reason.into(), None, false)
    }

    /// A stop the buyer may retry later.
    fn later(reason: impl Into<String>) -> Stop {
        Stop::Invalid(reason.into(), None, true)
    }

    /// The entitlement ended (or is not in force): final.
    fn ended(ent: &Entitlement) -> Stop {
        Stop::Invalid(
            ent.reason
                .clone()
                .filter(|_| !ent.in_force())
                .unwrap_or_else(|| ent.ended_reason()),
            Some(ent.state.clone()),
            false,
        )
    }
}

/// What a session streams from, and to whom.
struct Streaming<'a> {
    peer: PeerId,
    hello: &'a Hello,
    feed: &'a FeedDir,
    buyer_key: &'a str,
    session_key: &'a str,
    generation: u64,
}

impl Shared {
    fn feed(&self, name: &str) -> Option<&Arc<FeedDir>> {
        self.feeds.iter().find(|f| f.name == name)
    }

    /// Blocks for peers with a valid session open; any other peer's stream
    /// is closed at once.
    fn blocks_session(&self, peer: PeerId, messages: Messages) {
        let allowed = self
            .entitled_peers
            .lock()
            .expect("peers lock")
            .get(&peer)
            .is_some_and(|n| *n > 0);
        if !allowed {
            messages.finish();
            return;
        }
        serve_blocks(messages, &|seller, feed, index| match self.feed(feed) {
            Some(f) if seller == self.seller && index < f.len() => read_chunk(&f.dir, index),
            _ => None,
        });
    }

    fn feed_session(&self, peer: PeerId, mut m: Messages) {
        m.set_deadline(Some(HELLO_WITHIN));
        let hello = match m.recv(MAX_REQUEST_BYTES) {
            Ok(Some(Message::Hello(h))) => h,
            Ok(_) | Err(_) => {
                let _ = m.send(&Message::Invalid {
                    reason: "expected a hello".into(),
                    state: None,
                    retry: false,
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
        // Shown in logs and the status: a safe shape, or nothing of it.
        let shown = if feed::check_entitlement_id(&hello.subscription).is_ok() {
            hello.subscription.clone()
        } else {
            "(malformed)".into()
        };
        let mut keys = 0u64;
        let stop = self.serve_hello(peer, &hello, &mut m, &mut keys);
        m.set_deadline(Some(Duration::from_secs(2)));
        match stop {
            Stop::Invalid(reason, state, retry) => {
                let _ = m.send(&Message::Invalid {
                    reason: reason.clone(),
                    state,
                    retry,
                });
                (self.events)(ServerEvent::Invalid {
                    peer: peer.to_string(),
                    subscription: shown.clone(),
                    reason,
                });
            }
            Stop::Gone => {}
        }
        m.finish();
        (self.events)(ServerEvent::Closed {
            peer: peer.to_string(),
            subscription: shown,
            keys,
        });
    }

    /// Check a hello and serve the session; returns why it stops.
    fn serve_hello(&self, peer: PeerId, hello: &Hello, m: &mut Messages, keys: &mut u64) -> Stop {
        if hello.seller != self.seller {
            return Stop::refused("this hello is for another seller");
        }
        let Some(feed) = self.feed(&hello.feed).cloned() else {
            return Stop::refused("no such feed here");
        };
        if let Err(p) = feed::check_entitlement_id(&hello.subscription) {
            return Stop::refused(format!("subscription: {p}"));
        }
        let mut buyer_key_bytes = [0u8; 32];
        if hello.buyer_key.len() != 64
            || hex::decode_to_slice(&hello.buyer_key, &mut buyer_key_bytes).is_err()
        {
            return Stop::refused("buyerKey: expected 64 hex digits (an X25519 public key)");
        }
        if !verify_by_peer(&peer, &feed::hello_payload(hello), &hello.signature) {
            return Stop::refused("signature: not the connecting peer's signature of this hello");
        }
        let mut ent = match self.entitlements.check(&feed.name, &hello.subscription) {
            Ok(e) => e,
            Err(Denied::Refused(reason)) => return Stop::refused(reason),
            Err(Denied::Unavailable(why)) => {
                return Stop::later(format!(
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
            return Stop::refused("buyerKey: not a buyer key of this subscription");
        }
        if !ent.in_force() {
            return Stop::ended(&ent);
        }
        // The buyer proves it holds the key: a nonce sealed to it, opened.
        let mut nonce = [0u8; 32];
        OsRng.fill_bytes(&mut nonce);
        let sealed = hex::encode(sealstream_core::sealed_box::seal(&nonce, &buyer_key_bytes));
        if m.send(&Message::Challenge { sealed }).is_err() {
            return Stop::Gone;
        }
        match m.recv(MAX_REQUEST_BYTES) {
            Ok(Some(Message::Proof { nonce: answer })) if answer == hex::encode(nonce) => {}
            Ok(_) => return Stop::refused("proof: not the challenge opened with the buyer key"),
            Err(_) => return Stop::Gone,
        }
        m.set_deadline(None);
        // One session per feed, entitlement and buyer key: this one
        // replaces any other.
        let session_key = format!("{}\n{}\n{buyer_key}", feed.name, hello.subscription);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.sessions.lock().expect("sessions lock").insert(
            session_key.clone(),
            Session {
                generation,
                status: SessionStatus {
                    peer: peer.to_string(),
                    subscription: hello.subscription.clone(),
                    feed: feed.name.clone(),
                    state: ent.state.clone(),
                    next: hello.from.max(feed.base()),
                    keys: 0,
                },
            },
        );
        *self
            .entitled_peers
            .lock()
            .expect("peers lock")
            .entry(peer)
            .or_insert(0) += 1;
        let result = self.stream_feed(
            &Streaming {
                peer,
                hello,
                feed: &feed,
                buyer_key: &buyer_key,
                session_key: &session_key,
                generation,
            },
            &mut ent,
            m,
            keys,
        );
        {
            let mut peers = self.entitled_peers.lock().expect("peers lock");
            if let Some(n) = peers.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    peers.remove(&peer);
                }
            }
        }
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions
            .get(&session_key)
            .is_some_and(|s| s.generation == generation)
        {
            sessions.remove(&session_key);
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

    fn stream_feed(
        &self,
        s: &Streaming<'_>,
        ent: &mut Entitlement,
        m: &mut Messages,
        keys: &mut u64,
    ) -> Stop {
        let (feed, hello) = (s.feed, s.hello);
        let head = head_keypair(&self.seed, &feed.name, s.buyer_key);
        let head_key = match head.public().try_into_ed25519() {
            Ok(k) => hex::encode(k.to_bytes()),
            Err(_) => return Stop::Gone,
        };
        let vouch = match self.keypair.sign(&feed::head_key_payload(
            &self.seller,
            &feed.name,
            s.buyer_key,
            &head_key,
        )) {
            Ok(v) => hex::encode(v),
            Err(_) => return Stop::Gone,
        };
        if m.send(&self.valid(ent, feed, &head_key, &vouch)).is_err() {
            return Stop::Gone;
        }
        (self.events)(ServerEvent::Accepted {
            peer: s.peer.to_string(),
            subscription: hello.subscription.clone(),
            feed: feed.name.clone(),
        });
        // The entitlement as known holds for chunks that appeared before the
        // check began (`as_of`): a key goes out only for such a chunk, so no
        // chunk after the end (a revocation, say) gets a key, however late
        // the periodic check would have noticed it.
        let mut checked = Instant::now();
        let mut sent_valid = Instant::now();
        // After a failed check, the next one waits (1 s, doubling up to
        // `revalidate`).
        let mut backoff = Duration::ZERO;
        let mut next = hello.from.max(feed.base());
        // The last chunk sent (a dataset's chunks must link to it).
        let mut previous: Option<String> = None;
        let recheck = |ent: &mut Entitlement,
                       checked: &mut Instant,
                       backoff: &mut Duration|
         -> Result<bool, Stop> {
            *checked = Instant::now();
            match self.entitlements.check(&feed.name, &hello.subscription) {
                Ok(e) => {
                    *ent = e;
                    *backoff = Duration::ZERO;
                    Ok(true)
                }
                Err(Denied::Refused(reason)) => Err(Stop::refused(reason)),
                Err(Denied::Unavailable(_)) => {
                    *backoff = (*backoff * 2)
                        .max(Duration::from_secs(1))
                        .min(self.revalidate.max(Duration::from_secs(1)));
                    Ok(false)
                }
            }
        };
        loop {
            let replaced = self
                .sessions
                .lock()
                .expect("sessions lock")
                .get(s.session_key)
                .is_none_or(|x| x.generation != s.generation);
            if replaced {
                return Stop::later("another connection with this buyer key replaced this one");
            }
            let may_check = checked.elapsed() >= backoff;
            if checked.elapsed() >= self.revalidate && may_check {
                if let Err(stop) = recheck(ent, &mut checked, &mut backoff) {
                    return stop;
                }
            }
            if sent_valid.elapsed() >= KEEPALIVE.min(self.revalidate) {
                // The state as known (and a probe of the stream).
                if m.send(&self.valid(ent, feed, &head_key, &vouch)).is_err() {
                    return Stop::Gone;
                }
                sent_valid = Instant::now();
            }
            // Whether a chunk waits for a check.
            let mut waiting = false;
            let len = feed.len();
            while next < len {
                let Some(t) = feed.time(next) else { break };
                if ent.as_of <= t {
                    // Known only as of before the chunk: ask again, once
                    // the chunk's second has passed.
                    if now_unix() <= t
                        || checked.elapsed() < backoff.max(Duration::from_millis(200))
                    {
                        waiting = true;
                        break;
                    }
                    match recheck(ent, &mut checked, &mut backoff) {
                        Err(stop) => return stop,
                        Ok(true) if ent.as_of > t => {}
                        Ok(_) => {
                            waiting = true;
                            break;
                        }
                    }
                }
                let first_live = ent
                    .active_from
                    .map_or(u64::MAX, |f| feed.first_at_or_after(f));
                match ent.decide(next, t, first_live) {
                    Decision::Send(key_hex) => {
                        match self.send_chunk(
                            feed,
                            next,
                            t,
                            &key_hex,
                            ent,
                            &mut previous,
                            hello.inline,
                            &head,
                            m,
                        ) {
                            Ok(()) => {}
                            Err(stop) => return stop,
                        }
                        *keys += 1;
                        next += 1;
                        if let Some(x) = self
                            .sessions
                            .lock()
                            .expect("sessions lock")
                            .get_mut(s.session_key)
                        {
                            x.status.next = next;
                            x.status.keys = *keys;
                            x.status.state = ent.state.clone();
                        }
                    }
                    Decision::Skip => next += 1,
                    // Past the end known to a renewable entitlement: the
                    // market's sweep is late; ask again.
                    Decision::Recheck => {
                        if checked.elapsed() >= Duration::from_secs(1).max(backoff) {
                            match recheck(ent, &mut checked, &mut backoff) {
                                Err(stop) => return stop,
                                Ok(_) => continue,
                            }
                        }
                        waiting = true;
                        break;
                    }
                    Decision::Ended => return Stop::ended(ent),
                }
            }
            // A final entitlement whose end has passed, with every chunk
            // before it sent (a dataset's: its last chunk sent): the feed
            // ends for this buyer.
            let over = ent
                .ends
                .is_none_or(|e| e <= now_unix() && feed.complete_before(e));
            let done = match &ent.dataset {
                Some(d) => next > d.last,
                None => ent.is_final && over && next >= feed.len(),
            };
            if done || !ent.in_force() {
                return Stop::ended(ent);
            }
            if waiting {
                std::thread::sleep(Duration::from_millis(200));
            } else {
                let wait = self
                    .revalidate
                    .saturating_sub(checked.elapsed())
                    .min(KEEPALIVE.saturating_sub(sent_valid.elapsed()))
                    .min(Duration::from_secs(1));
                feed.wait_longer(next, wait.max(Duration::from_millis(10)));
            }
        }
    }

    /// The chunk at `index` (its time as scanned `t`), checked: still the
    /// file scanned (not written again since), and for a dataset's order,
    /// one of the dataset's chunks.
    fn checked_chunk(
        &self,
        feed: &FeedDir,
        index: u64,
        t: i64,
        ent: &Entitlement,
        previous: &Option<String>,
    ) -> Result<(ChunkEnvelope, Vec<u8>), Stop> {
        let Some((envelope, ciphertext)) = read_chunk(&feed.dir, index) else {
            return Err(Stop::later(format!(
                "chunk {index} is unavailable at the seller"
            )));
        };
        let written = file_time(&feed.dir.join(layout::envelope_name(index))).unwrap_or(i64::MAX);
        if written > t.saturating_add(1) && written <= now_unix() {
            return Err(Stop::refused(format!(
                "the feed's chunk {index} was written again after it was served: the chain changed"
            )));
        }
        if let Some(d) = &ent.dataset {
            let linked = match previous {
                Some(p) => envelope.previous_chunk_id.as_deref() == Some(p.as_str()),
                None if index == d.first => envelope.chunk_id == d.first_chunk_id,
                // Resuming: the chunks before it, from the dataset's first,
                // must be the dataset's too.
                None => match dataset_prefix(feed, d, index) {
                    Some(p) => envelope.previous_chunk_id.as_deref() == Some(p.as_str()),
                    None => false,
                },
            };
            let headed = index != d.last || envelope.chunk_id == d.head_chunk_id;
            if !linked || !headed || verify_signed(&envelope).is_err() {
                return Err(Stop::refused(format!(
                    "the feed's chunk {index} is not the dataset's: the seller's copy differs from what was sold"
                )));
            }
        }
        Ok((envelope, ciphertext))
    }

    #[allow(clippy::too_many_arguments)]
    fn send_chunk(
        &self,
        feed: &FeedDir,
        index: u64,
        t: i64,
        key_hex: &str,
        ent: &Entitlement,
        previous: &mut Option<String>,
        inline: bool,
        head: &Keypair,
        m: &mut Messages,
    ) -> Result<(), Stop> {
        let (envelope, ciphertext) = self.checked_chunk(feed, index, t, ent, previous)?;
        let key = open_chunk_key(&envelope, self.granting, &self.owner)
            .map_err(|e| Stop::refused(format!("the seller cannot open chunk {index}: {e}")))?;
        let buyer = Buyer::new(&ent.recipient_id, key_hex)
            .map_err(|_| Stop::refused("the subscription's buyer key is not an X25519 key"))?;
        let entry = access_entry(&envelope, &key, &buyer);
        let chunk_id = envelope.chunk_id.clone();
        let send = |msg: &Message, m: &mut Messages| m.send(msg).map_err(|_| Stop::Gone);
        send(
            &Message::Key {
                index,
                chunk_id: chunk_id.clone(),
                envelope_hash: feed::envelope_hash(&envelope),
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
                chunk_id: chunk_id.clone(),
                signature,
            }),
            m,
        )?;
        *previous = Some(chunk_id);
        Ok(())
    }
}

/// The id of chunk `index - 1` of `feed`, if chunks `d.first..index` are
/// the dataset's (the first its first, each linked to the one before and
/// signed).
fn dataset_prefix(feed: &FeedDir, d: &DatasetRange, index: u64) -> Option<String> {
    let mut previous: Option<String> = None;
    for i in d.first..index {
        let e = layout::read_envelope(&feed.dir.join(layout::envelope_name(i))).ok()?;
        let linked = match &previous {
            None => e.chunk_id == d.first_chunk_id,
            Some(p) => e.previous_chunk_id.as_deref() == Some(p.as_str()),
        };
        if e.index != i || !linked || verify_signed(&e).is_err() {
            return None;
        }
        previous = Some(e.chunk_id);
    }
    previous
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_keys_differ_per_buyer_and_feed_and_are_stable() {
        let seed = [7u8; 32];
        let a = head_keypair(&seed, "f", "AA").public();
        assert_eq!(a, head_keypair(&seed, "f", "aa").public());
        assert_ne!(a, head_keypair(&seed, "f", "bb").public());
        assert_ne!(a, head_keypair(&seed, "g", "aa").public());
        assert_ne!(a, head_keypair(&[8u8; 32], "f", "aa").public());
    }

    /// An entitlement of one buyer key, in force.
    struct OneKey(String);

    impl Entitlements for OneKey {
        fn check(&self, _feed: &str, _id: &str) -> Result<Entitlement, Denied> {
            Ok(Entitlement {
                as_of: now_unix(),
                state: "active".into(),
                is_final: false,
                reason: None,
                active_from: Some(0),
                ends: None,
                paid_through: None,
                grace_until: None,
                access_ends: None,
                seconds_left: None,
                history: History::None,
                keys: vec![(i64::MIN, self.0.clone())],
                recipient_id: "buyer".into(),
                dataset: None,
            })
        }
    }

    /// A peer that knows a subscription id and its buyer's public key, but
    /// not the secret, signs a perfect hello with its own identity: the
    /// challenge stops it before `valid` (no state, no session taken over).
    #[test]
    fn a_hello_for_a_key_the_peer_does_not_hold_gets_no_session() {
        let dir = tempfile::tempdir().unwrap();
        let buyer = RecipientSecretKey::generate();
        let server = FeedServer::start(
            FeedServerConfig {
                feeds: vec![("/t".into(), dir.path().to_path_buf())],
                listen: crate::node::DEFAULT_LISTEN.into(),
                bootstrap: vec![],
                dht: false,
                revalidate: Duration::from_secs(60),
                max_sessions: 4,
                granting: sealstream_core::chunk::recipient_type::OWNER,
            },
            &Identity::generate(),
            RecipientSecretKey::generate(),
            Arc::new(OneKey(buyer.public_key().to_hex())),
            Arc::new(|_| {}),
        )
        .unwrap();
        let addr: Multiaddr = server.addr().parse().unwrap();
        let seller: PeerId = server.peer_id().parse().unwrap();
        let node = Node::start(
            &Identity::generate(),
            Options {
                dial: Some(addr),
                ..Options::default()
            },
        )
        .unwrap();
        let stream = node
            .open(
                seller,
                StreamProtocol::new(feed::PROTOCOL),
                Duration::from_secs(10),
            )
            .unwrap();
        let mut m = Messages::new(node.rt.handle().clone(), stream);
        let mut hello = Hello {
            seller: server.peer_id(),
            feed: "/t".into(),
            subscription: "sub_1".into(),
            buyer_key: buyer.public_key().to_hex(),
            from: 0,
            inline: true,
            signature: String::new(),
        };
        hello.signature = hex::encode(node.keypair.sign(&feed::hello_payload(&hello)).unwrap());
        m.send(&Message::Hello(hello)).unwrap();
        let Ok(Some(Message::Challenge { sealed })) = m.recv(MAX_REQUEST_BYTES) else {
            panic!("no challenge")
        };
        // Without the secret, the nonce cannot be opened: any answer is wrong.
        assert!(sealstream_core::sealed_box::open(
            &hex::decode(&sealed).unwrap(),
            &RecipientSecretKey::generate()
        )
        .is_none());
        m.send(&Message::Proof {
            nonce: "00".repeat(32),
        })
        .unwrap();
        match m.recv(crate::feed::MAX_MESSAGE_BYTES) {
            Ok(Some(Message::Invalid { reason, retry, .. })) => {
                assert!(reason.starts_with("proof:"), "{reason}");
                assert!(!retry);
            }
            other => panic!("{other:?}"),
        }
        assert!(server.status().sessions.is_empty());
    }

    #[test]
    fn a_pool_bounds_streams_in_all_and_per_peer() {
        let pool = Pool::new(6);
        let (a, b) = (PeerId::random(), PeerId::random());
        for _ in 0..MAX_STREAMS_PER_PEER {
            assert!(pool.take(a));
        }
        assert!(!pool.take(a), "a peer's share is full");
        assert!(pool.take(b) && pool.take(b));
        assert!(!pool.take(PeerId::random()), "the pool is full");
        drop(Slot {
            pool: &pool,
            peer: a,
        });
        assert!(pool.take(a), "a place given back is taken again");
    }
}
