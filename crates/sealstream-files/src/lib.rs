//! Files and directories of the format: the reference's chain directory
//! layout, staging, publish and consume to and from directories, key files,
//! object-store configuration.
//!
//! `sealstream-core` is the format alone (no file system, no object store);
//! this crate is where its streams meet directories: [`layout`] names and
//! writes `chunk-N.json` / `chunk-N.bin` / `manifest.json` atomically and
//! reads chain directories back, [`staging`] makes outputs appear whole or
//! not at all, and [`publish`], [`grant`] and [`consume`] are the
//! directory-level operations of `peaqos stream publish|grant|consume`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consume;
pub mod grant;
pub mod keyfile;
pub mod layout;
pub mod publish;
#[cfg(feature = "object-store")]
pub mod s3;
pub mod staging;
