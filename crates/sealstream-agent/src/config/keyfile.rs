//! Reading key files without ever letting their content reach an error: the
//! reading is `sealstream_files::keyfile`; this names the file as written in
//! the Data Event Map.

use std::path::Path;

use sealstream_core::error::ValidationError;
use sealstream_files::keyfile::{read_key_file, KeyFileError};

/// Read key file `file` (written as `shown` in the config) and parse it with
/// `parse`. The error is a message naming the file, never its content.
pub(crate) fn read_key<T>(
    file: &Path,
    shown: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<T, String> {
    read_key_file(file, parse).map_err(|e| match e {
        KeyFileError::NotFound | KeyFileError::PermissionDenied | KeyFileError::Io(_) => {
            format!("cannot read {shown}: {e}")
        }
        KeyFileError::NotAFile => format!("{shown} is not a file"),
        KeyFileError::TooLarge => format!("{shown} is {e}"),
        _ => format!("{shown}: {e}"),
    })
}
