//! Formats and cryptography of sealstream, byte-compatible with peaq.stream v1.
//!
//! The format only: no file system, network or async runtime. Chain
//! directories, staging, key files and object-store configuration are in
//! `sealstream-files`.
// `unsafe` is denied everywhere but `ecdsa_sign`, the callback interface
// to libsecp256k1's signer (see that module).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod chunk;
pub mod dataset;
mod ecdsa_sign;
pub mod error;
pub mod evm;
pub mod gap;
pub mod identity;
pub mod json;
pub mod keys;
pub mod merkle;
pub mod package;
pub mod pool;
pub mod rules;
pub mod sealed_box;
pub mod utc;

pub use error::ValidationError;
