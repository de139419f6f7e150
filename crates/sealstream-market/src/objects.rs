//! Where ciphertext lives: a local directory (`<data-dir>/objects`, the
//! default) or an S3-compatible bucket (`s3://bucket/prefix`, configured from
//! the standard `AWS_*` environment variables as [`sealstream_files::s3`]
//! describes, the same as the agent's sink), through `object_store`.
//!
//! Objects are written with an [`Upload`]: bytes are handed over as they
//! arrive and never held whole (at most a few parts of [`PART_SIZE`]); the
//! object appears only when the upload is finished, so an upload that is
//! refused half-way (a hash that does not match) leaves nothing behind.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sealstream_files::s3::{parse_s3_url, s3_builder};

/// Size of the parts of a multipart upload, and the most an [`Upload`]
/// buffers before it starts one (smaller objects are one plain `PUT`).
/// S3 needs parts of at least 5 MiB (but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Why the object store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("object store {url}: {message}")]
pub struct ObjectsError {
    url: String,
    message: String,
}

/// The object store and the prefix every key goes under.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// The directory of a local store.
    local_dir: Option<std::path::PathBuf>,
}

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Objects({})", self.url)
    }
}

impl fmt::Display for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl Objects {
    /// Opens `url` (`s3://bucket[/prefix]` or `file:///path`), or
    /// `<data_dir>/objects` when `url` is `None`.
    pub fn open(data_dir: &Path, url: Option<&str>) -> Result<Objects, ObjectsError> {
        let fail = |url: &str, message: String| ObjectsError {
            url: url.to_string(),
            message,
        };
        match url {
            None => {
                let dir = data_dir.join("objects");
                let url = format!("file://{}", dir.display());
                Self::local(&dir, url.clone()).map_err(|m| fail(&url, m))
            }
            Some(u) if u.starts_with("file://") => {
                let dir = Path::new(&u["file://".len()..]);
                Self::local(dir, u.to_string()).map_err(|m| fail(u, m))
            }
            Some(u) if u.starts_with("s3://") => {
                let (bucket, prefix) =
                    parse_s3_url(u).ok_or_else(|| fail(u, "no bucket name".into()))?;
                let store = s3_builder(bucket)
                    .build()
                    .map_err(|e| fail(u, format!("cannot configure the S3 client: {e}")))?;
                Ok(Objects {
                    store: Arc::new(store),
                    prefix: prefix.to_string(),
                    url: u.to_string(),
                    local_dir: None,
                })
            }
            Some(u) => Err(fail(
                u,
                "expected s3://bucket/prefix or file:///path".into(),
            )),
        }
    }

    fn local(dir: &Path, url: String) -> Result<Objects, String> {
        crate::files::private_dir(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("cannot open directory {}: {e}", dir.display()))?
            .with_fsync(true);
        Ok(Objects {
            store: Arc::new(store),
            prefix: String::new(),
            url,
            local_dir: Some(dir.to_path_buf()),
        })
    }

    /// The directory of a local store (`None` for S3).
    pub fn local_dir(&self) -> Option<&Path> {
        self.local_dir.as_deref()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store path of `key` under the prefix.
    pub fn path(&self, key: &str) -> Result<ObjectPath, object_store::path::Error> {
        if self.prefix.is_empty() {
            ObjectPath::parse(key)
        } else {
            ObjectPath::parse(format!("{}/{key}", self.prefix))
        }
    }

    /// The store path of `key`, as an [`ObjectError`].
    fn located(&self, key: &str) -> Result<ObjectPath, ObjectError> {
        self.path(key).map_err(|e| ObjectError::Key {
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Starts writing the object `key` (replacing it when finished, if it
    /// exists).
    pub fn upload(&self, key: &str) -> Result<Upload, ObjectError> {
        Ok(Upload {
            store: self.store.clone(),
            local_root: self.local_dir.clone(),
            path: self.located(key)?,
            state: UploadState::Buffered(Vec::new()),
            written: 0,
        })
    }

    /// Reads the object `key` (its payload streams from the store).
    pub async fn get(&self, key: &str) -> Result<GetResult, ObjectError> {
        let path = self.located(key)?;
        self.store.get(&path).await.map_err(ObjectError::from)
    }

    /// Reads the object `key` whole (for small objects; large ones stream
    /// with [`get`](Self::get)).
    pub async fn read(&self, key: &str) -> Result<Bytes, ObjectError> {
        Ok(self.get(key).await?.bytes().await?)
    }

    /// The keys of every object under the prefix (relative to it), sorted:
    /// for inspection and tests. A large store is listed in pages, all read
    /// here.
    pub async fn keys(&self) -> Result<Vec<String>, ObjectError> {
        use futures_util::TryStreamExt;
        let prefix = if self.prefix.is_empty() {
            None
        } else {
            Some(
                ObjectPath::parse(&self.prefix).map_err(|e| ObjectError::Key {
                    key: self.prefix.clone(),
                    message: e.to_string(),
                })?,
            )
        };
        let strip = prefix.as_ref().map(|p| format!("{p}/")).unwrap_or_default();
        let mut keys: Vec<String> = self
            .store
            .list(prefix.as_ref())
            .map_ok(|meta| {
                let key = meta.location.to_string();
                key.strip_prefix(&strip).map(str::to_string).unwrap_or(key)
            })
            .try_collect()
            .await?;
        keys.sort();
        Ok(keys)
    }

    /// Deletes the object `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.located(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Why an object could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The key is not a valid object path.
    #[error("object key {key}: {message}")]
    Key {
        /// The key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The object does not exist.
    #[error("object not found")]
    NotFound,
    /// The store failed.
    #[error("object store: {0}")]
    Store(object_store::Error),
}

impl From<object_store::Error> for ObjectError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound,
            e => ObjectError::Store(e),
        }
    }
}

/// An object being written; see the [module documentation](self). Dropping
/// an upload without [`finish`](Upload::finish) or [`abort`](Upload::abort)
/// leaves no object (on S3 an unfinished multipart upload may remain until
/// the bucket's lifecycle rules remove it).
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store, whose files are made 0600.
    local_root: Option<std::path::PathBuf>,
    path: ObjectPath,
    state: UploadState,
    written: u64,
}

enum UploadState {
    /// Not more than [`PART_SIZE`] so far: kept, for one plain `PUT`.
    Buffered(Vec<u8>),
    /// A multipart upload under way.
    Parts(WriteMultipart),
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.path.as_ref())
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// Bytes handed over so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `data`. Waits while [`PART_SIZE`]-sized parts are in flight,
    /// so memory stays bounded whatever the object's size.
    pub async fn write(&mut self, data: Bytes) -> Result<(), ObjectError> {
        self.written += data.len() as u64;
        match &mut self.state {
            UploadState::Buffered(buffer) if buffer.len() + data.len() <= PART_SIZE => {
                buffer.extend_from_slice(&data);
            }
            UploadState::Buffered(buffer) => {
                let first = std::mem::take(buffer);
                let upload = self.store.put_multipart(&self.path).await?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                parts.put(Bytes::from(first));
                parts.put(data);
                self.state = UploadState::Parts(parts);
            }
            UploadState::Parts(parts) => {
                parts.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                parts.put(data);
            }
        }
        Ok(())
    }

    /// Completes the object: it is visible from now on. Returns its size.
    pub async fn finish(self) -> Result<u64, ObjectError> {
        match self.state {
            UploadState::Buffered(buffer) => {
                self.store.put(&self.path, PutPayload::from(buffer)).await?;
            }
            UploadState::Parts(parts) => {
                parts.finish().await?;
            }
        }
        if let Some(root) = &self.local_root {
            // object_store creates files by the process umask: narrow the
            // object to the owner (its directories sit in a 0700 root).
            let file = root.join(self.path.as_ref());
            let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
                crate::files::FILE_MODE,
            );
            if let Err(e) = std::fs::set_permissions(&file, private) {
                tracing::warn!(path = %file.display(), "cannot make the object private: {e}");
            }
        }
        Ok(self.written)
    }

    /// Gives the upload up: no object is written.
    pub async fn abort(self) {
        if let UploadState::Parts(parts) = self.state {
            if let Err(e) = parts.abort().await {
                tracing::warn!(path = %self.path, "cannot abort a multipart upload: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(objects: &Objects, key: &str, bytes: &[u8]) {
        let mut upload = objects.upload(key).unwrap();
        upload.write(Bytes::copy_from_slice(bytes)).await.unwrap();
        upload.finish().await.unwrap();
    }

    #[tokio::test]
    async fn keys_lists_every_object_and_read_returns_it() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path(), None).unwrap();
        assert!(objects.keys().await.unwrap().is_empty());
        put(&objects, "chunks/b/2.bin", b"two").await;
        put(&objects, "chunks/a/1.bin", b"one").await;
        put(&objects, "grants/x.json", b"{}").await;
        assert_eq!(
            objects.keys().await.unwrap(),
            ["chunks/a/1.bin", "chunks/b/2.bin", "grants/x.json"]
        );
        assert_eq!(&objects.read("chunks/b/2.bin").await.unwrap()[..], b"two");
        objects.delete("chunks/a/1.bin").await.unwrap();
        assert!(matches!(
            objects.read("chunks/a/1.bin").await,
            Err(ObjectError::NotFound)
        ));
        assert_eq!(objects.keys().await.unwrap().len(), 2);
    }
}
