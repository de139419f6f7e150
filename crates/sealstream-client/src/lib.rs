//! Blocking HTTP client of the sealstream market server, typed by
//! `sealstream-api` (every body, route and refusal is one of its types).
//!
//! - [`market`]: a signed-in session (Sign-In with Ethereum with a
//!   secp256k1 key), the HTTP stack and its errors; the typed requests of
//!   each resource: [`ingest`] (chunk uploads, chains), [`machines`],
//!   [`datasets`], [`listings`], [`orders`], [`subscriptions`], and [`account`] (the
//!   session, roles, the audit head, the receipt key, the catalog).
//! - [`upload`]: a chain directory uploaded from the first chunk the server
//!   does not hold (`market upload`, `publish --to`).
//! - [`grants`]: the owner's grant daemon: it watches paid orders of the
//!   owner's listings, re-wraps the chunk keys to each buyer with the
//!   owner's X25519 key and uploads the access files.
//! - [`seller`]: the owner's other requests that need its keys: a machine's
//!   signed registration, owner-signed datasets (the plaintext hashed on the
//!   owner's side), listings with their sample keys disclosed.
//! - [`buyer`]: the buyer's requests that need its key: an order paid on
//!   its EVM chain ([`evm`]: the transaction, signed and RLP-encoded, and
//!   the chain's node over JSON-RPC), its proof posted.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod buyer;
pub mod datasets;
pub mod disclosures;
pub mod evm;
pub mod follow_state;
pub mod grant_wait;
pub mod grants;
pub mod ingest;
pub mod listings;
pub mod live;
pub mod machines;
pub mod market;
pub mod orders;
pub mod receipt_log;
pub mod seller;
pub mod subscriptions;
pub mod upload;
pub mod windows;
