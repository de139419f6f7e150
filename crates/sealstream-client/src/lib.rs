//! Blocking HTTP clients of the sealstream market server.
//!
//! - [`market`]: a signed-in session (Sign-In with Ethereum with a
//!   secp256k1 key), chunk and dataset uploads for machines, and plain JSON
//!   requests for everything else.
//! - [`grants`]: the owner's grant daemon: it watches paid orders of the
//!   owner's listings, re-wraps the chunk keys to each buyer with the
//!   owner's X25519 key and uploads the access files.
//! - [`seller`]: the owner's other requests that need its keys: a machine's
//!   signed registration, owner-signed datasets (the plaintext hashed on the
//!   owner's side), listings with their sample keys disclosed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod grants;
pub mod market;
pub mod seller;
