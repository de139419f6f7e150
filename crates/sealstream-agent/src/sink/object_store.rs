//! An object store: an S3-compatible bucket (`s3://bucket/prefix`) or a local
//! directory laid out as one (`file:///path`), through the `object_store`
//! crate.
//!
//! S3 takes its endpoint, region and credentials from the standard `AWS_*`
//! environment variables (see [`ObjectStoreDestination::open`]). Requests use
//! short timeouts and few retries: the forwarder retries a failed `put` later
//! with its own backoff.

use std::fmt;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sealstream_files::s3::s3_builder;

use super::{Sink, SinkError};
use crate::config::ObjectStoreLocation;

/// Writes each object to `<prefix>/<key>` in an object store. Every `put` is
/// one whole-object upload (S3 `PutObject`; for `file://`, a temporary file
/// renamed into place), so readers never see a partial object.
///
/// Owns a single-threaded tokio runtime; `put` blocks on it, so it must not
/// be called from inside another tokio runtime.
pub struct ObjectStoreDestination {
    url: String,
    prefix: String,
    /// For `file://`: the directory.
    local: Option<std::path::PathBuf>,
    store: Box<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for ObjectStoreDestination {
    // The store's own Debug output includes its configuration (credentials
    // among it for S3), so only the URL is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreDestination")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreDestination {
    /// Open the store at `location` (`url` is the destination as written, for
    /// messages). Does no network I/O: an unreachable store shows on `put`.
    ///
    /// For `s3://`, endpoint, region, credentials and timeouts come from the
    /// `AWS_*` environment variables, as [`sealstream_files::s3`] describes.
    ///
    /// For `file://`, the directory is created if needed.
    pub fn open(
        url: &str,
        location: &ObjectStoreLocation,
    ) -> Result<ObjectStoreDestination, SinkError> {
        let fail = |what: &str, e: &dyn std::error::Error| {
            SinkError::new(format!("object store {url}: {what}: {}", error_chain(e)))
        };
        let (store, prefix): (Box<dyn ObjectStore>, String) = match location {
            ObjectStoreLocation::S3 { bucket, prefix } => {
                let store = s3_builder(bucket)
                    .build()
                    .map_err(|e| fail("cannot configure the S3 client", &e))?;
                (Box::new(store), prefix.clone())
            }
            ObjectStoreLocation::File { path } => {
                std::fs::create_dir_all(path).map_err(|e| {
                    fail(&format!("cannot create directory {}", path.display()), &e)
                })?;
                let store = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| fail(&format!("cannot open directory {}", path.display()), &e))?
                    .with_fsync(true);
                (Box::new(store), String::new())
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail("cannot start the I/O runtime", &e))?;
        let local = match location {
            ObjectStoreLocation::File { path } => Some(path.clone()),
            ObjectStoreLocation::S3 { .. } => None,
        };
        Ok(ObjectStoreDestination {
            url: url.to_owned(),
            prefix,
            local,
            store,
            runtime,
        })
    }
}

impl Sink for ObjectStoreDestination {
    fn describe(&self) -> String {
        format!("object store {}", self.url)
    }

    fn remove_stale(&mut self, topic_dirs: &[String]) -> Result<usize, SinkError> {
        match &self.local {
            // The store's staging files (`<name>#<n>`) of uploads never finished.
            Some(dir) => super::directory::remove_stale_under(dir, topic_dirs),
            None => Ok(0),
        }
    }

    fn put(&mut self, key: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let fail = |e: &dyn std::error::Error| {
            SinkError::new(format!(
                "object store {}: cannot store {key}: {}",
                self.url,
                error_chain(e)
            ))
        };
        let path = object_path(&self.prefix, key).map_err(|e| fail(&e))?;
        let payload = object_store::PutPayload::from(bytes.to_vec());
        self.runtime
            .block_on(self.store.put(&path, payload))
            .map(drop)
            .map_err(|e| fail(&e))
    }
}

/// The object key of `key` under `prefix` (no leading or trailing `/`; may
/// be empty).
fn object_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

/// The store path of `key` under `prefix`; refuses keys that are not plain
/// relative paths (empty, absolute, `//`, `.` or `..` segments).
fn object_path(prefix: &str, key: &str) -> Result<ObjectPath, object_store::path::Error> {
    let full = object_key(prefix, key);
    if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
        // `Path::parse` would quietly strip the slashes; a sink key never has them.
        return Err(object_store::path::Error::EmptySegment { path: full });
    }
    ObjectPath::parse(full)
}

/// The longest error message kept (S3 error bodies can be long).
const MAX_MESSAGE: usize = 1000;

/// `e` and its sources, joined with `: `, skipping a source whose text the
/// message before it already contains (several wrappers repeat their cause);
/// on one line (S3 error bodies are multi-line XML) and at most
/// [`MAX_MESSAGE`] bytes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    let mut line = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if line.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_under_the_prefix() {
        assert_eq!(object_key("", "t/chunk-0.bin"), "t/chunk-0.bin");
        assert_eq!(object_key("fleet", "t/chunk-0.bin"), "fleet/t/chunk-0.bin");
        assert_eq!(
            object_key("fleet/robot-7", "t/dataset-0-9.json"),
            "fleet/robot-7/t/dataset-0-9.json"
        );
    }

    #[test]
    fn paths_are_the_joined_keys() {
        let path = object_path("fleet/robot-7", "t/chunk-0.json").unwrap();
        assert_eq!(path.as_ref(), "fleet/robot-7/t/chunk-0.json");
        assert_eq!(object_path("", "a/b").unwrap().as_ref(), "a/b");
    }

    #[test]
    fn odd_keys_are_refused() {
        for key in ["", "/a", "a/", "a//b", "a/../b", "./a"] {
            assert!(object_path("p", key).is_err(), "{key:?}");
            assert!(object_path("", key).is_err(), "{key:?}");
        }
    }

    #[derive(Debug)]
    struct Wrapper(&'static str, Option<Box<Wrapper>>);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn error_messages_are_one_line_without_repeats() {
        let inner = Wrapper(
            "404: <?xml?>\n  <Error>\n<Code>NoSuchBucket</Code></Error>\n",
            None,
        );
        let middle = Wrapper("PUT failed", Some(Box::new(inner)));
        let outer = Wrapper("not found: PUT failed", Some(Box::new(middle)));
        assert_eq!(
            error_chain(&outer),
            "not found: PUT failed: 404: <?xml?> <Error> <Code>NoSuchBucket</Code></Error>"
        );
        let long = Wrapper(Box::leak("é".repeat(MAX_MESSAGE).into_boxed_str()), None);
        let message = error_chain(&long);
        assert!(message.len() <= MAX_MESSAGE + '…'.len_utf8() && message.ends_with('…'));
    }

    #[test]
    fn file_destination_stores_under_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let location = ObjectStoreLocation::File { path: root.clone() };
        let url = format!("file://{}", root.display());
        let mut sink = ObjectStoreDestination::open(&url, &location).unwrap();
        assert_eq!(sink.describe(), format!("object store {url}"));
        sink.put("t/chunk-0.bin", b"first").unwrap();
        sink.put("t/chunk-0.bin", b"second").unwrap();
        sink.put("t/chunk-0.json", b"{}").unwrap();
        assert_eq!(
            std::fs::read(root.join("t/chunk-0.bin")).unwrap(),
            b"second"
        );
        assert_eq!(std::fs::read(root.join("t/chunk-0.json")).unwrap(), b"{}");
        let mut names: Vec<_> = std::fs::read_dir(root.join("t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["chunk-0.bin", "chunk-0.json"]);
        let err = sink.put("../escape", b"x").unwrap_err().to_string();
        assert!(err.contains(&url) && err.contains("../escape"), "{err}");
    }
}
