//! The `market` destination: chunks and dataset manifests uploaded to a
//! sealstream market server through its API, signed in as the machine.
//!
//! The forwarder delivers each topic's chunks in chain order and retries a
//! failed delivery with backoff, so this sink makes one attempt per call
//! (signing in again once if the session expired). The server accepts the
//! same chunk twice without storing it twice, so a delivery repeated after a
//! crash is harmless.

use sealstream_core::keys::MachineSigningKey;

use super::{Delivery, Sink, SinkError};
use crate::market::MarketClient;

/// A market server destination.
pub struct MarketDestination {
    client: MarketClient,
}

impl MarketDestination {
    /// A destination for the server at `url`, signing in with the
    /// machine's key when it first delivers.
    pub fn new(url: &str, machine_key: &MachineSigningKey) -> MarketDestination {
        let key = MachineSigningKey::from_hex(&machine_key.to_hex_secret(), "machine key")
            .expect("a valid key round-trips");
        MarketDestination {
            client: MarketClient::new(url, key),
        }
    }
}

impl Sink for MarketDestination {
    fn describe(&self) -> String {
        format!("market {}", self.client.base_url())
    }

    fn put(&mut self, key: &str, _bytes: &[u8]) -> Result<(), SinkError> {
        Err(SinkError::new(format!(
            "market {}: objects are delivered as chunks, not as {key}",
            self.client.base_url()
        )))
    }

    fn deliver(&mut self, topic: &str, item: &Delivery<'_>) -> Result<(), SinkError> {
        let result = match item {
            Delivery::Chunk {
                index,
                ciphertext,
                envelope,
            } => self
                .client
                .upload_chunk(topic, *index, envelope.1, ciphertext.1)
                .map(drop),
            Delivery::Dataset { manifest, .. } => self.client.upload_dataset(manifest.1).map(drop),
        };
        result.map_err(|e| SinkError::new(format!("{e} (topic {topic})")))
    }
}
