//! The spool's files on disk: making their renames durable.

use std::fs::File;
use std::io;
use std::path::Path;

/// Make the entries of `dir` durable (fsync the directory): a file renamed
/// into it survives a power loss once this returns.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
