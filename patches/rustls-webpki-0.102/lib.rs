//! A stand-in for `rustls-webpki` 0.102 (library name `webpki`).
//!
//! rumqttc 0.25 depends on rustls-webpki 0.102 with its default features,
//! and those build *ring*, a second cryptographic provider next to the
//! workspace's aws-lc-rs. rumqttc uses nothing of that crate but the name
//! of its error type, in a variant of its own TLS error enum
//! (`rumqttc::TlsError::WebPki`); certificates are verified by rustls 0.23
//! through rustls-webpki 0.103, on aws-lc-rs. So this crate provides that
//! one type, with no values: rumqttc never makes one.
//!
//! Remove it, and the `[patch.crates-io]` entry that points here, once a
//! rumqttc release depends on rustls-webpki 0.103 or later without *ring*.

use std::fmt;

/// The error type rumqttc names. It has no variants: rumqttc calls nothing
/// of rustls-webpki 0.102 that could return one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {}

impl fmt::Display for Error {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Error {}
