//! The market's own secrets in files — the receipt signing key and the
//! key-encryption key that seals operator keys: each created on first use
//! (random, hex, mode 0600, never replacing a file that appeared
//! meanwhile), read otherwise. Errors name the file and never quote it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;
use sealstream_core::keys::ReceiptSigningKey;
use sealstream_core::ValidationError;
use sealstream_files::keyfile::{read_key_file, KeyFileError};
use zeroize::Zeroizing;

use crate::operator_key::KeyEncryptionKey;

/// A secret the server keeps in a file of its own, as hex.
pub trait ServerSecret: Sized {
    /// What the key is called in errors.
    const WHAT: &'static str;
    /// A fresh random key.
    fn generate() -> Self;
    /// The key as hex, for the file.
    fn to_hex_secret(&self) -> Zeroizing<String>;
    /// The key from the file's text.
    fn from_hex(text: &str) -> Result<Self, ValidationError>;
}

impl ServerSecret for ReceiptSigningKey {
    const WHAT: &'static str = "receipt signing key";
    fn generate() -> Self {
        ReceiptSigningKey::generate()
    }
    fn to_hex_secret(&self) -> Zeroizing<String> {
        ReceiptSigningKey::to_hex_secret(self)
    }
    fn from_hex(text: &str) -> Result<Self, ValidationError> {
        ReceiptSigningKey::from_hex(text, Self::WHAT)
    }
}

impl ServerSecret for crate::auth::nonce::NonceKey {
    const WHAT: &'static str = "sign-in nonce key";
    fn generate() -> Self {
        crate::auth::nonce::NonceKey::generate()
    }
    fn to_hex_secret(&self) -> Zeroizing<String> {
        crate::auth::nonce::NonceKey::to_hex_secret(self)
    }
    fn from_hex(text: &str) -> Result<Self, ValidationError> {
        crate::auth::nonce::NonceKey::from_hex(text, Self::WHAT)
    }
}

impl ServerSecret for KeyEncryptionKey {
    const WHAT: &'static str = "operator key-encryption key";
    fn generate() -> Self {
        KeyEncryptionKey::generate()
    }
    fn to_hex_secret(&self) -> Zeroizing<String> {
        KeyEncryptionKey::to_hex_secret(self)
    }
    fn from_hex(text: &str) -> Result<Self, ValidationError> {
        KeyEncryptionKey::from_hex(text, Self::WHAT)
    }
}

/// Why a server key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerKeyError {
    /// The file exists but cannot be read or is not a key (32 bytes as hex).
    #[error("{}: {what}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// Which key.
        what: &'static str,
        /// What is wrong with it.
        source: KeyFileError,
    },
    /// The file was missing and could not be created.
    #[error("{}: cannot create the {what} ({source})", path.display())]
    Create {
        /// The key file.
        path: PathBuf,
        /// Which key.
        what: &'static str,
        /// The filesystem's reason.
        source: io::Error,
    },
}

/// The receipt signing key in `path`, as [`load_or_create`].
pub fn load_or_create_receipt_key(path: &Path) -> Result<ReceiptSigningKey, ServerKeyError> {
    load_or_create(path)
}

/// The key in `path`, created there first if the file does not exist (with
/// its missing parent directories). A new key is written to a temporary
/// file in the same directory with mode 0600, synced, then linked into
/// place without replacing anything: if another process created the file
/// meanwhile, its key is read and used instead.
pub fn load_or_create<K: ServerSecret>(path: &Path) -> Result<K, ServerKeyError> {
    match read::<K>(path) {
        Err(ServerKeyError::Read {
            source: KeyFileError::NotFound,
            ..
        }) => {}
        other => return other,
    }
    let create = |source: io::Error| ServerKeyError::Create {
        path: path.to_path_buf(),
        what: K::WHAT,
        source,
    };
    let key = K::generate();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(create)?;
    let name = path
        .file_name()
        .ok_or_else(|| create(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    let mut nonce = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        hex::encode(nonce)
    ));
    let placed = write_secret(&tmp, key.to_hex_secret().as_bytes()).and_then(|()| {
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // A filesystem without hard links: fall back to a plain rename.
            Err(_) => fs::rename(&tmp, path).map(|()| true),
        }
    });
    let _ = fs::remove_file(&tmp);
    if placed.map_err(create)? {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(key)
    } else {
        // Another process won the race: use its key, as every later start will.
        read(path)
    }
}

fn read<K: ServerSecret>(path: &Path) -> Result<K, ServerKeyError> {
    read_key_file(path, K::from_hex).map_err(|source| ServerKeyError::Read {
        path: path.to_path_buf(),
        what: K::WHAT,
        source,
    })
}

fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/receipt.ed25519.sk");
        let first = load_or_create_receipt_key(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, first.to_hex_secret().as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load_or_create_receipt_key(&path).unwrap();
        assert_eq!(again.public_key(), first.public_key());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["receipt.ed25519.sk"]);
    }

    #[test]
    fn reads_a_key_written_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.sk");
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        fs::write(&path, format!("0x{seed}\n")).unwrap();
        let key = load_or_create_receipt_key(&path).unwrap();
        assert_eq!(
            key.public_key().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn a_malformed_file_is_named_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.sk");
        fs::write(&path, "9d61b19deffd5a60").unwrap();
        let e = load_or_create_receipt_key(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: receipt signing key: ", path.display())),
            "{e}"
        );
        assert!(e.contains("64 hex digits"), "{e}");
        assert!(!e.contains("9d61b19d"), "quoted the file: {e}");
        // Never replaced by a fresh key.
        assert_eq!(fs::read_to_string(&path).unwrap(), "9d61b19deffd5a60");
        let e = load_or_create_receipt_key(dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a file"), "{e}");
    }

    #[test]
    fn an_uncreatable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("plain-file");
        fs::write(&blocker, "x").unwrap();
        let path = blocker.join("receipt.sk");
        let e = load_or_create_receipt_key(&path).unwrap_err();
        assert!(
            matches!(
                e,
                ServerKeyError::Create { .. } | ServerKeyError::Read { .. }
            ),
            "{e}"
        );
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn concurrent_creators_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.sk");
        let keys: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        load_or_create_receipt_key(&path)
                            .unwrap()
                            .public_key()
                            .to_hex()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(
            load_or_create_receipt_key(&path)
                .unwrap()
                .public_key()
                .to_hex(),
            keys[0]
        );
    }
}
