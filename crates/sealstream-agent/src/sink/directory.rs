//! A local directory in the reference layout, one sub-directory per topic.

use std::path::PathBuf;

use super::{Sink, SinkError};

/// Writes each object to `<dir>/<key>` through a temporary file and a rename.
#[derive(Debug)]
pub struct DirectoryDestination {
    dir: PathBuf,
}

impl DirectoryDestination {
    /// A sink writing under `dir` (created when needed).
    pub fn new(dir: PathBuf) -> DirectoryDestination {
        DirectoryDestination { dir }
    }
}

impl Sink for DirectoryDestination {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn put(&mut self, key: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let path = key
            .split('/')
            .fold(self.dir.clone(), |p, part| p.join(part));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| SinkError::new(format!("{}: {e}", parent.display())))?;
        }
        sealstream_core::layout::write_atomic(&path, bytes)
            .map_err(|e| SinkError::new(format!("{}: {e}", path.display())))
    }
}
