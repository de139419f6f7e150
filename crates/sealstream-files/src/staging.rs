//! Staging directories: outputs are written into a hidden directory beside
//! their destination and moved into place only when complete, so a failed
//! command leaves nothing behind and a reader never sees half an output.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};

use crate::layout::FileError;

/// A hidden staging directory inside `dest` that is removed unless committed.
#[derive(Debug)]
pub struct Staging {
    dest: PathBuf,
    dir: PathBuf,
    committed: bool,
    created_dest: bool,
}

impl Staging {
    /// Create `dest` if needed and a fresh staging directory inside it.
    pub fn new(dest: &Path) -> Result<Self, FileError> {
        let created_dest = !dest.exists();
        fs::create_dir_all(dest).map_err(|e| FileError::new(dest, e))?;
        let dir = dest.join(format!(
            ".sealstream-staging-{}-{:016x}",
            std::process::id(),
            OsRng.next_u64()
        ));
        fs::create_dir(&dir).map_err(|e| FileError::new(&dir, e))?;
        Ok(Staging {
            dest: dest.to_path_buf(),
            dir,
            committed: false,
            created_dest,
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Move every staged file into the destination (replacing files of the
    /// same name), in name order with `manifest.json` last, and remove the
    /// staging directory.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, FileError> {
        let mut names: Vec<_> = fs::read_dir(&self.dir)
            .map_err(|e| FileError::new(&self.dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| FileError::new(&self.dir, e))?;
        names.sort_by_key(|n| (n == "manifest.json", n.clone()));
        let mut moved = Vec::with_capacity(names.len());
        for name in names {
            let to = self.dest.join(&name);
            fs::rename(self.dir.join(&name), &to).map_err(|e| FileError::new(&to, e))?;
            moved.push(to);
        }
        fs::remove_dir(&self.dir).map_err(|e| FileError::new(&self.dir, e))?;
        self.committed = true;
        Ok(moved)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
            if self.created_dest {
                // Only succeeds if nothing else was put there meanwhile.
                let _ = fs::remove_dir(&self.dest);
            }
        }
    }
}

/// A temporary file beside `dest`, renamed onto it by [`TempFile::commit`]
/// and removed if dropped uncommitted.
#[derive(Debug)]
pub struct TempFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<fs::File>,
}

impl TempFile {
    /// Create the temporary file (the destination's directory must exist).
    pub fn new(dest: &Path) -> Result<Self, FileError> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(
            ".{name}.sealstream-{}-{:08x}.tmp",
            std::process::id(),
            OsRng.next_u32()
        ));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| FileError::new(&tmp, e))?;
        Ok(TempFile {
            dest: dest.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The open file.
    pub fn file(&mut self) -> &mut fs::File {
        self.file.as_mut().expect("file open until commit")
    }

    /// Sync and rename onto the destination.
    pub fn commit(mut self) -> Result<(), FileError> {
        let file = self.file.take().expect("file open until commit");
        file.sync_data().map_err(|e| FileError::new(&self.tmp, e))?;
        drop(file);
        fs::rename(&self.tmp, &self.dest).map_err(|e| FileError::new(&self.dest, e))?;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
