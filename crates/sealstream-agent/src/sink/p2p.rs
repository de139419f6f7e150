//! The `p2p` destination: the agent keeps each topic's chain in a
//! directory (as the `directory` destination does) and serves it from
//! there as a live feed (sealstream-p2p's feed server), each subscriber
//! checked with the market, signing in as the machine. Chunk keys are
//! opened with the machine recipient's key and wrapped to each buyer's.
//! The server's address goes to `<path>/p2p.addr` and to the agent's log.

use std::sync::Arc;

use sealstream_client::market::MarketClient;
use sealstream_core::chunk::recipient_type;
use sealstream_core::keys::{MachineSigningKey, RecipientSecretKey};
use sealstream_p2p::live::market::MarketEntitlements;
use sealstream_p2p::live::seller::{FeedServer, FeedServerConfig, ServerEvent};
use sealstream_p2p::node::Identity;

use super::directory::{remove_stale_under, DirectoryDestination};
use super::{Sink, SinkContext, SinkError};
use crate::config;
use crate::pipeline::topic_dir_name;

/// The `p2p` destination (see the module documentation).
pub struct P2pDestination {
    dir: DirectoryDestination,
    root: std::path::PathBuf,
    server: FeedServer,
}

impl P2pDestination {
    /// Create the topic directories, start the feed server and announce the feeds.
    pub fn open(
        config: &config::P2pDestination,
        context: &SinkContext<'_>,
    ) -> Result<P2pDestination, SinkError> {
        let fail = |m: String| SinkError::permanent(format!("type p2p: {m}"));
        let mut feeds = Vec::new();
        for topic in context.topics {
            let dir = config.path.join(topic_dir_name(topic));
            std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
            feeds.push((topic.clone(), dir));
        }
        let text = std::fs::read_to_string(&config.recipient_key_file).map_err(|e| {
            fail(format!(
                "recipientKeyFile {}: {}",
                config.recipient_key_file.display(),
                e.kind()
            ))
        })?;
        let recipient =
            RecipientSecretKey::from_hex(text.trim(), "recipientKeyFile").map_err(|_| {
                fail("recipientKeyFile: expected an X25519 secret key (64 hex digits)".into())
            })?;
        let identity =
            Identity::load_or_create(&config.identity_file).map_err(|e| fail(e.to_string()))?;
        let machine_key = context.machine_key.to_hex_secret();
        let market = config.market.clone();
        let entitlements = MarketEntitlements::new(
            move || {
                MarketClient::new(
                    &market,
                    MachineSigningKey::from_hex(&machine_key, "machine key")
                        .expect("a valid key round-trips"),
                )
            },
            context.machine_did,
        );
        let server = FeedServer::start(
            FeedServerConfig {
                feeds,
                listen: config.listen.clone(),
                bootstrap: config.bootstrap.clone(),
                dht: false,
                revalidate: config.revalidate,
                max_sessions: usize::try_from(config.max_sessions).unwrap_or(usize::MAX),
                granting: recipient_type::MACHINE,
            },
            &identity,
            recipient,
            Arc::new(entitlements),
            Arc::new(|e| match e {
                ServerEvent::Accepted {
                    peer,
                    subscription,
                    feed,
                } => {
                    eprintln!("p2p: {subscription}: buyer {peer} follows {feed}")
                }
                ServerEvent::Invalid {
                    peer,
                    subscription,
                    reason,
                } => {
                    eprintln!("p2p: {subscription}: invalid for buyer {peer}: {reason}")
                }
                ServerEvent::Closed { .. } => {}
            }),
        )
        .map_err(|e| fail(e.to_string()))?;
        let addr_file = config.path.join("p2p.addr");
        sealstream_files::layout::write_atomic(
            &addr_file,
            format!("{}\n", server.addr()).as_bytes(),
        )
        .map_err(|e| fail(format!("{}: {e}", addr_file.display())))?;
        eprintln!(
            "p2p: serving {} feed(s) as peer {} at {}",
            context.topics.len(),
            server.peer_id(),
            server.addr()
        );
        Ok(P2pDestination {
            dir: DirectoryDestination::new(config.path.clone()),
            root: config.path.clone(),
            server,
        })
    }
}

impl Sink for P2pDestination {
    fn describe(&self) -> String {
        format!(
            "p2p {} (feeds from {})",
            self.server.addr(),
            self.root.display()
        )
    }

    fn remove_stale(&mut self, topic_dirs: &[String]) -> Result<usize, SinkError> {
        remove_stale_under(&self.root, topic_dirs)
    }

    fn put(&mut self, key: &str, bytes: &[u8]) -> Result<(), SinkError> {
        self.dir.put(key, bytes)
    }
}
