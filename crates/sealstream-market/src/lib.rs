//! The sealstream market server (docs/market-design.md): the store, the audit
//! log, the object store and the HTTP API. The `sealstream market …`
//! commands only parse flags and call this crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod connections;
pub mod datasets;
pub mod disclosures;
pub mod error;
pub mod escrow;
pub mod evm;
pub mod files;
pub mod ingest;
pub mod lease;
pub mod limits;
pub mod listings;
pub mod logs;
pub mod machines;
pub mod objects;
pub mod openapi;
pub mod operator_key;
pub mod orders;
pub mod public_url;
pub mod quota;
pub mod receipt_log;
pub mod server;
pub mod server_key;
pub mod store;
pub mod subscriptions;
pub mod throttle;
pub mod wake;
pub mod web;
