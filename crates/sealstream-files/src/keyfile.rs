//! Reading key files (32 bytes as hex text, the reference's form) without
//! letting their content reach an error, a log or a copy that outlives the
//! parse: the bytes read are wiped when dropped, errors name what went wrong
//! but never quote the file.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use sealstream_core::ValidationError;

/// Key files are hex text; anything much larger is not a key file.
pub const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Why a key file could not be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// There is no such file.
    #[error("no such file")]
    NotFound,
    /// The file may not be read.
    #[error("permission denied")]
    PermissionDenied,
    /// Another reading error.
    #[error("cannot read ({0})")]
    Io(std::io::Error),
    /// The path is a directory or another non-file.
    #[error("not a file")]
    NotAFile,
    /// Too large to be a key file.
    #[error("too large to be a key file (expected 64 hex digits)")]
    TooLarge,
    /// Not UTF-8 text.
    #[error("expected hex text (64 hex digits, optional 0x)")]
    NotText,
    /// The text is not a valid key of the kind asked for.
    #[error("{}", .0.constraint)]
    Invalid(ValidationError),
}

impl KeyFileError {
    fn of(error: std::io::Error) -> KeyFileError {
        match error.kind() {
            std::io::ErrorKind::NotFound => KeyFileError::NotFound,
            std::io::ErrorKind::PermissionDenied => KeyFileError::PermissionDenied,
            _ => KeyFileError::Io(error),
        }
    }
}

/// Read the key file at `path` and parse its text with `parse` (for example
/// `|t| MachineSigningKey::from_hex(t, "machine key")`).
pub fn read_key_file<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<T, KeyFileError> {
    let mut handle = std::fs::File::open(path).map_err(KeyFileError::of)?;
    let metadata = handle.metadata().map_err(KeyFileError::of)?;
    if !metadata.is_file() {
        return Err(KeyFileError::NotAFile);
    }
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge);
    }
    let mut buffer = Zeroizing::new(Vec::with_capacity(metadata.len() as usize));
    (&mut handle)
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut buffer)
        .map_err(KeyFileError::of)?;
    if buffer.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge);
    }
    let text = std::str::from_utf8(&buffer).map_err(|_| KeyFileError::NotText)?;
    parse(text).map_err(KeyFileError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstream_core::keys::MachineSigningKey;

    const SK: &str = "0xfeba68765a73c491c47490ecff80e39f3e5b09c96c84189193dbceacc6ff6761";

    #[test]
    fn reads_and_refuses_without_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        std::fs::write(&ok, format!("  {SK}\n")).unwrap();
        assert!(read_key_file(&ok, |t| MachineSigningKey::from_hex(t, "k")).is_ok());
        let cases: [(&str, &[u8], &str); 3] = [
            ("short", b"0xfeba", "expected"),
            ("binary", &[0xff, 0xfe, 0xfd], "expected hex text"),
            ("large", &[b'a'; 2000], "too large"),
        ];
        for (name, bytes, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = read_key_file(&p, |t| MachineSigningKey::from_hex(t, "k"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{name}: {e}");
            assert!(!e.contains("feba"), "{name}: quoted: {e}");
        }
        let e = read_key_file(&dir.path().join("missing"), |t| {
            MachineSigningKey::from_hex(t, "k")
        })
        .unwrap_err();
        assert!(matches!(e, KeyFileError::NotFound));
        let e = read_key_file(dir.path(), |t| MachineSigningKey::from_hex(t, "k")).unwrap_err();
        assert!(matches!(e, KeyFileError::NotAFile), "{e}");
    }
}
