//! Destinations of sealed chunks ("sinks"): where the forwarder copies what
//! the spool holds.
//!
//! A sink stores whole objects under relative keys (`<topic-dir>/chunk-0.json`,
//! `<topic-dir>/chunk-0.bin`, `<topic-dir>/dataset-0-9.json`). Each `put` is
//! atomic: a reader sees nothing or the whole object, never a part. A failing
//! `put` is retried later by the forwarder, so sinks do not retry for long
//! themselves.

mod directory;
pub mod identity;
mod market;
mod object_store;
#[cfg(feature = "p2p")]
mod p2p;

pub use self::directory::DirectoryDestination;
pub use self::market::MarketDestination;
pub use self::object_store::ObjectStoreDestination;

use crate::config::Destination;

/// Why a sink could not store an object. Never carries key material: the
/// message names the destination and the key only.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What went wrong, for logs and `agent status`.
    pub message: String,
    /// Whether trying again cannot help (a market's HTTP 4xx other than 408
    /// and 429: the machine is not registered, the key is refused …): the
    /// forwarder then stops delivering to the destination instead of
    /// retrying.
    pub permanent: bool,
}

impl SinkError {
    /// A transient error with this message: the forwarder retries.
    pub fn new(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            permanent: false,
        }
    }

    /// An error retrying cannot cure: the forwarder stops the destination.
    pub fn permanent(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            permanent: true,
        }
    }
}

/// A destination of sealed chunks.
pub trait Sink: Send {
    /// A short description for logs and `agent status` (`directory out/`,
    /// `object store s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Store `bytes` under `key` (a relative path with `/` separators),
    /// replacing any object there; atomic for readers.
    fn put(&mut self, key: &str, bytes: &[u8]) -> Result<(), SinkError>;

    /// Remove what interrupted writes left in the directories of the topics
    /// (`topic_dirs`, their directory names): temporary files of objects
    /// never completed. Returns how many were removed. The default, for
    /// sinks that leave nothing partial behind (S3, the market): none.
    fn remove_stale(&mut self, topic_dirs: &[String]) -> Result<usize, SinkError> {
        let _ = topic_dirs;
        Ok(0)
    }

    /// Delivers one item of `topic`. The default stores its objects with
    /// [`put`](Self::put), ciphertext before envelope, so a reader that
    /// sees the envelope finds the ciphertext; sinks that speak an API
    /// (the market) override it.
    fn deliver(&mut self, topic: &str, item: &Delivery<'_>) -> Result<(), SinkError> {
        let _ = topic;
        match item {
            Delivery::Chunk {
                ciphertext,
                envelope,
                ..
            } => {
                self.put(ciphertext.0, ciphertext.1)?;
                self.put(envelope.0, envelope.1)
            }
            Delivery::Dataset { manifest, .. } => self.put(manifest.0, manifest.1),
        }
    }
}

/// One item the forwarder delivers, with its objects as (key, bytes) in the
/// directory layout.
#[derive(Debug)]
pub enum Delivery<'a> {
    /// Chunk `index` of the topic's chain.
    Chunk {
        /// The chain index.
        index: u64,
        /// `<topic-dir>/chunk-N.bin`.
        ciphertext: (&'a str, &'a [u8]),
        /// `<topic-dir>/chunk-N.json`.
        envelope: (&'a str, &'a [u8]),
    },
    /// The signed dataset manifest of chunks `first..=last`.
    Dataset {
        /// First chain index covered.
        first: u64,
        /// Last chain index covered.
        last: u64,
        /// `<topic-dir>/dataset-A-B.json`.
        manifest: (&'a str, &'a [u8]),
    },
}

/// What sinks may need besides their configuration.
pub struct SinkContext<'a> {
    /// The machine's secp256k1 key: the market destination signs in with it.
    pub machine_key: &'a sealstream_core::keys::MachineSigningKey,
    /// The machine's DID.
    pub machine_did: &'a str,
    /// The topics (names): the `p2p` destination serves one feed each.
    pub topics: &'a [String],
}

/// Open the sink of a configured destination.
pub fn open(
    destination: &Destination,
    context: &SinkContext<'_>,
) -> Result<Box<dyn Sink>, SinkError> {
    match destination {
        Destination::Directory { path } => Ok(Box::new(DirectoryDestination::new(path.clone()))),
        Destination::ObjectStore { url, location } => {
            Ok(Box::new(ObjectStoreDestination::open(url, location)?))
        }
        Destination::Market { url } => {
            Ok(Box::new(MarketDestination::new(url, context.machine_key)))
        }
        #[cfg(feature = "p2p")]
        Destination::P2p(config) => Ok(Box::new(p2p::P2pDestination::open(config, context)?)),
        #[cfg(not(feature = "p2p"))]
        Destination::P2p(_) => Err(SinkError::permanent(
            "type p2p: this build of sealstream has no peer-to-peer support (build it with the p2p feature)",
        )),
    }
}
