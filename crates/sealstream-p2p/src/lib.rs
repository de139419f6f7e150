//! Peer-to-peer delivery of sealstream chains.
//!
//! [`reference`] is the reference SDK's P2P wire (`peaq-os-sdk` 0.12.1,
//! protocol `/peaqos/stream/chunk/1.0.0`, encoding `peaqos-json-frame-v1`):
//! its frames, bounded framing and connection URLs, byte-compatible with the
//! reference both ways. The libp2p node that carries them is issue 19's next
//! step.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod reference;
