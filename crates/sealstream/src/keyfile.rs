//! Reading key files and key flags, with errors that name the file or flag
//! and never quote the key.

use std::path::Path;

use sealstream_core::keys::{
    ChainSigningKey, FieldKey, MachineSigningKey, RecipientPublicKey, RecipientSecretKey,
};
use sealstream_files::keyfile::{read_key_file, KeyFileError};

use crate::error::{at, CliError, CliResult};

/// Read and parse a key file; errors name the file and `what`, never the key.
fn read<T>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, sealstream_core::ValidationError>,
) -> CliResult<T> {
    read_key_file(path, parse).map_err(|e| match e {
        KeyFileError::Invalid(e) => CliError::input(at(path, e)),
        KeyFileError::NotText => {
            CliError::input(at(path, format!("{what}: not a text file of hex")))
        }
        other => CliError::input(at(path, format!("{what}: {other}"))),
    })
}

pub fn x25519_secret(path: &Path, what: &str) -> CliResult<RecipientSecretKey> {
    read(path, what, |text| RecipientSecretKey::from_hex(text, what))
}

pub fn ed25519_secret(path: &Path, what: &str) -> CliResult<ChainSigningKey> {
    read(path, what, |text| ChainSigningKey::from_hex(text, what))
}

pub fn secp256k1_secret(path: &Path, what: &str) -> CliResult<MachineSigningKey> {
    read(path, what, |text| MachineSigningKey::from_hex(text, what))
}

pub fn field_key(path: &Path, what: &str) -> CliResult<FieldKey> {
    read(path, what, |text| FieldKey::from_hex(text, what))
}

/// An X25519 public key flag, checked to be usable.
pub fn x25519_public(text: &str, flag: &str) -> CliResult<RecipientPublicKey> {
    let key =
        RecipientPublicKey::from_hex(text, flag).map_err(|e| CliError::input(e.to_string()))?;
    key.check_usable(flag)
        .map_err(|e| CliError::input(e.to_string()))?;
    Ok(key)
}
