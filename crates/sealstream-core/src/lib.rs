//! Formats and cryptography of sealstream, byte-compatible with peaq.stream v1.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod chunk;
pub mod consume;
pub mod dataset;
pub mod error;
pub mod identity;
pub mod json;
pub mod keyfile;
pub mod keys;
pub mod layout;
pub mod merkle;
pub mod package;
pub mod pool;
pub mod publish;
pub mod rules;
#[cfg(feature = "object-store")]
pub mod s3;
pub mod sealed_box;
pub mod staging;
pub mod utc;

pub use error::ValidationError;
