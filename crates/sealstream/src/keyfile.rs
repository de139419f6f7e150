//! Reading key files and key flags, with errors that name the file or flag
//! and never quote the key.

use std::path::Path;

use sealstream_core::keys::{
    ChainSigningKey, FieldKey, MachineSigningKey, RecipientPublicKey, RecipientSecretKey,
};
use zeroize::Zeroizing;

use crate::error::{at, CliError, CliResult};

fn read_text(path: &Path, what: &str) -> CliResult<Zeroizing<String>> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Ok(Zeroizing::new(s)),
            Err(e) => {
                let mut bytes = e.into_bytes();
                zeroize::Zeroize::zeroize(&mut bytes);
                Err(CliError::input(at(
                    path,
                    format!("{what}: not a text file of hex"),
                )))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(CliError::input(at(path, format!("{what}: no such file"))))
        }
        Err(e) => Err(CliError::input(at(
            path,
            format!("{what}: cannot read ({e})"),
        ))),
    }
}

pub fn x25519_secret(path: &Path, what: &str) -> CliResult<RecipientSecretKey> {
    let text = read_text(path, what)?;
    RecipientSecretKey::from_hex(&text, what).map_err(|e| CliError::input(at(path, e)))
}

pub fn ed25519_secret(path: &Path, what: &str) -> CliResult<ChainSigningKey> {
    let text = read_text(path, what)?;
    ChainSigningKey::from_hex(&text, what).map_err(|e| CliError::input(at(path, e)))
}

pub fn secp256k1_secret(path: &Path, what: &str) -> CliResult<MachineSigningKey> {
    let text = read_text(path, what)?;
    MachineSigningKey::from_hex(&text, what).map_err(|e| CliError::input(at(path, e)))
}

pub fn field_key(path: &Path, what: &str) -> CliResult<FieldKey> {
    let text = read_text(path, what)?;
    FieldKey::from_hex(&text, what).map_err(|e| CliError::input(at(path, e)))
}

/// An X25519 public key flag, checked to be usable.
pub fn x25519_public(text: &str, flag: &str) -> CliResult<RecipientPublicKey> {
    let key =
        RecipientPublicKey::from_hex(text, flag).map_err(|e| CliError::input(e.to_string()))?;
    key.check_usable(flag)
        .map_err(|e| CliError::input(e.to_string()))?;
    Ok(key)
}
