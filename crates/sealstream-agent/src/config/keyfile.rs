//! Reading key files without ever letting their content reach an error.

use std::io::Read;
use std::path::Path;

use sealstream_core::error::ValidationError;

/// Key files are hex text; anything much larger is not a key file.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Bytes wiped when dropped.
struct Wiped(Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// Read key file `file` (written as `shown` in the config) and parse it with
/// `parse`. The error is a message naming the file, never its content.
pub(crate) fn read_key<T>(
    file: &Path,
    shown: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<T, String> {
    let mut handle = std::fs::File::open(file).map_err(|e| cannot_read(shown, &e))?;
    let metadata = handle.metadata().map_err(|e| cannot_read(shown, &e))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{shown} is too large to be a key file (expected 64 hex digits)"
        ));
    }
    let mut buffer = Wiped(Vec::with_capacity(metadata.len() as usize));
    (&mut handle)
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut buffer.0)
        .map_err(|e| cannot_read(shown, &e))?;
    let text = std::str::from_utf8(&buffer.0)
        .map_err(|_| format!("{shown}: expected hex text (64 hex digits, optional 0x)"))?;
    parse(text).map_err(|e| format!("{shown}: {}", e.constraint))
}

fn cannot_read(shown: &str, error: &std::io::Error) -> String {
    let why = match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => error.to_string(),
    };
    format!("cannot read {shown}: {why}")
}
