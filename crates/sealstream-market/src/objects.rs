//! Where ciphertext lives: a local directory (`<data-dir>/objects`, the
//! default) or an S3-compatible bucket (`s3://bucket/prefix`, configured from
//! the standard `AWS_*` environment variables), through `object_store`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

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
                let rest = &u["s3://".len()..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(fail(u, "no bucket name".into()));
                }
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| fail(u, format!("cannot configure the S3 client: {e}")))?;
                Ok(Objects {
                    store: Arc::new(store),
                    prefix: prefix.trim_matches('/').to_string(),
                    url: u.to_string(),
                })
            }
            Some(u) => Err(fail(
                u,
                "expected s3://bucket/prefix or file:///path".into(),
            )),
        }
    }

    fn local(dir: &Path, url: String) -> Result<Objects, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("cannot open directory {}: {e}", dir.display()))?
            .with_fsync(true);
        Ok(Objects {
            store: Arc::new(store),
            prefix: String::new(),
            url,
        })
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
}
