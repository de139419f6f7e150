//! The sealstream market's wire contract, shared by the server
//! (`sealstream-market`), its client (`sealstream-client`) and the
//! `sealstream` command: every request and response body, route path and
//! error shape, as Rust types.
//!
//! - One module per resource ([`auth`] (with the admin's role changes),
//!   [`machines`] (with operator keys), [`ingest`], [`datasets`],
//!   [`listings`] (with cards and samples), [`catalog`], [`orders`] (with
//!   bearer links and the confirmation), [`payments`], [`grants`],
//!   [`receipts`], [`audit`], [`operations`], [`subscriptions`]) holds its bodies; [`errors`]
//!   the refusal shape and the strict decoders; [`routes`] the route
//!   templates the server's router uses and the paths a client requests;
//!   [`document`] the format documents (envelopes, manifests, access
//!   files) carried inside bodies.
//! - The signed statements of the market protocol live here too:
//!   Sign-In with Ethereum messages ([`siwe`]), machine registration
//!   statements ([`registration`]), license receipts ([`receipts`]) and
//!   signed audit heads ([`audit`]).
//! - Names with a fixed set of values (roles, order states, link purposes,
//!   payment rails…) are enums whose serde form is the wire text
//!   ([`wire_enum!`]).
//!
//! With the cargo feature `openapi`, the types derive `utoipa`'s
//! `ToSchema` and `IntoParams`, for the server's OpenAPI document; clients
//! build without it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod wire_enum;

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod compliance;
pub mod datasets;
pub mod disclosures;
pub mod document;
pub mod errors;
pub mod grants;
pub mod ingest;
pub mod listings;
pub mod machines;
pub mod operations;
pub mod orders;
pub mod payments;
pub mod receipts;
pub mod registration;
pub mod routes;
pub mod siwe;
pub mod subscriptions;

pub use document::JsonDocument;
pub use errors::{ErrorBody, ErrorDetail, FieldError};
