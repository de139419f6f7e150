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

    fn remove_stale(&mut self, topic_dirs: &[String]) -> Result<usize, SinkError> {
        remove_stale_under(&self.dir, topic_dirs)
    }

    fn put(&mut self, key: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let path = key
            .split('/')
            .fold(self.dir.clone(), |p, part| p.join(part));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| SinkError::new(format!("{}: {e}", parent.display())))?;
        }
        sealstream_files::layout::write_atomic(&path, bytes)
            .map_err(|e| SinkError::new(format!("{}: {e}", path.display())))
    }
}

/// Remove the temporary files of chunk and manifest writes in the topic
/// directories `topic_dirs` under `root` (see [`crate::spool::is_temp_name`]).
pub(super) fn remove_stale_under(
    root: &std::path::Path,
    topic_dirs: &[String],
) -> Result<usize, SinkError> {
    let mut removed = 0;
    for name in topic_dirs {
        let dir = root.join(name);
        removed += crate::spool::remove_temp_files(&dir, crate::spool::is_chain_file)
            .map_err(|e| SinkError::new(format!("{}: {e}", dir.display())))?;
    }
    Ok(removed)
}
