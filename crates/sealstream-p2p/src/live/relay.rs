//! The block protocol (`/sealstream/blocks/1`): any peer holding a feed's
//! ciphertext serves it by index. [`Relay`] serves a chain directory to
//! anyone and announces itself as a provider of the feed; the seller's
//! [`super::seller::FeedServer`] answers the same protocol for its buyers.
//! Blocks carry no keys, and the buyer checks every one against the chunk
//! id the seller named, so a relay can neither forge nor alter data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use libp2p::{kad, Multiaddr, PeerId, StreamProtocol};
use sealstream_core::chunk::ChunkEnvelope;
use sealstream_files::layout;

use super::stream::Messages;
use super::{parse_addrs, parse_peer};
use crate::feed::{self, Message, BLOCKS_PROTOCOL, MAX_REQUEST_BYTES};
use crate::node::{Identity, Node, NodeError, Options};

/// The most block streams a relay serves at once.
pub const MAX_RELAY_SESSIONS: usize = 64;
/// How long a block stream may stay idle.
pub(crate) const BLOCKS_IDLE: Duration = Duration::from_secs(60);

/// A chunk's envelope and ciphertext.
pub(crate) type Block = (ChunkEnvelope, Vec<u8>);

/// Chunk `index` of the chain directory `dir`, if it is complete there.
pub(crate) fn read_chunk(dir: &Path, index: u64) -> Option<Block> {
    let envelope = layout::read_envelope(&dir.join(layout::envelope_name(index))).ok()?;
    if envelope.index != index {
        return None;
    }
    let ciphertext = layout::read_ciphertext(dir, index).ok()??;
    Some((envelope, ciphertext))
}

/// Answer `get`s on one block stream until the peer closes it or goes
/// quiet: each with what `lookup(seller, feed, index)` finds, or
/// `missing`. Returns the blocks served.
pub(crate) fn serve_blocks(
    mut messages: Messages,
    lookup: &dyn Fn(&str, &str, u64) -> Option<Block>,
) -> u64 {
    messages.set_timeout(BLOCKS_IDLE);
    let mut served = 0;
    while let Ok(Some(Message::Get {
        seller,
        feed,
        index,
    })) = messages.recv(MAX_REQUEST_BYTES)
    {
        let sent = match lookup(&seller, &feed, index) {
            Some((envelope, ciphertext)) => {
                served += 1;
                messages.send(&Message::Chunk {
                    envelope: Box::new(envelope),
                    ciphertext,
                })
            }
            None => messages.send(&Message::Missing { index }),
        };
        if sent.is_err() {
            break;
        }
    }
    messages.finish();
    served
}

/// What a relay serves.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The seller's peer id.
    pub seller: String,
    /// The feed.
    pub feed: String,
    /// The chain directory holding the feed's chunks (a subscriber's
    /// `--keep-chunks`, a download, a mirror).
    pub chunk_dir: PathBuf,
    /// Where to listen.
    pub listen: String,
    /// DHT bootstrap peers.
    pub bootstrap: Vec<String>,
}

/// A running relay.
pub struct Relay {
    node: Node,
    addr: Multiaddr,
    served: Arc<AtomicU64>,
    announced: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr.to_string())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Listen, announce the feed on the DHT and serve its blocks.
    pub fn start(config: RelayConfig, identity: &Identity) -> Result<Relay, NodeError> {
        let seller = parse_peer(&config.seller, "seller")?;
        feed::check_feed_name(&config.feed).map_err(|p| NodeError::Config {
            field: "feed",
            problem: p.into(),
        })?;
        let listen = parse_addrs(std::slice::from_ref(&config.listen), "listen", false)?.remove(0);
        let mut node = Node::start(
            identity,
            Options {
                listen: Some(listen),
                dial: None,
                dht: Some(parse_addrs(&config.bootstrap, "bootstrap", true)?),
            },
        )?;
        let addr = node
            .listen_addr()?
            .with(libp2p::multiaddr::Protocol::P2p(node.peer_id));
        let mut incoming = node
            .control
            .accept(StreamProtocol::new(BLOCKS_PROTOCOL))
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        // Serve first, announce last: once `start` returns, the feed's
        // lookups find this relay.
        let key = kad::RecordKey::new(&feed::feed_key(&seller.to_bytes(), &config.feed));
        let served = Arc::new(AtomicU64::new(0));
        let handle = node.rt.handle().clone();
        let count = served.clone();
        let seller_text = seller.to_string();
        node.rt.spawn(async move {
            let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            while let Some((_peer, stream)) = incoming.next().await {
                if open.fetch_add(1, Ordering::SeqCst) >= MAX_RELAY_SESSIONS {
                    open.fetch_sub(1, Ordering::SeqCst);
                    tokio::spawn(super::seller::refuse_busy(stream));
                    continue;
                }
                let (handle, count, open) = (handle.clone(), count.clone(), open.clone());
                let (seller, feed, dir) = (
                    seller_text.clone(),
                    config.feed.clone(),
                    config.chunk_dir.clone(),
                );
                std::thread::spawn(move || {
                    let messages = Messages::new(handle, stream);
                    let n = serve_blocks(messages, &|s, f, i| {
                        (s == seller && f == feed)
                            .then(|| read_chunk(&dir, i))
                            .flatten()
                    });
                    count.fetch_add(n, Ordering::Relaxed);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let announced = node.provide(key);
        Ok(Relay {
            node,
            addr,
            served,
            announced,
        })
    }

    /// The relay's address (with `/p2p/<peer id>`).
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.node.peer_id
    }

    /// Whether the announcement reached a DHT peer at start (it is
    /// repeated after every bootstrap).
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// Blocks served so far (counted when each stream ends).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}
