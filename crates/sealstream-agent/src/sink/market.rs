//! The `market` destination: chunks and dataset manifests uploaded to a
//! sealstream market server through its API, signed in as the machine.
//!
//! The forwarder delivers each topic's chunks in chain order and retries a
//! failed delivery with backoff, so this sink makes one attempt per call
//! (signing in again once if the session expired). The server accepts the
//! same chunk twice without storing it twice, so a delivery repeated after a
//! crash is harmless.
//!
//! A refusal retrying cannot cure (HTTP 4xx other than 408 and 429: the
//! machine is not registered, its key is refused, a chunk conflicts with
//! what the server holds) is a permanent [`SinkError`]: the forwarder stops
//! delivering to the server for the rest of the run.

use sealstream_core::keys::MachineSigningKey;

use super::{Delivery, Sink, SinkError};
use crate::market::{ClientError, MarketClient};

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
        result.map_err(|e| {
            let message = format!("{e} (topic {topic})");
            if refused_for_good(&e) {
                SinkError::permanent(message)
            } else {
                SinkError::new(message)
            }
        })
    }
}

/// Whether the server refused in a way sending again cannot change: an
/// HTTP 4xx other than 408 (timeout) and 429 (rate limit). A 401 counts
/// only after the client signed in afresh and was refused again. Network
/// failures, 5xx and answers that cannot be read are retried.
fn refused_for_good(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused { status, .. }
        if (400..500).contains(status) && *status != 408 && *status != 429)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_but_timeouts_and_rate_limits_are_for_good() {
        let refused = |status| ClientError::Refused {
            url: "u".into(),
            status,
            field: None,
            message: "m".into(),
        };
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(refused_for_good(&refused(status)), "{status}");
        }
        for status in [408, 429, 500, 502, 503] {
            assert!(!refused_for_good(&refused(status)), "{status}");
        }
        let network = ClientError::Network {
            url: "u".into(),
            message: "connection refused".into(),
        };
        assert!(!refused_for_good(&network));
    }
}
