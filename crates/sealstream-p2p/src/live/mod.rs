//! Live feeds over libp2p, Dazaar-style (the wire is [`crate::feed`];
//! docs/p2p.md has the protocol and its security properties).
//!
//! - [`seller::FeedServer`]: serves feeds (growing chain directories) on
//!   `/sealstream/feed/1` and `/sealstream/blocks/1`, announces them on the
//!   DHT, checks each buyer's hello and entitlement ([`seller::Entitlements`],
//!   the market's API in the CLI), wraps each chunk's key to the buyer's key,
//!   signs per-buyer heads, revalidates on a timer and cuts a buyer off when
//!   the entitlement ends.
//! - [`buyer::subscribe`]: finds the seller through the DHT (or dials it),
//!   authenticates it by its peer id, follows the feed, checks every chunk
//!   (chain link, signature, ciphertext hash, the chunk id the seller named,
//!   the signed heads), takes data from relays when asked, and reconnects
//!   from its last verified index.
//! - [`relay::Relay`]: serves the ciphertext a peer holds to anyone, on the
//!   block protocol, and announces it; its blocks are checked by the buyer.
//! - [`bootstrap`]: a DHT node others join through.

pub mod buyer;
pub mod entitlement;
#[cfg(feature = "market")]
pub mod market;
pub mod relay;
pub mod seller;
mod stream;

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use crate::node::{Identity, Node, NodeError, Options};

/// How long the buyer waits for the seller between attempts, at most.
pub const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// Parse multiaddrs given as text (each must end in `/p2p/<peer id>` when
/// `with_peer`), naming `field` in the error.
pub fn parse_addrs(
    texts: &[String],
    field: &'static str,
    with_peer: bool,
) -> Result<Vec<Multiaddr>, NodeError> {
    texts
        .iter()
        .map(|t| {
            let a: Multiaddr = t.parse().map_err(|_| NodeError::Config {
                field,
                problem: "not a multiaddr (such as /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…)".into(),
            })?;
            if with_peer && !matches!(a.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
                return Err(NodeError::Config {
                    field,
                    problem: "must end in /p2p/<peer id>".into(),
                });
            }
            Ok(a)
        })
        .collect()
}

/// Parse a peer id given as text, naming `field` in the error.
pub fn parse_peer(text: &str, field: &'static str) -> Result<PeerId, NodeError> {
    text.parse().map_err(|_| NodeError::Config {
        field,
        problem: "not a peer id (12D3KooW…)".into(),
    })
}

/// A DHT node that serves nothing else: the peers of a private network
/// bootstrap through it.
pub struct Bootstrap {
    node: Node,
    addr: Multiaddr,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("addr", &self.addr.to_string())
            .finish_non_exhaustive()
    }
}

/// Start a bootstrap node listening on `listen`, itself joining through
/// `peers` (other bootstrap nodes; none for the first).
pub fn bootstrap(
    identity: &Identity,
    listen: &str,
    peers: &[String],
) -> Result<Bootstrap, NodeError> {
    let listen = parse_addrs(&[listen.to_string()], "listen", false)?.remove(0);
    let mut node = Node::start(
        identity,
        Options {
            listen: Some(listen),
            dial: None,
            dht: Some(parse_addrs(peers, "bootstrap", true)?),
        },
    )?;
    let addr = node
        .listen_addr()?
        .with(libp2p::multiaddr::Protocol::P2p(node.peer_id));
    Ok(Bootstrap { node, addr })
}

impl Bootstrap {
    /// The address others give as `--bootstrap` (with `/p2p/<peer id>`).
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The peers connected now and the routing table's size.
    pub fn peers(&self) -> (usize, usize) {
        let (peers, table) = self.node.peers();
        (peers.len(), table)
    }
}
