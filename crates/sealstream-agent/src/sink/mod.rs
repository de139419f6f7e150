//! Destinations of sealed chunks ("sinks"): where the forwarder copies what
//! the spool holds.
//!
//! A sink stores whole objects under relative keys (`<topic-dir>/chunk-0.json`,
//! `<topic-dir>/chunk-0.bin`, `<topic-dir>/dataset-0-9.json`). Each `put` is
//! atomic: a reader sees nothing or the whole object, never a part. A failing
//! `put` is retried later by the forwarder, so sinks do not retry for long
//! themselves.

mod directory;
mod object_store;

pub use self::directory::DirectoryDestination;
pub use self::object_store::ObjectStoreDestination;

use crate::config::Destination;

/// Why a sink could not store an object. Never carries key material: the
/// message names the destination and the key only.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What went wrong, for logs and `agent status`.
    pub message: String,
}

impl SinkError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
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
}

/// Open the sink of a configured destination. Market destinations are not
/// delivered by this version (the market server comes later).
pub fn open(destination: &Destination) -> Result<Box<dyn Sink>, SinkError> {
    match destination {
        Destination::Directory { path } => Ok(Box::new(DirectoryDestination::new(path.clone()))),
        Destination::ObjectStore { url, location } => {
            Ok(Box::new(ObjectStoreDestination::open(url, location)?))
        }
        Destination::Market { url } => Err(SinkError::new(format!(
            "market {url}: delivery to a market server is not available in this version"
        ))),
    }
}
