//! Peer-to-peer delivery of sealstream chains.
//!
//! [`reference`](mod@reference) is the reference SDK's P2P wire (`peaq-os-sdk` 0.12.1,
//! protocol `/peaqos/stream/chunk/1.0.0`, encoding `peaqos-json-frame-v1`):
//! its frames, bounded framing and connection URLs, byte-compatible with the
//! reference both ways. `node` (cargo feature `node`) is the libp2p peer
//! that carries them: `serve` a chain directory to one buyer, `fetch` one
//! into a chain directory, checking every chunk as it arrives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod feed;
mod fields;
#[cfg(feature = "node")]
pub mod live;
#[cfg(feature = "node")]
pub mod node;
pub mod reference;
