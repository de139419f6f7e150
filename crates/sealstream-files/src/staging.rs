//! Staging directories: outputs are written into a hidden directory beside
//! their destination and moved into place only when complete, so a failed
//! command leaves nothing behind and a reader never sees half an output.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rand_core::{OsRng, RngCore};

use crate::layout::FileError;

/// A hidden staging directory that is moved into `dest` when committed and
/// removed otherwise.
///
/// When `dest` does not exist yet, the staging directory is made beside it
/// (`.NAME.sealstream-staging-…` in its parent) and the commit is one rename
/// of the whole directory: `dest` appears complete or not at all. When `dest`
/// exists, the staging directory is made inside it and the commit moves each
/// file. Either way a new staging directory first removes those left by
/// processes that no longer run (a kill leaves one behind).
#[derive(Debug)]
pub struct Staging {
    dest: PathBuf,
    dir: PathBuf,
    committed: bool,
    /// The staging directory is beside `dest`, which did not exist.
    beside: bool,
}

/// The name of a staging directory made inside a destination starts with
/// this; one made beside it, `.NAME` and this.
const MARK: &str = ".sealstream-staging-";

impl Staging {
    /// A fresh staging directory for `dest` (beside it when `dest` does not
    /// exist, inside it otherwise).
    pub fn new(dest: &Path) -> Result<Self, FileError> {
        let unique = format!("{}-{:016x}", std::process::id(), OsRng.next_u64());
        let (dir, beside) = if dest.exists() {
            remove_abandoned(dest, MARK, 16, "");
            (dest.join(format!("{MARK}{unique}")), false)
        } else {
            let (parent, name) =
                crate::layout::dir_and_name(dest).map_err(|e| FileError::new(dest, e))?;
            fs::create_dir_all(parent).map_err(|e| FileError::new(parent, e))?;
            let prefix = format!(".{}{MARK}", name.to_string_lossy());
            remove_abandoned(parent, &prefix, 16, "");
            (parent.join(format!("{prefix}{unique}")), true)
        };
        fs::create_dir(&dir).map_err(|e| FileError::new(&dir, e))?;
        Ok(Staging {
            dest: dest.to_path_buf(),
            dir,
            committed: false,
            beside,
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Move the staged files into the destination and remove the staging
    /// directory: one rename of the directory when `dest` did not exist
    /// (and still does not), else each file (replacing files of the same
    /// name) in name order with `manifest.json` last.
    pub fn commit(mut self) -> Result<(), FileError> {
        if self.beside {
            match fs::rename(&self.dir, &self.dest) {
                Ok(()) => {
                    self.committed = true;
                    return Ok(());
                }
                // Made meanwhile by someone else: move the files into it.
                Err(_) if self.dest.is_dir() => {}
                Err(e) => return Err(FileError::new(&self.dest, e)),
            }
        }
        let mut names: Vec<_> = fs::read_dir(&self.dir)
            .map_err(|e| FileError::new(&self.dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| FileError::new(&self.dir, e))?;
        names.sort_by_key(|n| (n == "manifest.json", n.clone()));
        for name in names {
            let to = self.dest.join(&name);
            fs::rename(self.dir.join(&name), &to).map_err(|e| FileError::new(&to, e))?;
        }
        fs::remove_dir(&self.dir).map_err(|e| FileError::new(&self.dir, e))?;
        self.committed = true;
        Ok(())
    }
}

/// Remove what is in `dir` named `PREFIX<pid>-<hex_len hex digits>SUFFIX`
/// (a staging directory or temporary file) whose process no longer runs
/// (on Linux, where `/proc` says so; elsewhere nothing is removed).
/// Failures are ignored: it is only tidying.
fn remove_abandoned(dir: &Path, prefix: &str, hex_len: usize, suffix: &str) {
    let proc = Path::new("/proc/self");
    if !proc.exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(suffix))
        else {
            continue;
        };
        let Some((pid, random)) = rest.split_once('-') else {
            continue;
        };
        let well_formed = !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && random.len() == hex_len
            && random.bytes().all(|b| b.is_ascii_hexdigit());
        if well_formed && !Path::new("/proc").join(pid).exists() {
            let path = entry.path();
            let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Bytes written between two background syncs of a [`TempFile`].
const WRITEBACK_STEP: u64 = 32 << 20;

/// A temporary file beside `dest`, renamed onto it by [`TempFile::commit`]
/// and removed if dropped uncommitted. Write through its [`Write`] impl.
///
/// The data is synced before the rename, so a crash never leaves a
/// destination with missing data. That sync is mostly done on the way: every
/// 32 MiB written, a background thread asks the kernel to write what is there
/// so far (`fdatasync` on a second handle), so the disk works while the caller
/// goes on, and the final sync has only the tail left.
#[derive(Debug)]
pub struct TempFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<fs::File>,
    writeback: Option<Writeback>,
    unsynced: u64,
}

/// The background thread of [`TempFile`]'s early syncs.
#[derive(Debug)]
struct Writeback {
    /// A sync is asked for by a message; at most one waits.
    ask: Option<mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Writeback {
    fn start(file: &fs::File) -> Option<Self> {
        let file = file.try_clone().ok()?;
        let (ask, asked) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("sealstream-writeback".into())
            .spawn(move || {
                for () in asked {
                    file.sync_data()?;
                }
                Ok(())
            })
            .ok()?;
        Some(Writeback {
            ask: Some(ask),
            thread: Some(thread),
        })
    }

    /// Ask for a sync of what is written so far (dropped if one is waiting).
    fn ask(&self) {
        if let Some(ask) = &self.ask {
            let _ = ask.try_send(());
        }
    }

    /// Wait for the syncs asked for; the first failure.
    fn finish(&mut self) -> io::Result<()> {
        self.ask.take();
        match self.thread.take().map(|t| t.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the writeback thread panicked")),
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl TempFile {
    /// Create the temporary file (the destination's directory must exist),
    /// after removing those left beside `dest` by processes that no longer run.
    pub fn new(dest: &Path) -> Result<Self, FileError> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let prefix = format!(".{name}.sealstream-");
        remove_abandoned(dir, &prefix, 8, ".tmp");
        let tmp = dir.join(format!(
            "{prefix}{}-{:08x}.tmp",
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
            writeback: Writeback::start(&file),
            file: Some(file),
            unsynced: 0,
        })
    }

    /// Sync and rename onto the destination.
    pub fn commit(mut self) -> Result<(), FileError> {
        let file = self.file.take().expect("file open until commit");
        let synced = match self.writeback.as_mut().map(Writeback::finish) {
            Some(Err(e)) => Err(e),
            _ => file.sync_data(),
        };
        drop(file);
        let result = synced
            .map_err(|e| FileError::new(&self.tmp, e))
            .and_then(|()| {
                fs::rename(&self.tmp, &self.dest).map_err(|e| FileError::new(&self.dest, e))
            });
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self
            .file
            .as_mut()
            .expect("file open until commit")
            .write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= WRITEBACK_STEP {
            self.unsynced = 0;
            if let Some(w) = &self.writeback {
                w.ask();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.writeback.take();
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_destination_appears_whole_by_one_rename() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out");
        let staging = Staging::new(&dest).unwrap();
        assert!(
            !dest.exists(),
            "nothing at the destination before the commit"
        );
        assert_eq!(staging.path().parent(), Some(root.path()));
        fs::write(staging.path().join("a"), b"1").unwrap();
        fs::write(staging.path().join("manifest.json"), b"{}").unwrap();
        staging.commit().unwrap();
        assert_eq!(names(&dest), ["a", "manifest.json"]);
        assert_eq!(names(root.path()), ["out"], "no staging directory left");
    }

    #[test]
    fn an_existing_destination_gets_each_file_and_keeps_the_others() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("a"), b"old").unwrap();
        fs::write(dest.join("other"), b"kept").unwrap();
        let staging = Staging::new(&dest).unwrap();
        assert_eq!(staging.path().parent(), Some(dest.as_path()));
        fs::write(staging.path().join("a"), b"new").unwrap();
        staging.commit().unwrap();
        assert_eq!(names(&dest), ["a", "other"]);
        assert_eq!(fs::read(dest.join("a")).unwrap(), b"new");
    }

    #[test]
    fn a_destination_made_meanwhile_gets_the_files() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out");
        let staging = Staging::new(&dest).unwrap();
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("theirs"), b"x").unwrap();
        fs::write(staging.path().join("ours"), b"y").unwrap();
        staging.commit().unwrap();
        assert_eq!(names(&dest), ["ours", "theirs"]);
        assert_eq!(names(root.path()), ["out"]);
    }

    #[test]
    fn dropped_uncommitted_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        for dest in [root.path().join("new"), root.path().to_path_buf()] {
            let staging = Staging::new(&dest).unwrap();
            fs::write(staging.path().join("a"), b"1").unwrap();
            drop(staging);
        }
        assert!(names(root.path()).is_empty());
    }

    /// A pid that no process has: above Linux's largest (2^22).
    const DEAD_PID: u32 = 4_194_305;

    #[test]
    #[cfg(target_os = "linux")]
    fn what_a_killed_process_left_is_removed_and_a_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out");
        let dead_beside = root
            .path()
            .join(format!(".out{MARK}{DEAD_PID}-00000000000000ab"));
        let live_beside = root
            .path()
            .join(format!(".out{MARK}{}-00000000000000cd", std::process::id()));
        let unrelated = root
            .path()
            .join(format!(".other{MARK}{DEAD_PID}-00000000000000ef"));
        for d in [&dead_beside, &live_beside, &unrelated] {
            fs::create_dir(d).unwrap();
            fs::write(d.join("chunk-0.bin"), b"x").unwrap();
        }
        Staging::new(&dest).unwrap().commit().unwrap();
        assert!(!dead_beside.exists());
        assert!(live_beside.exists() && unrelated.exists());

        // Inside an existing destination, and a consume's temporary file.
        let dead_inside = dest.join(format!("{MARK}{DEAD_PID}-0000000000000001"));
        fs::create_dir(&dead_inside).unwrap();
        drop(Staging::new(&dest).unwrap());
        assert!(!dead_inside.exists());
        let dead_tmp = root
            .path()
            .join(format!(".file.bin.sealstream-{DEAD_PID}-0000abcd.tmp"));
        fs::write(&dead_tmp, b"partial").unwrap();
        drop(TempFile::new(&root.path().join("file.bin")).unwrap());
        assert!(!dead_tmp.exists());
    }

    #[test]
    fn a_temp_file_is_renamed_whole_or_removed() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out.bin");
        let data: Vec<u8> = (0..(WRITEBACK_STEP as usize * 2 + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut tmp = TempFile::new(&dest).unwrap();
        for piece in data.chunks(1 << 20) {
            tmp.write_all(piece).unwrap();
        }
        assert!(!dest.exists());
        tmp.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), data);
        assert_eq!(names(root.path()), ["out.bin"]);

        let mut tmp = TempFile::new(&root.path().join("never.bin")).unwrap();
        tmp.write_all(b"partial").unwrap();
        drop(tmp);
        assert_eq!(names(root.path()), ["out.bin"]);
    }
}
